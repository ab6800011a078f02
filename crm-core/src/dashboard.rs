//! The dashboard's metrics, defined once as pure functions over plain facts
//! (messages, contacts, user actions) so every definition is unit-tested on
//! hand-built data and the HTTP layer only gathers the facts and renders.
//!
//! Periods are half-open, `[start, end)`. A rate or average over nothing is
//! `None` ("no data"), never a division by zero.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{ContactId, Direction, Error, LeadStage, Result, UserId};

/// A half-open time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after.
    pub end: DateTime<Utc>,
}

impl Period {
    /// The window `[start, end)`; [`Error::Validation`] on `period` unless
    /// `start < end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start < end { Ok(Self { start, end }) } else { Err(Error::validation("period", "start must be before end")) }
    }

    /// The `length` ending at `end`.
    pub fn ending(end: DateTime<Utc>, length: Duration) -> Result<Self> {
        Self::new(end - length, end)
    }

    /// The window of the same length just before this one (for trends).
    pub fn previous(&self) -> Self {
        Self { start: self.start - (self.end - self.start), end: self.start }
    }

    /// Whether `at` falls inside.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// Who wrote an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// The contact (every inbound message).
    Contact,
    /// A person using the dashboard or the API.
    Human,
    /// An automation rule or sequence.
    Automation,
}

/// One message, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFact {
    /// The thread (one per contact).
    pub thread: ContactId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Who wrote it.
    pub author: Author,
    /// When it was stored.
    pub at: DateTime<Utc>,
}

/// One contact, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactFact {
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its stage now.
    pub stage: LeadStage,
}

/// One recorded action of a user (a login, a send, an edit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserAction {
    /// Who acted.
    pub user: UserId,
    /// When.
    pub at: DateTime<Utc>,
}

/// Active users: distinct users with at least one recorded action in the period.
pub fn active_users(actions: &[UserAction], period: &Period) -> usize {
    actions.iter().filter(|a| period.contains(a.at)).map(|a| a.user).collect::<HashSet<_>>().len()
}

/// Messages sent: outbound messages stored in the period (by people and automation alike).
pub fn messages_sent(messages: &[MessageFact], period: &Period) -> usize {
    messages.iter().filter(|m| m.direction == Direction::Outbound && period.contains(m.at)).count()
}

/// Conversion rate: of the contacts created in the period, the share whose
/// stage is now `won` (the customer stage); `None` when none was created.
pub fn conversion_rate(contacts: &[ContactFact], period: &Period) -> Option<f64> {
    let created: Vec<_> = contacts.iter().filter(|c| period.contains(c.created_at)).collect();
    if created.is_empty() {
        return None;
    }
    let won = created.iter().filter(|c| c.stage == LeadStage::Won).count();
    Some(won as f64 / created.len() as f64)
}

/// Walks each thread in time order and yields, for every run of inbound
/// messages, the first inbound message and the outbound messages that follow
/// it until the next inbound run.
fn conversations(messages: &[MessageFact]) -> Vec<(&MessageFact, Vec<&MessageFact>)> {
    let mut threads: HashMap<ContactId, Vec<&MessageFact>> = HashMap::new();
    for m in messages {
        threads.entry(m.thread).or_default().push(m);
    }
    let mut out = Vec::new();
    for mut thread in threads.into_values() {
        thread.sort_by_key(|m| m.at);
        let mut current: Option<(&MessageFact, Vec<&MessageFact>)> = None;
        for m in thread {
            match m.direction {
                Direction::Inbound => {
                    let replied = current.as_ref().is_some_and(|(_, replies)| !replies.is_empty());
                    if current.is_none() || replied {
                        out.extend(current.take());
                        current = Some((m, Vec::new()));
                    }
                }
                Direction::Outbound => {
                    if let Some((_, replies)) = current.as_mut() {
                        replies.push(m);
                    }
                }
            }
        }
        out.extend(current);
    }
    out
}

/// Average response time: for every inbound message in the period that
/// starts a wait (the first inbound since the last reply in its thread), the
/// time until the next outbound message in the same thread; unanswered
/// messages are left out. `None` when nothing was answered.
pub fn average_response_time(messages: &[MessageFact], period: &Period) -> Option<Duration> {
    let waits: Vec<Duration> = conversations(messages)
        .into_iter()
        .filter(|(first, _)| period.contains(first.at))
        .filter_map(|(first, replies)| replies.first().map(|r| r.at - first.at))
        .collect();
    if waits.is_empty() {
        return None;
    }
    let total_ms: i64 = waits.iter().map(Duration::num_milliseconds).sum();
    Some(Duration::milliseconds(total_ms / waits.len() as i64))
}

