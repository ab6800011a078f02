//! Follow-up sequences: ordered steps with delays ("no reply after 3 days →
//! template A; after 7 more → template B; then tag `cold`") that a contact
//! is enrolled in, stopped by a reply, a stage change, an opt-out or a
//! manual stop, and kept out of quiet time.
//!
//! A [`Sequence`] is the plan; an [`Enrolment`] is one contact's way through
//! it. Each step due is a durable job (`sequence.step`), so a restart
//! neither loses nor repeats a step (see ARCHITECTURE.md, "Sequences").

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::template::check_template_ref;
use crate::domain::zone::Zone;
use crate::{AccountId, ContactId, EnrolmentId, Error, LeadStage, MAX_TEXT_LEN, Result, SequenceId, Tag, Variables};
use chrono_tz::Tz;

/// Most steps in a sequence.
pub const MAX_SEQUENCE_STEPS: usize = 50;

/// Longest delay of one step: 365 days, in seconds.
pub const MAX_STEP_DELAY_SECONDS: u64 = 365 * 24 * 3600;

/// What a step does when it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepAction {
    /// Sends a stored template (rendered for the contact) through the send
    /// pipeline; allowed outside the 24-hour window.
    SendTemplate {
        /// The template's name.
        name: String,
        /// Its language.
        language: String,
        /// Extra variables (the contact's own are filled in).
        #[serde(default)]
        variables: Variables,
    },
    /// Sends free text through the send pipeline (its window rules apply:
    /// refused, or replaced by the channel's fallback template, when the
    /// contact has not written in the last 24 hours).
    SendText {
        /// The text.
        text: String,
    },
    /// E-mails the contact through the account's e-mail connection (a
    /// durable `mail.send` job); the contact's `{{name}}`, `{{first_name}}`,
    /// `{{phone}}` and `{{email}}` fill the templates. A contact without an
    /// e-mail address stops the enrolment as failed.
    SendEmail {
        /// Subject template.
        subject: String,
        /// Plain-text body template.
        text: String,
        /// HTML body template.
        #[serde(default)]
        html: Option<String>,
    },
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
    /// Moves the contact to a lead stage (this does not stop the sequence).
    SetStage {
        /// The stage.
        stage: LeadStage,
    },
}

impl StepAction {
    fn check(&self) -> Result<()> {
        match self {
            StepAction::SendTemplate { name, language, .. } => check_template_ref(name, language),
            StepAction::SendText { text } => {
                if text.trim().is_empty() || text.chars().count() > MAX_TEXT_LEN {
                    return Err(Error::validation("steps", format!("a text must be 1 to {MAX_TEXT_LEN} characters")));
                }
                Ok(())
            }
            StepAction::AddTag { tag } | StepAction::RemoveTag { tag } => Tag::parse(tag).map(|_| ()),
            StepAction::SetStage { .. } => Ok(()),
            StepAction::SendEmail { subject, text, html } => {
                let bad = |what: &str| Err(Error::validation("steps", what.to_owned()));
                if subject.trim().is_empty() || subject.chars().count() > 998 || subject.chars().any(char::is_control) {
                    return bad("an e-mail subject must be one line of 1 to 998 characters");
                }
                if text.trim().is_empty() || text.chars().count() > crate::ports::connectors::MAX_BODY_CHARS {
                    return bad("an e-mail text must be 1 to 524288 characters");
                }
                if html.as_ref().is_some_and(|h| h.chars().count() > crate::ports::connectors::MAX_BODY_CHARS) {
                    return bad("an e-mail HTML body must be at most 524288 characters");
                }
                Ok(())
            }
        }
    }

    /// `send_template`, `send_text`, `send_email`, `add_tag`, `remove_tag` or `set_stage`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::SendTemplate { .. } => "send_template",
            StepAction::SendText { .. } => "send_text",
            StepAction::AddTag { .. } => "add_tag",
            StepAction::RemoveTag { .. } => "remove_tag",
            StepAction::SetStage { .. } => "set_stage",
            StepAction::SendEmail { .. } => "send_email",
        }
    }

    /// Whether it writes to the contact (text, template, e-mail), as
    /// opposed to changing crm's own data.
    pub fn messages_contact(&self) -> bool {
        matches!(self, StepAction::SendTemplate { .. } | StepAction::SendText { .. } | StepAction::SendEmail { .. })
    }
}

