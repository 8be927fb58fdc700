//! Server-side request forgery: an app can make yunid call the URLs it registered (its `jwks_uri`, its
//! back-channel logout endpoint). With no network allowed (`client_outbound_allow`, the default), yunid
//! connects to public addresses only — checked after DNS resolution, so a host NAME that resolves to
//! loopback is refused as surely as the address itself — and not a single TCP connection reaches the
//! internal listener. Self-registered apps are held to https and public hosts when they register.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::common::jwks_server::{AppKey, set};
use crate::common::wire::{self, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, rp::Rp};
use crate::on_both_backends;

/// A listener on 127.0.0.1 (an internal service yunid must not be made to call): counts the TCP
/// connections it accepts and answers each with `body` as JSON.
struct Tripwire {
    port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tripwire {
    async fn start(body: String) -> Tripwire {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        Tripwire { port, accepted, task }
    }

    /// A URL on this listener under a host name (`localhost`) or an address. An administrator may
    /// register `http` for loopback only; other hosts get `https` (refused before any TLS anyway).
    fn url(&self, host: &str, path: &str) -> String {
        let scheme = if matches!(host, "localhost" | "127.0.0.1") {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}:{}{path}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A provider as in production: no internal network allowed for requests made for apps.
async fn guarded(backend: Backend) -> Env {
    Env::start_with(backend, |c| c.client_outbound_allow.clear()).await
}

/// A machine-to-machine app authenticating with keys at `jwks_uri` (registered by an administrator).
async fn m2m_app(env: &Env, jwks_uri: &str) -> String {
    env.client_with(NewClient {
        name: "keys by reference".into(),
        scopes: vec!["profile".into()],
        grant_types: vec!["client_credentials".into()],
        auth_method: AuthMethod::PrivateKeyJwt,
        jwks_uri: Some(jwks_uri.to_owned()),
        ..NewClient::default()
    })
    .await
    .id
}

async fn assertion_result(env: &Env, key: &AppKey, client_id: &str) -> (StatusCode, Value) {
    let assertion = key.assertion(client_id, &env.url("/token"), env.app.now());
    wire::with_assertion(&env.base, client_id, &assertion).await
}

async fn a_jwks_uri_on_a_name_or_address_inside_is_never_fetched(backend: Backend) {
    let key = AppKey::new("k1");
    let tripwire = Tripwire::start(set(&[&key]).to_string()).await;

    // Control: where loopback is allowed (development), the same app's keys are fetched from there.
    let development = Env::start(backend).await;
    let app = m2m_app(&development, &tripwire.url("localhost", "/jwks")).await;
    let (status, body) = assertion_result(&development, &key, &app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(tripwire.accepted(), 1);
    drop(development);

    let env = guarded(backend).await;
    for host in ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"] {
        let before = tripwire.accepted();
        let app = m2m_app(&env, &tripwire.url(host, "/jwks")).await;
        let (status, body) = assertion_result(&env, &key, &app).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{host}: {body}");
        assert_eq!(body["error"], "invalid_client", "{host}: {body}");
        assert_eq!(
            tripwire.accepted(),
            before,
            "{host}: a connection reached the listener"
        );
    }
    assert_eq!(tripwire.accepted(), 1, "only the control's fetch ever connected");
}

/// The outbox rows of `env`'s database: (client_id, attempts, last_error).
async fn outbox(env: &Env) -> Vec<(String, i64, Option<String>)> {
    use sqlx::Row;
    sqlx::query("SELECT client_id, attempts, last_error FROM logout_deliveries")
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn a_back_channel_logout_uri_on_a_name_or_address_inside_is_never_called(backend: Backend) {
    let tripwire = Tripwire::start(String::new()).await;
    let env = guarded(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let mut hint = String::new();
    for (host, sector) in [("localhost", "a.example"), ("127.0.0.1", "b.example")] {
        let app = env
            .client_with(NewClient {
                name: format!("logout at {host}"),
                redirect_uris: vec![format!("https://{sector}/cb")],
                backchannel_logout_uri: Some(tripwire.url(host, "/logout")),
                ..NewClient::default()
            })
            .await;
        let rp = Rp::discover(&env.base, &app).await;
        hint = sign_in(&rp, &browser, &["profile"]).await.id_token();
    }
    let mut logout = url::Url::parse(&env.url("/logout")).unwrap();
    logout.query_pairs_mut().append_pair("id_token_hint", &hint);
    browser.get(logout.as_str()).await;

    // Both deliveries were attempted, and refused before connecting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = outbox(&env).await;
        if rows.len() == 2 && rows.iter().all(|(_, attempts, _)| *attempts >= 1) {
            break rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "not attempted: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (client, _, error) in &rows {
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.contains("no public address") || error.contains("is not a public address"),
            "{client}: {error}"
        );
    }
    assert_eq!(tripwire.accepted(), 0, "a connection reached the listener");
}

on_both_backends!(
    a_jwks_uri_on_a_name_or_address_inside_is_never_fetched,
    a_back_channel_logout_uri_on_a_name_or_address_inside_is_never_called,
);
