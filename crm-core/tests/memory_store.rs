//! The store conformance suite against `MemoryStore`.

use crm_core::{MemoryStore, Store, testing};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_store_suite() {
    testing::store::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
}

#[tokio::test]
async fn memory_media_store_passes_the_media_suite() {
    let signer = crm_core::UrlSigner::new(&[9; 32], "http://127.0.0.1:8080/media").expect("signer");
    testing::media::run_all(&crm_core::MemoryMediaStore::new().with_signer(signer)).await;
}

#[tokio::test]
async fn recording_workflows_pass_the_workflows_suite() {
    let engine = crm_core::memory::RecordingWorkflows::new();
    engine.add("other0000000001", "Another", true);
    engine.add_webhook("wf1AbCdEfGhIjKlM", "Lead qualification", false, "crm-lead");
    testing::workflows::run_all(&engine, &testing::workflows::WorkflowsFixture::new("wf1AbCdEfGhIjKlM", "crm-lead"))
        .await;
}
