//! [`CloudApiMessenger`]: sends through one Cloud API phone number, and
//! [`CloudApiFactory`], which builds one per `whatsapp-cloud` channel.

use async_trait::async_trait;
use crm_core::secrets::Credentials;
use crm_core::{
    Capabilities, Channel, Error, Health, HealthCheck, MessageKind, Messenger, MessengerFactory, OutboundMessage,
    Result, SendReceipt,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::graph::{self, Class, SendResponse};
use crate::payload::{self, BodyOptions};
use crate::settings::{CloudCredentials, CloudSettings};
use crate::{KIND, PROVIDER};

/// Sustained messages per second one Cloud API number accepts (Meta's default throughput).
pub const MESSAGES_PER_SECOND: u32 = 80;

/// Meta's pair rate: about one message to the same user every 6 seconds.
pub const PAIR_INTERVAL: Duration = Duration::from_secs(6);

/// The customer-service window: free-form messages only within 24 hours of
/// the contact's last message.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Largest Graph answer read; anything longer is cut and treated as unreadable.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How long a health probe may take at most.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends messages through one WhatsApp Cloud API phone number.
///
/// Built with [`CloudApiMessenger::builder`] (library use) or by
/// [`CloudApiFactory`] from a channel. Errors are mapped as
/// [`graph::Failure::into_error`] describes; the access token never appears
/// in `Debug` output, logs or errors.
pub struct CloudApiMessenger {
    client: reqwest::Client,
    phone_number_id: String,
    /// `<base>/<version>`, without a trailing slash.
    root: String,
    token: SecretString,
    link_preview: bool,
    timeout: Duration,
    /// Set when Meta refused the token; the health check reports it.
    refused: Mutex<Option<String>>,
    /// Where `media:<id>` locations are read from (see [`crate::media`]).
    media: Option<crm_core::media::MediaLibrary>,
}

impl std::fmt::Debug for CloudApiMessenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudApiMessenger")
            .field("phone_number_id", &self.phone_number_id)
            .field("root", &self.root)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Builds a [`CloudApiMessenger`].
///
/// ```
/// let messenger = crm_whatsapp::CloudApiMessenger::builder()
///     .phone_number_id("106540352242922")
///     .access_token("EAAG…")
///     .base_url("http://127.0.0.1:9") // a mock; default https://graph.facebook.com
///     .build()?;
/// assert!(!format!("{messenger:?}").contains("EAAG"));
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Default)]
pub struct CloudApiBuilder {
    phone_number_id: Option<String>,
    token: Option<SecretString>,
    settings: CloudSettings,
    client: Option<reqwest::Client>,
    media: Option<crm_core::media::MediaLibrary>,
}

impl std::fmt::Debug for CloudApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudApiBuilder").field("phone_number_id", &self.phone_number_id).finish_non_exhaustive()
    }
}

impl CloudApiBuilder {
    /// The phone number id (Meta's app dashboard, "API setup").
    pub fn phone_number_id(mut self, id: impl Into<String>) -> Self {
        self.phone_number_id = Some(id.into());
        self
    }

    /// The access token.
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(SecretString::from(token.into()));
        self
    }

    /// The Graph API base URL (default [`DEFAULT_BASE_URL`](crate::settings::DEFAULT_BASE_URL)).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.settings.base_url = url.into();
        self
    }

    /// The Graph API version (default [`DEFAULT_API_VERSION`](crate::settings::DEFAULT_API_VERSION)).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.settings.api_version = version.into();
        self
    }

    /// How long one call may take (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout_secs = Some(timeout.as_secs().max(1));
        self
    }

    /// Ask for link previews in text messages.
    pub fn link_preview(mut self, on: bool) -> Self {
        self.settings.link_preview = on;
        self
    }

    /// All settings at once (a channel's).
    pub fn settings(mut self, settings: CloudSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Share an HTTP client (its connection pool) between messengers.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The media library `media:<media id>` locations are read from: such a
    /// file is uploaded to Meta (`POST /{phone-number-id}/media`) and sent
    /// by the id Meta gives it.
    pub fn media_library(mut self, library: crm_core::media::MediaLibrary) -> Self {
        self.media = Some(library);
        self
    }

    /// The messenger. [`Error::Validation`] when the phone number id or the
    /// token is missing or a setting is invalid; [`Error::Config`] when the
    /// HTTP client cannot be built.
    pub fn build(self) -> Result<CloudApiMessenger> {
        let phone_number_id = self
            .phone_number_id
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Error::validation("provider_id", "the phone number id must be digits"))?;
        let token = self
            .token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| Error::validation("credentials.access_token", "required"))?;
        self.settings.validate()?;
        let client = match self.client {
            Some(c) => c,
            None => http_client()?,
        };
        let root = format!("{}/{}", self.settings.base_url.trim_end_matches('/'), self.settings.api_version);
        Ok(CloudApiMessenger {
            client,
            phone_number_id,
            root,
            token,
            link_preview: self.settings.link_preview,
            timeout: self.settings.timeout(),
            refused: Mutex::new(None),
            media: self.media,
        })
    }
}

