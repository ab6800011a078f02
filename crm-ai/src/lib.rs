//! # crm-ai
//!
//! The [`Assistant`](crm_core::Assistant) port's adapters for crm:
//!
//! - [`Heuristic`]: offline — a Portuguese and English sentiment lexicon
//!   with negation, keyword intents and template replies. The default when
//!   no API key is configured.
//! - [`OpenAiAssistant`] (feature `openai`): any OpenAI-compatible
//!   chat-completions server (OpenAI, a gateway, a local model server),
//!   through `async-openai`, with structured outputs for sentiment, signals
//!   and summaries, and streamed drafts.
//! - [`guard`]: wrappers around any assistant — timeouts, retries with
//!   `Retry-After`, a per-account request rate limit, a monthly token
//!   budget with usage recording and cost estimates, PII redaction, and a
//!   fallback to the heuristic.
//! - [`AssistantService`]: drafts for a contact's thread (what an automation
//!   action calls), summaries, usage, the auto-reply setting; [`Analyzer`]:
//!   the `assistant` outbox consumer that annotates inbound messages and
//!   suggests or sends replies.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_ai::Heuristic;
//! use crm_core::Assistant;
//! use crm_core::domain::assistant::Sentiment;
//! let a = Heuristic::new();
//! let s = a.classify_sentiment(crm_core::AccountId::new(), "Não gostei, veio errado 😡").await?;
//! assert_eq!(s.value.sentiment, Sentiment::Negative);
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```

#![warn(missing_docs)]

pub mod guard;
pub mod heuristic;
#[cfg(feature = "openai")]
pub mod openai;
pub mod prompt;
pub mod service;
pub mod worker;

pub use guard::{Fallback, Limited, Metered, PriceTable, Redacting, Retry, Timeout};
pub use heuristic::{HEURISTIC_MODEL, Heuristic};
#[cfg(feature = "openai")]
pub use openai::{OpenAiAssistant, OpenAiSettings};
pub use service::{AssistantService, UsageReport};
pub use worker::{Analyzer, CONSUMER};
