//! Metrics in the Prometheus text exposition format (0.0.4), kept per node in memory and rendered at
//! scrape time. Written out by hand rather than through a global recorder so that every node (and every
//! test server in one process) has its own counters. Labels carry route templates, methods and
//! outcomes only: never a path, an address, a token or an identifier.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Name, type and help of every metric family yunid exposes.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "yunid_build_info",
        "gauge",
        "Always 1; the version label names the running release.",
    ),
    (
        "yunid_http_requests_total",
        "counter",
        "HTTP requests by method, route template and status.",
    ),
    (
        "yunid_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by method and route template.",
    ),
    (
        "yunid_licence_upstream_total",
        "counter",
        "Calls to the upstream e-licence library by outcome (ok, error, timeout).",
    ),
    (
        "yunid_logins_total",
        "counter",
        "Login attempts by method (pwd, sms, passkey) and outcome.",
    ),
    (
        "yunid_tokens_issued_total",
        "counter",
        "Token responses issued by grant type.",
    ),
    (
        "yunid_sms_total",
        "counter",
        "SMS codes by outcome: sent, refused (throttled) or failed (gateway).",
    ),
    (
        "yunid_throttle_hits_total",
        "counter",
        "Requests refused by a cross-node throttle, by which limit.",
    ),
    (
        "yunid_db_pool_connections",
        "gauge",
        "Database connections held by this node's pool, by state.",
    ),
    (
        "yunid_db_pool_max_connections",
        "gauge",
        "Largest number of connections this node's pool opens.",
    ),
    (
        "yunid_password_hashes_total",
        "counter",
        "Password hashes (argon2id) computed: sign-ins, changes, and the equal-cost check of unknown accounts.",
    ),
    (
        "yunid_password_hash_cpu_seconds_total",
        "counter",
        "CPU time those hashes took, measured on the hashing threads.",
    ),
];

type Labels = Vec<(&'static str, String)>;

/// A value sampled at scrape time: family name, labels, value.
pub type Gauge<'a> = (&'static str, &'a [(&'static str, &'a str)], f64);

#[derive(Default)]
struct Histogram {
    /// Per-bucket counts (not cumulative); the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// This node's metrics.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        match self.registry.lock() {
            Ok(mut r) => f(&mut r),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.with(|r| *r.counters.entry((name, labels(pairs))).or_default() += 1);
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        self.with(|r| {
            let h = r.histograms.entry((name, labels(pairs))).or_default();
            let slot = BUCKETS.iter().position(|b| value <= *b).unwrap_or(BUCKETS.len());
            h.buckets[slot] += 1;
            h.sum += value;
            h.count += 1;
        });
    }

    /// One HTTP request, by route template (`unmatched` when no route matched).
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.inc(
            "yunid_http_requests_total",
            &[("method", method), ("route", route), ("status", &status)],
        );
        self.observe(
            "yunid_http_request_duration_seconds",
            &[("method", method), ("route", route)],
            seconds,
        );
    }

    /// A login attempt: `method` is pwd, sms or passkey; `outcome` success, invalid, throttled,
    /// unavailable (locked account) or expired.
    pub fn login(&self, method: &str, outcome: &str) {
        self.inc("yunid_logins_total", &[("method", method), ("outcome", outcome)]);
    }

    pub fn token_issued(&self, grant: &str) {
        self.inc("yunid_tokens_issued_total", &[("grant", grant)]);
    }

    /// `sent`, `refused` or `failed`.
    pub fn sms(&self, outcome: &str) {
        self.inc("yunid_sms_total", &[("outcome", outcome)]);
    }

    /// A call to the upstream e-licence library: `ok`, `error` or `timeout`.
    pub fn licence_upstream(&self, outcome: &str) {
        self.inc("yunid_licence_upstream_total", &[("outcome", outcome)]);
    }

    /// A throttle said no: `login_account`, `login_address` or `sms_send`.
    pub fn throttled(&self, limit: &str) {
        self.inc("yunid_throttle_hits_total", &[("limit", limit)]);
    }

    /// The exposition text; `gauges` are sampled by the caller at scrape time.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        self.with(|r| {
            for (family, kind, help) in FAMILIES {
                let _ = writeln!(out, "# HELP {family} {help}");
                let _ = writeln!(out, "# TYPE {family} {kind}");
                if *family == "yunid_build_info" {
                    let _ = writeln!(
                        out,
                        "yunid_build_info{{version=\"{}\"}} 1",
                        env!("CARGO_PKG_VERSION")
                    );
                }
                for (name, pairs, value) in gauges.iter().filter(|g| g.0 == *family) {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(&labels(pairs), None));
                }
                for ((_, l), value) in r.counters.iter().filter(|((n, _), _)| n == family) {
                    let _ = writeln!(out, "{family}{} {value}", render_labels(l, None));
                }
                for ((_, l), h) in r.histograms.iter().filter(|((n, _), _)| n == family) {
                    let mut cumulative = 0;
                    for (i, count) in h.buckets.iter().enumerate() {
                        cumulative += count;
                        let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                        let _ = writeln!(out, "{family}_bucket{} {cumulative}", render_labels(l, Some(&le)));
                    }
                    let _ = writeln!(out, "{family}_sum{} {}", render_labels(l, None), h.sum);
                    let _ = writeln!(out, "{family}_count{} {}", render_labels(l, None), h.count);
                }
            }
        });
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::default();
        m.login("pwd", "success");
        m.login("pwd", "success");
        m.http_request("GET", "/jwks", 200, 0.003);
        m.http_request("GET", "/jwks", 200, 0.2);
        let text = m.render(&[("yunid_db_pool_connections", &[("state", "idle")], 3.0)]);
        assert!(text.contains("yunid_logins_total{method=\"pwd\",outcome=\"success\"} 2\n"));
        assert!(
            text.contains("yunid_http_requests_total{method=\"GET\",route=\"/jwks\",status=\"200\"} 2\n")
        );
        assert!(text.contains(
            "yunid_http_request_duration_seconds_bucket{method=\"GET\",route=\"/jwks\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "yunid_http_request_duration_seconds_bucket{method=\"GET\",route=\"/jwks\",le=\"0.25\"} 2\n"
        ));
        assert!(text.contains(
            "yunid_http_request_duration_seconds_bucket{method=\"GET\",route=\"/jwks\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            text.contains("yunid_http_request_duration_seconds_count{method=\"GET\",route=\"/jwks\"} 2\n")
        );
        assert!(text.contains("yunid_db_pool_connections{state=\"idle\"} 3\n"));
        assert!(text.contains("# TYPE yunid_tokens_issued_total counter\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
