//! Guardrails: wrapper types around any [`Assistant`] (STYLE rule 6).
//!
//! The server stacks them, outermost first:
//! `Fallback(Redacting(Metered(Limited(Retry(Timeout(OpenAi))))), Heuristic)`:
//!
//! - [`Timeout`] bounds each call (a transient `timeout` provider error);
//! - [`Retry`] retries transient provider errors (429, 5xx, timeouts) with
//!   exponential backoff, waiting at least the provider's `Retry-After`
//!   and giving up when it asks for longer than `max_wait`;
//! - [`Limited`] counts requests per account in the [`RateLimiter`] port
//!   (`Error::RateLimited` when over);
//! - [`Metered`] refuses calls once the account's monthly token budget is
//!   spent (`Error::RateLimited` until the next month) and records every
//!   answer's tokens and cost estimate ([`PriceTable`]) in the store;
//! - [`Redacting`] replaces phones, e-mails and CPF numbers in customer
//!   text before it leaves ([`redact_pii`](crate::prompt::redact_pii));
//! - [`Fallback`] answers from a second assistant (the heuristic) when the
//!   first fails for any reason but bad input, marking [`Answer::fallback`].

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crm_core::domain::assistant::{
    AiUsage, Answer, BusinessContext, Conversation, DraftRequest, LeadSignals, Operation, SentimentScore, Summary,
    TokenUsage, Turn, month_start, next_month_start,
};
use crm_core::{
    AccountId, Assistant, AssistantStore, Clock, DraftChunk, DraftStream, Error, Quota, RateLimiter, Result,
};

use crate::prompt::redact_pii;

type Call<'a, T> = &'a (dyn Fn() -> Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>> + Send + Sync);

/// Implements [`Assistant`] for a wrapper with an `inner: Arc<dyn Assistant>`
/// and `around(account, op, call)` / `around_stream(account, call)` methods.
macro_rules! around_assistant {
    ($ty:ty) => {
        #[async_trait]
        impl Assistant for $ty {
            fn name(&self) -> &str {
                self.inner.name()
            }

            async fn draft_reply(&self, account: AccountId, request: &DraftRequest) -> Result<Answer<String>> {
                request.validate()?;
                self.around(account, Operation::Draft, &|| self.inner.draft_reply(account, request)).await
            }

            async fn draft_reply_stream(&self, account: AccountId, request: &DraftRequest) -> Result<DraftStream> {
                request.validate()?;
                self.around_stream(account, &|| self.inner.draft_reply_stream(account, request)).await
            }

            async fn classify_sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
                crm_core::domain::assistant::check_text("text", text)?;
                self.around(account, Operation::Sentiment, &|| self.inner.classify_sentiment(account, text)).await
            }

            async fn lead_signals(&self, account: AccountId, c: &Conversation) -> Result<Answer<LeadSignals>> {
                c.validate()?;
                self.around(account, Operation::Signals, &|| self.inner.lead_signals(account, c)).await
            }

            async fn summarize(
                &self,
                account: AccountId,
                c: &Conversation,
                context: &BusinessContext,
            ) -> Result<Answer<Summary>> {
                c.validate()?;
                context.validate()?;
                self.around(account, Operation::Summary, &|| self.inner.summarize(account, c, context)).await
            }
        }
    };
}

fn is_transient_provider(e: &Error) -> bool {
    matches!(e, Error::Provider { transient: true, .. })
}

// ----- Timeout -------------------------------------------------------------------------

/// Bounds every call (for a stream: until it starts) to `limit`.
#[derive(Debug)]
pub struct Timeout {
    inner: Arc<dyn Assistant>,
    limit: Duration,
}

impl Timeout {
    /// `inner` with calls bounded to `limit`.
    pub fn new(inner: Arc<dyn Assistant>, limit: Duration) -> Self {
        Timeout { inner, limit }
    }

    async fn bounded<T>(&self, call: Call<'_, T>) -> Result<T> {
        match tokio::time::timeout(self.limit, call()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Provider {
                provider: self.inner.name().to_owned().into(),
                transient: true,
                code: Some("timeout".into()),
                message: format!("no answer within {:?}", self.limit),
                retry_after: None,
                source: None,
            }),
        }
    }

    async fn around<T>(&self, _: AccountId, _: Operation, call: Call<'_, Answer<T>>) -> Result<Answer<T>> {
        self.bounded(call).await
    }

    async fn around_stream(&self, _: AccountId, call: Call<'_, DraftStream>) -> Result<DraftStream> {
        self.bounded(call).await
    }
}

