//! Pairing by phone-number code (WhatsApp's "Link with phone number"): the
//! pairing screen asks WhatsApp for an 8-character code for a phone
//! number, which the user types on that phone (Linked devices → Link a
//! device → Link with phone number instead). The QR code keeps working
//! beside it.

use std::time::Duration;

use crm_core::{ChannelId, Error, Phone, Result};
use serde_json::json;

use super::engine::{WebEngine, provider_error};
use super::state::SessionState;
use super::{PROVIDER, bridge};

/// Whether `code` looks like a pairing code: 8 letters or digits.
fn is_pairing_code(code: &str) -> bool {
    code.len() == 8 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl WebEngine {
    /// Asks the channel's session, waiting up to `wait` for it to show its
    /// pairing screen, for the code that links `phone`'s WhatsApp to it.
    /// [`Error::Conflict`] when the session is connected already; a
    /// permanent `Provider` error when it is logged out or failed (restart
    /// it first); [`Error::NotConnected`] when it is not open here; a
    /// transient `Provider` error when it is not pairing by the end of `wait`.
    pub async fn request_pairing_code(&self, id: ChannelId, phone: &Phone, wait: Duration) -> Result<String> {
        let mut status =
            self.watch(id).ok_or_else(|| Error::not_connected(PROVIDER, "the session is not open in this process"))?;
        let reached = tokio::time::timeout(wait, async {
            loop {
                let state = status.borrow_and_update().state.clone();
                match state {
                    SessionState::Pairing => return Ok(()),
                    SessionState::Connected => {
                        return Err(Error::conflict("channel", "the session is paired and connected already"));
                    }
                    SessionState::LoggedOut | SessionState::Failed { .. } | SessionState::Stopped => {
                        return Err(provider_error(
                            false,
                            state.name(),
                            format!("the WhatsApp Web session is {}: start pairing over first", state.name()),
                        ));
                    }
                    _ => {}
                }
                if status.changed().await.is_err() {
                    return Err(Error::not_connected(PROVIDER, "the session closed"));
                }
            }
        })
        .await;
        match reached {
            Err(_) => {
                return Err(provider_error(
                    true,
                    "not_pairing",
                    "the WhatsApp Web session did not show its pairing screen in time",
                ));
            }
            Ok(r) => r?,
        }
        let page = self
            .shared
            .session(id)
            .and_then(|s| s.page())
            .ok_or_else(|| Error::not_connected(PROVIDER, "the session's page is gone"))?;
        let js = bridge::call("requestPairingCode", &[json!(phone.digits())]);
        let code: String = self.shared.evaluate(&page, &js).await?;
        if !is_pairing_code(&code) {
            return Err(provider_error(
                false,
                "bad_answer",
                "WhatsApp Web answered something that is not a pairing code",
            ));
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairing_codes_are_eight_letters_or_digits() {
        assert!(super::is_pairing_code("ABCD1234"));
        for bad in ["ABCD-1234", "ABC123", "", "ABCD12345"] {
            assert!(!super::is_pairing_code(bad), "{bad}");
        }
    }
}
