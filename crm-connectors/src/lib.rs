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
//! E-mail, Slack, GA4 and Salesforce land here as their issues do.
#![warn(missing_docs)]

#[cfg(feature = "n8n")]
pub mod n8n;
