//! The application service: the flows a user calls, built from ports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

use crate::{
    Account, AccountId, ApiKey, ApiKeyId, ApiKeyToken, Clock, Contact, ContactId, ContactPatch, ContactQuery, Error,
    Event, EventId, EventType, ImportReport, Message, MessageContent, MessageError, MessageId, MessageStatus,
    Messenger, NewContact, NewTemplate, OutboundMessage, Page, PageRequest, Phone, RejectedRow, Result, Role,
    StatusUpdate, Store, SystemClock, Template, TemplateId, User, UserId, Variables,
};

/// How many times a read-modify-write on a contact is tried before giving up
/// on optimistic-concurrency races. A writer only loses a race when another
/// write committed in between, so with up to this many concurrent writers of
/// one contact every writer eventually succeeds.
const CONTACT_UPDATE_ATTEMPTS: usize = 16;

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

/// An inbound message as a provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Sender's phone (any form [`Phone::parse`] accepts, e.g. a WhatsApp id).
    pub from: String,
    /// Sender's WhatsApp id, when the provider gives one.
    pub whatsapp_id: Option<String>,
    /// Sender's profile name, used when the contact is created.
    pub profile_name: Option<String>,
    /// Provider id; a repeated id is recognised and not stored twice.
    pub provider_message_id: Option<String>,
    /// The body.
    pub content: MessageContent,
    /// When the contact sent it (defaults to now).
    pub sent_at: Option<DateTime<Utc>>,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The stored message (the earlier one, for a duplicate).
    pub message: Message,
    /// The contact it belongs to.
    pub contact: Contact,
    /// Whether the contact was created by this message.
    pub contact_created: bool,
    /// Whether this was a repeat of an already recorded provider id.
    pub duplicate: bool,
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

fn contact_summary(c: &Contact) -> serde_json::Value {
    json!({ "id": c.id, "name": c.name, "phone": c.phone })
}

