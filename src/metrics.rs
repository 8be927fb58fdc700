//! Metrics in the Prometheus text exposition format (0.0.4), through `prometheus-client`: one registry
//! per `App`, so that every node (and every test server in one process) has its own counters. Counters
//! and histograms are atomics (a family takes a write lock only for a label set it has not seen).
//! Labels carry route templates, methods and outcomes only: never a path, an address, a token or an
//! identifier.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `Content-Type` of [`Metrics::render`].
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Login {
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Grant {
    grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Limit {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorCall {
    connector: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorName {
    connector: String,
}

type ConnectorLatency = Family<ConnectorName, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: &'static str,
}

type Latency = Family<Route, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What is read at scrape time rather than counted as it happens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub pool_open: i64,
    pub pool_idle: i64,
    pub pool_max: i64,
    /// Password hashes computed on this node so far, and the CPU seconds they took.
    pub hashes: u64,
    pub hash_cpu_seconds: f64,
}

/// Samples a [`Sample`] on every scrape.
struct Sampled(Box<dyn Fn() -> Sample + Send + Sync>);

impl std::fmt::Debug for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampled")
    }
}

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = (self.0)();
        let mut pool = encoder.encode_descriptor(
            "yunid_db_pool_connections",
            "Database connections held by this node's pool, by state.",
            None,
            MetricType::Gauge,
        )?;
        let in_use = (s.pool_open - s.pool_idle).max(0);
        for (state, value) in [("open", s.pool_open), ("idle", s.pool_idle), ("in_use", in_use)] {
            ConstGauge::new(value).encode(pool.encode_family(&[("state", state)])?)?;
        }
        ConstGauge::new(s.pool_max).encode(encoder.encode_descriptor(
            "yunid_db_pool_max_connections",
            "Largest number of connections this node's pool opens.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(s.hashes).encode(encoder.encode_descriptor(
            "yunid_password_hashes",
            "Password hashes (argon2id) computed: sign-ins, changes, and the equal-cost check of unknown accounts.",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(s.hash_cpu_seconds).encode(encoder.encode_descriptor(
            "yunid_password_hash_cpu_seconds",
            "CPU time those hashes took, measured on the hashing threads.",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// This node's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Latency,
    logins: Family<Login, Counter>,
    tokens: Family<Grant, Counter>,
    sms: Family<Outcome, Counter>,
    upstream: Family<Outcome, Counter>,
    throttled: Family<Limit, Counter>,
    proofing: Family<ConnectorCall, Counter>,
    proofing_latency: ConnectorLatency,
    proofing_brake: Family<Sweep, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Sweep {
    sweep: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Sample::default)
    }
}

impl Metrics {
    /// `sample` is called on every scrape for the values read then (the pool, the hashing totals).
    pub fn new(sample: impl Fn() -> Sample + Send + Sync + 'static) -> Metrics {
        let mut registry = Registry::default();
        // Counter names are registered without `_total`: the encoder adds it.
        let build = Family::<Version, Gauge>::default();
        build
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "yunid_build_info",
            "Always 1; the version label names the running release",
            build,
        );
        let requests = Family::default();
        registry.register(
            "yunid_http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        let latency = Latency::new_with_constructor(latency);
        registry.register(
            "yunid_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            latency.clone(),
        );
        let upstream = Family::default();
        registry.register(
            "yunid_licence_upstream",
            "Calls to the upstream e-licence library by outcome (ok, error, timeout)",
            upstream.clone(),
        );
        let logins = Family::default();
        registry.register(
            "yunid_logins",
            "Login attempts by method (pwd, sms, passkey) and outcome",
            logins.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "yunid_tokens_issued",
            "Token responses issued by grant type",
            tokens.clone(),
        );
        let sms = Family::default();
        registry.register(
            "yunid_sms",
            "SMS codes by outcome: sent, refused (throttled) or failed (gateway)",
            sms.clone(),
        );
        let throttled = Family::default();
        registry.register(
            "yunid_throttle_hits",
            "Requests refused by a cross-node throttle, by which limit",
            throttled.clone(),
        );
        let proofing = Family::default();
        registry.register(
            "yunid_proofing_calls",
            "Calls to proofing connectors by connector and outcome (ok, down, timeout, malformed, not_found)",
            proofing.clone(),
        );
        let proofing_latency = ConnectorLatency::new_with_constructor(self::latency);
        registry.register(
            "yunid_proofing_call_duration_seconds",
            "Latency of proofing connector calls by connector",
            proofing_latency.clone(),
        );
        let proofing_brake = Family::default();
        registry.register(
            "yunid_proofing_brake",
            "Proofing re-check sweeps stopped at their brake (too many suspensions or locks at once), by sweep",
            proofing_brake.clone(),
        );
        registry.register_collector(Box::new(Sampled(Box::new(sample))));
        Metrics {
            registry,
            requests,
            latency,
            logins,
            tokens,
            sms,
            upstream,
            throttled,
            proofing,
            proofing_latency,
            proofing_brake,
        }
    }

    /// A proofing sweep (`registry`, `population`) stopped at its brake.
    pub fn proofing_brake(&self, sweep: &str) {
        self.proofing_brake
            .get_or_create(&Sweep {
                sweep: sweep.to_owned(),
            })
            .inc();
    }

    /// A call to a proofing connector (`population`, `carrier`, `face`, `registry`).
    pub fn proofing_call(&self, connector: &str, outcome: &str, seconds: f64) {
        self.proofing
            .get_or_create(&ConnectorCall {
                connector: connector.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.proofing_latency
            .get_or_create(&ConnectorName {
                connector: connector.to_owned(),
            })
            .observe(seconds);
    }

    /// One HTTP request, by route template (`unmatched` when no route matched).
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&Request {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&Route {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// A login attempt: `method` is pwd, sms or passkey; `outcome` success, invalid, throttled,
    /// unavailable (locked account) or expired.
    pub fn login(&self, method: &str, outcome: &str) {
        self.logins
            .get_or_create(&Login {
                method: method.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens
            .get_or_create(&Grant {
                grant: grant.to_owned(),
            })
            .inc();
    }

    /// `sent`, `refused` or `failed`.
    pub fn sms(&self, outcome: &str) {
        self.sms
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A call to the upstream e-licence library: `ok`, `error` or `timeout`.
    pub fn licence_upstream(&self, outcome: &str) {
        self.upstream
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A throttle said no: `login_account`, `login_address`, `sms_send`, `scan_start`, `device_start`, ….
    pub fn throttled(&self, limit: &str) {
        self.throttled
            .get_or_create(&Limit {
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// The exposition text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::new(|| Sample {
            pool_open: 4,
            pool_idle: 3,
            pool_max: 8,
            hashes: 2,
            hash_cpu_seconds: 0.5,
        });
        m.login("pwd", "success");
        m.login("pwd", "success");
        m.http_request("GET", "/jwks", 200, 0.003);
        m.http_request("GET", "/jwks", 200, 0.2);
        m.token_issued("refresh_token");
        let text = m.render();
        assert!(
            text.contains("yunid_logins_total{method=\"pwd\",outcome=\"success\"} 2\n"),
            "{text}"
        );
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
            text.contains("yunid_http_request_duration_seconds_count{method=\"GET\",route=\"/jwks\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("yunid_db_pool_connections{state=\"idle\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("yunid_db_pool_connections{state=\"in_use\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("yunid_db_pool_max_connections 8\n"), "{text}");
        assert!(text.contains("yunid_password_hashes_total 2\n"), "{text}");
        assert!(
            text.contains("yunid_password_hash_cpu_seconds_total 0.5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE yunid_tokens_issued_total counter\n"),
            "{text}"
        );
        assert!(text.contains("yunid_tokens_issued_total{grant=\"refresh_token\"} 1\n"));
        assert!(text.contains("# HELP yunid_password_hashes_total Password hashes (argon2id) computed"));
        assert!(
            text.contains("# TYPE yunid_http_request_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "yunid_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.throttled("a\"b\\c\nd");
        assert!(
            m.render()
                .contains("yunid_throttle_hits_total{limit=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{}",
            m.render()
        );
    }
}
