//! The assistant's store: the [`AssistantStore`](crate::AssistantStore)
//! contract (usage rows and totals, auto-reply settings, drafts, recent
//! messages).

use chrono::Duration;
use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, event_count, inbound, insert, is_conflict, is_not_found, new_account, now, outbound};
use crate::domain::assistant::{
    AiDraft, AiUsage, AutoReplyMode, AutoReplySetting, BusinessContext, Intent, LeadSignals, Level, MessageAnalysis,
    Operation, Sentiment, SentimentScore, TokenUsage, Tone, UsageTotals,
};
use crate::{AiDraftId, ChannelId, ContactId, EventType, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    ai_usage_totals(make().await).await;
    auto_reply_settings(make().await).await;
    ai_drafts_and_recent_messages(make().await).await;
}

fn usage(
    account: crate::AccountId,
    at: chrono::DateTime<chrono::Utc>,
    model: &str,
    i: u32,
    o: u32,
    cost: i64,
) -> AiUsage {
    AiUsage {
        account_id: account,
        at,
        operation: Operation::Draft,
        model: model.into(),
        usage: TokenUsage { input: i, output: o },
        cost_micros: cost,
    }
}

/// Usage: rows total per model since a time, sorted by model, per account.
pub async fn ai_usage_totals(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let t0 = now();
    let rows = [
        usage(a, t0 - Duration::days(40), "gpt-4o-mini", 1000, 1000, 900),
        usage(a, t0, "gpt-4o-mini", 120, 30, 36),
        usage(a, t0 + Duration::seconds(1), "gpt-4o-mini", 80, 20, 24),
        usage(a, t0, "gpt-4o", 100, 50, 750),
        usage(b, t0, "gpt-4o", 5, 5, 1),
    ];
    for r in &rows {
        store.record_ai_usage(r).await.expect("record_ai_usage");
    }
    let totals = store.ai_usage_since(a, t0).await.expect("ai_usage_since");
    assert_eq!(totals, UsageTotals::from_rows(&rows[1..4]), "[ai usage] totals since t0 per model");
    assert_eq!(totals.models.iter().map(|m| m.model.as_str()).collect::<Vec<_>>(), ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(totals.models[1].requests, 2);
    assert_eq!(totals.models[1].input_tokens, 200);
    assert_eq!(totals.tokens(), 400, "[ai usage] tokens of every model");
    assert_eq!(totals.cost_micros(), 810);
    let all = store.ai_usage_since(a, t0 - Duration::days(60)).await.expect("all");
    assert_eq!(all.requests(), 4, "[ai usage] older rows count from an older time");
    let none = store.ai_usage_since(crate::AccountId::new(), t0).await.expect("unknown account");
    assert!(none.models.is_empty(), "[ai usage] an account with no rows has no totals");
}

/// Auto-reply: one setting per (account, channel), replaced, with its event; listed account-wide first.
pub async fn auto_reply_settings(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let (c1, c2) = (ChannelId::new(), ChannelId::new());
    let (c1, c2) = if c1 < c2 { (c1, c2) } else { (c2, c1) };
    let setting = |account, channel_id, mode| AutoReplySetting {
        account_id: account,
        channel_id,
        mode,
        context: BusinessContext { business_type: Some("padaria".into()), tone: Tone::Casual, ..Default::default() },
        updated_at: now(),
    };
    assert!(store.list_auto_replies(a).await.expect("list").is_empty(), "[auto reply] none at first");
    let before = event_count(&store, a).await;
    store
        .put_auto_reply(&setting(a, Some(c2), AutoReplyMode::Send), &ev(a, EventType::AI_AUTO_REPLY_UPDATED))
        .await
        .expect("put");
    store
        .put_auto_reply(&setting(a, None, AutoReplyMode::Suggest), &ev(a, EventType::AI_AUTO_REPLY_UPDATED))
        .await
        .expect("put");
    store
        .put_auto_reply(&setting(a, Some(c1), AutoReplyMode::Off), &ev(a, EventType::AI_AUTO_REPLY_UPDATED))
        .await
        .expect("put");
    let replaced = setting(a, Some(c2), AutoReplyMode::Suggest);
    let stored = store.put_auto_reply(&replaced, &ev(a, EventType::AI_AUTO_REPLY_UPDATED)).await.expect("replace");
    assert_eq!(stored, replaced);
    store
        .put_auto_reply(&setting(b, None, AutoReplyMode::Send), &ev(b, EventType::AI_AUTO_REPLY_UPDATED))
        .await
        .expect("b");
    assert_eq!(event_count(&store, a).await, before + 4, "[auto reply] one event per put");
    let listed = store.list_auto_replies(a).await.expect("list");
    let keys: Vec<_> = listed.iter().map(|s| (s.channel_id, s.mode)).collect();
    assert_eq!(
        keys,
        [(None, AutoReplyMode::Suggest), (Some(c1), AutoReplyMode::Off), (Some(c2), AutoReplyMode::Suggest)],
        "[auto reply] account-wide first, then by channel; a put replaces"
    );
    assert_eq!(listed[2], replaced, "[auto reply] round trip (context, time)");
    let err =
        store.put_auto_reply(&setting(a, None, AutoReplyMode::Off), &ev(b, EventType::AI_AUTO_REPLY_UPDATED)).await;
    assert!(err.is_err(), "[auto reply] an event of another account is refused");
    assert_eq!(store.list_auto_replies(b).await.expect("list").len(), 1, "[auto reply] per account");
}

/// Drafts: stored with their event, listed newest first per contact, gone with
/// the contact; recent messages newest first.
pub async fn ai_drafts_and_recent_messages(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let ana = contact(a, "Ana", "+5511987650001");
    let bia = contact(a, "Bia", "+5511987650002");
    insert(&store, &ana).await;
    insert(&store, &bia).await;
    let draft = |contact_id: ContactId, text: &str| AiDraft {
        id: AiDraftId::new(),
        account_id: a,
        contact_id,
        message_id: None,
        text: text.into(),
        model: "heuristic".into(),
        created_at: now(),
    };
    let first = draft(ana.id, "Olá Ana!");
    let second = AiDraft { message_id: Some(crate::MessageId::new()), ..draft(ana.id, "Temos sim.") };
    let before = event_count(&store, a).await;
    store.insert_ai_draft(&first, &ev(a, EventType::AI_DRAFT_SUGGESTED)).await.expect("insert");
    store.insert_ai_draft(&second, &ev(a, EventType::AI_DRAFT_SUGGESTED)).await.expect("insert");
    store.insert_ai_draft(&draft(bia.id, "Oi Bia"), &ev(a, EventType::AI_DRAFT_SUGGESTED)).await.expect("insert");
    assert_eq!(event_count(&store, a).await, before + 3, "[ai drafts] one event per draft");
    let dup = store.insert_ai_draft(&first, &ev(a, EventType::AI_DRAFT_SUGGESTED)).await.expect_err("dup");
    assert!(is_conflict(&dup), "[ai drafts] ids are unique: {dup:?}");
    let missing = draft(ContactId::new(), "x");
    let err = store.insert_ai_draft(&missing, &ev(a, EventType::AI_DRAFT_SUGGESTED)).await.expect_err("no contact");
    assert!(is_not_found(&err), "[ai drafts] the contact must exist: {err:?}");
    let theirs = AiDraft { account_id: b, ..draft(ana.id, "x") };
    let err = store.insert_ai_draft(&theirs, &ev(b, EventType::AI_DRAFT_SUGGESTED)).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[ai drafts] another account's contact is NotFound");
    let listed = store.list_ai_drafts(a, ana.id, 10).await.expect("list");
    assert_eq!(listed, [second.clone(), first.clone()], "[ai drafts] newest first, round trip");
    assert_eq!(store.list_ai_drafts(a, ana.id, 1).await.expect("list"), [second], "[ai drafts] limit");
    assert!(store.list_ai_drafts(b, ana.id, 10).await.expect("list").is_empty(), "[ai drafts] per account");

    let mut sent = Vec::new();
    for (i, text) in ["um", "dois", "três"].into_iter().enumerate() {
        let m = if i == 1 { inbound(&ana, &format!("wamid.{i}"), now()) } else { outbound(&ana, text) };
        store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert_message");
        sent.push(m);
    }
    let recent = store.recent_messages(a, ana.id, 2).await.expect("recent");
    assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), [sent[2].id, sent[1].id], "[recent] newest first");
    assert!(store.recent_messages(a, bia.id, 5).await.expect("recent").is_empty());
    let err = store.recent_messages(b, ana.id, 5).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[recent] another account's contact is NotFound");

    let analysis = |m: &crate::Message, sentiment| MessageAnalysis {
        message_id: m.id,
        account_id: a,
        contact_id: m.contact_id,
        sentiment: SentimentScore { sentiment, confidence: 0.75 },
        signals: LeadSignals {
            intent: Intent::PriceInquiry,
            interest: Level::High,
            urgency: Level::Medium,
            confidence: 0.5,
        },
        model: "heuristic".into(),
        analyzed_at: now(),
    };
    let before = event_count(&store, a).await;
    store
        .record_ai_analysis(&analysis(&sent[1], Sentiment::Negative), &ev(a, EventType::MESSAGE_ANALYZED))
        .await
        .expect("record");
    store
        .record_ai_analysis(&analysis(&sent[0], Sentiment::Neutral), &ev(a, EventType::MESSAGE_ANALYZED))
        .await
        .expect("record");
    let again = analysis(&sent[1], Sentiment::Positive);
    store.record_ai_analysis(&again, &ev(a, EventType::MESSAGE_ANALYZED)).await.expect("record again");
    assert_eq!(event_count(&store, a).await, before + 3, "[ai analyses] one event per record");
    let listed = store.list_ai_analyses(a, ana.id, 10).await.expect("list");
    assert_eq!(listed.len(), 2, "[ai analyses] a second record of a message replaces the first");
    assert_eq!(listed[0], again, "[ai analyses] newest message first, round trip");
    assert_eq!(store.list_ai_analyses(a, ana.id, 1).await.expect("list").len(), 1, "[ai analyses] limit");
    let ghost = MessageAnalysis { message_id: crate::MessageId::new(), ..again.clone() };
    let err = store.record_ai_analysis(&ghost, &ev(a, EventType::MESSAGE_ANALYZED)).await.expect_err("no message");
    assert!(is_not_found(&err), "[ai analyses] the message must exist: {err:?}");
    let wrong = MessageAnalysis { contact_id: bia.id, ..again.clone() };
    let err = store.record_ai_analysis(&wrong, &ev(a, EventType::MESSAGE_ANALYZED)).await.expect_err("other contact");
    assert!(is_not_found(&err), "[ai analyses] the message must be the contact's");
    assert!(store.list_ai_analyses(b, ana.id, 10).await.expect("list").is_empty(), "[ai analyses] per account");

    store.delete_contact(a, ana.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");
    assert!(
        store.list_ai_analyses(a, ana.id, 10).await.expect("list").is_empty(),
        "[ai analyses] deleted with the contact"
    );
    assert!(
        store.list_ai_drafts(a, ana.id, 10).await.expect("list").is_empty(),
        "[ai drafts] deleted with the contact"
    );
    assert_eq!(store.list_ai_drafts(a, bia.id, 10).await.expect("list").len(), 1, "[ai drafts] others stay");
}
