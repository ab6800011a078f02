//! The `CampaignStore` port: campaigns and their recipients.
//!
//! A campaign's state changes write their `campaign.*` event in the same
//! transaction (optimistic `version`). Recipient rows are many and change
//! often (one per audience member, moved by every status report), so they
//! write no events: the campaign's counters are counted from them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::campaign::{Campaign, PlanProgress, PlannedRecipient, Recipient, RecipientCounts, RecipientState};
use crate::{AccountId, CampaignId, ContactId, Error, Event, MessageId, Page, PageRequest, Result};

/// Most recipients one [`CampaignStore::plan_recipients`] call stores.
pub const MAX_PLAN_BATCH: usize = 5_000;

/// Checks [`CampaignStore::plan_recipients`]'s arguments: at most
/// [`MAX_PLAN_BATCH`] recipients, progress that moves forward by at least
/// the batch, and planned recipients that are `pending` or `skipped`.
pub fn check_plan(from: &PlanProgress, to: &PlanProgress, recipients: &[PlannedRecipient]) -> Result<()> {
    if recipients.len() > MAX_PLAN_BATCH {
        return Err(Error::validation("recipients", format!("at most {MAX_PLAN_BATCH} per batch")));
    }
    if to.planned < from.planned + recipients.len() as u64 || from.done {
        return Err(Error::validation("plan", "must move forward by at least the batch"));
    }
    if recipients.iter().any(|r| !matches!(r.state, RecipientState::Pending | RecipientState::Skipped)) {
        return Err(Error::validation("recipients", "planned recipients are pending or skipped"));
    }
    Ok(())
}

/// Checks a recipient-list `limit`: 1..=1000.
pub fn check_recipient_limit(limit: u32) -> Result<()> {
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation("limit", "must be between 1 and 1000"));
    }
    Ok(())
}

/// Campaigns and recipients.
///
/// Contract (checked by `crm_core::testing::store::campaigns`):
/// - `update_campaign` is a compare-and-set on `version`; it never touches
///   the plan progress (only `plan_recipients` moves it), so a pause racing
///   the planner loses neither.
/// - `plan_recipients` stores a batch and moves the progress in one
///   transaction, only when the stored progress is still `from` (`planned`
///   compared): a second planner of the same batch stores nothing. Each
///   recipient gets `seq = from.planned + its index`; a contact already a
///   recipient of the campaign is not stored again (repeats in a list).
/// - A recipient's state moves only along [`RecipientState::predecessors`];
///   a refused move changes nothing and answers `false`.
/// - Another account's campaign behaves as a missing one.
#[async_trait]
pub trait CampaignStore: Send + Sync + Debug + 'static {
    /// Stores a new campaign and its event. [`Error::Conflict`] when the id is taken.
    async fn insert_campaign(&self, campaign: &Campaign, event: &Event) -> Result<()>;

    /// One campaign; [`Error::NotFound`] when missing.
    async fn get_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign>;

    /// The account's campaigns in id order after the page cursor.
    async fn list_campaigns(&self, account: AccountId, page: &PageRequest) -> Result<Page<Campaign>>;

    /// Stores the campaign's state, times and stop reason when the stored
    /// `version` equals `campaign.version`, storing `version + 1`, and
    /// records `event`; returns the stored campaign (its stored plan
    /// progress, not the argument's). [`Error::NotFound`] when missing;
    /// [`Error::Conflict`] when the version is stale.
    async fn update_campaign(&self, campaign: &Campaign, event: &Event) -> Result<Campaign>;

    /// Deletes the campaign with its recipients and records `event`, in one
    /// transaction, when the stored `version` equals `version` (the caller
    /// checked the state it read). The messages it sent stay in their
    /// threads. [`Error::NotFound`] when missing; [`Error::Conflict`] when the
    /// version is stale.
    async fn delete_campaign(&self, account: AccountId, id: CampaignId, version: i64, event: &Event) -> Result<()>;

    /// Stores planned recipients and moves the plan progress from `from` to
    /// `to`, in one transaction; `false` (nothing stored) when the stored
    /// progress is no longer `from`. [`Error::Validation`] when
    /// [`check_plan`] refuses; [`Error::NotFound`] when the campaign is missing.
    async fn plan_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        from: &PlanProgress,
        to: &PlanProgress,
        recipients: &[PlannedRecipient],
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Up to `limit` (1..=1000) `pending` recipients in `seq` order.
    async fn pending_recipients(&self, account: AccountId, campaign: CampaignId, limit: u32) -> Result<Vec<Recipient>>;

    /// Moves recipient `seq` to `state` (from one of its predecessors),
    /// recording `reason` and `message` when given; `false` when it is not
    /// in a predecessor state. [`Error::NotFound`] when there is no such recipient.
    #[allow(
        clippy::too_many_arguments,
        reason = "the recipient's key, its move and the time, as the other port methods take them"
    )]
    async fn set_recipient_state(
        &self,
        account: AccountId,
        campaign: CampaignId,
        seq: u64,
        state: RecipientState,
        reason: Option<&str>,
        message: Option<MessageId>,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Moves the recipient whose message is `message` to `state` (from a
    /// predecessor), recording `reason` when given; `false` when no
    /// recipient has that message or the move is refused.
    async fn set_recipient_state_by_message(
        &self,
        account: AccountId,
        message: MessageId,
        state: RecipientState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Sets `replied_at` to `at` on the contact's recipients that were
    /// sent (sent, delivered or read) and have not replied; returns how many.
    async fn record_recipient_reply(&self, account: AccountId, contact: ContactId, at: DateTime<Utc>) -> Result<u64>;

    /// The campaign's recipients counted by state, and the replies.
    async fn recipient_counts(&self, account: AccountId, campaign: CampaignId) -> Result<RecipientCounts>;

    /// Up to `limit` (1..=1000) recipients in `seq` order after `after_seq`,
    /// only those in `state` when given. [`Error::NotFound`] when the
    /// campaign is missing.
    async fn list_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        state: Option<RecipientState>,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Recipient>>;
}
