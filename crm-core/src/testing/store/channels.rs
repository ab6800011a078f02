//! Channels: the [`ChannelStore`](crate::ChannelStore) contract (round trips
//! keeping sealed credentials exact, tenancy, `(kind, provider_id)` unique
//! across accounts, one default per account, optimistic versions, throttles
//! that leave the version alone, lookups, paging across accounts, and one
//! event per mutation with none on refusal).

use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, is_conflict, is_not_found, new_account, now};
use crate::secrets::{Credentials, Keyring, SecretKey};
use crate::{
    AccountId, Channel, ChannelId, ChannelKind, Error, EventType, NewChannel, Pacing, Store, Throttle, WarmupStep,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    channel_crud(make().await).await;
    channel_roundtrip_preserves_every_field(make().await).await;
    channel_tenancy(make().await).await;
    channel_provider_id_is_unique_per_kind(make().await).await;
    channel_one_default_per_account(make().await).await;
    channel_update_is_optimistic(make().await).await;
    channel_throttle_keeps_the_version(make().await).await;
    channel_lookups(make().await).await;
    list_all_channels_pages_across_accounts(make().await).await;
    channel_event_per_mutation(make().await).await;
    concurrent_default_channels_leave_one_default(make().await).await;
    concurrent_channel_inserts_same_provider_id(make().await).await;
}

// ----- fixtures ----------------------------------------------------------------

fn channel(account: AccountId, kind: &str, name: &str, provider_id: Option<&str>) -> Channel {
    let input = NewChannel {
        kind: kind.into(),
        name: name.into(),
        provider_id: provider_id.map(Into::into),
        ..Default::default()
    };
    Channel::new(account, &input, None, now()).expect("valid channel")
}

fn default_channel(account: AccountId, name: &str) -> Channel {
    Channel { is_default: true, ..channel(account, "recording", name, None) }
}

async fn add(store: &Arc<dyn Store>, c: &Channel) {
    store
        .insert_channel(c, &ev(c.account_id, EventType::CHANNEL_CREATED))
        .await
        .unwrap_or_else(|e| panic!("[fixture] insert_channel: {e}"));
}

async fn update(store: &Arc<dyn Store>, c: &Channel) -> crate::Result<Channel> {
    store.update_channel(c, &ev(c.account_id, EventType::CHANNEL_UPDATED)).await
}

fn throttle(reason: &str) -> Throttle {
    let since = now();
    Throttle { reason: reason.into(), since, until: since + chrono::Duration::minutes(10) }
}

fn keyring() -> Keyring {
    Keyring::new(SecretKey::from_bytes("suite-key", [7; 32]).expect("key id"))
}

fn defaults(channels: &[Channel]) -> Vec<ChannelId> {
    channels.iter().filter(|c| c.is_default).map(|c| c.id).collect()
}

// ----- behaviours ----------------------------------------------------------------

/// Channels: insert (version 0), get, list, update (version + 1, returning
/// the stored channel, keeping the stored throttle and creation time), delete.
pub async fn channel_crud(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = channel(a, "recording", "Loja", Some("loja-1"));
    add(&store, &c).await;
    let got = store.get_channel(a, c.id).await.expect("get");
    assert_eq!(got, c, "[channels] round trip");
    assert_eq!(got.version, 0, "[channels] new channels have version 0");
    assert_eq!(store.list_channels(a).await.expect("list"), vec![c.clone()], "[channels] list");

    let t = throttle("daily cap reached");
    store.set_channel_throttle(a, c.id, Some(&t), &ev(a, EventType::CHANNEL_THROTTLED)).await.expect("set throttle");
    let mut changed = got.clone();
    changed.name = "Loja Centro".into();
    changed.enabled = false;
    changed.updated_at = now();
    // A caller's copy cannot move the throttle or the creation time.
    changed.throttle = None;
    changed.created_at = c.created_at - chrono::Duration::days(3);
    let stored = update(&store, &changed).await.expect("update");
    assert_eq!(stored.version, 1, "[channels] update increments version");
    assert_eq!((stored.name.as_str(), stored.enabled), ("Loja Centro", false), "[channels] update applies");
    assert_eq!(stored.updated_at, changed.updated_at, "[channels] updated_at is the caller's");
    assert_eq!(stored.throttle, Some(t), "[channels] update keeps the stored throttle");
    assert_eq!(stored.created_at, c.created_at, "[channels] update keeps the stored created_at");
    assert_eq!(store.get_channel(a, c.id).await.expect("get"), stored, "[channels] get equals update's result");

    store.delete_channel(a, c.id, &ev(a, EventType::CHANNEL_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_channel(a, c.id).await.expect_err("gone")), "[channels] deleted is NotFound");
    let err = store.delete_channel(a, c.id, &ev(a, EventType::CHANNEL_DELETED)).await.expect_err("again");
    assert!(is_not_found(&err), "[channels] deleting twice is NotFound, got {err}");
    assert!(store.list_channels(a).await.expect("list").is_empty(), "[channels] list after delete");
    let err = update(&store, &stored).await.expect_err("missing");
    assert!(is_not_found(&err), "[channels] updating a deleted channel is NotFound, got {err}");
    let kind = ChannelKind::parse("recording").expect("kind");
    assert!(
        store.find_channel_by_provider_id(&kind, "loja-1").await.expect("find").is_none(),
        "[channels] a deleted channel's provider id no longer routes"
    );
    add(&store, &channel(a, "recording", "De novo", Some("loja-1"))).await;
}

