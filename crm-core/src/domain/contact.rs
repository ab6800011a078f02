//! Contacts: the people a business talks to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use crate::domain::account::validate_name;
use crate::{AccountId, ContactId, Email, Error, Phone, Result};

/// Free-form JSON attached to a contact (always an object).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Largest serialized size of a contact's metadata, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most tags one contact may carry.
pub const MAX_TAGS: usize = 50;

/// A tag: trimmed, lower-cased, 1–64 characters, no commas or control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    /// Normalises and validates a tag; [`Error::Validation`] on `tags`.
    pub fn parse(input: &str) -> Result<Self> {
        let v = input.trim().to_lowercase();
        if v.is_empty() || v.chars().count() > 64 {
            return Err(Error::validation("tags", "each tag must be 1 to 64 characters"));
        }
        if v.chars().any(|c| c.is_control() || c == ',') {
            return Err(Error::validation("tags", "tags must not contain commas or control characters"));
        }
        Ok(Tag(v))
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Tag::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a lead stands in the sales funnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LeadStage {
    /// Not yet worked.
    #[default]
    New,
    /// First contact made.
    Contacted,
    /// Fits the ideal customer profile.
    Qualified,
    /// An offer was sent.
    Proposal,
    /// Terms being discussed.
    Negotiation,
    /// Became a customer.
    Won,
    /// Not buying.
    Lost,
}

impl LeadStage {
    /// Every stage, in funnel order.
    pub const ALL: [LeadStage; 7] = [
        LeadStage::New,
        LeadStage::Contacted,
        LeadStage::Qualified,
        LeadStage::Proposal,
        LeadStage::Negotiation,
        LeadStage::Won,
        LeadStage::Lost,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStage::New => "new",
            LeadStage::Contacted => "contacted",
            LeadStage::Qualified => "qualified",
            LeadStage::Proposal => "proposal",
            LeadStage::Negotiation => "negotiation",
            LeadStage::Won => "won",
            LeadStage::Lost => "lost",
        }
    }

    /// Parses [`LeadStage::as_str`] output; [`Error::Validation`] on `lead_stage`.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::validation("lead_stage", "unknown lead stage"))
    }
}

/// Whether a contact agreed to receive messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OptInStatus {
    /// Never asked.
    #[default]
    Unknown,
    /// Agreed to receive messages.
    OptedIn,
    /// Asked not to be messaged; outbound messages are refused.
    OptedOut,
}

impl OptInStatus {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OptInStatus::Unknown => "unknown",
            OptInStatus::OptedIn => "opted_in",
            OptInStatus::OptedOut => "opted_out",
        }
    }

    /// Parses [`OptInStatus::as_str`] output.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unknown" => Ok(OptInStatus::Unknown),
            "opted_in" => Ok(OptInStatus::OptedIn),
            "opted_out" => Ok(OptInStatus::OptedOut),
            _ => Err(Error::validation("opt_in", "must be unknown, opted_in or opted_out")),
        }
    }
}

/// Opt-in state with when and how it last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptIn {
    /// Current state.
    pub status: OptInStatus,
    /// When it last changed.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub changed_at: Option<DateTime<Utc>>,
    /// How it was collected (`"website-form"`, `"whatsapp-keyword"`, …).
    pub source: Option<String>,
}

/// A person the business talks to, unique per account by [`Phone`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Owning account.
    pub account_id: AccountId,
    /// Display name, 1–200 characters.
    pub name: String,
    /// Canonical E.164 phone; unique within the account.
    pub phone: Phone,
    /// Optional e-mail.
    pub email: Option<Email>,
    /// WhatsApp id as the provider reports it (may lack Brazil's 9th digit).
    pub whatsapp_id: Option<String>,
    /// Tags, normalised and sorted.
    pub tags: BTreeSet<Tag>,
    /// Free-form JSON object, at most 16 KiB serialized.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
    /// Lead score, 0–100.
    pub lead_score: u8,
    /// Funnel stage.
    pub lead_stage: LeadStage,
    /// Consent to be messaged.
    pub opt_in: OptIn,
    /// Last message from the contact (opens WhatsApp's 24-hour window).
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Last message to the contact.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// Creation time.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every store update.
    pub version: i64,
}

