//! Wiring of the `whatsapp-web` channel kind (feature `whatsapp-web`): the
//! engine every process builds (sends and QR codes go through it), and the
//! supervisor that processes running workers start to own sessions.

use std::time::Duration;

use crm_core::{Crm, Result};
use crm_whatsapp::web::{Supervisor, SupervisorOptions, WebEngine, default_owner};

use crate::config::Config;
use crate::state::{AppState, WhatsAppWeb};

/// The engine from the configuration: Chromium, profiles under
/// `<data_dir>/whatsapp-web`, WhatsApp Web's URL.
pub(crate) fn engine(config: &Config) -> Result<WebEngine> {
    WebEngine::builder()
        .chromium(config.whatsapp_web_chromium.clone())
        .data_dir(config.data_dir.join("whatsapp-web"))
        .url(config.whatsapp_web_url.clone())
        .build()
}

/// Gives the engine the service and, when this process runs workers,
/// starts the supervisor (sessions are owned by worker processes).
pub(crate) fn start(engine: WebEngine, crm: &Crm, config: &Config, workers: bool) -> WhatsAppWeb {
    engine.attach(crm.clone());
    let supervisor = workers.then(|| {
        let lease = Duration::from_secs(config.whatsapp_web_lease_secs);
        let options = SupervisorOptions { owner: default_owner(), lease, every: lease / 3 };
        Supervisor::start(engine.clone(), crm.clone(), options)
    });
    WhatsAppWeb { engine, supervisor: tokio::sync::Mutex::new(supervisor) }
}

/// What `crm-server channel pair` shows while it pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingProgress {
    /// A QR code to scan, drawn for a terminal.
    Qr(String),
    /// The code to type on the phone (pairing by phone number).
    Code(String),
    /// The session's state changed.
    State(String),
}

/// Pairs a `whatsapp-web` channel from this process (`crm-server channel
/// pair`): takes the session's lease (a process that holds it already is a
/// `Conflict` naming it — pair through its API then), opens the session,
/// reports each QR code (or, with `phone`, the pairing code), and waits until
/// it is connected (`Ok`) or `timeout` passes (a transient `Provider`
/// error). The session is closed and the lease given back either way; the
/// login stays in the channel's profile for the process that runs it next.
pub async fn pair_channel(
    state: &AppState,
    config: &Config,
    channel: crm_core::ChannelId,
    phone: Option<&crm_core::Phone>,
    timeout: Duration,
    mut progress: impl FnMut(PairingProgress),
) -> Result<()> {
    use crm_whatsapp::web::{KIND, SessionState};
    let crm = state.crm();
    let engine = state
        .whatsapp_web()
        .ok_or_else(|| crm_core::Error::Config { message: "WhatsApp Web is not built into this server".into() })?;
    let mut after = None;
    let found = loop {
        let page = crm.store().list_all_channels(after, 1000).await?;
        let Some(last) = page.last().map(|c| c.id) else { break None };
        if let Some(c) = page.into_iter().find(|c| c.id == channel) {
            break Some(c);
        }
        after = Some(last);
    };
    let channel = found.ok_or(crm_core::Error::not_found("channel"))?;
    if channel.kind.as_str() != KIND {
        return Err(crm_core::Error::validation("channel", format!("only {KIND} channels are paired")));
    }
    let owner = default_owner();
    let lease = Duration::from_secs(config.whatsapp_web_lease_secs);
    if !crm.store().acquire_channel_lease(channel.id, &owner, lease).await? {
        let holder = crm.store().channel_lease_owner(channel.id).await?.unwrap_or_default();
        return Err(crm_core::Error::conflict(
            "channel",
            format!(
                "the session is open in {holder}: pair through its API (GET /api/v1/channels/{{id}}/qr or POST …/pair)"
            ),
        ));
    }
    engine.open(&channel).await?;
    let result = async {
        let mut status = engine.watch(channel.id).ok_or(crm_core::Error::not_found("channel"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut renew = tokio::time::interval(lease / 3);
        let (mut last_qr, mut last_state, mut asked) = (None::<String>, String::new(), false);
        loop {
            let now = status.borrow_and_update().clone();
            if now.state.name() != last_state {
                last_state = now.state.name().to_owned();
                progress(PairingProgress::State(last_state.clone()));
            }
            match &now.state {
                SessionState::Connected => return Ok(()),
                SessionState::LoggedOut | SessionState::Failed { .. } => {
                    let reason = match &now.state {
                        SessionState::Failed { reason } => reason.clone(),
                        other => other.name().to_owned(),
                    };
                    return Err(crm_core::Error::Provider {
                        provider: KIND.into(),
                        transient: false,
                        code: Some(now.state.name().into()),
                        message: reason,
                        retry_after: None,
                        source: None,
                    });
                }
                SessionState::Pairing => match phone {
                    Some(p) if !asked => {
                        asked = true;
                        let code = engine.request_pairing_code(channel.id, p, Duration::from_secs(30)).await?;
                        progress(PairingProgress::Code(code));
                    }
                    None if now.qr.is_some() && now.qr != last_qr => {
                        last_qr = now.qr.clone();
                        if let Some(code) = &now.qr {
                            progress(PairingProgress::Qr(crm_whatsapp::web::qr::to_text(code)?));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() {
                    return Err(crm_core::Error::not_found("channel"));
                },
                _ = renew.tick() => {
                    crm.store().acquire_channel_lease(channel.id, &owner, lease).await?;
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(crm_core::Error::Provider {
                        provider: KIND.into(),
                        transient: true,
                        code: Some("timeout".into()),
                        message: "the channel was not paired in time".into(),
                        retry_after: None,
                        source: None,
                    });
                }
            }
        }
    }
    .await;
    engine.close(channel.id).await;
    if let Err(e) = crm.store().release_channel_lease(channel.id, &owner).await {
        tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: the pairing lease was not released (it expires)");
    }
    result
}