/// Bot efficiency: of the threads with an inbound message in the period, the
/// share whose replies to those messages came from automation only (at least
/// one automated reply, no human one). `None` when no thread had an inbound message.
pub fn bot_efficiency(messages: &[MessageFact], period: &Period) -> Option<f64> {
    let mut threads: HashMap<ContactId, (bool, bool)> = HashMap::new();
    for (first, replies) in conversations(messages) {
        if !period.contains(first.at) {
            continue;
        }
        let entry = threads.entry(first.thread).or_insert((false, false));
        for r in replies {
            match r.author {
                Author::Automation => entry.0 = true,
                Author::Human | Author::Contact => entry.1 = true,
            }
        }
    }
    if threads.is_empty() {
        return None;
    }
    let bot_only = threads.values().filter(|(bot, human)| *bot && !*human).count();
    Some(bot_only as f64 / threads.len() as f64)
}

/// The relative change from `previous` to `current` (0.25 = up 25 %);
/// `None` when either is missing or `previous` is zero.
pub fn trend(current: Option<f64>, previous: Option<f64>) -> Option<f64> {
    match (current, previous) {
        (Some(c), Some(p)) if p != 0.0 => Some((c - p) / p.abs()),
        _ => None,
    }
}

/// Messages per UTC day in the period: `(day, inbound, outbound)` for every
/// day the period touches, days without messages included, oldest first.
pub fn messages_per_day(messages: &[MessageFact], period: &Period) -> Vec<(NaiveDate, usize, usize)> {
    let mut days: BTreeMap<NaiveDate, (usize, usize)> = BTreeMap::new();
    let last = (period.end - Duration::nanoseconds(1)).date_naive();
    let mut day = period.start.date_naive();
    while day <= last {
        days.insert(day, (0, 0));
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    for m in messages.iter().filter(|m| period.contains(m.at)) {
        let counts = days.entry(m.at.date_naive()).or_default();
        match m.direction {
            Direction::Inbound => counts.0 += 1,
            Direction::Outbound => counts.1 += 1,
        }
    }
    days.into_iter().map(|(d, (i, o))| (d, i, o)).collect()
}

/// The lead funnel: how many contacts are in each stage now, in funnel order
/// (every stage listed, zero included).
pub fn funnel(contacts: &[ContactFact]) -> Vec<(LeadStage, usize)> {
    LeadStage::ALL.iter().map(|s| (*s, contacts.iter().filter(|c| c.stage == *s).count())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap() + Duration::minutes(h)
    }
    fn day() -> Period {
        Period::new(t(0), t(24 * 60)).unwrap()
    }
    fn msg(thread: ContactId, direction: Direction, author: Author, minute: i64) -> MessageFact {
        MessageFact { thread, direction, author, at: t(minute) }
    }
    fn inbound(thread: ContactId, minute: i64) -> MessageFact {
        msg(thread, Direction::Inbound, Author::Contact, minute)
    }
    fn reply(thread: ContactId, author: Author, minute: i64) -> MessageFact {
        msg(thread, Direction::Outbound, author, minute)
    }

    #[test]
    fn a_period_needs_its_start_before_its_end_and_knows_the_one_before() {
        assert!(Period::new(t(5), t(5)).is_err());
        assert!(Period::new(t(6), t(5)).is_err());
        let p = Period::new(t(60), t(120)).unwrap();
        assert_eq!(p.previous(), Period::new(t(0), t(60)).unwrap());
        assert!(p.contains(t(60)) && !p.contains(t(120)) && !p.contains(t(59)));
    }

    #[test]
    fn active_users_counts_distinct_users_acting_inside_the_period() {
        let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
        let actions = [
            UserAction { user: a, at: t(10) },
            UserAction { user: a, at: t(20) },
            UserAction { user: b, at: t(30) },
            UserAction { user: c, at: t(-1) },
            UserAction { user: c, at: t(24 * 60) },
        ];
        assert_eq!(active_users(&actions, &day()), 2);
        assert_eq!(active_users(&[], &day()), 0);
    }

    #[test]
    fn messages_sent_counts_outbound_inside_the_period_only() {
        let c = ContactId::new();
        let msgs =
            [inbound(c, 1), reply(c, Author::Human, 2), reply(c, Author::Automation, 3), reply(c, Author::Human, -5)];
        assert_eq!(messages_sent(&msgs, &day()), 2);
        assert_eq!(messages_sent(&[], &day()), 0);
    }

    #[test]
    fn conversion_is_won_over_created_in_the_period_and_none_without_contacts() {
        let contact = |minute, stage| ContactFact { created_at: t(minute), stage };
        let contacts = [
            contact(1, LeadStage::Won),
            contact(2, LeadStage::New),
            contact(3, LeadStage::Qualified),
            contact(4, LeadStage::Won),
            contact(-10, LeadStage::Won),
        ];
        assert_eq!(conversion_rate(&contacts, &day()), Some(0.5));
        assert_eq!(conversion_rate(&contacts[4..], &day()), None);
        assert_eq!(conversion_rate(&[], &day()), None);
    }

    #[test]
    fn response_time_runs_from_the_first_unanswered_inbound_to_the_next_reply_in_its_thread() {
        let (a, b, c) = (ContactId::new(), ContactId::new(), ContactId::new());
        let msgs = [
            // a: two inbound, one reply 10 minutes after the first.
            inbound(a, 0),
            inbound(a, 5),
            reply(a, Author::Human, 10),
            reply(a, Author::Human, 11),
            // a again: 30 minutes.
            inbound(a, 100),
            reply(a, Author::Automation, 130),
            // b: a reply in another thread does not answer c.
            inbound(b, 50),
            reply(b, Author::Human, 70),
            // c: never answered; left out.
            inbound(c, 60),
        ];
        // (10 + 30 + 20) / 3 = 20 minutes.
        assert_eq!(average_response_time(&msgs, &day()), Some(Duration::minutes(20)));
    }

    #[test]
    fn response_time_is_none_for_an_empty_or_unanswered_period() {
        let c = ContactId::new();
        assert_eq!(average_response_time(&[], &day()), None);
        assert_eq!(average_response_time(&[inbound(c, 1)], &day()), None);
        // An outbound message without an inbound before it is no response.
        assert_eq!(average_response_time(&[reply(c, Author::Human, 1)], &day()), None);
        // The inbound was before the period: not this period's response.
        assert_eq!(average_response_time(&[inbound(c, -5), reply(c, Author::Human, 5)], &day()), None);
    }

    #[test]
    fn bot_efficiency_is_threads_answered_only_by_automation_over_threads_with_inbound() {
        let (a, b, c, d) = (ContactId::new(), ContactId::new(), ContactId::new(), ContactId::new());
        let msgs = [
            inbound(a, 1),
            reply(a, Author::Automation, 2),
            inbound(b, 1),
            reply(b, Author::Automation, 2),
            reply(b, Author::Human, 3),
            inbound(c, 1),
            reply(c, Author::Human, 2),
            inbound(d, 1),
        ];
        assert_eq!(bot_efficiency(&msgs, &day()), Some(0.25));
        assert_eq!(bot_efficiency(&[], &day()), None);
        assert_eq!(bot_efficiency(&[reply(a, Author::Automation, 1)], &day()), None);
    }

    #[test]
    fn trend_is_relative_change_and_none_against_zero_or_nothing() {
        assert_eq!(trend(Some(15.0), Some(10.0)), Some(0.5));
        assert_eq!(trend(Some(5.0), Some(10.0)), Some(-0.5));
        assert_eq!(trend(Some(5.0), Some(0.0)), None);
        assert_eq!(trend(None, Some(3.0)), None);
        assert_eq!(trend(Some(3.0), None), None);
    }

    #[test]
    fn messages_per_day_lists_every_day_of_the_period_with_in_and_out() {
        let c = ContactId::new();
        let p = Period::new(t(0), t(3 * 24 * 60)).unwrap();
        let msgs =
            [inbound(c, 10), reply(c, Author::Human, 20), reply(c, Author::Human, 24 * 60 * 2 + 1), inbound(c, -1)];
        let days = messages_per_day(&msgs, &p);
        assert_eq!(days.len(), 3);
        assert_eq!((days[0].1, days[0].2), (1, 1));
        assert_eq!((days[1].1, days[1].2), (0, 0));
        assert_eq!((days[2].1, days[2].2), (0, 1));
        assert_eq!(days[0].0, t(0).date_naive());
    }

    #[test]
    fn funnel_lists_every_stage_in_order() {
        let contacts = [
            ContactFact { created_at: t(0), stage: LeadStage::Won },
            ContactFact { created_at: t(0), stage: LeadStage::New },
            ContactFact { created_at: t(0), stage: LeadStage::New },
        ];
        let f = funnel(&contacts);
        assert_eq!(f.len(), LeadStage::ALL.len());
        assert_eq!(f[0], (LeadStage::New, 2));
        assert_eq!(f.iter().find(|(s, _)| *s == LeadStage::Won).unwrap().1, 1);
        assert!(funnel(&[]).iter().all(|(_, n)| *n == 0));
    }
}
