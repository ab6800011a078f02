//! `PgStore`: every store port over PostgreSQL.
//!
//! Ids are native `uuid` (UUIDv7 sorts by time), times `timestamptz`, JSON
//! `jsonb`. Outbox leases use the database clock (`now()`), so several
//! processes sharing one database agree on expiry; claims take rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never block on or share
//! an item.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool, Postgres, QueryBuilder, Row};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use crm_core::ports::store::{check_consumer_name, check_event_limit};
use crm_core::{
    Account, AccountId, AccountStore, ApiKey, ApiKeyId, Claim, ClaimToken, Contact, ContactId, ContactQuery,
    ContactSearch, ContactStore, Direction, Email, Error, Event, EventId, EventStore, EventType, Health, HealthCheck,
    ImportReport, LeadStage, Message, MessageId, MessageStatus, MessageStore, OptIn, OptInStatus, Page, PageRequest,
    PasswordHash, Phone, Result, Role, StatusUpdate, Template, TemplateCategory, TemplateId, TemplateStore, User,
    UserId,
};

use crate::error::{corrupt, db, migrate};
use crate::rows::{
    HEALTH_TIMEOUT, MAX_ERROR_CHARS, check_event_account, check_import, duration_micros, escape_like, import_report,
    json_from, metadata_from, plan_import, prefix_upper_bound, stored, tags_from, to_json,
};

type Tx = sqlx::Transaction<'static, Postgres>;

/// Rows per UNNEST statement in imports.
const IMPORT_BATCH: usize = 5000;

/// Every store port over PostgreSQL, with versioned migrations applied on
/// open and an event outbox.
///
/// ```no_run
/// # async fn f() -> crm_core::Result<()> {
/// let store = crm_storage::PgStore::connect("postgres://crm@127.0.0.1/crm").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db?…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = parse_url(url)?;
        Self::open(options).await
    }

    /// Connects to `url` using `schema` (created when missing) for every table:
    /// each connection's `search_path` is set to it. Lets several stores (for
    /// example parallel tests) share one database. `schema` must be 1–63 of
    /// `a-z`, `0-9`, `_`, not starting with a digit.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        let ok = (1..=63).contains(&schema.len())
            && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(Error::Config {
                message: "schema must be 1 to 63 of a-z, 0-9, _ (not starting with a digit)".into(),
            });
        }
        let options = parse_url(url)?;
        let mut conn =
            sqlx::PgConnection::connect_with(&options).await.map_err(|e| db("connecting to PostgreSQL", e))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
            .execute(&mut conn)
            .await
            .map_err(|e| db("creating a schema", e))?;
        conn.close().await.map_err(|e| db("closing a connection", e))?;
        Self::open(options.options([("search_path", schema)])).await
    }

    async fn open(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| db("connecting to PostgreSQL", e))?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool and runs the migrations on it.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent; the constructors already do).
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await.map_err(migrate)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(|e| db("starting a transaction", e))
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|_| Error::Config { message: "invalid PostgreSQL database URL".into() })
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(|e| db("committing", e))
}

fn get<'r, T>(r: &'r PgRow, col: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    r.try_get(col).map_err(|e| db("reading a row", e))
}

fn account_row(r: &PgRow) -> Result<Account> {
    Ok(Account { id: AccountId::from_uuid(get(r, "id")?), name: get(r, "name")?, created_at: get(r, "created_at")? })
}

fn user_row(r: &PgRow) -> Result<User> {
    Ok(User {
        id: UserId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        email: stored("email", Email::parse(&get::<String>(r, "email")?))?,
        name: get(r, "name")?,
        role: stored("role", Role::parse(&get::<String>(r, "role")?))?,
        password_hash: PasswordHash::from_phc(get::<String>(r, "password_hash")?),
        created_at: get(r, "created_at")?,
    })
}

fn api_key_row(r: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        prefix: get(r, "prefix")?,
        hash: get(r, "hash")?,
        role: stored("role", Role::parse(&get::<String>(r, "role")?))?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        revoked_at: get(r, "revoked_at")?,
    })
}

