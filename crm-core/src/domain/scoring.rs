//! Lead scoring: the account's [`ScoringModel`] (points per signal, decay,
//! stage thresholds) and the contact's score history ([`ScoreChange`]).
//!
//! The model, as the API shows it:
//!
//! | signal | when | points |
//! |---|---|---|
//! | `replied` | each inbound message | `replied` |
//! | `fast_reply` | an inbound message within `within_minutes` of the last outbound one | `points` |
//! | `keywords` | an inbound message whose text holds a listed word (each rule once per message) | `points` |
//! | `tags` | a contact gains the tag (once per contact and tag) | `points` |
//! | `campaign_reply` | an inbound message quoting a message of a campaign | `campaign_reply` |
//! | `decay` | each day without an inbound message after `after_days` of silence | −`points_per_day` |
//!
//! Scores are clamped to 0..=100. After each change the `thresholds` are
//! read from the highest `min_score` down: the first one the score reaches
//! moves the contact to its stage when that stage is further down the funnel
//! than the contact's (never out of `won` or `lost`, never backwards).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccountId, ContactId, Error, EventId, LeadStage, Result, Tag};

/// Points for answering quickly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FastReply {
    /// Within how many minutes of crm's last message (1..=10080).
    pub within_minutes: u32,
    /// Points.
    pub points: i16,
}

/// Points for words in an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeywordPoints {
    /// Any of these whole words or phrases (any case), 1..=50.
    pub words: Vec<String>,
    /// Points.
    pub points: i16,
}

/// Points for a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagPoints {
    /// The tag.
    pub tag: String,
    /// Points.
    pub points: i16,
}

/// Points lost to silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decay {
    /// Days without an inbound message before decay starts (1..=365).
    pub after_days: u32,
    /// Points lost per further day (1..=100).
    pub points_per_day: u8,
}

/// A score from which a contact moves to a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Threshold {
    /// Lowest score (0..=100).
    pub min_score: u8,
    /// The stage.
    pub stage: LeadStage,
}

/// An account's scoring model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoringModel {
    /// Whether the scoring worker applies it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Points per inbound message.
    #[serde(default)]
    pub replied: i16,
    /// Points for a quick answer.
    #[serde(default)]
    pub fast_reply: Option<FastReply>,
    /// Points for words.
    #[serde(default)]
    pub keywords: Vec<KeywordPoints>,
    /// Points for tags.
    #[serde(default)]
    pub tags: Vec<TagPoints>,
    /// Points for answering a campaign.
    #[serde(default)]
    pub campaign_reply: i16,
    /// Decay over silence.
    #[serde(default)]
    pub decay: Option<Decay>,
    /// Stage thresholds.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

fn yes() -> bool {
    true
}

impl Default for ScoringModel {
    /// The model an account has until it stores one: +5 per reply, +5 for a
    /// reply within an hour, +10 for buying words, −2 a day after 7 silent
    /// days, and `qualified` from 70.
    fn default() -> Self {
        ScoringModel {
            enabled: true,
            replied: 5,
            fast_reply: Some(FastReply { within_minutes: 60, points: 5 }),
            keywords: vec![KeywordPoints {
                words: ["price", "buy", "preço", "comprar", "orçamento"].map(String::from).to_vec(),
                points: 10,
            }],
            tags: Vec::new(),
            campaign_reply: 10,
            decay: Some(Decay { after_days: 7, points_per_day: 2 }),
            thresholds: vec![Threshold { min_score: 70, stage: LeadStage::Qualified }],
        }
    }
}

fn check_points(field: String, p: i16) -> Result<()> {
    if (-100..=100).contains(&p) { Ok(()) } else { Err(Error::validation(field, "points must be -100 to 100")) }
}

