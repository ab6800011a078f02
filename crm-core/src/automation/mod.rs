//! The automation engine: evaluates an account's enabled rules for each
//! event and executes their actions, recording each run.
//!
//! - [`AutomationWorker`] (outbox consumer [`AUTOMATION_CONSUMER`]) runs the
//!   rules whose trigger is the event's type; [`ContinueWorker`] (job
//!   [`CONTINUE_JOB`]) resumes runs after a `wait`; [`ScheduleWorker`] (job
//!   [`SCHEDULE_JOB`]) runs schedule-triggered rules.
//! - A run is unique per (rule, event) in the store, and saved after every
//!   action with the index of the next one. A redelivered event finds its
//!   run: a finished or waiting run is left alone; a run left `running` (its
//!   worker died) resumes at the action it had reached. Each action is
//!   idempotent on its own (tags and stages by state, scores by a cause
//!   unique per contact, messages by a client reference, jobs by a unique
//!   key), so a resumed action does not repeat its effect.
//! - Loop bound: a rule that has run [`LoopBound::max_runs`] times for a
//!   contact within [`LoopBound::window`] (its own actions triggering it
//!   again, or a flood) records a `loop_stopped` run saying so, runs no
//!   action, and appends `automation.run_failed`.
//! - Lead scoring: [`ScoringWorker`] and [`DecayWorker`] (see `scoring`).
//!
//! Jobs for other crates (the contract): `sequence.enrol`
//! `{"sequence_id", "contact_id", "source": {"automation_id", "run_id"}}`,
//! `sequence.stop` `{"sequence_id" | null, "contact_id", "reason": "automation", "source": {"automation_id", "run_id"}}`,
//! `workflow.trigger` `{"workflow", "event"}`, `salesforce.push` `{"contact_id"}` and [`WEBHOOK_JOB`]
//! `{"target", "event"}`, each with the unique key `automation:<run id>:<action index>`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

use crate::domain::automation::{
    Action, Automation, AutomationRun, Condition, RuleDefinition, RunStatus, StepOutcome, compile_regex,
};
use crate::domain::scoring::contains_any_word;
use crate::{
    AccountId, ChannelId, Contact, ContactId, ContactPatch, Crm, Error, Event, EventType, Job, MessageContent,
    MessageId, PageRequest, Result, SendRequest,
};

mod scoring;
mod workers;

pub use scoring::{DECAY_JOB, DecayWorker, SCORING_CONSUMER, ScoringWorker};
pub use workers::{AutomationWorker, ContinueWorker, ScheduleWorker};

/// The automation engine's outbox consumer name.
pub const AUTOMATION_CONSUMER: &str = "automation";
/// Job kind: resume a run after a `wait`.
pub const CONTINUE_JOB: &str = "automation.continue";
/// Job kind: a schedule-triggered rule's tick.
pub const SCHEDULE_JOB: &str = "automation.schedule";
/// Job kind: a `call_webhook` action's signed POST (run by crm-webhooks).
pub const WEBHOOK_JOB: &str = "automation.webhook";
/// Job kind: enrol a contact in a sequence (run by the sequences worker).
pub const SEQUENCE_ENROL_JOB: &str = "sequence.enrol";
/// Job kind: stop a contact's sequence (run by the sequences worker).
pub const SEQUENCE_STOP_JOB: &str = "sequence.stop";
/// Job kind: trigger an n8n workflow (run by the n8n adapter).
pub const WORKFLOW_TRIGGER_JOB: &str = "workflow.trigger";

/// How often one rule may run for one contact before it is taken for a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopBound {
    /// Runs allowed within `window`.
    pub max_runs: u32,
    /// The window.
    pub window: Duration,
}

impl Default for LoopBound {
    /// 10 runs per minute.
    fn default() -> Self {
        LoopBound { max_runs: 10, window: Duration::from_secs(60) }
    }
}

