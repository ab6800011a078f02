//! Campaigns: the [`CampaignStore`](crate::CampaignStore) contract.

use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, insert, is_conflict, is_not_found, new_account, now, phone};
use crate::{
    AccountId, Audience, Campaign, CampaignState, ChannelId, ContactId, EventType, MessageId, NewCampaign, PageRequest,
    PlanProgress, PlannedRecipient, RecipientState, SkipReason, Store, Tag,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    campaign_roundtrip_and_tenancy(make().await).await;
    campaign_update_is_optimistic(make().await).await;
    campaign_delete_takes_its_recipients(make().await).await;
    plan_recipients_moves_the_plan_once(make().await).await;
    recipients_move_only_forward(make().await).await;
    recipient_replies_and_counts(make().await).await;
}

fn campaign(account: AccountId, audience: Audience) -> Campaign {
    let input = NewCampaign {
        name: "Black Friday".into(),
        channel_id: None,
        template: "promo".into(),
        language: Some("pt_BR".into()),
        variables: [("offer".to_owned(), "10%".to_owned())].into(),
        audience,
        scheduled_at: None,
    };
    Campaign::new(account, input, ChannelId::new(), now()).expect("valid campaign")
}

fn tag_audience() -> Audience {
    Audience::Tag { tag: Tag::parse("vip").expect("tag") }
}

fn pending(contact: ContactId) -> PlannedRecipient {
    PlannedRecipient { contact_id: Some(contact), phone: None, state: RecipientState::Pending, reason: None }
}

fn progress(planned: u64, after: Option<ContactId>, done: bool) -> PlanProgress {
    PlanProgress { planned, after, done }
}

async fn stored(store: &Arc<dyn Store>, account: AccountId, audience: Audience) -> Campaign {
    let c = campaign(account, audience);
    store.insert_campaign(&c, &ev(account, EventType::CAMPAIGN_CREATED)).await.expect("[fixture] insert_campaign");
    c
}

/// Every field round-trips (every audience kind); another account's
/// campaign is missing; lists page in id order; a taken id is `Conflict`.
pub async fn campaign_roundtrip_and_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let audiences = [
        tag_audience(),
        Audience::Stage { stage: crate::LeadStage::Qualified },
        Audience::Filter { tag: None, stage: None, search: Some("ana".into()) },
        Audience::Contacts { contact_ids: vec![ContactId::new(), ContactId::new()] },
        Audience::Phones { phones: vec!["+55 11 98765-4321".into(), "nope".into()] },
    ];
    let mut ids = Vec::new();
    for audience in audiences {
        let c = stored(&store, a, audience).await;
        assert_eq!(store.get_campaign(a, c.id).await.expect("get"), c, "[campaigns] round trip");
        ids.push(c.id);
    }
    let again = store.get_campaign(a, ids[0]).await.expect("get");
    let err = store.insert_campaign(&again, &ev(a, EventType::CAMPAIGN_CREATED)).await.expect_err("taken id");
    assert!(is_conflict(&err), "[campaigns] a taken id is Conflict, got {err}");
    let err = store.get_campaign(b, ids[0]).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[campaigns] another account's campaign is NotFound, got {err}");
    let first = store.list_campaigns(a, &PageRequest::first(3).expect("limit")).await.expect("list");
    let cursor = first.next_cursor.clone().expect("a second page");
    let second = store.list_campaigns(a, &PageRequest::new(Some(&cursor), 3).expect("cursor")).await.expect("list");
    let listed: Vec<_> = first.items.iter().chain(&second.items).map(|c| c.id).collect();
    assert_eq!(listed, ids, "[campaigns] listed in id order across pages");
    assert!(store.list_campaigns(b, &PageRequest::default()).await.expect("list").items.is_empty(), "[campaigns] B");
    let err = store.list_recipients(b, ids[0], None, None, 10).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[campaigns] another account's recipients are NotFound, got {err}");
}

