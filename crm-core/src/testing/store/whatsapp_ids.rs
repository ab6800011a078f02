//! The WhatsApp id map ([`WhatsAppIdStore`](crate::WhatsAppIdStore)): LIDs
//! linked to phones and the WhatsApp ids confirmed for phones, per channel.

use std::future::Future;
use std::sync::Arc;

use super::{ev, is_not_found, new_account, now};
use crate::{Channel, ChannelId, Error, EventType, NewChannel, Phone, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    lids_link_one_phone_per_channel(make().await).await;
    whatsapp_ids_use_the_canonical_phone(make().await).await;
    whatsapp_ids_need_the_accounts_channel_and_valid_ids(make().await).await;
}

async fn add_channel(store: &Arc<dyn Store>, account: crate::AccountId, name: &str) -> Channel {
    let input = NewChannel { kind: "recording".into(), name: name.into(), ..Default::default() };
    let c = Channel::new(account, &input, None, now()).expect("valid channel");
    store.insert_channel(&c, &ev(account, EventType::CHANNEL_CREATED)).await.expect("[fixture] insert_channel");
    c
}

fn phone(s: &str) -> Phone {
    Phone::parse(s).expect("[fixture] phone")
}

/// A LID links to one phone per channel (linking it elsewhere moves it; a
/// phone's new LID replaces the old one), independently on each channel;
/// linking keeps a confirmed WhatsApp id and recording one keeps the LID.
pub async fn lids_link_one_phone_per_channel(store: Arc<dyn Store>) {
    let account = new_account(&store, "lids").await;
    let a = add_channel(&store, account, "a").await;
    let b = add_channel(&store, account, "b").await;
    let maria = phone("+5511987654321");
    let joao = phone("+5521998765432");
    assert_eq!(store.phone_for_lid(account, a.id, "111@lid").await.expect("lookup"), None);
    assert_eq!(store.whatsapp_identity(account, a.id, &maria).await.expect("lookup"), None);

    store.record_whatsapp_id(account, a.id, &maria, "551187654321").await.expect("record id");
    store.link_lid(account, a.id, &maria, "111@lid").await.expect("link");
    store.link_lid(account, a.id, &maria, "111@lid").await.expect("link again");
    assert_eq!(store.phone_for_lid(account, a.id, "111@lid").await.expect("lookup"), Some(maria.clone()));
    assert_eq!(store.phone_for_lid(account, b.id, "111@lid").await.expect("other channel"), None);
    let identity = store.whatsapp_identity(account, a.id, &maria).await.expect("identity").expect("known");
    assert_eq!(identity.channel_id, a.id);
    assert_eq!(identity.lid.as_deref(), Some("111@lid"));
    assert_eq!(identity.whatsapp_id.as_deref(), Some("551187654321"), "linking kept the id");

    // The LID moves to another phone.
    store.link_lid(account, a.id, &joao, "111@lid").await.expect("move");
    assert_eq!(store.phone_for_lid(account, a.id, "111@lid").await.expect("lookup"), Some(joao.clone()));
    let identity = store.whatsapp_identity(account, a.id, &maria).await.expect("identity").expect("known");
    assert_eq!(identity.lid, None, "the LID left maria");
    assert_eq!(identity.whatsapp_id.as_deref(), Some("551187654321"));

    // A phone's new LID replaces the old one.
    store.link_lid(account, a.id, &joao, "222@lid").await.expect("replace");
    assert_eq!(store.phone_for_lid(account, a.id, "111@lid").await.expect("lookup"), None);
    assert_eq!(store.phone_for_lid(account, a.id, "222@lid").await.expect("lookup"), Some(joao.clone()));
    store.record_whatsapp_id(account, a.id, &joao, "5521998765432").await.expect("record id");
    let identity = store.whatsapp_identity(account, a.id, &joao).await.expect("identity").expect("known");
    assert_eq!(identity.lid.as_deref(), Some("222@lid"), "recording the id kept the LID");

    // The same LID on another channel is another fact.
    store.link_lid(account, b.id, &maria, "222@lid").await.expect("link on b");
    assert_eq!(store.phone_for_lid(account, b.id, "222@lid").await.expect("lookup"), Some(maria.clone()));
    assert_eq!(store.phone_for_lid(account, a.id, "222@lid").await.expect("lookup"), Some(joao));

    // Rows go with their channel.
    store.delete_channel(account, b.id, &ev(account, EventType::CHANNEL_DELETED)).await.expect("delete");
    let gone = store.phone_for_lid(account, b.id, "222@lid").await.expect_err("deleted channel");
    assert!(is_not_found(&gone), "{gone:?}");
}

/// A Brazilian mobile with or without its 9th digit is one row: the
/// confirmed id recorded for one form is found from the other, and the last
/// answer wins.
pub async fn whatsapp_ids_use_the_canonical_phone(store: Arc<dyn Store>) {
    let account = new_account(&store, "canonical").await;
    let c = add_channel(&store, account, "c").await;
    let legacy = phone("+55 11 8765-4321");
    let modern = phone("+55 11 98765-4321");
    store.record_whatsapp_id(account, c.id, &legacy, "551187654321").await.expect("record");
    let identity = store.whatsapp_identity(account, c.id, &modern).await.expect("identity").expect("known");
    assert_eq!(identity.phone, modern);
    assert_eq!(identity.whatsapp_id.as_deref(), Some("551187654321"));
    store.record_whatsapp_id(account, c.id, &modern, "5511987654321").await.expect("record again");
    let identity = store.whatsapp_identity(account, c.id, &legacy).await.expect("identity").expect("known");
    assert_eq!(identity.whatsapp_id.as_deref(), Some("5511987654321"));
    assert_eq!(identity.lid, None);
}

/// Another account's channel and a missing channel are `NotFound` (nothing
/// written); malformed LIDs and ids are `Validation` (field named).
pub async fn whatsapp_ids_need_the_accounts_channel_and_valid_ids(store: Arc<dyn Store>) {
    let account = new_account(&store, "mine").await;
    let other = new_account(&store, "other").await;
    let c = add_channel(&store, account, "c").await;
    let p = phone("+5511987654321");
    for (who, channel) in [(other, c.id), (account, ChannelId::new())] {
        let e = store.link_lid(who, channel, &p, "1@lid").await.expect_err("link");
        assert!(is_not_found(&e), "{e:?}");
        let e = store.record_whatsapp_id(who, channel, &p, "5511987654321").await.expect_err("record");
        assert!(is_not_found(&e), "{e:?}");
        let e = store.whatsapp_identity(who, channel, &p).await.expect_err("read");
        assert!(is_not_found(&e), "{e:?}");
        let e = store.phone_for_lid(who, channel, "1@lid").await.expect_err("read");
        assert!(is_not_found(&e), "{e:?}");
    }
    assert_eq!(store.whatsapp_identity(account, c.id, &p).await.expect("read"), None, "nothing written");
    for bad in ["", "5511987654321@c.us", "abc@lid"] {
        let e = store.link_lid(account, c.id, &p, bad).await.expect_err("bad lid");
        assert!(matches!(&e, Error::Validation { field, .. } if field == "lid"), "{e:?}");
    }
    for bad in ["", "+5511987654321", "12"] {
        let e = store.record_whatsapp_id(account, c.id, &p, bad).await.expect_err("bad id");
        assert!(matches!(&e, Error::Validation { field, .. } if field == "whatsapp_id"), "{e:?}");
    }
    assert_eq!(store.whatsapp_identity(account, c.id, &p).await.expect("read"), None, "nothing written");
}
