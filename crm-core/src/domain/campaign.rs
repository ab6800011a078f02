//! Campaigns: one template sent to an audience through one channel, at the
//! channel's pace, each recipient's progress kept so a restart resumes where
//! it stopped and nobody gets the message twice.
//!
//! A campaign is a state machine:
//!
//! ```text
//! draft ──schedule──▶ scheduled ──(its time, or start)──▶ running ◀──resume── paused
//!   │                     │                                 │  └──pause──────────▲
//!   └──start──────────────┼────────────────────────────────▶│
//!                         ▼                                 ▼
//!                     cancelled ◀──────────cancel────── (any live state)   completed
//! ```
//!
//! Planning turns the audience into [`Recipient`]s batch by batch (never the
//! whole audience in memory): each contact is either `pending` (it will be
//! sent) or `skipped` with a [`SkipReason`]. [`plan_contact`] is that
//! decision, rendering the template for the contact to prove it renders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::template::Variables;
use crate::{
    AccountId, CampaignId, ChannelId, Contact, ContactId, Error, LeadStage, MAX_TEXT_LEN, MessageId, MessageStatus,
    OptInStatus, Result, Tag, Template,
};

/// Most entries in an uploaded audience list.
pub const MAX_AUDIENCE_LIST: usize = 50_000;

/// Who a campaign goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Audience {
    /// Every contact carrying a tag.
    Tag {
        /// The tag.
        tag: Tag,
    },
    /// Every contact in a lead stage.
    Stage {
        /// The stage.
        stage: LeadStage,
    },
    /// A saved contact filter: the same filters as `GET /contacts` (all given ones must match).
    Filter {
        /// Only contacts with this tag.
        #[serde(default)]
        tag: Option<Tag>,
        /// Only contacts in this stage.
        #[serde(default)]
        stage: Option<LeadStage>,
        /// Free-text search (phone digits, e-mail prefix or name prefix).
        #[serde(default)]
        search: Option<String>,
    },
    /// An uploaded list of contact ids (repeats are sent once).
    Contacts {
        /// 1 to [`MAX_AUDIENCE_LIST`] ids.
        contact_ids: Vec<ContactId>,
    },
    /// An uploaded list of phones, matched to the account's contacts (a
    /// phone that is not a contact, or not a phone, is skipped with a reason).
    Phones {
        /// 1 to [`MAX_AUDIENCE_LIST`] phones as people type them.
        phones: Vec<String>,
    },
}

impl Audience {
    /// Checks the audience: list sizes, a usable search term.
    /// [`Error::Validation`] on `audience` otherwise.
    pub fn check(&self) -> Result<()> {
        let list = |n: usize| {
            if n == 0 || n > MAX_AUDIENCE_LIST {
                return Err(Error::validation("audience", format!("a list needs 1 to {MAX_AUDIENCE_LIST} entries")));
            }
            Ok(())
        };
        match self {
            Audience::Tag { .. } | Audience::Stage { .. } => Ok(()),
            Audience::Filter { tag, stage, search } => {
                let term = search.as_deref().map(crate::ContactSearch::parse).transpose()?.flatten();
                if tag.is_none() && stage.is_none() && term.is_none() {
                    return Err(Error::validation("audience", "a filter needs a tag, a stage or a search term"));
                }
                Ok(())
            }
            Audience::Contacts { contact_ids } => list(contact_ids.len()),
            Audience::Phones { phones } => {
                list(phones.len())?;
                if phones.iter().any(|p| p.chars().count() > 64 || p.contains('\0')) {
                    return Err(Error::validation("audience", "each phone must be at most 64 characters"));
                }
                Ok(())
            }
        }
    }

    /// How many entries a list audience has (`None` for a query).
    pub fn list_len(&self) -> Option<usize> {
        match self {
            Audience::Contacts { contact_ids } => Some(contact_ids.len()),
            Audience::Phones { phones } => Some(phones.len()),
            _ => None,
        }
    }
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CampaignState {
    /// Created, not started.
    Draft,
    /// Starts by itself at `scheduled_at`.
    Scheduled,
    /// Planning and sending.
    Running,
    /// Stopped for now; nothing new is handed to the send pipeline.
    Paused,
    /// Stopped for good before the end.
    Cancelled,
    /// Every recipient was sent to, skipped or failed.
    Completed,
}

impl CampaignState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Completed => "completed",
        }
    }

    /// Parses [`CampaignState::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "draft" => CampaignState::Draft,
            "scheduled" => CampaignState::Scheduled,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "cancelled" => CampaignState::Cancelled,
            "completed" => CampaignState::Completed,
            _ => return Err(Error::validation("state", "not a campaign state")),
        })
    }

    /// No transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, CampaignState::Cancelled | CampaignState::Completed)
    }
}

