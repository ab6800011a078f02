//! crm-webhooks integration tests: one binary (signing, the SSRF guard,
//! delivery end to end against a capturing receiver on 127.0.0.1).

mod automation;
mod delivery;
mod receiver;
mod signing;
mod ssrf;