/// Input for creating a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewContact {
    /// Display name (required), 1–200 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// Phone in international form (required).
    pub phone: String,
    /// Optional e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Optional WhatsApp id.
    #[serde(default)]
    pub whatsapp_id: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// JSON object.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// 0–100.
    #[serde(default)]
    pub lead_score: Option<i64>,
    /// Funnel stage.
    #[serde(default)]
    pub lead_stage: Option<LeadStage>,
    /// Consent.
    #[serde(default)]
    pub opt_in: Option<OptInStatus>,
    /// How consent was collected.
    #[serde(default)]
    pub opt_in_source: Option<String>,
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears an
/// optional field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// New or cleared e-mail.
    #[serde(default, with = "double_option")]
    pub email: Option<Option<String>>,
    /// New or cleared WhatsApp id.
    #[serde(default, with = "double_option")]
    pub whatsapp_id: Option<Option<String>>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Replaces the metadata object.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// New score.
    #[serde(default)]
    pub lead_score: Option<i64>,
    /// New stage.
    #[serde(default)]
    pub lead_stage: Option<LeadStage>,
    /// New consent state.
    #[serde(default)]
    pub opt_in: Option<OptInStatus>,
    /// How the new consent was collected.
    #[serde(default)]
    pub opt_in_source: Option<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeSet<Tag>> {
    let set = tags.iter().map(|t| Tag::parse(t)).collect::<Result<BTreeSet<_>>>()?;
    if set.len() > MAX_TAGS {
        return Err(Error::validation("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(set)
}

fn parse_metadata(value: serde_json::Value) -> Result<Metadata> {
    let serde_json::Value::Object(map) = value else {
        return Err(Error::validation("metadata", "must be a JSON object"));
    };
    let text = serde_json::to_string(&map).unwrap_or_default();
    if text.contains("\\u0000") {
        return Err(Error::validation("metadata", "must not contain NUL characters"));
    }
    let size = text.len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::validation("metadata", format!("is {size} bytes; at most {MAX_METADATA_BYTES} allowed")));
    }
    Ok(map)
}

fn parse_score(score: i64) -> Result<u8> {
    u8::try_from(score)
        .ok()
        .filter(|s| *s <= 100)
        .ok_or_else(|| Error::validation("lead_score", "must be between 0 and 100"))
}

fn parse_whatsapp_id(id: &str) -> Result<String> {
    let id = id.trim();
    if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::validation("whatsapp_id", "must be 1 to 64 characters without spaces"));
    }
    Ok(id.to_owned())
}

fn parse_source(source: Option<String>) -> Result<Option<String>> {
    source.map(|s| validate_name("opt_in_source", &s, 100)).transpose()
}