/// One step: wait `delay_seconds` after the previous step ran (the first
/// step: after enrolment), then do `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SequenceStep {
    /// Seconds after the previous step (0..=[`MAX_STEP_DELAY_SECONDS`]).
    pub delay_seconds: u64,
    /// What it does.
    pub action: StepAction,
}

/// When steps may run: allowed hours on allowed weekdays in a time zone,
/// an IANA zone (`time_zone`, daylight saving time applied) or, without
/// one, a fixed offset from UTC. With neither (no zone, offset 0) the
/// window is read in the account's time zone
/// ([`Account::time_zone`](crate::Account::time_zone); UTC when it has
/// none); give `time_zone: "UTC"` to pin UTC. A step due outside the window
/// moves to the next allowed minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendWindow {
    /// The IANA time zone, e.g. `America/Sao_Paulo`; when given,
    /// `utc_offset_minutes` must be 0 or absent; without both, the
    /// account's time zone applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Minutes east of UTC (-720..=840), e.g. -180 for São Paulo; used
    /// without `time_zone`.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Allowed weekdays, 1 = Monday … 7 = Sunday; empty = every day.
    #[serde(default)]
    pub days: Vec<u8>,
    /// First allowed minute of the local day (0..1440).
    pub start_minute: u16,
    /// End of the allowed time, exclusive (1..=1440, after `start_minute`).
    pub end_minute: u16,
}

impl SendWindow {
    fn zone(&self, account: Option<Tz>) -> Result<Zone> {
        Zone::from_setting_or("window.time_zone", self.time_zone.as_deref(), self.utc_offset_minutes, account)
    }

    fn check(&self) -> Result<()> {
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return Err(Error::validation("window.utc_offset_minutes", "must be between -720 and 840"));
        }
        if self.time_zone.is_some() && self.utc_offset_minutes != 0 {
            return Err(Error::validation(
                "window.utc_offset_minutes",
                "give time_zone or utc_offset_minutes, not both",
            ));
        }
        self.zone(None)?;
        if self.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(Error::validation("window.days", "weekdays are 1 (Monday) to 7 (Sunday)"));
        }
        if self.start_minute >= self.end_minute || self.end_minute > 1440 {
            return Err(Error::validation("window", "start_minute must be before end_minute, both within a day"));
        }
        Ok(())
    }

    /// Whether `t` is inside the window.
    pub fn allows(&self, t: DateTime<Utc>) -> bool {
        self.next_allowed(t) == t
    }

    /// The first allowed instant at or after `t`. The window's minutes are
    /// local wall-clock minutes: a start inside a skipped hour (clocks going
    /// forward) opens when the gap ends; in a repeated hour the earlier one counts.
    ///
    /// ```
    /// use crm_core::domain::sequence::SendWindow;
    /// use chrono::{TimeZone, Utc};
    /// // 09:00–18:00 in UTC-3, Monday to Friday.
    /// let w = SendWindow { time_zone: None, utc_offset_minutes: -180, days: vec![1, 2, 3, 4, 5], start_minute: 540, end_minute: 1080 };
    /// // Saturday 2026-11-28 12:00 UTC → Monday 2026-11-30 09:00 local = 12:00 UTC.
    /// let t = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    /// assert_eq!(w.next_allowed(t), Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap());
    /// ```
    pub fn next_allowed(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.next_allowed_in(t, None)
    }

    /// [`Self::next_allowed`] for an account whose time zone is `account`:
    /// a window with neither zone nor offset is read on its clock (UTC
    /// when `None`).
    pub fn next_allowed_in(&self, t: DateTime<Utc>, account: Option<Tz>) -> DateTime<Utc> {
        let Ok(zone) = self.zone(account) else { return t };
        let local = zone.local(t);
        for d in 0..=7 {
            let Some(date) = local.date().checked_add_days(chrono::Days::new(d)) else { break };
            let weekday = date.weekday().number_from_monday() as u8;
            if !self.days.is_empty() && !self.days.contains(&weekday) {
                continue;
            }
            let midnight = date.and_time(NaiveTime::MIN);
            let start = zone.instant(midnight + ChronoDuration::minutes(i64::from(self.start_minute)));
            let end = zone.instant(midnight + ChronoDuration::minutes(i64::from(self.end_minute)));
            if t < end {
                return t.max(start);
            }
        }
        t
    }
}

