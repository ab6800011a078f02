//! [`MemoryMediaStore`]: media kept in process memory.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::media::{check_media_key, media_key};
use crate::{AccountId, Error, Health, HealthCheck, MediaStore, NewMedia, Result, StoredMedia};

/// Content type and bytes by key.
type Files = HashMap<String, (String, Vec<u8>)>;

/// Media kept in memory (tests, and servers that keep nothing on disk).
#[derive(Debug, Clone, Default)]
pub struct MemoryMediaStore {
    items: Arc<Mutex<Files>>,
}

impl MemoryMediaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many files it keeps.
    pub fn len(&self) -> usize {
        self.items.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether it keeps nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    async fn put(&self, account: AccountId, media: NewMedia<'_>) -> Result<String> {
        let key = media_key(account, &media);
        let mut items = self.items.lock().map_err(|_| Error::Storage {
            message: "media store lock poisoned".into(),
            transient: false,
            source: None,
        })?;
        items.insert(key.clone(), (media.content_type.to_owned(), media.bytes));
        Ok(key)
    }

    async fn get(&self, account: AccountId, key: &str) -> Result<StoredMedia> {
        check_media_key(account, key)?;
        let items = self.items.lock().map_err(|_| Error::Storage {
            message: "media store lock poisoned".into(),
            transient: false,
            source: None,
        })?;
        let (content_type, bytes) = items.get(key).ok_or(Error::not_found("media"))?;
        Ok(StoredMedia { key: key.to_owned(), content_type: content_type.clone(), bytes: bytes.clone() })
    }
}
