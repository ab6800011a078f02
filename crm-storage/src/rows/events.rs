//! Decoding events (the log, and the event part of an outbox claim).

use crm_core::{AccountId, Event, EventId, EventType, Result};

use super::{Columns, stored};

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
