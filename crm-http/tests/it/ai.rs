//! The assistant through the API on a real server over SQLite and
//! PostgreSQL: drafts (JSON and server-sent events), sentiment, signals,
//! summaries, usage, the auto-reply setting, the `assistant` worker's
//! analyses and suggested drafts, `/ready`, the OpenAPI document, and the
//! problems each route answers — with the offline heuristic (no key) and
//! with a local OpenAI-compatible mock (a key and `OPENAI_BASE_URL`).

use axum::Router;
use axum::routing::post;
use crm_core::{AccountId, InboundMessage, MessageContent, Role};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::helpers::{Api, Harness, create_contact, id, phone};

async fn inbound(h: &Harness, account: AccountId, n: u32, text: &str) {
    let message = InboundMessage {
        from: phone(n),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some(format!("wamid.{n}.{}", text.len())),
        content: MessageContent::text(text),
        sent_at: None,
        reply_to: None,
    };
    h.crm().record_inbound(account, message).await.expect("inbound");
}

async fn eventually(api: &Api, key: &str, path: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let items =
            api.get(path).bearer(key).send().await.ok_json(200)["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never had {n} items");
}

async fn heuristic_routes(h: &Harness) {
    let (account, key) = h.account(Role::Admin).await;
    let api = &h.api;
    let contact = create_contact(api, &key, "Ana Souza", 1).await;
    let cid = id(&contact);
    let draft_path = format!("/api/v1/contacts/{cid}/ai/draft");

    // A thread without customer messages has nothing to answer.
    api.post(&draft_path).bearer(&key).send().await.problem(422, "validation");

    // The worker annotates inbound messages and, in `suggest` mode, stores drafts.
    let set = api.put("/api/v1/ai/auto-reply").bearer(&key).json(json!({ "mode": "suggest" })).send().await;
    assert_eq!(set.ok_json(200)["mode"], "suggest");
    inbound(h, account, 1, "Quanto custa o bolo de chocolate? Preciso pra hoje").await;
    let analyses = eventually(api, &key, &format!("/api/v1/contacts/{cid}/ai/analyses"), 1).await;
    assert_eq!(analyses[0]["signals"]["intent"], "price_inquiry");
    assert_eq!(analyses[0]["signals"]["urgency"], "high");
    let drafts = eventually(api, &key, &format!("/api/v1/contacts/{cid}/ai/drafts"), 1).await;
    assert!(drafts[0]["text"].as_str().expect("text").starts_with("Oi, Ana!"), "{drafts:?}");
    assert_eq!(drafts[0]["model"], "heuristic");

    // Drafts on request.
    let d = api.post(&draft_path).bearer(&key).send().await.ok_json(200);
    assert!(d["text"].as_str().expect("text").contains("valores"), "{d}");
    assert_eq!((d["model"].as_str(), d["usage"]["input"].as_u64()), (Some("heuristic"), Some(0)));
    let en = api
        .post(&draft_path)
        .bearer(&key)
        .json(json!({ "context": { "language": "en", "tone": "formal", "business_name": "Flor Bakery" } }))
        .send()
        .await
        .ok_json(200);
    assert!(en["text"].as_str().expect("text").starts_with("Hello Ana,"), "{en}");
    api.post(&draft_path)
        .bearer(&key)
        .json(json!({ "context": { "language": "pt BR!" } }))
        .send()
        .await
        .problem(422, "validation");
    api.post(&draft_path).bearer(&key).json(json!({ "nope": 1 })).send().await.expect(422);
    api.post(&draft_path).bearer(&key).raw("application/json", b"[1]".to_vec()).send().await.expect(422);

    // Streamed: server-sent events, deltas then done.
    let s = api.post(&format!("{draft_path}?stream=true")).bearer(&key).send().await;
    s.expect(200);
    assert!(s.header("content-type").unwrap_or_default().starts_with("text/event-stream"));
    let text = s.text();
    assert!(text.contains("event: delta") && text.contains("event: done"), "{text}");
    api.post(&format!("{draft_path}?stream=maybe")).bearer(&key).send().await.expect(400);

    // Sentiment, signals, summary.
    let s =
        api.post("/api/v1/ai/sentiment").bearer(&key).json(json!({ "text": "Não gostei, veio errado" })).send().await;
    assert_eq!(s.ok_json(200)["sentiment"], "negative");
    api.post("/api/v1/ai/sentiment").bearer(&key).json(json!({ "text": "  " })).send().await.problem(422, "validation");
    api.post("/api/v1/ai/sentiment").bearer(&key).json(json!({ "text": "x".repeat(5000) })).send().await.expect(422);
    let sig = api.post("/api/v1/ai/signals").bearer(&key).json(json!({ "contact_id": cid })).send().await.ok_json(200);
    assert_eq!(sig["signals"]["intent"], "price_inquiry");
    assert!(sig["score"].as_u64().expect("score") > 0);
    let sig = api.post("/api/v1/ai/signals").bearer(&key).json(json!({ "text": "Quero 3 camisetas" })).send().await;
    assert_eq!(sig.ok_json(200)["signals"]["intent"], "purchase");
    let both = json!({ "text": "a", "contact_id": cid });
    api.post("/api/v1/ai/signals").bearer(&key).json(both).send().await.problem(422, "validation");
    api.post("/api/v1/ai/signals").bearer(&key).json(json!({})).send().await.problem(422, "validation");
    let sum = api.post(&format!("/api/v1/contacts/{cid}/ai/summary")).bearer(&key).send().await.ok_json(200);
    assert!(sum["summary"]["text"].as_str().expect("text").contains("Ana Souza"), "{sum}");

    // Unknown contacts and other accounts' contacts are 404.
    let ghost = uuid_like();
    api.post(&format!("/api/v1/contacts/{ghost}/ai/draft")).bearer(&key).send().await.expect(404);
    let (_, other) = h.account(Role::Admin).await;
    api.post(&draft_path).bearer(&other).send().await.expect(404);
    api.get(&format!("/api/v1/contacts/{cid}/ai/drafts")).bearer(&other).send().await.expect(404);
    api.post("/api/v1/contacts/not-a-uuid/ai/draft").bearer(&key).send().await.expect(400);

    // Auto-reply settings: per channel, refused for unknown channels and modes; admin only.
    let listed = api.get("/api/v1/ai/auto-reply").bearer(&key).send().await.ok_json(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let bad_channel = json!({ "mode": "send", "channel_id": uuid_like() });
    api.put("/api/v1/ai/auto-reply").bearer(&key).json(bad_channel).send().await.expect(404);
    api.put("/api/v1/ai/auto-reply").bearer(&key).json(json!({ "mode": "loud" })).send().await.expect(422);
    let agent = h.key(account, Role::Agent).await;
    api.put("/api/v1/ai/auto-reply").bearer(&agent).json(json!({ "mode": "off" })).send().await.expect(403);
    api.get("/api/v1/ai/usage").bearer(&agent).send().await.expect(403);
    let viewer = h.key(account, Role::Viewer).await;
    api.post(&draft_path).bearer(&viewer).send().await.expect(403);

    // Usage: the heuristic costs nothing.
    let usage = api.get("/api/v1/ai/usage").bearer(&key).send().await.ok_json(200);
    assert_eq!((usage["tokens"].as_u64(), usage["cost_micros"].as_i64()), (Some(0), Some(0)));

    // Readiness says the heuristic answers; the document has the routes and the event types.
    let ready = api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["checks"]["assistant"]["status"], "degraded", "{ready}");
    let doc = api.get("/openapi.json").send().await.ok_json(200);
    for p in [
        "/api/v1/contacts/{id}/ai/draft",
        "/api/v1/ai/sentiment",
        "/api/v1/ai/signals",
        "/api/v1/ai/usage",
        "/api/v1/ai/auto-reply",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} in the document");
    }
    let types = api.get("/api/v1/event-types").bearer(&key).send().await.ok_json(200);
    assert!(types["items"].as_array().expect("items").iter().any(|t| t["name"] == "message.analyzed"));
}