around_assistant!(Timeout);

// ----- Retry ---------------------------------------------------------------------------

/// Retries transient provider errors.
#[derive(Debug)]
pub struct Retry {
    inner: Arc<dyn Assistant>,
    attempts: u32,
    base: Duration,
    max_wait: Duration,
}

impl Retry {
    /// `attempts` in all (≥ 1), backoff from `base` doubling, at least the
    /// provider's `Retry-After`; a wait longer than `max_wait` is not waited
    /// (the error is returned).
    pub fn new(inner: Arc<dyn Assistant>, attempts: u32, base: Duration, max_wait: Duration) -> Self {
        Retry { inner, attempts: attempts.max(1), base, max_wait }
    }

    async fn retried<T>(&self, call: Call<'_, T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            let err = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if attempt >= self.attempts || !is_transient_provider(&err) {
                return Err(err);
            }
            let backoff = self.base.saturating_mul(1 << (attempt - 1).min(16));
            let asked = match &err {
                Error::Provider { retry_after: Some(r), .. } => *r,
                _ => Duration::ZERO,
            };
            let wait = backoff.max(asked);
            if wait > self.max_wait {
                return Err(err);
            }
            tracing::debug!(attempt, ?wait, kind = err.kind(), "assistant call failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn around<T>(&self, _: AccountId, _: Operation, call: Call<'_, Answer<T>>) -> Result<Answer<T>> {
        self.retried(call).await
    }

    async fn around_stream(&self, _: AccountId, call: Call<'_, DraftStream>) -> Result<DraftStream> {
        self.retried(call).await
    }
}

around_assistant!(Retry);

// ----- Limited -------------------------------------------------------------------------

/// Counts requests per account (`ai:<account>`) against a quota.
#[derive(Debug)]
pub struct Limited {
    inner: Arc<dyn Assistant>,
    limiter: Arc<dyn RateLimiter>,
    quota: Quota,
}

impl Limited {
    /// `inner` allowed `quota` requests per account.
    pub fn new(inner: Arc<dyn Assistant>, limiter: Arc<dyn RateLimiter>, quota: Quota) -> Self {
        Limited { inner, limiter, quota }
    }

    async fn admit(&self, account: AccountId) -> Result<()> {
        self.limiter.check(&format!("ai:{account}"), &self.quota).await?.into_result().map(|_| ())
    }

    async fn around<T>(&self, account: AccountId, _: Operation, call: Call<'_, Answer<T>>) -> Result<Answer<T>> {
        self.admit(account).await?;
        call().await
    }

    async fn around_stream(&self, account: AccountId, call: Call<'_, DraftStream>) -> Result<DraftStream> {
        self.admit(account).await?;
        call().await
    }
}

around_assistant!(Limited);

// ----- Metered -------------------------------------------------------------------------

/// Prices per model, in millionths of a US dollar per million tokens
/// (= US dollars per million tokens × 10⁶). A model matches its own entry
/// or the longest entry that prefixes it (`gpt-4o-mini-2024-07-18` →
/// `gpt-4o-mini`); unknown models cost 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    prices: BTreeMap<String, (i64, i64)>,
}

impl Default for PriceTable {
    /// OpenAI's list prices of 2025 for common chat models (USD per 1M tokens, input/output).
    fn default() -> Self {
        let mut t = PriceTable::empty();
        for (model, input, output) in [
            ("gpt-4o-mini", 0.15, 0.60),
            ("gpt-4o", 2.50, 10.00),
            ("gpt-4.1-nano", 0.10, 0.40),
            ("gpt-4.1-mini", 0.40, 1.60),
            ("gpt-4.1", 2.00, 8.00),
            ("gpt-4-turbo", 10.00, 30.00),
            ("gpt-4", 30.00, 60.00),
            ("gpt-3.5-turbo", 0.50, 1.50),
        ] {
            t.set(model, input, output);
        }
        t
    }
}

impl PriceTable {
    /// No prices (every model free).
    pub fn empty() -> Self {
        PriceTable { prices: BTreeMap::new() }
    }

    /// Sets a model's price in US dollars per million input and output tokens.
    pub fn set(&mut self, model: &str, input_usd: f64, output_usd: f64) {
        let micros = |usd: f64| (usd.max(0.0) * 1_000_000.0).round() as i64;
        self.prices.insert(model.to_owned(), (micros(input_usd), micros(output_usd)));
    }

