//! Prometheus metrics, kept in process and rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_core::workers::WorkerStats;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The outcomes `crm_messages_total` is rendered for (a closed label set).
const MESSAGE_OUTCOMES: [&str; 1] = ["queued"];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The HTTP methods counted under their own name; any other is `other`, so
/// made-up methods cannot grow the label set.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// `method` when it is a known HTTP method, else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// One (method, route)'s counts by status and its latency histogram.
#[derive(Debug, Default, Clone)]
struct RouteStats {
    /// Requests by status (a handful per route, so a short list).
    statuses: Vec<(u16, u64)>,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Inner {
    /// By route, then method: looked up with borrowed strings, so counting
    /// a request allocates only the first time its route and method are seen.
    routes: std::collections::HashMap<String, Vec<(&'static str, RouteStats)>>,
    messages: BTreeMap<&'static str, u64>,
}

/// The server's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one finished request on its matched route (never the raw path,
    /// so ids do not explode the label set; `unmatched` for no route) and its
    /// method ([`method_label`]: a known method or `other`).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut m = self.lock();
        let methods = match m.routes.get_mut(route) {
            Some(methods) => methods,
            None => m.routes.entry(route.to_owned()).or_default(),
        };
        let at = match methods.iter().position(|(m, _)| *m == method) {
            Some(i) => i,
            None => {
                methods.push((method, RouteStats::default()));
                methods.len() - 1
            }
        };
        let stats = &mut methods[at].1;
        match stats.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => stats.statuses.push((status, 1)),
        }
        let h = &mut stats.latency;
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts an outbound message by its outcome (`queued`).
    pub fn observe_message(&self, outcome: &'static str) {
        *self.lock().messages.entry(outcome).or_default() += 1;
    }

    /// Renders every metric, with the worker runtime's counters and queues
    /// (the lag of a queue is `now` minus its oldest due item's due time).
    pub fn render(&self, workers: &[WorkerStats], now: DateTime<Utc>) -> String {
        let m = self.lock();
        // Rendered in (method, route, status) order, as before.
        let mut requests: BTreeMap<(&str, &str, u16), u64> = BTreeMap::new();
        let mut latency: BTreeMap<(&str, &str), &Histogram> = BTreeMap::new();
        for (route, methods) in &m.routes {
            for (method, stats) in methods {
                for (status, n) in &stats.statuses {
                    requests.insert((method, route.as_str(), *status), *n);
                }
                latency.insert((method, route.as_str()), &stats.latency);
            }
        }
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP crm_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE crm_http_requests_total counter\n");
        for ((method, route, status), n) in &requests {
            let _ = writeln!(
                out,
                "crm_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out.push_str("# HELP crm_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE crm_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &latency {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "crm_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "crm_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "crm_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "crm_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        out.push_str("# HELP crm_messages_total Outbound messages by outcome.\n");
        out.push_str("# TYPE crm_messages_total counter\n");
        for outcome in MESSAGE_OUTCOMES {
            let n = m.messages.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "crm_messages_total{{outcome=\"{outcome}\"}} {n}");
        }
        drop(requests);
        drop(latency);
        drop(m);
        render_workers(&mut out, workers, now);
        out
    }
}

/// Worker names come from the workers registered at start (a closed set).
fn render_workers(out: &mut String, workers: &[WorkerStats], now: DateTime<Utc>) {
    if workers.is_empty() {
        return;
    }
    out.push_str("# HELP crm_worker_items_total Items handled by each background worker, by result.\n");
    out.push_str("# TYPE crm_worker_items_total counter\n");
    for w in workers {
        let name = escape(&w.name);
        for (result, n) in [
            ("claimed", w.claimed),
            ("done", w.done),
            ("retried", w.retried),
            ("deferred", w.deferred),
            ("dead_lettered", w.dead_lettered),
            ("panicked", w.panics),
            ("lost_lease", w.lost_leases),
            ("store_error", w.store_errors),
        ] {
            let _ = writeln!(out, "crm_worker_items_total{{worker=\"{name}\",result=\"{result}\"}} {n}");
        }
    }
    out.push_str("# HELP crm_worker_in_flight Items each worker is handling now.\n");
    out.push_str("# TYPE crm_worker_in_flight gauge\n");
    for w in workers {
        let _ = writeln!(out, "crm_worker_in_flight{{worker=\"{}\"}} {}", escape(&w.name), w.in_flight);
    }
    let queues: Vec<_> = workers.iter().filter_map(|w| w.queue.map(|q| (escape(&w.name), q))).collect();
    for (metric, help) in [
        ("crm_queue_depth", "Items waiting or running per worker queue (all processes)."),
        ("crm_queue_due", "Items due now and not leased."),
        ("crm_queue_lag_seconds", "Age of the oldest due item (0 when none is due)."),
        ("crm_queue_dead_letters", "Dead letters kept per worker queue."),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} gauge");
        for (name, q) in &queues {
            let v = match metric {
                "crm_queue_depth" => q.depth as f64,
                "crm_queue_due" => q.due as f64,
                "crm_queue_lag_seconds" => {
                    q.oldest_due_at.map_or(0.0, |t| (now - t).to_std().map_or(0.0, |d| d.as_secs_f64()))
                }
                _ => q.dead as f64,
            };
            let _ = writeln!(out, "{metric}{{worker=\"{name}\"}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe_request("GET", "/api/v1/contacts/{id}", 200, Duration::from_millis(3));
        m.observe_request("GET", "/api/v1/contacts/{id}", 404, Duration::from_millis(30));
        m.observe_message("queued");
        let now = Utc::now();
        let worker = WorkerStats {
            name: "outbox:dispatch".into(),
            done: 3,
            queue: Some(crm_core::QueueStats {
                depth: 2,
                due: 1,
                oldest_due_at: Some(now - chrono::Duration::seconds(4)),
                dead: 1,
            }),
            ..Default::default()
        };
        let text = m.render(&[worker], now);
        assert!(
            text.contains("crm_http_requests_total{method=\"GET\",route=\"/api/v1/contacts/{id}\",status=\"404\"} 1")
        );
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("crm_messages_total{outcome=\"queued\"} 1"));
        assert!(text.contains("crm_worker_items_total{worker=\"outbox:dispatch\",result=\"done\"} 3"), "{text}");
        assert!(text.contains("crm_queue_depth{worker=\"outbox:dispatch\"} 2"), "{text}");
        assert!(text.contains("crm_queue_lag_seconds{worker=\"outbox:dispatch\"} 4"), "{text}");
        assert!(text.contains("crm_queue_dead_letters{worker=\"outbox:dispatch\"} 1"), "{text}");
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let m = Metrics::default();
        for i in 0..50 {
            m.observe_request(&format!("RND{i}"), "unmatched", 404, Duration::from_millis(1));
        }
        let text = m.render(&[], Utc::now());
        assert!(text.contains("method=\"other\",route=\"unmatched\",status=\"404\"} 50"), "{text}");
        assert!(!text.contains("RND"), "{text}");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "other");
    }
}
