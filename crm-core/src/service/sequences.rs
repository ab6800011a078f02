//! Follow-up sequences: CRUD, enrolment, the step runner (a durable job per
//! step), the watcher that stops enrolments on replies, stage changes and
//! opt-outs, and the job workers the automation engine schedules
//! (`sequence.enrol`, `sequence.stop`).
//!
//! # A step runs once
//!
//! Each due step is one job of kind [`SEQUENCE_STEP_JOB`] with the unique
//! key `<enrolment id>:<step>`. Its handler:
//!
//! 1. reads the enrolment: gone, finished, or already past this step → done
//!    (a re-run after a crash that followed step 3 below);
//! 2. performs the step's action idempotently: a send carries the client
//!    reference `sequence:<enrolment>:<step>`, so a second attempt returns
//!    the first message instead of sending again; tags and stages are set,
//!    not toggled;
//! 3. records the step in one store transaction
//!    ([`SequenceStore::update_enrolment`](crate::SequenceStore::update_enrolment)):
//!    the enrolment's next step (compare-and-set on its version), the
//!    `sequence.step_completed` / `sequence.completed` event and the next
//!    step's job together;
//! 4. returns `Done`, and the runtime deletes the job.
//!
//! A crash before 3 re-runs 2 (a no-op); a crash between 3 and 4 re-runs
//! 1 (done at once): no step is lost or repeated.
//!
//! # A step reached late
//!
//! When the runner reaches a step later than its due time by more than the
//! sequence's [`LatePolicy::grace_seconds`](crate::domain::sequence::LatePolicy)
//! (default one day: workers were down, a backlog), a step that messages the
//! contact follows the policy's action: `skip` (default: the step is
//! recorded as `sequence.step_skipped` and the next one is scheduled from
//! now), `send` (sent late; the `sequence.step_completed` event carries
//! `late_seconds`) or `stop` (stop reason `late`). Tag and stage steps always
//! run. Lateness is measured before the send window: a step that waits for
//! the window's opening has its due time moved there, so the wait does not
//! count.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

use super::Crm;
use super::sending::SendRequest;
use crate::domain::sequence::{Lateness, StepAction};
use crate::ports::sequences::{Enrolling, EnrolmentQuery, MAX_ENROL_BATCH};
use crate::workers::{Backoff, EventWorker, JobWorker, Outcome, WorkerOptions};
use crate::{
    AccountId, Contact, ContactId, ContactPatch, Enrolment, EnrolmentId, EnrolmentState, Error, Event, EventFilter,
    EventType, Job, LeadStage, MessageContent, NewSequence, OptInStatus, Page, PageRequest, Result, Sequence,
    SequenceId, StopReason,
};

/// The job kind of one due step: payload `{"enrolment_id", "step"}`.
pub const SEQUENCE_STEP_JOB: &str = "sequence.step";
/// The job kind that enrols a contact (scheduled by automation rules):
/// payload `{"sequence_id", "contact_id", "source": {"automation_id", "run_id"}}`.
pub const SEQUENCE_ENROL_JOB: &str = "sequence.enrol";
/// The job kind that stops a contact's enrolments (scheduled by automation
/// rules): payload `{"sequence_id": <uuid> | null, "contact_id", "reason": "automation",
/// "source": {"automation_id", "run_id"}}`; the reason and the rule are recorded on
/// the stopped enrolments (`stop_reason`, `stop_detail`).
pub const SEQUENCE_STOP_JOB: &str = "sequence.stop";
/// The outbox consumer that stops enrolments on replies, stage changes,
/// opt-outs and deleted contacts.
pub const SEQUENCE_CONSUMER: &str = "sequences";

/// How many times a stop is retried against concurrent moves of an enrolment.
const STOP_ATTEMPTS: u32 = 5;

/// What happened to one contact of an enrolment request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolResult {
    /// The contact.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub contact_id: ContactId,
    /// `enrolled`, `already_enrolled`, `not_found` (no such contact) or
    /// `opted_out` (not enrolled).
    pub outcome: &'static str,
    /// The new enrolment, when `enrolled`.
    pub enrolment: Option<Enrolment>,
}

