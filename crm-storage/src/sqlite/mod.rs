//! `SqliteStore`: every store port over SQLite (a file or `sqlite::memory:`).
//!
//! Ids are stored as 16-byte blobs (UUIDv7 byte order is time order), times as
//! INTEGER microseconds since the epoch, JSON as TEXT. Every write runs in a
//! `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's write lock
//! (bounded by the busy timeout) instead of failing to upgrade a read lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
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

use crate::error::{db, migrate};
use crate::rows::{
    BATCH, HEALTH_TIMEOUT, MAX_ERROR_CHARS, check_event_account, check_import, duration_micros, from_micros,
    import_report, json_from, metadata_from, micros, plan_import, prefix_upper_bound, stored, tags_from, to_json,
};

type Tx = sqlx::Transaction<'static, Sqlite>;

/// Every store port over SQLite, with versioned migrations applied on open
/// and an event outbox.
///
/// ```no_run
/// # async fn f() -> crm_core::Result<()> {
/// let store = crm_storage::SqliteStore::connect("sqlite://./crm-data/crm.db?mode=rwc").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing, with its parent folder) the database at
    /// `url` — `sqlite://path/to/file.db`, `sqlite:file.db` or
    /// `sqlite::memory:` — and runs the migrations.
    ///
    /// An in-memory database lives in one connection kept for the store's
    /// lifetime, so every caller sees the same data.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config { message: format!("invalid SQLite database URL: {}", kind_of(&e)) })?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let memory = is_memory(url);
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            let path = options.get_filename().to_path_buf();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::storage("creating the database folder failed", false, e))?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(8).connect_with(options).await
        }
        .map_err(|e| db("opening the SQLite database", e))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool and runs the migrations on it.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent; [`SqliteStore::connect`] already does).
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await.map_err(migrate)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<Tx> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| db("starting a transaction", e))
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn kind_of(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "bad option",
        _ => "cannot parse",
    }
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(|e| db("committing", e))
}

fn now_micros() -> i64 {
    micros(Utc::now())
}

fn get<'r, T>(r: &'r SqliteRow, col: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    r.try_get(col).map_err(|e| db("reading a row", e))
}

fn time(r: &SqliteRow, col: &'static str) -> Result<DateTime<Utc>> {
    from_micros(col, get::<i64>(r, col)?)
}

fn opt_time(r: &SqliteRow, col: &'static str) -> Result<Option<DateTime<Utc>>> {
    get::<Option<i64>>(r, col)?.map(|m| from_micros(col, m)).transpose()
}

fn json_text(r: &SqliteRow, col: &'static str) -> Result<serde_json::Value> {
    let text: String = get(r, col)?;
    serde_json::from_str(&text).map_err(|e| crate::error::corrupt(col, e))
}

fn json_string<T: serde::Serialize>(col: &'static str, v: &T) -> Result<String> {
    to_json(col, v).map(|v| v.to_string())
}

fn opt_micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

fn account_row(r: &SqliteRow) -> Result<Account> {
    Ok(Account { id: AccountId::from_uuid(get(r, "id")?), name: get(r, "name")?, created_at: time(r, "created_at")? })
}

fn user_row(r: &SqliteRow) -> Result<User> {
    Ok(User {
        id: UserId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        email: stored("email", Email::parse(&get::<String>(r, "email")?))?,
        name: get(r, "name")?,
        role: stored("role", Role::parse(&get::<String>(r, "role")?))?,
        password_hash: PasswordHash::from_phc(get::<String>(r, "password_hash")?),
        created_at: time(r, "created_at")?,
    })
}

fn api_key_row(r: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        prefix: get(r, "prefix")?,
        hash: get(r, "hash")?,
        role: stored("role", Role::parse(&get::<String>(r, "role")?))?,
        created_at: time(r, "created_at")?,
        expires_at: opt_time(r, "expires_at")?,
        revoked_at: opt_time(r, "revoked_at")?,
    })
}

fn contact_row(r: &SqliteRow) -> Result<Contact> {
    let tags: Vec<String> = json_from("tags", json_text(r, "tags")?)?;
    Ok(Contact {
        id: ContactId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        phone: stored("phone", Phone::parse(&get::<String>(r, "phone")?))?,
        email: get::<Option<String>>(r, "email")?.map(|e| stored("email", Email::parse(&e))).transpose()?,
        whatsapp_id: get(r, "whatsapp_id")?,
        tags: tags_from(tags)?,
        metadata: metadata_from(json_text(r, "metadata")?)?,
        lead_score: u8::try_from(get::<i64>(r, "lead_score")?).map_err(|e| crate::error::corrupt("lead_score", e))?,
        lead_stage: stored("lead_stage", LeadStage::parse(&get::<String>(r, "lead_stage")?))?,
        opt_in: OptIn {
            status: stored("opt_in_status", OptInStatus::parse(&get::<String>(r, "opt_in_status")?))?,
            changed_at: opt_time(r, "opt_in_changed_at")?,
            source: get(r, "opt_in_source")?,
        },
        last_inbound_at: opt_time(r, "last_inbound_at")?,
        last_outbound_at: opt_time(r, "last_outbound_at")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
        version: get(r, "version")?,
    })
}

