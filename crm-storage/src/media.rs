//! [`ObjectMediaStore`]: the [`MediaStore`] port over `object_store` — a
//! local folder (the server's embedded default), S3 or an S3-compatible
//! server (feature `s3`), or memory.
//!
//! Writes stream: a file up to [`PART_SIZE`] is one `PUT`; a larger one is a
//! multipart upload of [`PART_SIZE`] parts (S3's minimum part size), so at
//! most a few parts are in memory whatever the file's size. A failed stream
//! aborts the upload (nothing is kept). The content type is kept as the
//! object's `Content-Type` (S3, memory) or, on the local folder (which has
//! no object attributes), in a small file beside it under `types/`.
//!
//! Signed URLs: S3 presigns a `GET` (SigV4 query parameters); the local
//! folder and memory sign with a [`UrlSigner`] whose tokens the HTTP server
//! checks and serves (`GET /media/{token}`).

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_core::ports::media::{check_media_key, check_ttl, media_key, media_prefix};
use crm_core::{
    AccountId, ByteStream, Error, Health, HealthCheck, ListedMedia, MediaDownload, MediaFile, MediaInfo, MediaStore,
    Result, SignedUrl, UrlSigner,
};

/// Size of each part of a multipart upload, and the largest file written in one `PUT` (5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts uploaded at once in a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

/// How signed URLs are made.
#[derive(Debug, Clone)]
enum Signing {
    /// Tokens served by crm (local folder, memory); none until one is given.
    Token(Option<UrlSigner>),
    /// S3's presigned URLs.
    #[cfg(feature = "s3")]
    S3(Arc<object_store::aws::AmazonS3>),
}

/// Media in an `object_store` backend (module docs).
#[derive(Debug, Clone)]
pub struct ObjectMediaStore {
    store: Arc<dyn ObjectStore>,
    /// Whether the content type is kept in a file under `types/` (the local
    /// folder has no attributes).
    sidecar_types: bool,
    signing: Signing,
    backend: &'static str,
    root: Option<PathBuf>,
}

/// Settings of an S3 (or S3-compatible) bucket.
#[cfg(feature = "s3")]
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` when empty).
    pub region: String,
    /// An S3-compatible server's URL (MinIO, moto, …); path-style requests
    /// are used, and `http://` is allowed, when set.
    pub endpoint: Option<String>,
    /// The access key id (else the environment's credential chain: instance
    /// or container metadata).
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
}

#[cfg(feature = "s3")]
impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "<set>"))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An `object_store` error as crm's: a missing object is [`Error::NotFound`];
/// anything else a transient [`Error::Storage`] naming `what`.
fn store_error(what: &'static str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found("media"),
        other => Error::storage(format!("media store: {what}"), true, other),
    }
}

/// The `object_store` path of a checked key (keys are made of `[a-z0-9._-/]`).
fn path_of(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|_| Error::not_found("media"))
}

impl ObjectMediaStore {
    fn over(store: Arc<dyn ObjectStore>, backend: &'static str, sidecar_types: bool, signing: Signing) -> Self {
        Self { store, sidecar_types, signing, backend, root: None }
    }

    /// Media as files under `root` (created on the first write).
    /// [`Error::Config`] when `root` cannot be made absolute.
    pub fn local(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let absolute = std::path::absolute(&root)
            .map_err(|e| Error::Config { message: format!("media folder {}: {e}", root.display()) })?;
        let prefix = Path::from_absolute_path(&absolute)
            .map_err(|e| Error::Config { message: format!("media folder {}: {e}", root.display()) })?;
        let fs = object_store::prefix::PrefixStore::new(object_store::local::LocalFileSystem::new(), prefix);
        let mut store = Self::over(Arc::new(fs), "local", true, Signing::Token(None));
        store.root = Some(absolute);
        Ok(store)
    }

    /// Media in process memory (`object_store`'s `InMemory`).
    pub fn memory() -> Self {
        Self::over(Arc::new(object_store::memory::InMemory::new()), "memory", false, Signing::Token(None))
    }

