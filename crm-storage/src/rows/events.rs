//! Events: row decoding (the log, and the event part of an outbox claim) and
//! the log reads both dialects share. The outbox is written per dialect.

use crm_core::ports::store::check_event_limit;
use crm_core::{AccountId, Event, EventId, EventType, Result};
use uuid::Uuid;

use super::{Arg, Columns, Fetch, stored};

/// An `events` row (or a row carrying an event's columns).
pub(crate) fn event_row(r: &impl Columns) -> Result<Event> {
    Ok(Event {
        id: EventId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        event_type: stored("type", EventType::custom(r.text("type")?))?,
        payload: r.json("payload")?,
        occurred_at: r.time("occurred_at")?,
    })
}

/// [`EventStore::list_events`](crm_core::EventStore::list_events).
pub(crate) async fn list_events(
    db: &impl Fetch,
    account: AccountId,
    after: Option<EventId>,
    limit: u32,
) -> Result<Vec<Event>> {
    check_event_limit(limit)?;
    let sql = "SELECT * FROM events WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let args = vec![account.into_uuid().into(), cursor(after), i64::from(limit).into()];
    db.fetch_all("listing events", sql, args).await?.iter().map(event_row).collect()
}

/// [`EventStore::read_all_events`](crm_core::EventStore::read_all_events).
pub(crate) async fn read_all_events(db: &impl Fetch, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
    check_event_limit(limit)?;
    let sql = "SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2";
    let args = vec![cursor(after), i64::from(limit).into()];
    db.fetch_all("reading events", sql, args).await?.iter().map(event_row).collect()
}

/// The log position to read after: the event's id, or the nil id for the start.
fn cursor(after: Option<EventId>) -> Arg {
    Arg::Uuid(after.map_or(Uuid::nil(), EventId::into_uuid))
}
