//! [`ContactStore`] over PostgreSQL.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};
use std::collections::HashSet;
use uuid::Uuid;

use crm_core::ports::store::{check_event_account, check_import};
use crm_core::{
    AccountId, Contact, ContactId, ContactQuery, ContactSearch, ContactStore, Email, Error, Event, ImportReport, Page,
    Phone, Result,
};

use super::{PgStore, Tx, append, commit, exists};
use crate::error::db;
use crate::rows::contacts::{
    ERASURE_CANDIDATES, contact_row, erasure_pattern, erasures, escape_like, import_report, plan_import,
    prefix_upper_bound,
};
use crate::rows::to_json;

/// Rows per UNNEST statement in imports.
const IMPORT_BATCH: usize = 5000;

fn tag_strings(c: &Contact) -> Vec<String> {
    c.tags.iter().map(|t| t.as_str().to_owned()).collect()
}

/// Inserts one contact (version 0) with its tags.
async fn insert_contact_row(tx: &mut Tx, c: &Contact) -> Result<()> {
    let metadata = to_json("metadata", &c.metadata)?;
    sqlx::query(
        "INSERT INTO contacts (id, account_id, name, name_lower, phone, email, whatsapp_id, tags, metadata, \
         lead_score, lead_stage, opt_in_status, opt_in_changed_at, opt_in_source, last_inbound_at, last_outbound_at, \
         created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 0)",
    )
    .bind(c.id.into_uuid())
    .bind(c.account_id.into_uuid())
    .bind(&c.name)
    .bind(c.name.to_lowercase())
    .bind(c.phone.as_str())
    .bind(c.email.as_ref().map(Email::as_str))
    .bind(c.whatsapp_id.as_deref())
    .bind(tag_strings(c))
    .bind(metadata)
    .bind(i16::from(c.lead_score))
    .bind(c.lead_stage.as_str())
    .bind(c.opt_in.status.as_str())
    .bind(c.opt_in.changed_at)
    .bind(c.opt_in.source.as_deref())
    .bind(c.last_inbound_at)
    .bind(c.last_outbound_at)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("inserting a contact", e))?;
    insert_tags(tx, c.account_id, c.id, tag_strings(c)).await
}

async fn insert_tags(tx: &mut Tx, account: AccountId, id: ContactId, tags: Vec<String>) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO contact_tags (account_id, contact_id, tag) SELECT $1, $2, t FROM UNNEST($3::text[]) t")
        .bind(account.into_uuid())
        .bind(id.into_uuid())
        .bind(tags)
        .execute(&mut **tx)
        .await
        .map_err(|e| db("inserting contact tags", e))?;
    Ok(())
}

