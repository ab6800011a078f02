//! Automation rules: a trigger, conditions on the contact and the message,
//! and ordered actions; their versions and their runs.
//!
//! A rule is written as JSON (the API's shape, also what the store keeps):
//!
//! ```
//! use crm_core::domain::automation::RuleDefinition;
//! let rule: RuleDefinition = serde_json::from_value(serde_json::json!({
//!     "trigger": {"event": "message.received"},
//!     "conditions": [{"type": "text", "words": ["price", "preço"]}],
//!     "actions": [{"type": "add_tag", "tag": "interested"}, {"type": "adjust_score", "by": 10}]
//! })).unwrap();
//! rule.validate().unwrap();
//! ```

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};

use crate::domain::zone::Zone;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::account::validate_name;
use crate::{AccountId, ChannelId, ContactId, Error, EventId, EventType, LeadStage, Result, Tag};

/// Identifies an [`Automation`] rule.
pub type AutomationId = crate::id::AutomationId;
/// Identifies an [`AutomationRun`].
pub type AutomationRunId = crate::id::AutomationRunId;

/// Most conditions one rule may have.
pub const MAX_CONDITIONS: usize = 20;
/// Most actions one rule may have.
pub const MAX_ACTIONS: usize = 20;
/// Most words one text condition may list.
pub const MAX_WORDS: usize = 50;
/// Longest regex source of a text condition, in bytes.
pub const MAX_REGEX_LEN: usize = 500;
/// Largest compiled regex of a text condition, in bytes (the `regex` crate's size limit).
pub const MAX_REGEX_COMPILED: usize = 64 * 1024;
/// Longest message text an action may send.
pub const MAX_ACTION_TEXT: usize = 4096;
/// Longest `wait` (30 days).
pub const MAX_WAIT_SECONDS: u64 = 30 * 24 * 3600;
/// Shortest schedule interval, in minutes.
pub const MIN_SCHEDULE_MINUTES: u32 = 5;
/// Most automation rules per account.
pub const MAX_AUTOMATIONS_PER_ACCOUNT: usize = 500;
/// Largest serialized rule definition, in bytes.
pub const MAX_DEFINITION_BYTES: usize = 32 * 1024;

/// The event type of the synthetic event a schedule trigger runs a rule with.
pub const SCHEDULED_EVENT: &str = "automation.scheduled";

/// What starts a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Trigger {
    /// An event of this type (`message.received`, `contact.created`,
    /// `contact.updated`, `campaign.completed`, …).
    Event(String),
    /// Every `every_minutes` minutes (at least [`MIN_SCHEDULE_MINUTES`]), as
    /// a durable job; the rule runs with a synthetic [`SCHEDULED_EVENT`]
    /// event that names no contact.
    Schedule {
        /// The interval.
        every_minutes: u32,
    },
}

impl Trigger {
    /// The event type this trigger fires on ([`SCHEDULED_EVENT`] for schedules).
    pub fn event_type(&self) -> &str {
        match self {
            Trigger::Event(t) => t,
            Trigger::Schedule { .. } => SCHEDULED_EVENT,
        }
    }
}

/// Days and hours in a time zone: an IANA zone (`time_zone`, e.g.
/// `America/Sao_Paulo`, daylight saving time applied) or, without one, a
/// fixed offset from UTC (`utc_offset_minutes`, e.g. `-180`). With neither
/// (no zone, offset 0) the hours are read in the account's time zone
/// ([`Account::time_zone`](crate::Account::time_zone); UTC when it has
/// none); give `time_zone: "UTC"` to pin UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusinessHours {
    /// The IANA time zone, e.g. `America/Sao_Paulo`. When given,
    /// `utc_offset_minutes` must be 0 or absent; without both, the
    /// account's time zone applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Minutes east of UTC, −840..=840, used without `time_zone`.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// ISO weekdays (1 = Monday … 7 = Sunday); default Monday to Friday.
    #[serde(default = "weekdays")]
    pub days: Vec<u8>,
    /// Opening time, `HH:MM` (local).
    pub start: String,
    /// Closing time, `HH:MM` (local, after `start`).
    pub end: String,
}

fn weekdays() -> Vec<u8> {
    vec![1, 2, 3, 4, 5]
}

