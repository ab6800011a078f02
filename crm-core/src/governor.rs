//! The send governor: pacing around any [`Messenger`].
//!
//! Users of the popular WhatsApp gateways report numbers banned after a few
//! hundred fast sends. The governor keeps every channel inside what its
//! provider tolerates, shared across processes through the
//! [`RateLimiter`] port (Redis when several processes send):
//!
//! - a sustained rate per channel ([`Pacing::per_second`], else the
//!   provider's [`Capabilities::max_messages_per_second`], 80/s for WhatsApp
//!   Cloud), with a burst of a tenth of a second's worth;
//! - spacing between two messages to the same recipient
//!   ([`Pacing::pair_interval_secs`], else [`Capabilities::pair_interval`]);
//! - random jitter before each send ([`Pacing::jitter_ms`]);
//! - a cap of unique recipients per rolling 24 hours (Meta's messaging
//!   tiers, [`Pacing::daily_unique_cap`]) and a warm-up schedule that raises
//!   it over days for a new number ([`Pacing::warmup`]).
//!
//! Short waits (the sustained rate) are waited out in place, up to
//! [`GovernorConfig::max_inline_wait`]; longer ones come back as
//! [`Paced::Wait`], which the dispatcher turns into a deferral of the queued
//! message (no attempt counted), and a reached daily cap also carries the
//! [`Throttle`] to show on the channel.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Capabilities, Channel, Clock, Error, Health, HealthCheck, Messenger, OutboundMessage, Quota, RateLimiter, Result,
    SendReceipt, Throttle,
};

/// Governor-wide settings.
#[derive(Debug, Clone)]
pub struct GovernorConfig {
    /// Waits up to this long in place for the sustained rate before handing
    /// the message back as [`Paced::Wait`].
    pub max_inline_wait: Duration,
    /// The burst allowed above the sustained rate, as a share of one second
    /// of sending (0.1 = a tenth of a second's worth, at least 1 message).
    pub burst_share: f64,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self { max_inline_wait: Duration::from_secs(2), burst_share: 0.1 }
    }
}

/// Paces sends per channel and recipient. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Governor {
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    config: GovernorConfig,
}

/// Whether a message may go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it (after the returned jitter).
    Go {
        /// Random delay to wait before sending.
        jitter: Duration,
    },
    /// Not before `retry_after`.
    Wait {
        /// How long to hold the message back.
        retry_after: Duration,
        /// Set when the channel as a whole is held back (a daily cap), to
        /// show on the channel.
        throttle: Option<Throttle>,
    },
}

/// The rate limiter key prefix of every governor key.
const PREFIX: &str = "gov";

impl Governor {
    /// A governor counting in `limiter` (use a shared one, e.g. Redis, when
    /// several processes send through the same channels).
    pub fn new(limiter: Arc<dyn RateLimiter>, clock: Arc<dyn Clock>) -> Self {
        Self { limiter, clock, config: GovernorConfig::default() }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: GovernorConfig) -> Self {
        self.config = config;
        self
    }

    /// The sustained-rate quota of a channel: `rate`/s with a burst of
    /// `burst_share` seconds' worth (at least one).
    fn rate_quota(&self, per_second: u32) -> Result<Quota> {
        // A provider reporting 0 messages a second still gets one.
        let per_second = per_second.max(1);
        let share = if self.config.burst_share.is_finite() { self.config.burst_share.clamp(0.0, 10.0) } else { 0.1 };
        let burst = ((f64::from(per_second) * share).floor() as u32).max(1);
        // burst per (burst / rate) seconds = rate per second.
        let period = Duration::from_secs_f64(f64::from(burst) / f64::from(per_second));
        Quota::new(burst, period.max(Duration::from_millis(1)))
    }

