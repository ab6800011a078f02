//! Throughput and peak memory of a 50 MB file through `ObjectMediaStore`:
//! streamed upload (`put_stream`, 64 KiB chunks made on the fly, so the
//! file is never whole in memory) and streamed download (`get_stream`),
//! on the local folder and (feature `s3`, `CRM_TEST_S3_URL` set) on an
//! S3-compatible server, each beside a baseline measured in the same run:
//! a plain file copy (`std::fs::copy`) for the local folder, a raw
//! `object_store` put of the whole file from memory and a whole-body get
//! for S3.
//!
//! `cargo bench -p crm-storage --features s3 --bench media`
//!
//! Peak RSS is the process's high-water mark (`VmHWM`), reset before each
//! case through `/proc/self/clear_refs` (Linux), so each line shows the peak
//! of its own case above what the process already held.

use bytes::Bytes;
use futures_util::StreamExt;
use std::time::{Duration, Instant};

use crm_core::{AccountId, MediaFile, MediaStore};
use crm_storage::ObjectMediaStore;

const SIZE: usize = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const RUNS: usize = 3;

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// The file as a stream of 64 KiB chunks, made as it is read.
fn file_stream() -> crm_core::ByteStream {
    let chunk = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    Box::pin(futures_util::stream::iter((0..SIZE / CHUNK).map(move |_| Ok(chunk.clone()))))
}

struct Case {
    name: String,
    best: Duration,
    peak_mib: f64,
}

async fn measure<F, Fut>(name: &str, mut run: F) -> Case
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut best = Duration::MAX;
    let mut peak = 0;
    for _ in 0..RUNS {
        reset_peak();
        let before = kib("VmRSS:");
        let start = Instant::now();
        run().await;
        best = best.min(start.elapsed());
        peak = peak.max(kib("VmHWM:").saturating_sub(before));
    }
    Case { name: name.to_owned(), best, peak_mib: peak as f64 / 1024.0 }
}

fn print(cases: &[Case]) {
    println!("| case | best of {RUNS} | MB/s | peak RSS over the process (MiB) |");
    println!("|---|---|---|---|");
    for c in cases {
        let mbps = SIZE as f64 / 1e6 / c.best.as_secs_f64();
        println!("| {} | {:.0} ms | {:.0} | {:.1} |", c.name, c.best.as_secs_f64() * 1000.0, mbps, c.peak_mib);
    }
}

async fn store_cases(label: &str, store: &ObjectMediaStore, cases: &mut Vec<Case>) {
    let account = AccountId::new();
    let file = MediaFile { folder: "bench", name: "big.pdf", content_type: "application/pdf" };
    let last_key = std::cell::RefCell::new(String::new());
    let slot = &last_key;
    cases.push(
        measure(&format!("{label}: upload (put_stream)"), move || async move {
            let key = store.put_stream(account, file, file_stream()).await.expect("put");
            *slot.borrow_mut() = key;
        })
        .await,
    );
    let key = last_key.borrow().clone();
    let key = key.as_str();
    cases.push(
        measure(&format!("{label}: download (get_stream)"), move || async move {
            let mut body = store.get_stream(account, key).await.expect("get").body;
            let mut n = 0;
            while let Some(c) = body.next().await {
                n += c.expect("chunk").len();
            }
            assert_eq!(n, SIZE);
        })
        .await,
    );
    for m in store.list(account, None).await.expect("list") {
        store.delete(account, &m.key).await.expect("delete");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("crm-media-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cases = Vec::new();

    // Baseline: a plain copy of a 50 MB file, written once beforehand.
    let source = dir.join("source.bin");
    std::fs::write(&source, vec![7u8; SIZE]).expect("source");
    let target = dir.join("copy.bin");
    cases.push(
        measure("local baseline: std::fs::copy", || {
            std::fs::copy(&source, &target).expect("copy");
            std::future::ready(())
        })
        .await,
    );
    let local = ObjectMediaStore::local(dir.join("media")).expect("local");
    store_cases("local", &local, &mut cases).await;

    #[cfg(feature = "s3")]
    match std::env::var("CRM_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => {
            let settings = crm_storage::S3Settings {
                bucket: std::env::var("CRM_TEST_S3_BUCKET").unwrap_or_else(|_| "crm-test".into()),
                region: "us-east-1".into(),
                endpoint: Some(url),
                access_key_id: Some("bench".into()),
                secret_access_key: Some("bench".into()),
            };
            let s3 = ObjectMediaStore::s3(&settings).expect("s3");
            let raw = s3.object_store().clone();
            let path = object_store::path::Path::from(format!("bench/{}", uuid::Uuid::now_v7()));
            let whole = Bytes::from(vec![7u8; SIZE]);
            let (raw_ref, path_ref, whole_ref) = (&raw, &path, &whole);
            cases.push(
                measure("s3 baseline: object_store put of the whole file", move || async move {
                    use object_store::ObjectStoreExt;
                    raw_ref.put(path_ref, whole_ref.clone().into()).await.expect("put");
                })
                .await,
            );
            drop(whole);
            cases.push(
                measure("s3 baseline: object_store get, whole body", move || async move {
                    use object_store::ObjectStoreExt;
                    let b = raw_ref.get(path_ref).await.expect("get").bytes().await.expect("bytes");
                    assert_eq!(b.len(), SIZE);
                })
                .await,
            );
            {
                use object_store::ObjectStoreExt;
                raw.delete(&path).await.ok();
            }
            store_cases("s3", &s3, &mut cases).await;
        }
        _ => eprintln!("SKIPPED the S3 cases: set CRM_TEST_S3_URL (and CRM_TEST_S3_BUCKET)"),
    }

    print(&cases);
    std::fs::remove_dir_all(&dir).ok();
}
