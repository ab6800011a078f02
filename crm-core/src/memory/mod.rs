//! In-memory adapters for every port: good enough to run a server, and the
//! reference the conformance suites are written against.

mod assistant;
mod billing;
mod connectors;
mod groups;
mod limiter;
mod media;
mod messenger;
mod store;
mod workflows;

pub use assistant::ScriptedAssistant;
pub use billing::{BillingCall, RecordingBilling};
pub use connectors::{RecordingAnalytics, RecordingConnectorFactory, RecordingMailer, RecordingNotifier};
pub use groups::{GroupSend, MemoryGroups};
pub use limiter::GcraLimiter;
pub use media::MemoryMediaStore;
pub use messenger::{RecordingFactory, RecordingMessenger, SentMessage};
pub use store::MemoryStore;
pub use workflows::RecordingWorkflows;
