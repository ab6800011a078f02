//! Channels: one account's connections to messaging providers.
//!
//! A channel is what Evolution API calls an instance, WAHA a session and
//! Chatwoot an inbox: a provider kind (`recording`, `whatsapp-cloud`,
//! `whatsapp-web`, …), the provider's identifier used to route inbound
//! traffic (a Cloud `phone_number_id`, a Web session id), non-secret
//! settings, credentials sealed at rest, and the pacing the send governor
//! applies to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::secrets::{Credentials, SealedSecret};
use crate::{AccountId, ChannelId, Error, Metadata, Result};

/// Most channels one account may have.
pub const MAX_CHANNELS_PER_ACCOUNT: usize = 100;

/// A provider kind: 1–32 of `a-z`, `0-9`, `-`, starting with a letter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "whatsapp-cloud"))]
pub struct ChannelKind(String);

impl ChannelKind {
    /// The recording double: stores messages without delivering them.
    pub const RECORDING: &'static str = "recording";

    /// Parses a kind. [`Error::Validation`] on `kind` when malformed.
    pub fn parse(kind: &str) -> Result<Self> {
        let ok = (1..=32).contains(&kind.len())
            && kind.starts_with(|c: char| c.is_ascii_lowercase())
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(Error::validation("kind", "must be 1 to 32 of a-z, 0-9, - starting with a letter"));
        }
        Ok(Self(kind.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelKind({})", self.0)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        ChannelKind::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One step of a warm-up schedule: from `day` days after the channel's
/// warm-up start, at most `cap` unique recipients per 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarmupStep {
    /// Days since the warm-up started (0 = the first day), at most 3650.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 3650))]
    pub day: u32,
    /// Unique recipients allowed per 24 hours from that day, 1 to 10,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub cap: u32,
}

crate::json_object_only!(WarmupStep, Pacing);

/// Largest daily cap (unique recipients per 24 hours) a channel may set.
pub const MAX_DAILY_CAP: u32 = 10_000_000;

/// How the send governor paces one channel. Every field is optional; unset
/// fields take the provider's capabilities or the governor's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pacing {
    /// Sustained messages per second (default: the provider's
    /// `max_messages_per_second`, e.g. 80 for WhatsApp Cloud).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000))]
    pub per_second: Option<u32>,
    /// Seconds between two messages to the same recipient (default 6, Meta's
    /// pair rate; 0 turns the spacing off).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86_400))]
    pub pair_interval_secs: Option<u32>,
    /// Up to this many milliseconds of random delay before each send
    /// (default 0; a few hundred helps numbers driven through WhatsApp Web).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 60_000))]
    pub jitter_ms: Option<u32>,
    /// At most this many unique recipients per rolling 24 hours (Meta's
    /// messaging tiers: 250, 1 000, 10 000, 100 000). Unset: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub daily_unique_cap: Option<u32>,
    /// A warm-up schedule for a new number that raises the daily cap over
    /// days; it overrides `daily_unique_cap` until its last step's day.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 30))]
    pub warmup: Vec<WarmupStep>,
    /// When the warm-up started (default: the channel's creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_started_at: Option<DateTime<Utc>>,
}

impl Pacing {
    /// Checks ranges: rate 1–10 000/s, pair interval ≤ 1 day, jitter ≤ 60 s,
    /// caps 1–10 000 000, warm-up days ≤ 3650, at most 30 warm-up steps in
    /// increasing day order.
    pub fn validate(&self) -> Result<()> {
        if self.per_second.is_some_and(|r| !(1..=10_000).contains(&r)) {
            return Err(Error::validation("pacing.per_second", "must be 1 to 10000"));
        }
        if self.pair_interval_secs.is_some_and(|s| s > 86_400) {
            return Err(Error::validation("pacing.pair_interval_secs", "must be at most 86400"));
        }
        if self.jitter_ms.is_some_and(|j| j > 60_000) {
            return Err(Error::validation("pacing.jitter_ms", "must be at most 60000"));
        }
        if self.daily_unique_cap.is_some_and(|c| !(1..=MAX_DAILY_CAP).contains(&c)) {
            return Err(Error::validation("pacing.daily_unique_cap", "must be 1 to 10000000"));
        }
        if self.warmup.len() > 30 {
            return Err(Error::validation("pacing.warmup", "at most 30 steps"));
        }
        let mut last: Option<u32> = None;
        for step in &self.warmup {
            if !(1..=MAX_DAILY_CAP).contains(&step.cap) || step.day > 3650 {
                return Err(Error::validation("pacing.warmup", "caps must be 1 to 10000000 and days at most 3650"));
            }
            if last.is_some_and(|d| step.day <= d) {
                return Err(Error::validation("pacing.warmup", "steps must be in increasing day order"));
            }
            last = Some(step.day);
        }
        Ok(())
    }