/// The payload of a `sequence.enrol` job.
#[derive(Debug, Deserialize)]
struct EnrolPayload {
    sequence_id: SequenceId,
    contact_id: ContactId,
    #[serde(default)]
    source: Option<serde_json::Value>,
}

/// The payload of a `sequence.stop` job.
#[derive(Debug, Deserialize)]
struct StopPayload {
    #[serde(default)]
    sequence_id: Option<SequenceId>,
    contact_id: ContactId,
    /// The stop reason to record (default `automation`).
    #[serde(default)]
    reason: Option<StopReason>,
    /// Who asked (`{"automation_id", "run_id"}`), recorded in the stop detail.
    #[serde(default)]
    source: Option<serde_json::Value>,
}

/// How a step was gone through, for its event.
#[derive(Debug, Clone, Copy)]
enum Ran {
    /// Within the grace.
    OnTime,
    /// Later than the grace, sent anyway (late action `send`): seconds late.
    Late(i64),
    /// Skipped by the late policy.
    Skipped { due: DateTime<Utc>, late: i64 },
}

/// The payload of a `sequence.step` job.
#[derive(Debug, Serialize, Deserialize)]
struct StepPayload {
    enrolment_id: EnrolmentId,
    step: u32,
}

impl Crm {
    /// Creates a sequence (`sequence.created`). [`Error::Validation`] on bad input.
    pub async fn create_sequence(&self, account: AccountId, input: NewSequence) -> Result<Sequence> {
        let sequence = Sequence::new(account, input, self.now())?;
        let event = self.event(account, EventType::SEQUENCE_CREATED, &sequence);
        self.store.insert_sequence(&sequence, &event).await?;
        Ok(sequence)
    }

    /// One sequence; [`Error::NotFound`] when missing.
    pub async fn get_sequence(&self, account: AccountId, id: SequenceId) -> Result<Sequence> {
        self.store.get_sequence(account, id).await
    }

    /// The account's sequences, by id.
    pub async fn list_sequences(&self, account: AccountId, page: &PageRequest) -> Result<Page<Sequence>> {
        self.store.list_sequences(account, page).await
    }

    /// Replaces a sequence's name, steps, window and `enabled`
    /// (`sequence.updated`). Running enrolments follow the new steps by
    /// index. [`Error::Conflict`] when it changed concurrently.
    pub async fn update_sequence(&self, account: AccountId, id: SequenceId, input: NewSequence) -> Result<Sequence> {
        let mut sequence = self.store.get_sequence(account, id).await?;
        sequence.replace(input, self.now())?;
        let mut stored = sequence.clone();
        stored.version += 1;
        let event = self.event(account, EventType::SEQUENCE_UPDATED, &stored);
        self.store.update_sequence(&sequence, &event).await
    }

    /// Deletes a sequence and its enrolments (`sequence.deleted`); their
    /// pending steps do nothing.
    pub async fn delete_sequence(&self, account: AccountId, id: SequenceId) -> Result<()> {
        let event = self.event(account, EventType::SEQUENCE_DELETED, &json!({ "id": id }));
        self.store.delete_sequence(account, id, &event).await
    }

