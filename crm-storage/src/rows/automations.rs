//! Automation rules, versions, runs and score history: row decoding and the
//! reads both dialects share.

use crm_core::domain::automation::{
    Automation, AutomationId, AutomationRun, AutomationRunId, AutomationVersion, RunStatus,
};
use crm_core::domain::scoring::{ScoreChange, ScoringModel};
use crm_core::{AccountId, ContactId, Error, EventId, LeadStage, Page, PageRequest, Result};

use super::{Columns, Fetch, json_from, page_args};
use crate::error::corrupt;

fn u32_of(r: &impl Columns, col: &'static str) -> Result<u32> {
    u32::try_from(r.int(col)?).map_err(|e| corrupt(col, e))
}

fn u8_of(r: &impl Columns, col: &'static str) -> Result<u8> {
    u8::try_from(r.int(col)?).map_err(|e| corrupt(col, e))
}

/// An `automations` row.
pub(crate) fn automation_row(r: &impl Columns) -> Result<Automation> {
    Ok(Automation {
        id: AutomationId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        enabled: r.flag("enabled")?,
        version: u32_of(r, "version")?,
        definition: json_from("definition", r.json("definition")?)?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// An `automation_versions` row.
pub(crate) fn version_row(r: &impl Columns) -> Result<AutomationVersion> {
    Ok(AutomationVersion {
        automation_id: AutomationId::from_uuid(r.uuid("automation_id")?),
        version: u32_of(r, "version")?,
        name: r.text("name")?,
        definition: json_from("definition", r.json("definition")?)?,
        created_at: r.time("created_at")?,
    })
}

/// An `automation_runs` row.
pub(crate) fn run_row(r: &impl Columns) -> Result<AutomationRun> {
    Ok(AutomationRun {
        id: AutomationRunId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        automation_id: AutomationId::from_uuid(r.uuid("automation_id")?),
        version: u32_of(r, "version")?,
        event_id: EventId::from_uuid(r.uuid("event_id")?),
        contact_id: r.opt_uuid("contact_id")?.map(ContactId::from_uuid),
        status: r.parsed("status", RunStatus::parse)?,
        reason: r.opt_text("reason")?,
        next_step: u32_of(r, "next_step")?,
        steps: json_from("steps", r.json("steps")?)?,
        started_at: r.time("started_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A `score_history` row.
pub(crate) fn score_row(r: &impl Columns) -> Result<ScoreChange> {
    Ok(ScoreChange {
        id: r.uuid("id")?,
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        old_score: u8_of(r, "old_score")?,
        new_score: u8_of(r, "new_score")?,
        new_stage: r.opt_text("new_stage")?.map(|s| super::stored("new_stage", LeadStage::parse(&s))).transpose()?,
        reason: r.text("reason")?,
        event_id: r.opt_uuid("event_id")?.map(EventId::from_uuid),
        cause: r.text("cause")?,
        at: r.time("at")?,
    })
}

/// [`AutomationStore::get_automation`](crm_core::AutomationStore::get_automation).
pub(crate) async fn get_automation(db: &impl Fetch, account: AccountId, id: AutomationId) -> Result<Automation> {
    let sql = "SELECT * FROM automations WHERE id = $1 AND account_id = $2";
    let row = db.fetch_optional("reading an automation", sql, vec![id.into_uuid().into(), account.into_uuid().into()]);
    row.await?.map(|r| automation_row(&r)).transpose()?.ok_or(Error::not_found("automation"))
}

/// [`AutomationStore::list_automations`](crm_core::AutomationStore::list_automations).
pub(crate) async fn list_automations(
    db: &impl Fetch,
    account: AccountId,
    page: &PageRequest,
) -> Result<Page<Automation>> {
    let sql = "SELECT * FROM automations WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let mut args = vec![account.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing automations", sql, args).await?;
    let items = rows.iter().map(automation_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |a| a.id.into_uuid()))
}

/// [`AutomationStore::count_automations`](crm_core::AutomationStore::count_automations).
pub(crate) async fn count_automations(db: &impl Fetch, account: AccountId) -> Result<u64> {
    let sql = "SELECT COUNT(*) AS n FROM automations WHERE account_id = $1";
    let rows = db.fetch_all("counting automations", sql, vec![account.into_uuid().into()]).await?;
    let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// [`AutomationStore::enabled_automations`](crm_core::AutomationStore::enabled_automations).
pub(crate) async fn enabled_automations(
    db: &impl Fetch,
    account: AccountId,
    event_type: &str,
) -> Result<Vec<Automation>> {
    let sql = "SELECT * FROM automations WHERE account_id = $1 AND trigger_event = $2 AND enabled ORDER BY id";
    let rows = db.fetch_all("reading automations", sql, vec![account.into_uuid().into(), event_type.into()]).await?;
    rows.iter().map(automation_row).collect()
}

/// [`AutomationStore::get_automation_version`](crm_core::AutomationStore::get_automation_version).
pub(crate) async fn get_version(
    db: &impl Fetch,
    account: AccountId,
    id: AutomationId,
    version: u32,
) -> Result<AutomationVersion> {
    get_automation(db, account, id).await?;
    let sql = "SELECT * FROM automation_versions WHERE automation_id = $1 AND version = $2";
    let args = vec![id.into_uuid().into(), i64::from(version).into()];
    let row = db.fetch_optional("reading an automation version", sql, args).await?;
    row.map(|r| version_row(&r)).transpose()?.ok_or(Error::not_found("automation version"))
}

/// [`AutomationStore::list_automation_versions`](crm_core::AutomationStore::list_automation_versions).
pub(crate) async fn list_versions(
    db: &impl Fetch,
    account: AccountId,
    id: AutomationId,
) -> Result<Vec<AutomationVersion>> {
    get_automation(db, account, id).await?;
    let sql = "SELECT * FROM automation_versions WHERE automation_id = $1 ORDER BY version";
    let rows = db.fetch_all("listing automation versions", sql, vec![id.into_uuid().into()]).await?;
    rows.iter().map(version_row).collect()
}

/// [`AutomationStore::get_run`](crm_core::AutomationStore::get_run).
pub(crate) async fn get_run(db: &impl Fetch, account: AccountId, id: AutomationRunId) -> Result<AutomationRun> {
    let sql = "SELECT * FROM automation_runs WHERE id = $1 AND account_id = $2";
    let row =
        db.fetch_optional("reading an automation run", sql, vec![id.into_uuid().into(), account.into_uuid().into()]);
    row.await?.map(|r| run_row(&r)).transpose()?.ok_or(Error::not_found("automation run"))
}

/// [`AutomationStore::find_run`](crm_core::AutomationStore::find_run).
pub(crate) async fn find_run(
    db: &impl Fetch,
    account: AccountId,
    rule: AutomationId,
    event: EventId,
) -> Result<Option<AutomationRun>> {
    let sql = "SELECT * FROM automation_runs WHERE automation_id = $1 AND event_id = $2 AND account_id = $3";
    let args = vec![rule.into_uuid().into(), event.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading an automation run", sql, args).await?;
    row.map(|r| run_row(&r)).transpose()
}

/// [`AutomationStore::list_runs`](crm_core::AutomationStore::list_runs).
pub(crate) async fn list_runs(
    db: &impl Fetch,
    account: AccountId,
    rule: AutomationId,
    page: &PageRequest,
) -> Result<Page<AutomationRun>> {
    get_automation(db, account, rule).await?;
    let sql = "SELECT * FROM automation_runs WHERE automation_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let mut args = vec![rule.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing automation runs", sql, args).await?;
    let items = rows.iter().map(run_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |r| r.id.into_uuid()))
}

/// [`AutomationStore::latest_runs`](crm_core::AutomationStore::latest_runs).
pub(crate) async fn latest_runs(
    db: &impl Fetch,
    account: AccountId,
    rule: AutomationId,
    limit: u32,
) -> Result<Vec<AutomationRun>> {
    PageRequest::first(limit)?;
    get_automation(db, account, rule).await?;
    let sql = "SELECT * FROM automation_runs WHERE automation_id = $1 ORDER BY id DESC LIMIT $2";
    let rows = db
        .fetch_all("listing recent automation runs", sql, vec![rule.into_uuid().into(), i64::from(limit).into()])
        .await?;
    rows.iter().map(run_row).collect()
}

/// [`AutomationStore::get_scoring_model`](crm_core::AutomationStore::get_scoring_model).
pub(crate) async fn get_scoring_model(db: &impl Fetch, account: AccountId) -> Result<Option<ScoringModel>> {
    let sql = "SELECT model FROM scoring_models WHERE account_id = $1";
    let row = db.fetch_optional("reading a scoring model", sql, vec![account.into_uuid().into()]).await?;
    row.map(|r| json_from("model", r.json("model")?)).transpose()
}

/// [`AutomationStore::has_score_cause`](crm_core::AutomationStore::has_score_cause).
pub(crate) async fn has_score_cause(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    cause: &str,
) -> Result<bool> {
    let sql = "SELECT 1 AS one FROM score_history WHERE contact_id = $1 AND account_id = $2 AND cause = $3";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into(), cause.into()];
    Ok(db.fetch_optional("reading score history", sql, args).await?.is_some())
}

/// [`AutomationStore::score_history`](crm_core::AutomationStore::score_history).
pub(crate) async fn score_history(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    page: &PageRequest,
) -> Result<Page<ScoreChange>> {
    let sql = "SELECT 1 AS one FROM contacts WHERE id = $1 AND account_id = $2";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into()];
    if db.fetch_optional("reading a contact", sql, args).await?.is_none() {
        return Err(Error::not_found("contact"));
    }
    let sql = "SELECT * FROM score_history WHERE account_id = $1 AND contact_id = $2 AND id > $3 ORDER BY id LIMIT $4";
    let mut args = vec![account.into_uuid().into(), contact.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("reading score history", sql, args).await?;
    let items = rows.iter().map(score_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id))
}
