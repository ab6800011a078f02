//! The `ExternalCrm` port: another CRM (Salesforce) crm pushes its
//! contacts to and pulls changes from, on an account's OAuth grant.
//!
//! Sync runs as durable jobs ([`EXTERNAL_CRM_PUSH_JOB`],
//! [`EXTERNAL_CRM_PULL_JOB`]), so an outage delays it and loses nothing;
//! the external id of each pushed contact is kept with
//! [`OAuthStore::put_external_link`](crate::ports::oauth::OAuthStore::put_external_link).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

use crate::ports::oauth::ExternalLink;
use crate::{AccountId, Contact, Result};

#[allow(unused_imports)]
use crate::Error;

/// Job kind: push one contact (payload `{"contact_id"}`).
pub const EXTERNAL_CRM_PUSH_JOB: &str = "salesforce.push";

/// Job kind: pull records changed since a time (payload `{"since"}`).
pub const EXTERNAL_CRM_PULL_JOB: &str = "salesforce.pull";

/// Most records one pull returns.
pub const MAX_PULL: u32 = 200;

/// Where a pushed contact landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRecord {
    /// The object type (`Lead`, `Contact`).
    pub object: String,
    /// Its id.
    pub external_id: String,
    /// Whether the push created it (else it updated it).
    pub created: bool,
}

/// A record changed in the external CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExternalChange {
    /// The object type.
    pub object: String,
    /// Its id.
    pub external_id: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone, as the external CRM keeps it.
    pub phone: Option<String>,
    /// When it last changed there.
    pub modified_at: DateTime<Utc>,
}

/// An external CRM.
///
/// Contract (the Salesforce adapter's tests follow it):
/// - `push_contact` updates the record `link` names, else creates one
///   (a `Lead`, or a `Contact` for a customer) and says which.
/// - A refused session (401) is refreshed once through the account's
///   grant and the call retried; a second refusal is [`Error::Config`].
/// - API limits: throttling (`REQUEST_LIMIT_EXCEEDED`, 429) and outages
///   (5xx, timeouts) are [`Error::Provider`] with `transient: true` and a
///   `retry_after`; near its daily limit the adapter backs off before calling.
/// - Bad data the CRM refuses is [`Error::Validation`]; a record it no
///   longer has is [`Error::NotFound`].
#[async_trait]
pub trait ExternalCrm: Send + Sync + Debug + 'static {
    /// The system's name in [`ExternalLink::system`] (`salesforce`).
    fn system(&self) -> &str;

    /// Creates or updates `contact`'s record.
    async fn push_contact(
        &self,
        account: AccountId,
        contact: &Contact,
        link: Option<&ExternalLink>,
    ) -> Result<PushedRecord>;

    /// Records changed after `since`, oldest change first, at most `limit` (1..=[`MAX_PULL`]).
    async fn changed_since(&self, account: AccountId, since: DateTime<Utc>, limit: u32) -> Result<Vec<ExternalChange>>;
}