/// Default [`LatePolicy::grace_seconds`]: one day.
pub const DEFAULT_LATE_GRACE_SECONDS: u64 = 86_400;

/// What a message step does when it runs later than its grace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LateAction {
    /// Skip the step (`sequence.step_skipped`) and go on with the next one,
    /// its delay counted from now (the default).
    #[default]
    Skip,
    /// Send it anyway, late.
    Send,
    /// Stop the enrolment (stop reason `late`).
    Stop,
}

/// What happens to a step whose job runs late: workers were down, or a
/// backlog held it. A step is late by how long after its due time (already
/// moved out of quiet time) the runner reaches it; waiting for the send
/// window after that does not count. Within `grace_seconds` every step runs
/// as planned. Later than that, a step that messages the contact (text,
/// template, e-mail) does `action`; a step that only changes crm's own data
/// (tags, stage) always runs, since skipping it would leave the contact in
/// a state no step meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatePolicy {
    /// How late a step may still run as planned, in seconds (default one
    /// day; at most [`MAX_STEP_DELAY_SECONDS`]).
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
    /// What a later message step does (default `skip`).
    #[serde(default)]
    pub action: LateAction,
}

fn default_grace() -> u64 {
    DEFAULT_LATE_GRACE_SECONDS
}

impl Default for LatePolicy {
    fn default() -> Self {
        LatePolicy { grace_seconds: DEFAULT_LATE_GRACE_SECONDS, action: LateAction::Skip }
    }
}

/// What the runner does with a due step, by [`LatePolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// Run it (on time, within the grace, or a step that always runs).
    Run,
    /// Run it although it is late by this many seconds (action `send`).
    RunLate(i64),
    /// Skip it; late by this many seconds.
    Skip(i64),
    /// Stop the enrolment; late by this many seconds.
    Stop(i64),
}

impl LatePolicy {
    fn check(&self) -> Result<()> {
        if self.grace_seconds > MAX_STEP_DELAY_SECONDS {
            return Err(Error::validation("late.grace_seconds", "must be at most 365 days (31536000)"));
        }
        Ok(())
    }

    /// The decision for `action`, due at `due`, reached at `now`.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use crm_core::domain::sequence::{LatePolicy, Lateness, StepAction};
    /// let p = LatePolicy::default();
    /// let due = Utc::now();
    /// let send = StepAction::SendText { text: "Oi".into() };
    /// assert_eq!(p.decide(&send, due, due + Duration::hours(2)), Lateness::Run);
    /// assert_eq!(p.decide(&send, due, due + Duration::days(2)), Lateness::Skip(172_800));
    /// let tag = StepAction::AddTag { tag: "cold".into() };
    /// assert_eq!(p.decide(&tag, due, due + Duration::days(2)), Lateness::Run);
    /// ```
    pub fn decide(&self, action: &StepAction, due: DateTime<Utc>, now: DateTime<Utc>) -> Lateness {
        let late = (now - due).num_seconds();
        let grace = i64::try_from(self.grace_seconds).unwrap_or(i64::MAX);
        if late <= grace || !action.messages_contact() {
            return Lateness::Run;
        }
        match self.action {
            LateAction::Skip => Lateness::Skip(late),
            LateAction::Send => Lateness::RunLate(late),
            LateAction::Stop => Lateness::Stop(late),
        }
    }
}