impl BusinessHours {
    fn times(&self) -> Result<(NaiveTime, NaiveTime)> {
        let parse = |s: &str| NaiveTime::parse_from_str(s, "%H:%M");
        match (parse(&self.start), parse(&self.end)) {
            (Ok(a), Ok(b)) if a < b => Ok((a, b)),
            _ => Err(Error::validation("business_hours", "start and end must be HH:MM with start before end")),
        }
    }

    fn zone(&self, account: Option<Tz>) -> Result<Zone> {
        let name = self.time_zone.as_deref();
        Zone::from_setting_or("business_hours.time_zone", name, self.utc_offset_minutes, account)
    }

    fn check(&self) -> Result<()> {
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            return Err(Error::validation("business_hours.utc_offset_minutes", "must be between -840 and 840"));
        }
        if self.time_zone.is_some() && self.utc_offset_minutes != 0 {
            return Err(Error::validation(
                "business_hours.utc_offset_minutes",
                "give time_zone or utc_offset_minutes, not both",
            ));
        }
        self.zone(None)?;
        if self.days.is_empty() || self.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(Error::validation("business_hours.days", "give ISO weekdays 1 (Monday) to 7 (Sunday)"));
        }
        self.times().map(|_| ())
    }

    /// Whether `at` falls inside these hours, on the local clock of the
    /// zone at that instant (so 09:00 stays 09:00 across DST changes); hours
    /// with neither zone nor offset are read in UTC (see [`Self::contains_in`]).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.contains_in(at, None)
    }

    /// [`Self::contains`] for an account whose time zone is `account`:
    /// hours with neither zone nor offset are read on its clock.
    pub fn contains_in(&self, at: DateTime<Utc>, account: Option<Tz>) -> bool {
        let (Ok((start, end)), Ok(zone)) = (self.times(), self.zone(account)) else { return false };
        let local = zone.local(at);
        let day = u8::try_from(local.weekday().number_from_monday()).unwrap_or(0);
        let time = local.time().with_nanosecond(0).unwrap_or(NaiveTime::MIN);
        self.days.contains(&day) && time >= start && time < end
    }
}

/// A condition on the contact or the message of the triggering event. All
/// of a rule's conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Condition {
    /// The contact has every one of these tags.
    HasTags {
        /// Tags.
        tags: Vec<String>,
    },
    /// The contact has none of these tags.
    LacksTags {
        /// Tags.
        tags: Vec<String>,
    },
    /// The contact's stage is one of these.
    Stage {
        /// Stages.
        stages: Vec<LeadStage>,
    },
    /// The contact's lead score is within `min..=max`.
    Score {
        /// Lowest (default 0).
        #[serde(default)]
        min: u8,
        /// Highest (default 100).
        #[serde(default = "hundred")]
        max: u8,
    },
    /// The message came through one of these channels.
    Channel {
        /// Channel ids.
        channel_ids: Vec<ChannelId>,
    },
    /// The message's text contains any of `words` (whole words, any case)
    /// and/or matches `regex` (both, when both are given).
    Text {
        /// Words or phrases.
        #[serde(default)]
        words: Vec<String>,
        /// A regular expression (`regex` crate syntax, bounded size).
        #[serde(default)]
        regex: Option<String>,
    },
    /// The event happened within business hours (`inside: false`: outside them).
    BusinessHours {
        /// The hours.
        hours: BusinessHours,
        /// Inside (default) or outside.
        #[serde(default = "yes")]
        inside: bool,
    },
    /// The message is the first one of the contact's thread.
    FirstMessage,
}

fn hundred() -> u8 {
    100
}

fn yes() -> bool {
    true
}

/// Where a `call_webhook` action posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookTarget {
    /// A URL (https, or http to a public address; checked by the SSRF guard
    /// when called), signed with the account's automation secret.
    Url(String),
    /// A registered webhook endpoint (its secret and headers).
    EndpointId(crate::WebhookEndpointId),
}

