//! [`SequenceStore`] over PostgreSQL.

use async_trait::async_trait;

use crm_core::ports::sequences::{Enrolling, EnrolmentQuery, check_enrolling, check_enrolment_update};
use crm_core::ports::store::check_event_account;
use crm_core::{
    AccountId, Enrolment, EnrolmentId, Error, Event, Job, Page, PageRequest, Result, Sequence, SequenceId,
    SequenceStore,
};

use super::jobs::insert_job;
use super::{PgStore, Tx, append, commit, exists};
use crate::error::db;
use crate::rows::sequences::{enrolment_row, sequence_row};
use crate::rows::to_json;

const SEQUENCE_EXISTS: &str = "SELECT 1 FROM sequences WHERE id = $1 AND account_id = $2";
const ENROLMENT_EXISTS: &str = "SELECT 1 FROM sequence_enrolments WHERE id = $1 AND account_id = $2";

/// The error for a compare-and-set that matched no row: a stale version, or a missing row.
async fn stale_or_missing(
    tx: &mut Tx,
    sql: &'static str,
    id: uuid::Uuid,
    account: AccountId,
    what: &'static str,
) -> Error {
    match exists(tx, sql, id, account).await {
        Ok(true) => Error::conflict(what, "it was changed meanwhile; read it again"),
        Ok(false) => Error::not_found(what),
        Err(e) => e,
    }
}

async fn insert_enrolment(tx: &mut Tx, e: &Enrolment) -> Result<bool> {
    let source = e.source.as_ref().map(|s| to_json("source", s)).transpose()?;
    let done = sqlx::query(
        "INSERT INTO sequence_enrolments (id, account_id, sequence_id, contact_id, state, stop_reason, stop_detail, \
         current_step, next_run_at, stage, source, enrolled_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (sequence_id, contact_id) WHERE state = 'active' DO NOTHING",
    )
    .bind(e.id.into_uuid())
    .bind(e.account_id.into_uuid())
    .bind(e.sequence_id.into_uuid())
    .bind(e.contact_id.into_uuid())
    .bind(e.state.as_str())
    .bind(e.stop_reason.map(|r| r.as_str()))
    .bind(e.stop_detail.as_deref())
    .bind(i64::from(e.current_step))
    .bind(e.next_run_at)
    .bind(e.stage.as_str())
    .bind(source)
    .bind(e.enrolled_at)
    .bind(e.updated_at)
    .bind(e.version)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("enrolling a contact", e))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl SequenceStore for PgStore {
    async fn insert_sequence(&self, s: &Sequence, event: &Event) -> Result<()> {
        check_event_account(s.account_id, event)?;
        let steps = to_json("steps", &s.steps)?;
        let window = s.window.as_ref().map(|w| to_json("window", w)).transpose()?;
        let late = to_json("late", &s.late)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sequences (id, account_id, name, enabled, steps, send_window, late_policy, created_at, \
             updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.id.into_uuid())
        .bind(s.account_id.into_uuid())
        .bind(&s.name)
        .bind(s.enabled)
        .bind(steps)
        .bind(window)
        .bind(late)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(s.version)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a sequence", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_sequence(&self, account: AccountId, id: SequenceId) -> Result<Sequence> {
        crate::rows::sequences::get_sequence(self, account, id).await
    }

    async fn list_sequences(&self, account: AccountId, page: &PageRequest) -> Result<Page<Sequence>> {
        crate::rows::sequences::list_sequences(self, account, page).await
    }

    async fn update_sequence(&self, s: &Sequence, event: &Event) -> Result<Sequence> {
        check_event_account(s.account_id, event)?;
        let steps = to_json("steps", &s.steps)?;
        let window = s.window.as_ref().map(|w| to_json("window", w)).transpose()?;
        let late = to_json("late", &s.late)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE sequences SET name = $1, enabled = $2, steps = $3, send_window = $4, late_policy = $5, \
             updated_at = $6, version = version + 1 WHERE id = $7 AND account_id = $8 AND version = $9 RETURNING *",
        )
        .bind(&s.name)
        .bind(s.enabled)
        .bind(steps)
        .bind(window)
        .bind(late)
        .bind(s.updated_at)
        .bind(s.id.into_uuid())
        .bind(s.account_id.into_uuid())
        .bind(s.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a sequence", e))?;
        let Some(row) = row else {
            return Err(stale_or_missing(&mut tx, SEQUENCE_EXISTS, s.id.into_uuid(), s.account_id, "sequence").await);
        };
        let stored = sequence_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_sequence(&self, account: AccountId, id: SequenceId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM sequences WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a sequence", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("sequence"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn enrol(&self, account: AccountId, batch: &[Enrolling]) -> Result<Vec<bool>> {
        check_enrolling(account, batch)?;
        let mut tx = self.write().await?;
        let mut checked = std::collections::HashSet::new();
        let mut stored = Vec::with_capacity(batch.len());
        for item in batch {
            let sequence = item.enrolment.sequence_id.into_uuid();
            if checked.insert(sequence) && !exists(&mut tx, SEQUENCE_EXISTS, sequence, account).await? {
                return Err(Error::not_found("sequence"));
            }
            let inserted = insert_enrolment(&mut tx, &item.enrolment).await?;
            if inserted {
                insert_job(&mut *tx, &item.job).await?;
                append(&mut tx, &item.event).await?;
            }
            stored.push(inserted);
        }
        commit(tx).await?;
        Ok(stored)
    }

    async fn get_enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<Enrolment> {
        crate::rows::sequences::get_enrolment(self, account, id).await
    }

    async fn list_enrolments(&self, account: AccountId, query: &EnrolmentQuery) -> Result<Page<Enrolment>> {
        crate::rows::sequences::list_enrolments(self, account, query).await
    }

    async fn update_enrolment(&self, e: &Enrolment, event: Option<&Event>, next: Option<&Job>) -> Result<Enrolment> {
        check_enrolment_update(e, event, next)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE sequence_enrolments SET state = $1, stop_reason = $2, stop_detail = $3, current_step = $4, \
             next_run_at = $5, stage = $6, updated_at = $7, version = version + 1 \
             WHERE id = $8 AND account_id = $9 AND version = $10 AND (state = 'active' OR $11 <> 'active') RETURNING *",
        )
        .bind(e.state.as_str())
        .bind(e.stop_reason.map(|r| r.as_str()))
        .bind(e.stop_detail.as_deref())
        .bind(i64::from(e.current_step))
        .bind(e.next_run_at)
        .bind(e.stage.as_str())
        .bind(e.updated_at)
        .bind(e.id.into_uuid())
        .bind(e.account_id.into_uuid())
        .bind(e.version)
        .bind(e.state.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating an enrolment", e))?;
        let Some(row) = row else {
            return Err(stale_or_missing(&mut tx, ENROLMENT_EXISTS, e.id.into_uuid(), e.account_id, "enrolment").await);
        };
        let stored = enrolment_row(&row)?;
        if let Some(job) = next {
            insert_job(&mut *tx, job).await?;
        }
        if let Some(event) = event {
            append(&mut tx, event).await?;
        }
        commit(tx).await?;
        Ok(stored)
    }
}