/// Every field survives storage exactly: sealed credentials byte for byte,
/// settings, pacing with its warm-up schedule, flags, throttle and times.
pub async fn channel_roundtrip_preserves_every_field(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut credentials = Credentials::new();
    credentials.insert("access_token", "EAAG-secret-token");
    credentials.insert("app_secret", "s3cr3t");
    let started = now() - chrono::Duration::days(2);
    let input = NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "Atendimento São Paulo".into(),
        provider_id: Some("109876543210987".into()),
        settings: Some(json!({
            "waba_id": "2233445566",
            "api_version": "v21.0",
            "labels": ["vendas", "suporte"],
            "nested": {"ok": true, "n": 1.5, "none": null},
        })),
        credentials: Some(credentials.clone()),
        pacing: Some(Pacing {
            per_second: Some(20),
            pair_interval_secs: Some(6),
            jitter_ms: Some(350),
            daily_unique_cap: Some(10_000),
            warmup: vec![
                WarmupStep { day: 0, cap: 50 },
                WarmupStep { day: 3, cap: 250 },
                WarmupStep { day: 7, cap: 1000 },
            ],
            warmup_started_at: Some(started),
        }),
        is_default: true,
        enabled: Some(false),
    };
    let mut c = Channel::new(a, &input, None, now()).expect("channel");
    let sealed = keyring().seal_credentials(&credentials, &c.secret_context()).expect("seal");
    c.credentials = Some(sealed.clone());
    c.throttle = Some(throttle("warming up"));
    c.updated_at = now();
    add(&store, &c).await;

    let got = store.get_channel(a, c.id).await.expect("get");
    assert_eq!(got, c, "[channels] every field round-trips");
    let stored = got.credentials.as_ref().expect("[channels] credentials kept");
    assert_eq!(stored.encode(), sealed.encode(), "[channels] sealed credentials kept byte for byte");
    let opened = keyring().open_credentials(stored, &got.secret_context()).expect("[channels] stored secret opens");
    assert_eq!(opened, credentials, "[channels] stored secret opens to the same credentials");
    assert_eq!(got.pacing.warmup.len(), 3, "[channels] warm-up steps kept");

    let kind = ChannelKind::parse("whatsapp-cloud").expect("kind");
    let by_pid = store.find_channel_by_provider_id(&kind, "109876543210987").await.expect("find");
    assert_eq!(by_pid.as_ref(), Some(&c), "[channels] find_channel_by_provider_id returns the same channel");
    assert_eq!(store.default_channel(a).await.expect("default").as_ref(), Some(&c), "[channels] default_channel");
    assert_eq!(store.list_channels(a).await.expect("list"), vec![c.clone()], "[channels] list_channels");
    assert_eq!(store.list_all_channels(None, 10).await.expect("all"), vec![c.clone()], "[channels] list_all");

    // An update replaces everything the caller may change, exactly.
    let mut next = got.clone();
    let mut rotated = Credentials::new();
    rotated.insert("access_token", "EAAG-rotated");
    next.credentials = Some(keyring().seal_credentials(&rotated, &c.secret_context()).expect("seal"));
    next.settings = json!({"waba_id": "other"}).as_object().cloned().expect("object");
    next.pacing = Pacing { warmup: vec![WarmupStep { day: 1, cap: 10 }], ..Default::default() };
    next.provider_id = None;
    next.enabled = true;
    next.updated_at = now();
    let stored = update(&store, &next).await.expect("update");
    assert_eq!(stored, Channel { version: 1, ..next.clone() }, "[channels] update stores every field");
    assert_eq!(store.get_channel(a, c.id).await.expect("get"), stored, "[channels] get after update");
    next.version = 1;
    next.credentials = None;
    let stored = update(&store, &next).await.expect("update");
    assert_eq!(stored.credentials, None, "[channels] credentials can be removed");
    assert_eq!(store.get_channel(a, c.id).await.expect("get").credentials, None, "[channels] removal stored");
}

