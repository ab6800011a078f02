//! Conformance suite for the [`Assistant`] port: input checks before any
//! work, answer shapes, and the streamed draft matching its pieces.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_core::memory::ScriptedAssistant;
//! crm_core::testing::assistant::run_all(&ScriptedAssistant::new()).await;
//! # });
//! ```

use crate::domain::assistant::{
    BusinessContext, Conversation, DraftRequest, MAX_AI_TEXT_CHARS, MAX_TURNS, Speaker, Turn,
};
use crate::ports::assistant::{Assistant, DraftChunk};
use crate::{AccountId, Error};

/// Runs every behaviour against `assistant`.
pub async fn run_all(assistant: &dyn Assistant) {
    refuses_bad_input(assistant).await;
    answers_have_their_shape(assistant).await;
    streamed_draft_matches_its_pieces(assistant).await;
}

fn is_validation(r: &Error, field: &str) -> bool {
    matches!(r, Error::Validation { field: f, .. } if f.starts_with(field))
}

/// A conversation a shop might have.
pub fn sample_conversation() -> Conversation {
    Conversation {
        contact_name: Some("Ana".into()),
        turns: vec![
            Turn { speaker: Speaker::Customer, text: "Oi! Vocês entregam no Centro?".into() },
            Turn { speaker: Speaker::Business, text: "Entregamos sim, Ana!".into() },
            Turn {
                speaker: Speaker::Customer,
                text: "Ótimo, quanto custa o bolo de chocolate? Preciso para hoje".into(),
            },
        ],
    }
}

/// Bad input is [`Error::Validation`] naming the field, for every method.
pub async fn refuses_bad_input(assistant: &dyn Assistant) {
    let a = AccountId::new();
    let empty = DraftRequest::default();
    let err = assistant.draft_reply(a, &empty).await.expect_err("[assistant] empty conversation");
    assert!(is_validation(&err, "conversation"), "[assistant] empty conversation: {err:?}");
    let err = assistant.draft_reply_stream(a, &empty).await.expect_err("[assistant] empty conversation, streamed");
    assert!(is_validation(&err, "conversation"), "[assistant] streamed: {err:?}");
    let bad_lang = DraftRequest {
        conversation: sample_conversation(),
        context: BusinessContext { language: "pt-BR\nignore".into(), ..Default::default() },
    };
    let err = assistant.draft_reply(a, &bad_lang).await.expect_err("[assistant] bad language");
    assert!(is_validation(&err, "context.language"), "[assistant] bad language: {err:?}");
    for text in ["", "   ", &"a".repeat(MAX_AI_TEXT_CHARS + 1)] {
        let err = assistant.classify_sentiment(a, text).await.expect_err("[assistant] bad text");
        assert!(is_validation(&err, "text"), "[assistant] sentiment of a bad text: {err:?}");
    }
    let long = Conversation {
        contact_name: None,
        turns: vec![Turn { speaker: Speaker::Customer, text: "oi".into() }; MAX_TURNS + 1],
    };
    let err = assistant.lead_signals(a, &long).await.expect_err("[assistant] too many turns");
    assert!(is_validation(&err, "conversation"), "[assistant] too many turns: {err:?}");
    let err = assistant.summarize(a, &Conversation::default(), &BusinessContext::default()).await.expect_err("empty");
    assert!(is_validation(&err, "conversation"), "[assistant] empty summary: {err:?}");
}

/// Answers: a non-empty draft and summary, confidences in `[0, 1]`, a model name.
pub async fn answers_have_their_shape(assistant: &dyn Assistant) {
    let a = AccountId::new();
    let request = DraftRequest { conversation: sample_conversation(), context: BusinessContext::default() };
    let draft = assistant.draft_reply(a, &request).await.expect("[assistant] draft_reply");
    assert!(!draft.value.trim().is_empty(), "[assistant] a draft has text");
    assert!(!draft.model.is_empty(), "[assistant] the answer names its model");
    let s =
        assistant.classify_sentiment(a, "Adorei o atendimento, muito obrigado!").await.expect("[assistant] sentiment");
    assert!((0.0..=1.0).contains(&s.value.confidence), "[assistant] confidence in [0, 1]: {:?}", s.value);
    let signals = assistant.lead_signals(a, &sample_conversation()).await.expect("[assistant] lead_signals");
    assert!((0.0..=1.0).contains(&signals.value.confidence), "[assistant] signal confidence in [0, 1]");
    let summary =
        assistant.summarize(a, &sample_conversation(), &BusinessContext::default()).await.expect("[assistant] summary");
    assert!(!summary.value.text.trim().is_empty(), "[assistant] a summary has text");
}

/// A streamed draft: deltas, then one `Done` whose text is the deltas joined.
pub async fn streamed_draft_matches_its_pieces(assistant: &dyn Assistant) {
    let a = AccountId::new();
    let request = DraftRequest { conversation: sample_conversation(), context: BusinessContext::default() };
    let mut stream = assistant.draft_reply_stream(a, &request).await.expect("[assistant] draft_reply_stream");
    let mut text = String::new();
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        match chunk.expect("[assistant] stream chunk") {
            DraftChunk::Delta(d) => {
                assert!(done.is_none(), "[assistant] nothing after Done");
                text.push_str(&d);
            }
            DraftChunk::Done(answer) => done = Some(answer),
        }
    }
    let done = done.expect("[assistant] the stream ends with Done");
    assert_eq!(done.value, text, "[assistant] Done carries the deltas joined");
    assert!(!text.trim().is_empty(), "[assistant] a streamed draft has text");
}
