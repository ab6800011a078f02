//! [`RecordingWorkflows`]: a workflow engine double that records triggers.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::ports::workflows::{MAX_WORKFLOW_PAGE, Workflow, WorkflowPage, Workflows, check_workflow_id};
use crate::{Error, Health, HealthCheck, Result};

#[derive(Debug, Default)]
struct Inner {
    workflows: BTreeMap<String, Workflow>,
    /// Webhook path → the workflow listening there while active.
    webhooks: BTreeMap<String, String>,
    triggered: Vec<(String, serde_json::Value)>,
}

/// A workflow engine in memory: workflows added by hand, triggers recorded
/// (`triggered()`), activation switched. Clones share the same data.
///
/// Like n8n, a trigger reaches a workflow only through its webhook path
/// ([`add_webhook`](Self::add_webhook)) while the workflow is active; any
/// other target is `NotFound`. A target may be the path or a URL ending in
/// `/webhook/<path>`.
#[derive(Debug, Clone, Default)]
pub struct RecordingWorkflows(Arc<Mutex<Inner>>);

impl RecordingWorkflows {
    /// An engine with no workflows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow without a webhook trigger.
    pub fn add(&self, id: &str, name: &str, active: bool) {
        let w =
            Workflow { id: id.into(), name: name.into(), active, tags: Vec::new(), created_at: None, updated_at: None };
        self.lock().workflows.insert(id.into(), w);
    }

    /// Adds a workflow whose webhook trigger listens on `path` while it is active.
    pub fn add_webhook(&self, id: &str, name: &str, active: bool, path: &str) {
        self.add(id, name, active);
        self.lock().webhooks.insert(path.trim_matches('/').to_owned(), id.to_owned());
    }

    /// Every trigger so far: the target and the event.
    pub fn triggered(&self) -> Vec<(String, serde_json::Value)> {
        self.lock().triggered.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn switch(&self, id: &str, active: bool) -> Result<Workflow> {
        check_workflow_id(id)?;
        let mut inner = self.lock();
        let w = inner.workflows.get_mut(id).ok_or(Error::not_found("workflow"))?;
        w.active = active;
        Ok(w.clone())
    }
}

#[async_trait]
impl Workflows for RecordingWorkflows {
    async fn trigger(&self, workflow: &str, event: &serde_json::Value) -> Result<serde_json::Value> {
        if workflow.trim().is_empty() {
            return Err(Error::validation("workflow", "must be a webhook path or URL"));
        }
        let path = match workflow.split_once("/webhook/") {
            Some((_, path)) if workflow.starts_with("http://") || workflow.starts_with("https://") => path,
            _ => workflow,
        };
        let mut inner = self.lock();
        let listening =
            inner.webhooks.get(path.trim_matches('/')).and_then(|id| inner.workflows.get(id)).is_some_and(|w| w.active);
        if !listening {
            return Err(Error::not_found("workflow"));
        }
        inner.triggered.push((workflow.to_owned(), event.clone()));
        Ok(serde_json::Value::Null)
    }

    async fn list_workflows(&self, cursor: Option<&str>, limit: u32) -> Result<WorkflowPage> {
        if !(1..=MAX_WORKFLOW_PAGE).contains(&limit) {
            return Err(Error::validation("limit", format!("must be between 1 and {MAX_WORKFLOW_PAGE}")));
        }
        let inner = self.lock();
        let mut items: Vec<Workflow> =
            inner.workflows.values().filter(|w| cursor.is_none_or(|c| w.id.as_str() > c)).cloned().collect();
        let next_cursor = (items.len() > limit as usize).then(|| items[limit as usize - 1].id.clone());
        items.truncate(limit as usize);
        Ok(WorkflowPage { items, next_cursor })
    }

    async fn get_workflow(&self, id: &str) -> Result<Workflow> {
        check_workflow_id(id)?;
        self.lock().workflows.get(id).cloned().ok_or(Error::not_found("workflow"))
    }

    async fn activate(&self, id: &str) -> Result<Workflow> {
        self.switch(id, true)
    }

    async fn deactivate(&self, id: &str) -> Result<Workflow> {
        self.switch(id, false)
    }

    async fn export_workflow(&self, id: &str) -> Result<serde_json::Value> {
        let w = self.get_workflow(id).await?;
        let nodes: Vec<serde_json::Value> = self
            .lock()
            .webhooks
            .iter()
            .filter(|(_, wid)| **wid == w.id)
            .map(|(path, _)| {
                serde_json::json!({ "name": "webhook", "type": "n8n-nodes-base.webhook", "parameters": { "path": path } })
            })
            .collect();
        Ok(serde_json::json!({ "id": w.id, "name": w.name, "active": w.active, "nodes": nodes, "connections": {} }))
    }
}

#[async_trait]
impl HealthCheck for RecordingWorkflows {
    fn name(&self) -> &str {
        "n8n"
    }

    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}
