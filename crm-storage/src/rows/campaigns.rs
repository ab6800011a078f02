//! Campaigns and recipients: row decoding and the reads both dialects share.

use crm_core::domain::campaign::{PlanProgress, RecipientCounts};
use crm_core::{
    AccountId, Campaign, CampaignId, CampaignState, ChannelId, ContactId, Error, MessageId, Page, PageRequest,
    Recipient, RecipientState, Result,
};

use super::{Arg, Columns, Fetch, json_from, page_args, stored};

/// A `campaigns` row.
pub(crate) fn campaign_row(r: &impl Columns) -> Result<Campaign> {
    Ok(Campaign {
        id: CampaignId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        channel_id: ChannelId::from_uuid(r.uuid("channel_id")?),
        template_name: r.text("template_name")?,
        template_language: r.text("template_language")?,
        variables: json_from("variables", r.json("variables")?)?,
        audience: json_from("audience", r.json("audience")?)?,
        state: r.parsed("state", CampaignState::parse)?,
        scheduled_at: r.opt_time("scheduled_at")?,
        started_at: r.opt_time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
        stop_reason: r.opt_text("stop_reason")?,
        plan: PlanProgress {
            planned: count("plan_planned", r.int("plan_planned")?)?,
            after: r.opt_uuid("plan_after")?.map(ContactId::from_uuid),
            done: r.flag("plan_done")?,
        },
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

fn count(col: &'static str, n: i64) -> Result<u64> {
    stored(col, u64::try_from(n).map_err(|_| Error::validation(col, "negative")))
}

/// A `campaign_recipients` row.
pub(crate) fn recipient_row(r: &impl Columns) -> Result<Recipient> {
    Ok(Recipient {
        campaign_id: CampaignId::from_uuid(r.uuid("campaign_id")?),
        seq: count("seq", r.int("seq")?)?,
        contact_id: r.opt_uuid("contact_id")?.map(ContactId::from_uuid),
        phone: r.opt_text("phone")?,
        state: r.parsed("state", RecipientState::parse)?,
        reason: r.opt_text("reason")?,
        message_id: r.opt_uuid("message_id")?.map(MessageId::from_uuid),
        replied_at: r.opt_time("replied_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// The SQL list of the states a recipient may move to `next` from.
pub(crate) fn predecessors_sql(next: RecipientState) -> &'static str {
    match next {
        RecipientState::Pending => "(NULL)",
        RecipientState::Skipped | RecipientState::Queued => "('pending')",
        RecipientState::Sent => "('queued')",
        RecipientState::Delivered => "('queued', 'sent')",
        RecipientState::Read => "('queued', 'sent', 'delivered')",
        RecipientState::Failed => "('pending', 'queued', 'sent', 'delivered')",
    }
}

/// [`CampaignStore::get_campaign`](crm_core::CampaignStore::get_campaign).
pub(crate) async fn get_campaign(db: &impl Fetch, account: AccountId, id: CampaignId) -> Result<Campaign> {
    let sql = "SELECT * FROM campaigns WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a campaign", sql, args).await?;
    row.map(|r| campaign_row(&r)).transpose()?.ok_or(Error::not_found("campaign"))
}

/// [`CampaignStore::list_campaigns`](crm_core::CampaignStore::list_campaigns).
pub(crate) async fn list_campaigns(db: &impl Fetch, account: AccountId, page: &PageRequest) -> Result<Page<Campaign>> {
    let sql = "SELECT * FROM campaigns WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let mut args = vec![account.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing campaigns", sql, args).await?;
    let items = rows.iter().map(campaign_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.into_uuid()))
}

/// [`CampaignStore::pending_recipients`](crm_core::CampaignStore::pending_recipients).
pub(crate) async fn pending_recipients(
    db: &impl Fetch,
    account: AccountId,
    campaign: CampaignId,
    limit: u32,
) -> Result<Vec<Recipient>> {
    list_recipients(db, account, campaign, Some(RecipientState::Pending), None, limit).await
}

/// [`CampaignStore::list_recipients`](crm_core::CampaignStore::list_recipients).
pub(crate) async fn list_recipients(
    db: &impl Fetch,
    account: AccountId,
    campaign: CampaignId,
    state: Option<RecipientState>,
    after_seq: Option<u64>,
    limit: u32,
) -> Result<Vec<Recipient>> {
    crm_core::ports::campaigns::check_recipient_limit(limit)?;
    get_campaign(db, account, campaign).await?;
    let sql = "SELECT * FROM campaign_recipients WHERE campaign_id = $1 AND account_id = $2 \
               AND ($3 IS NULL OR state = $3) AND seq > $4 ORDER BY seq LIMIT $5";
    let after = after_seq.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let args = vec![
        campaign.into_uuid().into(),
        account.into_uuid().into(),
        Arg::from(state.map(RecipientState::as_str)),
        Arg::Int(after),
        Arg::Int(i64::from(limit)),
    ];
    let rows = db.fetch_all("listing recipients", sql, args).await?;
    rows.iter().map(recipient_row).collect()
}

/// [`CampaignStore::recipient_counts`](crm_core::CampaignStore::recipient_counts).
pub(crate) async fn recipient_counts(
    db: &impl Fetch,
    account: AccountId,
    campaign: CampaignId,
) -> Result<RecipientCounts> {
    get_campaign(db, account, campaign).await?;
    let sql = "SELECT state, COUNT(*) AS n, COUNT(replied_at) AS replied FROM campaign_recipients \
               WHERE campaign_id = $1 AND account_id = $2 GROUP BY state";
    let args = vec![campaign.into_uuid().into(), account.into_uuid().into()];
    let rows = db.fetch_all("counting recipients", sql, args).await?;
    let mut counts = RecipientCounts::default();
    for r in &rows {
        let state = r.parsed("state", RecipientState::parse)?;
        counts.by_state[state.index()] = count("n", r.int("n")?)?;
        counts.replied += count("replied", r.int("replied")?)?;
    }
    Ok(counts)
}