    /// Decides whether a message to `recipient` may go out on `channel` now,
    /// counting it when it may. `new_recipient` says whether the recipient
    /// got nothing from the account in the last 24 hours (it then counts
    /// toward the daily cap). Waits in place for short rate waits.
    pub async fn admit(
        &self,
        channel: &Channel,
        capabilities: &Capabilities,
        recipient: &str,
        new_recipient: bool,
    ) -> Result<Verdict> {
        let now = self.clock.now();
        if let Some(t) = channel.throttled_at(now) {
            let retry_after = (t.until - now).to_std().unwrap_or_default();
            return Ok(Verdict::Wait { retry_after, throttle: None });
        }
        let id = channel.id;
        // 1. The sustained rate (a denied pair check later wastes at most one
        //    slot of it, which errs on the slow side).
        if let Some(rate) = channel.pacing.per_second.or(capabilities.max_messages_per_second) {
            let quota = self.rate_quota(rate)?;
            let key = format!("{PREFIX}:rate:{id}");
            let mut waited = Duration::ZERO;
            loop {
                let d = self.limiter.check(&key, &quota).await?;
                if d.allowed {
                    break;
                }
                let retry = d.retry_after.unwrap_or(quota.period).max(Duration::from_millis(1));
                if waited + retry > self.config.max_inline_wait {
                    return Ok(Verdict::Wait { retry_after: retry, throttle: None });
                }
                tokio::time::sleep(retry).await;
                waited += retry;
            }
        }
        // 2. Spacing per recipient.
        let pair = channel
            .pacing
            .pair_interval_secs
            .map(|s| Duration::from_secs(u64::from(s)))
            .or(capabilities.pair_interval)
            .unwrap_or_default();
        if !pair.is_zero() {
            let quota = Quota::new(1, pair)?;
            let d = self.limiter.check(&format!("{PREFIX}:pair:{id}:{recipient}"), &quota).await?;
            if !d.allowed {
                return Ok(Verdict::Wait { retry_after: d.retry_after.unwrap_or(pair), throttle: None });
            }
        }
        // 3. Unique recipients per rolling 24 hours.
        if new_recipient && let Some(cap) = channel.pacing.daily_cap_at(channel.created_at, now) {
            let quota = Quota::new(cap, Duration::from_secs(24 * 3600))?;
            let d = self.limiter.check(&format!("{PREFIX}:daily:{id}:{cap}"), &quota).await?;
            if !d.allowed {
                let retry_after = d.retry_after.unwrap_or(Duration::from_secs(3600));
                let until = now + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::hours(1));
                let throttle =
                    Throttle { reason: format!("daily cap of {cap} unique recipients reached"), since: now, until };
                return Ok(Verdict::Wait { retry_after, throttle: Some(throttle) });
            }
        }
        // 4. Jitter.
        let jitter = match channel.pacing.jitter_ms.unwrap_or(0) {
            0 => Duration::ZERO,
            max => {
                let mut b = [0u8; 4];
                getrandom::fill(&mut b).map_err(|e| Error::Config { message: format!("random generator: {e}") })?;
                Duration::from_millis(u64::from(u32::from_le_bytes(b) % (max + 1)))
            }
        };
        Ok(Verdict::Go { jitter })
    }
}

/// What a paced send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paced {
    /// The provider accepted it.
    Sent(SendReceipt),
    /// The governor held it back; nothing was sent.
    Wait {
        /// How long to hold it.
        retry_after: Duration,
        /// The channel-wide throttle to show, when a cap was reached.
        throttle: Option<Throttle>,
    },
}

/// A [`Messenger`] that asks the [`Governor`] before every send. As a plain
/// `Messenger`, a held-back send is [`Error::RateLimited`]; the dispatcher
/// calls [`GovernedMessenger::send_paced`] to learn about throttles too.
#[derive(Debug, Clone)]
pub struct GovernedMessenger {
    inner: Arc<dyn Messenger>,
    governor: Governor,
    channel: Channel,
}

impl GovernedMessenger {
    /// Wraps `inner`, the messenger of `channel`.
    pub fn new(inner: Arc<dyn Messenger>, governor: Governor, channel: Channel) -> Self {
        Self { inner, governor, channel }
    }

    /// The wrapped messenger.
    pub fn inner(&self) -> &Arc<dyn Messenger> {
        &self.inner
    }

    /// The channel (as it was when the wrapper was built).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Sends when the governor admits the message, after its jitter.
    pub async fn send_paced(&self, message: &OutboundMessage) -> Result<Paced> {
        let recipient = message.whatsapp_id.as_deref().unwrap_or(message.to.as_str());
        let caps = self.inner.capabilities();
        match self.governor.admit(&self.channel, &caps, recipient, message.new_recipient).await? {
            Verdict::Go { jitter } => {
                if !jitter.is_zero() {
                    tokio::time::sleep(jitter).await;
                }
                self.inner.send(message).await.map(Paced::Sent)
            }
            Verdict::Wait { retry_after, throttle } => Ok(Paced::Wait { retry_after, throttle }),
        }
    }
}

