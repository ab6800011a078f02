//! The follow-up sequence workers the server runs.

use std::sync::Arc;

use crm_core::Crm;
use crm_core::workers::RuntimeBuilder;

/// Adds the step runner, the `sequence.enrol` and `sequence.stop` job
/// workers and the watcher (stops on replies, stage changes, opt-outs).
pub(crate) fn workers(rb: RuntimeBuilder, crm: &Crm) -> RuntimeBuilder {
    let (runner, enroller, stopper, watcher) =
        (crm.sequence_runner(), crm.sequence_enroller(), crm.sequence_stopper(), crm.sequence_watcher());
    let (ro, eo, so, wo) = (runner.options(), enroller.options(), stopper.options(), watcher.options());
    rb.job_worker(Arc::new(runner), ro)
        .job_worker(Arc::new(enroller), eo)
        .job_worker(Arc::new(stopper), so)
        .event_worker(Arc::new(watcher), wo)
}