/// What a sequence is made of, as given by a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSequence {
    /// A name (1–200 characters).
    pub name: String,
    /// Whether contacts may be enrolled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The steps, in order (1..=[`MAX_SEQUENCE_STEPS`]).
    pub steps: Vec<SequenceStep>,
    /// When steps may run; `None`: any time.
    #[serde(default)]
    pub window: Option<SendWindow>,
    /// What a step reached late does (default: one day's grace, then
    /// message steps are skipped).
    #[serde(default)]
    pub late: LatePolicy,
}

fn yes() -> bool {
    true
}

impl NewSequence {
    /// [`Error::Validation`] on a bad name, no or too many steps, a bad
    /// step or window.
    pub fn check(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::validation("name", "must be 1 to 200 characters without control characters"));
        }
        if self.steps.is_empty() || self.steps.len() > MAX_SEQUENCE_STEPS {
            return Err(Error::validation("steps", format!("must have 1 to {MAX_SEQUENCE_STEPS} steps")));
        }
        for s in &self.steps {
            if s.delay_seconds > MAX_STEP_DELAY_SECONDS {
                return Err(Error::validation("steps", "a delay is at most 365 days"));
            }
            s.action.check()?;
        }
        self.late.check()?;
        self.window.as_ref().map_or(Ok(()), SendWindow::check)
    }
}

/// A follow-up sequence of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sequence {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub id: SequenceId,
    /// The account.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub account_id: AccountId,
    /// Its name.
    pub name: String,
    /// Whether contacts may be enrolled; enrolments already running go on.
    pub enabled: bool,
    /// The steps. Running enrolments follow an edit by step index.
    pub steps: Vec<SequenceStep>,
    /// When steps may run.
    pub window: Option<SendWindow>,
    /// What a step reached late does.
    #[serde(default)]
    pub late: LatePolicy,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency version (0 when new).
    pub version: i64,
}

impl Sequence {
    /// A validated new sequence ([`NewSequence::check`]).
    pub fn new(account_id: AccountId, input: NewSequence, now: DateTime<Utc>) -> Result<Self> {
        input.check()?;
        Ok(Sequence {
            id: SequenceId::new(),
            account_id,
            name: input.name.trim().to_owned(),
            enabled: input.enabled,
            steps: input.steps,
            window: input.window,
            late: input.late,
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// Replaces name, steps, window and `enabled` with a validated `input`.
    pub fn replace(&mut self, input: NewSequence, now: DateTime<Utc>) -> Result<()> {
        input.check()?;
        self.name = input.name.trim().to_owned();
        self.enabled = input.enabled;
        self.steps = input.steps;
        self.window = input.window;
        self.late = input.late;
        self.updated_at = now;
        Ok(())
    }

    /// When step `index` is due if the previous one ran (or the contact
    /// was enrolled) at `after`: its delay later, moved out of quiet time
    /// (a window without zone or offset read in `account`'s zone, UTC when
    /// `None`). `None` past the last step.
    pub fn due_at(&self, index: u32, after: DateTime<Utc>, account: Option<Tz>) -> Option<DateTime<Utc>> {
        let step = self.steps.get(index as usize)?;
        let delay = ChronoDuration::seconds(i64::try_from(step.delay_seconds).unwrap_or(i64::MAX));
        let t = after.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC);
        Some(self.window.as_ref().map_or(t, |w| w.next_allowed_in(t, account)))
    }
}

/// Where an enrolment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EnrolmentState {
    /// Steps are still due.
    Active,
    /// Every step ran.
    Completed,
    /// Stopped early (see the reason).
    Stopped,
}

impl EnrolmentState {
    /// `active` / `completed` / `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrolmentState::Active => "active",
            EnrolmentState::Completed => "completed",
            EnrolmentState::Stopped => "stopped",
        }
    }

    /// Parses [`EnrolmentState::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(EnrolmentState::Active),
            "completed" => Ok(EnrolmentState::Completed),
            "stopped" => Ok(EnrolmentState::Stopped),
            _ => Err(Error::validation("state", "must be active, completed or stopped")),
        }
    }
}

