//! Workflow engines: the [`Workflows`](crate::ports::workflows::Workflows)
//! contract, run against the recording double, the n8n adapter over a mock of
//! n8n, and the n8n adapter over a real n8n.
//!
//! Each engine needs one workflow set up beforehand ([`WorkflowsFixture`]):
//! inactive, with a webhook trigger listening on a path no other workflow
//! uses. The suite switches it on and off and leaves it inactive.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_core::memory::RecordingWorkflows;
//! use crm_core::testing::workflows::{WorkflowsFixture, run_all};
//! let engine = RecordingWorkflows::new();
//! engine.add_webhook("wf1AbCdEfGhIjKlM", "Lead qualification", false, "crm-lead");
//! run_all(&engine, &WorkflowsFixture::new("wf1AbCdEfGhIjKlM", "crm-lead")).await;
//! # });
//! ```

use std::time::Duration;

use crate::ports::workflows::{MAX_WORKFLOW_PAGE, Workflows};
use crate::{Error, HealthStatus};

/// The workflow an engine's suite works on.
#[derive(Debug, Clone)]
pub struct WorkflowsFixture {
    /// Its id in the engine; inactive when the suite starts.
    pub workflow_id: String,
    /// The path its webhook trigger listens on while it is active.
    pub webhook_path: String,
    /// How long the engine may take to (un)register the webhook after an
    /// activation switch (zero for doubles; a few seconds for n8n).
    pub settle: Duration,
}

impl WorkflowsFixture {
    /// A fixture whose engine switches webhooks at once.
    pub fn new(workflow_id: &str, webhook_path: &str) -> Self {
        Self { workflow_id: workflow_id.into(), webhook_path: webhook_path.into(), settle: Duration::ZERO }
    }

    /// With a settle time for engines that register webhooks asynchronously.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }
}

/// Runs every behaviour in turn on `engine`.
pub async fn run_all(engine: &dyn Workflows, fixture: &WorkflowsFixture) {
    ids_are_checked(engine).await;
    unknown_workflows_are_not_found(engine).await;
    get_and_list_find_the_workflow(engine, fixture).await;
    export_is_the_whole_definition(engine, fixture).await;
    bad_targets_are_refused(engine).await;
    activation_switches_the_webhook(engine, fixture).await;
    the_engine_reports_healthy(engine).await;
}

fn is_validation(r: &Error) -> bool {
    matches!(r, Error::Validation { .. })
}

fn is_not_found(r: &Error) -> bool {
    matches!(r, Error::NotFound { .. })
}

/// What each id-taking method answers for `id`, named; all of them must fail.
async fn every_method_fails(engine: &dyn Workflows, id: &str) -> Vec<(&'static str, Error)> {
    vec![
        ("get", engine.get_workflow(id).await.expect_err("get must fail")),
        ("activate", engine.activate(id).await.expect_err("activate must fail")),
        ("deactivate", engine.deactivate(id).await.expect_err("deactivate must fail")),
        ("export", engine.export_workflow(id).await.expect_err("export must fail")),
    ]
}

/// An id [`check_workflow_id`](crate::ports::workflows::check_workflow_id)
/// refuses is `Validation` on every method, before the engine is asked.
pub async fn ids_are_checked(engine: &dyn Workflows) {
    for bad in ["", "a b", "../workflows", "x".repeat(65).as_str()] {
        for (method, err) in every_method_fails(engine, bad).await {
            assert!(is_validation(&err), "[workflows] {method} {bad:?} is Validation, got {err}");
        }
    }
}

/// A well-formed id the engine does not know is `NotFound` everywhere.
pub async fn unknown_workflows_are_not_found(engine: &dyn Workflows) {
    for (method, err) in every_method_fails(engine, "zz00NoSuchWf00zz").await {
        assert!(is_not_found(&err), "[workflows] {method} of an unknown id is NotFound, got {err}");
    }
}