    /// Media in an S3 bucket. [`Error::Config`] when the settings do not
    /// make a client (no bucket, a malformed endpoint).
    #[cfg(feature = "s3")]
    pub fn s3(settings: &S3Settings) -> Result<Self> {
        use object_store::aws::AmazonS3Builder;
        if settings.bucket.trim().is_empty() {
            return Err(Error::Config { message: "S3_BUCKET_NAME: a bucket is required".into() });
        }
        let region = if settings.region.trim().is_empty() { "us-east-1" } else { settings.region.trim() };
        let mut builder = AmazonS3Builder::new().with_bucket_name(settings.bucket.trim()).with_region(region);
        if let Some(endpoint) = settings.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        // The builder's messages name settings, never the secret's value.
        let s3 = Arc::new(builder.build().map_err(|e| Error::Config { message: format!("S3 media store: {e}") })?);
        Ok(Self::over(s3.clone(), "s3", false, Signing::S3(s3)))
    }

    /// Signs URLs with `signer` (the local folder and memory; S3 presigns its own).
    pub fn with_signer(mut self, signer: UrlSigner) -> Self {
        if matches!(self.signing, Signing::Token(_)) {
            self.signing = Signing::Token(Some(signer));
        }
        self
    }

    /// The folder of a local store.
    pub fn root(&self) -> Option<&std::path::Path> {
        self.root.as_deref()
    }

    /// The backend's name: `local`, `memory` or `s3`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The underlying `object_store` (benchmarks compare against it).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn type_path(key: &str) -> Result<Path> {
        path_of(&format!("types/{key}"))
    }

    fn attributes(&self, content_type: &str) -> Attributes {
        let mut attributes = Attributes::new();
        if !self.sidecar_types {
            attributes.insert(Attribute::ContentType, AttributeValue::from(content_type.to_owned()));
        }
        attributes
    }

    /// Writes `body` to `path`: one `PUT` up to [`PART_SIZE`], a multipart upload beyond.
    async fn write(&self, path: &Path, content_type: &str, mut body: ByteStream) -> Result<()> {
        let mut first = Vec::new();
        let mut pending: Option<Bytes> = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if first.len() + chunk.len() > PART_SIZE {
                pending = Some(chunk);
                break;
            }
            first.extend_from_slice(&chunk);
        }
        let Some(pending) = pending else {
            let opts = PutOptions::from(self.attributes(content_type));
            self.store.put_opts(path, PutPayload::from(first), opts).await.map_err(|e| store_error("writing", e))?;
            return Ok(());
        };
        let opts = PutMultipartOptions::from(self.attributes(content_type));
        let upload =
            self.store.put_multipart_opts(path, opts).await.map_err(|e| store_error("starting an upload", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.put(Bytes::from(first));
        writer.put(pending);
        let outcome: Result<()> = async {
            while let Some(chunk) = body.next().await {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| store_error("uploading a part", e))?;
                writer.put(chunk?);
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(|e| store_error("completing an upload", e)),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "media store: aborting an upload failed");
                }
                Err(e)
            }
        }
    }

    async fn content_type(&self, key: &str, attributes: &Attributes) -> String {
        if self.sidecar_types {
            if let Ok(path) = Self::type_path(key)
                && let Ok(got) = self.store.get(&path).await
                && let Ok(bytes) = got.bytes().await
            {
                return String::from_utf8_lossy(&bytes).into_owned();
            }
        } else if let Some(v) = attributes.get(&Attribute::ContentType) {
            return v.as_ref().to_owned();
        }
        "application/octet-stream".to_owned()
    }
}

#[async_trait]
impl HealthCheck for ObjectMediaStore {
    fn name(&self) -> &str {
        "media"
    }