/// One step of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Action {
    /// Adds a tag to the contact.
    AddTag {
        /// The tag.
        tag: String,
    },
    /// Removes a tag from the contact.
    RemoveTag {
        /// The tag.
        tag: String,
    },
    /// Moves the contact to a stage.
    SetStage {
        /// The stage.
        stage: LeadStage,
    },
    /// Adds `by` (−100..=100) to the contact's lead score, clamped to 0..=100.
    AdjustScore {
        /// Points.
        by: i16,
    },
    /// Queues a text message to the contact through the send pipeline
    /// (its channel window rules apply); `{{name}}`, `{{first_name}}`,
    /// `{{phone}}` and `{{email}}` are filled in.
    SendText {
        /// The text.
        text: String,
    },
    /// Queues a template message to the contact (the contact's variables
    /// plus `variables`).
    SendTemplate {
        /// Template name.
        name: String,
        /// Template language.
        language: String,
        /// Extra variables.
        #[serde(default)]
        variables: std::collections::BTreeMap<String, String>,
    },
    /// Waits (a durable job) before the next action.
    Wait {
        /// Seconds, 1..=[`MAX_WAIT_SECONDS`].
        seconds: u64,
    },
    /// Enrols the contact in a follow-up sequence (job `sequence.enrol`).
    StartSequence {
        /// The sequence.
        sequence_id: uuid::Uuid,
    },
    /// Stops the contact's sequence (or every sequence when `None`; job `sequence.stop`).
    StopSequence {
        /// The sequence.
        #[serde(default)]
        sequence_id: Option<uuid::Uuid>,
    },
    /// Posts the triggering event, signed, to a URL or a registered endpoint
    /// (job `automation.webhook`, run by crm-webhooks).
    CallWebhook {
        /// Where.
        target: WebhookTarget,
    },
    /// Triggers an n8n workflow with the event (job `workflow.trigger`).
    CallN8nWorkflow {
        /// The n8n webhook path or full URL.
        workflow: String,
    },
    /// Pushes the contact to Salesforce (job `salesforce.push`, run with
    /// the account's OAuth grant; creates a Lead or updates the linked record).
    SyncToSalesforce,
    /// Not available yet: issue #14 (crm-ai) adds it.
    AiReply,
    /// E-mails the contact (or `to`) through the account's e-mail
    /// connection (job `mail.send`); the contact's `{{name}}`,
    /// `{{first_name}}`, `{{phone}}` and `{{email}}` fill the templates.
    SendEmail {
        /// Subject template.
        subject: String,
        /// Plain-text body template.
        text: String,
        /// HTML body template.
        #[serde(default)]
        html: Option<String>,
        /// Recipients' addresses; the contact's e-mail when empty.
        #[serde(default)]
        to: Vec<String>,
        /// The connection (`sendgrid`, `smtp`); the first e-mail connection when absent.
        #[serde(default)]
        provider: Option<String>,
    },
    /// Posts to the account's Slack connection (job `notify.send`): `text`
    /// (contact placeholders filled), or, with `hot_lead_threshold`, a
    /// Block Kit hot-lead card with the contact's score.
    NotifySlack {
        /// The message.
        text: String,
        /// The channel (bot-token connections); the connection's default when absent.
        #[serde(default)]
        channel: Option<String>,
        /// Makes it a hot-lead card naming this score threshold.
        #[serde(default)]
        hot_lead_threshold: Option<u8>,
    },
    /// Tracks an analytics event for the contact (job `analytics.track`,
    /// GA4): `client_id` and `user_id` are the contact's id; with
    /// `value_minor` it is a conversion in `currency` (default BRL) whose
    /// transaction id is the triggering event's id.
    TrackEvent {
        /// The event name (GA4 rules: a letter, then letters, digits, `_`; at most 40).
        name: String,
        /// Its parameters.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        params: serde_json::Map<String, serde_json::Value>,
        /// A conversion's value in minor units.
        #[serde(default)]
        value_minor: Option<i64>,
        /// A conversion's currency (ISO 4217).
        #[serde(default)]
        currency: Option<String>,
    },
}

