//! [`ContactStore`] over SQLite.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};
use std::collections::HashSet;
use uuid::Uuid;

use crm_core::ports::store::{check_event_account, check_import};
use crm_core::{
    AccountId, Contact, ContactId, ContactQuery, ContactSearch, ContactStore, Error, Event, ImportReport, Page, Phone,
    Result,
};

use super::{SqliteStore, Tx, append, append_events, commit, exists, json_string, opt_micros};
use crate::error::db;
use crate::rows::contacts::{
    ERASURE_CANDIDATES, contact_row, erasure_pattern, erasures, import_report, plan_import, prefix_upper_bound,
};
use crate::rows::{BATCH, micros};

/// A contact's column values, owned, in `CONTACT_COLUMNS` order.
struct ContactValues {
    id: Uuid,
    account_id: Uuid,
    name: String,
    name_lower: String,
    phone: String,
    email: Option<String>,
    whatsapp_id: Option<String>,
    tags: String,
    metadata: String,
    lead_score: i64,
    lead_stage: &'static str,
    opt_in_status: &'static str,
    opt_in_changed_at: Option<i64>,
    opt_in_source: Option<String>,
    last_inbound_at: Option<i64>,
    last_outbound_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const CONTACT_COLUMNS: &str = "id, account_id, name, name_lower, phone, email, whatsapp_id, tags, metadata, \
     lead_score, lead_stage, opt_in_status, opt_in_changed_at, opt_in_source, last_inbound_at, last_outbound_at, \
     created_at, updated_at, version";

impl ContactValues {
    fn of(c: &Contact) -> Result<Self> {
        let tags: Vec<&str> = c.tags.iter().map(|t| t.as_str()).collect();
        Ok(Self {
            id: c.id.into_uuid(),
            account_id: c.account_id.into_uuid(),
            name: c.name.clone(),
            name_lower: c.name.to_lowercase(),
            phone: c.phone.as_str().to_owned(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()),
            whatsapp_id: c.whatsapp_id.clone(),
            tags: json_string("tags", &tags)?,
            metadata: json_string("metadata", &c.metadata)?,
            lead_score: i64::from(c.lead_score),
            lead_stage: c.lead_stage.as_str(),
            opt_in_status: c.opt_in.status.as_str(),
            opt_in_changed_at: opt_micros(c.opt_in.changed_at),
            opt_in_source: c.opt_in.source.clone(),
            last_inbound_at: opt_micros(c.last_inbound_at),
            last_outbound_at: opt_micros(c.last_outbound_at),
            created_at: micros(c.created_at),
            updated_at: micros(c.updated_at),
        })
    }

    /// Pushes the values as one row of a VALUES list (version 0).
    fn push(self, mut b: sqlx::query_builder::Separated<'_, Sqlite, &'static str>) {
        b.push_bind(self.id)
            .push_bind(self.account_id)
            .push_bind(self.name)
            .push_bind(self.name_lower)
            .push_bind(self.phone)
            .push_bind(self.email)
            .push_bind(self.whatsapp_id)
            .push_bind(self.tags)
            .push_bind(self.metadata)
            .push_bind(self.lead_score)
            .push_bind(self.lead_stage)
            .push_bind(self.opt_in_status)
            .push_bind(self.opt_in_changed_at)
            .push_bind(self.opt_in_source)
            .push_bind(self.last_inbound_at)
            .push_bind(self.last_outbound_at)
            .push_bind(self.created_at)
            .push_bind(self.updated_at)
            .push("0");
    }
}

/// What an insert does with a contact whose phone or id is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The statement fails ([`Error::Conflict`]).
    Fail,
    /// The row is skipped (`ON CONFLICT DO NOTHING`).
    Skip,
}

