//! The automation engine's workers: the outbox consumer, the `wait`
//! continuation and the schedule tick.

use async_trait::async_trait;
use serde_json::json;

use super::{AUTOMATION_CONSUMER, CONTINUE_JOB, Engine, SCHEDULE_JOB, is_transient, schedule_job};
use crate::domain::automation::{RunStatus, SCHEDULED_EVENT, Trigger};
use crate::workers::{EventWorker, JobWorker, Outcome};
use crate::{AutomationId, AutomationRunId, Error, Event, EventFilter, EventId, EventType, Job, Result};

/// Maps an engine failure to the runtime's outcome: transient ones retry.
fn outcome(r: Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) if is_transient(&e) => Outcome::retry(e.to_string()),
        Err(e) => Outcome::Fail { error: e.to_string() },
    }
}

/// Outbox consumer [`AUTOMATION_CONSUMER`]: runs the account's enabled
/// rules triggered by each event (every event but `automation.*`).
#[derive(Debug, Clone)]
pub struct AutomationWorker {
    engine: Engine,
}

impl AutomationWorker {
    /// The worker over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[async_trait]
impl EventWorker for AutomationWorker {
    fn name(&self) -> &str {
        AUTOMATION_CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::all()
    }

    async fn handle(&self, event: &Event, attempt: u32, previous_error: Option<&str>) -> Outcome {
        if event.event_type.as_str().starts_with("automation.") {
            return Outcome::Done;
        }
        let redelivery = attempt > 1 || previous_error.is_some();
        outcome(self.engine.handle(event, redelivery).await.map(|_| ()))
    }
}

/// Job worker [`CONTINUE_JOB`]: resumes a run after its `wait`
/// (payload `{"run_id", "event"}`).
#[derive(Debug, Clone)]
pub struct ContinueWorker {
    engine: Engine,
}

impl ContinueWorker {
    /// The worker over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn run_job(&self, job: &Job) -> Result<()> {
        let account = job.account_id.ok_or_else(|| Error::validation("account_id", "the job names no account"))?;
        let run_id: AutomationRunId = serde_json::from_value(job.payload["run_id"].clone())
            .map_err(|e| Error::validation("run_id", e.to_string()))?;
        let event: Event = serde_json::from_value(job.payload["event"].clone())
            .map_err(|e| Error::validation("event", e.to_string()))?;
        let run = match self.engine.crm().store().get_run(account, run_id).await {
            Ok(run) => run,
            // The rule (and its runs) was deleted meanwhile.
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !matches!(run.status, RunStatus::Waiting | RunStatus::Running) {
            return Ok(());
        }
        self.engine.resume(run, &event).await.map(|_| ())
    }
}

#[async_trait]
impl JobWorker for ContinueWorker {
    fn kind(&self) -> &str {
        CONTINUE_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        outcome(self.run_job(job).await)
    }
}

/// Job worker [`SCHEDULE_JOB`]: a schedule-triggered rule's tick (payload
/// `{"automation_id", "chain"}`). It runs the rule with a synthetic
/// `automation.scheduled` event whose id is the job's (so a retried tick
/// runs once), then schedules the next tick. A tick whose rule was
/// deleted, disabled, edited or re-enabled since (`chain` differs from the
/// rule's `updated_at`) ends its chain.
#[derive(Debug, Clone)]
pub struct ScheduleWorker {
    engine: Engine,
}

impl ScheduleWorker {
    /// The worker over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn run_job(&self, job: &Job) -> Result<()> {
        let account = job.account_id.ok_or_else(|| Error::validation("account_id", "the job names no account"))?;
        let id: AutomationId = serde_json::from_value(job.payload["automation_id"].clone())
            .map_err(|e| Error::validation("automation_id", e.to_string()))?;
        let crm = self.engine.crm();
        let rule = match crm.get_automation(account, id).await {
            Ok(rule) => rule,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Trigger::Schedule { every_minutes } = rule.definition.trigger else { return Ok(()) };
        if !rule.enabled || job.payload["chain"].as_i64() != Some(rule.updated_at.timestamp_micros()) {
            return Ok(());
        }
        let event = Event {
            id: EventId::from_uuid(job.id.into_uuid()),
            account_id: account,
            event_type: EventType::custom(SCHEDULED_EVENT)?,
            payload: json!({ "automation_id": id, "scheduled_for": job.run_at }),
            occurred_at: job.run_at,
        };
        self.engine.handle_rule(&rule, &event).await?;
        let next = job.run_at + chrono::Duration::minutes(i64::from(every_minutes));
        let key = format!("{id}:{}", next.timestamp_micros());
        schedule_job(crm, SCHEDULE_JOB, account, job.payload.clone(), next, &key).await
    }
}

#[async_trait]
impl JobWorker for ScheduleWorker {
    fn kind(&self) -> &str {
        SCHEDULE_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        outcome(self.run_job(job).await)
    }
}
