//! The inbox: row decoding, the list query (its activity expression per
//! dialect, the rest written once) and the reads both dialects share.

use crm_core::domain::inbox::{InboxFilter, LastMessage, ThreadState, ThreadSummary};
use crm_core::ports::inbox::check_recent_limit;
use crm_core::{AccountId, ContactId, Direction, Error, Message, MessageId, MessageStatus, Result, UserId};

use super::messages::message_row;
use super::{Arg, Columns, Fetch, json_from};

/// The inbox list, one statement: contacts with messages by last activity
/// (`$1` account; `$2` filter `all`/`mine`/`unassigned`; `$3` the user of
/// `mine`; `$4` limit + 1), each with its state, its unread inbound
/// messages counted up to 100 (`MAX_UNREAD_COUNTED`) and its latest
/// message. `$activity` is the dialect's "later of the two times" — the
/// expression of `contacts_activity_idx`; `$present` says it is set;
/// `$after` is empty or the keyset condition on `$5` (time) and `$6`
/// (contact id).
macro_rules! list_inbox {
    ($activity:literal, $present:literal, $after:literal) => {
        concat!(
            "SELECT c.id AS contact_id, c.name, c.phone, ", $activity, " AS activity_at, t.assignee_id, \
             (SELECT COUNT(*) FROM (SELECT 1 FROM messages u WHERE u.account_id = c.account_id \
               AND u.contact_id = c.id AND u.direction = 'inbound' \
               AND (t.read_through IS NULL OR u.id > t.read_through) LIMIT 100) unread_rows) AS unread, \
             lm.id AS m_id, lm.direction AS m_direction, lm.status AS m_status, lm.content AS m_content, \
             lm.created_at AS m_created_at \
             FROM contacts c \
             LEFT JOIN inbox_threads t ON t.account_id = c.account_id AND t.contact_id = c.id \
             LEFT JOIN messages lm ON lm.id = (SELECT m.id FROM messages m WHERE m.account_id = c.account_id \
               AND m.contact_id = c.id ORDER BY m.id DESC LIMIT 1) \
             WHERE c.account_id = $1 AND ", $activity, " ", $present, " \
             AND ($2 = 'all' OR ($2 = 'mine' AND t.assignee_id = $3) OR ($2 = 'unassigned' AND t.assignee_id IS NULL)) ",
            $after,
            " ORDER BY ", $activity, " DESC, c.id DESC LIMIT $4"
        )
    };
}

/// SQLite's first page (times are INTEGER microseconds; `max` of two NULLs is NULL, hence `coalesce`).
pub(crate) const LIST_INBOX_SQLITE: &str =
    list_inbox!("max(coalesce(c.last_inbound_at, 0), coalesce(c.last_outbound_at, 0))", "> 0", "");
/// SQLite's next pages.
pub(crate) const LIST_INBOX_AFTER_SQLITE: &str = list_inbox!(
    "max(coalesce(c.last_inbound_at, 0), coalesce(c.last_outbound_at, 0))",
    "> 0",
    "AND (max(coalesce(c.last_inbound_at, 0), coalesce(c.last_outbound_at, 0)), c.id) < ($5, $6)"
);
/// PostgreSQL's first page (`GREATEST` ignores NULLs).
pub(crate) const LIST_INBOX_PG: &str =
    list_inbox!("GREATEST(c.last_inbound_at, c.last_outbound_at)", "IS NOT NULL", "");
/// PostgreSQL's next pages.
pub(crate) const LIST_INBOX_AFTER_PG: &str = list_inbox!(
    "GREATEST(c.last_inbound_at, c.last_outbound_at)",
    "IS NOT NULL",
    "AND (GREATEST(c.last_inbound_at, c.last_outbound_at), c.id) < ($5, $6)"
);

/// `(filter name, user of "mine")` for the list statement.
pub(crate) fn filter_args(filter: InboxFilter) -> (&'static str, Option<uuid::Uuid>) {
    match filter {
        InboxFilter::All => ("all", None),
        InboxFilter::Mine(user) => ("mine", Some(user.into_uuid())),
        InboxFilter::Unassigned => ("unassigned", None),
    }
}

/// A list row.
pub(crate) fn summary_row(r: &impl Columns) -> Result<ThreadSummary> {
    let last_message = match r.opt_uuid("m_id")? {
        None => None,
        Some(id) => Some(LastMessage {
            id: MessageId::from_uuid(id),
            direction: r.parsed("m_direction", Direction::parse)?,
            status: r.parsed("m_status", MessageStatus::parse)?,
            content: json_from("m_content", r.json("m_content")?)?,
            created_at: r.time("m_created_at")?,
        }),
    };
    Ok(ThreadSummary {
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        name: r.text("name")?,
        phone: r.text("phone")?,
        activity_at: r.time("activity_at")?,
        last_message,
        unread: u32::try_from(r.int("unread")?).unwrap_or(0),
        assignee_id: r.opt_uuid("assignee_id")?.map(UserId::from_uuid),
    })
}