impl ScoringModel {
    /// Checks every field: [`Error::Validation`] naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_points("replied".into(), self.replied)?;
        check_points("campaign_reply".into(), self.campaign_reply)?;
        if let Some(f) = &self.fast_reply {
            check_points("fast_reply.points".into(), f.points)?;
            if !(1..=10_080).contains(&f.within_minutes) {
                return Err(Error::validation("fast_reply.within_minutes", "must be 1 minute to 7 days"));
            }
        }
        if self.keywords.len() > 50 {
            return Err(Error::validation("keywords", "at most 50 keyword rules"));
        }
        for (i, k) in self.keywords.iter().enumerate() {
            check_points(format!("keywords[{i}].points"), k.points)?;
            if k.words.is_empty() || k.words.len() > 50 || k.words.iter().any(|w| w.trim().is_empty() || w.len() > 100)
            {
                return Err(Error::validation(format!("keywords[{i}].words"), "1 to 50 words of 1 to 100 bytes"));
            }
        }
        if self.tags.len() > 50 {
            return Err(Error::validation("tags", "at most 50 tag rules"));
        }
        for (i, t) in self.tags.iter().enumerate() {
            check_points(format!("tags[{i}].points"), t.points)?;
            Tag::parse(&t.tag).map_err(|e| Error::validation(format!("tags[{i}].tag"), e.to_string()))?;
        }
        if let Some(d) = &self.decay
            && (!(1..=365).contains(&d.after_days) || !(1..=100).contains(&d.points_per_day))
        {
            return Err(Error::validation("decay", "after_days must be 1 to 365 and points_per_day 1 to 100"));
        }
        if self.thresholds.len() > 7 || self.thresholds.iter().any(|t| t.min_score > 100) {
            return Err(Error::validation("thresholds", "at most 7 thresholds with min_score 0 to 100"));
        }
        Ok(())
    }

    /// The points of an inbound message's text: `(signal, points)` for
    /// `replied`, each keyword rule it matches, and `fast_reply` when
    /// `since_outbound` (time since crm's last message) is within the window.
    pub fn message_points(
        &self,
        text: &str,
        since_outbound: Option<chrono::Duration>,
        campaign_reply: bool,
    ) -> Vec<(String, i16)> {
        let mut out = Vec::new();
        if self.replied != 0 {
            out.push(("replied".to_owned(), self.replied));
        }
        if let (Some(f), Some(d)) = (&self.fast_reply, since_outbound)
            && d >= chrono::Duration::zero()
            && d <= chrono::Duration::minutes(i64::from(f.within_minutes))
        {
            out.push(("fast_reply".to_owned(), f.points));
        }
        for (i, k) in self.keywords.iter().enumerate() {
            if contains_any_word(text, &k.words) {
                out.push((format!("keyword[{i}]"), k.points));
            }
        }
        if campaign_reply && self.campaign_reply != 0 {
            out.push(("campaign_reply".to_owned(), self.campaign_reply));
        }
        out
    }

    /// The stage a contact at `score` in `current` moves to, if any.
    pub fn stage_for(&self, score: u8, current: LeadStage) -> Option<LeadStage> {
        if matches!(current, LeadStage::Won | LeadStage::Lost) {
            return None;
        }
        let mut ts: Vec<&Threshold> = self.thresholds.iter().collect();
        ts.sort_by_key(|t| std::cmp::Reverse(t.min_score));
        let t = ts.into_iter().find(|t| score >= t.min_score)?;
        (t.stage > current && !matches!(t.stage, LeadStage::Won | LeadStage::Lost)).then_some(t.stage)
    }
}

/// Whether `text` holds any of `words` as whole words (any case).
pub fn contains_any_word(text: &str, words: &[String]) -> bool {
    let text = text.to_lowercase();
    words.iter().any(|w| {
        let w = w.trim().to_lowercase();
        !w.is_empty()
            && text.match_indices(&w).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + w.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
            })
    })
}

/// Adds `delta` to `score`, clamped to 0..=100.
pub fn clamp_score(score: u8, delta: i32) -> u8 {
    u8::try_from((i32::from(score) + delta).clamp(0, 100)).unwrap_or(100)
}

/// One change of a contact's lead score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreChange {
    /// Id (UUIDv7: history pages are in time order).
    pub id: uuid::Uuid,
    /// The account.
    pub account_id: AccountId,
    /// The contact.
    pub contact_id: ContactId,
    /// Before.
    pub old_score: u8,
    /// After.
    pub new_score: u8,
    /// The stage it moved to, when a threshold moved it.
    pub new_stage: Option<LeadStage>,
    /// The signal (`replied`, `keyword[0]`, `tag:vip`, `decay`, `automation`, …).
    pub reason: String,
    /// The event that caused it, when one did.
    pub event_id: Option<EventId>,
    /// Unique per contact: a cause applied twice is stored once
    /// (`<event id>:<signal>`, `<run id>:<step>`, `decay:<day>`).
    pub cause: String,
    /// When.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whole_words_in_any_case() {
        let w = vec!["preço".to_owned(), "buy now".to_owned()];
        assert!(contains_any_word("Qual o PREÇO?", &w));
        assert!(contains_any_word("I want to buy now!", &w));
        assert!(!contains_any_word("preçozinho", &w));
        assert!(!contains_any_word("buy nowhere", &w));
    }

    #[test]
    fn message_points_and_thresholds() {
        let m = ScoringModel::default();
        m.validate().unwrap();
        let p = m.message_points("qual o preço?", Some(chrono::Duration::minutes(10)), true);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["replied", "fast_reply", "keyword[0]", "campaign_reply"]);
        let slow = m.message_points("ok", Some(chrono::Duration::hours(2)), false);
        assert_eq!(slow, vec![("replied".to_owned(), 5)]);
        assert_eq!(m.stage_for(70, LeadStage::New), Some(LeadStage::Qualified));
        assert_eq!(m.stage_for(69, LeadStage::New), None);
        assert_eq!(m.stage_for(90, LeadStage::Proposal), None);
        assert_eq!(m.stage_for(90, LeadStage::Won), None);
        assert_eq!(clamp_score(95, 10), 100);
        assert_eq!(clamp_score(3, -10), 0);
        let bad = ScoringModel { replied: 101, ..ScoringModel::default() };
        assert!(matches!(bad.validate(), Err(Error::Validation { field, .. }) if field == "replied"));
    }
}
