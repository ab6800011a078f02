//! [`OAuthStore`](crm_core::OAuthStore) for [`SqliteStore`]: times as
//! INTEGER microseconds, scopes as a JSON array.

use super::{SqliteStore, commit};
use crate::rows::micros;

fn scopes(list: &[String]) -> crm_core::Result<String> {
    crate::rows::to_json("scopes", &list).map(|v| v.to_string())
}

crate::rows::oauth::sql_oauth_store!(SqliteStore, micros, scopes);