impl Action {
    /// The action's `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddTag { .. } => "add_tag",
            Action::RemoveTag { .. } => "remove_tag",
            Action::SetStage { .. } => "set_stage",
            Action::AdjustScore { .. } => "adjust_score",
            Action::SendText { .. } => "send_text",
            Action::SendTemplate { .. } => "send_template",
            Action::Wait { .. } => "wait",
            Action::StartSequence { .. } => "start_sequence",
            Action::StopSequence { .. } => "stop_sequence",
            Action::CallWebhook { .. } => "call_webhook",
            Action::CallN8nWorkflow { .. } => "call_n8n_workflow",
            Action::SyncToSalesforce => "sync_to_salesforce",
            Action::AiReply => "ai_reply",
            Action::SendEmail { .. } => "send_email",
            Action::NotifySlack { .. } => "notify_slack",
            Action::TrackEvent { .. } => "track_event",
        }
    }
}

/// A rule's trigger, conditions and actions: what a version holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleDefinition {
    /// What starts it.
    pub trigger: Trigger,
    /// All must hold (none: always).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// In order, 1..=[`MAX_ACTIONS`].
    pub actions: Vec<Action>,
}

fn check_tags(field: String, tags: &[String]) -> Result<()> {
    if tags.is_empty() || tags.len() > crate::MAX_TAGS {
        return Err(Error::validation(field, format!("give 1 to {} tags", crate::MAX_TAGS)));
    }
    for t in tags {
        Tag::parse(t).map_err(|e| Error::validation(field.clone(), e.to_string()))?;
    }
    Ok(())
}

/// Compiles a text condition's regex within the size bounds.
pub fn compile_regex(source: &str) -> Result<regex::Regex> {
    if source.is_empty() || source.len() > MAX_REGEX_LEN {
        return Err(Error::validation("regex", format!("must be 1 to {MAX_REGEX_LEN} bytes")));
    }
    regex::RegexBuilder::new(source)
        .size_limit(MAX_REGEX_COMPILED)
        .dfa_size_limit(MAX_REGEX_COMPILED)
        .case_insensitive(true)
        .build()
        .map_err(|e| Error::validation("regex", format!("does not compile within the size limit: {e}")))
}

impl Condition {
    fn check(&self, field: String) -> Result<()> {
        match self {
            Condition::HasTags { tags } | Condition::LacksTags { tags } => check_tags(format!("{field}.tags"), tags),
            Condition::Stage { stages } if stages.is_empty() => {
                Err(Error::validation(format!("{field}.stages"), "give at least one stage"))
            }
            Condition::Score { min, max } if min > max || *max > 100 => {
                Err(Error::validation(format!("{field}.max"), "need 0 <= min <= max <= 100"))
            }
            Condition::Channel { channel_ids } if channel_ids.is_empty() || channel_ids.len() > 50 => {
                Err(Error::validation(format!("{field}.channel_ids"), "give 1 to 50 channels"))
            }
            Condition::Text { words, regex } => {
                if words.is_empty() && regex.is_none() {
                    return Err(Error::validation(field, "give words, a regex, or both"));
                }
                if words.len() > MAX_WORDS || words.iter().any(|w| w.trim().is_empty() || w.chars().count() > 100) {
                    return Err(Error::validation(
                        format!("{field}.words"),
                        format!("at most {MAX_WORDS} words of 1 to 100 characters"),
                    ));
                }
                if let Some(r) = regex {
                    compile_regex(r).map_err(|e| match e {
                        Error::Validation { reason, .. } => Error::validation(format!("{field}.regex"), reason),
                        other => other,
                    })?;
                }
                Ok(())
            }
            Condition::BusinessHours { hours, .. } => hours.check().map_err(|e| match e {
                Error::Validation { field: f, reason } => Error::validation(format!("{field}.{f}"), reason),
                other => other,
            }),
            _ => Ok(()),
        }
    }
}

fn check_provider(provider: Option<&str>, field: &str) -> Result<()> {
    match provider {
        Some(p) => crate::domain::connection::ConnectionKind::parse(p)
            .map(drop)
            .map_err(|e| Error::validation(format!("{field}.provider"), e.to_string())),
        None => Ok(()),
    }
}