/// `get_workflow` returns the fixture (inactive); listing refuses limits
/// outside 1..=[`MAX_WORKFLOW_PAGE`] and, page by page, lists it once.
pub async fn get_and_list_find_the_workflow(engine: &dyn Workflows, fixture: &WorkflowsFixture) {
    let w = engine.get_workflow(&fixture.workflow_id).await.expect("[workflows] get the fixture");
    assert_eq!(w.id, fixture.workflow_id, "[workflows] get returns the workflow asked for");
    assert!(!w.active, "[workflows] the fixture starts inactive");
    assert!(!w.name.is_empty(), "[workflows] a workflow has a name");
    for limit in [0, MAX_WORKFLOW_PAGE + 1] {
        let err = engine.list_workflows(None, limit).await.expect_err("limit");
        assert!(is_validation(&err), "[workflows] a limit of {limit} is Validation, got {err}");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = engine.list_workflows(cursor.as_deref(), 100).await.expect("[workflows] list");
        assert!(page.items.len() <= 100, "[workflows] a page holds at most its limit");
        seen.extend(page.items.into_iter().map(|w| w.id));
        match page.next_cursor {
            Some(next) => {
                assert_ne!(Some(&next), cursor.as_ref(), "[workflows] the cursor moves");
                cursor = Some(next);
            }
            None => break,
        }
    }
    let times = seen.iter().filter(|id| **id == fixture.workflow_id).count();
    assert_eq!(times, 1, "[workflows] paging lists the fixture exactly once");
}

/// The export is the whole definition: the same id and name, with its nodes
/// and connections, so it can be imported again.
pub async fn export_is_the_whole_definition(engine: &dyn Workflows, fixture: &WorkflowsFixture) {
    let w = engine.get_workflow(&fixture.workflow_id).await.expect("[workflows] get");
    let export = engine.export_workflow(&fixture.workflow_id).await.expect("[workflows] export");
    assert_eq!(export["id"], w.id.as_str(), "[workflows] the export names the workflow");
    assert_eq!(export["name"], w.name.as_str(), "[workflows] the export has its name");
    assert!(export["nodes"].is_array(), "[workflows] the export has its nodes: {export}");
    assert!(export["connections"].is_object(), "[workflows] the export has its connections: {export}");
}

/// A blank target is `Validation`; a path nobody listens on is `NotFound`.
pub async fn bad_targets_are_refused(engine: &dyn Workflows) {
    let event = serde_json::json!({ "type": "contact.created" });
    for blank in ["", "   "] {
        let err = engine.trigger(blank, &event).await.expect_err("blank target");
        assert!(is_validation(&err), "[workflows] a blank target is Validation, got {err}");
    }
    let err = engine.trigger("crm-suite-nobody-listens-here", &event).await.expect_err("no listener");
    assert!(is_not_found(&err), "[workflows] a path nobody listens on is NotFound, got {err}");
}

/// Triggers `path` until it answers other than `NotFound`, or `settle` passed.
async fn trigger_settled(
    engine: &dyn Workflows,
    path: &str,
    event: &serde_json::Value,
    settle: Duration,
    want_found: bool,
) -> crate::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + settle;
    loop {
        let r = engine.trigger(path, event).await;
        let found = !matches!(&r, Err(Error::NotFound { .. }));
        if found == want_found || std::time::Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// While the workflow is inactive its webhook is `NotFound`; activation
/// returns it active and its webhook takes the event; deactivation returns it
/// inactive and the webhook is gone again.
pub async fn activation_switches_the_webhook(engine: &dyn Workflows, fixture: &WorkflowsFixture) {
    let event = serde_json::json!({ "type": "contact.created", "data": { "id": "suite" } });
    let err = engine.trigger(&fixture.webhook_path, &event).await.expect_err("inactive");
    assert!(is_not_found(&err), "[workflows] an inactive workflow's webhook is NotFound, got {err}");

    let on = engine.activate(&fixture.workflow_id).await.expect("[workflows] activate");
    assert!(on.active && on.id == fixture.workflow_id, "[workflows] activate returns it active");
    let got = engine.get_workflow(&fixture.workflow_id).await.expect("[workflows] get");
    assert!(got.active, "[workflows] get shows it active");
    let answer = trigger_settled(engine, &fixture.webhook_path, &event, fixture.settle, true).await;
    assert!(answer.is_ok(), "[workflows] an active workflow's webhook takes the event, got {answer:?}");

    let off = engine.deactivate(&fixture.workflow_id).await.expect("[workflows] deactivate");
    assert!(!off.active, "[workflows] deactivate returns it inactive");
    let err =
        trigger_settled(engine, &fixture.webhook_path, &event, fixture.settle, false).await.expect_err("deactivated");
    assert!(is_not_found(&err), "[workflows] a deactivated workflow's webhook is NotFound, got {err}");
    assert!(!engine.get_workflow(&fixture.workflow_id).await.expect("get").active, "[workflows] left inactive");
}

/// The engine's health check answers healthy while it is up.
pub async fn the_engine_reports_healthy(engine: &dyn Workflows) {
    let health = engine.check().await;
    assert_eq!(health.status, HealthStatus::Healthy, "[workflows] an engine that is up reports healthy: {health:?}");
}
