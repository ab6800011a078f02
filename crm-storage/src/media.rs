//! [`LocalMediaStore`]: media kept as files under a folder (the server's
//! data folder by default).

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crm_core::ports::media::{check_media_key, media_key};
use crm_core::{AccountId, Error, Health, HealthCheck, MediaStore, NewMedia, Result, StoredMedia};

/// Media as files: `<root>/<key>` (the key names the account, the folder and
/// a fresh UUID, see [`crm_core::ports::media`]), the content type beside it
/// in `<root>/<key>.type`. Files are written to a temporary name and renamed,
/// so a reader never sees half a file.
#[derive(Debug, Clone)]
pub struct LocalMediaStore {
    root: PathBuf,
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::storage(format!("media store: {what}"), true, e)
}

impl LocalMediaStore {
    /// Media under `root` (created when missing, on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder it writes under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl HealthCheck for LocalMediaStore {
    fn name(&self) -> &str {
        "media"
    }

    async fn check(&self) -> Health {
        let start = Instant::now();
        match tokio::fs::create_dir_all(&self.root).await {
            Ok(()) => Health::healthy(start.elapsed()),
            Err(e) => Health::unhealthy(start.elapsed(), format!("media folder not writable: {}", e.kind())),
        }
    }
}

#[async_trait]
impl MediaStore for LocalMediaStore {
    async fn put(&self, account: AccountId, media: NewMedia<'_>) -> Result<String> {
        let key = media_key(account, &media);
        let path = self.root.join(&key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| io_error("creating a folder", e))?;
        }
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, &media.bytes).await.map_err(|e| io_error("writing a file", e))?;
        let kind = PathBuf::from(format!("{}.type", path.display()));
        tokio::fs::write(&kind, media.content_type.as_bytes()).await.map_err(|e| io_error("writing a file", e))?;
        tokio::fs::rename(&partial, &path).await.map_err(|e| io_error("renaming a file", e))?;
        Ok(key)
    }

    async fn get(&self, account: AccountId, key: &str) -> Result<StoredMedia> {
        check_media_key(account, key)?;
        let path = self.root.join(key);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::not_found("media")),
            Err(e) => return Err(io_error("reading a file", e)),
        };
        let kind = PathBuf::from(format!("{}.type", path.display()));
        let content_type = tokio::fs::read_to_string(&kind).await.unwrap_or_else(|_| "application/octet-stream".into());
        Ok(StoredMedia { key: key.to_owned(), content_type, bytes })
    }
}
