//! # crm-webhooks
//!
//! Outbound webhooks for crm, following the Standard Webhooks
//! specification: every event an account's endpoint subscribes to is
//! POSTed as `{"type", "timestamp", "data"}` with the `webhook-id` (the
//! event's id, the same on every retry), `webhook-timestamp` and
//! `webhook-signature` headers, so any Standard Webhooks library verifies it.
//!
//! Delivery is durable and at-least-once, built on crm-core's worker
//! runtime: the [`FanOut`] outbox consumer turns each event into one
//! [`WebhookDelivery`](crm_core::WebhookDelivery) per matching endpoint
//! and schedules its durable job; the [`Deliverer`] job worker makes one
//! attempt per claim, logs it, and retries on the [`RetrySchedule`]. The
//! guarantees:
//!
//! - **Nothing acknowledged is lost.** The event and its outbox row are
//!   written in the transaction of the change; the outbox row is acked only
//!   after the deliveries and their jobs are stored; a job is completed only
//!   after its attempt is recorded. A process dying anywhere leaves a lease
//!   that expires and hands the work to another worker.
//! - **At least once, never the same attempt twice at once.** A job is held
//!   by one worker at a time (leases renewed while the request runs,
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL). A worker dying after the
//!   receiver answered but before the attempt was recorded makes the next
//!   worker send again: receivers deduplicate by `webhook-id`
//!   ([`verify::Deduper`]).
//! - **FIFO per contact.** Deliveries of events about one contact (the
//!   event's `contact_id`, or the contact's own id) to one endpoint are
//!   attempted in event order: a delivery waits while an earlier one of the
//!   same contact is pending (retrying included), so a receiver never sees a
//!   contact's events out of order while an earlier one is retried.
//!   Different contacts are delivered concurrently. A delivery that fails for
//!   good (attempts used up) stops holding the ones behind it. The order is
//!   the order in which deliveries exist: events fanned out concurrently by
//!   two processes within the same instant may be created out of order.
//! - **Redirects are failures**, `410 Gone` disables the endpoint, an
//!   endpoint failing continuously for [`WebhookSettings::disable_after`]
//!   (5 days) is disabled with an `endpoint.disabled` event, and one success
//!   resets that clock.
//! - **The SSRF guard** ([`ssrf`]) refuses private, loopback, link-local
//!   and other internal addresses at every attempt, on the addresses
//!   actually connected to.
//!
//! Receivers in Rust verify with [`verify::Verifier`].

#![warn(missing_docs)]

pub mod automation;
pub mod schedule;
pub mod sender;
pub mod service;
pub mod signing;
pub mod ssrf;
pub mod verify;
pub mod worker;

pub use automation::AutomationCaller;
pub use schedule::RetrySchedule;
pub use sender::{AttemptResult, Sender};
pub use service::{CONSUMER, DELIVER_KIND, EndpointPatch, NewEndpoint, TEST_EVENT_TYPE, WebhookSettings, Webhooks};
pub use signing::{SigningSecret, signature_header};
pub use ssrf::{AddressPolicy, Network};
pub use verify::{Deduper, Verifier, VerifyError};
pub use worker::{Deliverer, EndpointGate, FanOut};
