//! Operating yunid: metrics an operator scrapes, request ids that tie a complaint to a log line, client
//! addresses behind a reverse proxy, backups, database outages (`outage.rs`) and several real yunid
//! processes on one database (`processes.rs`), the deploy files' environments (`deploy.rs`).

mod deploy;
mod outage;
mod processes;
mod proxy;
mod walk;

use std::process::Stdio;

use reqwest::StatusCode;

use crate::common::wire::{self, alice_and_app};
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, TestDb, captured_logs, http,
};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// The `yunid` binary, configured only by what the test sets (no `YUNID_*` variable leaks in).
pub fn yunid() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_yunid"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YUNID_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A node's `/metrics` text.
pub async fn scrape(base: &str) -> String {
    let res = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    res.text().await.unwrap()
}

/// The value of one series (`name{labels}` exactly as exposed), 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn metrics_count_logins_tokens_and_requests(backend: Backend) {
    let env = Env::start(backend).await;
    let (_, rp) = alice_and_app(&env, CALLBACK).await;
    let before = scrape(&env.base).await;

    let browser = Browser::new(&env.base);
    let page = browser.get("/login").await;
    browser.login(&page, ALICE_ID, "not the password").await;
    let signed = wire::sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;
    wire::refresh(&rp, &signed.refresh_token(), &[]).await.unwrap();

    let after = scrape(&env.base).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"yunid_logins_total{method="pwd",outcome="success"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"yunid_logins_total{method="pwd",outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"yunid_tokens_issued_total{grant="authorization_code"}"#),
        1.0
    );
    assert_eq!(moved(r#"yunid_tokens_issued_total{grant="refresh_token"}"#), 1.0);
    assert_eq!(
        moved(r#"yunid_http_requests_total{method="POST",route="/token",status="200"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"yunid_http_requests_total{method="POST",route="/login",status="401"}"#),
        1.0
    );
    // Latency by route template: the code and state in the query never become labels.
    assert!(moved(r#"yunid_http_request_duration_seconds_count{method="GET",route="/authorize"}"#) >= 1.0);
    assert!(!after.contains(&signed.code));
    assert!(!after.contains(ALICE_ID));
    // The pool is sampled at scrape time.
    assert_eq!(sample(&after, "yunid_db_pool_max_connections"), 8.0);
    assert!(sample(&after, r#"yunid_db_pool_connections{state="open"}"#) >= 1.0);
    assert!(after.contains("# TYPE yunid_http_request_duration_seconds histogram"));
    // Two password checks (the wrong one and the right one), each an argon2id hash, and the CPU they took.
    assert_eq!(moved("yunid_password_hashes_total"), 2.0);
    let seconds = moved("yunid_password_hash_cpu_seconds_total");
    assert!(seconds > 0.0 && seconds < 10.0, "{seconds}");
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let env = Env::start(backend).await;
    let res = http().get(env.url("/healthz")).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a fresh id: {id}");

    // A sane id from a proxy is kept, on the response and on the request's log line.
    let mine = format!("lb-{}", uuid::Uuid::new_v4().simple());
    let res = http()
        .get(env.url("/jwks"))
        .header("x-request-id", &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], mine.as_str());
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&mine))
        .expect("the request's log line names its id");
    assert!(
        line.contains("route=/jwks") && line.contains("status=200"),
        "{line}"
    );

    // Anything else is replaced rather than echoed; errors and unknown paths get one too.
    for (path, sent) in [("/jwks", "two words"), ("/no/such/page", "x"), ("/token", "x")] {
        let res = http()
            .get(env.url(path))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        if sent == "x" {
            assert_eq!(id, "x", "{path}");
        } else {
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        }
    }
}

/// A browser that sends `X-Forwarded-For` with every request.
fn browser_forwarded_for(base: &str, forwarded: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", forwarded.parse().unwrap());
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        origin: base.to_owned(),
    }
}

async fn sign_in_addresses(server: &Server, person: &str, forwarded: &str) -> Vec<String> {
    let browser = browser_forwarded_for(&server.base, forwarded);
    let page = browser.get("/login").await;
    let landed = browser.login(&page, ALICE_ID, PASSWORD).await;
    let (url, status, _) = landed.html();
    assert!(
        status == StatusCode::OK && url.ends_with("/account"),
        "{url} {status}"
    );
    let events = server.app.db.login_events(person, 10).await.unwrap();
    events.into_iter().map(|e| e.address).collect()
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(backend: Backend) {
    let env = Env::start(backend).await;
    let person = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;

    // No proxy is trusted: the header is the client's word and is ignored.
    let addresses = sign_in_addresses(&env.server, &person, "203.0.113.7").await;
    assert_eq!(addresses, ["127.0.0.1"]);

    // A node behind a proxy on the loopback: the rightmost hop not a trusted proxy is the client, so a
    // forged hop to its left does not count.
    let proxied = Server::start(&env.db.url, &env.keys_dir, &|c: &mut yunid::Config| {
        c.trusted_proxies = vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()];
    })
    .await;
    let addresses = sign_in_addresses(&proxied, &person, "198.51.100.1, 203.0.113.7, 10.1.1.1").await;
    assert!(addresses.contains(&"203.0.113.7".to_owned()), "{addresses:?}");
    assert!(!addresses.contains(&"198.51.100.1".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_running_sqlite_database() {
    let env = Env::start(Backend::Sqlite).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("yunid-backup.db");

    let run = |url: String, file: std::path::PathBuf| async move {
        yunid()
            .args(["backup", "--to"])
            .arg(&file)
            .env("YUNID_DATABASE_URL", url)
            .output()
            .await
            .unwrap()
    };
    // While the server runs.
    let done = run(env.db.url.clone(), file.clone()).await;
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));

    let url = format!("sqlite://{}?mode=ro", file.display());
    let mut copy = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let persons: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM persons")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    assert_eq!(persons, 1);

    // An existing file is never overwritten.
    let again = run(env.db.url.clone(), file.clone()).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // PostgreSQL is backed up with its own tools.
    let pg = TestDb::new(Backend::Postgres).await;
    let refused = run(pg.url.clone(), out.path().join("pg.db")).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pg_dump"));
    assert!(!out.path().join("pg.db").exists());
}

/// Left at 0, the pool size is yunid's choice: 16 connections on PostgreSQL, and on SQLite (one writer
/// at a time) one more than the cores the process may use.
async fn the_default_pool_fits_the_database(backend: Backend) {
    let env = Env::start_with(backend, |c| c.database_max_connections = 0).await;
    let max = sample(&scrape(&env.base).await, "yunid_db_pool_max_connections");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    match backend {
        Backend::Postgres => assert_eq!(max, 16.0),
        Backend::Sqlite => assert_eq!(max, (cores + 1.0).max(2.0)),
    }
}

on_both_backends!(
    the_default_pool_fits_the_database,
    metrics_count_logins_tokens_and_requests,
    every_response_carries_a_request_id,
    forwarded_for_is_believed_only_from_trusted_proxies,
);
