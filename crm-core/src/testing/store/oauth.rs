//! OAuth connections: the [`OAuthStore`](crate::OAuthStore) contract
//! (one-time authorizations, one grant per account and provider, external
//! links, tenancy).

use chrono::Duration;
use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, insert, is_conflict, new_account, now};
use crate::ports::oauth::{ExternalLink, GrantCount, GrantStatus, OAuthGrant, OAuthProvider, PendingAuthorization};
use crate::secrets::{Keyring, SecretKey};
use crate::{AccountId, Error, EventType, Store, sha256_hex};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    pending_authorizations_are_taken_once(make().await).await;
    grants_round_trip_per_account_and_provider(make().await).await;
    external_links_map_contacts(make().await).await;
}

fn keyring() -> Keyring {
    Keyring::new(SecretKey::generate("conformance").expect("key"))
}

fn pending(account: AccountId, state: &str, ttl: Duration) -> PendingAuthorization {
    let state_hash = sha256_hex(state);
    let at = now();
    PendingAuthorization {
        verifier: keyring().seal(b"verifier", &PendingAuthorization::context(&state_hash)).expect("seal"),
        state_hash,
        account_id: account,
        provider: OAuthProvider::Salesforce,
        principal: "key:0193a9f2-0000-7000-8000-000000000000".into(),
        redirect_uri: "https://crm.example/auth/salesforce/callback".into(),
        created_at: at,
        expires_at: at + ttl,
    }
}

/// An authorization is handed out once, whole; an expired one never;
/// concurrent takers get it at most once; a repeated state is a conflict.
pub async fn pending_authorizations_are_taken_once(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let p = pending(a, "state-1", Duration::minutes(10));
    store.insert_pending_authorization(&p).await.expect("insert_pending_authorization");
    assert!(is_conflict(&store.insert_pending_authorization(&p).await.expect_err("again")), "[oauth] state taken");
    let mut bad = pending(a, "state-x", Duration::minutes(10));
    bad.state_hash = "not-a-hash".into();
    assert!(
        matches!(store.insert_pending_authorization(&bad).await, Err(Error::Validation { .. })),
        "[oauth] bad hash"
    );

    let got = store.take_pending_authorization(&p.state_hash, now()).await.expect("take");
    assert_eq!(got.as_ref(), Some(&p), "[oauth] round trip of every field");
    assert_eq!(store.take_pending_authorization(&p.state_hash, now()).await.expect("take"), None, "[oauth] replay");

    let old = pending(a, "state-2", Duration::seconds(1));
    store.insert_pending_authorization(&old).await.expect("insert");
    let later = now() + Duration::seconds(5);
    assert_eq!(store.take_pending_authorization(&old.state_hash, later).await.expect("take"), None, "[oauth] expired");
    assert_eq!(store.take_pending_authorization(&old.state_hash, now()).await.expect("take"), None, "[oauth] gone");

    let racing = pending(a, "state-3", Duration::minutes(10));
    store.insert_pending_authorization(&racing).await.expect("insert");
    let takers = (0..8).map(|_| {
        let store = store.clone();
        let hash = racing.state_hash.clone();
        tokio::spawn(async move { store.take_pending_authorization(&hash, now()).await.expect("take") })
    });
    let mut won = 0;
    for t in takers {
        won += usize::from(t.await.expect("join").is_some());
    }
    assert_eq!(won, 1, "[oauth] concurrent takers get the authorization once");

    let stale = pending(a, "state-4", Duration::seconds(1));
    store.insert_pending_authorization(&stale).await.expect("insert");
    let fresh = pending(a, "state-5", Duration::minutes(10));
    store.insert_pending_authorization(&fresh).await.expect("insert");
    let n = store.delete_expired_authorizations(now() + Duration::minutes(1)).await.expect("delete_expired");
    assert_eq!(n, 1, "[oauth] only the expired one is deleted");
    assert!(store.take_pending_authorization(&fresh.state_hash, now()).await.expect("take").is_some());
}

fn grant(account: AccountId, provider: OAuthProvider, token: &str) -> OAuthGrant {
    let at = now();
    OAuthGrant {
        account_id: account,
        provider,
        status: GrantStatus::Active,
        scopes: provider.scopes().iter().map(|s| (*s).to_owned()).collect(),
        tokens: keyring().seal(token.as_bytes(), b"conformance").expect("seal"),
        expires_at: Some(at + Duration::hours(1)),
        instance_url: (provider == OAuthProvider::Salesforce).then(|| "https://example.my.salesforce.com".into()),
        last_error: None,
        connected_at: at,
        refreshed_at: None,
    }
}