/// Account B can neither read nor change account A's channels: they are NotFound everywhere.
pub async fn channel_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = Channel { is_default: true, ..channel(a, "recording", "Loja", Some("loja-a")) };
    add(&store, &c).await;
    assert!(is_not_found(&store.get_channel(b, c.id).await.expect_err("x")), "[tenancy] get channel");
    assert!(store.list_channels(b).await.expect("list").is_empty(), "[tenancy] list of B is empty");
    assert!(store.default_channel(b).await.expect("default").is_none(), "[tenancy] B has no default");
    let mut hijack = c.clone();
    hijack.account_id = b;
    hijack.name = "Hijacked".into();
    let err = update(&store, &hijack).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] update via B is NotFound, got {err}");
    let err = store.delete_channel(b, c.id, &ev(b, EventType::CHANNEL_DELETED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] delete via B is NotFound, got {err}");
    let t = throttle("x");
    let err = store.set_channel_throttle(b, c.id, Some(&t), &ev(b, EventType::CHANNEL_THROTTLED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] throttle via B is NotFound, got {err}");
    assert_eq!(store.get_channel(a, c.id).await.expect("get"), c, "[tenancy] A's channel untouched");
    assert_eq!(event_count(&store, b).await, 1, "[tenancy] B has only its account event");

    // B's own default does not touch A's.
    add(&store, &default_channel(b, "Loja B")).await;
    let still = store.get_channel(a, c.id).await.expect("get");
    assert!(still.is_default && still.version == 0, "[tenancy] B's default leaves A's default alone");
}

/// `(kind, provider_id)` is unique across accounts; the same id under another
/// kind is fine, and clearing it frees it.
pub async fn channel_provider_id_is_unique_per_kind(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let first = channel(a, "whatsapp-cloud", "Cloud A", Some("1234567890"));
    add(&store, &first).await;

    let before_b = event_count(&store, b).await;
    let clash = channel(b, "whatsapp-cloud", "Cloud B", Some("1234567890"));
    let err = store.insert_channel(&clash, &ev(b, EventType::CHANNEL_CREATED)).await.expect_err("clash");
    match &err {
        Error::Conflict { reason, .. } => {
            assert!(reason.contains("provider id"), "[channels] the reason names the provider id: {reason}")
        }
        other => panic!("[channels] a provider id taken in another account is Conflict, got {other}"),
    }
    assert_eq!(event_count(&store, b).await, before_b, "[channels] refused insert writes no event");
    assert!(is_not_found(&store.get_channel(b, clash.id).await.expect_err("x")), "[channels] nothing stored");

    let other_kind = channel(b, "whatsapp-web", "Web B", Some("1234567890"));
    add(&store, &other_kind).await;
    let no_pid = [channel(a, "whatsapp-cloud", "No id 1", None), channel(a, "whatsapp-cloud", "No id 2", None)];
    for c in &no_pid {
        add(&store, c).await;
    }

    // An update cannot take a provider id either, and is not called stale.
    let second = channel(a, "whatsapp-cloud", "Cloud A2", Some("555"));
    add(&store, &second).await;
    let mut taking = second.clone();
    taking.provider_id = first.provider_id.clone();
    let before = event_count(&store, a).await;
    let err = update(&store, &taking).await.expect_err("clash");
    match &err {
        Error::Conflict { reason, .. } => {
            assert!(!reason.contains("changed"), "[channels] a provider id clash is not a stale version: {reason}")
        }
        other => panic!("[channels] a provider id clash on update must be Conflict, got {other}"),
    }
    assert_eq!(event_count(&store, a).await, before, "[channels] refused update writes no event");
    let still = store.get_channel(a, second.id).await.expect("get");
    assert_eq!(still, second, "[channels] refused update changes nothing (provider id, version)");

    // Clearing the id frees it for any account.
    let cleared = update(&store, &Channel { provider_id: None, ..first.clone() }).await.expect("clear");
    assert_eq!(cleared.provider_id, None, "[channels] provider id cleared");
    let kind = ChannelKind::parse("whatsapp-cloud").expect("kind");
    assert!(store.find_channel_by_provider_id(&kind, "1234567890").await.expect("find").is_none(), "[channels] freed");
    add(&store, &clash).await;
    let found = store.find_channel_by_provider_id(&kind, "1234567890").await.expect("find");
    assert_eq!(found.map(|c| c.id), Some(clash.id), "[channels] the freed id routes to its new channel");
}

/// At most one default per account, on insert and on update; a channel that
/// lost the flag moved its version, so its stale copy cannot take it back.
pub async fn channel_one_default_per_account(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let one = default_channel(a, "Um");
    add(&store, &one).await;
    let in_b = default_channel(b, "Em B");
    add(&store, &in_b).await;
    let two = default_channel(a, "Dois");
    add(&store, &two).await;
    let list = store.list_channels(a).await.expect("list");
    assert_eq!(defaults(&list), vec![two.id], "[default] inserting a default clears the old one");
    let demoted = store.get_channel(a, one.id).await.expect("get");
    assert_eq!(demoted.version, 1, "[default] the channel that lost the flag moved its version");
    assert!(demoted.updated_at >= one.updated_at, "[default] its updated_at does not go back");
    let got = store.default_channel(a).await.expect("default").map(|c| c.id);
    assert_eq!(got, Some(two.id), "[default] default_channel");
    let got = store.default_channel(b).await.expect("default").map(|c| c.id);
    assert_eq!(got, Some(in_b.id), "[default] another account's default is untouched");

    let three = channel(a, "recording", "Três", None);
    add(&store, &three).await;
    let got = store.default_channel(a).await.expect("default").map(|c| c.id);
    assert_eq!(got, Some(two.id), "[default] a non-default insert leaves the default");

    // The stale copy of `one` (still saying default) is refused.
    let before = event_count(&store, a).await;
    let err = update(&store, &Channel { name: "Um (velho)".into(), ..one.clone() }).await.expect_err("stale");
    assert!(is_conflict(&err), "[default] a stale copy of a demoted channel is Conflict, got {err}");
    assert_eq!(event_count(&store, a).await, before, "[default] refused update writes no event");
    assert_eq!(defaults(&store.list_channels(a).await.expect("list")), vec![two.id], "[default] unchanged");

    // Updating a fresh copy with the flag moves it.
    let promoted = update(&store, &Channel { is_default: true, updated_at: now(), ..demoted }).await.expect("update");
    assert!(promoted.is_default, "[default] update sets the flag");
    let list = store.list_channels(a).await.expect("list");
    assert_eq!(defaults(&list), vec![one.id], "[default] updating to default clears the old one");
    let old = list.iter().find(|c| c.id == two.id).expect("two");
    assert_eq!(old.version, 1, "[default] the old default moved its version");
    let got = store.default_channel(a).await.expect("default").map(|c| c.id);
    assert_eq!(got, Some(one.id), "[default] default_channel follows");
    let list_b = store.list_channels(b).await.expect("list");
    assert_eq!(defaults(&list_b), vec![in_b.id], "[default] B keeps its default");
    let untouched = list.iter().find(|c| c.id == three.id).expect("three");
    assert_eq!(untouched.version, 0, "[default] channels that were not default are untouched");

    // Updating the default itself keeps it the only one.
    let again = update(&store, &Channel { name: "Um!".into(), ..promoted }).await.expect("update");
    assert_eq!(defaults(&store.list_channels(a).await.expect("list")), vec![again.id], "[default] still one");
}

/// `update_channel` refuses a stale version with a Conflict mentioning
/// "changed" and writes no event; a missing channel is NotFound.
pub async fn channel_update_is_optimistic(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = channel(a, "recording", "Loja", None);
    add(&store, &c).await;
    let one = Channel { name: "Um".into(), ..c.clone() };
    let two = Channel { name: "Dois".into(), ..c.clone() };
    update(&store, &one).await.expect("first update");
    let before = event_count(&store, a).await;
    let err = update(&store, &two).await.expect_err("stale");
    match &err {
        Error::Conflict { reason, .. } => assert!(reason.contains("changed"), "[channels] stale reason: {reason}"),
        other => panic!("[channels] a stale version must be Conflict, got {other}"),
    }
    assert_eq!(event_count(&store, a).await, before, "[channels] a stale update writes no event");
    let got = store.get_channel(a, c.id).await.expect("get");
    assert_eq!((got.name.as_str(), got.version), ("Um", 1), "[channels] first writer wins");

    let ahead = Channel { version: 5, ..got.clone() };
    assert!(is_conflict(&update(&store, &ahead).await.expect_err("ahead")), "[channels] a future version is stale");
    let ghost = channel(a, "recording", "Ghost", None);
    let err = update(&store, &ghost).await.expect_err("missing");
    assert!(is_not_found(&err), "[channels] updating a missing channel is NotFound, got {err}");
    assert_eq!(event_count(&store, a).await, before, "[channels] refused updates write no event");
}

/// Setting and clearing the throttle keeps the version (and everything else)
/// and records an event each time; a missing channel is NotFound.
pub async fn channel_throttle_keeps_the_version(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = channel(a, "recording", "Loja", None);
    add(&store, &c).await;
    let c = update(&store, &Channel { name: "Loja 2".into(), ..c }).await.expect("update");
    let before = event_count(&store, a).await;
    let t = throttle("daily cap of 250 unique recipients reached");
    store.set_channel_throttle(a, c.id, Some(&t), &ev(a, EventType::CHANNEL_THROTTLED)).await.expect("throttle");
    let got = store.get_channel(a, c.id).await.expect("get");
    assert_eq!(got.throttle.as_ref(), Some(&t), "[throttle] stored exactly");
    assert_eq!(
        got,
        Channel { throttle: Some(t.clone()), ..c.clone() },
        "[throttle] nothing else moves, not the version"
    );
    let replaced = throttle("provider said 429");
    store.set_channel_throttle(a, c.id, Some(&replaced), &ev(a, EventType::CHANNEL_THROTTLED)).await.expect("replace");
    assert_eq!(store.get_channel(a, c.id).await.expect("get").throttle, Some(replaced), "[throttle] replaced");
    store.set_channel_throttle(a, c.id, None, &ev(a, EventType::CHANNEL_RESUMED)).await.expect("clear");
    assert_eq!(store.get_channel(a, c.id).await.expect("get"), c, "[throttle] cleared, version unchanged");
    assert_eq!(event_count(&store, a).await, before + 3, "[throttle] one event per call");

    let err = store
        .set_channel_throttle(a, ChannelId::new(), Some(&t), &ev(a, EventType::CHANNEL_THROTTLED))
        .await
        .expect_err("missing");
    assert!(is_not_found(&err), "[throttle] a missing channel is NotFound, got {err}");
    assert_eq!(event_count(&store, a).await, before + 3, "[throttle] refused call writes no event");
    // An update made after a throttle keeps it (the dispatcher owns it).
    store.set_channel_throttle(a, c.id, Some(&t), &ev(a, EventType::CHANNEL_THROTTLED)).await.expect("throttle");
    let stored = update(&store, &Channel { name: "Loja 3".into(), ..c }).await.expect("update");
    assert_eq!(stored.throttle, Some(t), "[throttle] update keeps it");
}

/// `find_channel_by_provider_id` matches kind and id exactly, across
/// accounts; `default_channel` is `None` without a default.
pub async fn channel_lookups(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    assert!(store.default_channel(a).await.expect("default").is_none(), "[lookups] no channel, no default");
    let ca = channel(a, "whatsapp-cloud", "A", Some("111"));
    let cb = channel(b, "whatsapp-cloud", "B", Some("222"));
    let web = channel(b, "whatsapp-web", "B web", Some("111"));
    for c in [&ca, &cb, &web] {
        add(&store, c).await;
    }
    assert!(store.default_channel(a).await.expect("default").is_none(), "[lookups] no flagged channel, no default");
    let cloud = ChannelKind::parse("whatsapp-cloud").expect("kind");
    let webk = ChannelKind::parse("whatsapp-web").expect("kind");
    let other = ChannelKind::parse("telegram").expect("kind");
    let find = |k: &ChannelKind, p: &str| {
        let (store, k, p) = (store.clone(), k.clone(), p.to_owned());
        async move { store.find_channel_by_provider_id(&k, &p).await.expect("find").map(|c| c.id) }
    };
    assert_eq!(find(&cloud, "111").await, Some(ca.id), "[lookups] cloud 111 is A's");
    assert_eq!(find(&cloud, "222").await, Some(cb.id), "[lookups] cloud 222 is B's");
    assert_eq!(find(&webk, "111").await, Some(web.id), "[lookups] web 111 is B's web channel");
    assert_eq!(find(&other, "111").await, None, "[lookups] another kind finds nothing");
    assert_eq!(find(&cloud, "11").await, None, "[lookups] ids match exactly, not by prefix");
    assert_eq!(find(&cloud, "%").await, None, "[lookups] wildcards are literal");
}

/// `list_all_channels` walks every account's channels in id order, each
/// once, in pages of at most `limit` (1..=1000).
pub async fn list_all_channels_pages_across_accounts(store: Arc<dyn Store>) {
    let accounts = [new_account(&store, "A").await, new_account(&store, "B").await, new_account(&store, "C").await];
    let mut ids = Vec::new();
    for i in 0..8 {
        let c = channel(accounts[i % 3], "recording", &format!("C{i}"), Some(&format!("p{i}")));
        add(&store, &c).await;
        ids.push(c.id);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_all_channels(after, 3).await.expect("list_all");
        assert!(page.len() <= 3, "[list_all] page size respected");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|c| c.id));
        pages += 1;
        assert!(pages < 10, "[list_all] terminates");
    }
    assert_eq!(seen, ids, "[list_all] every channel of every account once, in id order");
    let accounts_seen: BTreeSet<AccountId> =
        store.list_all_channels(None, 1000).await.expect("all").iter().map(|c| c.account_id).collect();
    assert_eq!(accounts_seen.len(), 3, "[list_all] across accounts");
    for bad in [0, 1001] {
        let err = store.list_all_channels(None, bad).await.expect_err("bad limit");
        assert!(matches!(err, Error::Validation { .. }), "[list_all] limit {bad} is Validation, got {err}");
    }
}

