//! Prometheus metrics, kept in process and rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
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
    /// so ids do not explode the label set).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut m = self.lock();
        *m.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        let h = m.latency.entry((method.to_owned(), route.to_owned())).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts an outbound message by its outcome (`sent` or `failed`).
    pub fn observe_message(&self, outcome: &'static str) {
        *self.lock().messages.entry(outcome).or_default() += 1;
    }

    /// Renders every metric, plus the given gauges (`name{labels}` → value).
    pub fn render(&self, gauges: &[(String, f64)]) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP crm_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE crm_http_requests_total counter\n");
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "crm_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out.push_str("# HELP crm_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE crm_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &m.latency {
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
        for outcome in ["sent", "failed"] {
            let n = m.messages.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "crm_messages_total{{outcome=\"{outcome}\"}} {n}");
        }
        if !gauges.is_empty() {
            out.push_str("# HELP crm_outbox_pending Events queued in the outbox per consumer.\n");
            out.push_str("# TYPE crm_outbox_pending gauge\n");
            for (series, v) in gauges {
                let _ = writeln!(out, "{series} {v}");
            }
        }
        out
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
        m.observe_message("sent");
        let text = m.render(&[("crm_outbox_pending{consumer=\"webhooks\"}".into(), 2.0)]);
        assert!(
            text.contains("crm_http_requests_total{method=\"GET\",route=\"/api/v1/contacts/{id}\",status=\"404\"} 1")
        );
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("crm_messages_total{outcome=\"sent\"} 1"));
        assert!(text.contains("crm_messages_total{outcome=\"failed\"} 0"));
        assert!(text.contains("crm_outbox_pending{consumer=\"webhooks\"} 2"));
    }
}