    /// A listing of one (empty) prefix answers within 2 seconds.
    async fn check(&self) -> Health {
        let start = Instant::now();
        let probe = async {
            let mut listing = self.store.list(Some(&Path::from("health")));
            listing.next().await.transpose().map(|_| ())
        };
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Ok(())) => Health::healthy(start.elapsed()),
            Ok(Err(e)) => Health::unhealthy(start.elapsed(), format!("media store ({}) failed: {e}", self.backend)),
            Err(_) => Health::unhealthy(start.elapsed(), format!("media store ({}) did not answer", self.backend)),
        }
    }
}

#[async_trait]
impl MediaStore for ObjectMediaStore {
    async fn put_stream(&self, account: AccountId, file: MediaFile<'_>, body: ByteStream) -> Result<String> {
        let key = media_key(account, &file);
        let path = path_of(&key)?;
        if self.sidecar_types {
            // The type first: a file is never visible without it.
            let types = Self::type_path(&key)?;
            let payload = PutPayload::from(file.content_type.as_bytes().to_vec());
            self.store.put(&types, payload).await.map_err(|e| store_error("writing the type", e))?;
            if let Err(e) = self.write(&path, file.content_type, body).await {
                self.store.delete(&types).await.ok();
                return Err(e);
            }
        } else {
            self.write(&path, file.content_type, body).await?;
        }
        Ok(key)
    }

    async fn get_stream(&self, account: AccountId, key: &str) -> Result<MediaDownload> {
        check_media_key(account, key)?;
        let got = self.store.get(&path_of(key)?).await.map_err(|e| store_error("reading", e))?;
        let content_type = self.content_type(key, &got.attributes).await;
        let info = MediaInfo { key: key.to_owned(), content_type, size: got.meta.size };
        let body = got.into_stream().map_err(|e| store_error("reading", e)).boxed();
        Ok(MediaDownload { info, body })
    }

    async fn head(&self, account: AccountId, key: &str) -> Result<MediaInfo> {
        check_media_key(account, key)?;
        let opts = GetOptions { head: true, ..GetOptions::default() };
        let got = self.store.get_opts(&path_of(key)?, opts).await.map_err(|e| store_error("reading", e))?;
        let content_type = self.content_type(key, &got.attributes).await;
        Ok(MediaInfo { key: key.to_owned(), content_type, size: got.meta.size })
    }

    async fn delete(&self, account: AccountId, key: &str) -> Result<()> {
        check_media_key(account, key)?;
        let gone = |r: object_store::Result<()>| match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("deleting", e)),
        };
        gone(self.store.delete(&path_of(key)?).await)?;
        if self.sidecar_types {
            gone(self.store.delete(&Self::type_path(key)?).await)?;
        }
        Ok(())
    }

    async fn list(&self, account: AccountId, folder: Option<&str>) -> Result<Vec<ListedMedia>> {
        let prefix = media_prefix(account, folder);
        let prefix = path_of(prefix.trim_end_matches('/'))?;
        let mut found: Vec<ListedMedia> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| ListedMedia { key: m.location.to_string(), size: m.size })
            .try_collect()
            .await
            .map_err(|e| store_error("listing", e))?;
        found.retain(|m| check_media_key(account, &m.key).is_ok());
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn signed_url(&self, account: AccountId, key: &str, ttl: Duration) -> Result<SignedUrl> {
        check_ttl(ttl)?;
        self.head(account, key).await?;
        match &self.signing {
            Signing::Token(Some(signer)) => Ok(signer.signed(key, ttl, chrono::Utc::now())),
            Signing::Token(None) => {
                Err(Error::Config { message: format!("the {} media store has no URL signer", self.backend) })
            }
            #[cfg(feature = "s3")]
            Signing::S3(s3) => {
                use object_store::signer::{Method, Signer};
                let now = chrono::Utc::now();
                let url =
                    s3.signed_url(Method::GET, &path_of(key)?, ttl).await.map_err(|e| store_error("signing", e))?;
                let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or_default();
                Ok(SignedUrl { url: url.to_string(), expires_at })
            }
        }
    }
}