/// Each mutation writes exactly one event (its own, with its id); a refused
/// one — including a reused event id — writes none and changes nothing.
pub async fn channel_event_per_mutation(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut count = event_count(&store, a).await;
    let c = channel(a, "recording", "Loja", Some("p1"));
    let created = ev(a, EventType::CHANNEL_CREATED);
    store.insert_channel(&c, &created).await.expect("insert");
    count += 1;
    assert_eq!(event_count(&store, a).await, count, "[events] insert");
    let stored = store.list_events(a, None, 1000).await.expect("events");
    assert_eq!(stored.last(), Some(&created), "[events] the insert's own event is stored");

    let c = update(&store, &Channel { name: "Loja 2".into(), ..c }).await.expect("update");
    count += 1;
    assert_eq!(event_count(&store, a).await, count, "[events] update");
    let t = throttle("x");
    store.set_channel_throttle(a, c.id, Some(&t), &ev(a, EventType::CHANNEL_THROTTLED)).await.expect("throttle");
    store.set_channel_throttle(a, c.id, None, &ev(a, EventType::CHANNEL_RESUMED)).await.expect("resume");
    count += 2;
    assert_eq!(event_count(&store, a).await, count, "[events] throttle and resume");

    // Refusals: a reused event id, a provider id clash, a stale update, missing channels.
    let fresh = channel(a, "recording", "Nova", None);
    let err = store.insert_channel(&fresh, &created).await.expect_err("event id reused");
    assert!(is_conflict(&err), "[events] a reused event id is Conflict, got {err}");
    assert!(is_not_found(&store.get_channel(a, fresh.id).await.expect_err("x")), "[events] and stores nothing");
    let same_event = ev(a, EventType::CHANNEL_UPDATED);
    let c = store.update_channel(&Channel { name: "Loja 3".into(), ..c }, &same_event).await.expect("update");
    count += 1;
    let err = store.update_channel(&Channel { name: "Loja 4".into(), ..c.clone() }, &same_event).await;
    assert!(is_conflict(&err.expect_err("event id reused")), "[events] a reused event id on update is Conflict");
    assert_eq!(store.get_channel(a, c.id).await.expect("get"), c, "[events] and changes nothing");
    let clash = channel(a, "recording", "Clash", Some("p1"));
    let err = store.insert_channel(&clash, &ev(a, EventType::CHANNEL_CREATED)).await.expect_err("clash");
    assert!(is_conflict(&err), "[events] provider id clash");
    let stale = Channel { version: c.version - 1, ..c.clone() };
    assert!(is_conflict(&update(&store, &stale).await.expect_err("stale")), "[events] stale update");
    let err = store.delete_channel(a, ChannelId::new(), &ev(a, EventType::CHANNEL_DELETED)).await;
    assert!(is_not_found(&err.expect_err("missing")), "[events] delete missing");
    assert_eq!(event_count(&store, a).await, count, "[events] refusals write no event");

    store.delete_channel(a, c.id, &ev(a, EventType::CHANNEL_DELETED)).await.expect("delete");
    count += 1;
    assert_eq!(event_count(&store, a).await, count, "[events] delete");
    let err = store.delete_channel(a, c.id, &ev(a, EventType::CHANNEL_DELETED)).await.expect_err("again");
    assert!(is_not_found(&err), "[events] deleting twice is NotFound");
    let mismatched = store.insert_channel(&fresh, &ev(AccountId::new(), EventType::CHANNEL_CREATED)).await;
    assert!(
        matches!(mismatched, Err(Error::Validation { .. })),
        "[events] an event of another account is Validation, got {mismatched:?}"
    );
    assert_eq!(event_count(&store, a).await, count, "[events] refusals write no event");
}