impl Contact {
    /// Validates `input` into a new contact of `account_id`.
    ///
    /// [`Error::Validation`] names the first bad field: `name`, `phone`, `email`,
    /// `whatsapp_id`, `tags`, `metadata`, `lead_score` or `opt_in_source`.
    pub fn new(account_id: AccountId, input: NewContact, now: DateTime<Utc>) -> Result<Self> {
        let opt_status = input.opt_in.unwrap_or_default();
        let opt_in = OptIn {
            status: opt_status,
            changed_at: (opt_status != OptInStatus::Unknown).then_some(now),
            source: parse_source(input.opt_in_source)?,
        };
        Ok(Contact {
            id: ContactId::new(),
            account_id,
            name: validate_name("name", &input.name, 200)?,
            phone: Phone::parse(&input.phone)?,
            email: input.email.as_deref().map(Email::parse).transpose()?,
            whatsapp_id: input.whatsapp_id.as_deref().map(parse_whatsapp_id).transpose()?,
            tags: parse_tags(&input.tags)?,
            metadata: input.metadata.map(parse_metadata).transpose()?.unwrap_or_default(),
            lead_score: input.lead_score.map(parse_score).transpose()?.unwrap_or(0),
            lead_stage: input.lead_stage.unwrap_or_default(),
            opt_in,
            last_inbound_at: None,
            last_outbound_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// Applies `patch`, validating every field before changing any (on error
    /// `self` is unchanged). Returns whether anything changed.
    pub fn apply(&mut self, patch: ContactPatch, now: DateTime<Utc>) -> Result<bool> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = validate_name("name", &name, 200)?;
        }
        if let Some(phone) = patch.phone {
            next.phone = Phone::parse(&phone)?;
        }
        if let Some(email) = patch.email {
            next.email = email.as_deref().map(Email::parse).transpose()?;
        }
        if let Some(wa) = patch.whatsapp_id {
            next.whatsapp_id = wa.as_deref().map(parse_whatsapp_id).transpose()?;
        }
        if let Some(tags) = patch.tags {
            next.tags = parse_tags(&tags)?;
        }
        if let Some(metadata) = patch.metadata {
            next.metadata = parse_metadata(metadata)?;
        }
        if let Some(score) = patch.lead_score {
            next.lead_score = parse_score(score)?;
        }
        if let Some(stage) = patch.lead_stage {
            next.lead_stage = stage;
        }
        if let Some(source) = patch.opt_in_source {
            next.opt_in.source = parse_source(Some(source))?;
        }
        if let Some(status) = patch.opt_in
            && status != next.opt_in.status
        {
            next.opt_in.status = status;
            next.opt_in.changed_at = Some(now);
        }
        if next == *self {
            return Ok(false);
        }
        next.updated_at = now;
        *self = next;
        Ok(true)
    }

    /// Adds tags; returns whether any was new. Validates all first.
    pub fn add_tags(&mut self, tags: &[String], now: DateTime<Utc>) -> Result<bool> {
        let add = parse_tags(tags)?;
        let mut next = self.tags.clone();
        next.extend(add);
        if next.len() > MAX_TAGS {
            return Err(Error::validation("tags", format!("at most {MAX_TAGS} tags")));
        }
        let changed = next != self.tags;
        if changed {
            self.tags = next;
            self.updated_at = now;
        }
        Ok(changed)
    }

    /// Removes tags; returns whether any was present.
    pub fn remove_tags(&mut self, tags: &[String], now: DateTime<Utc>) -> Result<bool> {
        let remove = parse_tags(tags)?;
        let before = self.tags.len();
        self.tags.retain(|t| !remove.contains(t));
        let changed = self.tags.len() != before;
        if changed {
            self.updated_at = now;
        }
        Ok(changed)
    }
}

/// Which contacts to list, and where to resume. See [`ContactQuery::matches`]
/// for the exact semantics every store implements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Only contacts carrying this tag.
    pub tag: Option<Tag>,
    /// Only contacts in this stage.
    pub lead_stage: Option<LeadStage>,
    /// Free-text search, see [`ContactSearch`].
    pub search: Option<ContactSearch>,
    /// Page position and size.
    pub page: PageRequest,
}

/// A parsed search term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactSearch {
    /// Phone digits (the term had only digits and `+ -().`): contacts whose
    /// E.164 phone contains these digits.
    PhoneDigits(String),
    /// The term contained `@`: contacts whose e-mail starts with it (lower-cased).
    EmailPrefix(String),
    /// Otherwise: contacts whose lower-cased name starts with it.
    NamePrefix(String),
}

