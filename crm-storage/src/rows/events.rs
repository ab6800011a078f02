//! Events: row decoding (the log, the event part of an outbox claim, dead
//! letters), the log reads and the outbox reads both dialects share. Outbox
//! writes (claims, leases, replays) and the queue statistics use the store's
//! clock and are written per dialect.

use crm_core::ports::store::{MAX_NACK_ERROR_CHARS, check_consumer_name, check_event_limit};
use crm_core::{AccountId, DeadLetter, Event, EventId, EventType, Result};
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

/// [`EventStore::list_consumers`](crm_core::EventStore::list_consumers),
/// sorted by name in byte order (not the database's collation).
pub(crate) async fn list_consumers(db: &impl Fetch) -> Result<Vec<String>> {
    let rows = db.fetch_all("listing consumers", "SELECT name FROM outbox_consumers", vec![]).await?;
    let mut names = rows.iter().map(|r| r.text("name")).collect::<Result<Vec<_>>>()?;
    names.sort_unstable();
    Ok(names)
}

/// [`EventStore::list_dead_letters`](crm_core::EventStore::list_dead_letters).
pub(crate) async fn list_dead_letters(
    db: &impl Fetch,
    consumer: &str,
    account: AccountId,
    after: Option<EventId>,
    limit: u32,
) -> Result<Vec<DeadLetter>> {
    check_consumer_name(consumer)?;
    check_event_limit(limit)?;
    let sql = "SELECT CAST(o.attempt AS BIGINT) AS attempts, o.last_error AS last_error, o.dead_at AS dead_at, e.* \
               FROM outbox o JOIN events e ON e.id = o.event_id \
               WHERE o.consumer = $1 AND o.dead_at IS NOT NULL AND e.account_id = $2 AND o.event_id > $3 \
               ORDER BY o.event_id LIMIT $4";
    let args = vec![consumer.into(), account.into_uuid().into(), cursor(after), i64::from(limit).into()];
    let rows = db.fetch_all("listing dead letters", sql, args).await?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                consumer: consumer.to_owned(),
                event: event_row(r)?,
                attempts: u32::try_from(r.int("attempts")?).unwrap_or(0),
                error: r.opt_text("last_error")?.unwrap_or_default(),
                dead_at: r.time("dead_at")?,
            })
        })
        .collect()
}

/// The first [`MAX_NACK_ERROR_CHARS`] characters of an error to record.
pub(crate) fn clip_error(error: &str) -> String {
    error.chars().take(MAX_NACK_ERROR_CHARS).collect()
}

/// The log position to read after: the event's id, or the nil id for the start.
fn cursor(after: Option<EventId>) -> Arg {
    Arg::Uuid(after.map_or(Uuid::nil(), EventId::into_uuid))
}
