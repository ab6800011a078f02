//! Domain types, validated at construction.

pub mod account;
pub mod channel;
pub mod contact;
pub mod credentials;
pub mod event;
pub mod message;
pub mod phone;
pub mod template;