    /// Parses `model=input/output,…` (USD per million tokens), e.g.
    /// `gpt-4o-mini=0.15/0.60,llama3=0/0`, over the defaults.
    pub fn parse_over_defaults(spec: &str) -> Result<Self> {
        let mut t = PriceTable::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || Error::Config { message: format!("AI price entry {entry:?} is not model=input/output") };
            let (model, prices) = entry.split_once('=').ok_or_else(bad)?;
            let (i, o) = prices.split_once('/').ok_or_else(bad)?;
            let i: f64 = i.trim().parse().map_err(|_| bad())?;
            let o: f64 = o.trim().parse().map_err(|_| bad())?;
            if !i.is_finite() || !o.is_finite() || i < 0.0 || o < 0.0 || model.trim().is_empty() {
                return Err(bad());
            }
            t.set(model.trim(), i, o);
        }
        Ok(t)
    }

    /// The cost estimate of `usage` on `model`, in millionths of a dollar (rounded up).
    pub fn cost_micros(&self, model: &str, usage: TokenUsage) -> i64 {
        let found = self.prices.get(model).or_else(|| {
            self.prices
                .iter()
                .filter(|(m, _)| model.starts_with(m.as_str()))
                .max_by_key(|(m, _)| m.len())
                .map(|(_, p)| p)
        });
        let Some((i, o)) = found else { return 0 };
        let total = i128::from(usage.input) * i128::from(*i) + i128::from(usage.output) * i128::from(*o);
        i64::try_from((total + 999_999) / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The monthly token budget and usage recording.
pub struct Metered {
    inner: Arc<dyn Assistant>,
    store: Arc<dyn AssistantStore>,
    clock: Arc<dyn Clock>,
    monthly_tokens: Option<u64>,
    prices: PriceTable,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .field("monthly_tokens", &self.monthly_tokens)
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

impl Metered {
    /// `inner` metered into `store`: `monthly_tokens` per account (none:
    /// unlimited), costs from `prices`.
    pub fn new(
        inner: Arc<dyn Assistant>,
        store: Arc<dyn AssistantStore>,
        clock: Arc<dyn Clock>,
        monthly_tokens: Option<u64>,
        prices: PriceTable,
    ) -> Self {
        Metered { inner, store, clock, monthly_tokens, prices }
    }

    async fn admit(&self, account: AccountId) -> Result<()> {
        let Some(budget) = self.monthly_tokens else { return Ok(()) };
        let now = self.clock.now();
        let used = self.store.ai_usage_since(account, month_start(now)).await?.tokens();
        if used >= budget {
            let retry_after = (next_month_start(now) - now).to_std().unwrap_or_default();
            tracing::info!(%account, used, budget, "monthly AI token budget spent");
            return Err(Error::RateLimited { retry_after });
        }
        Ok(())
    }

    async fn record(&self, account: AccountId, op: Operation, model: &str, usage: TokenUsage) {
        if usage.total() == 0 {
            return;
        }
        let row = AiUsage {
            account_id: account,
            at: self.clock.now(),
            operation: op,
            model: model.to_owned(),
            usage,
            cost_micros: self.prices.cost_micros(model, usage),
        };
        if let Err(e) = self.store.record_ai_usage(&row).await {
            tracing::warn!(%account, error = %e, "could not record AI usage");
        }
    }

    async fn around<T>(&self, account: AccountId, op: Operation, call: Call<'_, Answer<T>>) -> Result<Answer<T>> {
        self.admit(account).await?;
        let answer = call().await?;
        self.record(account, op, &answer.model, answer.usage).await;
        Ok(answer)
    }

    async fn around_stream(&self, account: AccountId, call: Call<'_, DraftStream>) -> Result<DraftStream> {
        self.admit(account).await?;
        let mut upstream = call().await?;
        let (tx, stream) = DraftStream::channel(32);
        let meter = Metered {
            inner: self.inner.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            monthly_tokens: self.monthly_tokens,
            prices: self.prices.clone(),
        };
        tokio::spawn(async move {
            while let Some(chunk) = upstream.next().await {
                if let Ok(DraftChunk::Done(answer)) = &chunk {
                    meter.record(account, Operation::Draft, &answer.model, answer.usage).await;
                }
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        Ok(stream)
    }
}

around_assistant!(Metered);

// ----- Redacting -----------------------------------------------------------------------

/// Replaces phones, e-mails and CPF numbers in customer text (and the
/// contact's name is kept: it is how replies greet) before calling `inner`.
#[derive(Debug)]
pub struct Redacting {
    inner: Arc<dyn Assistant>,
}

impl Redacting {
    /// `inner` seeing redacted text only.
    pub fn new(inner: Arc<dyn Assistant>) -> Self {
        Redacting { inner }
    }
}

fn redacted(c: &Conversation) -> Conversation {
    Conversation {
        contact_name: c.contact_name.clone(),
        turns: c.turns.iter().map(|t| Turn { speaker: t.speaker, text: redact_pii(&t.text) }).collect(),
    }
}

#[async_trait]
impl Assistant for Redacting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn draft_reply(&self, account: AccountId, request: &DraftRequest) -> Result<Answer<String>> {
        request.validate()?;
        let request = DraftRequest { conversation: redacted(&request.conversation), context: request.context.clone() };
        self.inner.draft_reply(account, &request).await
    }

    async fn draft_reply_stream(&self, account: AccountId, request: &DraftRequest) -> Result<DraftStream> {
        request.validate()?;
        let request = DraftRequest { conversation: redacted(&request.conversation), context: request.context.clone() };
        self.inner.draft_reply_stream(account, &request).await
    }

    async fn classify_sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        crm_core::domain::assistant::check_text("text", text)?;
        self.inner.classify_sentiment(account, &redact_pii(text)).await
    }

    async fn lead_signals(&self, account: AccountId, c: &Conversation) -> Result<Answer<LeadSignals>> {
        c.validate()?;
        self.inner.lead_signals(account, &redacted(c)).await
    }

    async fn summarize(
        &self,
        account: AccountId,
        c: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>> {
        c.validate()?;
        self.inner.summarize(account, &redacted(c), context).await
    }
}

// ----- Fallback ------------------------------------------------------------------------

/// Answers from `fallback` when `primary` fails (any error but
/// `Validation`), with [`Answer::fallback`] naming why (the error's kind and
/// code, never its text).
#[derive(Debug)]
pub struct Fallback {
    primary: Arc<dyn Assistant>,
    fallback: Arc<dyn Assistant>,
}

impl Fallback {
    /// `primary`, else `fallback`.
    pub fn new(primary: Arc<dyn Assistant>, fallback: Arc<dyn Assistant>) -> Self {
        Fallback { primary, fallback }
    }

    async fn either<T>(&self, first: Call<'_, Answer<T>>, second: Call<'_, Answer<T>>) -> Result<Answer<T>> {
        match first().await {
            Ok(a) => Ok(a),
            Err(e @ Error::Validation { .. }) => Err(e),
            Err(e) => {
                let why = reason(&e);
                tracing::warn!(primary = self.primary.name(), reason = %why, "assistant failed; answering from the fallback");
                let mut answer = second().await?;
                answer.fallback = Some(why);
                Ok(answer)
            }
        }
    }
}

fn reason(e: &Error) -> String {
    match e {
        Error::Provider { code: Some(code), .. } => format!("provider:{code}"),
        other => other.kind().to_owned(),
    }
}

#[async_trait]
impl Assistant for Fallback {
    fn name(&self) -> &str {
        self.primary.name()
    }

    async fn draft_reply(&self, account: AccountId, r: &DraftRequest) -> Result<Answer<String>> {
        self.either(&|| self.primary.draft_reply(account, r), &|| self.fallback.draft_reply(account, r)).await
    }

    async fn draft_reply_stream(&self, account: AccountId, r: &DraftRequest) -> Result<DraftStream> {
        match self.primary.draft_reply_stream(account, r).await {
            Ok(s) => Ok(s),
            Err(e @ Error::Validation { .. }) => Err(e),
            Err(e) => {
                let mut answer = self.fallback.draft_reply(account, r).await?;
                answer.fallback = Some(reason(&e));
                Ok(DraftStream::ready(answer))
            }
        }
    }

    async fn classify_sentiment(&self, account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        self.either(&|| self.primary.classify_sentiment(account, text), &|| {
            self.fallback.classify_sentiment(account, text)
        })
        .await
    }

    async fn lead_signals(&self, account: AccountId, c: &Conversation) -> Result<Answer<LeadSignals>> {
        self.either(&|| self.primary.lead_signals(account, c), &|| self.fallback.lead_signals(account, c)).await
    }

    async fn summarize(
        &self,
        account: AccountId,
        c: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>> {
        self.either(&|| self.primary.summarize(account, c, context), &|| self.fallback.summarize(account, c, context))
            .await
    }
}