/// `update_campaign` is a compare-and-set on the version, writes its event,
/// and leaves the plan progress alone.
pub async fn campaign_update_is_optimistic(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = stored(&store, a, tag_audience()).await;
    let x = ContactId::new();
    assert!(
        store
            .plan_recipients(a, c.id, &c.plan, &progress(1, Some(x), false), &[pending(x)], now())
            .await
            .expect("plan"),
        "[campaigns] plan"
    );
    let mut running = c.clone();
    running.transition(CampaignState::Running, now()).expect("transition");
    let before = event_count(&store, a).await;
    let saved = store.update_campaign(&running, &ev(a, EventType::CAMPAIGN_STARTED)).await.expect("update");
    assert_eq!(saved.version, 1, "[campaigns] version moves");
    assert_eq!(saved.state, CampaignState::Running);
    assert_eq!(saved.started_at, running.started_at, "[campaigns] times stored");
    assert_eq!(saved.plan, progress(1, Some(x), false), "[campaigns] the plan progress is the stored one");
    assert_eq!(store.get_campaign(a, c.id).await.expect("get"), saved, "[campaigns] what update returns is stored");
    assert_eq!(event_count(&store, a).await, before + 1, "[campaigns] one event");
    let mut stale = running.clone();
    stale.transition(CampaignState::Paused, now()).expect("transition");
    let err = store.update_campaign(&stale, &ev(a, EventType::CAMPAIGN_PAUSED)).await.expect_err("stale");
    assert!(is_conflict(&err), "[campaigns] a stale version is Conflict, got {err}");
    assert_eq!(event_count(&store, a).await, before + 1, "[campaigns] a refused update writes no event");
    let mut missing = campaign(a, tag_audience());
    missing.version = 0;
    let err = store.update_campaign(&missing, &ev(a, EventType::CAMPAIGN_PAUSED)).await.expect_err("missing");
    assert!(is_not_found(&err), "[campaigns] updating a missing campaign is NotFound, got {err}");
}

/// `delete_campaign` removes the campaign and its recipients with its event
/// when the version matches; a stale version is Conflict and a missing (or
/// another account's) campaign NotFound, both writing nothing.
pub async fn campaign_delete_takes_its_recipients(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = stored(&store, a, tag_audience()).await;
    let kept = stored(&store, a, tag_audience()).await;
    let (x, y) = (ContactId::new(), ContactId::new());
    for (campaign, contact) in [(&c, x), (&kept, y)] {
        let planned = store
            .plan_recipients(
                a,
                campaign.id,
                &campaign.plan,
                &progress(1, Some(contact), false),
                &[pending(contact)],
                now(),
            )
            .await
            .expect("plan");
        assert!(planned, "[campaigns] plan");
    }
    let before = event_count(&store, a).await;
    let err = store.delete_campaign(a, c.id, c.version + 1, &ev(a, EventType::CAMPAIGN_DELETED)).await;
    assert!(is_conflict(&err.expect_err("stale")), "[campaigns] deleting with a stale version is Conflict");
    let err = store.delete_campaign(b, c.id, c.version, &ev(b, EventType::CAMPAIGN_DELETED)).await;
    assert!(is_not_found(&err.expect_err("tenancy")), "[campaigns] another account's campaign is NotFound");
    assert_eq!(event_count(&store, a).await, before, "[campaigns] a refused delete writes no event");
    assert_eq!(store.list_recipients(a, c.id, None, None, 10).await.expect("recipients").len(), 1);

    store.delete_campaign(a, c.id, c.version, &ev(a, EventType::CAMPAIGN_DELETED)).await.expect("delete");
    assert_eq!(event_count(&store, a).await, before + 1, "[campaigns] one event");
    assert!(is_not_found(&store.get_campaign(a, c.id).await.expect_err("gone")), "[campaigns] deleted");
    let err = store.list_recipients(a, c.id, None, None, 10).await.expect_err("gone");
    assert!(is_not_found(&err), "[campaigns] its recipients went with it, got {err}");
    let err = store.delete_campaign(a, c.id, c.version, &ev(a, EventType::CAMPAIGN_DELETED)).await;
    assert!(is_not_found(&err.expect_err("again")), "[campaigns] deleting twice is NotFound");
    let other = store.get_campaign(a, kept.id).await.expect("another campaign stays");
    assert_eq!((other.version, other.plan.planned), (kept.version, 1), "[campaigns] another campaign is untouched");
    let others = store.list_recipients(a, kept.id, None, None, 10).await.expect("recipients");
    assert_eq!(others.len(), 1, "[campaigns] another campaign's recipients stay");
    let counts = store.recipient_counts(a, kept.id).await.expect("counts");
    assert_eq!(counts.get(RecipientState::Pending), 1, "[campaigns] and are still counted");
}

