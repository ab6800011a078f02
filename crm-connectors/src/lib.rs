//! # crm-connectors
//!
//! Adapters that connect crm to other tools, one feature each. Today:
//!
//! - `n8n`: [`n8n::N8n`], the [`Workflows`](crm_core::ports::workflows::Workflows)
//!   port over a self-hosted n8n — trigger a workflow through its webhook
//!   with an event (signed the Standard Webhooks way), list, get, activate,
//!   deactivate and export workflows through its REST API
//!   (`X-N8N-API-KEY`), and its `/healthz` as a health probe.
//!
//! - `oauth`: [`oauth::OAuthHttpClient`], the
//!   [`OAuthClient`](crm_core::ports::oauth::OAuthClient) port for Google and
//!   Salesforce (authorization code with PKCE, refresh, revocation).
//! - `salesforce`: [`salesforce::SalesforceCrm`], the
//!   [`ExternalCrm`](crm_core::ports::external_crm::ExternalCrm) port over
//!   Salesforce's REST API on an account's OAuth grant.
//! - `sendgrid`: [`sendgrid::SendGrid`], the
//!   [`Mailer`](crm_core::ports::connectors::Mailer) port over SendGrid's v3
//!   Mail Send API, and [`sendgrid::EventWebhookVerifier`] for its signed
//!   event webhook (bounces, opens, clicks, …).
//! - `smtp`: [`smtp::Smtp`], the `Mailer` port over any SMTP server (lettre).
//! - `slack`: [`slack::Slack`], the
//!   [`Notifier`](crm_core::ports::connectors::Notifier) port over an
//!   incoming webhook or `chat.postMessage`.
//! - `ga4`: [`ga4::Ga4`], the [`Analytics`](crm_core::ports::connectors::Analytics)
//!   port over GA4's Measurement Protocol (with its debug validation).
//!
//! Each connector adapter also has a
//! [`ConnectorFactory`](crm_core::ports::connectors::ConnectorFactory) that
//! builds it from an account's connection, for the server to register.
#![warn(missing_docs)]

#[cfg(any(feature = "sendgrid", feature = "slack", feature = "ga4"))]
mod http;

#[cfg(feature = "ga4")]
pub mod ga4;
#[cfg(feature = "n8n")]
pub mod n8n;

/// `client`, or a new one with crm's user agent and a 5 s connect timeout.
#[cfg(any(feature = "n8n", feature = "oauth"))]
fn http_client(client: Option<reqwest::Client>) -> crm_core::Result<reqwest::Client> {
    match client {
        Some(c) => Ok(c),
        None => reqwest::Client::builder()
            .user_agent(concat!("crm-connectors/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| crm_core::Error::Config { message: format!("cannot build the HTTP client: {e}") }),
    }
}
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "salesforce")]
pub mod salesforce;
#[cfg(feature = "sendgrid")]
pub mod sendgrid;
#[cfg(feature = "slack")]
pub mod slack;
#[cfg(feature = "smtp")]
pub mod smtp;