/// How far planning got: how many audience entries were examined, where
/// the next batch starts, and whether the audience is exhausted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanProgress {
    /// Audience entries examined so far (recipients planned, repeats included).
    pub planned: u64,
    /// For a query audience, the last contact id examined.
    pub after: Option<ContactId>,
    /// The whole audience has been planned.
    pub done: bool,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    /// Id.
    pub id: CampaignId,
    /// Owning account.
    pub account_id: AccountId,
    /// A name people recognise, 1–200 characters.
    pub name: String,
    /// The channel it sends through.
    pub channel_id: ChannelId,
    /// The stored template's name.
    pub template_name: String,
    /// The stored template's language.
    pub template_language: String,
    /// Values for the template's placeholders, the same for everyone (each
    /// contact's `name`, `first_name`, `phone` and `email` fill the rest).
    pub variables: Variables,
    /// Who it goes to.
    pub audience: Audience,
    /// Where it is in its life.
    pub state: CampaignState,
    /// When a scheduled campaign starts.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it first started sending.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was cancelled or completed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it stopped, when it was not by hand (e.g. its channel was deleted).
    pub stop_reason: Option<String>,
    /// Planning progress (moved by the campaign worker only).
    pub plan: PlanProgress,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last state change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every state change.
    pub version: i64,
}

/// Input for creating a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCampaign {
    /// Name, 1–200 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// The channel; the account's default channel when absent.
    #[serde(default)]
    pub channel_id: Option<ChannelId>,
    /// The stored template's name.
    pub template: String,
    /// The template's language (default `pt_BR`).
    #[serde(default)]
    pub language: Option<String>,
    /// Values for placeholders, the same for every recipient.
    #[serde(default)]
    pub variables: Variables,
    /// Who it goes to.
    pub audience: Audience,
    /// Start at this time instead of waiting for a start.
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl Campaign {
    /// A new draft (or, with `scheduled_at`, scheduled) campaign through
    /// `channel`. [`Error::Validation`] for a bad name, audience, template
    /// reference, variables, or a scheduled time in the past.
    pub fn new(account_id: AccountId, input: NewCampaign, channel: ChannelId, now: DateTime<Utc>) -> Result<Self> {
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::validation("name", "must be 1 to 200 characters without control characters"));
        }
        let language = input.language.unwrap_or_else(|| "pt_BR".into());
        crate::domain::template::check_template_ref(&input.template, &language)?;
        check_variables(&input.variables)?;
        input.audience.check()?;
        let state = match input.scheduled_at {
            Some(at) if at <= now => return Err(Error::validation("scheduled_at", "must be in the future")),
            Some(_) => CampaignState::Scheduled,
            None => CampaignState::Draft,
        };
        Ok(Campaign {
            id: CampaignId::new(),
            account_id,
            name,
            channel_id: channel,
            template_name: input.template,
            template_language: language,
            variables: input.variables,
            audience: input.audience,
            state,
            scheduled_at: input.scheduled_at,
            started_at: None,
            finished_at: None,
            stop_reason: None,
            plan: PlanProgress::default(),
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// Moves to `next` at `now`: [`Error::Conflict`] when the state machine
    /// has no such transition (e.g. resuming a running campaign).
    pub fn transition(&mut self, next: CampaignState, now: DateTime<Utc>) -> Result<()> {
        use CampaignState::*;
        let allowed = match next {
            Draft => false,
            Scheduled => self.state == Draft,
            Running => matches!(self.state, Draft | Scheduled | Paused),
            Paused => self.state == Running,
            Cancelled => !self.state.is_terminal(),
            Completed => self.state == Running,
        };
        if !allowed {
            return Err(Error::conflict(
                "campaign",
                format!("a {} campaign cannot become {}", self.state.as_str(), next.as_str()),
            ));
        }
        if next == Running && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if next.is_terminal() {
            self.finished_at = Some(now);
        }
        self.state = next;
        self.updated_at = now;
        Ok(())
    }
}

/// At most 100 variables, names ≤ 100 and values ≤ 1,024 characters, no NUL.
fn check_variables(vars: &Variables) -> Result<()> {
    if vars.len() > 100 {
        return Err(Error::validation("variables", "at most 100 variables"));
    }
    for (k, v) in vars {
        if k.is_empty() || k.chars().count() > 100 || v.chars().count() > 1024 || k.contains('\0') || v.contains('\0') {
            return Err(Error::validation(
                "variables",
                "names of 1–100 and values of at most 1,024 characters, no NUL",
            ));
        }
    }
    Ok(())
}

/// Where one recipient is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecipientState {
    /// Planned, not yet handed to the send pipeline.
    Pending,
    /// Left out, with a [`SkipReason`].
    Skipped,
    /// Its message is queued in the send pipeline.
    Queued,
    /// The provider accepted it.
    Sent,
    /// Delivered to the phone.
    Delivered,
    /// Read.
    Read,
    /// The send failed (reason recorded).
    Failed,
}

