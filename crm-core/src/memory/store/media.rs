//! [`MediaRecordStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::{AccountId, ContactId, Error, Media, MediaId, MediaRecordStore, MediaState, Result};

#[async_trait]
impl MediaRecordStore for MemoryStore {
    async fn insert_media(&self, media: &Media) -> Result<()> {
        let mut s = self.lock();
        if s.media.contains_key(&media.id) {
            return Err(Error::conflict("media", "id already exists"));
        }
        s.media.insert(media.id, media.clone());
        Ok(())
    }

    async fn get_media(&self, account: AccountId, id: MediaId) -> Result<Media> {
        self.lock().media.get(&id).filter(|m| m.account_id == account).cloned().ok_or(Error::not_found("media"))
    }

    async fn update_media(&self, media: &Media) -> Result<Media> {
        let mut s = self.lock();
        let stored =
            s.media.get_mut(&media.id).filter(|m| m.account_id == media.account_id).ok_or(Error::not_found("media"))?;
        *stored = Media {
            account_id: stored.account_id,
            origin: stored.origin,
            filename: stored.filename.clone(),
            created_at: stored.created_at,
            ..media.clone()
        };
        Ok(stored.clone())
    }

    async fn stored_media_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Media>> {
        let s = self.lock();
        let mut out: Vec<Media> =
            s.media.values().filter(|m| m.state == MediaState::Stored && m.created_at < before).cloned().collect();
        out.sort_by_key(|m| (m.created_at, m.id));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn list_contact_media(&self, account: AccountId, contact: ContactId) -> Result<Vec<Media>> {
        let s = self.lock();
        Ok(s.media.values().filter(|m| m.account_id == account && m.contact_id == Some(contact)).cloned().collect())
    }
}
