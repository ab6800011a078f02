//! Domain types, validated at construction.

pub mod account;
pub mod assistant;
pub mod automation;
pub mod billing;
pub mod campaign;
pub mod channel;
pub mod connection;
pub mod contact;
pub mod credentials;
pub mod event;
pub mod group;
pub mod inbox;
mod json;
pub mod media;
pub mod message;
pub mod phone;
pub mod scoring;
pub mod sequence;
pub mod template;
pub(crate) mod time;
pub mod webhook;
pub mod zone;
