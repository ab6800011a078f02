//! The automation engine's and lead scoring's workers, as the server runs them.

use std::sync::Arc;

use crm_core::Crm;
use crm_core::automation::{AutomationWorker, ContinueWorker, DecayWorker, Engine, ScheduleWorker, ScoringWorker};
use crm_core::workers::{RuntimeBuilder, WorkerOptions};

/// Adds the automation workers (outbox consumers `automation` and
/// `scoring`; jobs `automation.continue`, `automation.schedule`,
/// `scoring.decay`) to a runtime.
pub(crate) fn register(rb: RuntimeBuilder, crm: &Crm) -> RuntimeBuilder {
    let engine = Engine::new(crm.clone());
    let options = WorkerOptions::default;
    rb.event_worker(Arc::new(AutomationWorker::new(engine.clone())), options())
        .event_worker(Arc::new(ScoringWorker::new(crm.clone())), options())
        .job_worker(Arc::new(ContinueWorker::new(engine.clone())), options())
        .job_worker(Arc::new(ScheduleWorker::new(engine)), options())
        .job_worker(Arc::new(DecayWorker::new(crm.clone())), options())
}