    /// Enrols contacts (at most [`MAX_ENROL_BATCH`]) in a sequence: each
    /// gets an active enrolment whose first step is due after its delay
    /// (out of quiet time), as a durable job. A contact already active in
    /// the sequence, missing, or opted out is reported and skipped.
    /// [`Error::NotFound`] when the sequence is missing;
    /// [`Error::Conflict`] when it is disabled; [`Error::Validation`] for
    /// no or too many contacts.
    pub async fn enrol_contacts(
        &self,
        account: AccountId,
        sequence_id: SequenceId,
        contacts: &[ContactId],
        source: Option<serde_json::Value>,
    ) -> Result<Vec<EnrolResult>> {
        if contacts.is_empty() || contacts.len() > MAX_ENROL_BATCH {
            return Err(Error::validation("contact_ids", format!("must have 1 to {MAX_ENROL_BATCH} contacts")));
        }
        let sequence = self.store.get_sequence(account, sequence_id).await?;
        if !sequence.enabled {
            return Err(Error::conflict("sequence", "it is disabled; enable it to enrol contacts"));
        }
        let now = self.now();
        let zone = self.account_zone(account).await?;
        let first_due = sequence.due_at(0, now, zone).unwrap_or(now);
        let mut results = Vec::with_capacity(contacts.len());
        let mut batch = Vec::new();
        for &contact_id in contacts {
            let contact = match self.store.get_contact(account, contact_id).await {
                Ok(c) => c,
                Err(Error::NotFound { .. }) => {
                    results.push(EnrolResult { contact_id, outcome: "not_found", enrolment: None });
                    continue;
                }
                Err(e) => return Err(e),
            };
            if contact.opt_in.status == OptInStatus::OptedOut {
                results.push(EnrolResult { contact_id, outcome: "opted_out", enrolment: None });
                continue;
            }
            let mut enrolment = Enrolment::new(&sequence, contact_id, contact.lead_stage, first_due, now);
            enrolment.source = source.clone();
            let job = step_job(&enrolment, 0, first_due, now)?;
            let event = self.event(account, EventType::SEQUENCE_ENROLLED, &enrolment);
            results.push(EnrolResult { contact_id, outcome: "enrolled", enrolment: Some(enrolment.clone()) });
            batch.push(Enrolling { enrolment, job, event });
        }
        let stored = self.store.enrol(account, &batch).await?;
        let mut stored = stored.into_iter();
        for r in results.iter_mut().filter(|r| r.enrolment.is_some()) {
            if stored.next() == Some(false) {
                r.outcome = "already_enrolled";
                r.enrolment = None;
            }
        }
        Ok(results)
    }

    /// One enrolment; [`Error::NotFound`] when missing.
    pub async fn get_enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<Enrolment> {
        self.store.get_enrolment(account, id).await
    }

    /// The account's enrolments matching `query`, by id.
    pub async fn list_enrolments(&self, account: AccountId, query: &EnrolmentQuery) -> Result<Page<Enrolment>> {
        self.store.list_enrolments(account, query).await
    }

    /// Stops an enrolment by hand (`sequence.stopped`, reason `manual`);
    /// stopping a finished enrolment returns it as it is.
    pub async fn stop_enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<Enrolment> {
        let enrolment = self.store.get_enrolment(account, id).await?;
        self.stop(enrolment, StopReason::Manual, None).await
    }

    /// Stops the contact's active enrolments (in one sequence, or all) with
    /// `reason`; returns how many stopped.
    pub async fn stop_contact_enrolments(
        &self,
        account: AccountId,
        contact: ContactId,
        sequence: Option<SequenceId>,
        reason: StopReason,
    ) -> Result<u64> {
        self.stop_contact_enrolments_because(account, contact, sequence, reason, None).await
    }