/// Schedules a job with a unique key; a job already holding the key counts
/// as scheduled (a retried run schedules once).
pub(crate) async fn schedule_job(
    crm: &Crm,
    kind: &str,
    account: AccountId,
    payload: Value,
    at: DateTime<Utc>,
    key: &str,
) -> Result<()> {
    let job = Job::new(kind, Some(account), payload, at, crm.clock().now())?.with_unique_key(key)?;
    match crm.store().schedule_job(&job).await {
        Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One condition's verdict in a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionCheck {
    /// Its index in the rule.
    pub index: u32,
    /// Its `type`.
    pub condition: String,
    /// Whether it held.
    pub matched: bool,
    /// Why.
    pub detail: String,
}

/// An action a run would execute, with its rendered arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedAction {
    /// Its index in the rule.
    pub index: u32,
    /// Its `type`.
    pub action: String,
    /// What it would do (rendered text, job payloads, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub arguments: Value,
}

/// What a rule would do for an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    /// The rule.
    pub automation_id: crate::AutomationId,
    /// The version evaluated.
    pub version: u32,
    /// Whether the trigger fires on this event type.
    pub triggered: bool,
    /// The contact the event names.
    pub contact_id: Option<ContactId>,
    /// Whether every condition held (and the trigger fires).
    pub matched: bool,
    /// Each condition's verdict.
    pub conditions: Vec<ConditionCheck>,
    /// The actions that would run, in order (empty when not matched).
    pub actions: Vec<PlannedAction>,
}

/// What the engine knows about an event's message.
#[derive(Debug, Clone, Default)]
struct MessageFacts {
    id: Option<MessageId>,
    text: String,
    channel_id: Option<ChannelId>,
}

/// The contact and message an event is about.
#[derive(Debug, Clone, Default)]
struct Subject {
    contact: Option<Contact>,
    message: Option<MessageFacts>,
}

/// The contact an event names: `contact_id`, `message.contact_id`,
/// `contact.id`, or (for `contact.*` events) the payload's `id`.
pub fn contact_of(event: &Event) -> Option<ContactId> {
    let p = &event.payload;
    let id = p
        .get("contact_id")
        .or_else(|| p.get("message").and_then(|m| m.get("contact_id")))
        .or_else(|| p.get("contact").and_then(|c| c.get("id")))
        .or_else(|| event.event_type.as_str().starts_with("contact.").then(|| p.get("id")).flatten())?;
    id.as_str()?.parse().ok()
}

fn message_of(event: &Event) -> Option<MessageFacts> {
    let m = event.payload.get("message")?;
    let content: Option<MessageContent> = m.get("content").and_then(|c| serde_json::from_value(c.clone()).ok());
    Some(MessageFacts {
        id: m.get("id").and_then(Value::as_str).and_then(|s| s.parse().ok()),
        text: content.map(|c| c.preview()).unwrap_or_default(),
        channel_id: m.get("channel_id").and_then(Value::as_str).and_then(|s| s.parse().ok()),
    })
}

/// How one action ended.
enum Step {
    Done(String),
    Waiting(String),
    Failed(String),
}

/// Most compiled regexes an engine keeps; past it the cache starts over.
const MAX_CACHED_REGEXES: usize = 1000;

/// The automation engine over a [`Crm`].
#[derive(Debug, Clone)]
pub struct Engine {
    crm: Crm,
    bound: LoopBound,
    regexes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>>,
}

impl Engine {
    /// An engine with the default [`LoopBound`].
    pub fn new(crm: Crm) -> Self {
        Engine { crm, bound: LoopBound::default(), regexes: Default::default() }
    }

    /// With this loop bound.
    pub fn with_loop_bound(mut self, bound: LoopBound) -> Self {
        self.bound = bound;
        self
    }

    /// The service.
    pub fn crm(&self) -> &Crm {
        &self.crm
    }

