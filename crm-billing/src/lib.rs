//! # crm-billing
//!
//! Billing for crm over Stripe: [`StripeBilling`] implements the
//! [`Billing`](crm_core::Billing) port (customers, Checkout Sessions in
//! subscription or payment mode with card and Pix, the customer portal,
//! cancelling and reading subscriptions), [`signature`] verifies
//! `Stripe-Signature` (secret rotation, tolerance), [`BillingService`] runs
//! the flows the server's routes call, and [`BillingApplier`] is the job
//! worker that applies stored webhook events once, in any order.
//!
//! A webhook is verified and stored with its apply job in one transaction
//! before it is answered, so an acknowledged event is never lost; the
//! worker applies it under the ordering rule of
//! [`crm_core::domain::billing`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_billing::{BillingService, BillingSettings, signature};
//! use crm_core::{MemoryStore, SystemClock};
//! use std::sync::Arc;
//!
//! let stripe = crm_billing::StripeBilling::builder().secret_key("sk_test_123456").webhook_secret("whsec_abc").build()?;
//! let store = Arc::new(MemoryStore::new());
//! let service = BillingService::new(store, Arc::new(stripe), Arc::new(SystemClock), BillingSettings::default());
//! let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":{}}}"#;
//! let header = signature::sign(&["whsec_abc"], chrono::Utc::now().timestamp(), body);
//! let received = service.receive_webhook(body, Some(&header)).await?;
//! assert!(!received.duplicate);
//! assert!(service.receive_webhook(body, Some(&header)).await?.duplicate);
//! assert!(service.receive_webhook(body, Some("t=1,v1=00")).await.is_err());
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

pub mod connection;
pub mod error;
pub mod form;
pub mod objects;
mod service;
pub mod signature;
mod stripe;

pub use connection::{STRIPE_CONNECTION, StripeConnectionFactory};
pub use service::{
    BillingApplier, BillingService, BillingSettings, CheckoutInput, MAX_QUANTITY, MAX_URL_LEN, Received,
    SubscriptionView, apply_job, apply_job_for,
};
pub use stripe::{API_VERSION, DEFAULT_BASE_URL, StripeBilling, StripeBillingBuilder};
