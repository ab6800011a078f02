//! The SMTP adapter of the [`Mailer`] port (lettre over tokio), for
//! self-hosters with their own mail server.
//!
//! The message is `multipart/mixed`: a `multipart/alternative` (text, then
//! HTML) or a plain-text part, then one part per attachment. `Bcc`
//! recipients get the mail without a `Bcc` header.
//!
//! Errors: an authentication refusal (530, 534, 535) → [`Error::Config`];
//! a transient SMTP reply (4xx), a lost connection, a TLS failure or a
//! timeout → transient [`Error::Provider`]; a permanent reply (5xx) →
//! permanent, with the SMTP code. The password never appears in errors or
//! `Debug`.

use async_trait::async_trait;
use crm_core::domain::connection::Connection;
use crm_core::ports::connectors::{
    Capability, Connector, ConnectorFactory, Email, Mailbox, Mailer, SentMail, check_email,
};
use crm_core::secrets::Credentials;
use crm_core::{Error, Result};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox as LMailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials as SmtpCredentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const PROVIDER: &str = "smtp";

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS, required (port 587).
    StartTls,
    /// None: plain text. Only for a relay on the same host or network.
    Plain,
}

impl SmtpSecurity {
    /// Parses `tls`, `starttls` or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "tls" => Self::Tls,
            "starttls" => Self::StartTls,
            "none" => Self::Plain,
            _ => return Err(Error::validation("settings.security", "must be tls, starttls or none")),
        })
    }
}

/// An SMTP server. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    from: Option<Mailbox>,
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

fn address(m: &Mailbox, field: &str) -> Result<LMailbox> {
    let email: Address = m
        .email
        .parse()
        .map_err(|_| Error::validation(field.to_owned(), "must be an e-mail address like name@example.com"))?;
    Ok(LMailbox::new(m.name.clone(), email))
}

impl Smtp {
    /// A mailer for `host:port` secured by `security`, logging in with
    /// `login` (user, password) when given, sending as `from` when an
    /// e-mail names no sender. [`Error::Config`] for a bad host.
    pub fn new(
        host: &str,
        port: u16,
        security: SmtpSecurity,
        login: Option<(String, String)>,
        from: Option<Mailbox>,
        timeout: Duration,
    ) -> Result<Self> {
        let bad = |e: lettre::transport::smtp::Error| Error::Config { message: format!("bad SMTP server: {e}") };
        let mut b = match security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(bad)?,
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(bad)?,
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        b = b.port(port).timeout(Some(timeout));
        if let Some((user, password)) = login {
            b = b.credentials(SmtpCredentials::new(user, password));
        }
        Ok(Self { transport: b.build(), host: host.to_owned(), port, from })
    }

    /// The MIME message of `email`.
    pub fn message(email: &Email) -> Result<Message> {
        let mut b = Message::builder().from(address(&email.from, "from")?).subject(email.subject.clone());
        for m in &email.to {
            b = b.to(address(m, "to")?);
        }
        for m in &email.cc {
            b = b.cc(address(m, "cc")?);
        }
        for m in &email.bcc {
            b = b.bcc(address(m, "bcc")?);
        }
        if let Some(r) = &email.reply_to {
            b = b.reply_to(address(r, "reply_to")?);
        }
        let mut body = match &email.html {
            Some(html) => {
                MultiPart::mixed().multipart(MultiPart::alternative_plain_html(email.text.clone(), html.clone()))
            }
            None => MultiPart::mixed().singlepart(SinglePart::plain(email.text.clone())),
        };
        for a in &email.attachments {
            let ct = ContentType::parse(&a.content_type)
                .map_err(|_| Error::validation("attachments", format!("{} has a bad content type", a.filename)))?;
            body = body.singlepart(Attachment::new(a.filename.clone()).body(a.content.clone(), ct));
        }
        b.multipart(body).map_err(|e| Error::validation("email", e.to_string()))
    }
}

fn smtp_error(e: lettre::transport::smtp::Error) -> Error {
    let code = e.status().map(|c| c.to_string());
    if matches!(code.as_deref(), Some("530" | "534" | "535")) {
        return Error::Config { message: format!("the SMTP server refused the login ({})", code.unwrap_or_default()) };
    }
    let transient = !e.is_permanent();
    let message = if e.is_timeout() { "the SMTP server did not answer in time".to_owned() } else { e.to_string() };
    Error::Provider {
        provider: PROVIDER.into(),
        transient,
        code,
        message: message.chars().take(300).collect(),
        retry_after: None,
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl Mailer for Smtp {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn send(&self, email: &Email) -> Result<SentMail> {
        let mut email = email.clone();
        if email.from.email.is_empty()
            && let Some(from) = &self.from
        {
            email.from = from.clone();
        }
        check_email(&email)?;
        let message = Self::message(&email)?;
        let resp = self.transport.send(message).await.map_err(smtp_error)?;
        let id = resp.message().next().map(|m| m.chars().take(200).collect());
        Ok(SentMail { provider_id: id })
    }
}

/// Builds SMTP mailers from connections: settings `host` (required),
/// `port` (default 587), `security` (`starttls` default, `tls`, `none`),
/// `from` (required), `from_name`; credentials `username` and `password`
/// (both or neither).
#[derive(Debug, Clone, Default)]
pub struct SmtpFactory;

fn sender(settings: &Value) -> Result<Mailbox> {
    let email = settings["from"].as_str().ok_or_else(|| Error::validation("settings.from", "is required"))?;
    let m = Mailbox { email: email.to_owned(), name: settings["from_name"].as_str().map(str::to_owned) };
    m.check("settings.from")?;
    Ok(m)
}

fn server(settings: &Value) -> Result<(String, u16, SmtpSecurity)> {
    let host = settings["host"].as_str().filter(|h| (1..=253).contains(&h.len()) && !h.contains(char::is_whitespace));
    let host = host.ok_or_else(|| Error::validation("settings.host", "is required (a host name)"))?;
    let port = match settings.get("port") {
        None => 587,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::validation("settings.port", "must be 1 to 65535"))?,
    };
    let security = SmtpSecurity::parse(settings["security"].as_str().unwrap_or("starttls"))?;
    Ok((host.to_owned(), port, security))
}

#[async_trait]
impl ConnectorFactory for SmtpFactory {
    fn kind(&self) -> &str {
        PROVIDER
    }

    fn capability(&self) -> Capability {
        Capability::Mail
    }

    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()> {
        sender(settings)?;
        server(settings)?;
        if let Some(c) = credentials
            && c.get("username").is_some() != c.get("password").is_some()
        {
            return Err(Error::validation("credentials", "give both username and password, or neither"));
        }
        Ok(())
    }

    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector> {
        let (host, port, security) = server(&connection.settings)?;
        let login = match (credentials.get("username"), credentials.get("password")) {
            (Some(u), Some(p)) => Some((u.to_owned(), p.to_owned())),
            _ => None,
        };
        let smtp =
            Smtp::new(&host, port, security, login, Some(sender(&connection.settings)?), Duration::from_secs(20))?;
        Ok(Connector::Mail(Arc::new(smtp)))
    }
}