    /// The unique-recipient cap in force at `now` for a channel created at
    /// `created_at`: the warm-up step reached, else `daily_unique_cap`.
    pub fn daily_cap_at(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<u32> {
        let start = self.warmup_started_at.unwrap_or(created_at);
        let days = u32::try_from((now - start).num_days().max(0)).unwrap_or(u32::MAX);
        let last_day = self.warmup.last().map(|s| s.day);
        match last_day {
            Some(last) if days <= last => {
                self.warmup.iter().rev().find(|s| s.day <= days).map(|s| s.cap).or(self.warmup.first().map(|s| s.cap))
            }
            // After the schedule: the plain cap, or the last step's when none is set.
            Some(_) => self.daily_unique_cap.or(self.warmup.last().map(|s| s.cap)),
            None => self.daily_unique_cap,
        }
    }
}

/// Why and until when a channel is not sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Throttle {
    /// A short reason, e.g. `daily cap of 250 unique recipients reached`.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// When sending resumes.
    pub until: DateTime<Utc>,
}

/// A channel: one account's connection to a messaging provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Id.
    pub id: ChannelId,
    /// Owning account.
    pub account_id: AccountId,
    /// Provider kind.
    pub kind: ChannelKind,
    /// Display name.
    pub name: String,
    /// The provider's identifier for this connection (a Cloud
    /// `phone_number_id`, a Web session id); unique per kind across all
    /// accounts, so inbound traffic resolves to exactly one channel.
    pub provider_id: Option<String>,
    /// Non-secret settings the provider reads (JSON object, ≤ 16 KiB).
    pub settings: Metadata,
    /// Credentials, sealed (see [`crate::secrets`]).
    pub credentials: Option<SealedSecret>,
    /// Pacing for the send governor.
    pub pacing: Pacing,
    /// Whether sends without an explicit channel use this one (at most one per account).
    pub is_default: bool,
    /// Disabled channels send nothing and accept no inbound traffic.
    pub enabled: bool,
    /// Set while the governor or the provider holds sending back.
    pub throttle: Option<Throttle>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, +1 per update (not moved by throttling).
    pub version: i64,
}

/// What a caller gives to create a channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewChannel {
    /// Provider kind (one a messenger factory is registered for).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, example = "recording", pattern = "^[a-z][a-z0-9-]{0,31}$")
    )]
    pub kind: String,
    /// Display name, 1–100 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub name: String,
    /// The provider's identifier (e.g. a Cloud `phone_number_id`): 1–128
    /// characters without spaces.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\S{1,128}$"))]
    pub provider_id: Option<String>,
    /// Non-secret settings.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<serde_json::Value>,
    /// Credentials (write-only: stored sealed, never returned).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credentials: Option<Credentials>,
    /// Pacing for the send governor.
    #[serde(default)]
    pub pacing: Option<Pacing>,
    /// Make it the account's default channel (the first channel always is).
    #[serde(default)]
    pub is_default: bool,
    /// Defaults to true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A partial update of a channel; absent fields keep their values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New provider identifier; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub provider_id: Option<Option<String>>,
    /// New settings (replaces the object).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<serde_json::Value>,
    /// New credentials (replace the old ones); `null` removes them.
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credentials: Option<Option<Credentials>>,
    /// New pacing (replaces the old one).
    #[serde(default)]
    pub pacing: Option<Pacing>,
    /// `true` makes it the default; `false` is refused while it is the default
    /// (make another channel the default instead).
    #[serde(default)]
    pub is_default: Option<bool>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

pub(crate) fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    let n = name.chars().count();
    if !(1..=100).contains(&n) || name.chars().any(char::is_control) {
        return Err(Error::validation("name", "must be 1 to 100 characters without control characters"));
    }
    Ok(name.to_owned())
}

/// Checks a provider identifier: 1–128 printable characters without spaces.
pub fn check_provider_id(id: &str) -> Result<()> {
    let ok = (1..=128).contains(&id.len()) && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    if !ok {
        return Err(Error::validation("provider_id", "must be 1 to 128 characters without spaces"));
    }
    Ok(())
}

fn check_settings(value: serde_json::Value) -> Result<Metadata> {
    let serde_json::Value::Object(map) = value else {
        return Err(Error::validation("settings", "must be a JSON object"));
    };
    let size = serde_json::to_string(&map).map(|t| t.len()).unwrap_or(usize::MAX);
    if size > crate::MAX_METADATA_BYTES {
        return Err(Error::validation("settings", format!("at most {} bytes", crate::MAX_METADATA_BYTES)));
    }
    fallback_template_of(&map)?;
    Ok(map)
}

