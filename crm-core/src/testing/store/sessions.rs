//! Sessions: the [`SessionStore`](crate::SessionStore) contract (create,
//! find by prefix, list of one user's live sessions, end, expiry cleanup).

use std::future::Future;
use std::sync::Arc;

use super::{ev, is_conflict, is_not_found, new_account, now};
use crate::{EventType, Role, Session, Store, User};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    sessions_lifecycle(make().await).await;
}

async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    let a = new_account(store, "A").await;
    let u = User::new(a, email, "Ana", Role::Agent, "long enough", now()).expect("user");
    store.create_user(&u, &ev(a, EventType::USER_CREATED)).await.expect("[fixture] create_user");
    u
}

/// Sessions: round trip, unique prefix, listing of a user's live sessions
/// (newest first), ending (once), tenancy, and the expiry cleanup.
pub async fn sessions_lifecycle(store: Arc<dyn Store>) {
    let ana = user(&store, "ana@example.com").await;
    let bia = user(&store, "bia@example.com").await;
    let t0 = now();
    let hour = chrono::Duration::hours(1);
    let (first, token) = Session::start(&ana, t0 + hour, t0).expect("session");
    store.create_session(&first).await.expect("create_session");
    let found = store.find_session_by_prefix(&first.prefix).await.expect("find").expect("[sessions] found by prefix");
    assert_eq!(found, first, "[sessions] round trip");
    assert!(found.verify(token.expose(), t0), "[sessions] the stored hash verifies the token");
    assert!(store.find_session_by_prefix("nosuchprefix").await.expect("find").is_none());
    let mut clash = Session::start(&bia, t0 + hour, t0).expect("session").0;
    clash.prefix = first.prefix.clone();
    assert!(is_conflict(&store.create_session(&clash).await.expect_err("dup")), "[sessions] prefix is unique");

    let (second, _) = Session::start(&ana, t0 + hour * 2, t0).expect("session");
    let (short, _) = Session::start(&ana, t0 + chrono::Duration::seconds(1), t0).expect("session");
    let (theirs, _) = Session::start(&bia, t0 + hour, t0).expect("session");
    for s in [&second, &short, &theirs] {
        store.create_session(s).await.expect("create_session");
    }
    let later = t0 + chrono::Duration::seconds(2);
    let listed = store.list_sessions(ana.account_id, ana.id, later).await.expect("list");
    let ids: Vec<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [second.id, first.id], "[sessions] the user's live sessions, newest first");

    let err = store.end_session(bia.account_id, bia.id, first.id, later).await.expect_err("not theirs");
    assert!(is_not_found(&err), "[sessions] another user's session is NotFound");
    let ended = store.end_session(ana.account_id, ana.id, first.id, later).await.expect("end");
    assert_eq!(ended.revoked_at, Some(later), "[sessions] ended at the given time");
    let again = store.end_session(ana.account_id, ana.id, first.id, later + hour).await.expect("again");
    assert_eq!(again.revoked_at, Some(later), "[sessions] ending twice keeps the first time");
    let listed = store.list_sessions(ana.account_id, ana.id, later).await.expect("list");
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [second.id], "[sessions] ended ones are not listed");

    let removed = store.delete_expired_sessions(later + chrono::Duration::seconds(1)).await.expect("cleanup");
    assert_eq!(removed, 2, "[sessions] the expired and the ended session are deleted");
    assert!(store.find_session_by_prefix(&short.prefix).await.expect("find").is_none());
    assert!(store.find_session_by_prefix(&second.prefix).await.expect("find").is_some(), "[sessions] live ones stay");
    assert!(store.find_session_by_prefix(&theirs.prefix).await.expect("find").is_some());
}