impl RecipientState {
    /// Every state, in this order (the index of [`RecipientCounts::by_state`]).
    pub const ALL: [RecipientState; 7] = [
        RecipientState::Pending,
        RecipientState::Skipped,
        RecipientState::Queued,
        RecipientState::Sent,
        RecipientState::Delivered,
        RecipientState::Read,
        RecipientState::Failed,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Skipped => "skipped",
            RecipientState::Queued => "queued",
            RecipientState::Sent => "sent",
            RecipientState::Delivered => "delivered",
            RecipientState::Read => "read",
            RecipientState::Failed => "failed",
        }
    }

    /// Parses [`RecipientState::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        RecipientState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::validation("state", "not a recipient state"))
    }

    /// Position in [`RecipientState::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The recipient state a message status maps to.
    pub fn of_message(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Queued => RecipientState::Queued,
            MessageStatus::Sent => RecipientState::Sent,
            MessageStatus::Delivered => RecipientState::Delivered,
            MessageStatus::Read => RecipientState::Read,
            MessageStatus::Failed => RecipientState::Failed,
        }
    }

    /// The states a recipient may move to `next` from, following its
    /// message ([`MessageStatus::predecessors`]): pending becomes queued or
    /// skipped (or failed, when the send pipeline refused it); a queued
    /// recipient only moves forward.
    pub fn predecessors(next: RecipientState) -> &'static [RecipientState] {
        use RecipientState::*;
        match next {
            Pending => &[],
            Skipped => &[Pending],
            Queued => &[Pending],
            Sent => &[Queued],
            Delivered => &[Queued, Sent],
            Read => &[Queued, Sent, Delivered],
            Failed => &[Pending, Queued, Sent, Delivered],
        }
    }
}

/// Why a recipient was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SkipReason {
    /// The contact opted out of messages.
    OptedOut,
    /// The contact has no number WhatsApp can reach: a Brazilian landline
    /// (`+55` and 10 digits) that WhatsApp never reported as an account.
    NoWhatsapp,
    /// A listed contact id or phone is not a contact of the account (or
    /// was deleted before its turn).
    NotFound,
    /// A listed phone is not a phone number.
    InvalidPhone,
    /// The template does not render for this contact (a missing variable,
    /// or longer than WhatsApp's body limit).
    Render,
    /// The campaign was cancelled before the recipient's turn.
    Cancelled,
}

impl SkipReason {
    /// The reason's code.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::NoWhatsapp => "no_whatsapp",
            SkipReason::NotFound => "not_found",
            SkipReason::InvalidPhone => "invalid_phone",
            SkipReason::Render => "render",
            SkipReason::Cancelled => "cancelled",
        }
    }
}

/// One recipient as planned (before it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRecipient {
    /// The contact (absent for a listed phone that is no contact).
    pub contact_id: Option<ContactId>,
    /// The listed phone, only when there is no contact (a contact's phone
    /// is not copied, so erasing the contact leaves none behind).
    pub phone: Option<String>,
    /// `Pending` or `Skipped`.
    pub state: RecipientState,
    /// The skip reason's code.
    pub reason: Option<String>,
}

impl PlannedRecipient {
    /// A recipient left out for `reason`.
    pub fn skipped(contact_id: Option<ContactId>, phone: Option<String>, reason: SkipReason) -> Self {
        PlannedRecipient {
            contact_id,
            phone: if contact_id.is_some() { None } else { phone },
            state: RecipientState::Skipped,
            reason: Some(reason.as_str().to_owned()),
        }
    }
}

