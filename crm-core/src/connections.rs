//! The connector registry: connector factories by provider kind and the
//! keyring that opens connection credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::connection::Connection;
use crate::ports::connectors::{Connector, ConnectorFactory};
use crate::secrets::{Credentials, Keyring, SealedSecret};
use crate::{Error, Result};

/// Connector factories by provider kind, and the keyring for their credentials.
#[derive(Debug, Clone, Default)]
pub struct ConnectorRegistry {
    factories: BTreeMap<String, Arc<dyn ConnectorFactory>>,
    keyring: Option<Keyring>,
}

impl ConnectorRegistry {
    /// A registry over `factories` (a later one replaces an earlier one of the same kind).
    pub fn new(factories: Vec<Arc<dyn ConnectorFactory>>, keyring: Option<Keyring>) -> Self {
        let factories = factories.into_iter().map(|f| (f.kind().to_owned(), f)).collect();
        Self { factories, keyring }
    }

    /// The kinds that can be connected.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// The factory of `kind`. [`Error::Validation`] on `provider`, naming
    /// the kinds this server knows, when there is none.
    pub fn factory(&self, kind: &str) -> Result<&Arc<dyn ConnectorFactory>> {
        self.factories.get(kind).ok_or_else(|| {
            Error::validation(
                "provider",
                format!("no connector is available for {kind:?}; available: {}", self.kinds().join(", ")),
            )
        })
    }

    /// Seals credentials for `connection`. [`Error::Validation`] on
    /// `credentials` when no keyring is configured (nothing is stored).
    pub fn seal(&self, connection: &Connection, credentials: &Credentials) -> Result<SealedSecret> {
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            Error::validation(
                "credentials",
                "this server has no secret key to seal credentials with (set CRM_SECRET_KEYS)",
            )
        })?;
        keyring.seal_credentials(credentials, &connection.secret_context())
    }

    /// Opens `connection`'s credentials (empty when it has none).
    /// [`Error::Config`] when it has some and no key opens them.
    pub fn open(&self, connection: &Connection) -> Result<Credentials> {
        match &connection.credentials {
            None => Ok(Credentials::new()),
            Some(sealed) => {
                let keyring = self.keyring.as_ref().ok_or_else(|| Error::Config {
                    message: format!(
                        "the {} connection has credentials but no secret key is configured",
                        connection.provider
                    ),
                })?;
                keyring.open_credentials(sealed, &connection.secret_context())
            }
        }
    }

    /// Builds `connection`'s connector.
    pub async fn build(&self, connection: &Connection) -> Result<Connector> {
        let factory = self.factory(connection.provider.as_str())?;
        factory.build(connection, self.open(connection)?).await
    }
}