/// Why an enrolment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StopReason {
    /// The contact wrote (an inbound message).
    Replied,
    /// The contact's lead stage changed (other than by the sequence's own step).
    StageChanged,
    /// The contact opted out.
    OptedOut,
    /// Stopped through the API.
    Manual,
    /// A message step ran later than the sequence's grace and its late
    /// policy says stop.
    Late,
    /// Stopped by an automation rule (job `sequence.stop`).
    Automation,
    /// A step could not run (e.g. a send refused); the detail says why.
    Failed,
    /// The contact was deleted.
    ContactDeleted,
}

impl StopReason {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Replied => "replied",
            StopReason::StageChanged => "stage_changed",
            StopReason::OptedOut => "opted_out",
            StopReason::Manual => "manual",
            StopReason::Late => "late",
            StopReason::Automation => "automation",
            StopReason::Failed => "failed",
            StopReason::ContactDeleted => "contact_deleted",
        }
    }

    /// Parses [`StopReason::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| Error::validation("stop_reason", "unknown stop reason"))
    }
}

/// One contact's way through a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolment {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub id: EnrolmentId,
    /// The account.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub account_id: AccountId,
    /// The sequence.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub sequence_id: SequenceId,
    /// The contact.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub contact_id: ContactId,
    /// Active, completed or stopped.
    pub state: EnrolmentState,
    /// Why it stopped.
    pub stop_reason: Option<StopReason>,
    /// More about the stop (a refused send's reason).
    pub stop_detail: Option<String>,
    /// Index of the next step to run (= steps done).
    pub current_step: u32,
    /// When that step is due; `None` once finished.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The contact's lead stage as the sequence last saw it: a change to
    /// another stage stops the enrolment.
    pub stage: LeadStage,
    /// Who enrolled it (e.g. `{"automation_id", "run_id"}`), when not a person.
    pub source: Option<serde_json::Value>,
    /// Enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency version (0 when new).
    pub version: i64,
}