/// `plan_recipients` stores a batch with seq numbers from the progress,
/// once: a second planner of the same batch stores nothing; repeated
/// contacts are kept once; bad arguments are refused.
pub async fn plan_recipients_moves_the_plan_once(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = stored(&store, a, tag_audience()).await;
    let (x, y, z) = (ContactId::new(), ContactId::new(), ContactId::new());
    let batch = [
        pending(x),
        PlannedRecipient::skipped(Some(y), None, SkipReason::OptedOut),
        pending(x),
        PlannedRecipient::skipped(None, Some("+5511999990000".into()), SkipReason::NotFound),
    ];
    let to = progress(4, Some(y), false);
    assert!(store.plan_recipients(a, c.id, &c.plan, &to, &batch, now()).await.expect("plan"), "[plan] first");
    assert!(
        !store.plan_recipients(a, c.id, &c.plan, &to, &batch, now()).await.expect("plan again"),
        "[plan] a second planner of the same batch stores nothing"
    );
    assert_eq!(store.get_campaign(a, c.id).await.expect("get").plan, to, "[plan] progress stored");
    let all = store.list_recipients(a, c.id, None, None, 100).await.expect("list");
    let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![0, 1, 3], "[plan] seq from the progress; the repeated contact is stored once");
    assert_eq!(all[1].reason.as_deref(), Some("opted_out"), "[plan] skip reason kept");
    assert_eq!(all[1].state, RecipientState::Skipped);
    assert_eq!(all[2].phone.as_deref(), Some("+5511999990000"), "[plan] a listed phone without a contact is kept");
    assert_eq!(all[2].contact_id, None);
    let next = progress(5, Some(z), true);
    assert!(store.plan_recipients(a, c.id, &to, &next, &[pending(z)], now()).await.expect("plan"), "[plan] next");
    let pend = store.pending_recipients(a, c.id, 10).await.expect("pending");
    assert_eq!(pend.iter().map(|r| (r.seq, r.contact_id)).collect::<Vec<_>>(), vec![(0, Some(x)), (4, Some(z))]);
    let only = store.list_recipients(a, c.id, Some(RecipientState::Pending), Some(0), 10).await.expect("list");
    assert_eq!(only.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4], "[plan] filter by state after a seq");
    // Bad arguments.
    let err = store.plan_recipients(a, c.id, &next, &progress(6, None, true), &[], now()).await.expect_err("done");
    assert!(matches!(err, crate::Error::Validation { .. }), "[plan] a finished plan does not move, got {err}");
    let err = store.plan_recipients(a, c.id, &to, &to, &[pending(z)], now()).await.expect_err("backwards");
    assert!(matches!(err, crate::Error::Validation { .. }), "[plan] progress must cover the batch, got {err}");
    let other = campaign(a, tag_audience());
    let err = store.plan_recipients(a, other.id, &other.plan, &to, &[], now()).await.expect_err("missing");
    assert!(is_not_found(&err), "[plan] a missing campaign is NotFound, got {err}");
    let err = store.pending_recipients(a, c.id, 0).await.expect_err("limit");
    assert!(matches!(err, crate::Error::Validation { .. }), "[plan] limit 0 refused, got {err}");
}

