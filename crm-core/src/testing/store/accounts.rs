//! Accounts, users and API keys: the [`AccountStore`](crate::AccountStore) contract.

use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, is_conflict, is_not_found, new_account, now};
use crate::{AccountId, ApiKey, Email, EventType, Role, Store, User};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    accounts_and_users(make().await).await;
    api_keys(make().await).await;
    account_with_key_is_one_transaction(make().await).await;
    account_time_zones(make().await).await;
}

/// An account's name and time zone change with their event; unset is
/// `None`; a zone given at creation is stored; tenancy and NotFound hold.
pub async fn account_time_zones(store: Arc<dyn Store>) {
    let a = new_account(&store, "Loja A").await;
    let b = new_account(&store, "Loja B").await;
    let mut account = store.get_account(a).await.expect("get");
    assert_eq!(account.time_zone, None, "[accounts] a new account has no time zone (UTC)");

    account.set_time_zone(Some("America/Sao_Paulo")).expect("zone");
    account.rename("Loja A Matriz").expect("rename");
    let before = event_count(&store, a).await;
    let stored = store.update_account(&account, &ev(a, EventType::ACCOUNT_UPDATED)).await.expect("update_account");
    assert_eq!(stored, account, "[accounts] update returns the stored account");
    let back = store.get_account(a).await.expect("get");
    assert_eq!(back.time_zone.as_deref(), Some("America/Sao_Paulo"), "[accounts] time zone read back");
    assert_eq!(back.name, "Loja A Matriz", "[accounts] name read back");
    assert_eq!(back.created_at, account.created_at, "[accounts] creation time kept");
    assert_eq!(event_count(&store, a).await, before + 1, "[accounts] the update records its event");
    assert_eq!(store.get_account(b).await.expect("b").time_zone, None, "[accounts] other accounts untouched");

    account.set_time_zone(None).expect("clear");
    store.update_account(&account, &ev(a, EventType::ACCOUNT_UPDATED)).await.expect("clear");
    assert_eq!(store.get_account(a).await.expect("get").time_zone, None, "[accounts] a cleared zone reads None");

    let mut missing = crate::Account::new("Ghost", now()).expect("account");
    let err = store.update_account(&missing, &ev(missing.id, EventType::ACCOUNT_UPDATED)).await.expect_err("missing");
    assert!(is_not_found(&err), "[accounts] updating an unknown account is NotFound, got {err}");

    missing.set_time_zone(Some("Europe/Lisbon")).expect("zone");
    store.create_account(&missing, &ev(missing.id, EventType::ACCOUNT_CREATED)).await.expect("create");
    let back = store.get_account(missing.id).await.expect("get");
    assert_eq!(back.time_zone.as_deref(), Some("Europe/Lisbon"), "[accounts] a zone set at creation is stored");
}

/// An account and its first key are stored together or not at all.
pub async fn account_with_key_is_one_transaction(store: Arc<dyn Store>) {
    let taken = new_account(&store, "Taken").await;
    let (existing, _) = ApiKey::generate(taken, "k", Role::Owner, None, now()).expect("key");
    store.create_api_key(&existing, &ev(taken, EventType::API_KEY_CREATED)).await.expect("key");

    let account = crate::Account::new("New", now()).expect("account");
    let (key, token) = ApiKey::generate(account.id, "owner", Role::Owner, None, now()).expect("key");
    let mut clash = key.clone();
    clash.prefix = existing.prefix.clone();
    let events = [ev(account.id, EventType::ACCOUNT_CREATED), ev(account.id, EventType::API_KEY_CREATED)];
    let err = store.create_account_with_key(&account, &clash, &events).await.expect_err("prefix taken");
    assert!(is_conflict(&err), "[accounts] a key that cannot be stored is Conflict, got {err}");
    assert!(
        is_not_found(&store.get_account(account.id).await.expect_err("absent")),
        "[accounts] nor is the account stored"
    );

    store.create_account_with_key(&account, &key, &events).await.expect("create_account_with_key");
    assert_eq!(store.get_account(account.id).await.expect("get").name, "New");
    let found = store.find_api_key_by_prefix(&key.prefix).await.expect("find").expect("[accounts] the key is stored");
    assert!(found.verify(token.expose(), now()));
    assert_eq!(event_count(&store, account.id).await, 2, "[accounts] both events are recorded");
    let again = [ev(account.id, EventType::ACCOUNT_CREATED), ev(account.id, EventType::API_KEY_CREATED)];
    let err = store.create_account_with_key(&account, &key, &again).await.expect_err("again");
    assert!(is_conflict(&err), "[accounts] the same account twice is Conflict");
}

