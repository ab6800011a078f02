//! The `AutomationStore` port: automation rules and their versions, their
//! runs, and lead scoring (the account's model, score changes and history).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::automation::{Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion};
use crate::domain::scoring::{ScoreChange, ScoringModel};
use crate::{AccountId, Contact, ContactId, Error, Event, Page, PageRequest, Result};

/// Automation rules, runs and lead scores.
///
/// Contract (checked by `crm_core::testing::store::automations`):
/// - Tenancy as every store: another account's rule, run or contact behaves
///   as a missing one.
/// - Rule mutations record their event in the same transaction; a refused
///   mutation writes no event.
/// - Versions: inserting a rule stores its version 1; every
///   [`AutomationStore::update_automation`] stores the next version beside
///   the rule in the same transaction. Versions are never changed or removed
///   (until the rule is deleted).
/// - Runs are unique per (rule, triggering event): [`AutomationStore::start_run`]
///   returns the stored run when one exists (a unique constraint, not a read
///   first), so a redelivered event runs a rule once.
/// - A score change moves the contact (score, stage, `version + 1`,
///   `contact.updated`) and stores its history row and `contact.score_changed`
///   in one transaction; its `cause` is unique per contact, so a cause applied
///   twice changes nothing the second time.
#[async_trait]
pub trait AutomationStore: Send + Sync + Debug + 'static {
    /// Stores a new rule with `version` 1 and its version record, and `event`.
    /// [`Error::Conflict`] when its id is taken.
    async fn insert_automation(&self, rule: &Automation, event: &Event) -> Result<()>;

    /// Stores `rule` as the next version of a rule whose stored version is
    /// `rule.version` (`created_at` and `enabled` keep their stored values),
    /// with its version record, and `event`. Returns the stored rule.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when stale.
    async fn update_automation(&self, rule: &Automation, event: &Event) -> Result<Automation>;

    /// Enables or disables a rule (the version stays) and records `event`.
    /// Returns the stored rule. [`Error::NotFound`] when missing.
    async fn set_automation_enabled(
        &self,
        account: AccountId,
        id: AutomationId,
        enabled: bool,
        now: DateTime<Utc>,
        event: &Event,
    ) -> Result<Automation>;

    /// Deletes a rule, its versions and runs, and records `event`.
    /// [`Error::NotFound`] when missing.
    async fn delete_automation(&self, account: AccountId, id: AutomationId, event: &Event) -> Result<()>;

    /// One rule. [`Error::NotFound`] when missing.
    async fn get_automation(&self, account: AccountId, id: AutomationId) -> Result<Automation>;

    /// The account's rules in id order after the cursor.
    async fn list_automations(&self, account: AccountId, page: &PageRequest) -> Result<Page<Automation>>;

    /// How many rules the account has.
    async fn count_automations(&self, account: AccountId) -> Result<u64>;

    /// The account's enabled rules whose trigger fires on `event_type`, in id order.
    async fn enabled_automations(&self, account: AccountId, event_type: &str) -> Result<Vec<Automation>>;

    /// One version of a rule. [`Error::NotFound`] when the rule or version is missing.
    async fn get_automation_version(
        &self,
        account: AccountId,
        id: AutomationId,
        version: u32,
    ) -> Result<AutomationVersion>;

    /// A rule's versions, oldest first. [`Error::NotFound`] when the rule is missing.
    async fn list_automation_versions(&self, account: AccountId, id: AutomationId) -> Result<Vec<AutomationVersion>>;

    /// Stores a run, or returns the stored run of the same (rule, event)
    /// unchanged; the flag says whether it was created.
    /// [`Error::NotFound`] when the rule is missing.
    async fn start_run(&self, run: &AutomationRun) -> Result<(AutomationRun, bool)>;

    /// The run of `rule` for `event`, if one was started.
    async fn find_run(
        &self,
        account: AccountId,
        rule: AutomationId,
        event: crate::EventId,
    ) -> Result<Option<AutomationRun>>;

    /// Stores a run's progress (status, reason, next step, steps,
    /// `updated_at`) and `event` (e.g. `automation.run_failed`) in one
    /// transaction. [`Error::NotFound`] when missing.
    async fn save_run(&self, run: &AutomationRun, event: Option<&Event>) -> Result<()>;

    /// One run. [`Error::NotFound`] when missing.
    async fn get_run(&self, account: AccountId, id: AutomationRunId) -> Result<AutomationRun>;

    /// A rule's runs in id (start) order after the cursor.
    async fn list_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        page: &PageRequest,
    ) -> Result<Page<AutomationRun>>;

    /// A rule's `limit` (1..=[`PageRequest::MAX_LIMIT`]) most recent runs,
    /// newest first (what a page of recent activity shows, without reading
    /// the older ones). [`Error::NotFound`] when the rule is missing;
    /// [`Error::Validation`] for a limit out of range.
    async fn latest_runs(&self, account: AccountId, rule: AutomationId, limit: u32) -> Result<Vec<AutomationRun>>;

    /// How many runs of `rule` for `contact` started at or after `since`
    /// (what the loop bound counts).
    async fn count_recent_runs(
        &self,
        account: AccountId,
        rule: AutomationId,
        contact: ContactId,
        since: DateTime<Utc>,
    ) -> Result<u64>;

    /// The account's stored scoring model (`None`: the default applies).
    async fn get_scoring_model(&self, account: AccountId) -> Result<Option<ScoringModel>>;

    /// Stores the account's scoring model.
    async fn put_scoring_model(&self, account: AccountId, model: &ScoringModel, now: DateTime<Utc>) -> Result<()>;

    /// Applies a score change: `contact` is the contact as read (its
    /// `version` must still be stored) with the new score and stage; stores
    /// it with `version + 1`, the history row and both events (`updated`:
    /// `contact.updated`; `changed`: `contact.score_changed`) in one
    /// transaction. Returns `false` (writing nothing) when `change.cause`
    /// was applied to the contact before. [`Error::NotFound`] when the
    /// contact is missing; [`Error::Conflict`] when its version moved.
    async fn apply_score_change(
        &self,
        contact: &Contact,
        change: &ScoreChange,
        updated: &Event,
        changed: &Event,
    ) -> Result<bool>;

    /// Whether a change with this cause was applied to the contact.
    async fn has_score_cause(&self, account: AccountId, contact: ContactId, cause: &str) -> Result<bool>;

    /// A contact's score changes in id (time) order after the cursor.
    async fn score_history(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<ScoreChange>>;
}

/// Checks the arguments of [`AutomationStore::apply_score_change`] every
/// adapter calls first: the change, the contact and the events belong to
/// one account and contact, and the contact carries the new score.
pub fn check_score_change(contact: &Contact, change: &ScoreChange, updated: &Event, changed: &Event) -> Result<()> {
    crate::ports::store::check_event_account(contact.account_id, updated)?;
    crate::ports::store::check_event_account(contact.account_id, changed)?;
    if change.account_id != contact.account_id || change.contact_id != contact.id {
        return Err(Error::validation("contact_id", "the score change is for another contact"));
    }
    if change.new_score != contact.lead_score || change.new_score > 100 {
        return Err(Error::validation("lead_score", "the contact must carry the change's new score (0 to 100)"));
    }
    if change.cause.is_empty() || change.cause.len() > 200 || change.reason.is_empty() || change.reason.len() > 100 {
        return Err(Error::validation("cause", "cause must be 1 to 200 and reason 1 to 100 bytes"));
    }
    Ok(())
}