impl Enrolment {
    /// A new active enrolment at step 0, due at `first_due`.
    pub fn new(
        sequence: &Sequence,
        contact_id: ContactId,
        stage: LeadStage,
        first_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Enrolment {
            id: EnrolmentId::new(),
            account_id: sequence.account_id,
            sequence_id: sequence.id,
            contact_id,
            state: EnrolmentState::Active,
            stop_reason: None,
            stop_detail: None,
            current_step: 0,
            next_run_at: Some(first_due),
            stage,
            source: None,
            enrolled_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether steps are still due.
    pub fn is_active(&self) -> bool {
        self.state == EnrolmentState::Active
    }

    /// Stops it with `reason` (and `detail`, at most 500 characters kept).
    pub fn stop(&mut self, reason: StopReason, detail: Option<&str>, now: DateTime<Utc>) {
        self.state = EnrolmentState::Stopped;
        self.stop_reason = Some(reason);
        self.stop_detail = detail.map(|d| d.chars().take(500).collect());
        self.next_run_at = None;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn step(delay: u64, action: StepAction) -> SequenceStep {
        SequenceStep { delay_seconds: delay, action }
    }

    #[test]
    fn sequences_are_validated() {
        let ok = NewSequence {
            name: "Follow-up".into(),
            enabled: true,
            steps: vec![step(3 * 86400, StepAction::AddTag { tag: "cold".into() })],
            window: None,
            late: LatePolicy::default(),
        };
        assert!(Sequence::new(AccountId::new(), ok.clone(), Utc::now()).is_ok());
        let bad = [
            NewSequence { name: " ".into(), ..ok.clone() },
            NewSequence { steps: vec![], ..ok.clone() },
            NewSequence {
                steps: vec![step(MAX_STEP_DELAY_SECONDS + 1, StepAction::AddTag { tag: "x".into() })],
                ..ok.clone()
            },
            NewSequence { steps: vec![step(0, StepAction::AddTag { tag: "a,b".into() })], ..ok.clone() },
            NewSequence { steps: vec![step(0, StepAction::SendText { text: " ".into() })], ..ok.clone() },
            NewSequence {
                steps: vec![step(
                    0,
                    StepAction::SendTemplate { name: "".into(), language: "en".into(), variables: Variables::new() },
                )],
                ..ok.clone()
            },
            NewSequence {
                window: Some(SendWindow {
                    time_zone: None,
                    utc_offset_minutes: 0,
                    days: vec![],
                    start_minute: 600,
                    end_minute: 600,
                }),
                ..ok.clone()
            },
            NewSequence {
                window: Some(SendWindow {
                    time_zone: None,
                    utc_offset_minutes: 0,
                    days: vec![8],
                    start_minute: 0,
                    end_minute: 60,
                }),
                ..ok.clone()
            },
            NewSequence {
                window: Some(SendWindow {
                    time_zone: None,
                    utc_offset_minutes: 900,
                    days: vec![],
                    start_minute: 0,
                    end_minute: 60,
                }),
                ..ok.clone()
            },
            NewSequence {
                late: LatePolicy { grace_seconds: MAX_STEP_DELAY_SECONDS + 1, ..LatePolicy::default() },
                ..ok
            },
        ];
        for b in bad {
            assert!(matches!(b.check(), Err(Error::Validation { .. })), "{b:?}");
        }
    }

    #[test]
    fn quiet_time_moves_to_the_next_allowed_minute() {
        // 08:00–20:00 at UTC+1, every day.
        let w = SendWindow {
            time_zone: None,
            utc_offset_minutes: 60,
            days: vec![],
            start_minute: 8 * 60,
            end_minute: 20 * 60,
        };
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
        // 10:00 UTC = 11:00 local: allowed as is.
        assert_eq!(w.next_allowed(at(1, 10, 0)), at(1, 10, 0));
        // 19:30 UTC = 20:30 local: next day 08:00 local = 07:00 UTC.
        assert_eq!(w.next_allowed(at(1, 19, 30)), at(2, 7, 0));
        // 05:00 UTC = 06:00 local: same day 07:00 UTC.
        assert_eq!(w.next_allowed(at(1, 5, 0)), at(1, 7, 0));
        // 23:30 UTC = 00:30 local next day: 07:00 UTC next day.
        assert_eq!(w.next_allowed(at(1, 23, 30)), at(2, 7, 0));
        // Weekdays only: Friday 2026-12-04 21:00 UTC → Monday 07:00 UTC.
        let weekdays = SendWindow { days: vec![1, 2, 3, 4, 5], ..w };
        assert_eq!(weekdays.next_allowed(at(4, 21, 0)), at(7, 7, 0));
    }

    #[test]
    fn windows_in_an_iana_zone_follow_daylight_saving_time() {
        // 09:00–18:00 in Lisbon (WET, UTC+0 in winter; WEST, UTC+1 in summer), every day.
        let w = SendWindow {
            time_zone: Some("Europe/Lisbon".into()),
            utc_offset_minutes: 0,
            days: vec![],
            start_minute: 9 * 60,
            end_minute: 18 * 60,
        };
        w.check().unwrap();
        let at = |mo, d, h, m| Utc.with_ymd_and_hms(2026, mo, d, h, m, 0).unwrap();
        // Saturday 2026-03-28 20:00 UTC (winter) → Sunday 2026-03-29, after the
        // 01:00 UTC switch: 09:00 WEST = 08:00 UTC.
        assert_eq!(w.next_allowed(at(3, 28, 20, 0)), at(3, 29, 8, 0));
        // Saturday 2026-10-24 (summer) 18:00 UTC = 19:00 local → Sunday 2026-10-25,
        // after the switch back: 09:00 WET = 09:00 UTC.
        assert_eq!(w.next_allowed(at(10, 24, 18, 0)), at(10, 25, 9, 0));
        // Inside: unchanged; the end is local too (17:30 UTC = 18:30 WEST: closed).
        assert!(w.allows(at(7, 1, 16, 59)));
        assert!(!w.allows(at(7, 1, 17, 0)));
        assert_eq!(w.next_allowed(at(7, 1, 17, 30)), at(7, 2, 8, 0));
        // A window opening inside the skipped hour opens when the gap ends:
        // 2026-03-08 02:30 does not exist in New York; 03:00 EDT = 07:00 UTC.
        let ny = SendWindow {
            time_zone: Some("America/New_York".into()),
            start_minute: 2 * 60 + 30,
            end_minute: 4 * 60,
            ..w.clone()
        };
        assert_eq!(ny.next_allowed(at(3, 8, 6, 0)), at(3, 8, 7, 0));
        // The repeated hour: 2026-11-01 01:30–04:00 opens at the first 01:30 (EDT) = 05:30 UTC.
        let back = SendWindow { start_minute: 90, ..ny };
        assert_eq!(back.next_allowed(at(11, 1, 4, 0)), at(11, 1, 5, 30));
        // Unknown zone or zone plus offset: refused.
        let bad = SendWindow { time_zone: Some("Lisbon".into()), ..w.clone() };
        assert!(matches!(bad.check(), Err(Error::Validation { field, .. }) if field == "window.time_zone"));
        let both = SendWindow { utc_offset_minutes: 60, ..w };
        assert!(matches!(both.check(), Err(Error::Validation { .. })));
    }

    #[test]
    fn late_steps_follow_the_policy() {
        let due = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let send = StepAction::SendText { text: "Oi".into() };
        let tag = StepAction::AddTag { tag: "cold".into() };
        let p = LatePolicy { grace_seconds: 3600, action: LateAction::Skip };
        assert_eq!(p.decide(&send, due, due), Lateness::Run);
        assert_eq!(p.decide(&send, due, due + ChronoDuration::seconds(3600)), Lateness::Run);
        assert_eq!(p.decide(&send, due, due + ChronoDuration::seconds(3601)), Lateness::Skip(3601));
        assert_eq!(p.decide(&tag, due, due + ChronoDuration::days(30)), Lateness::Run);
        let send_late = LatePolicy { action: LateAction::Send, ..p };
        assert_eq!(send_late.decide(&send, due, due + ChronoDuration::hours(2)), Lateness::RunLate(7200));
        let stop = LatePolicy { action: LateAction::Stop, ..p };
        assert_eq!(stop.decide(&send, due, due + ChronoDuration::hours(2)), Lateness::Stop(7200));
        // Early (a clock behind): runs.
        assert_eq!(stop.decide(&send, due, due - ChronoDuration::hours(2)), Lateness::Run);
        // Absent in JSON: the default, one day then skip.
        let parsed: NewSequence =
            serde_json::from_value(serde_json::json!({"name": "s", "steps": [{"delay_seconds": 0, "action": {"type": "add_tag", "tag": "a"}}]}))
                .unwrap();
        assert_eq!(parsed.late, LatePolicy { grace_seconds: DEFAULT_LATE_GRACE_SECONDS, action: LateAction::Skip });
    }

    #[test]
    fn due_times_add_the_delay_then_leave_quiet_time() {
        let mut s = Sequence::new(
            AccountId::new(),
            NewSequence {
                name: "s".into(),
                enabled: true,
                steps: vec![step(3600, StepAction::AddTag { tag: "a".into() })],
                window: None,
                late: LatePolicy::default(),
            },
            Utc::now(),
        )
        .unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 19, 30, 0).unwrap();
        assert_eq!(s.due_at(0, t, None), Some(t + ChronoDuration::hours(1)));
        assert_eq!(s.due_at(1, t, None), None);
        s.window = Some(SendWindow {
            time_zone: None,
            utc_offset_minutes: 0,
            days: vec![],
            start_minute: 480,
            end_minute: 1200,
        });
        assert_eq!(s.due_at(0, t, None), Some(Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()));
    }

    #[test]
    fn stop_reasons_round_trip() {
        for r in [
            StopReason::Replied,
            StopReason::StageChanged,
            StopReason::OptedOut,
            StopReason::Manual,
            StopReason::Late,
            StopReason::Automation,
            StopReason::Failed,
            StopReason::ContactDeleted,
        ] {
            assert_eq!(StopReason::parse(r.as_str()).unwrap(), r);
        }
        assert!(StopReason::parse("nope").is_err());
        for s in [EnrolmentState::Active, EnrolmentState::Completed, EnrolmentState::Stopped] {
            assert_eq!(EnrolmentState::parse(s.as_str()).unwrap(), s);
        }
    }
}
