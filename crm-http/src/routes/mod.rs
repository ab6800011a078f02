//! Route handlers, grouped by resource.

pub(crate) mod admin;
#[cfg(feature = "ai")]
pub(crate) mod ai;
pub(crate) mod automations;
#[cfg(feature = "stripe")]
pub(crate) mod billing;
pub(crate) mod campaigns;
pub(crate) mod channels;
pub(crate) mod connections;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod n8n;
pub(crate) mod oauth;
pub(crate) mod sequences;
pub(crate) mod system;
pub(crate) mod templates;
#[cfg(feature = "webhooks")]
pub(crate) mod webhooks;
#[cfg(feature = "whatsapp-cloud")]
pub(crate) mod whatsapp;
#[cfg(feature = "whatsapp-web")]
pub(crate) mod whatsapp_web;
pub(crate) mod workers;