/// One grant per (account, provider), replaced by a put; every field reads
/// back; another account sees none; counts by provider and status.
pub async fn grants_round_trip_per_account_and_provider(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let g = grant(a, OAuthProvider::Salesforce, "t1");
    store.put_oauth_grant(&g).await.expect("put_oauth_grant");
    assert_eq!(
        store.get_oauth_grant(a, OAuthProvider::Salesforce).await.expect("get"),
        Some(g.clone()),
        "[oauth] grant"
    );
    assert_eq!(store.get_oauth_grant(a, OAuthProvider::Google).await.expect("get"), None, "[oauth] other provider");
    assert_eq!(store.get_oauth_grant(b, OAuthProvider::Salesforce).await.expect("get"), None, "[oauth] tenancy");

    let mut broken = grant(a, OAuthProvider::Salesforce, "t2");
    broken.status = GrantStatus::Broken;
    broken.last_error = Some("refresh failed: invalid_grant".into());
    broken.expires_at = None;
    broken.refreshed_at = Some(now());
    store.put_oauth_grant(&broken).await.expect("replace");
    let google = grant(a, OAuthProvider::Google, "t3");
    store.put_oauth_grant(&google).await.expect("put");
    store.put_oauth_grant(&grant(b, OAuthProvider::Google, "t4")).await.expect("put");
    let listed = store.list_oauth_grants(a).await.expect("list");
    assert_eq!(listed, vec![google.clone(), broken.clone()], "[oauth] the account's grants by provider");
    let counts = store.count_oauth_grants().await.expect("count");
    assert_eq!(
        counts,
        vec![
            GrantCount { provider: OAuthProvider::Google, status: GrantStatus::Active, count: 2 },
            GrantCount { provider: OAuthProvider::Salesforce, status: GrantStatus::Broken, count: 1 },
        ],
        "[oauth] counts"
    );
    assert!(!store.delete_oauth_grant(b, OAuthProvider::Salesforce).await.expect("delete"), "[oauth] b has none");
    assert!(store.delete_oauth_grant(a, OAuthProvider::Salesforce).await.expect("delete"), "[oauth] deleted");
    assert_eq!(store.list_oauth_grants(a).await.expect("list"), vec![google], "[oauth] the other stays");
}

/// Links: one per contact and system, replaced by a put; an external id
/// held by another contact is a conflict; found by external id within the
/// account; gone with the contact.
pub async fn external_links_map_contacts(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c1 = contact(a, "Ana", "+5511987654321");
    let c2 = contact(a, "Bia", "+5511987654322");
    insert(&store, &c1).await;
    insert(&store, &c2).await;
    let link = |c: &crate::Contact, object: &str, id: &str| ExternalLink {
        account_id: c.account_id,
        contact_id: c.id,
        system: "salesforce".into(),
        object: object.into(),
        external_id: id.into(),
        synced_at: now(),
    };
    let l1 = link(&c1, "Lead", "00Q5e00000AbCdE");
    store.put_external_link(&l1).await.expect("put_external_link");
    assert_eq!(store.get_external_link(a, c1.id, "salesforce").await.expect("get"), Some(l1.clone()), "[oauth] link");
    assert_eq!(store.get_external_link(b, c1.id, "salesforce").await.expect("get"), None, "[oauth] tenancy");
    let converted = link(&c1, "Contact", "0035e00000XyZaB");
    store.put_external_link(&converted).await.expect("replace");
    assert_eq!(store.get_external_link(a, c1.id, "salesforce").await.expect("get"), Some(converted.clone()));
    assert_eq!(
        store.find_external_link(a, "salesforce", "0035e00000XyZaB").await.expect("find"),
        Some(converted.clone()),
        "[oauth] by external id"
    );
    assert_eq!(
        store.find_external_link(a, "salesforce", "00Q5e00000AbCdE").await.expect("find"),
        None,
        "[oauth] old id"
    );
    assert_eq!(store.find_external_link(b, "salesforce", "0035e00000XyZaB").await.expect("find"), None, "[oauth] b");
    let clash = link(&c2, "Contact", "0035e00000XyZaB");
    assert!(is_conflict(&store.put_external_link(&clash).await.expect_err("held")), "[oauth] external id held");
    let mut bad = link(&c2, "Lead", "x");
    bad.external_id = "no spaces".into();
    assert!(matches!(store.put_external_link(&bad).await, Err(Error::Validation { .. })), "[oauth] bad id");

    store.delete_contact(a, c1.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete_contact");
    assert_eq!(
        store.find_external_link(a, "salesforce", "0035e00000XyZaB").await.expect("find"),
        None,
        "[oauth] erased"
    );
}
