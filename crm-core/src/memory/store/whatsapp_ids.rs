//! [`WhatsAppIdStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::ports::whatsapp_ids::{WhatsAppIdStore, WhatsAppIdentity, check_lid, check_whatsapp_id};
use crate::{AccountId, ChannelId, Phone, Result};

impl State {
    fn identity_entry(&mut self, channel: ChannelId, phone: &Phone) -> &mut WhatsAppIdentity {
        self.whatsapp_ids.entry((channel, phone.clone())).or_insert_with(|| WhatsAppIdentity {
            channel_id: channel,
            phone: phone.clone(),
            lid: None,
            whatsapp_id: None,
        })
    }
}

#[async_trait]
impl WhatsAppIdStore for MemoryStore {
    async fn link_lid(&self, account: AccountId, channel: ChannelId, phone: &Phone, lid: &str) -> Result<()> {
        check_lid(lid)?;
        let mut s = self.lock();
        s.channel(account, channel)?;
        for ((c, p), identity) in s.whatsapp_ids.iter_mut() {
            if *c == channel && p != phone && identity.lid.as_deref() == Some(lid) {
                identity.lid = None;
            }
        }
        s.identity_entry(channel, phone).lid = Some(lid.to_owned());
        Ok(())
    }

    async fn record_whatsapp_id(
        &self,
        account: AccountId,
        channel: ChannelId,
        phone: &Phone,
        whatsapp_id: &str,
    ) -> Result<()> {
        check_whatsapp_id(whatsapp_id)?;
        let mut s = self.lock();
        s.channel(account, channel)?;
        s.identity_entry(channel, phone).whatsapp_id = Some(whatsapp_id.to_owned());
        Ok(())
    }

    async fn whatsapp_identity(
        &self,
        account: AccountId,
        channel: ChannelId,
        phone: &Phone,
    ) -> Result<Option<WhatsAppIdentity>> {
        let s = self.lock();
        s.channel(account, channel)?;
        Ok(s.whatsapp_ids.get(&(channel, phone.clone())).cloned())
    }

    async fn phone_for_lid(&self, account: AccountId, channel: ChannelId, lid: &str) -> Result<Option<Phone>> {
        check_lid(lid)?;
        let s = self.lock();
        s.channel(account, channel)?;
        Ok(s.whatsapp_ids
            .iter()
            .find(|((c, _), i)| *c == channel && i.lid.as_deref() == Some(lid))
            .map(|((_, p), _)| p.clone()))
    }
}