/// Accounts and users: create, read, NotFound, global e-mail uniqueness, tenancy.
pub async fn accounts_and_users(store: Arc<dyn Store>) {
    let a = new_account(&store, "Loja A").await;
    let b = new_account(&store, "Loja B").await;
    assert_eq!(store.get_account(a).await.expect("get_account").name, "Loja A", "[accounts] name read back");
    assert!(
        is_not_found(&store.get_account(AccountId::new()).await.expect_err("missing")),
        "[accounts] unknown id is NotFound"
    );

    let user = User::new(a, "ana@loja.com", "Ana", Role::Admin, "senha-forte-1", now()).expect("user");
    store.create_user(&user, &ev(a, EventType::USER_CREATED)).await.expect("create_user");
    let back = store.get_user(a, user.id).await.expect("get_user");
    assert_eq!(back, user, "[users] round trip");
    assert!(back.password_hash.verify("senha-forte-1"), "[users] password hash survives storage");
    assert!(is_not_found(&store.get_user(b, user.id).await.expect_err("x")), "[users] other account is NotFound");

    let dup = User::new(b, "ANA@loja.com", "Outra", Role::Agent, "senha-forte-2", now()).expect("user");
    let err = store.create_user(&dup, &ev(b, EventType::USER_CREATED)).await.expect_err("dup email");
    assert!(is_conflict(&err), "[users] e-mail is unique across accounts, got {err}");

    let found = store.find_user_by_email(&Email::parse("ana@loja.com").expect("email")).await.expect("find");
    assert_eq!(found.map(|u| u.id), Some(user.id), "[users] find by e-mail");
    let none = store.find_user_by_email(&Email::parse("x@y.com").expect("email")).await.expect("find");
    assert!(none.is_none(), "[users] unknown e-mail is None");
    assert_eq!(store.list_users(a).await.expect("list").len(), 1, "[users] list of A");
    assert!(store.list_users(b).await.expect("list").is_empty(), "[users] list of B is empty");
}

/// API keys: lookup by prefix, prefix uniqueness, revoke semantics, tenancy.
pub async fn api_keys(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let (key, token) = ApiKey::generate(a, "ci", Role::Admin, None, now()).expect("key");
    store.create_api_key(&key, &ev(a, EventType::API_KEY_CREATED)).await.expect("create_api_key");
    let found = store.find_api_key_by_prefix(&key.prefix).await.expect("find").expect("present");
    assert_eq!(found, key, "[api_keys] round trip");
    assert!(found.verify(token.expose(), now()), "[api_keys] stored hash verifies the token");
    assert!(store.find_api_key_by_prefix("nosuchprefix").await.expect("find").is_none(), "[api_keys] unknown prefix");

    let mut clash = ApiKey::generate(b, "other", Role::Agent, None, now()).expect("key").0;
    clash.prefix = key.prefix.clone();
    let err = store.create_api_key(&clash, &ev(b, EventType::API_KEY_CREATED)).await.expect_err("dup prefix");
    assert!(is_conflict(&err), "[api_keys] prefix is unique, got {err}");

    let err =
        store.revoke_api_key(b, key.id, Role::Owner, now(), &ev(b, EventType::API_KEY_REVOKED)).await.expect_err("x");
    assert!(is_not_found(&err), "[api_keys] revoking another account's key is NotFound");

    let before = event_count(&store, a).await;
    let err = store.revoke_api_key(a, key.id, Role::Agent, now(), &ev(a, EventType::API_KEY_REVOKED)).await;
    assert!(
        matches!(err, Err(crate::Error::Forbidden { .. })),
        "[api_keys] revoking a key above up_to is Forbidden, got {err:?}"
    );
    assert_eq!(event_count(&store, a).await, before, "[api_keys] a refused revoke writes no event");
    let at = now();
    let revoked =
        store.revoke_api_key(a, key.id, Role::Owner, at, &ev(a, EventType::API_KEY_REVOKED)).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at), "[api_keys] revoked_at set");
    assert_eq!(event_count(&store, a).await, before + 1, "[api_keys] revoke writes its event");
    let later = at + chrono::Duration::seconds(5);
    let again =
        store.revoke_api_key(a, key.id, Role::Owner, later, &ev(a, EventType::API_KEY_REVOKED)).await.expect("again");
    assert_eq!(again.revoked_at, Some(at), "[api_keys] second revoke keeps the first time");
    assert_eq!(event_count(&store, a).await, before + 1, "[api_keys] second revoke writes no event");
    let listed = store.list_api_keys(a).await.expect("list");
    assert_eq!(listed.len(), 1, "[api_keys] list of A");
    assert_eq!(listed[0].revoked_at, Some(at), "[api_keys] list shows revocation");
    assert!(store.list_api_keys(b).await.expect("list").is_empty(), "[api_keys] list of B is empty");
}