/// Offers import rows to the database in one statement (one round trip): each
/// contact (version 0) is inserted unless its phone or id is taken, also by a
/// concurrent write (`ON CONFLICT DO NOTHING` waits for an uncommitted one
/// and skips the row if it commits); only the contacts inserted get their
/// tags, event and outbox rows (one per consumer whose filter the event
/// passes). `rows` must be in phone order (see `plan_import`), so concurrent
/// imports take the phone key in one order.
/// Returns the ids of the contacts inserted.
async fn import_batch(tx: &mut Tx, account: AccountId, rows: &[(&Contact, &Event)]) -> Result<Vec<Uuid>> {
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut lowers = Vec::with_capacity(n);
    let mut phones = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    let mut was = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut metas = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut stages = Vec::with_capacity(n);
    let mut opt_status = Vec::with_capacity(n);
    let mut opt_changed = Vec::with_capacity(n);
    let mut opt_source = Vec::with_capacity(n);
    let mut inbound = Vec::with_capacity(n);
    let mut outbound = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut event_types = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    for (c, e) in rows {
        ids.push(c.id.into_uuid());
        names.push(c.name.as_str());
        lowers.push(c.name.to_lowercase());
        phones.push(c.phone.as_str());
        emails.push(c.email.as_ref().map(Email::as_str));
        was.push(c.whatsapp_id.as_deref());
        // Tags never contain commas (Tag::parse refuses them).
        tags.push(tag_strings(c).join(","));
        metas.push(to_json("metadata", &c.metadata)?);
        scores.push(i16::from(c.lead_score));
        stages.push(c.lead_stage.as_str());
        opt_status.push(c.opt_in.status.as_str());
        opt_changed.push(c.opt_in.changed_at);
        opt_source.push(c.opt_in.source.as_deref());
        inbound.push(c.last_inbound_at);
        outbound.push(c.last_outbound_at);
        created.push(c.created_at);
        updated.push(c.updated_at);
        event_ids.push(e.id.into_uuid());
        event_types.push(e.event_type.as_str());
        payloads.push(&e.payload);
        occurred.push(e.occurred_at);
    }
    // `input` is read twice, so PostgreSQL materializes it once. The sibling
    // INSERTs see one snapshot; the outbox's foreign key is checked at the end
    // of the statement, when the events are there.
    sqlx::query_scalar(concat!(
        "WITH input AS ( \
             SELECT * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                                  $8::text[], $9::jsonb[], $10::smallint[], $11::text[], $12::text[], \
                                  $13::timestamptz[], $14::text[], $15::timestamptz[], $16::timestamptz[], \
                                  $17::timestamptz[], $18::timestamptz[], $19::uuid[], $20::text[], $21::jsonb[], \
                                  $22::timestamptz[]) WITH ORDINALITY \
               AS t(id, name, name_lower, phone, email, whatsapp_id, tags, metadata, lead_score, lead_stage, \
                    opt_in_status, opt_in_changed_at, opt_in_source, last_inbound_at, last_outbound_at, \
                    created_at, updated_at, event_id, event_type, payload, occurred_at, ord) \
         ), inserted AS ( \
             INSERT INTO contacts (id, account_id, name, name_lower, phone, email, whatsapp_id, tags, metadata, \
                 lead_score, lead_stage, opt_in_status, opt_in_changed_at, opt_in_source, last_inbound_at, \
                 last_outbound_at, created_at, updated_at, version) \
             SELECT id, $1, name, name_lower, phone, email, whatsapp_id, \
                    CASE WHEN tags = '' THEN '{}'::text[] ELSE string_to_array(tags, ',') END, metadata, \
                    lead_score, lead_stage, opt_in_status, opt_in_changed_at, opt_in_source, last_inbound_at, \
                    last_outbound_at, created_at, updated_at, 0 \
             FROM input ORDER BY ord \
             ON CONFLICT DO NOTHING \
             RETURNING id, tags \
         ), tagged AS ( \
             INSERT INTO contact_tags (account_id, contact_id, tag) \
             SELECT $1, i.id, t.tag FROM inserted i CROSS JOIN LATERAL unnest(i.tags) AS t(tag) \
         ), appended AS ( \
             INSERT INTO events (id, account_id, type, payload, occurred_at) \
             SELECT input.event_id, $1, input.event_type, input.payload, input.occurred_at \
             FROM input JOIN inserted ON inserted.id = input.id \
             RETURNING id, type \
         ), queued AS ( \
             INSERT INTO outbox (consumer, event_id) SELECT c.name, e.id FROM outbox_consumers c CROSS JOIN appended e \
             WHERE ",
        consumer_wants!(),
        " \
         ) \
         SELECT id FROM inserted"
    ))
    .bind(account.into_uuid())
    .bind(ids)
    .bind(names)
    .bind(lowers)
    .bind(phones)
    .bind(emails)
    .bind(was)
    .bind(tags)
    .bind(metas)
    .bind(scores)
    .bind(stages)
    .bind(opt_status)
    .bind(opt_changed)
    .bind(opt_source)
    .bind(inbound)
    .bind(outbound)
    .bind(created)
    .bind(updated)
    .bind(event_ids)
    .bind(event_types)
    .bind(payloads)
    .bind(occurred)
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| db("importing contacts", e))
}