fn status_payload(m: &Message) -> serde_json::Value {
    json!({
        "message_id": m.id,
        "contact_id": m.contact_id,
        "direction": m.direction,
        "status": m.status,
        "provider_message_id": m.provider_message_id,
        "error": m.error,
    })
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

    // ----- accounts, users, keys -------------------------------------------------

    /// Creates an account (`account.created`).
    pub async fn create_account(&self, name: &str) -> Result<Account> {
        let account = Account::new(name, self.now())?;
        let event = self.event(account.id, EventType::ACCOUNT_CREATED, &account);
        self.store.create_account(&account, &event).await?;
        Ok(account)
    }

    /// Creates a user with a hashed password (`user.created`, without the hash).
    /// [`Error::Conflict`] when the e-mail is registered.
    pub async fn create_user(
        &self,
        account: AccountId,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<User> {
        let user = User::new(account, email, name, role, password, self.now())?;
        let event = self.event(
            account,
            EventType::USER_CREATED,
            &json!({ "id": user.id, "email": user.email, "name": user.name, "role": user.role }),
        );
        self.store.create_user(&user, &event).await?;
        Ok(user)
    }

    /// Checks an e-mail and password; [`Error::Unauthorized`] on any mismatch
    /// (unknown e-mail and wrong password look the same).
    pub async fn verify_login(&self, email: &str, password: &str) -> Result<User> {
        let email = crate::Email::parse(email).map_err(|_| Error::Unauthorized)?;
        let user = self.store.find_user_by_email(&email).await?;
        match user {
            Some(u) if u.password_hash.verify(password) => Ok(u),
            Some(_) => Err(Error::Unauthorized),
            None => {
                // Spend the same time as a real check so timing does not reveal
                // which e-mails exist.
                let _ = crate::PasswordHash::from_phc(DUMMY_HASH).verify(password);
                Err(Error::Unauthorized)
            }
        }
    }

    /// Creates an API key; the token is returned once and never stored.
    pub async fn create_api_key(
        &self,
        account: AccountId,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, ApiKeyToken)> {
        let (key, token) = ApiKey::generate(account, name, role, expires_at, self.now())?;
        let event = self.event(account, EventType::API_KEY_CREATED, &key_payload(&key));
        self.store.create_api_key(&key, &event).await?;
        Ok((key, token))
    }

    /// Revokes a key (`api_key.revoked`).
    pub async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<ApiKey> {
        let now = self.now();
        let event = self.event(account, EventType::API_KEY_REVOKED, &json!({ "id": id, "revoked_at": now }));
        self.store.revoke_api_key(account, id, now, &event).await
    }

    /// The key a presented token belongs to, if it is valid now;
    /// [`Error::Unauthorized`] otherwise.
    pub async fn authenticate(&self, presented: &str) -> Result<ApiKey> {
        let prefix = ApiKeyToken::prefix_of(presented).ok_or(Error::Unauthorized)?;
        let key = self.store.find_api_key_by_prefix(prefix).await?.ok_or(Error::Unauthorized)?;
        if key.verify(presented, self.now()) { Ok(key) } else { Err(Error::Unauthorized) }
    }

    /// A user of the account.
    pub async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        self.store.get_user(account, id).await
    }

    // ----- contacts ----------------------------------------------------------------

    /// Creates a contact (`contact.created`). [`Error::Conflict`] when the phone
    /// (in any of its forms) already belongs to a contact of the account.
    pub async fn create_contact(&self, account: AccountId, input: NewContact) -> Result<Contact> {
        let contact = Contact::new(account, self.normalize(input)?, self.now())?;
        let event = self.event(account, EventType::CONTACT_CREATED, &contact);
        self.store.insert_contact(&contact, &event).await?;
        Ok(contact)
    }

    /// One contact.
    pub async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact> {
        self.store.get_contact(account, id).await
    }

    /// The contact with this phone, in any form [`Phone::parse`] accepts.
    pub async fn find_contact_by_phone(&self, account: AccountId, phone: &str) -> Result<Option<Contact>> {
        let phone = self.parse_phone(phone)?;
        self.store.find_contact_by_phone(account, &phone).await
    }

    /// A page of contacts.
    pub async fn list_contacts(&self, account: AccountId, query: &ContactQuery) -> Result<Page<Contact>> {
        self.store.list_contacts(account, query).await
    }

    /// Reads, changes with `f` and writes a contact, retrying when a concurrent
    /// writer got there first. `f` returns whether it changed anything; when it
    /// did not, nothing is written and no event is recorded.
    ///
    /// A lost race is recognised by the stored version having moved on, not by
    /// the wording of the store's error, so it works the same on every store;
    /// any other conflict (e.g. the new phone belongs to another contact) is
    /// returned as is.
    async fn modify_contact<F>(&self, account: AccountId, id: ContactId, mut f: F) -> Result<Contact>
    where
        F: FnMut(&mut Contact, DateTime<Utc>) -> Result<bool> + Send,
    {
        let mut current = self.store.get_contact(account, id).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut contact = current.clone();
            let now = self.now();
            if !f(&mut contact, now)? {
                return Ok(contact);
            }
            // The event carries the contact as the store will hold it.
            let mut stored = contact.clone();
            stored.version += 1;
            let event = self.event(account, EventType::CONTACT_UPDATED, &stored);
            match self.store.update_contact(&contact, &event).await {
                Err(e @ Error::Conflict { .. }) => {
                    let latest = self.store.get_contact(account, id).await?;
                    if latest.version == contact.version || attempt >= CONTACT_UPDATE_ATTEMPTS {
                        return Err(e);
                    }
                    current = latest;
                }
                other => return other,
            }
        }
    }

    /// Applies a partial update (`contact.updated` when anything changed).
    pub async fn update_contact(&self, account: AccountId, id: ContactId, mut patch: ContactPatch) -> Result<Contact> {
        if let Some(p) = &patch.phone
            && self.default_country.is_some()
        {
            patch.phone = Some(self.parse_phone(p)?.to_string());
        }
        self.modify_contact(account, id, |c, now| c.apply(patch.clone(), now)).await
    }

    /// Adds tags (`contact.updated` when any was new).
    pub async fn tag_contact(&self, account: AccountId, id: ContactId, tags: &[String]) -> Result<Contact> {
        self.modify_contact(account, id, |c, now| c.add_tags(tags, now)).await
    }

    /// Removes tags (`contact.updated` when any was present).
    pub async fn untag_contact(&self, account: AccountId, id: ContactId, tags: &[String]) -> Result<Contact> {
        self.modify_contact(account, id, |c, now| c.remove_tags(tags, now)).await
    }

    /// Deletes a contact and its thread (`contact.deleted`).
    pub async fn delete_contact(&self, account: AccountId, id: ContactId) -> Result<()> {
        let event = self.event(account, EventType::CONTACT_DELETED, &json!({ "id": id }));
        self.store.delete_contact(account, id, &event).await
    }

    /// Validates every row, then stores the valid ones in batches. Rows that
    /// fail validation or collide are reported with their index and reason.
    pub async fn import_contacts(&self, account: AccountId, rows: Vec<NewContact>) -> Result<ImportReport> {
        let now = self.now();
        let mut rejected = Vec::new();
        let mut contacts = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        // Repeats within the input are found here, where the input's indexes
        // are known: the store would name the repeated row by its position
        // among the valid rows only.
        let mut seen: HashMap<Phone, usize> = HashMap::with_capacity(rows.len());
        for (index, row) in rows.into_iter().enumerate() {
            match self.normalize(row).and_then(|row| Contact::new(account, row, now)) {
                Ok(c) => match seen.get(&c.phone) {
                    Some(first) => rejected.push(RejectedRow { index, reason: format!("phone repeats row {first}") }),
                    None => {
                        seen.insert(c.phone.clone(), index);
                        contacts.push(c);
                        positions.push(index);
                    }
                },
                Err(e) => rejected.push(RejectedRow { index, reason: e.to_string() }),
            }
        }
        let events: Vec<Event> =
            contacts.iter().map(|c| Event::new(account, EventType::CONTACT_CREATED, c, now)).collect();
        let mut report = self.store.import_contacts(account, &contacts, &events).await?;
        for r in &mut report.rejected {
            r.index = positions.get(r.index).copied().ok_or_else(|| Error::Storage {
                message: "the store reported an import row that was not given to it".into(),
                transient: false,
                source: None,
            })?;
        }
        report.rejected.extend(rejected);
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    // ----- messages ----------------------------------------------------------------

    /// Sends a message to a contact: validates it (content, capabilities,
    /// opt-in, the customer-service window), stores it as `queued`
    /// (`message.queued`), calls the messenger, then records `sent` with the
    /// provider id or `failed` with the provider's code and reason
    /// (`message.status_updated`). A provider failure is recorded on the
    /// message and returned as `Ok` with status `failed`; validation and
    /// storage problems are errors and nothing is sent.
    pub async fn send_message(
        &self,
        account: AccountId,
        contact_id: ContactId,
        content: MessageContent,
    ) -> Result<Message> {
        let contact = self.store.get_contact(account, contact_id).await?;
        let now = self.now();
        let message = Message::outbound(account, contact_id, content, now)?;
        self.check_sendable(&contact, &message, now)?;
        let event = self.event(account, EventType::MESSAGE_QUEUED, &message);
        self.store.insert_message(&message, &event).await?;

        let outbound = OutboundMessage {
            account_id: account,
            message_id: message.id,
            to: contact.phone.clone(),
            whatsapp_id: contact.whatsapp_id.clone(),
            content: message.content.clone(),
        };
        let sent = self.messenger.send(&outbound).await.and_then(|receipt| {
            let id = receipt.provider_message_id;
            if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
                return Err(Error::Provider {
                    provider: self.messenger.provider().to_owned().into(),
                    transient: false,
                    code: None,
                    message: "the provider answered with an unusable message id".into(),
                    source: None,
                });
            }
            Ok(id)
        });
        let update = match sent {
            Ok(id) => {
                StatusUpdate { status: MessageStatus::Sent, at: self.now(), provider_message_id: Some(id), error: None }
            }
            Err(e) => StatusUpdate {
                status: MessageStatus::Failed,
                at: self.now(),
                provider_message_id: None,
                error: Some(clean_error(match e {
                    Error::Provider { code, message, .. } => MessageError { code, reason: message },
                    other => MessageError { code: Some(other.kind().into()), reason: other.to_string() },
                })),
            },
        };
        let mut expected = message.clone();
        expected.apply_status(&update);
        let event = self.event(account, EventType::MESSAGE_STATUS_UPDATED, &status_payload(&expected));
        match self.store.update_message_status(account, message.id, &update, &event).await? {
            Some(m) => Ok(m),
            // A status webhook overtook us; what is stored is newer.
            None => self.store.get_message(account, message.id).await,
        }
    }

    fn check_sendable(&self, contact: &Contact, message: &Message, now: DateTime<Utc>) -> Result<()> {
        if contact.opt_in.status == crate::OptInStatus::OptedOut {
            return Err(Error::validation("contact.opt_in", "the contact opted out of messages"));
        }
        let caps = self.messenger.capabilities();
        let kind = message.kind();
        if !caps.kinds.contains(&kind) {
            return Err(Error::validation(
                "content.type",
                format!("{} cannot send {} messages", self.messenger.provider(), kind.as_str()),
            ));
        }
        if let Some(window) = caps.customer_service_window
            && kind != crate::MessageKind::Template
        {
            // A window too large to add to a time never closes.
            let open = contact.last_inbound_at.is_some_and(|t| {
                chrono::Duration::from_std(window)
                    .ok()
                    .and_then(|w| t.checked_add_signed(w))
                    .is_none_or(|closes| now < closes)
            });
            if !open {
                return Err(Error::validation(
                    "content.type",
                    format!(
                        "outside the customer-service window: the contact has not written in the last {}; send a template",
                        describe_window(window)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Renders template `name`/`language` with `variables` (strictly: every
    /// placeholder needs a value) and sends it. The contact's `name`,
    /// `first_name`, `phone` and `email` are available as variables unless the
    /// caller sets them.
    pub async fn send_template(
        &self,
        account: AccountId,
        contact_id: ContactId,
        name: &str,
        language: &str,
        variables: Variables,
    ) -> Result<Message> {
        let template = self.store.find_template(account, name, language).await?.ok_or(Error::not_found("template"))?;
        let contact = self.store.get_contact(account, contact_id).await?;
        let mut vars = contact_variables(&contact);
        vars.extend(variables);
        let rendered = template.render(&vars)?;
        let used: Variables = vars.into_iter().filter(|(k, _)| template.variables.contains(k)).collect();
        let content =
            MessageContent::Template { name: template.name, language: template.language, variables: used, rendered };
        self.send_message(account, contact_id, content).await
    }

    /// Records a message from a contact (`message.received`), creating the
    /// contact when the phone is new (`contact.created`, named after the
    /// profile name or the phone). A provider id seen before returns the stored
    /// message with `duplicate: true` and writes nothing.
    pub async fn record_inbound(&self, account: AccountId, inbound: InboundMessage) -> Result<Inbound> {
        let phone = Phone::parse(&inbound.from)?;
        let now = self.now();
        // Validate the message before anything is written, so a message that
        // cannot be stored does not leave a new contact behind.
        let mut message = Message::inbound(
            account,
            ContactId::new(),
            inbound.content,
            inbound.provider_message_id.clone(),
            inbound.sent_at.unwrap_or(now),
            now,
        )?;
        if let Some(pid) = &inbound.provider_message_id
            && let Some(existing) = self.store.find_message_by_provider_id(account, pid).await?
        {
            let contact = self.store.get_contact(account, existing.contact_id).await?;
            return Ok(Inbound { message: existing, contact, contact_created: false, duplicate: true });
        }
        let (contact, contact_created) = match self.store.find_contact_by_phone(account, &phone).await? {
            // Learn the WhatsApp id the provider uses for this contact (for
            // older Brazilian numbers it lacks the 9th digit, and replies must
            // go to it). Failing to record it must not lose the message.
            Some(c) => match inbound.whatsapp_id.as_deref().and_then(usable_whatsapp_id) {
                Some(wa) if c.whatsapp_id.as_deref() != Some(wa.as_str()) => {
                    let learned = self
                        .modify_contact(account, c.id, |c, now| {
                            if c.whatsapp_id.as_deref() == Some(wa.as_str()) {
                                return Ok(false);
                            }
                            c.whatsapp_id = Some(wa.clone());
                            c.updated_at = now;
                            Ok(true)
                        })
                        .await;
                    (learned.unwrap_or(c), false)
                }
                _ => (c, false),
            },
            None => {
                // What the provider reports about the sender must not stop the
                // message from being recorded: an unusable profile name falls
                // back to the phone, an unusable WhatsApp id is left out.
                let input = NewContact {
                    name: inbound
                        .profile_name
                        .as_deref()
                        .and_then(usable_profile_name)
                        .unwrap_or_else(|| phone.to_string()),
                    phone: phone.to_string(),
                    whatsapp_id: inbound.whatsapp_id.as_deref().and_then(usable_whatsapp_id),
                    ..Default::default()
                };
                match self.create_contact(account, input).await {
                    Ok(c) => (c, true),
                    // Created concurrently by another inbound message.
                    Err(Error::Conflict { .. }) => (
                        self.store.find_contact_by_phone(account, &phone).await?.ok_or(Error::not_found("contact"))?,
                        false,
                    ),
                    Err(e) => return Err(e),
                }
            }
        };
        message.contact_id = contact.id;
        let event = self.event(
            account,
            EventType::MESSAGE_RECEIVED,
            &json!({ "message": message, "contact": contact_summary(&contact) }),
        );
        match self.store.insert_message(&message, &event).await {
            Ok(()) => {
                let contact = self.store.get_contact(account, contact.id).await?;
                Ok(Inbound { message, contact, contact_created, duplicate: false })
            }
            Err(Error::Conflict { .. }) if inbound.provider_message_id.is_some() => {
                let pid = inbound.provider_message_id.as_deref().unwrap_or_default();
                let existing =
                    self.store.find_message_by_provider_id(account, pid).await?.ok_or(Error::not_found("message"))?;
                Ok(Inbound { message: existing, contact, contact_created, duplicate: true })
            }
            Err(e) => Err(e),
        }
    }

    /// Applies a provider status report to the message with this provider id
    /// (`message.status_updated` when it moved forward). Returns the message as
    /// stored afterwards — unchanged when the report was stale or a duplicate.
    /// [`Error::NotFound`] when no message has this provider id.
    pub async fn apply_status_update(
        &self,
        account: AccountId,
        provider_message_id: &str,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<MessageError>,
    ) -> Result<Message> {
        let message = self
            .store
            .find_message_by_provider_id(account, provider_message_id)
            .await?
            .ok_or(Error::not_found("message"))?;
        let error = error.map(clean_error);
        self.update_status(account, message, StatusUpdate { status, at, provider_message_id: None, error }).await
    }

    async fn update_status(&self, account: AccountId, message: Message, update: StatusUpdate) -> Result<Message> {
        if !message.status.can_become(update.status) {
            return Ok(message);
        }
        let mut expected = message.clone();
        expected.apply_status(&update);
        let event = self.event(account, EventType::MESSAGE_STATUS_UPDATED, &status_payload(&expected));
        match self.store.update_message_status(account, message.id, &update, &event).await? {
            Some(m) => Ok(m),
            None => self.store.get_message(account, message.id).await,
        }
    }

    /// One message.
    pub async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        self.store.get_message(account, id).await
    }

    /// A contact's thread, oldest first.
    pub async fn list_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<Message>> {
        self.store.list_thread(account, contact, page).await
    }

    // ----- templates ---------------------------------------------------------------

    /// Creates a template (`template.created`).
    pub async fn create_template(&self, account: AccountId, input: NewTemplate) -> Result<Template> {
        let t = Template::new(account, input, self.now())?;
        let event = self.event(account, EventType::TEMPLATE_CREATED, &t);
        self.store.insert_template(&t, &event).await?;
        Ok(t)
    }

    /// Replaces a template (`template.updated`).
    pub async fn update_template(&self, account: AccountId, id: TemplateId, input: NewTemplate) -> Result<Template> {
        let mut t = self.store.get_template(account, id).await?;
        t.replace(input, self.now())?;
        let event = self.event(account, EventType::TEMPLATE_UPDATED, &t);
        self.store.update_template(&t, &event).await?;
        Ok(t)
    }

    /// Deletes a template (`template.deleted`).
    pub async fn delete_template(&self, account: AccountId, id: TemplateId) -> Result<()> {
        let event = self.event(account, EventType::TEMPLATE_DELETED, &json!({ "id": id }));
        self.store.delete_template(account, id, &event).await
    }

    /// One template.
    pub async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        self.store.get_template(account, id).await
    }

    /// A page of templates.
    pub async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        self.store.list_templates(account, page).await
    }

    // ----- events ------------------------------------------------------------------

    /// The account's events after a cursor.
    pub async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        self.store.list_events(account, after, limit).await
    }
}

/// Strips control characters (other than line breaks) and bounds the length
/// of a provider's failure so any store can keep it.
fn clean_error(e: MessageError) -> MessageError {
    let tidy = |s: String| -> String { s.chars().filter(|c| !c.is_control() || *c == '\n').take(1000).collect() };
    MessageError { code: e.code.map(|c| tidy(c).chars().take(64).collect()), reason: tidy(e.reason) }
}

/// Variables every template can use for a contact: `name`, `first_name`,
/// `phone` and, when set, `email`.
pub fn contact_variables(contact: &Contact) -> Variables {
    let mut v = Variables::new();
    v.insert("name".into(), contact.name.clone());
    v.insert("first_name".into(), contact.name.split_whitespace().next().unwrap_or(&contact.name).to_owned());
    v.insert("phone".into(), contact.phone.to_string());
    if let Some(e) = &contact.email {
        v.insert("email".into(), e.to_string());
    }
    v
}

/// A profile name trimmed to what a contact name allows (control characters
/// dropped, at most 200 characters); `None` when nothing usable is left.
fn usable_profile_name(name: &str) -> Option<String> {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).collect();
    let cleaned: String = cleaned.trim().chars().take(200).collect();
    let cleaned = cleaned.trim_end();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// The WhatsApp id when it is one a contact may carry (1–64 characters, no
/// spaces or control characters).
fn usable_whatsapp_id(id: &str) -> Option<String> {
    let id = id.trim();
    let ok = !id.is_empty() && id.len() <= 64 && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| id.to_owned())
}

/// `24 hours`, `90 minutes`, `45 seconds`.
fn describe_window(window: std::time::Duration) -> String {
    let secs = window.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} hours", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

fn key_payload(k: &ApiKey) -> serde_json::Value {
    json!({ "id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "expires_at": k.expires_at })
}

/// A valid argon2id hash of a random string, verified against when a login
/// e-mail is unknown so both paths cost the same.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0+2mOwzvRkFsvQjPNYxUNb8z4KJqhKaFw3BfEGvbq0s";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_the_same_as_a_real_one() {
        // A malformed dummy would fail to parse and return at once, letting
        // login timing reveal which e-mails exist.
        let dummy = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real = crate::PasswordHash::hash("some password").expect("hashing works");
        let real = argon2::password_hash::phc::PasswordHash::new(real.as_phc()).expect("a real hash parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params.to_string(), real.params.to_string());
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[test]
    fn profile_names_and_whatsapp_ids_are_made_usable() {
        assert_eq!(usable_profile_name("  Ana\u{0}  ").as_deref(), Some("Ana"));
        assert_eq!(usable_profile_name(" \u{7} "), None);
        assert_eq!(usable_profile_name(&"é".repeat(300)).map(|n| n.chars().count()), Some(200));
        assert_eq!(usable_whatsapp_id(" 551187654321 ").as_deref(), Some("551187654321"));
        assert_eq!(usable_whatsapp_id("55 11"), None);
        assert_eq!(usable_whatsapp_id(&"1".repeat(65)), None);
        assert_eq!(describe_window(std::time::Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(describe_window(std::time::Duration::from_secs(90)), "90 seconds");
        assert_eq!(describe_window(std::time::Duration::from_secs(120)), "2 minutes");
    }
}