    async fn subject(&self, event: &Event) -> Result<Subject> {
        let contact = match contact_of(event) {
            Some(id) => match self.crm.get_contact(event.account_id, id).await {
                Ok(c) => Some(c),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(Subject { contact, message: message_of(event) })
    }

    async fn is_first_message(&self, event: &Event, subject: &Subject) -> Result<bool> {
        let (Some(c), Some(m)) = (&subject.contact, &subject.message) else { return Ok(false) };
        let Some(id) = m.id else { return Ok(false) };
        let page = self.crm.list_thread(event.account_id, c.id, &PageRequest::first(1)?).await?;
        Ok(page.items.first().is_some_and(|first| first.id == id))
    }

    /// Whether `text` matches `source` (compiled once per engine).
    fn regex_match(&self, source: &str, text: &str) -> Result<bool> {
        let mut cache = self.regexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = cache.get(source) {
            return Ok(r.is_match(text));
        }
        let r = compile_regex(source)?;
        let matched = r.is_match(text);
        if cache.len() >= MAX_CACHED_REGEXES {
            cache.clear();
        }
        cache.insert(source.to_owned(), r);
        Ok(matched)
    }

    /// Each condition's verdict for `event`; with `all` false, stops after
    /// the first that does not hold (what a run needs).
    async fn check(
        &self,
        def: &RuleDefinition,
        event: &Event,
        subject: &Subject,
        all: bool,
    ) -> Result<Vec<ConditionCheck>> {
        let mut out = Vec::with_capacity(def.conditions.len());
        let contact = subject.contact.as_ref();
        let no_contact = || (false, "the event names no contact".to_owned());
        for (i, c) in def.conditions.iter().enumerate() {
            let (kind, (matched, detail)) = match c {
                Condition::HasTags { tags } => (
                    "has_tags",
                    match contact {
                        Some(ct) => {
                            let ok = tags.iter().all(|t| ct.tags.iter().any(|x| x.as_str() == t.trim().to_lowercase()));
                            (ok, format!("contact tags: {}", tag_list(ct)))
                        }
                        None => no_contact(),
                    },
                ),
                Condition::LacksTags { tags } => (
                    "lacks_tags",
                    match contact {
                        Some(ct) => {
                            let ok =
                                !tags.iter().any(|t| ct.tags.iter().any(|x| x.as_str() == t.trim().to_lowercase()));
                            (ok, format!("contact tags: {}", tag_list(ct)))
                        }
                        None => no_contact(),
                    },
                ),
                Condition::Stage { stages } => (
                    "stage",
                    match contact {
                        Some(ct) => (stages.contains(&ct.lead_stage), format!("stage {}", ct.lead_stage.as_str())),
                        None => no_contact(),
                    },
                ),
                Condition::Score { min, max } => (
                    "score",
                    match contact {
                        Some(ct) => ((*min..=*max).contains(&ct.lead_score), format!("score {}", ct.lead_score)),
                        None => no_contact(),
                    },
                ),
                Condition::Channel { channel_ids } => {
                    let ch = subject.message.as_ref().and_then(|m| m.channel_id);
                    (
                        "channel",
                        match ch {
                            Some(ch) => (channel_ids.contains(&ch), format!("channel {ch}")),
                            None => (false, "the event names no channel".to_owned()),
                        },
                    )
                }
                Condition::Text { words, regex } => {
                    let text = subject.message.as_ref().map(|m| m.text.as_str()).unwrap_or_default();
                    let by_words = words.is_empty() || contains_any_word(text, words);
                    let by_regex = match regex {
                        Some(r) => self.regex_match(r, text)?,
                        None => true,
                    };
                    ("text", (by_words && by_regex, format!("text of {} characters", text.chars().count())))
                }
                Condition::BusinessHours { hours, inside } => {
                    let zone = self.crm.account_zone(event.account_id).await?;
                    let open = hours.contains_in(event.occurred_at, zone);
                    (
                        "business_hours",
                        (open == *inside, format!("{} business hours", if open { "inside" } else { "outside" })),
                    )
                }
                Condition::FirstMessage => {
                    let first = self.is_first_message(event, subject).await?;
                    (
                        "first_message",
                        (first, if first { "first message of the thread" } else { "not the first message" }.to_owned()),
                    )
                }
            };
            out.push(ConditionCheck { index: i as u32, condition: kind.to_owned(), matched, detail });
            if !matched && !all {
                break;
            }
        }
        Ok(out)
    }

    /// An action's rendered arguments (what the dry run shows; what a run uses).
    async fn render(&self, action: &Action, event: &Event, subject: &Subject, source: &Value) -> Result<Value> {
        let contact_id = subject.contact.as_ref().map(|c| c.id);
        Ok(match action {
            Action::SendText { text } => {
                let vars = subject.contact.as_ref().map(crate::service::contact_variables).unwrap_or_default();
                json!({ "text": crate::render_lenient(text, &vars, crate::domain::automation::MAX_ACTION_TEXT)? })
            }
            Action::SendTemplate { name, language, variables } => match contact_id {
                Some(c) => {
                    let content = self
                        .crm
                        .render_template_for(
                            event.account_id,
                            c,
                            name,
                            language,
                            variables.clone().into_iter().collect(),
                        )
                        .await?;
                    json!({ "content": content })
                }
                None => json!({ "name": name, "language": language, "variables": variables }),
            },
            Action::Wait { seconds } => {
                json!({ "seconds": seconds, "until": self.crm.clock().now() + chrono::Duration::seconds(*seconds as i64) })
            }
            Action::StartSequence { sequence_id } => json!({
                "kind": SEQUENCE_ENROL_JOB,
                "payload": { "sequence_id": sequence_id, "contact_id": contact_id, "source": source }
            }),
            Action::StopSequence { sequence_id } => json!({
                "kind": SEQUENCE_STOP_JOB,
                "payload": { "sequence_id": sequence_id, "contact_id": contact_id, "reason": "automation", "source": source }
            }),
            Action::CallWebhook { target } => {
                json!({ "kind": WEBHOOK_JOB, "payload": { "target": target, "event": event } })
            }
            Action::CallN8nWorkflow { workflow } => {
                json!({ "kind": WORKFLOW_TRIGGER_JOB, "payload": { "workflow": workflow, "event": event } })
            }
            Action::SyncToSalesforce => json!({
                "kind": crate::ports::external_crm::EXTERNAL_CRM_PUSH_JOB,
                "payload": { "contact_id": contact_id }
            }),
            Action::SendEmail { .. } | Action::NotifySlack { .. } | Action::TrackEvent { .. } => {
                connector_job(action, event, subject)?
            }
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        })
    }

    /// What `rule`'s current version would do for `event`, doing nothing.
    pub async fn dry_run(&self, rule: &Automation, event: &Event) -> Result<DryRun> {
        let def = &rule.definition;
        let triggered = def.trigger.event_type() == event.event_type.as_str();
        let subject = self.subject(event).await?;
        let conditions = self.check(def, event, &subject, true).await?;
        let matched = triggered && conditions.iter().all(|c| c.matched);
        let mut actions = Vec::new();
        if matched {
            for (i, a) in def.actions.iter().enumerate() {
                let source = json!({ "automation_id": rule.id, "run_id": null });
                let arguments = match self.render(a, event, &subject, &source).await {
                    Ok(v) => v,
                    Err(e) => json!({ "error": e.to_string() }),
                };
                actions.push(PlannedAction { index: i as u32, action: a.kind().to_owned(), arguments });
            }
        }
        Ok(DryRun {
            automation_id: rule.id,
            version: rule.version,
            triggered,
            contact_id: subject.contact.map(|c| c.id),
            matched,
            conditions,
            actions,
        })
    }

    /// Runs every enabled rule of the event's account whose trigger is the
    /// event's type; returns the runs it started, resumed or found.
    pub async fn handle_event(&self, event: &Event) -> Result<Vec<AutomationRun>> {
        self.handle(event, true).await
    }

    /// [`Engine::handle_event`]; `redelivery: false` (the event's first
    /// delivery) skips looking for runs left by an earlier delivery before
    /// evaluating each rule (the unique run per (rule, event) still holds).
    pub async fn handle(&self, event: &Event, redelivery: bool) -> Result<Vec<AutomationRun>> {
        let rules = self.crm.store().enabled_automations(event.account_id, event.event_type.as_str()).await?;
        let mut runs = Vec::new();
        if rules.is_empty() {
            return Ok(runs);
        }
        let subject = self.subject(event).await?;
        for rule in &rules {
            if let Some(run) = self.run_rule(rule, event, &subject, redelivery).await? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// Runs one rule for `event` (the schedule tick's path).
    pub(crate) async fn handle_rule(&self, rule: &Automation, event: &Event) -> Result<Option<AutomationRun>> {
        let subject = self.subject(event).await?;
        self.run_rule(rule, event, &subject, true).await
    }

    async fn run_rule(
        &self,
        rule: &Automation,
        event: &Event,
        subject: &Subject,
        redelivery: bool,
    ) -> Result<Option<AutomationRun>> {
        let store = self.crm.store();
        if redelivery && let Some(run) = store.find_run(event.account_id, rule.id, event.id).await? {
            return self.resume_if_running(run, event).await;
        }
        let checks = self.check(&rule.definition, event, subject, false).await?;
        if !checks.iter().all(|c| c.matched) {
            return Ok(None);
        }
        let now = self.crm.clock().now();
        let contact_id = subject.contact.as_ref().map(|c| c.id);
        let mut run = AutomationRun::start(rule, event.id, contact_id, now);
        if let Some(contact) = contact_id {
            let since = now - chrono::Duration::from_std(self.bound.window).unwrap_or(chrono::Duration::MAX);
            let recent = store.count_recent_runs(event.account_id, rule.id, contact, since).await?;
            if recent >= u64::from(self.bound.max_runs) {
                run.status = RunStatus::LoopStopped;
                run.reason = Some(format!(
                    "loop bound: this rule already ran {recent} times for this contact within {} s \
                     (at most {}); no action ran",
                    self.bound.window.as_secs(),
                    self.bound.max_runs
                ));
                let (stored, created) = store.start_run(&run).await?;
                if created {
                    store.save_run(&stored, Some(&self.failed_event(&stored))).await?;
                }
                return Ok(Some(stored));
            }
        }
        let (stored, created) = store.start_run(&run).await?;
        if !created {
            return self.resume_if_running(stored, event).await;
        }
        self.execute(stored, &rule.definition, event, subject).await.map(Some)
    }

    async fn resume_if_running(&self, run: AutomationRun, event: &Event) -> Result<Option<AutomationRun>> {
        if run.status != RunStatus::Running {
            return Ok(Some(run));
        }
        self.resume(run, event).await.map(Some)
    }

    /// Continues a run at its `next_step` with the version it started with.
    pub(crate) async fn resume(&self, mut run: AutomationRun, event: &Event) -> Result<AutomationRun> {
        let version = self.crm.store().get_automation_version(run.account_id, run.automation_id, run.version).await?;
        let subject = self.subject(event).await?;
        run.status = RunStatus::Running;
        self.execute(run, &version.definition, event, &subject).await
    }

    fn failed_event(&self, run: &AutomationRun) -> Event {
        Event::new(run.account_id, EventType::AUTOMATION_RUN_FAILED, run, self.crm.clock().now())
    }

    async fn execute(
        &self,
        mut run: AutomationRun,
        def: &RuleDefinition,
        event: &Event,
        subject: &Subject,
    ) -> Result<AutomationRun> {
        let store = self.crm.store();
        while let Some(action) = def.actions.get(run.next_step as usize) {
            let index = run.next_step;
            let started = self.crm.clock().now();
            let clock = std::time::Instant::now();
            let step = self.step(&run, index, action, event, subject).await?;
            let (outcome, detail) = match &step {
                Step::Done(d) => ("done", d),
                Step::Waiting(d) => ("waiting", d),
                Step::Failed(d) => ("failed", d),
            };
            run.steps.retain(|s| s.index != index);
            run.steps.push(StepOutcome {
                index,
                action: action.kind().to_owned(),
                outcome: outcome.to_owned(),
                detail: detail.clone(),
                started_at: started,
                duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            run.updated_at = self.crm.clock().now();
            match step {
                Step::Done(_) => {
                    run.next_step += 1;
                    store.save_run(&run, None).await?;
                }
                Step::Waiting(_) => {
                    run.next_step += 1;
                    run.status = RunStatus::Waiting;
                    store.save_run(&run, None).await?;
                    return Ok(run);
                }
                Step::Failed(reason) => {
                    run.status = RunStatus::Failed;
                    run.reason = Some(format!("action {index} ({}) failed: {reason}", action.kind()));
                    store.save_run(&run, Some(&self.failed_event(&run))).await?;
                    return Ok(run);
                }
            }
        }
        run.status = RunStatus::Completed;
        run.updated_at = self.crm.clock().now();
        store.save_run(&run, None).await?;
        Ok(run)
    }

    /// Executes one action. A transient failure is an `Err` (the event or
    /// job is retried and the run resumes here); a permanent one is `Failed`.
    async fn step(
        &self,
        run: &AutomationRun,
        index: u32,
        action: &Action,
        event: &Event,
        subject: &Subject,
    ) -> Result<Step> {
        let key = format!("automation:{}:{index}", run.id);
        match self.try_step(run, action, event, subject, &key).await {
            Ok(step) => Ok(step),
            Err(e) if is_transient(&e) => Err(e),
            Err(e) => Ok(Step::Failed(e.to_string())),
        }
    }

    async fn try_step(
        &self,
        run: &AutomationRun,
        action: &Action,
        event: &Event,
        subject: &Subject,
        key: &str,
    ) -> Result<Step> {
        let account = run.account_id;
        let crm = &self.crm;
        let needs_contact =
            || run.contact_id.ok_or_else(|| Error::validation("contact_id", "the triggering event names no contact"));
        let now = crm.clock().now();
        let source = json!({ "automation_id": run.automation_id, "run_id": run.id });
        Ok(match action {
            Action::AddTag { tag } => {
                let c = crm.tag_contact(account, needs_contact()?, std::slice::from_ref(tag)).await?;
                Step::Done(format!("tagged {tag}; tags: {}", tag_list(&c)))
            }
            Action::RemoveTag { tag } => {
                let c = crm.untag_contact(account, needs_contact()?, std::slice::from_ref(tag)).await?;
                Step::Done(format!("untagged {tag}; tags: {}", tag_list(&c)))
            }
            Action::SetStage { stage } => {
                let patch = ContactPatch { lead_stage: Some(*stage), ..ContactPatch::default() };
                crm.update_contact(account, needs_contact()?, patch).await?;
                Step::Done(format!("stage {}", stage.as_str()))
            }
            Action::AdjustScore { by } => {
                let change = crm
                    .change_score(account, needs_contact()?, i32::from(*by), "automation", key, Some(event.id))
                    .await?;
                Step::Done(match change {
                    Some(c) => format!("score {} -> {}", c.old_score, c.new_score),
                    None => "score unchanged".to_owned(),
                })
            }
            Action::SendText { .. } | Action::SendTemplate { .. } => {
                let contact = needs_contact()?;
                let args = self.render(action, event, subject, &source).await?;
                let content = match action {
                    Action::SendText { .. } => MessageContent::text(args["text"].as_str().unwrap_or_default()),
                    _ => serde_json::from_value(args["content"].clone())
                        .map_err(|e| Error::validation("content", e.to_string()))?,
                };
                let queued = crm.queue_message(account, SendRequest::new(contact, content).reference(key)).await?;
                Step::Done(format!("message {} queued", queued.message.id))
            }
            Action::Wait { seconds } => {
                let at = now + chrono::Duration::seconds(i64::try_from(*seconds).unwrap_or(i64::MAX / 2));
                let payload = json!({ "run_id": run.id, "event": event });
                schedule_job(crm, CONTINUE_JOB, account, payload, at, key).await?;
                Step::Waiting(format!("continues at {}", at.to_rfc3339()))
            }
            Action::StartSequence { .. }
            | Action::StopSequence { .. }
            | Action::CallWebhook { .. }
            | Action::CallN8nWorkflow { .. }
            | Action::SyncToSalesforce
            | Action::SendEmail { .. }
            | Action::NotifySlack { .. }
            | Action::TrackEvent { .. } => {
                if matches!(
                    action,
                    Action::StartSequence { .. } | Action::StopSequence { .. } | Action::SyncToSalesforce
                ) {
                    needs_contact()?;
                }
                let args = self.render(action, event, subject, &source).await?;
                let kind = args["kind"].as_str().unwrap_or_default().to_owned();
                schedule_job(crm, &kind, account, args["payload"].clone(), now, key).await?;
                Step::Done(format!("job {kind} scheduled"))
            }
            Action::AiReply => {
                return Err(Error::validation("type", format!("{} is not available yet", action.kind())));
            }
        })
    }
}

/// The job (`{"kind", "payload"}`) of a connector action, checked as the
/// scheduling functions of [`crate::workers::connectors`] check it.
fn connector_job(action: &Action, event: &Event, subject: &Subject) -> Result<Value> {
    use crate::domain::connection::ConnectionKind;
    use crate::ports::connectors::{AnalyticsEvent, AnalyticsUser, MailDraft, Mailbox, Notification};
    use crate::workers::connectors::{ANALYTICS_JOB, AnalyticsJob, MAIL_SEND_JOB, MailJob, NOTIFY_JOB, NotifyJob};
    let contact = subject.contact.as_ref();
    let vars = contact.map(crate::service::contact_variables).unwrap_or_default();
    let to_value = |v: Result<Value, serde_json::Error>| v.map_err(|e| Error::validation("action", e.to_string()));
    Ok(match action {
        Action::SendEmail { subject: title, text, html, to, provider } => {
            let to: Vec<Mailbox> = if to.is_empty() {
                let email = contact.and_then(|c| c.email.as_ref()).ok_or_else(|| {
                    Error::validation("to", "the contact has no e-mail address and the action names no recipient")
                })?;
                vec![Mailbox { email: email.to_string(), name: contact.map(|c| c.name.clone()) }]
            } else {
                to.iter().map(|t| Mailbox::new(t.as_str())).collect()
            };
            let draft = MailDraft {
                to,
                subject: title.clone(),
                text: text.clone(),
                html: html.clone(),
                variables: vars,
                contact_id: contact.map(|c| c.id),
                ..MailDraft::default()
            };
            draft.render()?;
            let provider = provider.as_deref().map(ConnectionKind::parse).transpose()?;
            json!({ "kind": MAIL_SEND_JOB, "payload": to_value(serde_json::to_value(MailJob { provider, draft }))? })
        }
        Action::NotifySlack { text, channel, hot_lead_threshold } => {
            let text = crate::render_lenient(text, &vars, crate::ports::connectors::MAX_NOTIFICATION_CHARS)?;
            let mut n = match (hot_lead_threshold, contact) {
                (Some(t), Some(c)) => {
                    let mut n = Notification::hot_lead(&c.name, i64::from(c.lead_score), i64::from(*t), None);
                    n.blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": crate::ports::connectors::escape_mrkdwn(&text) } }));
                    n
                }
                _ => Notification::plain(&text),
            };
            n.channel = channel.clone();
            n.check()?;
            let job = NotifyJob { provider: Some(ConnectionKind::SLACK), notification: n };
            json!({ "kind": NOTIFY_JOB, "payload": to_value(serde_json::to_value(job))? })
        }
        Action::TrackEvent { name, params, value_minor, currency } => {
            let mut e = match value_minor {
                Some(v) => {
                    AnalyticsEvent::conversion(name, *v, currency.as_deref().unwrap_or("BRL"), &event.id.to_string())?
                }
                None => AnalyticsEvent::custom(name, serde_json::Map::new())?,
            };
            for (k, v) in params {
                e.params.entry(k.clone()).or_insert_with(|| v.clone());
            }
            e.check()?;
            let id = contact.map_or_else(|| format!("account.{}", event.account_id), |c| c.id.to_string());
            let user = AnalyticsUser { client_id: id.clone(), user_id: contact.map(|_| id) };
            let job = AnalyticsJob { provider: None, user, events: vec![e] };
            json!({ "kind": ANALYTICS_JOB, "payload": to_value(serde_json::to_value(job))? })
        }
        _ => Value::Null,
    })
}

fn tag_list(c: &Contact) -> String {
    let tags: Vec<&str> = c.tags.iter().map(|t| t.as_str()).collect();
    if tags.is_empty() { "none".to_owned() } else { tags.join(", ") }
}

/// Whether retrying may help.
pub(crate) fn is_transient(e: &Error) -> bool {
    e.is_transient()
}