#[async_trait]
impl ContactStore for PgStore {
    async fn insert_contact(&self, contact: &Contact, event: &Event) -> Result<()> {
        check_event_account(contact.account_id, event)?;
        let mut tx = self.write().await?;
        insert_contact_row(&mut tx, contact).await?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_contact(&self, contact: &Contact, event: &Event) -> Result<Contact> {
        check_event_account(contact.account_id, event)?;
        let metadata = to_json("metadata", &contact.metadata)?;
        let id = contact.id.into_uuid();
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE contacts SET name = $1, name_lower = $2, phone = $3, email = $4, whatsapp_id = $5, tags = $6, \
             metadata = $7, lead_score = $8, lead_stage = $9, opt_in_status = $10, opt_in_changed_at = $11, \
             opt_in_source = $12, updated_at = $13, version = version + 1 \
             WHERE id = $14 AND account_id = $15 AND version = $16 RETURNING *",
        )
        .bind(&contact.name)
        .bind(contact.name.to_lowercase())
        .bind(contact.phone.as_str())
        .bind(contact.email.as_ref().map(Email::as_str))
        .bind(contact.whatsapp_id.as_deref())
        .bind(tag_strings(contact))
        .bind(metadata)
        .bind(i16::from(contact.lead_score))
        .bind(contact.lead_stage.as_str())
        .bind(contact.opt_in.status.as_str())
        .bind(contact.opt_in.changed_at)
        .bind(contact.opt_in.source.as_deref())
        .bind(contact.updated_at)
        .bind(id)
        .bind(contact.account_id.into_uuid())
        .bind(contact.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a contact", e))?;
        let Some(row) = updated else {
            let found =
                exists(&mut tx, "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2", id, contact.account_id)
                    .await?;
            return Err(if found {
                Error::conflict("contact", "it was changed by someone else; reload and retry")
            } else {
                Error::not_found("contact")
            });
        };
        let stored = contact_row(&row)?;
        sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("replacing contact tags", e))?;
        insert_tags(&mut tx, contact.account_id, contact.id, tag_strings(contact)).await?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_contact(&self, account: AccountId, id: ContactId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM contacts WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a contact", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("contact"));
        }
        for sql in [
            "DELETE FROM messages WHERE account_id = $2 AND contact_id = $1",
            "DELETE FROM contact_tags WHERE contact_id = $1 AND account_id = $2",
            "DELETE FROM inbox_threads WHERE contact_id = $1 AND account_id = $2",
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
                .bind(kept)
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
        let after = query.page.after.unwrap_or_default();
        let mut b = QueryBuilder::<Postgres>::new("SELECT c.* FROM ");
        if let Some(tag) = &query.tag {
            b.push("contact_tags t JOIN contacts c ON c.id = t.contact_id WHERE t.account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND t.tag = ")
                .push_bind(tag.as_str().to_owned())
                .push(" AND c.account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND t.contact_id > ")
                .push_bind(after);
        } else {
            b.push("contacts c WHERE c.account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND c.id > ")
                .push_bind(after);
        }
        if let Some(stage) = query.lead_stage {
            b.push(" AND c.lead_stage = ").push_bind(stage.as_str());
        }
        match &query.search {
            None => {}
            Some(ContactSearch::PhoneDigits(d)) => {
                b.push(" AND strpos(c.phone, ").push_bind(d.clone()).push(") > 0");
            }
            Some(ContactSearch::EmailPrefix(p)) => push_prefix(&mut b, "c.email", p),
            Some(ContactSearch::NamePrefix(p)) => push_prefix(&mut b, "c.name_lower", p),
        }
        let order = if query.tag.is_some() { "t.contact_id" } else { "c.id" };
        b.push(format_args!(" ORDER BY {order} LIMIT ")).push_bind(i64::from(query.page.limit) + 1);
        // On the fast lane like every other shared read (no release ping).
        let mut conn = self.lane.lease().await.map_err(|e| db("listing contacts", e))?;
        let rows = b.build().fetch_all(&mut *conn).await;
        let rows = conn.settle(rows).map_err(|e| db("listing contacts", e))?;
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
        let (candidates, rejected) = plan_import(contacts);
        let mut inserted = HashSet::with_capacity(candidates.len());
        let mut tx = self.write().await?;
        for chunk in candidates.chunks(IMPORT_BATCH) {
            let rows: Vec<(&Contact, &Event)> = chunk.iter().map(|&i| (&contacts[i], &events[i])).collect();
            inserted.extend(import_batch(&mut tx, account, &rows).await?);
        }
        commit(tx).await?;
        Ok(import_report(contacts, &candidates, &inserted, rejected))
    }
}

/// `column` starts with `prefix`: an escaped LIKE (the exact test) plus a
/// byte-order range on the same column that the `text_pattern_ops` index
/// serves even under a generic plan.
fn push_prefix(b: &mut QueryBuilder<Postgres>, column: &'static str, prefix: &str) {
    b.push(format_args!(" AND {column} LIKE ")).push_bind(format!("{}%", escape_like(prefix))).push(" ESCAPE '\\'");
    b.push(format_args!(" AND {column} ~>=~ ")).push_bind(prefix.to_owned());
    if let Some(upper) = prefix_upper_bound(prefix) {
        b.push(format_args!(" AND {column} ~<~ ")).push_bind(upper);
    }
}
