//! The database goes away and comes back; yunid is never restarted. PostgreSQL only: an embedded SQLite
//! file does not go away on its own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::proxy::Proxy;
use super::{CALLBACK, sample, scrape};
use crate::common::browser::field;
use crate::common::wire::{self, alice_and_app};
use crate::common::{Backend, Browser, Env, Server, TestClient, http, pg_admin_url};
use yunid::services::registry::NewClient;

/// A super-admin automation token (client credentials with `yunid:admin`).
async fn admin_token(env: &Env) -> String {
    let client = env
        .client_with(NewClient {
            name: "运维自动化".into(),
            scopes: vec!["yunid:admin".into()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let (status, body) = wire::token(
        &env.base,
        &client,
        &[("grant_type", "client_credentials"), ("scope", "yunid:admin")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn ready(base: &str) -> StatusCode {
    http()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls `/readyz` until it says ready; panics after `within`.
async fn until_ready(base: &str, within: Duration) {
    let started = Instant::now();
    while ready(base).await != StatusCode::OK {
        assert!(started.elapsed() < within, "not ready again after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn refresh(base: &str, client: &TestClient, token: &str) -> (StatusCode, serde_json::Value) {
    wire::token(
        base,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// PostgreSQL ends every session on this database, as a restart or a failover does.
async fn terminate_backends(db_url: &str) {
    let name = db_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_admin_url())
        .await
        .unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the node held connections to terminate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fast_and_heals_without_restart() {
    let pg = url::Url::parse(&pg_admin_url()).unwrap();
    let target = format!("{}:{}", pg.host_str().unwrap(), pg.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    let via = proxy.addr;
    let env = Env::start_with(Backend::Postgres, move |c| {
        let mut url = url::Url::parse(&c.database_url).unwrap();
        url.set_host(Some(&via.ip().to_string())).unwrap();
        url.set_port(Some(via.port())).unwrap();
        c.database_url = url.to_string();
    })
    .await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let admin = admin_token(&env).await;
    // A second node through the same proxy, on a host name (a WebAuthn relying party must be a domain)
    // and open to registration, and a visitor with its login and registration forms open.
    let node = Server::start(&env.app.config.database_url, &env.keys_dir, &|c| {
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
        c.self_registration = true;
    })
    .await;
    let visitor = Browser::new(&node.base);
    let login_page = visitor.get("/login").await;
    let login_csrf = field(login_page.html().2, "csrf").unwrap();
    let register_page = visitor.get("/register").await;
    let register_csrf = field(register_page.html().2, "csrf").unwrap();
    let before = wire::sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;

    // 1. PostgreSQL drops every connection, three times over: each time the pool notices and reconnects
    //    by itself, and the next token request is served.
    let mut refresh_token = before.refresh_token();
    for _ in 0..3 {
        terminate_backends(&env.db.url).await;
        until_ready(&env.base, Duration::from_secs(5)).await;
        let (status, body) = refresh(&env.base, &client, &refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    }

    // 2. The database cannot be reached at all (connections hang): nothing waits long, nothing is lost.
    proxy.cut();
    let started = Instant::now();
    assert_eq!(ready(&env.base).await, StatusCode::SERVICE_UNAVAILABLE);
    // Bounded by the 1 s readiness limit (with room for a busy test machine); a hang is unbounded.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let (status, body) = refresh(&env.base, &client, &refresh_token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    // Bounded by the pool's 2 s acquire limit.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // A browser gets a page saying so, not a hang or a bare 500. The authorization request and the login
    // page it leads to need no database (the request travels sealed with the browser,
    // `services::authn::pending`, and a page that only displays it does not read its answered marker):
    // the sign-in posted from that page is the first step that does.
    // A browser keeps its cookies (the request is bound to it), so the login page is its own request's.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let attempt = rp.start(&["profile"]);
    let res = browser.get(attempt.url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = env.url(res.headers()["location"].to_str().unwrap());
    assert!(login.contains("/login?req="), "{login}");
    let res = browser.get(&login).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let form = res.text().await.unwrap();
    let csrf = field(&form, "csrf").expect("the login form");
    let req = field(&form, "req").expect("the request it carries");
    let sign_in = |lang: Option<&'static str>| {
        let post = browser.post(env.url("/login"));
        let post = match lang {
            Some(lang) => post.header("accept-language", lang),
            None => post,
        };
        post.form(&[
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("username", crate::common::ALICE_ID),
            ("password", crate::common::PASSWORD),
        ])
        .send()
    };
    let res = sign_in(None).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    // In one language: Chinese by default, English when asked for.
    let page = res.text().await.unwrap();
    assert!(
        page.contains("服务暂时不可用") && !page.contains("temporarily unavailable"),
        "{page}"
    );
    let res = sign_in(Some("en")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let page = res.text().await.unwrap();
    assert!(page.contains("<html lang=\"en\""), "{page}");
    assert!(
        page.contains("temporarily unavailable") && !page.contains("服务暂时不可用"),
        "{page}"
    );

    // So do the passkey, registration and admin endpoints: 503 with Retry-After, never a 500.
    let res = visitor
        .http
        .post(node.url("/login/passkey/start"))
        .header("x-csrf-token", &login_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let res = visitor
        .http
        .post(node.url("/register/code"))
        .form(&[("csrf", register_csrf.as_str()), ("phone", "13900139007")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let res = http()
        .get(env.url("/admin/api/persons?phone=13800138000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));

    // Liveness and metrics do not need the database (a node is not restarted for its database's sake).
    let res = http().get(env.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = scrape(&env.base).await;
    assert!(
        sample(
            &text,
            r#"yunid_http_requests_total{method="POST",route="/token",status="503"}"#
        ) >= 1.0
    );

    // 3. Back: ready again, and the refresh token the failed request presented was not consumed.
    proxy.restore();
    until_ready(&env.base, Duration::from_secs(10)).await;
    let (status, body) = refresh(&env.base, &client, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let (status, _) = wire::userinfo(&env.base, access).await;
    assert_eq!(status, StatusCode::OK);
    wire::sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;
}