/// One recipient of a campaign, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recipient {
    /// The campaign.
    pub campaign_id: CampaignId,
    /// Position in the plan (audience order), unique in the campaign.
    pub seq: u64,
    /// The contact (absent for a listed phone that is no contact).
    pub contact_id: Option<ContactId>,
    /// The listed phone, when there is no contact.
    pub phone: Option<String>,
    /// Where it is.
    pub state: RecipientState,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Its message, once queued.
    pub message_id: Option<MessageId>,
    /// When the contact first wrote back after it was sent.
    pub replied_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Recipients counted by state, and how many replied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientCounts {
    /// Counts by [`RecipientState::index`].
    pub by_state: [u64; 7],
    /// Recipients with `replied_at`.
    pub replied: u64,
}

impl RecipientCounts {
    /// Recipients in `state`.
    pub fn get(&self, state: RecipientState) -> u64 {
        self.by_state[state.index()]
    }
}

/// A campaign's counters. `queued`, `sent` and `delivered` are cumulative
/// (a read message was also sent and delivered), so they read as a funnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignCounters {
    /// Recipients planned so far.
    pub recipients: u64,
    /// Planned, not yet handed to the send pipeline.
    pub pending: u64,
    /// Left out (opted out, no WhatsApp, not found…).
    pub skipped: u64,
    /// Handed to the send pipeline (every later state included).
    pub queued: u64,
    /// In the pipeline now: queued and not yet sent or failed.
    pub in_flight: u64,
    /// Accepted by the provider (delivered and read included).
    pub sent: u64,
    /// Delivered (read included).
    pub delivered: u64,
    /// Read.
    pub read: u64,
    /// Failed.
    pub failed: u64,
    /// Wrote back after it was sent.
    pub replied: u64,
}

impl From<RecipientCounts> for CampaignCounters {
    fn from(c: RecipientCounts) -> Self {
        use RecipientState::*;
        let read = c.get(Read);
        let delivered = c.get(Delivered) + read;
        let sent = c.get(Sent) + delivered;
        let failed = c.get(Failed);
        CampaignCounters {
            recipients: c.by_state.iter().sum(),
            pending: c.get(Pending),
            skipped: c.get(Skipped),
            queued: c.get(Queued) + sent + failed,
            in_flight: c.get(Queued),
            sent,
            delivered,
            read,
            failed,
            replied: c.replied,
        }
    }
}

/// Whether a contact is sent to, or skipped and why: opted out, no
/// WhatsApp number, or a template that does not render for it
/// (`variables` first, the contact's `name`, `first_name`, `phone` and
/// `email` filling the rest, at most [`MAX_TEXT_LEN`] characters).
///
/// This is the planner's per-recipient work; it allocates only for the
/// rendered text, which it drops (the send renders again).
pub fn plan_contact(contact: &Contact, template: &Template, variables: &Variables) -> PlannedRecipient {
    let skip = |r| PlannedRecipient::skipped(Some(contact.id), None, r);
    if contact.opt_in.status == OptInStatus::OptedOut {
        return skip(SkipReason::OptedOut);
    }
    if contact.whatsapp_id.is_none() && is_brazilian_landline(contact.phone.digits()) {
        return skip(SkipReason::NoWhatsapp);
    }
    if !renders(contact, template, variables) {
        return skip(SkipReason::Render);
    }
    PlannedRecipient { contact_id: Some(contact.id), phone: None, state: RecipientState::Pending, reason: None }
}

/// `+55`, a DDD and an 8-digit subscriber: the stored form of a landline
/// (mobiles are stored with the 9th digit, 11 digits after 55).
fn is_brazilian_landline(digits: &str) -> bool {
    digits.len() == 12 && digits.starts_with("55")
}

