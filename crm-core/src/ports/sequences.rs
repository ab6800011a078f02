//! The `SequenceStore` port: follow-up sequences and their enrolments.
//!
//! A sequence's changes and an enrolment's moves write their `sequence.*`
//! event in the same transaction; an enrolment that moves to its next step
//! schedules that step's durable job in the same transaction too, so the
//! step's record and the next step's job commit or fail together.

use async_trait::async_trait;
use std::fmt::Debug;

use crate::domain::sequence::{Enrolment, EnrolmentState, Sequence};
use crate::ports::jobs::check_job;
use crate::ports::store::check_event_account;
use crate::{AccountId, ContactId, EnrolmentId, Error, Event, Job, Page, PageRequest, Result, SequenceId};

/// Most enrolments one [`SequenceStore::enrol`] call stores.
pub const MAX_ENROL_BATCH: usize = 1000;

/// One enrolment to store, with its first step's job and its event.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolling {
    /// The enrolment (active, step 0).
    pub enrolment: Enrolment,
    /// The first step's job (`sequence.step`).
    pub job: Job,
    /// Its `sequence.enrolled` event.
    pub event: Event,
}

/// Which enrolments to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrolmentQuery {
    /// Only of this sequence.
    pub sequence: Option<SequenceId>,
    /// Only of this contact.
    pub contact: Option<ContactId>,
    /// Only in this state.
    pub state: Option<EnrolmentState>,
    /// The page.
    pub page: PageRequest,
}

/// Checks [`SequenceStore::enrol`]'s arguments: at most
/// [`MAX_ENROL_BATCH`], every enrolment, job and event of `account`, every
/// enrolment active at version 0, every job valid. [`Error::Validation`] otherwise.
pub fn check_enrolling(account: AccountId, batch: &[Enrolling]) -> Result<()> {
    if batch.len() > MAX_ENROL_BATCH {
        return Err(Error::validation("contacts", format!("at most {MAX_ENROL_BATCH} per batch")));
    }
    for e in batch {
        if e.enrolment.account_id != account || e.job.account_id != Some(account) {
            return Err(Error::validation("enrolments", "an enrolment or its job belongs to another account"));
        }
        if e.enrolment.state != EnrolmentState::Active || e.enrolment.version != 0 {
            return Err(Error::validation("enrolments", "a new enrolment is active at version 0"));
        }
        check_event_account(account, &e.event)?;
        check_job(&e.job)?;
    }
    Ok(())
}

/// Checks [`SequenceStore::update_enrolment`]'s arguments: the event and
/// the job belong to the enrolment's account.
pub fn check_enrolment_update(enrolment: &Enrolment, event: Option<&Event>, next: Option<&Job>) -> Result<()> {
    if let Some(e) = event {
        check_event_account(enrolment.account_id, e)?;
    }
    if let Some(job) = next {
        if job.account_id != Some(enrolment.account_id) {
            return Err(Error::validation("job", "belongs to another account"));
        }
        check_job(job)?;
    }
    Ok(())
}

/// Sequences and enrolments.
///
/// Contract (checked by `crm_core::testing::store::sequences`):
/// - `update_sequence` and `update_enrolment` are compare-and-set on
///   `version`: they store `version + 1` only when the stored version
///   equals the argument's, else [`Error::Conflict`] and nothing is written
///   (neither the event nor the job).
/// - A contact has at most one *active* enrolment per sequence: `enrol`
///   skips (answers `false` for) a contact already active in the sequence,
///   writing neither its job nor its event; a completed or stopped
///   enrolment does not block a new one.
/// - `update_enrolment` writes the enrolment, its event and the next job in
///   one transaction: all or nothing.
/// - Deleting a sequence deletes its enrolments (their pending jobs find
///   them gone and do nothing).
/// - Another account's sequence or enrolment behaves as a missing one.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::domain::sequence::{NewSequence, Sequence, SequenceStep, StepAction};
/// use crm_core::{Account, Event, EventType, MemoryStore, SequenceStore, AccountStore};
/// let store = MemoryStore::new();
/// let now = chrono::Utc::now();
/// let account = Account::new("Loja", now)?;
/// store.create_account(&account, &Event::new(account.id, EventType::ACCOUNT_CREATED, &(), now)).await?;
/// let seq = Sequence::new(account.id, NewSequence {
///     name: "Follow-up".into(),
///     enabled: true,
///     steps: vec![SequenceStep { delay_seconds: 3 * 86400, action: StepAction::AddTag { tag: "cold".into() } }],
///     window: None,
///     late: Default::default(),
/// }, now)?;
/// store.insert_sequence(&seq, &Event::new(account.id, EventType::SEQUENCE_CREATED, &seq, now)).await?;
/// assert_eq!(store.get_sequence(account.id, seq.id).await?.name, "Follow-up");
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait SequenceStore: Send + Sync + Debug + 'static {
    /// Stores a new sequence and its event. [`Error::Conflict`] when the id is taken.
    async fn insert_sequence(&self, sequence: &Sequence, event: &Event) -> Result<()>;

    /// One sequence; [`Error::NotFound`] when missing.
    async fn get_sequence(&self, account: AccountId, id: SequenceId) -> Result<Sequence>;

    /// The account's sequences in id order after the page cursor.
    async fn list_sequences(&self, account: AccountId, page: &PageRequest) -> Result<Page<Sequence>>;

    /// Stores name, enabled, steps, window and `updated_at` when the stored
    /// version equals `sequence.version` (storing `version + 1`) and records
    /// `event`; returns the stored sequence. [`Error::NotFound`] when
    /// missing; [`Error::Conflict`] when the version is stale.
    async fn update_sequence(&self, sequence: &Sequence, event: &Event) -> Result<Sequence>;

    /// Deletes a sequence with its enrolments and records `event`.
    /// [`Error::NotFound`] when missing.
    async fn delete_sequence(&self, account: AccountId, id: SequenceId, event: &Event) -> Result<()>;

    /// Stores new enrolments, each with its job and event, in one
    /// transaction; answers, per item, whether it was stored (`false`: the
    /// contact is already active in that sequence). [`Error::Validation`]
    /// when [`check_enrolling`] refuses; [`Error::NotFound`] when a sequence
    /// is missing (nothing is stored then).
    async fn enrol(&self, account: AccountId, batch: &[Enrolling]) -> Result<Vec<bool>>;

    /// One enrolment; [`Error::NotFound`] when missing.
    async fn get_enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<Enrolment>;

    /// The account's enrolments matching `query`, in id order after the cursor.
    async fn list_enrolments(&self, account: AccountId, query: &EnrolmentQuery) -> Result<Page<Enrolment>>;

    /// Stores the enrolment's state, stop reason and detail, current step,
    /// next run time, stage and `updated_at` when the stored version equals
    /// `enrolment.version` (storing `version + 1`), with `event` and the
    /// `next` job, in one transaction; returns the stored enrolment.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when the
    /// version is stale, a finished enrolment would become active again, or
    /// the job's id or unique key is taken (nothing is written then); [`Error::Validation`] when
    /// [`check_enrolment_update`] refuses.
    async fn update_enrolment(
        &self,
        enrolment: &Enrolment,
        event: Option<&Event>,
        next: Option<&Job>,
    ) -> Result<Enrolment>;
}
