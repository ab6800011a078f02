//! [`MediaRecordStore`] for [`PgStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::{AccountId, ContactId, Error, Media, MediaId, MediaRecordStore, Result};

use super::{PgStore, commit};
use crate::error::db;
use crate::rows::media::{INSERT_MEDIA, STORED_BEFORE, UPDATE_MEDIA, media_row, size_value};

#[async_trait]
impl MediaRecordStore for PgStore {
    async fn insert_media(&self, m: &Media) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(INSERT_MEDIA)
            .bind(m.id.into_uuid())
            .bind(m.account_id.into_uuid())
            .bind(m.key.as_deref())
            .bind(&m.content_type)
            .bind(&m.filename)
            .bind(size_value(m))
            .bind(m.sha256.as_deref())
            .bind(m.origin.as_str())
            .bind(m.state.as_str())
            .bind(m.error.as_deref())
            .bind(m.message_id.map(|i| i.into_uuid()))
            .bind(m.contact_id.map(|i| i.into_uuid()))
            .bind(m.created_at)
            .bind(m.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("inserting media", e))?;
        commit(tx).await
    }

    async fn get_media(&self, account: AccountId, id: MediaId) -> Result<Media> {
        crate::rows::media::get_media(self, account, id).await
    }

    async fn update_media(&self, m: &Media) -> Result<Media> {
        let mut tx = self.write().await?;
        let row = sqlx::query(UPDATE_MEDIA)
            .bind(m.key.as_deref())
            .bind(&m.content_type)
            .bind(size_value(m))
            .bind(m.sha256.as_deref())
            .bind(m.state.as_str())
            .bind(m.error.as_deref())
            .bind(m.message_id.map(|i| i.into_uuid()))
            .bind(m.contact_id.map(|i| i.into_uuid()))
            .bind(m.updated_at)
            .bind(m.id.into_uuid())
            .bind(m.account_id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("updating media", e))?;
        commit(tx).await?;
        row.map(|r| media_row(&r)).transpose()?.ok_or(Error::not_found("media"))
    }

    async fn stored_media_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Media>> {
        let rows = sqlx::query(STORED_BEFORE)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("listing media to expire", e))?;
        rows.iter().map(media_row).collect()
    }

    async fn list_contact_media(&self, account: AccountId, contact: ContactId) -> Result<Vec<Media>> {
        crate::rows::media::list_contact_media(self, account, contact).await
    }
}
