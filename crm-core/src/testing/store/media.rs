//! Media records: the [`MediaRecordStore`](crate::MediaRecordStore) contract
//! (insert, get, update of the changing fields, tenancy, the retention and
//! erasure reads).

use std::future::Future;
use std::sync::Arc;

use super::{is_conflict, is_not_found, new_account, now};
use crate::{AccountId, ContactId, Media, MediaOrigin, MediaState, MessageId, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    media_records_lifecycle(make().await).await;
    media_retention_and_erasure_reads(make().await).await;
}

fn record(account: AccountId, origin: MediaOrigin) -> Media {
    Media::pending(account, origin, "image/jpeg", "Foto de férias.jpg", now())
}

/// Round trip of every field, updates (what may change changes, what may
/// not stays), conflicts and tenancy.
pub async fn media_records_lifecycle(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let pending = record(a, MediaOrigin::Inbound);
    store.insert_media(&pending).await.expect("insert_media");
    assert_eq!(store.get_media(a, pending.id).await.expect("get_media"), pending, "[media] round trip");
    assert!(is_conflict(&store.insert_media(&pending).await.expect_err("same id")), "[media] id taken");
    assert!(is_not_found(&store.get_media(b, pending.id).await.expect_err("b")), "[media] another account's record");
    assert!(is_not_found(&store.get_media(a, crate::MediaId::new()).await.expect_err("missing")));

    let later = now();
    let mut stored = pending.clone().moved(MediaState::Stored, None, later);
    stored.key = Some(format!("account/{a}/inbound/0193a9f2-0000-7000-8000-000000000000-foto.jpg"));
    stored.size = Some(5 * 1024 * 1024 * 1024);
    stored.sha256 = Some("ab".repeat(32));
    stored.content_type = "image/png".into();
    stored.message_id = Some(MessageId::new());
    stored.contact_id = Some(ContactId::new());
    // Fields that never change are kept as stored, whatever the update says.
    let mut attempt = stored.clone();
    attempt.filename = "other.png".into();
    attempt.origin = MediaOrigin::Upload;
    attempt.created_at = later;
    let got = store.update_media(&attempt).await.expect("update_media");
    assert_eq!(got, stored, "[media] the changing fields change, filename/origin/created_at stay");
    assert_eq!(store.get_media(a, pending.id).await.expect("get"), stored, "[media] read back as returned");

    let failed = stored.clone().moved(MediaState::Failed, Some(&"x".repeat(2000)), now());
    let got = store.update_media(&failed).await.expect("update");
    assert_eq!((got.state, got.error.as_deref().map(str::len)), (MediaState::Failed, Some(500)), "[media] failed");

    let mut foreign = failed.clone();
    foreign.account_id = b;
    assert!(is_not_found(&store.update_media(&foreign).await.expect_err("b")), "[media] another account's update");
    assert!(is_not_found(&store.update_media(&record(a, MediaOrigin::Upload)).await.expect_err("missing")));
}

/// `stored_media_before` (any account, state stored, oldest first, limited)
/// and `list_contact_media` (one account's records of one contact).
pub async fn media_retention_and_erasure_reads(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let contact = ContactId::new();
    let mut ids = Vec::new();
    for (account, state) in [
        (a, MediaState::Stored),
        (b, MediaState::Stored),
        (a, MediaState::Pending),
        (a, MediaState::Deleted),
        (a, MediaState::Stored),
    ] {
        let mut m = record(account, MediaOrigin::Inbound).moved(state, None, now());
        m.contact_id = Some(contact);
        store.insert_media(&m).await.expect("insert");
        ids.push(m.id);
    }
    let cutoff = now();
    let late = record(a, MediaOrigin::Upload).moved(MediaState::Stored, None, cutoff);
    store.insert_media(&Media { created_at: cutoff + chrono::Duration::seconds(5), ..late }).await.expect("insert");

    let old: Vec<_> = store.stored_media_before(cutoff, 10).await.expect("before").iter().map(|m| m.id).collect();
    assert_eq!(old, [ids[0], ids[1], ids[4]], "[media] stored ones created before the cutoff, oldest first");
    let first: Vec<_> = store.stored_media_before(cutoff, 2).await.expect("before").iter().map(|m| m.id).collect();
    assert_eq!(first, [ids[0], ids[1]], "[media] at most limit");

    let mut of_contact: Vec<_> =
        store.list_contact_media(a, contact).await.expect("contact").iter().map(|m| m.id).collect();
    of_contact.sort();
    assert_eq!(of_contact, [ids[0], ids[2], ids[3], ids[4]], "[media] the account's records of the contact");
    assert!(store.list_contact_media(a, ContactId::new()).await.expect("none").is_empty());
}
