//! Maps sqlx errors into [`crm_core::Error`] without leaking SQL parameters.

use crm_core::Error;

/// Whether `e` is a unique (or primary key) violation; returns the name of the
/// violated constraint or the driver's message, to tell which key clashed.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            Some(db.constraint().map_or_else(|| db.message().to_owned(), str::to_owned))
        }
        _ => None,
    }
}

/// Whether a database error is worth retrying (busy/locked database,
/// serialization failure, deadlock, lost or refused connection).
fn transient_code(code: &str) -> bool {
    // SQLite: primary result codes BUSY (5) and LOCKED (6), also as extended codes.
    if let Ok(n) = code.parse::<i64>() {
        return matches!(n & 0xff, 5 | 6);
    }
    // PostgreSQL SQLSTATEs: serialization failure, deadlock, connection
    // exceptions, insufficient resources, operator intervention.
    matches!(code, "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03")
        || code.starts_with("08")
        || code.starts_with("53")
}

/// The [`Error::Conflict`] for a violated unique key, named by its constraint
/// (PostgreSQL) or by the driver message listing its columns (SQLite), with
/// the memory store's reasons.
fn conflict_on(key: &str) -> Error {
    let (entity, reason) = if key.contains("jobs") {
        // `jobs_kind_unique_key` (PostgreSQL) / `jobs.kind, jobs.unique_key` (SQLite).
        if key.contains("unique_key") {
            ("job", "a job of this kind holds this unique key")
        } else {
            ("job", "id already exists")
        }
    } else if key.contains("api_keys") {
        ("api_key", "prefix already exists")
    } else if key.contains("users") {
        ("user", "e-mail already registered")
    } else if key.contains("templates") {
        ("template", "a template with this name and language exists")
    } else if key.contains("contacts") {
        if key.contains("phone") {
            ("contact", "a contact with this phone already exists")
        } else {
            ("contact", "id already exists")
        }
    } else if key.contains("channels") {
        if key.contains("provider") {
            ("channel", "another channel of this kind has this provider id")
        } else if key.contains("default") || key.contains("account_id") {
            ("channel", "another channel of the account is its default")
        } else {
            ("channel", "id already exists")
        }
    } else if key.contains("messages") {
        if key.contains("provider") {
            ("message", "provider message id already recorded")
        } else if key.contains("client_reference") {
            ("message", "client reference already used")
        } else {
            ("message", "id already exists")
        }
    } else if key.contains("accounts") {
        ("account", "id already exists")
    } else if key.contains("events") {
        ("event", "id already exists")
    } else {
        ("record", "a record with this key already exists")
    };
    Error::conflict(entity, reason)
}

/// Wraps a driver error as [`Error::Storage`], `what` naming the operation.
///
/// Unique violations become [`Error::Conflict`] naming the entity and key.
pub(crate) fn db(what: &'static str, e: sqlx::Error) -> Error {
    if let Some(key) = unique_violation(&e) {
        return conflict_on(&key);
    }
    let transient = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| transient_code(&c)),
        _ => false,
    };
    let kind = match &e {
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection",
        sqlx::Error::PoolClosed => "the connection pool is closed",
        sqlx::Error::Io(_) => "i/o error talking to the database",
        sqlx::Error::Database(_) => "the database refused the statement",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "a stored value could not be decoded",
        sqlx::Error::Tls(_) => "tls error talking to the database",
        sqlx::Error::Migrate(_) => "migration failed",
        _ => "database error",
    };
    Error::storage(format!("{what}: {kind}"), transient, e)
}

/// An [`Error::Storage`] for a stored value that does not parse back into the domain.
pub(crate) fn corrupt(column: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Storage { message: format!("stored {column} is invalid: {e}"), transient: false, source: None }
}

/// Maps a migration failure.
pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> Error {
    Error::storage("running migrations failed", false, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(key: &str) -> (String, String) {
        match conflict_on(key) {
            Error::Conflict { entity, reason } => (entity.to_owned(), reason),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn channel_and_client_reference_keys_have_the_memory_stores_reasons() {
        let provider = ("channel".to_owned(), "another channel of this kind has this provider id".to_owned());
        let reference = ("message".to_owned(), "client reference already used".to_owned());
        // PostgreSQL names the index; SQLite lists the columns.
        assert_eq!(reason("channels_kind_provider_key"), provider);
        assert_eq!(reason("UNIQUE constraint failed: channels.kind, channels.provider_id"), provider);
        assert_eq!(reason("messages_account_client_reference_key"), reference);
        assert_eq!(reason("UNIQUE constraint failed: messages.account_id, messages.client_reference"), reference);
        assert_eq!(reason("channels_pkey").1, "id already exists");
        assert_eq!(reason("UNIQUE constraint failed: channels.id").1, "id already exists");
        assert_eq!(reason("channels_account_default_key").0, "channel");
        assert_eq!(reason("UNIQUE constraint failed: channels.account_id").1, reason("channels_account_default_key").1);
        assert_eq!(reason("messages_account_provider_key").1, "provider message id already recorded");
    }
}
