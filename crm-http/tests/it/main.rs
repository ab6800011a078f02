//! crm-http's integration tests, in one binary: handler tests over
//! `router(state)` with `oneshot`, end-to-end tests against a server on
//! 127.0.0.1:0 over SQLite and PostgreSQL (`CRM_TEST_DATABASE_URL`), and the
//! `crm-server` command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admin;
#[cfg(feature = "ai")]
mod ai;
#[cfg(feature = "webhooks")]
mod automations;
#[cfg(feature = "stripe")]
mod billing;
mod campaigns;
mod channels;
mod cli;
#[cfg(all(feature = "sendgrid", feature = "slack"))]
mod connections;
mod contacts;
mod dashboard;
mod dashboard_browser;
#[cfg(feature = "whatsapp-web")]
mod dashboard_channels_web;
mod dashboard_inbox;
mod dashboard_pages;
#[cfg(feature = "webhooks")]
mod dashboard_webhooks;
mod e2e;
mod errors;
mod fuzz;
mod groups;
mod hardening;
mod media;
mod messages;
mod n8n;
#[cfg(feature = "oauth")]
mod oauth;
mod ratelimit;
mod sequences;
mod system;
mod templates;
mod tenancy;
#[cfg(feature = "webhooks")]
mod webhooks;
#[cfg(feature = "whatsapp-cloud")]
mod whatsapp;
#[cfg(feature = "whatsapp-web")]
mod whatsapp_web;
