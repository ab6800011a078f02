//! A session's connection state, in the words of whatsapp-web.js's
//! `getState()` plus what crm adds around it (reconnecting, failed, stopped).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a WhatsApp Web session stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    /// Chromium is starting or WhatsApp Web is loading.
    Opening,
    /// Waiting for a phone to scan the QR code (or to type the pairing code).
    Pairing,
    /// Paired and online: messages flow.
    Connected,
    /// WhatsApp Web was opened for this account elsewhere and took over.
    Conflict,
    /// The page or Chromium was lost; opening again after a backoff.
    Reconnecting {
        /// Attempts since the session was last connected.
        attempt: u32,
        /// Why the last attempt ended.
        reason: String,
    },
    /// The phone ended this session (Linked devices → Log out): not
    /// retried; pair again to use the channel.
    LoggedOut,
    /// Cannot work as it is (another WhatsApp Web release than the bridge
    /// was written for, Chromium missing): not retried.
    Failed {
        /// What is wrong, naming what to fix.
        reason: String,
    },
    /// Closed by crm (the channel was disabled or deleted, or shutdown).
    Stopped,
}

impl SessionState {
    /// The state's name as events and `/ready` show it.
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Opening => "opening",
            SessionState::Pairing => "pairing",
            SessionState::Connected => "connected",
            SessionState::Conflict => "conflict",
            SessionState::Reconnecting { .. } => "reconnecting",
            SessionState::LoggedOut => "logged_out",
            SessionState::Failed { .. } => "failed",
            SessionState::Stopped => "stopped",
        }
    }

    /// Whether the session ended for good (no reconnect follows).
    pub fn is_final(&self) -> bool {
        matches!(self, SessionState::LoggedOut | SessionState::Failed { .. } | SessionState::Stopped)
    }
}

/// A session's state and what came with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// The state.
    #[serde(flatten)]
    pub state: SessionState,
    /// WhatsApp Web's own state name (`CONNECTED`, `UNPAIRED`, …) when the
    /// page reported one.
    pub provider_state: Option<String>,
    /// The WhatsApp Web release the page runs, once loaded.
    pub version: Option<String>,
    /// Since when the session is in this state.
    pub since: DateTime<Utc>,
    /// The text the current QR code encodes, while pairing.
    #[serde(skip)]
    pub qr: Option<String>,
}

impl SessionStatus {
    pub(crate) fn new(state: SessionState) -> Self {
        Self { state, provider_state: None, version: None, since: Utc::now(), qr: None }
    }
}

/// What WhatsApp Web's socket state means for crm. `paired` says whether
/// this profile was connected before: then `UNPAIRED` is a logout, not the
/// first QR screen.
pub(crate) fn from_provider(state: &str, paired: bool) -> SessionState {
    match state {
        "CONNECTED" => SessionState::Connected,
        "CONFLICT" => SessionState::Conflict,
        "UNPAIRED" | "UNPAIRED_IDLE" if paired => SessionState::LoggedOut,
        "UNPAIRED" | "UNPAIRED_IDLE" | "PAIRING" => SessionState::Pairing,
        // OPENING, TIMEOUT, CONNECTING, SYNCING, RESUMING, …: WhatsApp Web
        // is (re)connecting by itself.
        _ => SessionState::Opening,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_states_map_and_unpaired_means_logged_out_once_paired() {
        assert_eq!(from_provider("CONNECTED", false), SessionState::Connected);
        assert_eq!(from_provider("UNPAIRED", false), SessionState::Pairing);
        assert_eq!(from_provider("UNPAIRED_IDLE", true), SessionState::LoggedOut);
        assert_eq!(from_provider("CONFLICT", true), SessionState::Conflict);
        assert_eq!(from_provider("TIMEOUT", true), SessionState::Opening);
        let json =
            serde_json::to_value(SessionStatus::new(SessionState::Failed { reason: "x".into() })).unwrap_or_default();
        assert_eq!(json["state"], "failed");
        assert_eq!(json["reason"], "x");
        assert!(json.get("qr").is_none());
    }
}