fn message_row(r: &SqliteRow) -> Result<Message> {
    let error: Option<String> = get(r, "error")?;
    Ok(Message {
        id: MessageId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        contact_id: ContactId::from_uuid(get(r, "contact_id")?),
        direction: stored("direction", Direction::parse(&get::<String>(r, "direction")?))?,
        content: json_from("content", json_text(r, "content")?)?,
        status: stored("status", MessageStatus::parse(&get::<String>(r, "status")?))?,
        provider_message_id: get(r, "provider_message_id")?,
        error: error.map(|e| serde_json::from_str(&e).map_err(|e| crate::error::corrupt("error", e))).transpose()?,
        created_at: time(r, "created_at")?,
        sent_at: opt_time(r, "sent_at")?,
        delivered_at: opt_time(r, "delivered_at")?,
        read_at: opt_time(r, "read_at")?,
        failed_at: opt_time(r, "failed_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn template_row(r: &SqliteRow) -> Result<Template> {
    Ok(Template {
        id: TemplateId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        name: get(r, "name")?,
        language: get(r, "language")?,
        category: stored("category", TemplateCategory::parse(&get::<String>(r, "category")?))?,
        body: get(r, "body")?,
        variables: json_from("variables", json_text(r, "variables")?)?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn event_row(r: &SqliteRow) -> Result<Event> {
    Ok(Event {
        id: EventId::from_uuid(get(r, "id")?),
        account_id: AccountId::from_uuid(get(r, "account_id")?),
        event_type: stored("type", EventType::custom(get::<String>(r, "type")?))?,
        payload: json_text(r, "payload")?,
        occurred_at: time(r, "occurred_at")?,
    })
}

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

/// Appends events and queues each for every registered consumer.
async fn append_events(tx: &mut Tx, events: &[&Event]) -> Result<()> {
    for chunk in events.chunks(BATCH) {
        let rows = chunk.iter().map(|e| Ok((e, json_string("payload", &e.payload)?))).collect::<Result<Vec<_>>>()?;
        let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO events (id, account_id, type, payload, occurred_at) ");
        b.push_values(rows, |mut sep, (e, payload)| {
            sep.push_bind(e.id.into_uuid())
                .push_bind(e.account_id.into_uuid())
                .push_bind(e.event_type.as_str().to_owned())
                .push_bind(payload)
                .push_bind(micros(e.occurred_at));
        });
        b.build().execute(&mut **tx).await.map_err(|e| db("appending events", e))?;
        let mut b = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (consumer, event_id, due_at, attempt) \
             SELECT c.name, v.column1, 0, 0 FROM outbox_consumers c, (",
        );
        b.push_values(chunk, |mut sep, e| {
            sep.push_bind(e.id.into_uuid());
        });
        b.push(") v");
        b.build().execute(&mut **tx).await.map_err(|e| db("queueing events", e))?;
    }
    Ok(())
}

async fn append(tx: &mut Tx, event: &Event) -> Result<()> {
    append_events(tx, &[event]).await
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

fn page<T>(items: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
    Page::from_overfetch(items, limit, id_of)
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()> {
        check_event_account(account.id, event)?;
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)")
            .bind(account.id.into_uuid())
            .bind(&account.name)
            .bind(micros(account.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| db("creating an account", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_account(&self, id: AccountId) -> Result<Account> {
        sqlx::query("SELECT * FROM accounts WHERE id = ?")
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
        let found = sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(user.account_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("looking up an account", e))?;
        if found.is_none() {
            return Err(Error::not_found("account"));
        }
        sqlx::query(
            "INSERT INTO users (id, account_id, email, name, role, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.into_uuid())
        .bind(user.account_id.into_uuid())
        .bind(user.email.as_str())
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.password_hash.as_phc())
        .bind(micros(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating a user", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        sqlx::query("SELECT * FROM users WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a user", e))?
            .map(|r| user_row(&r))
            .transpose()
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        sqlx::query("SELECT * FROM users WHERE account_id = ? ORDER BY id")
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
        let found = sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(key.account_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("looking up an account", e))?;
        if found.is_none() {
            return Err(Error::not_found("account"));
        }
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, prefix, hash, role, created_at, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.into_uuid())
        .bind(key.account_id.into_uuid())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(key.role.as_str())
        .bind(micros(key.created_at))
        .bind(opt_micros(key.expires_at))
        .bind(opt_micros(key.revoked_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating an API key", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE prefix = ?")
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading an API key", e))?
            .map(|r| api_key_row(&r))
            .transpose()
    }

    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE account_id = ? ORDER BY id")
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
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL RETURNING *",
        )
        .bind(micros(at))
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
        sqlx::query("SELECT * FROM api_keys WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM contacts WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM contacts WHERE account_id = ? AND phone = ?")
            .bind(account.into_uuid())
            .bind(phone.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a contact", e))?
            .map(|r| contact_row(&r))
            .transpose()
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
        Ok(page(items, query.page.limit, |c| c.id.into_uuid()))
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

#[async_trait]
impl MessageStore for SqliteStore {
    async fn insert_message(&self, message: &Message, event: &Event) -> Result<()> {
        check_event_account(message.account_id, event)?;
        let content = json_string("content", &message.content)?;
        let error = message.error.as_ref().map(|e| json_string("error", e)).transpose()?;
        let mut tx = self.write().await?;
        let cid = message.contact_id.into_uuid();
        if !exists(&mut tx, "SELECT 1 FROM contacts WHERE id = ? AND account_id = ?", cid, message.account_id).await? {
            return Err(Error::not_found("contact"));
        }
        sqlx::query(
            "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
             provider_message_id, error, created_at, sent_at, delivered_at, read_at, failed_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(micros(message.created_at))
        .bind(opt_micros(message.sent_at))
        .bind(opt_micros(message.delivered_at))
        .bind(opt_micros(message.read_at))
        .bind(opt_micros(message.failed_at))
        .bind(micros(message.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a message", e))?;
        let sql = match message.direction {
            Direction::Inbound => {
                "UPDATE contacts SET last_inbound_at = ?1 WHERE id = ?2 \
                 AND (last_inbound_at IS NULL OR last_inbound_at < ?1)"
            }
            Direction::Outbound => {
                "UPDATE contacts SET last_outbound_at = ?1 WHERE id = ?2 \
                 AND (last_outbound_at IS NULL OR last_outbound_at < ?1)"
            }
        };
        sqlx::query(sql)
            .bind(micros(message.created_at))
            .bind(cid)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("updating a contact's last message time", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        sqlx::query("SELECT * FROM messages WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM messages WHERE account_id = ? AND provider_message_id = ?")
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
        let predecessors = MessageStatus::predecessors(update.status);
        let error = update.error.as_ref().map(|e| json_string("error", e)).transpose()?;
        let mut tx = self.write().await?;
        let mut row = None;
        if !predecessors.is_empty() {
            let mut b = QueryBuilder::<Sqlite>::new("UPDATE messages SET status = ");
            b.push_bind(update.status.as_str());
            match update.status {
                MessageStatus::Sent => {
                    b.push(", sent_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Delivered => {
                    b.push(", delivered_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Read => {
                    b.push(", read_at = ").push_bind(micros(update.at));
                }
                MessageStatus::Failed => {
                    b.push(", failed_at = ").push_bind(micros(update.at)).push(", error = ").push_bind(error);
                }
                MessageStatus::Queued => {}
            }
            b.push(", provider_message_id = COALESCE(provider_message_id, ")
                .push_bind(update.provider_message_id.clone())
                .push("), updated_at = ")
                .push_bind(micros(update.at))
                .push(" WHERE id = ")
                .push_bind(id.into_uuid())
                .push(" AND account_id = ")
                .push_bind(account.into_uuid())
                .push(" AND status IN (");
            let mut sep = b.separated(", ");
            for s in predecessors {
                sep.push_bind(s.as_str());
            }
            b.push(") RETURNING *");
            row = b.build().fetch_optional(&mut *tx).await.map_err(|e| db("updating a message status", e))?;
        }
        let Some(row) = row else {
            let found =
                exists(&mut tx, "SELECT 1 FROM messages WHERE id = ? AND account_id = ?", id.into_uuid(), account)
                    .await?;
            return if found { Ok(None) } else { Err(Error::not_found("message")) };
        };
        let message = message_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(Some(message))
    }

    async fn list_thread(&self, account: AccountId, contact: ContactId, page: &PageRequest) -> Result<Page<Message>> {
        let found = sqlx::query("SELECT 1 FROM contacts WHERE id = ? AND account_id = ?")
            .bind(contact.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a contact", e))?;
        if found.is_none() {
            return Err(Error::not_found("contact"));
        }
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE account_id = ? AND contact_id = ? AND id > ? \
             ORDER BY id LIMIT ?",
        )
        .bind(account.into_uuid())
        .bind(contact.into_uuid())
        .bind(page.after.unwrap_or_default())
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("listing a thread", e))?;
        let items = rows.iter().map(message_row).collect::<Result<Vec<_>>>()?;
        Ok(self::page(items, page.limit, |m| m.id.into_uuid()))
    }
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let variables = json_string("variables", &template.variables)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO templates (id, account_id, name, language, category, body, variables, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(template.id.into_uuid())
        .bind(template.account_id.into_uuid())
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(variables)
        .bind(micros(template.created_at))
        .bind(micros(template.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a template", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let variables = json_string("variables", &template.variables)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE templates SET name = ?, language = ?, category = ?, body = ?, variables = ?, updated_at = ? \
             WHERE id = ? AND account_id = ?",
        )
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(variables)
        .bind(micros(template.updated_at))
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
        let done = sqlx::query("DELETE FROM templates WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM templates WHERE id = ? AND account_id = ?")
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
        sqlx::query("SELECT * FROM templates WHERE account_id = ? AND name = ? AND language = ?")
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
        let rows = sqlx::query("SELECT * FROM templates WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(account.into_uuid())
            .bind(page.after.unwrap_or_default())
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing templates", e))?;
        let items = rows.iter().map(template_row).collect::<Result<Vec<_>>>()?;
        Ok(self::page(items, page.limit, |t| t.id.into_uuid()))
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        let after = after.map_or(Uuid::nil(), EventId::into_uuid);
        sqlx::query("SELECT * FROM events WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(account.into_uuid())
            .bind(after)
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
        let after = after.map_or(Uuid::nil(), EventId::into_uuid);
        sqlx::query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
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
        sqlx::query("INSERT INTO outbox_consumers (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(consumer)
            .bind(now_micros())
            .execute(&self.pool)
            .await
            .map_err(|e| db("registering a consumer", e))?;
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let mut tx = self.write().await?;
        let now = now_micros();
        let until = now.saturating_add(duration_micros(lease));
        let rows = sqlx::query(
            "SELECT o.attempt AS attempt, o.last_error AS last_error, e.* FROM outbox o \
             JOIN events e ON e.id = o.event_id \
             WHERE o.consumer = ?1 AND o.due_at <= ?2 AND (o.lease_until IS NULL OR o.lease_until <= ?2) \
             ORDER BY o.event_id LIMIT ?3",
        )
        .bind(consumer)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db("claiming outbox items", e))?;
        let mut claims = Vec::with_capacity(rows.len());
        for r in &rows {
            let event = event_row(r)?;
            let attempt = u32::try_from(get::<i64>(r, "attempt")?.saturating_add(1)).unwrap_or(u32::MAX);
            let lease_id = Uuid::now_v7();
            sqlx::query(
                "UPDATE outbox SET lease_id = ?, lease_until = ?, attempt = attempt + 1 \
                 WHERE consumer = ? AND event_id = ?",
            )
            .bind(lease_id)
            .bind(until)
            .bind(consumer)
            .bind(event.id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("claiming outbox items", e))?;
            claims.push(Claim {
                token: ClaimToken { consumer: consumer.to_owned(), event_id: event.id, lease_id },
                event,
                attempt,
                last_error: get(r, "last_error")?,
            });
        }
        commit(tx).await?;
        Ok(claims)
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM outbox WHERE consumer = ? AND event_id = ? AND lease_id = ?")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .bind(claim.lease_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("acknowledging an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(lost_lease(&mut tx, claim).await);
        }
        commit(tx).await
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let due = now_micros().saturating_add(duration_micros(retry_in));
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, due_at = ?, last_error = ? \
             WHERE consumer = ? AND event_id = ? AND lease_id = ?",
        )
        .bind(due)
        .bind(error)
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("releasing an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(lost_lease(&mut tx, claim).await);
        }
        commit(tx).await
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = ?")
            .bind(consumer)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("counting outbox items", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Why an ack/nack matched no row: the item is gone, or another lease holds it.
async fn lost_lease(tx: &mut Tx, claim: &ClaimToken) -> Error {
    let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = ? AND event_id = ?")
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .fetch_optional(&mut **tx)
        .await;
    match found {
        Ok(Some(_)) => Error::conflict("outbox item", "the lease was lost to another claim"),
        Ok(None) => Error::not_found("outbox item"),
        Err(e) => db("reading an outbox item", e),
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
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
