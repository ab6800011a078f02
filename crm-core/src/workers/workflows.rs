//! [`WorkflowTrigger`]: the job worker that triggers an external workflow
//! (n8n) with an event, scheduled by automation rules.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use super::{Backoff, JobWorker, Outcome, WorkerOptions};
use crate::ports::workflows::Workflows;
use crate::{Error, Job};

/// The job kind: payload `{"workflow": "<webhook path or URL>", "event": {...}}`.
pub const WORKFLOW_TRIGGER_JOB: &str = "workflow.trigger";

/// Triggers workflows: the job worker of [`WORKFLOW_TRIGGER_JOB`]. A
/// transient failure (429, 5xx, timeout) is retried after the backoff or
/// the engine's `Retry-After`; so is a workflow the engine does not know
/// (n8n answers 404 while a workflow is inactive or still activating), up
/// to the attempts; a bad payload or a refused key is dead-lettered at
/// once (replayable).
#[derive(Debug, Clone)]
pub struct WorkflowTrigger {
    workflows: Arc<dyn Workflows>,
}

impl WorkflowTrigger {
    /// A trigger over `workflows`.
    pub fn new(workflows: Arc<dyn Workflows>) -> Self {
        Self { workflows }
    }

    /// Options that suit it: a few attempts over about an hour.
    pub fn options() -> WorkerOptions {
        WorkerOptions {
            batch: 16,
            concurrency: 8,
            max_attempts: 10,
            backoff: Backoff { base: Duration::from_secs(5), max: Duration::from_secs(900), ..Backoff::default() },
            ..WorkerOptions::default()
        }
    }
}

#[async_trait]
impl JobWorker for WorkflowTrigger {
    fn kind(&self) -> &str {
        WORKFLOW_TRIGGER_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let Some(workflow) = job.payload["workflow"].as_str() else {
            return Outcome::Fail { error: "the payload names no workflow".into() };
        };
        let event = &job.payload["event"];
        if !event.is_object() {
            return Outcome::Fail { error: "the payload's event is not a JSON object".into() };
        }
        match self.workflows.trigger(workflow, event).await {
            Ok(_) => Outcome::Done,
            Err(Error::Provider { transient: true, retry_after, message, .. }) => {
                Outcome::Retry { error: message, after: retry_after }
            }
            Err(Error::RateLimited { retry_after }) => {
                Outcome::Retry { error: "the workflow engine asked to slow down".into(), after: Some(retry_after) }
            }
            Err(e) if e.is_transient() => Outcome::retry(e.to_string()),
            Err(Error::NotFound { .. }) => Outcome::Retry {
                error: format!("{workflow}: the engine has no such active workflow (yet)"),
                after: Some(Duration::from_secs(2)),
            },
            Err(e) => Outcome::Fail { error: e.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::RecordingWorkflows;
    use serde_json::json;

    fn job(payload: serde_json::Value) -> Job {
        Job::new(WORKFLOW_TRIGGER_JOB, None, payload, chrono::Utc::now(), chrono::Utc::now()).unwrap()
    }

    #[tokio::test]
    async fn triggers_the_named_workflow_with_the_event() {
        let engine = RecordingWorkflows::new();
        engine.add_webhook("wf1AbCdEfGhIjKlM", "Lead qualification", true, "crm-lead");
        let w = WorkflowTrigger::new(Arc::new(engine.clone()));
        let event = json!({ "type": "contact.created", "data": { "id": "c1" } });
        assert_eq!(w.run(&job(json!({ "workflow": "crm-lead", "event": event }))).await, Outcome::Done);
        assert_eq!(engine.triggered(), vec![("crm-lead".to_owned(), event)]);
        assert!(matches!(w.run(&job(json!({ "event": {} }))).await, Outcome::Fail { .. }));
        assert!(matches!(w.run(&job(json!({ "workflow": "x", "event": 3 }))).await, Outcome::Fail { .. }));
        assert!(matches!(w.run(&job(json!({ "workflow": " ", "event": {} }))).await, Outcome::Fail { .. }));
    }
}
