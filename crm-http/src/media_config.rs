//! The media store's settings (`[media]` in `crm.toml`; `CRM_MEDIA_*`,
//! `CRM_PUBLIC_URL` and the AWS names `S3_BUCKET_NAME`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` in the
//! environment).

use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;

use crm_core::media::MediaLimits;
use crm_core::{Error, Result};

/// Where media files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaBackend {
    /// Files under `<data_dir>/media` (the embedded default).
    #[default]
    Local,
    /// An S3 bucket (or an S3-compatible server); feature `s3`.
    S3,
}

/// Media settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// `local` (default) or `s3` (`CRM_MEDIA_BACKEND`).
    pub backend: MediaBackend,
    /// The server's public URL, the base of the signed URLs the local
    /// store's files are served under (`CRM_PUBLIC_URL`; default
    /// `http://<listen address>`): `<public url>/media/<token>`.
    pub public_url: Option<String>,
    /// The secret signed URLs of the local store are made with
    /// (`CRM_MEDIA_URL_SECRET`, at least 32 characters). Unset: a random
    /// one kept in `<data_dir>/media-url.secret` (created on first start),
    /// shared by the processes of one data folder.
    pub url_secret: Option<SecretString>,
    /// Seconds a signed URL lives by default (`CRM_MEDIA_URL_TTL_SECS`,
    /// default 3600; 1 to 604800).
    pub url_ttl_secs: u64,
    /// The bucket (`S3_BUCKET_NAME`), for `s3`.
    pub s3_bucket: Option<String>,
    /// The region (`AWS_REGION`, default `us-east-1`).
    pub aws_region: Option<String>,
    /// An S3-compatible server's URL (`AWS_ENDPOINT_URL`).
    pub aws_endpoint_url: Option<String>,
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    pub aws_access_key_id: Option<String>,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`; never logged).
    pub aws_secret_access_key: Option<SecretString>,
    /// Largest image in bytes (`CRM_MEDIA_MAX_IMAGE_BYTES`, default 5 MiB).
    pub max_image_bytes: u64,
    /// Largest audio file (`CRM_MEDIA_MAX_AUDIO_BYTES`, default 16 MiB).
    pub max_audio_bytes: u64,
    /// Largest video (`CRM_MEDIA_MAX_VIDEO_BYTES`, default 16 MiB).
    pub max_video_bytes: u64,
    /// Largest document (`CRM_MEDIA_MAX_DOCUMENT_BYTES`, default 100 MiB).
    pub max_document_bytes: u64,
    /// Days a stored file is kept (`CRM_MEDIA_RETENTION_DAYS`; 0, the
    /// default, keeps files until they are deleted).
    pub retention_days: u32,
}

impl fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaConfig")
            .field("backend", &self.backend)
            .field("public_url", &self.public_url)
            .field("url_secret", &self.url_secret.as_ref().map(|_| "[redacted]"))
            .field("s3_bucket", &self.s3_bucket)
            .field("aws_region", &self.aws_region)
            .field("aws_endpoint_url", &self.aws_endpoint_url)
            .field("aws_access_key_id", &self.aws_access_key_id.as_ref().map(|_| "[set]"))
            .field("aws_secret_access_key", &self.aws_secret_access_key.as_ref().map(|_| "[redacted]"))
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        let limits = MediaLimits::default();
        Self {
            backend: MediaBackend::Local,
            public_url: None,
            url_secret: None,
            url_ttl_secs: 3600,
            s3_bucket: None,
            aws_region: None,
            aws_endpoint_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            max_image_bytes: limits.image,
            max_audio_bytes: limits.audio,
            max_video_bytes: limits.video,
            max_document_bytes: limits.document,
            retention_days: 0,
        }
    }
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

/// Largest limit of one kind (1 GiB).
const MAX_LIMIT: u64 = 1024 * 1024 * 1024;

impl MediaConfig {
    /// Applies the variables `get` finds (module docs).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let num = |k: &str| -> Result<Option<u64>> {
            get(k).map(|v| v.trim().parse::<u64>().map_err(|_| bad(k, "expected a whole number"))).transpose()
        };
        if let Some(v) = get("CRM_MEDIA_BACKEND") {
            self.backend = match v.trim() {
                "local" => MediaBackend::Local,
                "s3" => MediaBackend::S3,
                _ => return Err(bad("CRM_MEDIA_BACKEND", "expected local or s3")),
            };
        }
        let text = |k: &str| get(k).map(|v| v.trim().to_owned());
        self.public_url = text("CRM_PUBLIC_URL").or(self.public_url.take());
        if let Some(v) = get("CRM_MEDIA_URL_SECRET") {
            self.url_secret = Some(SecretString::from(v));
        }
        self.s3_bucket = text("S3_BUCKET_NAME").or(self.s3_bucket.take());
        self.aws_region = text("AWS_REGION").or(self.aws_region.take());
        self.aws_endpoint_url = text("AWS_ENDPOINT_URL").or(self.aws_endpoint_url.take());
        self.aws_access_key_id = text("AWS_ACCESS_KEY_ID").or(self.aws_access_key_id.take());
        if let Some(v) = get("AWS_SECRET_ACCESS_KEY") {
            self.aws_secret_access_key = Some(SecretString::from(v.trim().to_owned()));
        }
        for (k, field) in [
            ("CRM_MEDIA_URL_TTL_SECS", &mut self.url_ttl_secs),
            ("CRM_MEDIA_MAX_IMAGE_BYTES", &mut self.max_image_bytes),
            ("CRM_MEDIA_MAX_AUDIO_BYTES", &mut self.max_audio_bytes),
            ("CRM_MEDIA_MAX_VIDEO_BYTES", &mut self.max_video_bytes),
            ("CRM_MEDIA_MAX_DOCUMENT_BYTES", &mut self.max_document_bytes),
        ] {
            if let Some(n) = num(k)? {
                *field = n;
            }
        }
        if let Some(n) = num("CRM_MEDIA_RETENTION_DAYS")? {
            self.retention_days = u32::try_from(n).map_err(|_| bad("CRM_MEDIA_RETENTION_DAYS", "too large"))?;
        }
        Ok(())
    }

    /// Checks the settings once at start.
    pub fn validate(&self) -> Result<()> {
        use secrecy::ExposeSecret;
        if !(1..=7 * 24 * 3600).contains(&self.url_ttl_secs) {
            return Err(bad("CRM_MEDIA_URL_TTL_SECS", "must be between 1 second and 7 days"));
        }
        for (k, v) in [
            ("CRM_MEDIA_MAX_IMAGE_BYTES", self.max_image_bytes),
            ("CRM_MEDIA_MAX_AUDIO_BYTES", self.max_audio_bytes),
            ("CRM_MEDIA_MAX_VIDEO_BYTES", self.max_video_bytes),
            ("CRM_MEDIA_MAX_DOCUMENT_BYTES", self.max_document_bytes),
        ] {
            if !(1..=MAX_LIMIT).contains(&v) {
                return Err(bad(k, "must be between 1 byte and 1 GiB"));
            }
        }
        if self.retention_days > 36_500 {
            return Err(bad("CRM_MEDIA_RETENTION_DAYS", "must be at most 36500"));
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad("CRM_PUBLIC_URL", "must be an http(s) URL"));
        }
        if self.url_secret.as_ref().is_some_and(|s| s.expose_secret().len() < 32) {
            return Err(bad("CRM_MEDIA_URL_SECRET", "must have at least 32 characters"));
        }
        if self.backend == MediaBackend::S3 && self.s3_bucket.as_deref().is_none_or(str::is_empty) {
            return Err(bad("S3_BUCKET_NAME", "required with CRM_MEDIA_BACKEND=s3"));
        }
        if self.aws_access_key_id.is_some() != self.aws_secret_access_key.is_some() {
            return Err(bad("AWS_ACCESS_KEY_ID", "set together with AWS_SECRET_ACCESS_KEY"));
        }
        Ok(())
    }

    /// The size limits.
    pub fn limits(&self) -> MediaLimits {
        MediaLimits {
            image: self.max_image_bytes,
            audio: self.max_audio_bytes,
            video: self.max_video_bytes,
            document: self.max_document_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn environment_and_checks() {
        let mut c = MediaConfig::default();
        c.apply_env(env(&[
            ("CRM_MEDIA_BACKEND", "s3"),
            ("S3_BUCKET_NAME", "media"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
            ("CRM_MEDIA_MAX_IMAGE_BYTES", "1000"),
            ("CRM_MEDIA_RETENTION_DAYS", "30"),
        ]))
        .expect("env");
        c.validate().expect("valid");
        assert_eq!((c.backend, c.s3_bucket.as_deref(), c.retention_days), (MediaBackend::S3, Some("media"), 30));
        assert_eq!(c.limits().image, 1000);
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("AKIDEXAMPLE"), "{shown}");

        let mut c = MediaConfig::default();
        c.apply_env(env(&[("CRM_MEDIA_BACKEND", "s3")])).expect("env");
        assert!(c.validate().expect_err("no bucket").to_string().contains("S3_BUCKET_NAME"));
        let mut c = MediaConfig::default();
        assert!(c.apply_env(env(&[("CRM_MEDIA_BACKEND", "ftp")])).is_err());
        c.apply_env(env(&[("CRM_MEDIA_URL_SECRET", "short")])).expect("env");
        assert!(c.validate().expect_err("short").to_string().contains("CRM_MEDIA_URL_SECRET"));
        let mut c = MediaConfig::default();
        c.apply_env(env(&[("CRM_MEDIA_MAX_VIDEO_BYTES", "0")])).expect("env");
        assert!(c.validate().is_err());
    }
}
