//! # crm-whatsapp
//!
//! The WhatsApp Cloud API channel of crm: a [`MessengerFactory`](crm_core::MessengerFactory)
//! for the `whatsapp-cloud` channel kind ([`CloudApiFactory`]) whose
//! messengers ([`CloudApiMessenger`]) send every kind of crm message through
//! Meta's Graph API, with Meta's errors mapped into crm's error kinds
//! ([`graph`]), plus what inbound webhooks need ([`webhook`]) and the worker
//! that downloads inbound media ([`media`]).
//!
//! With the feature `whatsapp-web`, [`web`] adds a second channel kind,
//! `whatsapp-web`: WhatsApp Web driven in headless Chromium.
//!
//! A channel of this kind holds:
//!
//! | where | what |
//! |---|---|
//! | `provider_id` | the phone number id (Meta's app dashboard, WhatsApp → API setup) |
//! | `settings` | [`CloudSettings`]: `business_account_id`, `api_version`, `base_url`, `timeout_secs`, `link_preview`, `fallback_template`, `max_media_bytes` |
//! | `credentials` | `access_token` (required), `app_secret` and `verify_token` (webhooks) |
//!
//! ```no_run
//! # async fn demo() -> crm_core::Result<()> {
//! use std::sync::Arc;
//! let crm = crm_core::Crm::builder()
//!     .store(Arc::new(crm_core::MemoryStore::new()))
//!     .messenger_factory(Arc::new(crm_whatsapp::CloudApiFactory::new()?))
//!     .build()?;
//! # let _ = crm; Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod graph;
pub mod groups;
pub mod media;
mod messenger;
pub mod payload;
pub mod settings;
pub mod templates;
#[cfg(feature = "whatsapp-web")]
pub mod web;
pub mod webhook;

pub use media::MediaFetcher;
pub use messenger::{
    CloudApiBuilder, CloudApiFactory, CloudApiMessenger, MESSAGES_PER_SECOND, PAIR_INTERVAL, WINDOW, http_client,
};
pub use settings::{CloudCredentials, CloudSettings};
pub use templates::ProviderTemplate;

/// The channel kind this crate serves.
pub const KIND: &str = "whatsapp-cloud";

/// The provider name in errors, metrics and health reports.
pub const PROVIDER: &str = "whatsapp-cloud";