fn contact_row(r: &PgRow) -> Result<Contact> {
    Ok(Contact {
        id: ContactId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        phone: stored("phone", Phone::parse(&get::<String>(r, "phone")?))?,
        email: get::<Option<String>>(r, "email")?.map(|e| stored("email", Email::parse(&e))).transpose()?,
        whatsapp_id: get(r, "whatsapp_id")?,
        tags: tags_from(get(r, "tags")?)?,
        metadata: metadata_from(get(r, "metadata")?)?,
        lead_score: u8::try_from(get::<i16>(r, "lead_score")?).map_err(|e| corrupt("lead_score", e))?,
        lead_stage: stored("lead_stage", LeadStage::parse(&get::<String>(r, "lead_stage")?))?,
        opt_in: OptIn {
            status: stored("opt_in_status", OptInStatus::parse(&get::<String>(r, "opt_in_status")?))?,
            changed_at: get(r, "opt_in_changed_at")?,
            source: get(r, "opt_in_source")?,
        },
        last_inbound_at: get(r, "last_inbound_at")?,
        last_outbound_at: get(r, "last_outbound_at")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
        version: get(r, "version")?,
    })
}

fn message_row(r: &PgRow) -> Result<Message> {
    Ok(Message {
        id: MessageId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        contact_id: ContactId::from_uuid(get(r, "contact_id")?),
        direction: stored("direction", Direction::parse(&get::<String>(r, "direction")?))?,
        content: json_from("content", get(r, "content")?)?,
        status: stored("status", MessageStatus::parse(&get::<String>(r, "status")?))?,
        provider_message_id: get(r, "provider_message_id")?,
        error: get::<Option<serde_json::Value>>(r, "error")?.map(|e| json_from("error", e)).transpose()?,
        created_at: get(r, "created_at")?,
        sent_at: get(r, "sent_at")?,
        delivered_at: get(r, "delivered_at")?,
        read_at: get(r, "read_at")?,
        failed_at: get(r, "failed_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn template_row(r: &PgRow) -> Result<Template> {
    Ok(Template {
        id: TemplateId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        language: get(r, "language")?,
        category: stored("category", TemplateCategory::parse(&get::<String>(r, "category")?))?,
        body: get(r, "body")?,
        variables: get(r, "variables")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn event_row(r: &PgRow) -> Result<Event> {
    Ok(Event {
        id: EventId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        event_type: stored("type", EventType::custom(get::<String>(r, "type")?))?,
        payload: get(r, "payload")?,
        occurred_at: get(r, "occurred_at")?,
    })
}

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
/// tags, event and outbox rows. `rows` must be in phone order (see
/// `plan_import`), so concurrent imports take the phone key in one order.
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
    sqlx::query_scalar(
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
             RETURNING id \
         ), queued AS ( \
             INSERT INTO outbox (consumer, event_id) SELECT c.name, a.id FROM outbox_consumers c CROSS JOIN appended a \
         ) \
         SELECT id FROM inserted",
    )
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

/// Appends one event and queues it for every registered consumer.
async fn append(tx: &mut Tx, e: &Event) -> Result<()> {
    sqlx::query(
        "WITH e AS (INSERT INTO events (id, account_id, type, payload, occurred_at) \
                    VALUES ($1, $2, $3, $4, $5) RETURNING id) \
         INSERT INTO outbox (consumer, event_id) SELECT c.name, e.id FROM outbox_consumers c CROSS JOIN e",
    )
    .bind(e.id.into_uuid())
    .bind(e.account_id.into_uuid())
    .bind(e.event_type.as_str())
    .bind(&e.payload)
    .bind(e.occurred_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("appending an event", e))?;
    Ok(())
}

async fn exists(tx: &mut Tx, sql: &'static str, id: Uuid, account: AccountId) -> Result<bool> {
    let row = sqlx::query(sql)
        .bind(id)
        .bind(account.into_uuid())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("looking up a row", e))?;
    Ok(row.is_some())
}

async fn account_exists(tx: &mut Tx, account: AccountId) -> Result<()> {
    let found = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
        .bind(account.into_uuid())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("looking up an account", e))?;
    found.map(|_| ()).ok_or(Error::not_found("account"))
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()> {
        check_event_account(account.id, event)?;
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(account.id.into_uuid())
            .bind(&account.name)
            .bind(account.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("creating an account", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_account(&self, id: AccountId) -> Result<Account> {
        sqlx::query("SELECT * FROM accounts WHERE id = $1")
            .bind(id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading an account", e))?
            .map(|r| account_row(&r))
            .transpose()?
            .ok_or(Error::not_found("account"))
    }

    async fn create_user(&self, user: &User, event: &Event) -> Result<()> {
        check_event_account(user.account_id, event)?;
        let mut tx = self.write().await?;
        account_exists(&mut tx, user.account_id).await?;
        sqlx::query(
            "INSERT INTO users (id, account_id, email, name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.into_uuid())
        .bind(user.account_id.into_uuid())
        .bind(user.email.as_str())
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.password_hash.as_phc())
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating a user", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        sqlx::query("SELECT * FROM users WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a user", e))?
            .map(|r| user_row(&r))
            .transpose()?
            .ok_or(Error::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a user", e))?
            .map(|r| user_row(&r))
            .transpose()
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        sqlx::query("SELECT * FROM users WHERE account_id = $1 ORDER BY id")
            .bind(account.into_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing users", e))?
            .iter()
            .map(user_row)
            .collect()
    }

    async fn create_api_key(&self, key: &ApiKey, event: &Event) -> Result<()> {
        check_event_account(key.account_id, event)?;
        let mut tx = self.write().await?;
        account_exists(&mut tx, key.account_id).await?;
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, prefix, hash, role, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id.into_uuid())
        .bind(key.account_id.into_uuid())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(key.role.as_str())
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating an API key", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE prefix = $1")
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading an API key", e))?
            .map(|r| api_key_row(&r))
            .transpose()
    }

    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE account_id = $1 ORDER BY id")
            .bind(account.into_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing API keys", e))?
            .iter()
            .map(api_key_row)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ApiKey> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL RETURNING *",
        )
        .bind(at)
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("revoking an API key", e))?;
        if let Some(row) = revoked {
            let key = api_key_row(&row)?;
            append(&mut tx, event).await?;
            commit(tx).await?;
            return Ok(key);
        }
        sqlx::query("SELECT * FROM api_keys WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("reading an API key", e))?
            .map(|r| api_key_row(&r))
            .transpose()?
            .ok_or(Error::not_found("api_key"))
    }
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
        ] {
            sqlx::query(sql)
                .bind(id.into_uuid())
                .bind(account.into_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| db("deleting a contact", e))?;
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact> {
        sqlx::query("SELECT * FROM contacts WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a contact", e))?
            .map(|r| contact_row(&r))
            .transpose()?
            .ok_or(Error::not_found("contact"))
    }

    async fn find_contact_by_phone(&self, account: AccountId, phone: &Phone) -> Result<Option<Contact>> {
        sqlx::query("SELECT * FROM contacts WHERE account_id = $1 AND phone = $2")
            .bind(account.into_uuid())
            .bind(phone.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a contact", e))?
            .map(|r| contact_row(&r))
            .transpose()
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

#[async_trait]
impl MessageStore for PgStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let content = to_json("content", &message.content)?;
        let error = message.error.as_ref().map(|e| to_json("error", e)).transpose()?;
        let cid = message.contact_id.into_uuid();
        let mut tx = self.write().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2 FOR UPDATE",
            cid,
            message.account_id,
        )
        .await?
        {
            return Err(Error::not_found("contact"));
        }
        sqlx::query(
            "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
             provider_message_id, error, created_at, sent_at, delivered_at, read_at, failed_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(message.id.into_uuid())
        .bind(message.account_id.into_uuid())
        .bind(cid)
        .bind(message.direction.as_str())
        .bind(message.kind().as_str())
        .bind(content)
        .bind(message.status.as_str())
        .bind(message.provider_message_id.as_deref())
        .bind(error)
        .bind(message.created_at)
        .bind(message.sent_at)
        .bind(message.delivered_at)
        .bind(message.read_at)
        .bind(message.failed_at)
        .bind(message.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a message", e))?;
        let sql = match message.direction {
            Direction::Inbound => {
                "UPDATE contacts SET last_inbound_at = $1 WHERE id = $2 \
                 AND (last_inbound_at IS NULL OR last_inbound_at < $1)"
            }
            Direction::Outbound => {
                "UPDATE contacts SET last_outbound_at = $1 WHERE id = $2 \
                 AND (last_outbound_at IS NULL OR last_outbound_at < $1)"
            }
        };
        sqlx::query(sql)
            .bind(message.created_at)
            .bind(cid)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("updating a contact's last message time", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        sqlx::query("SELECT * FROM messages WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a message", e))?
            .map(|r| message_row(&r))
            .transpose()?
            .ok_or(Error::not_found("message"))
    }

    async fn find_message_by_provider_id(
        &self,
        account: AccountId,
        provider_message_id: &str,
    ) -> Result<Option<Message>> {
        sqlx::query("SELECT * FROM messages WHERE account_id = $1 AND provider_message_id = $2")
            .bind(account.into_uuid())
            .bind(provider_message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a message", e))?
            .map(|r| message_row(&r))
            .transpose()
    }

    async fn update_message_status(
        &self,
        account: AccountId,
        id: MessageId,
        update: &StatusUpdate,
        event: &Event,
    ) -> Result<Option<Message>> {
        check_event_account(account, event)?;
        let predecessors: Vec<&str> = MessageStatus::predecessors(update.status).iter().map(|s| s.as_str()).collect();
        let error = update.error.as_ref().map(|e| to_json("error", e)).transpose()?;
        let sql = match update.status {
            MessageStatus::Sent => {
                "UPDATE messages SET status = $1, sent_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Delivered => {
                "UPDATE messages SET status = $1, delivered_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Read => {
                "UPDATE messages SET status = $1, read_at = $2, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Failed => {
                "UPDATE messages SET status = $1, failed_at = $2, error = $7, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
            MessageStatus::Queued => {
                "UPDATE messages SET status = $1, \
                 provider_message_id = COALESCE(provider_message_id, $3), updated_at = $2 \
                 WHERE id = $4 AND account_id = $5 AND status = ANY($6) RETURNING *"
            }
        };
        let mut tx = self.write().await?;
        let mut q = sqlx::query(sql)
            .bind(update.status.as_str())
            .bind(update.at)
            .bind(update.provider_message_id.as_deref())
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(predecessors);
        if update.status == MessageStatus::Failed {
            q = q.bind(error);
        }
        let row = q.fetch_optional(&mut *tx).await.map_err(|e| db("updating a message status", e))?;
        let Some(row) = row else {
            let found =
                exists(&mut tx, "SELECT 1 FROM messages WHERE id = $1 AND account_id = $2", id.into_uuid(), account)
                    .await?;
            return if found { Ok(None) } else { Err(Error::not_found("message")) };
        };
        let message = message_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(Some(message))
    }

    async fn list_thread(&self, account: AccountId, contact: ContactId, page: &PageRequest) -> Result<Page<Message>> {
        let found = sqlx::query("SELECT 1 FROM contacts WHERE id = $1 AND account_id = $2")
            .bind(contact.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a contact", e))?;
        if found.is_none() {
            return Err(Error::not_found("contact"));
        }
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE account_id = $1 AND contact_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(account.into_uuid())
        .bind(contact.into_uuid())
        .bind(page.after.unwrap_or_default())
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("listing a thread", e))?;
        let items = rows.iter().map(message_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |m| m.id.into_uuid()))
    }
}

#[async_trait]
impl TemplateStore for PgStore {
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO templates (id, account_id, name, language, category, body, variables, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(template.id.into_uuid())
        .bind(template.account_id.into_uuid())
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(&template.variables)
        .bind(template.created_at)
        .bind(template.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a template", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE templates SET name = $1, language = $2, category = $3, body = $4, variables = $5, updated_at = $6 \
             WHERE id = $7 AND account_id = $8",
        )
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(&template.variables)
        .bind(template.updated_at)
        .bind(template.id.into_uuid())
        .bind(template.account_id.into_uuid())
        .execute(&mut *tx)
        .await
        .map_err(|e| db("updating a template", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("template"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_template(&self, account: AccountId, id: TemplateId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM templates WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a template", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("template"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        sqlx::query("SELECT * FROM templates WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a template", e))?
            .map(|r| template_row(&r))
            .transpose()?
            .ok_or(Error::not_found("template"))
    }

    async fn find_template(&self, account: AccountId, name: &str, language: &str) -> Result<Option<Template>> {
        sqlx::query("SELECT * FROM templates WHERE account_id = $1 AND name = $2 AND language = $3")
            .bind(account.into_uuid())
            .bind(name)
            .bind(language)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a template", e))?
            .map(|r| template_row(&r))
            .transpose()
    }

    async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        let rows = sqlx::query("SELECT * FROM templates WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(account.into_uuid())
            .bind(page.after.unwrap_or_default())
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing templates", e))?;
        let items = rows.iter().map(template_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |t| t.id.into_uuid()))
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        sqlx::query("SELECT * FROM events WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(account.into_uuid())
            .bind(after.map_or(Uuid::nil(), EventId::into_uuid))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing events", e))?
            .iter()
            .map(event_row)
            .collect()
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        sqlx::query("SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after.map_or(Uuid::nil(), EventId::into_uuid))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("reading events", e))?
            .iter()
            .map(event_row)
            .collect()
    }

    async fn register_consumer(&self, consumer: &str) -> Result<()> {
        check_consumer_name(consumer)?;
        sqlx::query("INSERT INTO outbox_consumers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(consumer)
            .execute(&self.pool)
            .await
            .map_err(|e| db("registering a consumer", e))?;
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let rows = sqlx::query(
            "WITH due AS ( \
                 SELECT consumer, event_id FROM outbox \
                 WHERE consumer = $1 AND due_at <= now() AND (lease_until IS NULL OR lease_until <= now()) \
                 ORDER BY event_id LIMIT $2 FOR UPDATE SKIP LOCKED \
             ), leased AS ( \
                 UPDATE outbox o SET lease_id = gen_random_uuid(), \
                     lease_until = now() + $3::bigint * interval '1 microsecond', attempt = o.attempt + 1 \
                 FROM due WHERE o.consumer = due.consumer AND o.event_id = due.event_id \
                 RETURNING o.event_id, o.lease_id, o.attempt, o.last_error \
             ) \
             SELECT l.lease_id, l.attempt, l.last_error, e.* FROM leased l JOIN events e ON e.id = l.event_id \
             ORDER BY e.id",
        )
        .bind(consumer)
        .bind(i64::from(limit))
        .bind(duration_micros(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("claiming outbox items", e))?;
        rows.iter()
            .map(|r| {
                let event = event_row(r)?;
                Ok(Claim {
                    token: ClaimToken {
                        consumer: consumer.to_owned(),
                        event_id: event.id,
                        lease_id: get(r, "lease_id")?,
                    },
                    event,
                    attempt: u32::try_from(get::<i32>(r, "attempt")?).unwrap_or(0),
                    last_error: get(r, "last_error")?,
                })
            })
            .collect()
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let done = sqlx::query("DELETE FROM outbox WHERE consumer = $1 AND event_id = $2 AND lease_id = $3")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .bind(claim.lease_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db("acknowledging an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(self.lost_lease(claim).await);
        }
        Ok(())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, \
                 due_at = now() + $1::bigint * interval '1 microsecond', last_error = $2 \
             WHERE consumer = $3 AND event_id = $4 AND lease_id = $5",
        )
        .bind(duration_micros(retry_in))
        .bind(error)
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db("releasing an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(self.lost_lease(claim).await);
        }
        Ok(())
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("counting outbox items", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl PgStore {
    /// Why an ack/nack matched no row: the item is gone, or another lease holds it.
    async fn lost_lease(&self, claim: &ClaimToken) -> Error {
        let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = $1 AND event_id = $2")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .fetch_optional(&self.pool)
            .await;
        match found {
            Ok(Some(_)) => Error::conflict("outbox item", "the lease was lost to another claim"),
            Ok(None) => Error::not_found("outbox item"),
            Err(e) => db("reading an outbox item", e),
        }
    }
}

#[async_trait]
impl HealthCheck for PgStore {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Health {
        Health::measure(async {
            match tokio::time::timeout(HEALTH_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(db("health probe", e).to_string()),
                Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
            }
        })
        .await
    }
}
