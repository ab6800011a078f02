//! # crm-core
//!
//! The heart of crm, a toolkit for WhatsApp-first customer-engagement
//! backends: domain types validated at construction, the ports (object-safe
//! `#[async_trait]` traits used as `Arc<dyn Port>`) that adapters implement,
//! the [`Crm`] application service that runs the flows users call, in-memory
//! adapters good enough to run a server, and — with the `testing` feature —
//! the conformance suites every adapter must pass.
//!
//! `crm-core` does no I/O of its own: databases, HTTP clients and browsers
//! live in adapter crates that depend on it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use crm_core::{Crm, MemoryStore, RecordingMessenger, MessageContent, NewContact};
//! use std::sync::Arc;
//!
//! let messenger = Arc::new(RecordingMessenger::new());
//! let crm = Crm::builder()
//!     .store(Arc::new(MemoryStore::new()))
//!     .messenger(messenger.clone())
//!     .build()?;
//! let account = crm.create_account("Loja da Ana").await?;
//! let contact = crm.create_contact(account.id, NewContact {
//!     name: "João".into(),
//!     phone: "+55 11 98765-4321".into(),
//!     ..Default::default()
//! }).await?;
//! let message = crm.send_message(account.id, contact.id, MessageContent::text("Olá, João!")).await?;
//! assert_eq!(message.status, crm_core::MessageStatus::Sent);
//! assert_eq!(messenger.sent().len(), 1);
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

pub mod automation;
pub mod channels;
pub mod connections;
pub mod dashboard;
pub mod domain;
mod error;
pub mod governor;
mod id;
pub mod live;
pub mod media;
pub mod memory;
pub mod oauth;
#[cfg(feature = "openapi")]
mod openapi;
pub mod ports;
pub mod secrets;
mod service;
#[cfg(feature = "testing")]
pub mod testing;
pub mod workers;

pub use async_trait::async_trait;

pub use domain::account::{Account, Email, Role, User};
pub use domain::campaign::{
    Audience, Campaign, CampaignCounters, CampaignState, NewCampaign, PlanProgress, PlannedRecipient, Recipient,
    RecipientCounts, RecipientState, SkipReason,
};
pub use domain::channel::{
    Channel, ChannelKind, ChannelPatch, ChannelView, MAX_CHANNELS_PER_ACCOUNT, NewChannel, Pacing, Throttle, WarmupStep,
};
pub use domain::contact::{
    Contact, ContactPatch, ContactQuery, ContactSearch, LeadStage, MAX_METADATA_BYTES, MAX_TAGS, Metadata, NewContact,
    OptIn, OptInStatus, Page, PageRequest, Tag,
};
pub use domain::credentials::{ApiKey, ApiKeyToken, PasswordHash, Session, sha256_hex};
pub use domain::event::{Event, EventFilter, EventType};
pub use domain::media::{Media, MediaOrigin, MediaState};
pub use domain::message::{
    Attachment, AttachmentState, Direction, Fallback, FallbackTemplate, Interactive, ListRow, ListSection,
    MAX_TEXT_LEN, MAX_UNSUPPORTED_PAYLOAD_BYTES, MediaKind, MediaRef, Message, MessageContent, MessageError,
    MessageKind, MessageStatus, Pricing, ReplyButton, ReplyTo, StatusUpdate,
};
pub use domain::phone::Phone;
pub use domain::sequence::{
    Enrolment, EnrolmentState, NewSequence, SendWindow, Sequence, SequenceStep, StepAction, StopReason,
};
pub use domain::template::{
    MAX_RENDER_PREVIEW, MAX_TEMPLATE_BODY, NewTemplate, ParameterKind, Template, TemplateCategory, TemplateParameter,
    Variables, is_component_variable, render_lenient, render_strict,
};
pub use domain::webhook::{
    DeliveryProgress, DeliveryQuery, DeliveryStatus, EndpointView, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
};
pub use error::{BoxError, Error, Result};
pub use governor::{GovernedGroups, GovernedMessenger, Governor, GovernorConfig, Paced, Verdict};
pub use id::AiDraftId;
pub use id::GroupId;
pub use id::MediaId;
pub use id::{
    AccountId, ApiKeyId, CampaignId, ChannelId, ContactId, EventId, JobId, MessageId, SessionId, TemplateId, UserId,
};
pub use id::{AutomationId, AutomationRunId};
pub use id::{EnrolmentId, SequenceId};
pub use id::{WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId};
pub use memory::MemoryGroups;
pub use memory::{GcraLimiter, MemoryMediaStore, MemoryStore, RecordingFactory, RecordingMessenger, SentMessage};
pub use ports::assistant::{Assistant, AssistantStore, DraftChunk, DraftStream};
pub use ports::automations::AutomationStore;
pub use ports::billing::{Billing, BillingStore};
pub use ports::campaigns::CampaignStore;
pub use ports::channels::{ChannelStore, MessengerFactory};
pub use ports::clock::{Clock, ManualClock, SystemClock};
pub use ports::connections::ConnectionStore;
pub use ports::external_crm::ExternalCrm;
pub use ports::groups::{GroupManager, GroupStore};
pub use ports::health::{Health, HealthCheck, HealthStatus};
pub use ports::idempotency::{IdempotencyStore, StoredIdempotencyKey};
pub use ports::inbox::InboxStore;
pub use ports::jobs::{Job, JobClaim, JobQuery, JobState, JobStore, JobToken, QueueStats};
pub use ports::media::{
    ByteStream, ListedMedia, MediaDownload, MediaFile, MediaInfo, MediaRecordStore, MediaStore, NewMedia, SignedUrl,
    StoredMedia, UrlSigner,
};
pub use ports::messenger::{Capabilities, Messenger, OutboundMessage, ReadReceipt, SendReceipt};
pub use ports::oauth::{AccessTokens, OAuthClient, OAuthGrant, OAuthProvider, OAuthStore};
pub use ports::rate_limiter::{Decision, Quota, RateLimiter};
pub use ports::sequences::{Enrolling, EnrolmentQuery, SequenceStore};
pub use ports::store::{
    AccountStore, Claim, ClaimToken, ContactStore, DeadLetter, EventStore, FallbackSwap, ImportReport,
    MessageAnnotation, MessageStore, RejectedRow, SessionStore, Store, TemplateStore,
};
pub use ports::webhooks::WebhookStore;
pub use ports::whatsapp_ids::{WhatsAppIdStore, WhatsAppIdentity};
pub use service::{
    CAMPAIGN_CONSUMER, CAMPAIGN_JOB, CampaignRunner, CampaignTracker, CampaignView, ChannelWindow, ContactWindows, Crm,
    CrmBuilder, DISPATCH_CONSUMER, Dispatcher, Inbound, InboundMessage, MAX_IMPORT_BATCH, OpenThread, ProviderStatus,
    Queued, Quote, SESSION_MINTED_KEY_MAX_DAYS, SendRequest, check_template_variables,
};
pub use service::{
    EnrolResult, SEQUENCE_CONSUMER, SEQUENCE_ENROL_JOB, SEQUENCE_STEP_JOB, SEQUENCE_STOP_JOB, SequenceEnroller,
    SequenceRunner, SequenceStopper, SequenceWatcher,
};
pub use service::{InboundGroupMessage, ParticipantChange};