fn uuid_like() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_routes_on_sqlite() {
    let h = Harness::sqlite().await;
    heuristic_routes(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_routes_on_postgres() {
    let Some(h) = Harness::postgres("ai_routes_on_postgres").await else { return };
    heuristic_routes(&h).await;
    h.stop().await;
}

/// A chat-completions endpoint on 127.0.0.1: the documented answer for the
/// first `ok` calls, then 500s.
async fn model_server(ok: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n >= ok {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string());
                }
                let body = json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": "gpt-4o-mini",
                    "choices": [{ "index": 0, "finish_reason": "stop",
                        "message": { "role": "assistant", "content": "Oi, Ana! Sai por R$ 60.", "refusal": null } }],
                    "usage": { "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200 }
                });
                (axum::http::StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_routes_with_a_model_server() {
    let (base, calls) = model_server(1).await;
    let h = Harness::sqlite_with(|c| {
        c.ai.api_key = Some("sk-test-key-123".to_string().into());
        c.ai.base_url = Some(base);
        c.ai.attempts = 1;
        c.ai.monthly_tokens = Some(1000);
        c.workers = false; // the analyzer would call the model too
    })
    .await;
    let api = &h.api;
    let (account, key) = h.account(Role::Admin).await;
    let contact = create_contact(api, &key, "Ana Souza", 7).await;
    inbound(&h, account, 7, "Quanto custa o bolo?").await;
    let path = format!("/api/v1/contacts/{}/ai/draft", id(&contact));
    let d = api.post(&path).bearer(&key).send().await.ok_json(200);
    assert_eq!((d["text"].as_str(), d["model"].as_str()), (Some("Oi, Ana! Sai por R$ 60."), Some("gpt-4o-mini")));
    assert_eq!(d["usage"]["input"], 1000);
    let usage = api.get("/api/v1/ai/usage").bearer(&key).send().await.ok_json(200);
    assert_eq!((usage["tokens"].as_u64(), usage["remaining_tokens"].as_u64()), (Some(1200), Some(0)));
    // 1000 × $0.15/M + 200 × $0.60/M = 270 µ$
    assert_eq!(usage["cost_micros"], 270);
    // The budget is spent: the heuristic answers, the model is not called.
    let before = calls.load(Ordering::SeqCst);
    let d = api.post(&path).bearer(&key).send().await.ok_json(200);
    assert_eq!((d["model"].as_str(), d["fallback"].as_str()), (Some("heuristic"), Some("rate_limited")));
    assert_eq!(calls.load(Ordering::SeqCst), before);
    // Another account: the model server fails, the heuristic answers.
    let (account2, key2) = h.account(Role::Admin).await;
    let c2 = create_contact(api, &key2, "Bia", 8).await;
    inbound(&h, account2, 8, "Oi, bom dia").await;
    let d = api.post(&format!("/api/v1/contacts/{}/ai/draft", id(&c2))).bearer(&key2).send().await.ok_json(200);
    assert_eq!((d["model"].as_str(), d["fallback"].as_str()), (Some("heuristic"), Some("provider:http_500")));
    let ready = api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["checks"]["assistant"]["status"], "healthy");
    assert!(!ready.to_string().contains("sk-test-key"), "the key never shows");
    h.stop().await;
}
