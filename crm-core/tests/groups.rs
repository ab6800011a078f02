//! The `Crm` group flows over the in-memory adapters: groups read from the
//! provider (joined elsewhere, left elsewhere), inbound group messages with
//! their sender, receipts per participant, and a channel without groups.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crm_core::domain::group::{GroupInfo, GroupParticipant};
use crm_core::{
    Channel, Crm, Error, EventStore, GroupManager, InboundGroupMessage, MemoryStore, MessageContent, MessageStatus,
    NewChannel, Phone, RecordingFactory, RecordingMessenger,
};

fn phone(s: &str) -> Phone {
    Phone::parse(s).unwrap()
}

async fn setup() -> (Crm, Arc<MemoryStore>, RecordingMessenger, Channel) {
    let messenger = RecordingMessenger::new();
    let store = Arc::new(MemoryStore::new());
    let crm = Crm::builder()
        .store(store.clone())
        .messenger_factory(Arc::new(RecordingFactory::new(messenger.clone())))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let input = NewChannel { kind: "recording".into(), name: "Loja".into(), ..Default::default() };
    let channel = crm.create_channel(account, input).await.unwrap();
    (crm, store, messenger, channel)
}

async fn group_events(store: &MemoryStore, channel: &Channel) -> Vec<String> {
    let events = store.list_events(channel.account_id, None, 1000).await.unwrap();
    events.into_iter().map(|e| e.event_type.to_string()).filter(|t| t.starts_with("group.")).collect()
}

#[tokio::test]
async fn a_refresh_stores_groups_joined_elsewhere_and_marks_left_ones() {
    let (crm, store, messenger, channel) = setup().await;
    let (account, id) = (channel.account_id, channel.id);
    let jid = "120363000000000042@g.us";
    messenger.groups().join(GroupInfo {
        jid: jid.into(),
        subject: "Fornecedores".into(),
        description: None,
        participants: vec![
            GroupParticipant::phone(phone("+5511900000000"), false),
            GroupParticipant::phone(phone("+5511987650009"), true),
        ],
    });
    assert!(crm.list_groups(account, id, false).await.unwrap().is_empty(), "nothing stored before a refresh");
    let listed = crm.list_groups(account, id, true).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subject, "Fornecedores");
    assert_eq!(listed[0].participants.iter().filter(|p| p.admin).count(), 1);
    // A second refresh with nothing new writes nothing.
    crm.list_groups(account, id, true).await.unwrap();
    assert_eq!(group_events(&store, &channel).await, ["group.created"]);

    // Left on the phone: the next refresh marks it left and keeps it.
    messenger.groups().leave_group(jid).await.unwrap();
    let listed = crm.list_groups(account, id, true).await.unwrap();
    assert!(listed[0].left_at.is_some(), "{listed:?}");
    assert_eq!(group_events(&store, &channel).await, ["group.created", "group.updated"]);
    let e = crm.send_to_group(account, id, listed[0].id, MessageContent::text("oi")).await.unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
}

#[tokio::test]
async fn inbound_group_messages_keep_their_sender_and_receipts_only_move_forward() {
    let (crm, store, _messenger, channel) = setup().await;
    let account = channel.account_id;
    let ana = phone("+5511987650001");
    let bia = phone("+5511987650002");
    let group = crm.create_group(account, channel.id, "Clientes", &[ana.clone(), bia.clone()]).await.unwrap();

    let inbound = InboundGroupMessage {
        group: group.jid.clone(),
        sender: ana.clone(),
        sender_name: Some("Ana".into()),
        provider_message_id: "GIN1".into(),
        content: MessageContent::text("Tem desconto?"),
        sent_at: None,
    };
    assert!(crm.record_group_inbound(&channel, inbound.clone()).await.unwrap(), "stored");
    assert!(!crm.record_group_inbound(&channel, inbound).await.unwrap(), "a repeat is stored once");
    // A message in a group not stored yet: read from the provider, or kept under its id.
    let unknown = InboundGroupMessage {
        group: "120363000000000099@g.us".into(),
        sender: bia.clone(),
        sender_name: None,
        provider_message_id: "GIN2".into(),
        content: MessageContent::text("Oi"),
        sent_at: None,
    };
    assert!(crm.record_group_inbound(&channel, unknown).await.unwrap());
    let other = crm.list_groups(account, channel.id, false).await.unwrap();
    assert!(other.iter().any(|g| g.jid == "120363000000000099@g.us"), "{other:?}");

    let sent = crm.send_to_group(account, channel.id, group.id, MessageContent::text("Sim!")).await.unwrap();
    let pid = sent.provider_message_id.clone().unwrap();
    let m = crm.apply_group_receipt(account, &pid, Some(&ana), MessageStatus::Read).await.unwrap();
    assert_eq!(m.status, MessageStatus::Read);
    let m = crm.apply_group_receipt(account, &pid, Some(&bia), MessageStatus::Delivered).await.unwrap();
    assert_eq!(m.status, MessageStatus::Read, "never backwards");
    assert_eq!(m.receipts.get(bia.as_str()), Some(&MessageStatus::Delivered));
    let e = crm.apply_group_receipt(account, "nope", None, MessageStatus::Read).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));

    let thread = crm.list_group_messages(account, channel.id, group.id, None, 100).await.unwrap();
    assert_eq!(thread.len(), 2);
    assert_eq!(thread[0].sender.as_ref(), Some(&ana));
    assert_eq!(thread[0].sender_name.as_deref(), Some("Ana"));
    assert_eq!(
        group_events(&store, &channel).await,
        ["group.created", "group.message_received", "group.created", "group.message_received", "group.message_sent"]
    );
}

#[tokio::test]
async fn unknown_channels_groups_and_bad_input_are_refused_before_the_provider() {
    let (crm, _store, messenger, channel) = setup().await;
    let account = channel.account_id;
    let e = crm.create_group(account, crm_core::ChannelId::new(), "G", &[phone("+5511987650001")]).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = crm.create_group(account, channel.id, " ", &[phone("+5511987650001")]).await.unwrap_err();
    assert!(matches!(e, Error::Validation { .. }), "{e:?}");
    let e = crm.parse_participants(&["+5511987650001".into(), "abc".into()]).unwrap_err();
    assert!(matches!(&e, Error::Validation { field, .. } if field == "participants[1]"), "{e:?}");
    let e = crm.get_group(account, channel.id, crm_core::GroupId::new()).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
    assert!(messenger.groups().list_groups().await.unwrap().is_empty(), "nothing reached the provider");
}
