//! The connectors the server builds in (one feature each: `sendgrid`,
//! `smtp`, `slack`, `ga4`) and the job workers that send through them
//! (`mail.send`, `notify.send`, `analytics.track`).

use std::sync::Arc;

use crm_core::connections::ConnectorRegistry;
use crm_core::ports::connectors::ConnectorFactory;
use crm_core::workers::RuntimeBuilder;
use crm_core::workers::connectors::ConnectorWorker;
use crm_core::{Crm, MediaStore};

/// The connector factories of the features this server was built with,
/// talking to the providers' real endpoints.
// Each push is behind its own feature, so `vec![..]` cannot list them.
#[allow(clippy::vec_init_then_push)]
pub(crate) fn built_in() -> Vec<Arc<dyn ConnectorFactory>> {
    #[allow(unused_mut)]
    let mut factories: Vec<Arc<dyn ConnectorFactory>> = Vec::new();
    #[cfg(feature = "sendgrid")]
    factories.push(Arc::new(crm_connectors::sendgrid::SendGridFactory::default()));
    #[cfg(feature = "smtp")]
    factories.push(Arc::new(crm_connectors::smtp::SmtpFactory));
    #[cfg(feature = "slack")]
    factories.push(Arc::new(crm_connectors::slack::SlackFactory::default()));
    #[cfg(feature = "ga4")]
    factories.push(Arc::new(crm_connectors::ga4::Ga4Factory::default()));
    factories
}

/// Adds the three connector job workers (attachments come from `media`).
pub(crate) fn workers(
    rb: RuntimeBuilder,
    crm: &Crm,
    registry: &Arc<ConnectorRegistry>,
    media: &Arc<dyn MediaStore>,
) -> RuntimeBuilder {
    let (store, clock) = (crm.store().clone(), crm.clock().clone());
    let mail = ConnectorWorker::mail(store.clone(), registry.clone(), Some(media.clone()), clock.clone());
    let notify = ConnectorWorker::notify(store.clone(), registry.clone(), clock.clone());
    let analytics = ConnectorWorker::analytics(store, registry.clone(), clock);
    rb.job_worker(Arc::new(mail), ConnectorWorker::options())
        .job_worker(Arc::new(notify), ConnectorWorker::options())
        .job_worker(Arc::new(analytics), ConnectorWorker::options())
}