/// The HTTP client messengers share by default.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("crm-whatsapp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Config { message: format!("cannot build the HTTP client: {e}") })
}

pub(crate) fn unreachable(e: reqwest::Error, timeout: Duration) -> Error {
    let message = if e.is_timeout() {
        format!("the Graph API did not answer within {} s", timeout.as_secs())
    } else {
        "could not reach the Graph API".to_owned()
    };
    Error::Provider {
        provider: PROVIDER.into(),
        transient: true,
        code: Some("unreachable".into()),
        message,
        retry_after: None,
        source: Some(Box::new(e.without_url())),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(3600)))
}

impl CloudApiMessenger {
    /// A builder.
    pub fn builder() -> CloudApiBuilder {
        CloudApiBuilder::default()
    }

    /// The messenger of a `whatsapp-cloud` channel, from its opened credentials.
    pub fn from_channel(channel: &Channel, credentials: &Credentials, client: reqwest::Client) -> Result<Self> {
        crate::settings::validate_channel(channel, Some(credentials))?;
        let settings = CloudSettings::from_channel(channel)?;
        let creds = CloudCredentials::from_credentials(credentials)?;
        let mut b = Self::builder().settings(settings).client(client);
        b.phone_number_id = channel.provider_id.clone();
        b.token = Some(creds.access_token);
        b.build()
    }

    /// The phone number id it sends from.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    fn messages_url(&self) -> String {
        format!("{}/{}/messages", self.root, self.phone_number_id)
    }

    /// The media library `media:<id>` locations are read from, when it has one.
    pub(crate) fn media_library(&self) -> Option<&crm_core::media::MediaLibrary> {
        self.media.as_ref()
    }

    /// `<base>/<version>`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The shared HTTP client.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// One Graph call; the answer body when 2xx, else crm's error for it.
    pub(crate) async fn call(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        let response = self.answer(request).await?;
        read_bounded(response).await.map_err(|e| unreachable(e, self.timeout))
    }

    /// Sends `request` with the token and the timeout; the response when
    /// 2xx (its body unread), else crm's error for it.
    pub(crate) async fn answer(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| unreachable(e, self.timeout))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        let body = read_bounded(response).await.map_err(|e| unreachable(e, self.timeout))?;
        let failure = graph::classify(status, wait, &body, self.token.expose_secret());
        match failure.class {
            Class::Configuration => {
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure.reason.clone());
                tracing::warn!(phone_number_id = %self.phone_number_id, code = ?failure.code, "Meta refused the channel's access token");
            }
            Class::Throttled => {
                tracing::info!(phone_number_id = %self.phone_number_id, code = ?failure.code, "Meta asked to slow down");
            }
            _ => {}
        }
        Err(failure.into_error())
    }

    /// How long one call may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Marks an inbound message (by its `wamid`) as read: the contact sees
    /// blue ticks.
    pub async fn mark_read(&self, provider_message_id: &str) -> Result<()> {
        let body = serde_json::json!({
            "messaging_product": "whatsapp", "status": "read", "message_id": provider_message_id
        });
        self.call(self.client.post(self.messages_url()).json(&body)).await.map(|_| ())
    }

    /// Sends with extra options (a reply's context, a link preview).
    pub async fn send_with(&self, message: &OutboundMessage, options: &BodyOptions) -> Result<SendReceipt> {
        let body = payload::message_body(message, options)?;
        let answer = self.call(self.client.post(self.messages_url()).json(&body)).await?;
        let parsed: SendResponse = serde_json::from_slice(&answer).map_err(|_| malformed())?;
        let id = parsed.messages.into_iter().next().map(|m| m.id).filter(|id| !id.is_empty()).ok_or_else(malformed)?;
        Ok(SendReceipt { provider_message_id: id })
    }
}

/// Meta accepted (2xx) but the answer names no message: sending again might
/// deliver twice, so it is not retried.
fn malformed() -> Error {
    Error::Provider {
        provider: PROVIDER.into(),
        transient: false,
        code: Some("malformed_response".into()),
        message: "the Graph API accepted the request but its answer names no message id".into(),
        retry_after: None,
        source: None,
    }
}

async fn read_bounded(mut response: reqwest::Response) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