/// Concurrent inserts of default channels in one account all succeed and
/// leave exactly one default.
pub async fn concurrent_default_channels_leave_one_default(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    add(&store, &default_channel(a, "Primeiro")).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let c = default_channel(a, &format!("Racer {i}"));
            store.insert_channel(&c, &ev(a, EventType::CHANNEL_CREATED)).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("[concurrency] every default insert succeeds");
    }
    let list = store.list_channels(a).await.expect("list");
    assert_eq!(list.len(), 9, "[concurrency] every channel stored");
    assert_eq!(defaults(&list).len(), 1, "[concurrency] exactly one default remains");
    let got = store.default_channel(a).await.expect("default").map(|c| c.id);
    assert_eq!(got, defaults(&list).first().copied(), "[concurrency] default_channel agrees");
}

/// Concurrent inserts of one `(kind, provider_id)` from several accounts:
/// exactly one succeeds, the others are Conflict and write no event.
pub async fn concurrent_channel_inserts_same_provider_id(store: Arc<dyn Store>) {
    let mut accounts = Vec::new();
    for i in 0..6 {
        accounts.push(new_account(&store, &format!("Acc {i}")).await);
    }
    let mut tasks = Vec::new();
    for &a in &accounts {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let c = channel(a, "whatsapp-cloud", "Racer", Some("999000"));
            store.insert_channel(&c, &ev(a, EventType::CHANNEL_CREATED)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(e) => assert!(is_conflict(&e), "[concurrency] losers get Conflict, got {e}"),
        }
    }
    assert_eq!(ok, 1, "[concurrency] exactly one channel takes the provider id");
    let mut events = 0;
    for &a in &accounts {
        events += event_count(&store, a).await;
    }
    assert_eq!(events, accounts.len() + 1, "[concurrency] one channel event in all");
}