/// Recipients move along their predecessors only; by message id too.
pub async fn recipients_move_only_forward(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = stored(&store, a, tag_audience()).await;
    let (x, y) = (ContactId::new(), ContactId::new());
    let to = progress(2, Some(y), true);
    store.plan_recipients(a, c.id, &c.plan, &to, &[pending(x), pending(y)], now()).await.expect("plan");
    let m = MessageId::new();
    let set = |seq, state, message| {
        let store = store.clone();
        async move { store.set_recipient_state(a, c.id, seq, state, None, message, now()).await.expect("set") }
    };
    assert!(!set(0, RecipientState::Sent, None).await, "[recipients] pending cannot jump to sent");
    assert!(set(0, RecipientState::Queued, Some(m)).await, "[recipients] pending → queued");
    assert!(!set(0, RecipientState::Queued, Some(MessageId::new())).await, "[recipients] queued twice refused");
    assert!(
        !store.set_recipient_state_by_message(b, m, RecipientState::Sent, None, now()).await.expect("other account"),
        "[recipients] another account's message moves nothing"
    );
    let by_msg = |state| {
        let store = store.clone();
        async move { store.set_recipient_state_by_message(a, m, state, Some("why"), now()).await.expect("by message") }
    };
    assert!(by_msg(RecipientState::Delivered).await, "[recipients] queued → delivered (sent report lost)");
    assert!(!by_msg(RecipientState::Sent).await, "[recipients] delivered never goes back to sent");
    assert!(by_msg(RecipientState::Read).await, "[recipients] delivered → read");
    assert!(!by_msg(RecipientState::Failed).await, "[recipients] read is terminal");
    assert!(
        !store.set_recipient_state_by_message(a, MessageId::new(), RecipientState::Sent, None, now()).await.expect("x"),
        "[recipients] an unknown message moves nothing"
    );
    let r = &store.list_recipients(a, c.id, None, None, 10).await.expect("list")[0];
    assert_eq!((r.state, r.message_id, r.reason.as_deref()), (RecipientState::Read, Some(m), Some("why")));
    assert!(set(1, RecipientState::Failed, None).await, "[recipients] pending → failed (refused by the pipeline)");
    let err = store.set_recipient_state(a, c.id, 9, RecipientState::Queued, None, None, now()).await.expect_err("9");
    assert!(is_not_found(&err), "[recipients] a missing seq is NotFound, got {err}");
}

/// Replies mark sent recipients of the contact once; counts add up by state.
pub async fn recipient_replies_and_counts(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = stored(&store, a, tag_audience()).await;
    let contacts: Vec<_> = (0..4).map(|i| super::contact(a, "Ana", &phone(i))).collect();
    for ct in &contacts {
        insert(&store, ct).await;
    }
    let ids: Vec<_> = contacts.iter().map(|ct| ct.id).collect();
    let mut batch: Vec<_> = ids.iter().map(|&i| pending(i)).collect();
    batch.push(PlannedRecipient::skipped(None, Some("x".into()), SkipReason::InvalidPhone));
    store.plan_recipients(a, c.id, &c.plan, &progress(5, None, true), &batch, now()).await.expect("plan");
    for (seq, state) in [(0, RecipientState::Sent), (1, RecipientState::Read), (2, RecipientState::Queued)] {
        let m = MessageId::new();
        store.set_recipient_state(a, c.id, seq, RecipientState::Queued, None, Some(m), now()).await.expect("queue");
        store.set_recipient_state_by_message(a, m, state, None, now()).await.expect("move");
    }
    let at = now();
    assert_eq!(store.record_recipient_reply(a, ids[0], at).await.expect("reply"), 1, "[replies] a sent one");
    assert_eq!(store.record_recipient_reply(a, ids[0], now()).await.expect("reply"), 0, "[replies] once");
    assert_eq!(store.record_recipient_reply(a, ids[2], now()).await.expect("reply"), 0, "[replies] not yet sent");
    assert_eq!(store.record_recipient_reply(a, ids[3], now()).await.expect("reply"), 0, "[replies] pending");
    let r = &store.list_recipients(a, c.id, None, None, 1).await.expect("list")[0];
    assert_eq!(r.replied_at, Some(at), "[replies] the time is kept");
    let counts = store.recipient_counts(a, c.id).await.expect("counts");
    let by: Vec<u64> = RecipientState::ALL.iter().map(|s| counts.get(*s)).collect();
    // pending, skipped, queued, sent, delivered, read, failed
    assert_eq!(by, vec![1, 1, 1, 1, 0, 1, 0], "[counts] by state");
    assert_eq!(counts.replied, 1, "[counts] replies");
}