    /// [`Crm::stop_contact_enrolments`] recording `detail` (at most 500
    /// characters) on each stopped enrolment.
    pub async fn stop_contact_enrolments_because(
        &self,
        account: AccountId,
        contact: ContactId,
        sequence: Option<SequenceId>,
        reason: StopReason,
        detail: Option<&str>,
    ) -> Result<u64> {
        let mut stopped = 0;
        for e in self.active_enrolments(account, contact, sequence).await? {
            if self.stop(e, reason, detail).await?.stop_reason == Some(reason) {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    async fn active_enrolments(
        &self,
        account: AccountId,
        contact: ContactId,
        sequence: Option<SequenceId>,
    ) -> Result<Vec<Enrolment>> {
        let mut query = EnrolmentQuery {
            sequence,
            contact: Some(contact),
            state: Some(EnrolmentState::Active),
            page: PageRequest::first(PageRequest::MAX_LIMIT)?,
        };
        let mut all = Vec::new();
        loop {
            let page = self.store.list_enrolments(account, &query).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) => query.page = PageRequest::new(Some(&c), PageRequest::MAX_LIMIT)?,
                None => return Ok(all),
            }
        }
    }

    /// Stops `enrolment` (re-reading it when it moved concurrently); a
    /// finished one is returned as it is.
    async fn stop(&self, mut enrolment: Enrolment, reason: StopReason, detail: Option<&str>) -> Result<Enrolment> {
        for _ in 0..STOP_ATTEMPTS {
            if !enrolment.is_active() {
                return Ok(enrolment);
            }
            let mut next = enrolment.clone();
            next.stop(reason, detail, self.now());
            let event = self.event(enrolment.account_id, EventType::SEQUENCE_STOPPED, &next);
            match self.store.update_enrolment(&next, Some(&event), None).await {
                Err(Error::Conflict { .. }) => {
                    enrolment = self.store.get_enrolment(enrolment.account_id, enrolment.id).await?;
                }
                other => return other,
            }
        }
        Err(Error::conflict("enrolment", "it kept changing; try again"))
    }

    /// Runs one due step (the handler of [`SEQUENCE_STEP_JOB`]).
    async fn run_step(&self, account: AccountId, payload: &StepPayload) -> Result<Outcome> {
        let enrolment = match self.store.get_enrolment(account, payload.enrolment_id).await {
            Ok(e) => e,
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if !enrolment.is_active() || enrolment.current_step != payload.step {
            return Ok(Outcome::Done);
        }
        let sequence = match self.store.get_sequence(account, enrolment.sequence_id).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let now = self.now();
        let Some(step) = sequence.steps.get(payload.step as usize) else {
            // The sequence was shortened: this enrolment is finished.
            self.advance(&sequence, enrolment, None, now, Ran::OnTime).await?;
            return Ok(Outcome::Done);
        };
        // Lateness is decided first: waiting for the send window below moves
        // the due time, so it is not counted.
        let due = enrolment.next_run_at.unwrap_or(now);
        let ran = match sequence.late.decide(&step.action, due, now) {
            Lateness::Run => Ran::OnTime,
            Lateness::RunLate(late) => Ran::Late(late),
            Lateness::Skip(late) => {
                tracing::info!(enrolment = %enrolment.id, step = payload.step, late, "late sequence step skipped");
                self.advance(&sequence, enrolment, None, now, Ran::Skipped { due, late }).await?;
                return Ok(Outcome::Done);
            }
            Lateness::Stop(late) => {
                let detail = format!(
                    "step {} ({}) was due at {} and reached {late} s late, past the sequence's grace of {} s",
                    payload.step + 1,
                    step.action.kind(),
                    due.to_rfc3339(),
                    sequence.late.grace_seconds
                );
                self.stop(enrolment, StopReason::Late, Some(&detail)).await?;
                return Ok(Outcome::Done);
            }
        };
        // A step that comes due late (workers were down) must still not
        // run in quiet time: it waits for the window, whose opening becomes
        // its due time.
        if let Some(w) = &sequence.window {
            let allowed = w.next_allowed_in(now, self.account_zone(account).await?);
            if allowed > now {
                if enrolment.next_run_at != Some(allowed) {
                    let mut moved = enrolment.clone();
                    moved.next_run_at = Some(allowed);
                    moved.updated_at = now;
                    match self.store.update_enrolment(&moved, None, None).await {
                        Ok(_) | Err(Error::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                let wait = (allowed - now).to_std().unwrap_or(Duration::from_secs(60));
                return Ok(Outcome::Defer { after: wait });
            }
        }
        let contact = match self.store.get_contact(account, enrolment.contact_id).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => {
                self.stop(enrolment, StopReason::ContactDeleted, None).await?;
                return Ok(Outcome::Done);
            }
            Err(e) => return Err(e),
        };
        if let Some(reason) = stop_reason_for(&enrolment, &sequence, &contact) {
            self.stop(enrolment, reason, None).await?;
            return Ok(Outcome::Done);
        }
        match self.perform(&enrolment, payload.step, &step.action, &contact).await {
            Ok(stage) => {
                self.advance(&sequence, enrolment, stage, now, ran).await?;
                Ok(Outcome::Done)
            }
            Err(e @ (Error::Validation { .. } | Error::NotFound { .. } | Error::Forbidden { .. })) => {
                let detail = format!("step {} ({}): {e}", payload.step + 1, step.action.kind());
                self.stop(enrolment, StopReason::Failed, Some(&detail)).await?;
                Ok(Outcome::Done)
            }
            Err(Error::RateLimited { retry_after }) => Ok(Outcome::Defer { after: retry_after }),
            Err(e) => Err(e),
        }
    }

    /// Does a step's action; returns the lead stage it set, if any.
    async fn perform(
        &self,
        enrolment: &Enrolment,
        step: u32,
        action: &StepAction,
        contact: &Contact,
    ) -> Result<Option<LeadStage>> {
        let account = enrolment.account_id;
        let reference = format!("sequence:{}:{step}", enrolment.id);
        match action {
            StepAction::SendTemplate { name, language, variables } => {
                let content = self.render_template_for(account, contact.id, name, language, variables.clone()).await?;
                self.queue_message(account, SendRequest::new(contact.id, content).reference(reference)).await?;
            }
            StepAction::SendText { text } => {
                let req = SendRequest::new(contact.id, MessageContent::text(text.clone())).reference(reference);
                self.queue_message(account, req).await?;
            }
            StepAction::AddTag { tag } => {
                self.tag_contact(account, contact.id, std::slice::from_ref(tag)).await?;
            }
            StepAction::RemoveTag { tag } => {
                self.untag_contact(account, contact.id, std::slice::from_ref(tag)).await?;
            }
            StepAction::SendEmail { subject, text, html } => {
                use crate::ports::connectors::{MailDraft, Mailbox};
                use crate::workers::connectors::{MailJob, schedule_mail};
                let email = contact
                    .email
                    .as_ref()
                    .ok_or_else(|| Error::validation("email", "the contact has no e-mail address"))?;
                let draft = MailDraft {
                    to: vec![Mailbox { email: email.to_string(), name: Some(contact.name.clone()) }],
                    subject: subject.clone(),
                    text: text.clone(),
                    html: html.clone(),
                    variables: crate::service::contact_variables(contact),
                    contact_id: Some(contact.id),
                    ..MailDraft::default()
                };
                let job = MailJob { provider: None, draft };
                match schedule_mail(&*self.store, account, &job, Some(&reference), self.now()).await {
                    Ok(_) | Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            StepAction::SetStage { stage } => {
                let patch = ContactPatch { lead_stage: Some(*stage), ..Default::default() };
                self.update_contact(account, contact.id, patch).await?;
                return Ok(Some(*stage));
            }
        }
        Ok(None)
    }

    /// Records that the enrolment's current step ran (at `ran_at`) or was
    /// skipped: moves to the next step and schedules its job, or completes
    /// it; a concurrent stop wins.
    async fn advance(
        &self,
        sequence: &Sequence,
        mut enrolment: Enrolment,
        stage: Option<LeadStage>,
        ran_at: DateTime<Utc>,
        how: Ran,
    ) -> Result<()> {
        let account = enrolment.account_id;
        let ran = enrolment.current_step;
        enrolment.current_step = ran + 1;
        if let Some(stage) = stage {
            enrolment.stage = stage;
        }
        let now = self.now();
        enrolment.updated_at = now;
        let zone = self.account_zone(account).await?;
        let next = sequence.due_at(enrolment.current_step, ran_at.max(now), zone);
        enrolment.next_run_at = next;
        if next.is_none() {
            enrolment.state = EnrolmentState::Completed;
        }
        let mut payload = json!({ "enrolment": &enrolment, "step": ran });
        match how {
            Ran::OnTime => {}
            Ran::Late(late) => payload["late_seconds"] = json!(late),
            Ran::Skipped { due, late } => {
                payload["skipped"] = json!(true);
                payload["due_at"] = json!(due);
                payload["late_seconds"] = json!(late);
            }
        }
        let (event, job) = match next {
            Some(due) => {
                let job = step_job(&enrolment, enrolment.current_step, due, now)?;
                let kind = match how {
                    Ran::Skipped { .. } => EventType::SEQUENCE_STEP_SKIPPED,
                    _ => EventType::SEQUENCE_STEP_COMPLETED,
                };
                (self.event(account, kind, &payload), Some(job))
            }
            None => (self.event(account, EventType::SEQUENCE_COMPLETED, &payload), None),
        };
        match self.store.update_enrolment(&enrolment, Some(&event), job.as_ref()).await {
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The watcher's handler: stops enrolments the event ends.
    async fn watch(&self, event: &Event) -> Result<()> {
        let account = event.account_id;
        let id = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<ContactId>().ok());
        if event.event_type == EventType::MESSAGE_RECEIVED {
            if let Some(contact) = id(&event.payload["message"]["contact_id"]) {
                self.stop_contact_enrolments(account, contact, None, StopReason::Replied).await?;
            }
        } else if event.event_type == EventType::CONTACT_DELETED {
            if let Some(contact) = id(&event.payload["id"]) {
                self.stop_contact_enrolments(account, contact, None, StopReason::ContactDeleted).await?;
            }
        } else if event.event_type == EventType::CONTACT_UPDATED
            && let Ok(contact) = serde_json::from_value::<Contact>(event.payload.clone())
        {
            for e in self.active_enrolments(account, contact.id, None).await? {
                let sequence = match self.store.get_sequence(account, e.sequence_id).await {
                    Ok(s) => s,
                    Err(Error::NotFound { .. }) => continue,
                    Err(err) => return Err(err),
                };
                if let Some(reason) = stop_reason_for(&e, &sequence, &contact) {
                    self.stop(e, reason, None).await?;
                }
            }
        }
        Ok(())
    }

    /// The step runner ([`SEQUENCE_STEP_JOB`]).
    pub fn sequence_runner(&self) -> SequenceRunner {
        SequenceRunner { crm: self.clone() }
    }

    /// The watcher ([`SEQUENCE_CONSUMER`]).
    pub fn sequence_watcher(&self) -> SequenceWatcher {
        SequenceWatcher { crm: self.clone() }
    }

    /// The `sequence.enrol` job worker.
    pub fn sequence_enroller(&self) -> SequenceEnroller {
        SequenceEnroller { crm: self.clone() }
    }

    /// The `sequence.stop` job worker.
    pub fn sequence_stopper(&self) -> SequenceStopper {
        SequenceStopper { crm: self.clone() }
    }
}

/// Why the contact's state ends the enrolment, if it does: opted out,
/// wrote since the enrolment, or
/// at another stage than the sequence knows — unless the step running now
/// sets exactly that stage (its own change).
fn stop_reason_for(enrolment: &Enrolment, sequence: &Sequence, contact: &Contact) -> Option<StopReason> {
    if contact.opt_in.status == OptInStatus::OptedOut {
        return Some(StopReason::OptedOut);
    }
    // A reply the watcher has not handled yet.
    if contact.last_inbound_at.is_some_and(|t| t > enrolment.enrolled_at) {
        return Some(StopReason::Replied);
    }
    if contact.lead_stage == enrolment.stage {
        return None;
    }
    let own = sequence.steps.get(enrolment.current_step as usize).map(|s| &s.action);
    match own {
        Some(StepAction::SetStage { stage }) if *stage == contact.lead_stage => None,
        _ => Some(StopReason::StageChanged),
    }
}

/// The job of step `step` of an enrolment, due at `due`.
fn step_job(enrolment: &Enrolment, step: u32, due: DateTime<Utc>, now: DateTime<Utc>) -> Result<Job> {
    let payload = serde_json::to_value(StepPayload { enrolment_id: enrolment.id, step })
        .map_err(|e| Error::validation("payload", e.to_string()))?;
    Job::new(SEQUENCE_STEP_JOB, Some(enrolment.account_id), payload, due, now)?
        .with_unique_key(format!("{}:{step}", enrolment.id))
}

/// An outcome for a handler's error: retry the transient ones and storage
/// trouble, dead-letter the rest.
fn outcome_of(e: &Error) -> Outcome {
    match e {
        Error::Validation { .. } | Error::NotFound { .. } | Error::Forbidden { .. } | Error::Conflict { .. } => {
            Outcome::Fail { error: e.to_string() }
        }
        _ => Outcome::retry(e.to_string()),
    }
}

fn job_account(job: &Job) -> std::result::Result<AccountId, Outcome> {
    job.account_id.ok_or_else(|| Outcome::Fail { error: "the job names no account".into() })
}

fn job_payload<T: serde::de::DeserializeOwned>(job: &Job) -> std::result::Result<T, Outcome> {
    serde_json::from_value(job.payload.clone())
        .map_err(|e| Outcome::Fail { error: format!("the {} payload does not parse: {e}", job.kind) })
}

/// Options for the sequence job workers: quick polls, many attempts.
fn job_options() -> WorkerOptions {
    WorkerOptions {
        batch: 64,
        concurrency: 16,
        poll: Duration::from_millis(100),
        max_poll: Duration::from_secs(1),
        max_attempts: 50,
        backoff: Backoff { max: Duration::from_secs(300), ..Backoff::default() },
        ..WorkerOptions::default()
    }
}

/// Runs due steps: the job worker of [`SEQUENCE_STEP_JOB`].
#[derive(Debug, Clone)]
pub struct SequenceRunner {
    crm: Crm,
}

impl SequenceRunner {
    /// Options that suit it.
    pub fn options(&self) -> WorkerOptions {
        job_options()
    }
}

#[async_trait]
impl JobWorker for SequenceRunner {
    fn kind(&self) -> &str {
        SEQUENCE_STEP_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let (account, payload) = match job_account(job).and_then(|a| Ok((a, job_payload::<StepPayload>(job)?))) {
            Ok(v) => v,
            Err(o) => return o,
        };
        match self.crm.run_step(account, &payload).await {
            Ok(o) => o,
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}

/// Enrols a contact for an automation rule: the job worker of [`SEQUENCE_ENROL_JOB`].
#[derive(Debug, Clone)]
pub struct SequenceEnroller {
    crm: Crm,
}

impl SequenceEnroller {
    /// Options that suit it.
    pub fn options(&self) -> WorkerOptions {
        job_options()
    }
}

#[async_trait]
impl JobWorker for SequenceEnroller {
    fn kind(&self) -> &str {
        SEQUENCE_ENROL_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let (account, p) = match job_account(job).and_then(|a| Ok((a, job_payload::<EnrolPayload>(job)?))) {
            Ok(v) => v,
            Err(o) => return o,
        };
        match self.crm.enrol_contacts(account, p.sequence_id, &[p.contact_id], p.source).await {
            Ok(r) if r.first().is_some_and(|r| r.outcome == "not_found") => {
                Outcome::Fail { error: "the contact does not exist".into() }
            }
            Ok(_) => Outcome::Done,
            Err(e) => outcome_of(&e),
        }
    }
}

/// Stops a contact's enrolments for an automation rule: the job worker of [`SEQUENCE_STOP_JOB`].
#[derive(Debug, Clone)]
pub struct SequenceStopper {
    crm: Crm,
}

impl SequenceStopper {
    /// Options that suit it.
    pub fn options(&self) -> WorkerOptions {
        job_options()
    }
}

#[async_trait]
impl JobWorker for SequenceStopper {
    fn kind(&self) -> &str {
        SEQUENCE_STOP_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let (account, p) = match job_account(job).and_then(|a| Ok((a, job_payload::<StopPayload>(job)?))) {
            Ok(v) => v,
            Err(o) => return o,
        };
        let reason = p.reason.unwrap_or(StopReason::Automation);
        let detail = p.source.as_ref().and_then(|s| match (s["automation_id"].as_str(), s["run_id"].as_str()) {
            (Some(rule), Some(run)) => Some(format!("stopped by automation rule {rule} (run {run})")),
            (Some(rule), None) => Some(format!("stopped by automation rule {rule}")),
            _ => None,
        });
        let stop =
            self.crm.stop_contact_enrolments_because(account, p.contact_id, p.sequence_id, reason, detail.as_deref());
        match stop.await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome_of(&e),
        }
    }
}

/// Stops enrolments on replies, stage changes, opt-outs and deleted
/// contacts: the outbox consumer [`SEQUENCE_CONSUMER`].
#[derive(Debug, Clone)]
pub struct SequenceWatcher {
    crm: Crm,
}

impl SequenceWatcher {
    /// The events it consumes: `message.received`, `contact.updated`, `contact.deleted`.
    pub fn filter() -> EventFilter {
        EventFilter::only([
            EventType::MESSAGE_RECEIVED.as_str(),
            EventType::CONTACT_UPDATED.as_str(),
            EventType::CONTACT_DELETED.as_str(),
        ])
        .unwrap_or_default()
    }

    /// Options that suit it: large batches.
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions { batch: 128, concurrency: 16, ..WorkerOptions::default() }
    }
}

#[async_trait]
impl EventWorker for SequenceWatcher {
    fn name(&self) -> &str {
        SEQUENCE_CONSUMER
    }

    fn events(&self) -> EventFilter {
        Self::filter()
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        match self.crm.watch(event).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}
