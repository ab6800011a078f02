//! Wiring of the `whatsapp-web` channel kind (feature `whatsapp-web`): the
//! engine every process builds (sends and QR codes go through it), and the
//! supervisor that processes running workers start to own sessions.

use std::time::Duration;

use crm_core::{Crm, Result};
use crm_whatsapp::web::{Supervisor, SupervisorOptions, WebEngine, default_owner};

use crate::config::Config;
use crate::state::WhatsAppWeb;

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