impl Action {
    fn check(&self, field: String) -> Result<()> {
        let bad = |sub: &str, reason: &str| Err(Error::validation(format!("{field}.{sub}"), reason.to_owned()));
        match self {
            Action::AddTag { tag } | Action::RemoveTag { tag } => {
                Tag::parse(tag).map(|_| ()).map_err(|e| Error::validation(format!("{field}.tag"), e.to_string()))
            }
            Action::AdjustScore { by } if !(-100..=100).contains(by) || *by == 0 => {
                bad("by", "must be -100 to 100, not 0")
            }
            Action::SendText { text } if text.trim().is_empty() || text.chars().count() > MAX_ACTION_TEXT => {
                bad("text", "must be 1 to 4096 characters")
            }
            Action::SendTemplate { name, language, variables } => {
                if name.trim().is_empty() || name.len() > 512 {
                    return bad("name", "must be 1 to 512 characters");
                }
                if language.trim().is_empty() || language.len() > 20 {
                    return bad("language", "must be 1 to 20 characters");
                }
                if variables.len() > 50 || variables.iter().any(|(k, v)| k.len() > 64 || v.chars().count() > 1024) {
                    return bad("variables", "at most 50 variables, names up to 64 and values up to 1024 characters");
                }
                Ok(())
            }
            Action::Wait { seconds } if !(1..=MAX_WAIT_SECONDS).contains(seconds) => {
                bad("seconds", "must be 1 second to 30 days")
            }
            Action::CallWebhook { target: WebhookTarget::Url(url) } => {
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && url.len() <= 2048
                    && !url.chars().any(|c| c.is_control() || c.is_whitespace());
                if ok { Ok(()) } else { bad("target.url", "must be an http(s) URL of at most 2048 characters") }
            }
            Action::CallN8nWorkflow { workflow } => {
                let w = workflow.trim();
                if w.is_empty() || w.len() > 2048 || w.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    bad("workflow", "must be an n8n webhook path or URL of 1 to 2048 characters")
                } else {
                    Ok(())
                }
            }
            Action::AiReply => bad("type", "ai_reply is not available yet: issue #14 (crm-ai) adds it"),
            Action::SendEmail { subject, text, html, to, provider } => {
                if subject.trim().is_empty() || subject.chars().count() > 998 || subject.chars().any(char::is_control) {
                    return bad("subject", "must be one line of 1 to 998 characters");
                }
                if text.trim().is_empty() || text.chars().count() > MAX_ACTION_TEXT * 16 {
                    return bad("text", "must be 1 to 65536 characters");
                }
                if html.as_ref().is_some_and(|h| h.chars().count() > MAX_ACTION_TEXT * 64) {
                    return bad("html", "must be at most 262144 characters");
                }
                if to.len() > 10 {
                    return bad("to", "at most 10 addresses");
                }
                for m in to {
                    crate::ports::connectors::Mailbox::new(m.as_str()).check(&format!("{field}.to"))?;
                }
                check_provider(provider.as_deref(), &field)
            }
            Action::NotifySlack { text, channel, hot_lead_threshold } => {
                if text.trim().is_empty() || text.chars().count() > crate::ports::connectors::MAX_NOTIFICATION_CHARS {
                    return bad("text", "must be 1 to 3000 characters");
                }
                if channel
                    .as_ref()
                    .is_some_and(|c| c.is_empty() || c.chars().count() > 80 || c.contains(char::is_whitespace))
                {
                    return bad("channel", "must be 1 to 80 characters without spaces");
                }
                if hot_lead_threshold.is_some_and(|t| t > 100) {
                    return bad("hot_lead_threshold", "must be 0 to 100");
                }
                Ok(())
            }
            Action::TrackEvent { name, params, value_minor, currency } => {
                crate::ports::connectors::AnalyticsEvent { name: name.clone(), params: params.clone() }
                    .check()
                    .map_err(|e| Error::validation(format!("{field}.name"), e.to_string()))?;
                if value_minor.is_none() && currency.is_some() {
                    return bad("currency", "needs value_minor");
                }
                if let Some(c) = currency
                    && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
                {
                    return bad("currency", "must be an ISO 4217 code like BRL");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl RuleDefinition {
    /// Checks every field: [`Error::Validation`] naming the first bad one
    /// (`conditions[1].regex`, `actions[0].tag`, …).
    pub fn validate(&self) -> Result<()> {
        match &self.trigger {
            Trigger::Event(t) => {
                let ty = EventType::custom(t.clone()).map_err(|_| {
                    Error::validation("trigger.event", "must be an event type such as message.received")
                })?;
                if ty.as_str().starts_with("automation.") {
                    return Err(Error::validation("trigger.event", "automation.* events cannot trigger rules"));
                }
            }
            Trigger::Schedule { every_minutes } if !(MIN_SCHEDULE_MINUTES..=44_640).contains(every_minutes) => {
                return Err(Error::validation(
                    "trigger.schedule.every_minutes",
                    format!("must be {MIN_SCHEDULE_MINUTES} minutes to 31 days"),
                ));
            }
            Trigger::Schedule { .. } => {}
        }
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(Error::validation("conditions", format!("at most {MAX_CONDITIONS} conditions")));
        }
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            return Err(Error::validation("actions", format!("give 1 to {MAX_ACTIONS} actions")));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            c.check(format!("conditions[{i}]"))?;
        }
        for (i, a) in self.actions.iter().enumerate() {
            a.check(format!("actions[{i}]"))?;
        }
        let size = serde_json::to_string(self).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > MAX_DEFINITION_BYTES {
            return Err(Error::validation("actions", format!("the rule must be at most {MAX_DEFINITION_BYTES} bytes")));
        }
        Ok(())
    }
}

/// An automation rule of an account: its current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Automation {
    /// Id.
    pub id: AutomationId,
    /// Owning account.
    pub account_id: AccountId,
    /// Name, 1–200 characters.
    pub name: String,
    /// Whether events run it.
    pub enabled: bool,
    /// The current version, 1 on creation; every edit adds one.
    pub version: u32,
    /// The current version's rule.
    pub definition: RuleDefinition,
    /// Creation time.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change (edit, enable, disable).
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Automation {
    /// A new enabled rule at version 1. [`Error::Validation`] on a bad name or rule.
    pub fn new(account_id: AccountId, name: &str, definition: RuleDefinition, now: DateTime<Utc>) -> Result<Self> {
        definition.validate()?;
        Ok(Automation {
            id: AutomationId::new(),
            account_id,
            name: validate_name("name", name, 200)?,
            enabled: true,
            version: 1,
            definition,
            created_at: now,
            updated_at: now,
        })
    }

    /// This rule as the version record of its current version.
    pub fn version_record(&self) -> AutomationVersion {
        AutomationVersion {
            automation_id: self.id,
            version: self.version,
            name: self.name.clone(),
            definition: self.definition.clone(),
            created_at: self.updated_at,
        }
    }
}

/// One stored version of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutomationVersion {
    /// The rule.
    pub automation_id: AutomationId,
    /// Its number.
    pub version: u32,
    /// The name it had.
    pub name: String,
    /// The rule it had.
    pub definition: RuleDefinition,
    /// When it was made.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub created_at: DateTime<Utc>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunStatus {
    /// Executing its actions (or its worker died; a redelivery resumes it).
    Running,
    /// Paused at a `wait`; a durable job continues it.
    Waiting,
    /// Its conditions did not hold: no action ran.
    Skipped,
    /// Every action ran.
    Completed,
    /// An action failed for good; later actions did not run.
    Failed,
    /// Stopped by the loop bound: the rule ran too often for this contact.
    LoopStopped,
}

impl RunStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Skipped => "skipped",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::LoopStopped => "loop_stopped",
        }
    }

    /// Parses [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        [
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Skipped,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::LoopStopped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| Error::validation("status", "unknown run status"))
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Waiting)
    }
}

