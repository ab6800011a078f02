//! The WhatsApp Web channel (feature `whatsapp-web`): WhatsApp Web driven in
//! headless Chromium through chromiumoxide, the route small businesses take
//! when they have no Meta approval for the Cloud API.
//!
//! - [`WebEngine`]: the process's sessions, one per channel, each a
//!   Chromium with the channel's own persistent profile folder under the
//!   data folder (so a restart does not ask for a new QR code), the
//!   injected bridge ([`bridge`]), connection states, QR codes, reconnects
//!   with backoff, and inbound messages and acks delivered into crm.
//! - [`WebFactory`] / [`WebMessenger`]: the `whatsapp-web` channel kind;
//!   sending goes through the channel's open session.
//!
//! Every dependency on WhatsApp Web's internal modules is in one file,
//! `web/bridge.js`, with a comment per module; [`PINNED_VERSION`] names the
//! WhatsApp Web release it was written against, and a session whose page
//! runs another release stops with [`SessionState::Failed`] naming both.

pub mod bridge;
mod contacts;
mod engine;
mod groups;
mod identity;
mod media;
mod memory;
mod messenger;
mod pairing;
pub mod qr;
mod session;
mod state;
mod supervisor;

pub use contacts::WHATSAPP_NAME_KEY;
pub use engine::{WebEngine, WebEngineBuilder};
pub use groups::WebGroups;
pub use media::{MAX_WEB_MEDIA_BYTES, WEB_MEDIA_CONSUMER, WEB_MEDIA_PATIENCE, WebMediaFetcher};
pub use memory::{MemoryUsage, own_rss};
pub use messenger::{WebFactory, WebMessenger};
pub use state::{SessionState, SessionStatus};
pub use supervisor::{Supervisor, SupervisorOptions, default_owner};

/// The channel kind of WhatsApp Web sessions.
pub const KIND: &str = "whatsapp-web";

/// The provider name in errors, metrics and health reports.
pub const PROVIDER: &str = "whatsapp-web";

/// The WhatsApp Web release the bridge (`web/bridge.js`) was written against.
pub const PINNED_VERSION: &str = "2.3000.1030818720";

/// Where WhatsApp Web lives.
pub const DEFAULT_URL: &str = "https://web.whatsapp.com/";
