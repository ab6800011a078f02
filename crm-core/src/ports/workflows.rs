//! The `Workflows` port: an external workflow engine (n8n) that crm
//! triggers with events and whose workflows it lists, switches on and off,
//! and exports for backup.
//!
//! The engine is one instance for the whole server (configured by its
//! operator), not per account: its routes are for account owners.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

use crate::{Error, HealthCheck, Result};

/// A workflow as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    /// The engine's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether its triggers are live.
    pub active: bool,
    /// Tags given in the engine.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Created (when the engine says).
    pub created_at: Option<DateTime<Utc>>,
    /// Last changed (when the engine says).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A page of workflows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowPage {
    /// The workflows.
    pub items: Vec<Workflow>,
    /// The engine's cursor for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Most workflows per page.
pub const MAX_WORKFLOW_PAGE: u32 = 250;

/// Checks a workflow id: 1–64 of `A-Za-z0-9_-` (n8n's ids are 16
/// alphanumerics), so it is safe in a URL path. [`Error::Validation`] otherwise.
pub fn check_workflow_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !ok {
        return Err(Error::validation("id", "must be 1 to 64 of A-Z, a-z, 0-9, _ and -"));
    }
    Ok(())
}

/// A workflow engine.
///
/// Contract (the n8n adapter's tests and the recording double follow it):
/// - `trigger` posts `event` (JSON) to the workflow's webhook — `workflow`
///   is the webhook path (`crm-lead`, resolved against the engine's webhook
///   base URL) or an absolute `http(s)` URL on the engine's host — signed
///   the Standard Webhooks way, and returns what the webhook answered
///   (JSON, or the text as a JSON string; `null` when empty).
///   [`Error::Validation`] for a target that is neither;
///   [`Error::NotFound`] when no active workflow listens there;
///   [`Error::Provider`] (transient for 429, 5xx and timeouts, with
///   `retry_after` when the engine said) otherwise.
/// - The management methods speak to the engine's API with its key;
///   [`Error::NotFound`] for an unknown id, [`Error::Validation`] for an id
///   [`check_workflow_id`] refuses, [`Error::Config`] when the key is
///   refused (401/403), [`Error::Provider`] for the rest.
/// - `export_workflow` returns the engine's whole definition (nodes,
///   connections, settings), re-importable into the engine.
/// - Credentials never appear in errors or logs.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::workflows::Workflows;
/// use crm_core::memory::RecordingWorkflows;
/// let engine = RecordingWorkflows::new();
/// engine.add_webhook("wf1", "Lead qualification", false, "crm-lead");
/// let event = serde_json::json!({ "type": "contact.created" });
/// assert!(engine.trigger("crm-lead", &event).await.is_err(), "inactive: nobody listens");
/// assert!(engine.activate("wf1").await?.active);
/// engine.trigger("crm-lead", &event).await?;
/// assert_eq!(engine.triggered()[0].0, "crm-lead");
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Workflows: HealthCheck + Send + Sync + Debug + 'static {
    /// Triggers a workflow through its webhook with `event`.
    async fn trigger(&self, workflow: &str, event: &serde_json::Value) -> Result<serde_json::Value>;

    /// One page of workflows (`limit` 1..=[`MAX_WORKFLOW_PAGE`]) after `cursor`.
    async fn list_workflows(&self, cursor: Option<&str>, limit: u32) -> Result<WorkflowPage>;

    /// One workflow.
    async fn get_workflow(&self, id: &str) -> Result<Workflow>;

    /// Switches a workflow's triggers on; returns it.
    async fn activate(&self, id: &str) -> Result<Workflow>;

    /// Switches a workflow's triggers off; returns it.
    async fn deactivate(&self, id: &str) -> Result<Workflow>;

    /// The workflow's whole definition, for backup.
    async fn export_workflow(&self, id: &str) -> Result<serde_json::Value>;
}
