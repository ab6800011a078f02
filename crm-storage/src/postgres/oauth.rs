//! [`OAuthStore`](crm_core::OAuthStore) for [`PgStore`]: `timestamptz` and `text[]`.

use chrono::{DateTime, Utc};

use super::{PgStore, commit};

fn time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn scopes(list: &[String]) -> crm_core::Result<Vec<String>> {
    Ok(list.to_vec())
}

crate::rows::oauth::sql_oauth_store!(PgStore, time, scopes);