fn renders(contact: &Contact, template: &Template, variables: &Variables) -> bool {
    let mut owned = Variables::new();
    for name in &template.variables {
        if variables.contains_key(name) {
            continue;
        }
        let value = match name.as_str() {
            "name" => contact.name.clone(),
            "first_name" => contact.name.split_whitespace().next().unwrap_or(&contact.name).to_owned(),
            "phone" => contact.phone.to_string(),
            "email" => match &contact.email {
                Some(e) => e.to_string(),
                None => return false,
            },
            _ => return false,
        };
        owned.insert(name.clone(), value);
    }
    if owned.is_empty() {
        return template.render(variables, MAX_TEXT_LEN).is_ok();
    }
    owned.extend(variables.iter().filter(|(k, _)| template.variables.contains(k)).map(|(k, v)| (k.clone(), v.clone())));
    template.render(&owned, MAX_TEXT_LEN).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewContact, NewTemplate};

    fn contact(phone: &str) -> Contact {
        Contact::new(
            AccountId::new(),
            NewContact { name: "Ana Souza".into(), phone: phone.into(), ..Default::default() },
            Utc::now(),
        )
        .unwrap()
    }

    fn template(body: &str) -> Template {
        Template::new(
            AccountId::new(),
            NewTemplate { name: "promo".into(), body: body.into(), ..Default::default() },
            Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn plan_contact_skips_with_a_reason() {
        let t = template("Oi {{first_name}}, {{offer}}");
        let vars: Variables = [("offer".to_owned(), "10% off".to_owned())].into();
        let ok = plan_contact(&contact("+5511987654321"), &t, &vars);
        assert_eq!((ok.state, ok.reason), (RecipientState::Pending, None));

        let mut out = contact("+5511987654321");
        out.opt_in.status = OptInStatus::OptedOut;
        assert_eq!(plan_contact(&out, &t, &vars).reason.as_deref(), Some("opted_out"));

        let landline = contact("+551133334444");
        assert_eq!(plan_contact(&landline, &t, &vars).reason.as_deref(), Some("no_whatsapp"));
        let mut known = landline.clone();
        known.whatsapp_id = Some("551133334444".into());
        assert_eq!(plan_contact(&known, &t, &vars).state, RecipientState::Pending);

        assert_eq!(plan_contact(&contact("+5511987654321"), &t, &Variables::new()).reason.as_deref(), Some("render"));
        let needs_email = template("Oi {{email}}");
        assert_eq!(
            plan_contact(&contact("+5511987654321"), &needs_email, &Variables::new()).reason.as_deref(),
            Some("render")
        );
    }

    #[test]
    fn the_state_machine_refuses_what_it_has_no_arrow_for() {
        let now = Utc::now();
        let input = NewCampaign {
            name: "Black Friday".into(),
            channel_id: None,
            template: "promo".into(),
            language: None,
            variables: Variables::new(),
            audience: Audience::Tag { tag: Tag::parse("vip").unwrap() },
            scheduled_at: None,
        };
        let mut c = Campaign::new(AccountId::new(), input, ChannelId::new(), now).unwrap();
        assert_eq!(c.state, CampaignState::Draft);
        assert!(matches!(c.transition(CampaignState::Paused, now), Err(Error::Conflict { .. })));
        c.transition(CampaignState::Running, now).unwrap();
        assert_eq!(c.started_at, Some(now));
        assert!(matches!(c.transition(CampaignState::Running, now), Err(Error::Conflict { .. })));
        c.transition(CampaignState::Paused, now).unwrap();
        c.transition(CampaignState::Running, now).unwrap();
        c.transition(CampaignState::Cancelled, now).unwrap();
        assert_eq!(c.finished_at, Some(now));
        for next in [CampaignState::Running, CampaignState::Paused, CampaignState::Cancelled, CampaignState::Completed]
        {
            assert!(c.transition(next, now).is_err(), "{next:?}");
        }
    }

    #[test]
    fn audiences_are_checked() {
        assert!(Audience::Contacts { contact_ids: vec![] }.check().is_err());
        assert!(Audience::Phones { phones: vec!["x".repeat(65)] }.check().is_err());
        assert!(Audience::Filter { tag: None, stage: None, search: Some("  ".into()) }.check().is_err());
        assert!(Audience::Filter { tag: None, stage: Some(LeadStage::New), search: None }.check().is_ok());
        let json = serde_json::json!({"type": "tag", "tag": "VIP"});
        assert_eq!(
            serde_json::from_value::<Audience>(json).unwrap(),
            Audience::Tag { tag: Tag::parse("vip").unwrap() }
        );
    }

    #[test]
    fn counters_read_as_a_funnel() {
        let mut c = RecipientCounts::default();
        for (s, n) in [
            (RecipientState::Pending, 5),
            (RecipientState::Skipped, 2),
            (RecipientState::Queued, 3),
            (RecipientState::Sent, 4),
            (RecipientState::Delivered, 6),
            (RecipientState::Read, 1),
            (RecipientState::Failed, 7),
        ] {
            c.by_state[s.index()] = n;
        }
        c.replied = 1;
        let k = CampaignCounters::from(c);
        assert_eq!((k.recipients, k.sent, k.delivered, k.read, k.queued, k.in_flight), (28, 11, 7, 1, 21, 3));
    }
}