#[async_trait]
impl HealthCheck for CloudApiMessenger {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Reads the phone number's name and quality from the Graph API: healthy
    /// when the token and number work, unhealthy (configuration error) when
    /// Meta refuses the token, degraded when the Graph API is unreachable.
    async fn check(&self) -> Health {
        let start = Instant::now();
        let url =
            format!("{}/{}?fields=display_phone_number,verified_name,quality_rating", self.root, self.phone_number_id);
        let request = self.client.get(url).timeout(self.timeout.min(HEALTH_TIMEOUT));
        let response = request.bearer_auth(self.token.expose_secret()).send().await;
        let latency = start.elapsed();
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Health::degraded(latency, "the Graph API did not answer in time"),
            Err(_) => return Health::degraded(latency, "could not reach the Graph API"),
        };
        let status = response.status().as_u16();
        let body = read_bounded(response).await.unwrap_or_default();
        if (200..300).contains(&status) {
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Health::healthy(latency);
        }
        let failure = graph::classify(status, None, &body, self.token.expose_secret());
        let code = failure.code.map(|c| format!(" {c}")).unwrap_or_default();
        match failure.class {
            Class::Configuration => Health::unhealthy(
                latency,
                format!("configuration error: Meta refused the access token{code}; update the channel's credentials"),
            ),
            Class::Permanent if status == 404 || status == 400 => Health::unhealthy(
                latency,
                format!("configuration error: Meta does not know this phone number id{code}"),
            ),
            _ => Health::degraded(latency, format!("the Graph API answered HTTP {status}{code}")),
        }
    }
}

#[async_trait]
impl Messenger for CloudApiMessenger {
    fn provider(&self) -> &str {
        PROVIDER
    }

    /// Every kind crm models, the 24-hour window, 80 messages a second and
    /// the 6-second pair rate.
    fn capabilities(&self) -> Capabilities {
        use MessageKind::*;
        Capabilities {
            kinds: [Text, Image, Audio, Video, Document, Sticker, Location, Contacts, Reaction, Interactive, Template]
                .into_iter()
                .collect(),
            customer_service_window: Some(WINDOW),
            max_messages_per_second: Some(MESSAGES_PER_SECOND),
            pair_interval: Some(PAIR_INTERVAL),
            groups: false,
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let options = BodyOptions { link_preview: self.link_preview, reply_to: message.reply_to.clone() };
        match crate::media::stored_media(&message.content) {
            Some(id) => {
                let resolved = self.with_uploaded_media(message, id?).await?;
                self.send_with(&resolved, &options).await
            }
            None => self.send_with(message, &options).await,
        }
    }

    /// [`CloudGroups`](crate::groups::CloudGroups): every group operation
    /// is unsupported on the Cloud API.
    fn group_manager(self: Arc<Self>) -> Option<Arc<dyn crm_core::GroupManager>> {
        Some(Arc::new(crate::groups::CloudGroups))
    }

    /// `POST /{phone-number-id}/messages` with `status: read` for the message.
    async fn mark_read(&self, receipt: &crm_core::ReadReceipt) -> Result<()> {
        CloudApiMessenger::mark_read(self, &receipt.provider_message_id).await
    }
}

/// The [`MessengerFactory`] of the `whatsapp-cloud` channel kind: the
/// channel's `provider_id` is the phone number id, its settings a
/// [`CloudSettings`] object, its credentials `access_token` (required),
/// `app_secret` and `verify_token` (for webhooks).
#[derive(Debug, Clone)]
pub struct CloudApiFactory {
    client: reqwest::Client,
    media: Arc<std::sync::OnceLock<crm_core::media::MediaLibrary>>,
}

impl CloudApiFactory {
    /// A factory whose messengers share one HTTP client.
    pub fn new() -> Result<Self> {
        Ok(Self::with_client(http_client()?))
    }

    /// A factory over a given client.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client, media: Arc::default() }
    }

    /// Gives the messengers it builds (and its clones) the media library
    /// `media:<id>` locations are read from (set once, after the service
    /// the library needs is built); false when one was set already.
    pub fn set_media_library(&self, library: crm_core::media::MediaLibrary) -> bool {
        self.media.set(library).is_ok()
    }
}

#[async_trait]
impl MessengerFactory for CloudApiFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn validate(&self, channel: &Channel, credentials: Option<&Credentials>) -> Result<()> {
        crate::settings::validate_channel(channel, credentials)
    }

    async fn build(&self, channel: &Channel, credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        let mut messenger = CloudApiMessenger::from_channel(channel, &credentials, self.client.clone())?;
        messenger.media = self.media.get().cloned();
        Ok(Arc::new(messenger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_TIMEOUT};

    #[test]
    fn builder_refuses_missing_parts() {
        assert!(CloudApiMessenger::builder().access_token("t").build().is_err());
        assert!(CloudApiMessenger::builder().phone_number_id("1").build().is_err());
        assert!(CloudApiMessenger::builder().phone_number_id("1").access_token("t").base_url("nope").build().is_err());
        let m = CloudApiMessenger::builder().phone_number_id("1").access_token("t").build().unwrap();
        assert_eq!(m.root, format!("{DEFAULT_BASE_URL}/{DEFAULT_API_VERSION}"));
        assert_eq!(m.timeout, DEFAULT_TIMEOUT);
        let caps = m.capabilities();
        assert_eq!(caps.max_messages_per_second, Some(80));
        assert_eq!(caps.customer_service_window, Some(WINDOW));
        assert_eq!(caps.kinds.len(), 11);
    }
}
