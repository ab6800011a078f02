//! The application service: the flows a user calls, built from ports.
//!
//! [`Crm`] and its builder live here with the helpers every flow shares; the
//! flows are grouped by capability, one `impl Crm` block per module:
//! `accounts` (accounts, users, keys, login), `contacts` (contacts, import),
//! `messages` (send, inbound, status updates, threads), `templates` and
//! `events`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

use crate::{AccountId, Clock, Error, Event, EventType, Messenger, NewContact, Phone, Result, Store, SystemClock};

mod accounts;
mod contacts;
mod events;
mod messages;
mod templates;

pub use messages::{Inbound, InboundMessage};

/// Builds a [`Crm`].
#[derive(Debug, Default)]
pub struct CrmBuilder {
    store: Option<Arc<dyn Store>>,
    messenger: Option<Arc<dyn Messenger>>,
    clock: Option<Arc<dyn Clock>>,
    default_country: Option<String>,
}

impl CrmBuilder {
    /// The store (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The messenger (required).
    pub fn messenger(mut self, messenger: Arc<dyn Messenger>) -> Self {
        self.messenger = Some(messenger);
        self
    }

    /// The clock (defaults to [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Country code (digits, e.g. `"55"`) for phones people type without
    /// one, such as `(11) 98765-4321`, in contacts created, updated, imported
    /// or looked up through the service. Unset, such input is read as an
    /// international number. Provider ids (inbound messages) are always
    /// international.
    pub fn default_country(mut self, country_code: impl Into<String>) -> Self {
        self.default_country = Some(country_code.into());
        self
    }

    /// [`Error::Config`] when the store or messenger is missing, or the
    /// default country is not 1 to 3 digits.
    pub fn build(self) -> Result<Crm> {
        if let Some(cc) = &self.default_country
            && (!(1..=3).contains(&cc.len()) || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0'))
        {
            return Err(Error::Config { message: format!("default country {cc:?} must be 1 to 3 digits") });
        }
        Ok(Crm {
            store: self.store.ok_or_else(|| Error::Config { message: "Crm needs a store".into() })?,
            messenger: self.messenger.ok_or_else(|| Error::Config { message: "Crm needs a messenger".into() })?,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            default_country: self.default_country,
        })
    }
}

/// The crm application service.
///
/// Every mutation goes through a store port together with its [`Event`], so
/// the change and the event commit or fail together.
#[derive(Debug, Clone)]
pub struct Crm {
    store: Arc<dyn Store>,
    messenger: Arc<dyn Messenger>,
    clock: Arc<dyn Clock>,
    default_country: Option<String>,
}

impl Crm {
    /// Starts a builder.
    pub fn builder() -> CrmBuilder {
        CrmBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The messenger.
    pub fn messenger(&self) -> &Arc<dyn Messenger> {
        &self.messenger
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Parses a phone typed by a person, applying the default country.
    fn parse_phone(&self, input: &str) -> Result<Phone> {
        match &self.default_country {
            Some(cc) => Phone::parse_with_default_country(input, cc),
            None => Phone::parse(input),
        }
    }

    fn normalize(&self, mut input: NewContact) -> Result<NewContact> {
        if self.default_country.is_some() {
            input.phone = self.parse_phone(&input.phone)?.to_string();
        }
        Ok(input)
    }

    fn event(&self, account: AccountId, kind: EventType, data: &impl Serialize) -> Event {
        Event::new(account, kind, data, self.now())
    }
}