#[async_trait]
impl HealthCheck for GovernedMessenger {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn check(&self) -> Health {
        self.inner.check().await
    }
}

#[async_trait]
impl Messenger for GovernedMessenger {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        match self.send_paced(message).await? {
            Paced::Sent(r) => Ok(r),
            Paced::Wait { retry_after, .. } => Err(Error::RateLimited { retry_after }),
        }
    }

    async fn find_receipt(&self, message: &OutboundMessage) -> Result<Option<SendReceipt>> {
        self.inner.find_receipt(message).await
    }

    /// The provider's group manager, its sends paced like one-to-one ones
    /// ([`GovernedGroups`]).
    fn group_manager(self: Arc<Self>) -> Option<Arc<dyn crate::GroupManager>> {
        let inner = self.inner.clone().group_manager()?;
        Some(Arc::new(GovernedGroups {
            inner,
            governor: self.governor.clone(),
            channel: self.channel.clone(),
            capabilities: self.inner.capabilities(),
        }))
    }

    /// Read receipts are not paced: they deliver no message.
    async fn mark_read(&self, receipt: &crate::ReadReceipt) -> Result<()> {
        self.inner.mark_read(receipt).await
    }
}

/// A channel's [`GroupManager`](crate::GroupManager) whose sends to a group
/// ask the [`Governor`] first, like a one-to-one send: the channel's
/// sustained rate (shared with its one-to-one messages), the spacing per
/// recipient (the group's id is the recipient) and the jitter. A group is
/// not a new contact: it does not count toward the daily cap of unique
/// recipients. A send that must wait longer than the governor waits in
/// place is [`Error::RateLimited`] and nothing is sent (HTTP: 429 with
/// Retry-After). Administration calls are not paced: they deliver no message.
#[derive(Debug, Clone)]
pub struct GovernedGroups {
    inner: Arc<dyn crate::GroupManager>,
    governor: Governor,
    channel: Channel,
    capabilities: Capabilities,
}

#[async_trait]
impl crate::GroupManager for GovernedGroups {
    async fn create_group(
        &self,
        subject: &str,
        participants: &[crate::Phone],
    ) -> Result<crate::domain::group::GroupInfo> {
        self.inner.create_group(subject, participants).await
    }

    async fn set_subject(&self, group: &str, subject: &str) -> Result<()> {
        self.inner.set_subject(group, subject).await
    }

    async fn set_description(&self, group: &str, description: &str) -> Result<()> {
        self.inner.set_description(group, description).await
    }

    async fn add_participants(&self, group: &str, participants: &[crate::Phone]) -> Result<()> {
        self.inner.add_participants(group, participants).await
    }

    async fn remove_participants(&self, group: &str, participants: &[crate::Phone]) -> Result<()> {
        self.inner.remove_participants(group, participants).await
    }

    async fn promote_admins(&self, group: &str, participants: &[crate::Phone]) -> Result<()> {
        self.inner.promote_admins(group, participants).await
    }

    async fn demote_admins(&self, group: &str, participants: &[crate::Phone]) -> Result<()> {
        self.inner.demote_admins(group, participants).await
    }

    async fn list_groups(&self) -> Result<Vec<crate::domain::group::GroupInfo>> {
        self.inner.list_groups().await
    }

    async fn group_info(&self, group: &str) -> Result<crate::domain::group::GroupInfo> {
        self.inner.group_info(group).await
    }

    async fn participants(&self, group: &str) -> Result<Vec<crate::domain::group::GroupParticipant>> {
        self.inner.participants(group).await
    }

    async fn leave_group(&self, group: &str) -> Result<()> {
        self.inner.leave_group(group).await
    }

