//! [`MemoryMediaStore`]: media kept in process memory.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::ports::media::{
    ByteStream, ListedMedia, MediaDownload, MediaFile, MediaInfo, SignedUrl, UrlSigner, check_media_key, check_ttl,
    media_key, media_prefix, once,
};
use crate::{AccountId, Error, Health, HealthCheck, MediaStore, Result};

/// Content type and bytes by key.
type Files = BTreeMap<String, (String, Bytes)>;

/// Media kept in memory (tests, and servers that keep nothing on disk).
/// Signed URLs need a [`UrlSigner`] ([`MemoryMediaStore::with_signer`]).
#[derive(Debug, Clone, Default)]
pub struct MemoryMediaStore {
    items: Arc<Mutex<Files>>,
    signer: Option<UrlSigner>,
}

impl MemoryMediaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signs URLs with `signer` (served by whoever checks its tokens).
    pub fn with_signer(mut self, signer: UrlSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    fn items(&self) -> MutexGuard<'_, Files> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many files it keeps.
    pub fn len(&self) -> usize {
        self.items().len()
    }

    /// Whether it keeps nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn info(&self, account: AccountId, key: &str) -> Result<MediaInfo> {
        check_media_key(account, key)?;
        let items = self.items();
        let (content_type, bytes) = items.get(key).ok_or(Error::not_found("media"))?;
        Ok(MediaInfo { key: key.to_owned(), content_type: content_type.clone(), size: bytes.len() as u64 })
    }
}

#[async_trait]
impl HealthCheck for MemoryMediaStore {
    fn name(&self) -> &str {
        "media"
    }

    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}

#[async_trait]
impl MediaStore for MemoryMediaStore {
    async fn put_stream(&self, account: AccountId, file: MediaFile<'_>, mut body: ByteStream) -> Result<String> {
        let key = media_key(account, &file);
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        self.items().insert(key.clone(), (file.content_type.to_owned(), Bytes::from(bytes)));
        Ok(key)
    }

    async fn get_stream(&self, account: AccountId, key: &str) -> Result<MediaDownload> {
        let info = self.info(account, key)?;
        let bytes = self.items().get(key).map(|(_, b)| b.clone()).ok_or(Error::not_found("media"))?;
        Ok(MediaDownload { info, body: once(bytes) })
    }

    async fn head(&self, account: AccountId, key: &str) -> Result<MediaInfo> {
        self.info(account, key)
    }

    async fn delete(&self, account: AccountId, key: &str) -> Result<()> {
        check_media_key(account, key)?;
        self.items().remove(key);
        Ok(())
    }

    async fn list(&self, account: AccountId, folder: Option<&str>) -> Result<Vec<ListedMedia>> {
        let prefix = media_prefix(account, folder);
        let items = self.items();
        Ok(items
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, (_, b))| ListedMedia { key: k.clone(), size: b.len() as u64 })
            .collect())
    }

    async fn signed_url(&self, account: AccountId, key: &str, ttl: Duration) -> Result<SignedUrl> {
        check_ttl(ttl)?;
        self.info(account, key)?;
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| Error::Config { message: "the memory media store has no URL signer".into() })?;
        Ok(signer.signed(key, ttl, chrono::Utc::now()))
    }
}