/// An `inbox_threads` row (`RETURNING *`).
pub(crate) fn state_row(r: &impl Columns) -> Result<ThreadState> {
    Ok(ThreadState {
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        assignee_id: r.opt_uuid("assignee_id")?.map(UserId::from_uuid),
        assigned_at: r.opt_time("assigned_at")?,
        read_through: r.opt_uuid("read_through")?.map(MessageId::from_uuid),
        read_at: r.opt_time("read_at")?,
        read_by: r.opt_uuid("read_by")?.map(UserId::from_uuid),
    })
}

/// [`InboxStore::thread_state`](crm_core::InboxStore::thread_state).
pub(crate) async fn thread_state(db: &impl Fetch, account: AccountId, contact: ContactId) -> Result<ThreadState> {
    let sql = "SELECT t.assignee_id, t.assigned_at, t.read_through, t.read_at, t.read_by \
               FROM contacts c LEFT JOIN inbox_threads t ON t.account_id = c.account_id AND t.contact_id = c.id \
               WHERE c.id = $1 AND c.account_id = $2";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a thread's state", sql, args).await?.ok_or(Error::not_found("contact"))?;
    Ok(ThreadState {
        account_id: account,
        contact_id: contact,
        assignee_id: row.opt_uuid("assignee_id")?.map(UserId::from_uuid),
        assigned_at: row.opt_time("assigned_at")?,
        read_through: row.opt_uuid("read_through")?.map(MessageId::from_uuid),
        read_at: row.opt_time("read_at")?,
        read_by: row.opt_uuid("read_by")?.map(UserId::from_uuid),
    })
}

/// [`InboxStore::recent_thread`](crm_core::InboxStore::recent_thread): the
/// thread index read backwards from `before`, returned oldest first.
pub(crate) async fn recent_thread(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Vec<Message>> {
    check_recent_limit(limit)?;
    let sql = "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2";
    let args = vec![contact.into_uuid().into(), account.into_uuid().into()];
    if db.fetch_optional("reading a contact", sql, args).await?.is_none() {
        return Err(Error::not_found("contact"));
    }
    let sql = "SELECT * FROM messages WHERE account_id = $1 AND contact_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4";
    let before = before.map_or(uuid::Uuid::max(), MessageId::into_uuid);
    let args = vec![account.into_uuid().into(), contact.into_uuid().into(), before.into(), Arg::Int(i64::from(limit))];
    let rows = db.fetch_all("reading a thread's latest messages", sql, args).await?;
    let mut messages = rows.iter().map(message_row).collect::<Result<Vec<_>>>()?;
    messages.reverse();
    Ok(messages)
}

/// The upsert of `mark_thread_read`, only for an existing contact:
/// `$1` account, `$2` contact, `$3` message id, `$4` time, `$5` user.
pub(crate) const MARK_READ: &str = "INSERT INTO inbox_threads (account_id, contact_id, read_through, read_at, read_by) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM contacts WHERE id = $2 AND account_id = $1) \
     ON CONFLICT (account_id, contact_id) DO UPDATE SET \
     read_through = CASE WHEN inbox_threads.read_through IS NULL OR excluded.read_through > inbox_threads.read_through \
       THEN excluded.read_through ELSE inbox_threads.read_through END, \
     read_at = excluded.read_at, read_by = excluded.read_by RETURNING *";

/// The upsert of `assign_thread`, only for an existing contact: `$1`
/// account, `$2` contact, `$3` assignee, `$4` time.
pub(crate) const ASSIGN: &str = "INSERT INTO inbox_threads (account_id, contact_id, assignee_id, assigned_at) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM contacts WHERE id = $2 AND account_id = $1) \
     ON CONFLICT (account_id, contact_id) DO UPDATE SET assignee_id = excluded.assignee_id, \
     assigned_at = excluded.assigned_at RETURNING *";

/// Whether a user belongs to the account: `$1` user, `$2` account.
pub(crate) const USER_OF_ACCOUNT: &str = "SELECT 1 FROM users WHERE id = $1 AND account_id = $2";

#[cfg(test)]
mod tests {
    #[test]
    fn the_unread_cap_in_the_sql_is_the_domain_cap() {
        assert_eq!(crm_core::domain::inbox::MAX_UNREAD_COUNTED, 100);
        assert!(super::LIST_INBOX_PG.contains("LIMIT 100)"));
    }
}
