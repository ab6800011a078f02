//! What a session's Chromium costs in memory, read from `/proc` (Linux).
//! Every process of a session's Chromium (browser, zygotes, renderers,
//! utilities) carries the session's profile folder on its command line.

use std::path::Path;
use std::time::Duration;

/// Memory of a set of processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    /// How many processes.
    pub processes: usize,
    /// Sum of their resident set sizes, in bytes (pages shared between
    /// them, such as the zygotes', counted once per process).
    pub rss_bytes: u64,
    /// Sum of their proportional set sizes, in bytes (shared pages split
    /// between the processes sharing them): what they cost together.
    pub pss_bytes: u64,
}

impl std::ops::Add for MemoryUsage {
    type Output = MemoryUsage;
    fn add(self, o: MemoryUsage) -> MemoryUsage {
        MemoryUsage {
            processes: self.processes + o.processes,
            rss_bytes: self.rss_bytes + o.rss_bytes,
            pss_bytes: self.pss_bytes + o.pss_bytes,
        }
    }
}

fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// The processes whose command line contains `folder`.
pub(crate) fn usage_of(folder: &Path) -> MemoryUsage {
    let needle = folder.to_string_lossy().into_owned();
    let mut usage = MemoryUsage::default();
    let Ok(entries) = std::fs::read_dir("/proc") else { return usage };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else { continue };
        if cmdline.is_empty() || !String::from_utf8_lossy(&cmdline).contains(&needle) {
            continue;
        }
        let Some(rss) = std::fs::read_to_string(path.join("status")).ok().and_then(|s| kib(&s, "VmRSS:")) else {
            continue;
        };
        let pss = std::fs::read_to_string(path.join("smaps_rollup")).ok().and_then(|s| kib(&s, "Pss:")).unwrap_or(rss);
        usage.processes += 1;
        usage.rss_bytes += rss;
        usage.pss_bytes += pss;
    }
    usage
}

/// The resident set size of this process, in bytes.
pub fn own_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| kib(&s, "VmRSS:")).unwrap_or(0)
}

/// Waits until no process runs with `folder` on its command line (Chromium's
/// helpers end shortly after the browser process), up to `limit`.
pub(crate) async fn wait_gone(folder: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if usage_of(folder).processes == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
