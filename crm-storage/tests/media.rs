//! The media conformance suite against `LocalMediaStore` in a temporary folder.

use crm_core::testing;
use crm_storage::LocalMediaStore;

#[tokio::test]
async fn local_media_store_passes_the_media_suite() {
    let dir = std::env::temp_dir().join(format!("crm-media-{}", uuid::Uuid::now_v7()));
    let store = LocalMediaStore::new(&dir);
    testing::media::run_all(&store).await;
    let written = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 1, "everything under the one `account` folder");
    std::fs::remove_dir_all(&dir).ok();
}
