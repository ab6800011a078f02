//! Sequences and enrolments: row decoding and the reads both dialects share.

use crm_core::ports::sequences::EnrolmentQuery;
use crm_core::{
    AccountId, ContactId, Enrolment, EnrolmentId, EnrolmentState, Error, LeadStage, Page, PageRequest, Result,
    Sequence, SequenceId, StopReason,
};

use super::{Arg, Columns, Fetch, json_from, page_args, stored};

/// A `sequences` row.
pub(crate) fn sequence_row(r: &impl Columns) -> Result<Sequence> {
    Ok(Sequence {
        id: SequenceId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        enabled: r.flag("enabled")?,
        steps: json_from("steps", r.json("steps")?)?,
        window: r.opt_json("send_window")?.map(|w| json_from("send_window", w)).transpose()?,
        // NULL: a row from before 0024, on the default policy.
        late: r.opt_json("late_policy")?.map(|w| json_from("late_policy", w)).transpose()?.unwrap_or_default(),
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

/// A `sequence_enrolments` row.
pub(crate) fn enrolment_row(r: &impl Columns) -> Result<Enrolment> {
    let step = r.int("current_step")?;
    Ok(Enrolment {
        id: EnrolmentId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        sequence_id: SequenceId::from_uuid(r.uuid("sequence_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        state: r.parsed("state", EnrolmentState::parse)?,
        stop_reason: r.opt_text("stop_reason")?.map(|s| stored("stop_reason", StopReason::parse(&s))).transpose()?,
        stop_detail: r.opt_text("stop_detail")?,
        current_step: stored(
            "current_step",
            u32::try_from(step).map_err(|_| Error::validation("current_step", "out of range")),
        )?,
        next_run_at: r.opt_time("next_run_at")?,
        stage: r.parsed("stage", LeadStage::parse)?,
        source: r.opt_json("source")?,
        enrolled_at: r.time("enrolled_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

/// [`SequenceStore::get_sequence`](crm_core::SequenceStore::get_sequence).
pub(crate) async fn get_sequence(db: &impl Fetch, account: AccountId, id: SequenceId) -> Result<Sequence> {
    let sql = "SELECT * FROM sequences WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a sequence", sql, args).await?;
    row.map(|r| sequence_row(&r)).transpose()?.ok_or(Error::not_found("sequence"))
}

/// [`SequenceStore::list_sequences`](crm_core::SequenceStore::list_sequences).
pub(crate) async fn list_sequences(db: &impl Fetch, account: AccountId, page: &PageRequest) -> Result<Page<Sequence>> {
    let sql = "SELECT * FROM sequences WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let mut args = vec![account.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing sequences", sql, args).await?;
    let items = rows.iter().map(sequence_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |s| s.id.into_uuid()))
}

/// [`SequenceStore::get_enrolment`](crm_core::SequenceStore::get_enrolment).
pub(crate) async fn get_enrolment(db: &impl Fetch, account: AccountId, id: EnrolmentId) -> Result<Enrolment> {
    let sql = "SELECT * FROM sequence_enrolments WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading an enrolment", sql, args).await?;
    row.map(|r| enrolment_row(&r)).transpose()?.ok_or(Error::not_found("enrolment"))
}

/// [`SequenceStore::list_enrolments`](crm_core::SequenceStore::list_enrolments).
pub(crate) async fn list_enrolments(
    db: &impl Fetch,
    account: AccountId,
    query: &EnrolmentQuery,
) -> Result<Page<Enrolment>> {
    let sql = "SELECT * FROM sequence_enrolments WHERE account_id = $1 AND ($2 IS NULL OR sequence_id = $2) \
               AND ($3 IS NULL OR contact_id = $3) AND ($4 IS NULL OR state = $4) AND id > $5 ORDER BY id LIMIT $6";
    let mut args = vec![
        account.into_uuid().into(),
        Arg::OptUuid(query.sequence.map(SequenceId::into_uuid)),
        Arg::OptUuid(query.contact.map(ContactId::into_uuid)),
        query.state.map(EnrolmentState::as_str).into(),
    ];
    args.extend(page_args(&query.page));
    let rows = db.fetch_all("listing enrolments", sql, args).await?;
    let items = rows.iter().map(enrolment_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, query.page.limit, |e| e.id.into_uuid()))
}