impl ContactSearch {
    /// Classifies a search term; `None` for a blank one. [`Error::Validation`]
    /// on `search` when longer than 200 characters or holding a NUL.
    pub fn parse(term: &str) -> Result<Option<Self>> {
        let t = term.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if t.chars().count() > 200 {
            return Err(Error::validation("search", "must be at most 200 characters"));
        }
        if t.contains('\0') {
            return Err(Error::validation("search", "must not contain NUL characters"));
        }
        if t.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) && t.chars().any(|c| c.is_ascii_digit()) {
            return Ok(Some(ContactSearch::PhoneDigits(t.chars().filter(char::is_ascii_digit).collect())));
        }
        let lower = t.to_lowercase();
        if lower.contains('@') {
            Ok(Some(ContactSearch::EmailPrefix(lower)))
        } else {
            Ok(Some(ContactSearch::NamePrefix(lower)))
        }
    }
}

impl ContactQuery {
    /// The reference semantics of a contact query filter (ignoring the page).
    pub fn matches(&self, c: &Contact) -> bool {
        if self.tag.as_ref().is_some_and(|t| !c.tags.contains(t)) {
            return false;
        }
        if self.lead_stage.is_some_and(|s| s != c.lead_stage) {
            return false;
        }
        match &self.search {
            None => true,
            Some(ContactSearch::PhoneDigits(d)) => c.phone.digits().contains(d.as_str()),
            Some(ContactSearch::EmailPrefix(p)) => c.email.as_ref().is_some_and(|e| e.as_str().starts_with(p.as_str())),
            Some(ContactSearch::NamePrefix(p)) => c.name.to_lowercase().starts_with(p.as_str()),
        }
    }
}

/// Keyset pagination: items after `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Resume after this id (exclusive); `None` starts at the beginning.
    pub after: Option<uuid::Uuid>,
    /// Page size, 1..=[`PageRequest::MAX_LIMIT`].
    pub limit: u32,
}

impl PageRequest {
    /// Largest page.
    pub const MAX_LIMIT: u32 = 200;
    /// Default page.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// A first page of `limit` items; [`Error::Validation`] on `limit` when out of range.
    pub fn first(limit: u32) -> Result<Self> {
        Self::new(None, limit)
    }

    /// A page after `cursor` (an opaque string from [`Page::next_cursor`]).
    pub fn new(cursor: Option<&str>, limit: u32) -> Result<Self> {
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(Error::validation("limit", format!("must be between 1 and {}", Self::MAX_LIMIT)));
        }
        let after = cursor
            .map(|c| decode_cursor(c).ok_or_else(|| Error::validation("cursor", "is not a cursor this API issued")))
            .transpose()?;
        Ok(Self { after, limit })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { after: None, limit: Self::DEFAULT_LIMIT }
    }
}

/// One page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// Items in id order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra item only
    /// signals that another page exists.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, id_of: impl Fn(&T) -> uuid::Uuid) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(|i| encode_cursor(id_of(i))) } else { None };
        Page { items, next_cursor }
    }
}

