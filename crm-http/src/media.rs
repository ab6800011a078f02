//! The media library as the server runs it: the store the configuration
//! names (a local folder by default, S3 with the `s3` feature), the size
//! limits, the signer of the local store's URLs (served by
//! `GET /media/{token}`) and the default lifetime of signed URLs.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use crm_core::media::MediaLibrary;
use crm_core::{Crm, Error, MediaStore, MemoryMediaStore, Result, UrlSigner};

use crate::config::Config;
use crate::media_config::MediaBackend;

/// The path signed URLs of the local store are served under.
pub const MEDIA_PATH: &str = "/media";

/// What the media routes need.
#[derive(Debug, Clone)]
pub struct MediaServices {
    /// Files and records.
    pub library: MediaLibrary,
    /// Checks the tokens of `GET /media/{token}` (local and memory stores).
    pub signer: Option<UrlSigner>,
    /// Lifetime of a signed URL when the request names none.
    pub url_ttl: Duration,
}

fn random_secret() -> Result<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Config { message: format!("no randomness for a secret: {e}") })?;
    Ok(secret)
}

/// The secret of the local store's URLs: `CRM_MEDIA_URL_SECRET`; else
/// derived from the secret keys (`CRM_SECRET_KEYS` or the keys file), so
/// every process of an installation checks the others' URLs; else a random
/// one (then URLs work only on the process that signed them).
fn url_secret(config: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &config.media.url_secret {
        return Ok(s.expose_secret().as_bytes().to_vec());
    }
    let keys = match &config.secret_keys {
        Some(k) => Some(k.expose_secret().to_owned()),
        None => std::fs::read_to_string(config.secret_keys_path()).ok(),
    };
    match keys.filter(|k| !k.trim().is_empty()) {
        Some(k) => Ok(UrlSigner::derive_secret(k.trim().as_bytes())),
        None => {
            tracing::warn!(
                "no CRM_MEDIA_URL_SECRET and no secret keys: media URLs are signed with a random secret \
                 and work only on the process that made them"
            );
            random_secret()
        }
    }
}

impl MediaServices {
    /// In memory, with a random secret and URLs relative to the server (`/media/<token>`).
    pub fn memory(crm: &Crm) -> Self {
        let signer = random_secret().ok().and_then(|s| UrlSigner::new(&s, MEDIA_PATH).ok());
        let mut store = MemoryMediaStore::new();
        if let Some(s) = &signer {
            store = store.with_signer(s.clone());
        }
        Self { library: MediaLibrary::new(crm, Arc::new(store)), signer, url_ttl: Duration::from_secs(3600) }
    }

    /// From the configuration, or over `store` when one is given (it signs its own URLs).
    pub fn from_config(config: &Config, crm: &Crm, store: Option<Arc<dyn MediaStore>>) -> Result<Self> {
        let media = &config.media;
        let url_ttl = Duration::from_secs(media.url_ttl_secs);
        let limits = media.limits();
        if let Some(store) = store {
            let library = MediaLibrary::new(crm, store).with_limits(limits);
            return Ok(Self { library, signer: None, url_ttl });
        }
        let (store, signer): (Arc<dyn MediaStore>, Option<UrlSigner>) = match media.backend {
            MediaBackend::Local => {
                let secret = url_secret(config)?;
                let public = media.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
                let signer = UrlSigner::new(&secret, &format!("{}{MEDIA_PATH}", public.trim_end_matches('/')))?;
                let local = crm_storage::ObjectMediaStore::local(config.data_dir.join("media"))?;
                (Arc::new(local.with_signer(signer.clone())), Some(signer))
            }
            #[cfg(feature = "s3")]
            MediaBackend::S3 => {
                let settings = crm_storage::S3Settings {
                    bucket: media.s3_bucket.clone().unwrap_or_default(),
                    region: media.aws_region.clone().unwrap_or_default(),
                    endpoint: media.aws_endpoint_url.clone(),
                    access_key_id: media.aws_access_key_id.clone(),
                    secret_access_key: media.aws_secret_access_key.as_ref().map(|s| s.expose_secret().to_owned()),
                };
                (Arc::new(crm_storage::ObjectMediaStore::s3(&settings)?), None)
            }
            #[cfg(not(feature = "s3"))]
            MediaBackend::S3 => {
                return Err(Error::Config { message: "CRM_MEDIA_BACKEND=s3 needs the `s3` feature".into() });
            }
        };
        Ok(Self { library: MediaLibrary::new(crm, store).with_limits(limits), signer, url_ttl })
    }
}
