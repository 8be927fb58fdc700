//! Every request: an `x-request-id` (the caller's when it is a sane token, else a new one) on the
//! response and on the request's trace span, one log line, and the request metrics. Logs and labels
//! name the route template (`/authorize`), never the path and query, which can carry codes, tokens and
//! login hints.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::app::App;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, also in the request extensions for handlers that want it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// 1 to 64 characters of `A-Z a-z 0-9 - _ . :` — what proxies and tracing systems send; anything else
/// is replaced rather than echoed into logs and headers.
fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn observe(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| app.random.uuid_v4().to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut res = next.run(req).instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    app.metrics.http_request(&method, &route, status, seconds);
    span.in_scope(|| {
        let ms = (seconds * 1000.0).round() as u64;
        if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(status, ms, "request");
        } else {
            tracing::info!(status, ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

/// `GET /metrics`: the Prometheus exposition, with the database pool and the hashing totals sampled now.
pub async fn metrics(State(app): State<App>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        app.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::sane;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert!(sane("3f2a0c1e-8b7d-4a6f-9c3e-1d2b4a6c8e0f"));
        assert!(sane("lb-7:abc.def_1"));
        assert!(!sane(""));
        assert!(!sane("a b"));
        assert!(!sane("x\r\ninjected: yes"));
        assert!(!sane(&"a".repeat(65)));
    }
}