/// The `fallback_template` setting every channel kind may carry (see
/// [`Channel::fallback_template`]).
pub const FALLBACK_TEMPLATE_SETTING: &str = "fallback_template";

fn fallback_template_of(settings: &Metadata) -> Result<Option<crate::FallbackTemplate>> {
    let field = "settings.fallback_template";
    match settings.get(FALLBACK_TEMPLATE_SETTING) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => {
            let t: crate::FallbackTemplate = serde_json::from_value(v.clone()).map_err(|e| {
                Error::validation(field, format!("must be {{\"name\", \"language\", \"variables\"}}: {e}"))
            })?;
            t.validate(field)?;
            Ok(Some(t))
        }
    }
}

impl Channel {
    /// The template a free-form send falls back to when the contact's
    /// customer-service window on this channel is closed: the
    /// `fallback_template` setting (`{"name", "language", "variables"}`),
    /// which any channel kind may carry. [`Error::Validation`] when it is malformed.
    pub fn fallback_template(&self) -> Result<Option<crate::FallbackTemplate>> {
        fallback_template_of(&self.settings)
    }

    /// A new channel from `input` (credentials are sealed by the caller and
    /// passed as `credentials`). Validates everything but the kind's own rules
    /// (the messenger factory checks those).
    pub fn new(
        account_id: AccountId,
        input: &NewChannel,
        credentials: Option<SealedSecret>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let kind = ChannelKind::parse(&input.kind)?;
        if let Some(p) = &input.provider_id {
            check_provider_id(p)?;
        }
        let pacing = input.pacing.clone().unwrap_or_default();
        pacing.validate()?;
        if let Some(c) = &input.credentials {
            c.validate()?;
        }
        Ok(Channel {
            id: ChannelId::new(),
            account_id,
            kind,
            name: check_name(&input.name)?,
            provider_id: input.provider_id.clone(),
            settings: input.settings.clone().map(check_settings).transpose()?.unwrap_or_default(),
            credentials,
            pacing,
            is_default: input.is_default,
            enabled: input.enabled.unwrap_or(true),
            throttle: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// Applies a patch (credentials are handled by the caller, who seals
    /// them). Returns whether anything changed.
    pub fn apply(&mut self, patch: &ChannelPatch, now: DateTime<Utc>) -> Result<bool> {
        let mut next = self.clone();
        if let Some(n) = &patch.name {
            next.name = check_name(n)?;
        }
        if let Some(p) = &patch.provider_id {
            if let Some(p) = p {
                check_provider_id(p)?;
            }
            next.provider_id = p.clone();
        }
        if let Some(s) = &patch.settings {
            next.settings = check_settings(s.clone())?;
        }
        if let Some(p) = &patch.pacing {
            p.validate()?;
            next.pacing = p.clone();
        }
        if let Some(Some(c)) = &patch.credentials {
            c.validate()?;
        }
        match patch.is_default {
            Some(false) if self.is_default => {
                return Err(Error::validation(
                    "is_default",
                    "this is the account's default channel; make another channel the default instead",
                ));
            }
            Some(d) => next.is_default = d,
            None => {}
        }
        if let Some(e) = patch.enabled {
            next.enabled = e;
        }
        let changed = next != *self;
        if changed {
            next.updated_at = now;
            *self = next;
        }
        Ok(changed)
    }

    /// The associated data credentials are sealed with: binds them to this
    /// channel of this account.
    pub fn secret_context(&self) -> Vec<u8> {
        format!("channel:{}:{}", self.account_id, self.id).into_bytes()
    }

    /// The throttle in force at `now`, if any.
    pub fn throttled_at(&self, now: DateTime<Utc>) -> Option<&Throttle> {
        self.throttle.as_ref().filter(|t| t.until > now)
    }
}

/// What the API shows of a channel: everything but the sealed credentials,
/// which appear only as `has_credentials` and the names of what is stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelView {
    /// Id.
    pub id: ChannelId,
    /// Provider kind.
    pub kind: ChannelKind,
    /// Display name.
    pub name: String,
    /// The provider's identifier.
    pub provider_id: Option<String>,
    /// Non-secret settings.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Metadata,
    /// Whether credentials are stored (they are never shown).
    pub has_credentials: bool,
    /// The id of the key the credentials are sealed with.
    pub credentials_key_id: Option<String>,
    /// Pacing.
    pub pacing: Pacing,
    /// Default channel of the account.
    pub is_default: bool,
    /// Enabled.
    pub enabled: bool,
    /// `active`, `throttled` or `disabled`.
    pub state: &'static str,
    /// Why and until when it is throttled.
    pub throttle: Option<Throttle>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Version.
    pub version: i64,
}

impl ChannelView {
    /// The view of `channel` at `now`.
    pub fn of(channel: &Channel, now: DateTime<Utc>) -> Self {
        let throttle = channel.throttled_at(now).cloned();
        let state = if !channel.enabled {
            "disabled"
        } else if throttle.is_some() {
            "throttled"
        } else {
            "active"
        };
        ChannelView {
            id: channel.id,
            kind: channel.kind.clone(),
            name: channel.name.clone(),
            provider_id: channel.provider_id.clone(),
            settings: channel.settings.clone(),
            has_credentials: channel.credentials.is_some(),
            credentials_key_id: channel.credentials.as_ref().map(|c| c.key_id().to_owned()),
            pacing: channel.pacing.clone(),
            is_default: channel.is_default,
            enabled: channel.enabled,
            state,
            throttle,
            created_at: channel.created_at,
            updated_at: channel.updated_at,
            version: channel.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn kinds_and_names_are_checked() {
        assert!(ChannelKind::parse("whatsapp-cloud").is_ok());
        for bad in ["", "WhatsApp", "9x", "a b", &"a".repeat(33)] {
            assert!(ChannelKind::parse(bad).is_err(), "{bad}");
        }
        let input = NewChannel { kind: "recording".into(), name: "  Loja  ".into(), ..Default::default() };
        let c = Channel::new(AccountId::new(), &input, None, t("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(c.name, "Loja");
        assert!(c.enabled);
        let bad = NewChannel { name: String::new(), ..input.clone() };
        assert!(Channel::new(AccountId::new(), &bad, None, t("2026-01-01T00:00:00Z")).is_err());
        let bad = NewChannel { provider_id: Some("a b".into()), ..input.clone() };
        assert!(Channel::new(AccountId::new(), &bad, None, t("2026-01-01T00:00:00Z")).is_err());
        let bad = NewChannel { settings: Some(serde_json::json!([1])), ..input };
        assert!(Channel::new(AccountId::new(), &bad, None, t("2026-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn warmup_raises_the_cap_over_days() {
        let created = t("2026-01-01T00:00:00Z");
        let p = Pacing {
            daily_unique_cap: Some(10_000),
            warmup: vec![
                WarmupStep { day: 0, cap: 50 },
                WarmupStep { day: 3, cap: 250 },
                WarmupStep { day: 7, cap: 1000 },
            ],
            ..Default::default()
        };
        p.validate().unwrap();
        assert_eq!(p.daily_cap_at(created, t("2026-01-01T12:00:00Z")), Some(50));
        assert_eq!(p.daily_cap_at(created, t("2026-01-04T00:00:00Z")), Some(250));
        assert_eq!(p.daily_cap_at(created, t("2026-01-08T00:00:00Z")), Some(1000));
        assert_eq!(p.daily_cap_at(created, t("2026-01-09T00:00:00Z")), Some(10_000));
        let no_cap = Pacing { warmup: vec![WarmupStep { day: 0, cap: 50 }], ..Default::default() };
        assert_eq!(no_cap.daily_cap_at(created, t("2026-02-01T00:00:00Z")), Some(50));
        assert_eq!(Pacing::default().daily_cap_at(created, created), None);
        let unordered =
            Pacing { warmup: vec![WarmupStep { day: 3, cap: 1 }, WarmupStep { day: 3, cap: 2 }], ..Default::default() };
        assert!(unordered.validate().is_err());
        assert!(Pacing { per_second: Some(0), ..Default::default() }.validate().is_err());
    }

    #[test]
    fn patches_apply_and_the_default_stays() {
        let input = NewChannel { kind: "recording".into(), name: "A".into(), is_default: true, ..Default::default() };
        let mut c = Channel::new(AccountId::new(), &input, None, t("2026-01-01T00:00:00Z")).unwrap();
        let now = t("2026-01-02T00:00:00Z");
        assert!(!c.apply(&ChannelPatch::default(), now).unwrap());
        assert!(c.apply(&ChannelPatch { name: Some("B".into()), ..Default::default() }, now).unwrap());
        assert_eq!((c.name.as_str(), c.updated_at), ("B", now));
        let e = c.apply(&ChannelPatch { is_default: Some(false), ..Default::default() }, now).unwrap_err();
        assert!(e.to_string().contains("default"), "{e}");
        assert!(c.apply(&ChannelPatch { provider_id: Some(Some("123".into())), ..Default::default() }, now).unwrap());
        assert!(c.apply(&ChannelPatch { provider_id: Some(None), ..Default::default() }, now).unwrap());
        assert_eq!(c.provider_id, None);
        let view = ChannelView::of(&c, now);
        assert_eq!(view.state, "active");
        assert!(!view.has_credentials);
    }
}