    async fn send_to_group(&self, group: &str, content: &crate::MessageContent) -> Result<SendReceipt> {
        match self.governor.admit(&self.channel, &self.capabilities, group, false).await? {
            Verdict::Go { jitter } => {
                if !jitter.is_zero() {
                    tokio::time::sleep(jitter).await;
                }
                self.inner.send_to_group(group, content).await
            }
            Verdict::Wait { retry_after, .. } => Err(Error::RateLimited { retry_after }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccountId, GcraLimiter, ManualClock, MessageContent, MessageId, NewChannel, Pacing, Phone, RecordingMessenger,
        WarmupStep,
    };

    fn channel(pacing: Pacing, clock: &ManualClock) -> Channel {
        let input =
            NewChannel { kind: "recording".into(), name: "c".into(), pacing: Some(pacing), ..Default::default() };
        Channel::new(AccountId::new(), &input, None, clock.now()).unwrap()
    }

    fn message(to: &str, new_recipient: bool) -> OutboundMessage {
        OutboundMessage {
            account_id: AccountId::new(),
            message_id: MessageId::new(),
            to: Phone::parse(to).unwrap(),
            whatsapp_id: None,
            content: MessageContent::text("oi"),
            new_recipient,
            reply_to: None,
        }
    }

    fn setup(pacing: Pacing) -> (ManualClock, GovernedMessenger, RecordingMessenger) {
        let clock = ManualClock::default();
        let limiter = Arc::new(GcraLimiter::new(Arc::new(clock.clone())));
        let governor = Governor::new(limiter, Arc::new(clock.clone()))
            .with_config(GovernorConfig { max_inline_wait: Duration::ZERO, burst_share: 0.1 });
        let rec = RecordingMessenger::new();
        let gm = GovernedMessenger::new(Arc::new(rec.clone()), governor, channel(pacing, &clock));
        (clock, gm, rec)
    }

    #[tokio::test]
    async fn pair_spacing_holds_back_a_second_message_to_the_same_recipient() {
        let (clock, gm, rec) = setup(Pacing { pair_interval_secs: Some(6), ..Default::default() });
        assert!(matches!(gm.send_paced(&message("+5511987654321", false)).await.unwrap(), Paced::Sent(_)));
        match gm.send_paced(&message("+5511987654321", false)).await.unwrap() {
            Paced::Wait { retry_after, throttle } => {
                assert!(retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(6));
                assert!(throttle.is_none());
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        // Another recipient is not held back; after the interval the first one goes.
        assert!(matches!(gm.send_paced(&message("+5511987654322", false)).await.unwrap(), Paced::Sent(_)));
        clock.advance(Duration::from_secs(6));
        assert!(matches!(gm.send_paced(&message("+5511987654321", false)).await.unwrap(), Paced::Sent(_)));
        assert_eq!(rec.sent().len(), 3);
        let e = gm.send(&message("+5511987654321", false)).await.unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
    }

    async fn two_groups(groups: &dyn crate::GroupManager) -> (String, String) {
        let p = [Phone::parse("+5511987654321").unwrap()];
        (groups.create_group("A", &p).await.unwrap().jid, groups.create_group("B", &p).await.unwrap().jid)
    }

    #[tokio::test]
    async fn group_sends_are_spaced_per_group() {
        let (clock, gm, rec) = setup(Pacing { pair_interval_secs: Some(6), ..Default::default() });
        let groups = Arc::new(gm).group_manager().expect("the recording messenger has groups");
        let (a, b) = two_groups(groups.as_ref()).await;
        groups.send_to_group(&a, &MessageContent::text("1")).await.expect("first send to a");
        // The same group within the interval: held back, nothing sent.
        match groups.send_to_group(&a, &MessageContent::text("2")).await.unwrap_err() {
            Error::RateLimited { retry_after } => assert!(retry_after > Duration::from_secs(5), "{retry_after:?}"),
            other => panic!("expected RateLimited, got {other:?}"),
        }
        groups.send_to_group(&b, &MessageContent::text("3")).await.expect("another group is not held back");
        assert_eq!(rec.groups().sent().len(), 2, "only admitted sends reached the provider");
        clock.advance(Duration::from_secs(6));
        groups.send_to_group(&a, &MessageContent::text("4")).await.expect("after the interval");
        assert_eq!(rec.groups().sent().len(), 3);
        // Administration is not paced.
        groups.set_subject(&a, "A2").await.expect("rename");
        groups.set_subject(&a, "A3").await.expect("rename again at once");
    }

    #[tokio::test]
    async fn group_and_one_to_one_sends_share_the_channels_rate() {
        let (clock, gm, rec) =
            setup(Pacing { per_second: Some(20), pair_interval_secs: Some(0), ..Default::default() });
        let gm = Arc::new(gm);
        let groups = gm.clone().group_manager().expect("groups");
        let (a, b) = two_groups(groups.as_ref()).await;
        // 20/s with a tenth of a second's burst: two sends at once...
        groups.send_to_group(&a, &MessageContent::text("1")).await.expect("burst 1");
        groups.send_to_group(&b, &MessageContent::text("2")).await.expect("burst 2");
        // ...then the channel waits, for a group and for a contact alike.
        let e = groups.send_to_group(&a, &MessageContent::text("3")).await.unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e}");
        assert!(matches!(gm.send_paced(&message("+5511987654329", false)).await.unwrap(), Paced::Wait { .. }));
        clock.advance(Duration::from_millis(50));
        groups.send_to_group(&a, &MessageContent::text("4")).await.expect("after 50 ms");
        assert_eq!((rec.groups().sent().len(), rec.sent().len()), (3, 0));
    }

    #[tokio::test]
    async fn the_channel_rate_allows_a_small_burst_then_paces() {
        let (clock, gm, rec) =
            setup(Pacing { per_second: Some(20), pair_interval_secs: Some(0), ..Default::default() });
        // 20/s with a tenth of a second's burst: 2 at once, then one per 50 ms.
        let mut sent = 0;
        for i in 0..5 {
            if let Paced::Sent(_) = gm.send_paced(&message(&format!("+551198765432{i}"), false)).await.unwrap() {
                sent += 1;
            }
        }
        assert_eq!(sent, 2);
        clock.advance(Duration::from_millis(50));
        assert!(matches!(gm.send_paced(&message("+5511987654329", false)).await.unwrap(), Paced::Sent(_)));
        assert_eq!(rec.sent().len(), 3);
    }

    #[tokio::test]
    async fn the_daily_cap_counts_new_recipients_and_throttles_the_channel() {
        let (clock, gm, _rec) = setup(Pacing {
            pair_interval_secs: Some(0),
            warmup: vec![WarmupStep { day: 0, cap: 2 }, WarmupStep { day: 2, cap: 100 }],
            ..Default::default()
        });
        for i in 0..2 {
            let m = message(&format!("+55119876543{i:02}"), true);
            assert!(matches!(gm.send_paced(&m).await.unwrap(), Paced::Sent(_)));
        }
        // Known recipients do not count.
        assert!(matches!(gm.send_paced(&message("+5511987654300", false)).await.unwrap(), Paced::Sent(_)));
        match gm.send_paced(&message("+5511987654399", true)).await.unwrap() {
            Paced::Wait { throttle: Some(t), retry_after } => {
                assert!(t.reason.contains("daily cap of 2"), "{}", t.reason);
                assert!(retry_after > Duration::from_secs(3600));
            }
            other => panic!("expected a throttle, got {other:?}"),
        }
        // Two days later the warm-up allows more.
        clock.advance(Duration::from_secs(2 * 24 * 3600));
        assert!(matches!(gm.send_paced(&message("+5511987654399", true)).await.unwrap(), Paced::Sent(_)));
    }

    #[tokio::test]
    async fn odd_settings_never_panic() {
        let clock = ManualClock::default();
        let limiter = Arc::new(GcraLimiter::new(Arc::new(clock.clone())));
        let g = Governor::new(limiter, Arc::new(clock.clone()))
            .with_config(GovernorConfig { max_inline_wait: Duration::ZERO, burst_share: f64::NAN });
        let caps = Capabilities { max_messages_per_second: Some(0), ..Capabilities::everything() };
        let c = channel(Pacing::default(), &clock);
        assert!(matches!(g.admit(&c, &caps, "x", false).await.unwrap(), Verdict::Go { .. }));
        assert!(matches!(g.admit(&c, &caps, "y", false).await.unwrap(), Verdict::Wait { .. }), "then one a second");
    }

    #[tokio::test]
    async fn a_throttled_channel_waits_until_it_resumes() {
        let clock = ManualClock::default();
        let mut c = channel(Pacing::default(), &clock);
        c.throttle = Some(Throttle {
            reason: "provider".into(),
            since: clock.now(),
            until: clock.now() + chrono::Duration::seconds(30),
        });
        let governor = Governor::new(Arc::new(GcraLimiter::new(Arc::new(clock.clone()))), Arc::new(clock.clone()));
        let v = governor.admit(&c, &Capabilities::everything(), "x", false).await.unwrap();
        assert_eq!(v, Verdict::Wait { retry_after: Duration::from_secs(30), throttle: None });
        clock.advance(Duration::from_secs(31));
        assert!(matches!(
            governor.admit(&c, &Capabilities::everything(), "x", false).await.unwrap(),
            Verdict::Go { .. }
        ));
    }
}