/// Inserts contacts (version 0) with one multi-row statement, then the tags
/// of those inserted. Returns the ids inserted.
async fn insert_contacts(tx: &mut Tx, contacts: &[&Contact], taken: Taken) -> Result<HashSet<Uuid>> {
    if contacts.is_empty() {
        return Ok(HashSet::new());
    }
    let values = contacts.iter().map(|c| ContactValues::of(c)).collect::<Result<Vec<_>>>()?;
    let mut b = QueryBuilder::<Sqlite>::new(format!("INSERT INTO contacts ({CONTACT_COLUMNS}) "));
    b.push_values(values, |sep, v| v.push(sep));
    if taken == Taken::Skip {
        b.push(" ON CONFLICT DO NOTHING");
    }
    b.push(" RETURNING id");
    let inserted = b
        .build_query_scalar::<Uuid>()
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| db("inserting contacts", e))?
        .into_iter()
        .collect::<HashSet<_>>();
    let tags: Vec<(Uuid, Uuid, &str)> = contacts
        .iter()
        .filter(|c| inserted.contains(&c.id.into_uuid()))
        .flat_map(|c| c.tags.iter().map(move |t| (c.account_id.into_uuid(), c.id.into_uuid(), t.as_str())))
        .collect();
    for chunk in tags.chunks(BATCH) {
        let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO contact_tags (account_id, contact_id, tag) ");
        b.push_values(chunk, |mut sep, (a, c, t)| {
            sep.push_bind(*a).push_bind(*c).push_bind(t.to_string());
        });
        b.build().execute(&mut **tx).await.map_err(|e| db("inserting contact tags", e))?;
    }
    Ok(inserted)
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn insert_contact(&self, contact: &Contact, event: &Event) -> Result<()> {
        check_event_account(contact.account_id, event)?;
        let mut tx = self.write().await?;
        insert_contacts(&mut tx, &[contact], Taken::Fail).await?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_contact(&self, contact: &Contact, event: &Event) -> Result<Contact> {
        check_event_account(contact.account_id, event)?;
        let v = ContactValues::of(contact)?;
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE contacts SET name = ?, name_lower = ?, phone = ?, email = ?, whatsapp_id = ?, tags = ?, \
             metadata = ?, lead_score = ?, lead_stage = ?, opt_in_status = ?, opt_in_changed_at = ?, \
             opt_in_source = ?, updated_at = ?, version = version + 1 \
             WHERE id = ? AND account_id = ? AND version = ? RETURNING *",
        )
        .bind(v.name)
        .bind(v.name_lower)
        .bind(v.phone)
        .bind(v.email)
        .bind(v.whatsapp_id)
        .bind(v.tags)
        .bind(v.metadata)
        .bind(v.lead_score)
        .bind(v.lead_stage)
        .bind(v.opt_in_status)
        .bind(v.opt_in_changed_at)
        .bind(v.opt_in_source)
        .bind(v.updated_at)
        .bind(v.id)
        .bind(v.account_id)
        .bind(contact.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a contact", e))?;
        let Some(row) = updated else {
            let found =
                exists(&mut tx, "SELECT 1 FROM contacts WHERE id = ? AND account_id = ?", v.id, contact.account_id)
                    .await?;
            return Err(if found {
                Error::conflict("contact", "it was changed by someone else; reload and retry")
            } else {
                Error::not_found("contact")
            });
        };
        let stored = contact_row(&row)?;
        sqlx::query("DELETE FROM contact_tags WHERE contact_id = ?")
            .bind(v.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("replacing contact tags", e))?;
        if !contact.tags.is_empty() {
            let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO contact_tags (account_id, contact_id, tag) ");
            b.push_values(&contact.tags, |mut sep, t| {
                sep.push_bind(v.account_id).push_bind(v.id).push_bind(t.as_str().to_owned());
            });
            b.build().execute(&mut *tx).await.map_err(|e| db("replacing contact tags", e))?;
        }
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_contact(&self, account: AccountId, id: ContactId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM contacts WHERE id = ? AND account_id = ?")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a contact", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("contact"));
        }
        for sql in [
            "DELETE FROM messages WHERE contact_id = ? AND account_id = ?",
            "DELETE FROM contact_tags WHERE contact_id = ? AND account_id = ?",
            "DELETE FROM inbox_threads WHERE contact_id = ? AND account_id = ?",
        ] {
            sqlx::query(sql)
                .bind(id.into_uuid())
                .bind(account.into_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| db("deleting a contact", e))?;
        }
        let carrying = sqlx::query(ERASURE_CANDIDATES)
            .bind(account.into_uuid())
            .bind(erasure_pattern(id))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db("erasing a contact from events", e))?;
        for (event_id, kept) in erasures(&carrying, id)? {
            sqlx::query("UPDATE events SET payload = $1 WHERE id = $2")
                .bind(kept.to_string())
                .bind(event_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| db("erasing a contact from events", e))?;
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact> {
        crate::rows::contacts::get_contact(self, account, id).await
    }

    async fn find_contact_by_phone(&self, account: AccountId, phone: &Phone) -> Result<Option<Contact>> {
        crate::rows::contacts::find_contact_by_phone(self, account, phone).await
    }

    async fn list_contacts(&self, account: AccountId, query: &ContactQuery) -> Result<Page<Contact>> {
        let mut b = QueryBuilder::<Sqlite>::new("SELECT c.* FROM ");
        if let Some(tag) = &query.tag {
            b.push("contact_tags t JOIN contacts c ON c.id = t.contact_id WHERE t.account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND t.tag = ")
                .push_bind(tag.as_str().to_owned())
                .push(" AND c.account_id = ")
                .push_bind(account.into_uuid());
            if let Some(after) = query.page.after {
                b.push(" AND t.contact_id > ").push_bind(after);
            }
        } else {
            b.push("contacts c WHERE c.account_id = ").push_bind(account.into_uuid());
            if let Some(after) = query.page.after {
                b.push(" AND c.id > ").push_bind(after);
            }
        }
        if let Some(stage) = query.lead_stage {
            b.push(" AND c.lead_stage = ").push_bind(stage.as_str());
        }
        match &query.search {
            None => {}
            Some(ContactSearch::PhoneDigits(d)) => {
                b.push(" AND instr(c.phone, ").push_bind(d.clone()).push(") > 0");
            }
            Some(ContactSearch::EmailPrefix(p)) => push_prefix(&mut b, "c.email", p),
            Some(ContactSearch::NamePrefix(p)) => push_prefix(&mut b, "c.name_lower", p),
        }
        let order = if query.tag.is_some() { "t.contact_id" } else { "c.id" };
        b.push(format_args!(" ORDER BY {order} LIMIT ")).push_bind(i64::from(query.page.limit) + 1);
        let rows = b.build().fetch_all(&self.pool).await.map_err(|e| db("listing contacts", e))?;
        let items = rows.iter().map(contact_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, query.page.limit, |c| c.id.into_uuid()))
    }

    async fn import_contacts(
        &self,
        account: AccountId,
        contacts: &[Contact],
        events: &[Event],
    ) -> Result<ImportReport> {
        check_import(account, contacts, events)?;
        // The same path as PostgreSQL: offer the rows with ON CONFLICT DO
        // NOTHING and write tags, events and outbox rows only for those
        // inserted. (BEGIN IMMEDIATE already keeps other writers out.)
        let (candidates, rejected) = plan_import(contacts);
        let mut inserted = HashSet::with_capacity(candidates.len());
        let mut tx = self.write().await?;
        for chunk in candidates.chunks(BATCH) {
            let cs: Vec<&Contact> = chunk.iter().map(|&i| &contacts[i]).collect();
            let new = insert_contacts(&mut tx, &cs, Taken::Skip).await?;
            let es: Vec<&Event> =
                chunk.iter().filter(|&&i| new.contains(&contacts[i].id.into_uuid())).map(|&i| &events[i]).collect();
            append_events(&mut tx, &es).await?;
            inserted.extend(new);
        }
        commit(tx).await?;
        Ok(import_report(contacts, &candidates, &inserted, rejected))
    }
}

/// `column` starts with `prefix`: a BINARY range the index can serve (byte
/// order is code-point order), exact unlike SQLite's case-folding LIKE.
fn push_prefix(b: &mut QueryBuilder<Sqlite>, column: &'static str, prefix: &str) {
    b.push(format_args!(" AND {column} >= ")).push_bind(prefix.to_owned());
    if let Some(upper) = prefix_upper_bound(prefix) {
        b.push(format_args!(" AND {column} < ")).push_bind(upper);
    } else {
        b.push(format_args!(" AND {column} IS NOT NULL"));
    }
}
