//! Accounts (tenants), users and e-mail addresses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use chrono_tz::Tz;

use crate::domain::zone::parse_time_zone;
use crate::{AccountId, Error, Result, UserId};

/// A tenant: every contact, message, template and key belongs to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Display name, 1–200 characters.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The account's IANA time zone (`America/Sao_Paulo`), as the tz
    /// database spells it. Business-hours conditions and sequence send
    /// windows that name neither a zone nor a UTC offset are read on this
    /// clock. `None` (the default): UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl Account {
    /// A new account (no time zone: UTC); [`Error::Validation`] on `name`
    /// when it is blank or too long.
    pub fn new(name: &str, now: DateTime<Utc>) -> Result<Self> {
        Ok(Self { id: AccountId::new(), name: validate_name("name", name, 200)?, created_at: now, time_zone: None })
    }

    /// Sets (or, with `None`, clears) the account's time zone.
    /// [`Error::Validation`] on `time_zone` when `name` is not an IANA zone.
    pub fn set_time_zone(&mut self, name: Option<&str>) -> Result<()> {
        self.time_zone =
            name.map(|n| parse_time_zone("time_zone", n.trim()).map(|tz| tz.name().to_owned())).transpose()?;
        Ok(())
    }

    /// Renames the account; [`Error::Validation`] on `name` as in [`Account::new`].
    pub fn rename(&mut self, name: &str) -> Result<()> {
        self.name = validate_name("name", name, 200)?;
        Ok(())
    }

    /// The account's zone, `None` when unset (UTC) or when a stored name no
    /// longer parses (also read as UTC).
    pub fn zone(&self) -> Option<Tz> {
        self.time_zone.as_deref().and_then(|n| n.parse().ok())
    }
}

/// A change to an account (`PATCH /account`): absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountPatch {
    /// New display name, 1–200 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    /// New IANA time zone (`America/Sao_Paulo`); `null` clears it (UTC).
    #[serde(default, deserialize_with = "crate::domain::channel::double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "America/Sao_Paulo"))]
    pub time_zone: Option<Option<String>>,
}

/// Trims `value` and checks it is 1..=`max` characters without control characters.
pub(crate) fn validate_name(field: &'static str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(Error::validation(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::validation(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// A lower-cased e-mail address with one `@`, a non-empty local part and a
/// dotted domain; at most 254 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses and lower-cases an address; [`Error::Validation`] on `email`.
    pub fn parse(input: &str) -> Result<Self> {
        let v = input.trim().to_lowercase();
        let bad = |r: &str| Err(Error::validation("email", r.to_owned()));
        if v.is_empty() || v.len() > 254 {
            return bad("must be 1 to 254 characters");
        }
        let Some((local, domain)) = v.split_once('@') else {
            return bad("must contain @");
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return bad("has an invalid local part");
        }
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return bad("has an invalid domain");
        }
        if v.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c)) {
            return bad("contains characters not allowed in an address");
        }
        Ok(Email(v))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a user may do in their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Works conversations and contacts.
    Agent,
    /// Manages users, keys, templates and settings.
    Admin,
    /// Created the account; everything an admin can, plus billing.
    Owner,
}

impl Role {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses [`Role::as_str`] output.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "agent" => Ok(Role::Agent),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(Error::validation("role", "must be viewer, agent, admin or owner")),
        }
    }

    /// Whether this role includes everything `other` may do.
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

/// A person who logs into the dashboard.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Owning account.
    pub account_id: AccountId,
    /// Login e-mail, unique across all accounts.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Permissions.
    pub role: Role,
    /// argon2id PHC string; never serialized to clients by the HTTP layer.
    pub password_hash: crate::PasswordHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A new user with a freshly hashed password (see [`crate::PasswordHash::hash`]).
    pub fn new(
        account_id: AccountId,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let email = Email::parse(email)?;
        // Login addresses are ASCII only: look-alike letters from other
        // scripts (a Cyrillic `а` in `exаmple.com`) would make distinct users
        // of addresses that read the same. An internationalised domain is
        // written in its IDNA `xn--` form. (Contacts' addresses may be Unicode.)
        if !email.as_str().is_ascii() {
            return Err(Error::validation(
                "email",
                "a login address must be ASCII; write an internationalised domain in its xn-- form",
            ));
        }
        Ok(Self {
            id: UserId::new(),
            account_id,
            email,
            name: validate_name("name", name, 200)?,
            role,
            password_hash: crate::PasswordHash::hash(password)?,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_time_zones_are_iana_names_or_unset() {
        let mut a = Account::new("Loja", Utc::now()).unwrap();
        assert_eq!((a.time_zone.as_deref(), a.zone()), (None, None));
        a.set_time_zone(Some(" America/Sao_Paulo ")).unwrap();
        assert_eq!(a.time_zone.as_deref(), Some("America/Sao_Paulo"));
        assert_eq!(a.zone(), Some(chrono_tz::America::Sao_Paulo));
        let err = a.set_time_zone(Some("Mars/Olympus")).unwrap_err();
        assert!(matches!(err, Error::Validation { field, .. } if field == "time_zone"));
        assert_eq!(a.time_zone.as_deref(), Some("America/Sao_Paulo"), "a refused zone changes nothing");
        a.set_time_zone(None).unwrap();
        assert_eq!(a.zone(), None);
        assert!(a.rename("  ").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in ["", "a", "a@b", "@b.com", "a@@b.com", "a@-b.com", "a b@c.com", "a@b..com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn login_addresses_are_ascii_so_look_alikes_are_refused() {
        let now = Utc::now();
        let user = |email: &str| User::new(AccountId::new(), email, "Ana", Role::Agent, "long enough", now);
        let err = user("ana@ex\u{430}mple.com").unwrap_err();
        assert!(err.to_string().contains("ASCII"), "{err}");
        assert!(user("ana@xn--exmple-4nf.com").is_ok());
        assert!(Email::parse("jo\u{e3}o@empresa.com.br").is_ok(), "contacts may have Unicode addresses");
    }

    #[test]
    fn account_names() {
        let now = Utc::now();
        assert_eq!(Account::new("  Loja  ", now).unwrap().name, "Loja");
        assert!(Account::new("   ", now).is_err());
        assert!(Account::new(&"x".repeat(201), now).is_err());
        assert!(Account::new("a\u{0}b", now).is_err());
    }

    #[test]
    fn roles_order() {
        assert!(Role::Owner.includes(Role::Admin));
        assert!(!Role::Agent.includes(Role::Admin));
        assert_eq!(Role::parse(Role::Admin.as_str()).unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}
