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
//!
//! E-mail, Slack and GA4 land here as their issues do.
#![warn(missing_docs)]

#[cfg(feature = "n8n")]
pub mod n8n;
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "salesforce")]
pub mod salesforce;
