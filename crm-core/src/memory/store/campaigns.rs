//! [`CampaignStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

use super::{MemoryStore, State, page_of};
use crate::domain::campaign::{PlanProgress, PlannedRecipient, Recipient, RecipientCounts, RecipientState};
use crate::ports::campaigns::{check_plan, check_recipient_limit};
use crate::ports::store::check_event_account;
use crate::{
    AccountId, Campaign, CampaignId, CampaignStore, ContactId, Error, Event, MessageId, Page, PageRequest, Result,
};

/// A campaign's recipients by seq, and its contacts.
#[derive(Debug, Default)]
pub(super) struct Recipients {
    by_seq: BTreeMap<u64, Recipient>,
    contacts: HashSet<ContactId>,
}

impl State {
    fn campaign(&self, account: AccountId, id: CampaignId) -> Result<&Campaign> {
        self.campaigns.get(&id).filter(|c| c.account_id == account).ok_or(Error::not_found("campaign"))
    }

    fn recipients_mut(&mut self, account: AccountId, id: CampaignId) -> Result<&mut Recipients> {
        self.campaign(account, id)?;
        Ok(self.recipients.entry(id).or_default())
    }
}

fn moves(r: &mut Recipient, state: RecipientState, reason: Option<&str>, at: DateTime<Utc>) -> bool {
    if !RecipientState::predecessors(state).contains(&r.state) {
        return false;
    }
    r.state = state;
    if let Some(reason) = reason {
        r.reason = Some(reason.to_owned());
    }
    r.updated_at = at;
    true
}

#[async_trait]
impl CampaignStore for MemoryStore {
    async fn insert_campaign(&self, campaign: &Campaign, event: &Event) -> Result<()> {
        check_event_account(campaign.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.campaigns.contains_key(&campaign.id) {
            return Err(Error::conflict("campaign", "id already exists"));
        }
        s.campaigns.insert(campaign.id, campaign.clone());
        s.append(event);
        Ok(())
    }

    async fn get_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        self.lock().campaign(account, id).cloned()
    }

    async fn list_campaigns(&self, account: AccountId, page: &PageRequest) -> Result<Page<Campaign>> {
        let s = self.lock();
        let items = s.campaigns.values().filter(|c| c.account_id == account).cloned();
        Ok(page_of(items, page, |c| c.id.into_uuid()))
    }

    async fn update_campaign(&self, campaign: &Campaign, event: &Event) -> Result<Campaign> {
        check_event_account(campaign.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let stored = s.campaign(campaign.account_id, campaign.id)?;
        if stored.version != campaign.version {
            return Err(Error::conflict("campaign", "it was changed meanwhile; read it again"));
        }
        let mut next = stored.clone();
        next.state = campaign.state;
        next.scheduled_at = campaign.scheduled_at;
        next.started_at = campaign.started_at;
        next.finished_at = campaign.finished_at;
        next.stop_reason = campaign.stop_reason.clone();
        next.updated_at = campaign.updated_at;
        next.version += 1;
        s.campaigns.insert(campaign.id, next.clone());
        s.append(event);
        Ok(next)
    }

    async fn delete_campaign(&self, account: AccountId, id: CampaignId, version: i64, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.campaign(account, id)?.version != version {
            return Err(Error::conflict("campaign", "it was changed meanwhile; read it again"));
        }
        s.campaigns.remove(&id);
        s.recipients.remove(&id);
        s.append(event);
        Ok(())
    }

    async fn plan_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        from: &PlanProgress,
        to: &PlanProgress,
        recipients: &[PlannedRecipient],
        at: DateTime<Utc>,
    ) -> Result<bool> {
        check_plan(from, to, recipients)?;
        let mut s = self.lock();
        if s.campaign(account, campaign)?.plan.planned != from.planned {
            return Ok(false);
        }
        let list = s.recipients.entry(campaign).or_default();
        for (i, r) in recipients.iter().enumerate() {
            if let Some(c) = r.contact_id
                && !list.contacts.insert(c)
            {
                continue;
            }
            let seq = from.planned + i as u64;
            list.by_seq.insert(
                seq,
                Recipient {
                    campaign_id: campaign,
                    seq,
                    contact_id: r.contact_id,
                    phone: r.phone.clone(),
                    state: r.state,
                    reason: r.reason.clone(),
                    message_id: None,
                    replied_at: None,
                    updated_at: at,
                },
            );
        }
        if let Some(c) = s.campaigns.get_mut(&campaign) {
            c.plan = to.clone();
        }
        Ok(true)
    }

    async fn pending_recipients(&self, account: AccountId, campaign: CampaignId, limit: u32) -> Result<Vec<Recipient>> {
        check_recipient_limit(limit)?;
        let mut s = self.lock();
        let list = s.recipients_mut(account, campaign)?;
        Ok(list.by_seq.values().filter(|r| r.state == RecipientState::Pending).take(limit as usize).cloned().collect())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the recipient's key, its move and the time, as the other port methods take them"
    )]
    async fn set_recipient_state(
        &self,
        account: AccountId,
        campaign: CampaignId,
        seq: u64,
        state: RecipientState,
        reason: Option<&str>,
        message: Option<MessageId>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut s = self.lock();
        let r = s.recipients_mut(account, campaign)?.by_seq.get_mut(&seq).ok_or(Error::not_found("recipient"))?;
        let moved = moves(r, state, reason, at);
        if let (true, Some(m)) = (moved, message) {
            r.message_id = Some(m);
            s.recipient_messages.insert((account, m), (campaign, seq));
        }
        Ok(moved)
    }

    async fn set_recipient_state_by_message(
        &self,
        account: AccountId,
        message: MessageId,
        state: RecipientState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut s = self.lock();
        let Some((campaign, seq)) = s.recipient_messages.get(&(account, message)).copied() else { return Ok(false) };
        match s.recipients.get_mut(&campaign).and_then(|l| l.by_seq.get_mut(&seq)) {
            Some(r) => Ok(moves(r, state, reason, at)),
            None => Ok(false),
        }
    }

    async fn record_recipient_reply(&self, account: AccountId, contact: ContactId, at: DateTime<Utc>) -> Result<u64> {
        let mut s = self.lock();
        let State { campaigns, recipients, .. } = &mut *s;
        let mut n = 0;
        for (id, list) in recipients.iter_mut() {
            if campaigns.get(id).is_none_or(|c| c.account_id != account) {
                continue;
            }
            if !list.contacts.contains(&contact) {
                continue;
            }
            for r in list.by_seq.values_mut().filter(|r| r.contact_id == Some(contact) && r.replied_at.is_none()) {
                if matches!(r.state, RecipientState::Sent | RecipientState::Delivered | RecipientState::Read) {
                    r.replied_at = Some(at);
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    async fn recipient_counts(&self, account: AccountId, campaign: CampaignId) -> Result<RecipientCounts> {
        let mut s = self.lock();
        let mut counts = RecipientCounts::default();
        for r in s.recipients_mut(account, campaign)?.by_seq.values() {
            counts.by_state[r.state.index()] += 1;
            counts.replied += u64::from(r.replied_at.is_some());
        }
        Ok(counts)
    }

    async fn list_recipients(
        &self,
        account: AccountId,
        campaign: CampaignId,
        state: Option<RecipientState>,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Recipient>> {
        check_recipient_limit(limit)?;
        let mut s = self.lock();
        let list = s.recipients_mut(account, campaign)?;
        let start = after_seq.map_or(0, |a| a.saturating_add(1));
        Ok(list
            .by_seq
            .range(start..)
            .map(|(_, r)| r)
            .filter(|r| state.is_none_or(|st| r.state == st))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
