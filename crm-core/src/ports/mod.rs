//! Ports: the object-safe traits every adapter implements.

pub mod assistant;
pub mod automations;
pub mod billing;
pub mod campaigns;
pub mod channels;
pub mod clock;
pub mod connections;
pub mod connectors;
pub mod external_crm;
pub mod groups;
pub mod health;
pub mod idempotency;
pub mod inbox;
pub mod jobs;
pub mod media;
pub mod messenger;
pub mod oauth;
pub mod rate_limiter;
pub mod sequences;
pub mod store;
pub mod webhooks;
pub mod whatsapp_ids;
pub mod workflows;