/// What one action of a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepOutcome {
    /// Its index in the rule's actions.
    pub index: u32,
    /// Its `type`.
    pub action: String,
    /// `done`, `waiting` or `failed`.
    pub outcome: String,
    /// What it did or why it failed (no secrets).
    pub detail: String,
    /// When it started.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// One execution of one rule version for one triggering event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutomationRun {
    /// Id.
    pub id: AutomationRunId,
    /// The account.
    pub account_id: AccountId,
    /// The rule.
    pub automation_id: AutomationId,
    /// The rule's version it ran.
    pub version: u32,
    /// The triggering event (for schedules: the tick's id). Unique per rule.
    pub event_id: EventId,
    /// The contact it acted on, when the event names one.
    pub contact_id: Option<ContactId>,
    /// Where it is.
    pub status: RunStatus,
    /// Why it was skipped, failed or stopped.
    pub reason: Option<String>,
    /// The index of the next action to run.
    pub next_step: u32,
    /// Each action's outcome, in order.
    pub steps: Vec<StepOutcome>,
    /// When it started.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub started_at: DateTime<Utc>,
    /// When it last moved.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl AutomationRun {
    /// A new run of `rule`'s current version for `event`.
    pub fn start(rule: &Automation, event_id: EventId, contact_id: Option<ContactId>, now: DateTime<Utc>) -> Self {
        AutomationRun {
            id: AutomationRunId::new(),
            account_id: rule.account_id,
            automation_id: rule.id,
            version: rule.version,
            event_id,
            contact_id,
            status: RunStatus::Running,
            reason: None,
            next_step: 0,
            steps: Vec::new(),
            started_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> Result<RuleDefinition> {
        let r: RuleDefinition = serde_json::from_value(v).map_err(|e| Error::validation("rule", e.to_string()))?;
        r.validate()?;
        Ok(r)
    }

    fn field(r: Result<RuleDefinition>) -> String {
        match r {
            Err(Error::Validation { field, .. }) => field.into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn rules_validate_every_field() {
        let ok = rule(json!({
            "trigger": {"event": "message.received"},
            "conditions": [
                {"type": "has_tags", "tags": ["lead"]},
                {"type": "score", "min": 10},
                {"type": "text", "words": ["preço"], "regex": "^quero"},
                {"type": "business_hours", "hours": {"utc_offset_minutes": -180, "start": "09:00", "end": "18:00"}},
                {"type": "first_message"}
            ],
            "actions": [{"type": "add_tag", "tag": "hot"}, {"type": "wait", "seconds": 60}]
        }));
        assert!(ok.is_ok(), "{ok:?}");
        let base = |conds: serde_json::Value, actions: serde_json::Value| {
            rule(json!({"trigger": {"event": "contact.created"}, "conditions": conds, "actions": actions}))
        };
        let tag = json!([{"type": "add_tag", "tag": "x"}]);
        assert_eq!(field(base(json!([{"type": "text"}]), tag.clone())), "conditions[0]");
        assert_eq!(field(base(json!([{"type": "text", "regex": "("}]), tag.clone())), "conditions[0].regex");
        assert_eq!(
            field(base(json!([{"type": "text", "regex": "a{1000}{1000}"}]), tag.clone())),
            "conditions[0].regex"
        );
        assert_eq!(field(base(json!([{"type": "score", "min": 50, "max": 10}]), tag.clone())), "conditions[0].max");
        assert_eq!(
            field(base(
                json!([{"type": "business_hours", "hours": {"utc_offset_minutes": 0, "start": "18:00", "end": "09:00"}}]),
                tag.clone()
            )),
            "conditions[0].business_hours"
        );
        assert_eq!(field(base(json!([]), json!([]))), "actions");
        assert_eq!(field(base(json!([]), json!([{"type": "add_tag", "tag": "a,b"}]))), "actions[0].tag");
        assert_eq!(field(base(json!([]), json!([{"type": "adjust_score", "by": 0}]))), "actions[0].by");
        assert_eq!(field(base(json!([]), json!([{"type": "wait", "seconds": 0}]))), "actions[0].seconds");
        assert_eq!(
            field(base(json!([]), json!([{"type": "call_webhook", "target": {"url": "ftp://x"}}]))),
            "actions[0].target.url"
        );
        assert_eq!(
            field(base(json!([]), json!([{"type": "send_email", "subject": "Oi\nBcc: x", "text": "x"}]))),
            "actions[0].subject"
        );
        assert_eq!(
            field(base(
                json!([]),
                json!([{"type": "send_email", "subject": "Oi", "text": "x", "provider": "Bad Kind"}])
            )),
            "actions[0].provider"
        );
        assert_eq!(
            field(base(json!([]), json!([{"type": "notify_slack", "text": "x", "hot_lead_threshold": 101}]))),
            "actions[0].hot_lead_threshold"
        );
        assert_eq!(field(base(json!([]), json!([{"type": "track_event", "name": "1bad"}]))), "actions[0].name");
        let err = base(json!([]), json!([{"type": "add_tag", "tag": "x"}, {"type": "ai_reply"}])).unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, reason } if field == "actions[1].type" && reason.contains("#14")),
            "{err:?}"
        );
        assert_eq!(field(rule(json!({"trigger": {"event": "Nope"}, "actions": tag}))), "trigger.event");
        assert_eq!(
            field(rule(json!({"trigger": {"schedule": {"every_minutes": 1}}, "actions": tag}))),
            "trigger.schedule.every_minutes"
        );
        assert_eq!(
            field(rule(json!({"trigger": {"event": "automation.run_failed"}, "actions": tag}))),
            "trigger.event"
        );
    }

    #[test]
    fn business_hours_use_the_offset_and_days() {
        use chrono::Duration;
        let h = BusinessHours {
            time_zone: None,
            utc_offset_minutes: -180,
            days: weekdays(),
            start: "09:00".into(),
            end: "18:00".into(),
        };
        // Monday 2026-11-30 12:00 UTC is 09:00 in São Paulo: open.
        let monday_noon = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc);
        assert!(h.contains(monday_noon));
        assert!(!h.contains(monday_noon - Duration::minutes(1)));
        assert!(!h.contains(monday_noon + Duration::hours(9)));
        // Saturday.
        assert!(!h.contains(monday_noon - Duration::days(2)));
    }

    #[test]
    fn business_hours_in_an_iana_zone_follow_daylight_saving_time() {
        use chrono::TimeZone;
        // 09:00–18:00 in New York, Monday to Friday.
        let h = BusinessHours {
            time_zone: Some("America/New_York".into()),
            utc_offset_minutes: 0,
            days: weekdays(),
            start: "09:00".into(),
            end: "18:00".into(),
        };
        h.check().unwrap();
        let at = |mo, d, hh, mm| Utc.with_ymd_and_hms(2026, mo, d, hh, mm, 0).unwrap();
        // Friday 2026-03-06 (EST, UTC-5): opens 14:00 UTC.
        assert!(!h.contains(at(3, 6, 13, 59)));
        assert!(h.contains(at(3, 6, 14, 0)));
        assert!(h.contains(at(3, 6, 22, 59)));
        assert!(!h.contains(at(3, 6, 23, 0)));
        // Monday 2026-03-09, after the switch to EDT (UTC-4): opens 13:00 UTC.
        assert!(!h.contains(at(3, 9, 12, 59)));
        assert!(h.contains(at(3, 9, 13, 0)));
        assert!(!h.contains(at(3, 9, 22, 0)));
        // Monday 2026-11-02, back on EST: 13:30 UTC is 08:30 local, closed.
        assert!(!h.contains(at(11, 2, 13, 30)));
        assert!(h.contains(at(11, 2, 14, 30)));
        // A fixed offset of -300 would be wrong in summer: 13:30 UTC is 09:30 EDT.
        let fixed = BusinessHours { time_zone: None, utc_offset_minutes: -300, ..h.clone() };
        assert!(h.contains(at(7, 6, 13, 30)));
        assert!(!fixed.contains(at(7, 6, 13, 30)));
        // The weekday is the local one: Friday 23:30 in New York is Saturday in UTC.
        let weekend = BusinessHours { days: vec![5], start: "20:00".into(), end: "23:59".into(), ..h.clone() };
        assert!(weekend.contains(at(7, 11, 3, 30)));
        // Unknown zones, and a zone with an offset, are refused.
        let bad = BusinessHours { time_zone: Some("Brazil/Nowhere".into()), ..h.clone() };
        assert!(matches!(bad.check(), Err(Error::Validation { field, .. }) if field == "business_hours.time_zone"));
        let both = BusinessHours { utc_offset_minutes: -180, ..h };
        assert!(matches!(both.check(), Err(Error::Validation { .. })));
    }

    #[test]
    fn run_statuses_round_trip() {
        for s in ["running", "waiting", "skipped", "completed", "failed", "loop_stopped"] {
            assert_eq!(RunStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(RunStatus::parse("x").is_err());
    }
}