fn encode_cursor(id: uuid::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(c: &str) -> Option<uuid::Uuid> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    uuid::Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(name: &str, phone: &str) -> NewContact {
        NewContact { name: name.into(), phone: phone.into(), ..Default::default() }
    }

    #[test]
    fn validates_each_field() {
        let a = AccountId::new();
        let now = Utc::now();
        let field = |e: Error| match e {
            Error::Validation { field, .. } => field.into_owned(),
            other => panic!("{other}"),
        };
        assert_eq!(field(Contact::new(a, new(" ", "+5511987654321"), now).unwrap_err()), "name");
        assert_eq!(field(Contact::new(a, new("Ana", "12"), now).unwrap_err()), "phone");
        let mut n = new("Ana", "+5511987654321");
        n.metadata = Some(json!({"big": "x".repeat(MAX_METADATA_BYTES)}));
        assert_eq!(field(Contact::new(a, n.clone(), now).unwrap_err()), "metadata");
        n.metadata = Some(json!([1]));
        assert_eq!(field(Contact::new(a, n.clone(), now).unwrap_err()), "metadata");
        n.metadata = None;
        n.lead_score = Some(101);
        assert_eq!(field(Contact::new(a, n.clone(), now).unwrap_err()), "lead_score");
        n.lead_score = Some(-1);
        assert_eq!(field(Contact::new(a, n.clone(), now).unwrap_err()), "lead_score");
        n.lead_score = None;
        n.tags = vec!["a,b".into()];
        assert_eq!(field(Contact::new(a, n.clone(), now).unwrap_err()), "tags");
        n.tags = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(field(Contact::new(a, n, now).unwrap_err()), "tags");
    }

    #[test]
    fn patch_is_all_or_nothing() {
        let now = Utc::now();
        let mut c = Contact::new(AccountId::new(), new("Ana", "+5511987654321"), now).unwrap();
        let before = c.clone();
        let patch = ContactPatch { name: Some("Ana Maria".into()), lead_score: Some(500), ..Default::default() };
        assert!(c.apply(patch, now).is_err());
        assert_eq!(c, before);
        let patch = ContactPatch {
            email: Some(Some("ANA@x.com".into())),
            opt_in: Some(OptInStatus::OptedIn),
            ..Default::default()
        };
        assert!(c.apply(patch, now).unwrap());
        assert_eq!(c.email.as_ref().unwrap().as_str(), "ana@x.com");
        assert_eq!(c.opt_in.changed_at, Some(now));
        assert!(!c.apply(ContactPatch::default(), now).unwrap());
        let patch: ContactPatch = serde_json::from_value(json!({"email": null})).unwrap();
        assert!(c.apply(patch, now).unwrap());
        assert_eq!(c.email, None);
        assert!(serde_json::from_value::<ContactPatch>(json!({"id": "x"})).is_err());
    }

    #[test]
    fn tags_normalise_and_dedupe() {
        let now = Utc::now();
        let mut c = Contact::new(AccountId::new(), new("Ana", "+5511987654321"), now).unwrap();
        assert!(c.add_tags(&["VIP".into(), " vip ".into(), "Promoção".into()], now).unwrap());
        assert_eq!(c.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["promoção", "vip"]);
        assert!(!c.add_tags(&["vip".into()], now).unwrap());
        assert!(c.remove_tags(&["VIP".into()], now).unwrap());
        assert!(!c.remove_tags(&["vip".into()], now).unwrap());
    }

    #[test]
    fn search_classification_and_matching() {
        let now = Utc::now();
        let mut n = new("Ana Souza", "+5511987654321");
        n.email = Some("ana@loja.com.br".into());
        let c = Contact::new(AccountId::new(), n, now).unwrap();
        let q = |t: &str| ContactQuery { search: ContactSearch::parse(t).unwrap(), ..Default::default() };
        assert!(q("ana").matches(&c));
        assert!(q("ANA S").matches(&c));
        assert!(!q("souza").matches(&c));
        assert!(q("98765").matches(&c));
        assert!(q("(11) 98765").matches(&c));
        assert!(q("ana@loja").matches(&c));
        assert!(!q("bob@").matches(&c));
        assert_eq!(ContactSearch::parse("  ").unwrap(), None);
    }

    #[test]
    fn cursors_roundtrip_and_reject_garbage() {
        let id = uuid::Uuid::now_v7();
        let page = Page::from_overfetch(vec![id, uuid::Uuid::now_v7()], 1, |u| *u);
        let cursor = page.next_cursor.unwrap();
        assert_eq!(PageRequest::new(Some(&cursor), 10).unwrap().after, Some(id));
        assert!(PageRequest::new(Some("!!"), 10).is_err());
        assert!(PageRequest::new(None, 0).is_err());
        assert!(PageRequest::new(None, 201).is_err());
        let last = Page::from_overfetch(vec![id], 1, |u| *u);
        assert_eq!(last.next_cursor, None);
    }
}
