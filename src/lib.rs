//! # crm
//!
//! A toolkit for WhatsApp-first customer-engagement backends: contacts and
//! their threads, messaging, templates, an event outbox, rate limiting — each
//! capability a port with swappable adapters.
//!
//! This facade re-exports [`crm_core`] (domain, ports, the [`Crm`] service and
//! in-memory adapters) and, by feature, the adapter crates:
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | [`storage::SqliteStore`] |
//! | `postgres` | [`storage::PgStore`] |
//! | `redis` | [`storage::RedisLimiter`] |
//! | `s3` | `storage::ObjectMediaStore::s3`: media in S3 (the local-folder and memory media stores come with any storage feature) |
//! | `whatsapp-cloud` | [`whatsapp`]: the WhatsApp Cloud API channel (and, with `server`, its webhook route and channel kind in the server) |
//! | `webhooks` | [`webhooks`]: outbound webhooks signed per Standard Webhooks, their delivery workers, the SSRF guard and a receiver-side verifier (and, with `server`, their routes and workers in the server) |
//! | `whatsapp-web` | `whatsapp::web`: the WhatsApp Web channel in headless Chromium (and, with `server`, its channel kind, session supervisor and QR route) |
//! | `ai` | [`ai`]: the assistant — OpenAI-compatible adapter, offline heuristic, guardrails, the `assistant` worker (and, with `server`, `/api/v1/ai/*`) |
//! | `stripe` | [`billing`]: Stripe Checkout (card and Pix), the customer portal, subscriptions, `Stripe-Signature` verification and the worker that applies webhooks (and, with `server`, `/webhooks/stripe` and `/api/v1/billing/*`) |
//! | `server` | [`server`]: the HTTP server (`router`, `Server`, `Config`) |
//! | `testing` | [`testing`]: the conformance suites |
//!
//! An app that serves the API over PostgreSQL needs only
//! `crm = { version = "0.1", features = ["server", "postgres"] }`.
#![warn(missing_docs)]

pub use crm_core::*;

/// Storage adapters (SQLite, PostgreSQL, Redis, the media stores).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis", feature = "s3"))]
pub mod storage {
    pub use crm_storage::*;
}

/// The WhatsApp Cloud API channel: `CloudApiFactory` (the `whatsapp-cloud`
/// kind), `CloudApiMessenger`, webhook verification and parsing
/// (re-exports `crm-whatsapp`); with `whatsapp-web`, `whatsapp::web`.
#[cfg(any(feature = "whatsapp-cloud", feature = "whatsapp-web"))]
pub mod whatsapp {
    pub use crm_whatsapp::*;
}

/// Outbound webhooks: `Webhooks` (endpoints, deliveries, replay), the
/// `FanOut` and `Deliverer` workers, Standard Webhooks signing, the SSRF
/// guard, and `verify` for receivers (re-exports `crm-webhooks`).
#[cfg(feature = "webhooks")]
pub mod webhooks {
    pub use crm_webhooks::*;
}

/// The assistant: `OpenAiAssistant`, `Heuristic`, the `guard` wrappers,
/// `AssistantService` and the `Analyzer` worker (re-exports `crm-ai`).
#[cfg(feature = "ai")]
pub mod ai {
    pub use crm_ai::*;
}

/// Billing over Stripe: `StripeBilling` (the `Billing` port), `BillingService`,
/// the `BillingApplier` worker, `signature` and `form` (re-exports `crm-billing`).
#[cfg(feature = "stripe")]
pub mod billing {
    pub use crm_billing::*;
}

/// Connectors to other tools (re-exports `crm-connectors`); with `n8n`,
/// `connectors::n8n::N8n`, the `Workflows` port over a self-hosted n8n;
/// with `oauth`, `connectors::oauth` and `connectors::salesforce`; with
/// `sendgrid`/`smtp`, `slack` and `ga4`, the e-mail, notification and
/// analytics adapters.
#[cfg(any(
    feature = "n8n",
    feature = "oauth",
    feature = "sendgrid",
    feature = "smtp",
    feature = "slack",
    feature = "ga4"
))]
pub mod connectors {
    pub use crm_connectors::*;
}

/// The HTTP server: REST API, API keys, tenancy, rate limits, health,
/// OpenAPI (re-exports `crm-http`).
#[cfg(feature = "server")]
pub mod server {
    pub use crm_http::*;
}

/// The README's code blocks, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
