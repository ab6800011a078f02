//! Jobs: row decoding and the reads both dialects share. Claims, leases and
//! statistics use the store's clock and are written per dialect.

use crm_core::{AccountId, Error, Job, JobId, JobQuery, JobState, Page, Result};

use super::{Columns, Fetch, page_args};

/// The columns of a `jobs` row as [`job_row`] reads them (`attempt` widened
/// to a 64-bit integer in both dialects). A macro so that it joins other
/// literals in `concat!`.
macro_rules! job_columns {
    () => {
        "id, kind, account_id, payload, unique_key, run_at, CAST(attempt AS BIGINT) AS attempt, last_error, \
         state, created_at"
    };
}
pub(crate) use job_columns;

/// A `jobs` row selected with [`job_columns`].
pub(crate) fn job_row(r: &impl Columns) -> Result<Job> {
    Ok(Job {
        id: JobId::from_uuid(r.uuid("id")?),
        kind: r.text("kind")?,
        account_id: r.opt_uuid("account_id")?.map(AccountId::from_uuid),
        payload: r.json("payload")?,
        unique_key: r.opt_text("unique_key")?,
        run_at: r.time("run_at")?,
        attempt: u32::try_from(r.int("attempt")?).unwrap_or(0),
        last_error: r.opt_text("last_error")?,
        state: r.parsed("state", JobState::parse)?,
        created_at: r.time("created_at")?,
    })
}

/// [`JobStore::get_job`](crm_core::JobStore::get_job).
pub(crate) async fn get_job(db: &impl Fetch, account: AccountId, id: JobId) -> Result<Job> {
    let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1 AND account_id = $2");
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a job", sql, args).await?;
    row.map(|r| job_row(&r)).transpose()?.ok_or(Error::not_found("job"))
}

/// [`JobStore::list_jobs`](crm_core::JobStore::list_jobs).
pub(crate) async fn list_jobs(db: &impl Fetch, account: AccountId, query: &JobQuery) -> Result<Page<Job>> {
    let sql = concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE account_id = $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR state = $3) \
         AND id > $4 ORDER BY id LIMIT $5"
    );
    let mut args =
        vec![account.into_uuid().into(), query.kind.as_deref().into(), query.state.map(JobState::as_str).into()];
    args.extend(page_args(&query.page));
    let rows = db.fetch_all("listing jobs", sql, args).await?;
    let items = rows.iter().map(job_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, query.page.limit, |j| j.id.into_uuid()))
}
