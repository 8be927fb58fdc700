//! Back-channel logout deliveries as apps see them: one app whose endpoint hangs does not hold back
//! another app's logout, which arrives promptly and exactly once; and a delivery retried late carries a
//! logout token made when it is sent, never one that expired while it waited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Uri;
use serde_json::Value;
use tokio::sync::watch;
use yunid::services::registry::NewClient;

use crate::common::receiver::{Hit, Receiver};
use crate::common::rp::Rp;
use crate::common::wire::{self, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient};
use crate::on_both_backends;

/// An app's logout endpoint that hangs: it records each request on arrival and answers only once
/// released.
struct Hanging {
    base: String,
    arrived: Arc<Mutex<Vec<String>>>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type HangState = (Arc<Mutex<Vec<String>>>, watch::Receiver<bool>);

async fn hang(State((arrived, mut released)): State<HangState>, uri: Uri) -> &'static str {
    arrived.lock().unwrap().push(uri.path().to_owned());
    while !*released.borrow_and_update() {
        if released.changed().await.is_err() {
            break;
        }
    }
    "ok"
}

impl Hanging {
    async fn start() -> Hanging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = watch::channel(false);
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(hang))
            .with_state((arrived.clone(), released));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hanging {
            base: format!("http://{addr}"),
            arrived,
            release,
            task,
        }
    }

    fn arrivals(&self) -> usize {
        self.arrived.lock().unwrap().len()
    }
}

/// An app taking back-channel logouts at `uri` (its redirect URIs on host `sector`).
async fn app(env: &Env, sector: &str, uri: String) -> TestClient {
    env.client_with(NewClient {
        name: format!("app at {sector}"),
        redirect_uris: vec![format!("https://{sector}/cb")],
        backchannel_logout_uri: Some(uri),
        ..NewClient::default()
    })
    .await
}

/// Alice signs in to `client` in a browser of her own; logging that browser out ends that session.
async fn signed_in_browser(env: &Env, client: &TestClient) -> (Browser, String) {
    let rp = Rp::discover(&env.base, client).await;
    let browser = Browser::new(&env.base);
    let hint = sign_in(&rp, &browser, &["profile"]).await.id_token();
    (browser, hint)
}

async fn log_out(env: &Env, browser: &Browser, hint: &str) {
    let mut url = url::Url::parse(&env.url("/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", hint);
    browser.get(url.as_str()).await;
}

async fn wait_for(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (delivered_at set, attempts) of every outbox row of `client`.
async fn outbox(env: &Env, client: &TestClient) -> Vec<(bool, i64)> {
    use sqlx::Row;
    sqlx::query("SELECT delivered_at, attempts FROM logout_deliveries WHERE client_id = $1")
        .bind(&client.id)
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<Option<i64>, _>(0).is_some(), r.get(1)))
        .collect()
}

async fn a_hanging_app_does_not_hold_back_another_apps_logout(backend: Backend) {
    let hanging = Hanging::start().await;
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let stuck = app(&env, "stuck.example", format!("{}/logout", hanging.base)).await;
    let prompt = app(&env, "prompt.example", receiver.url("/logout")).await;
    let (at_stuck, stuck_hint) = signed_in_browser(&env, &stuck).await;
    let (at_prompt, prompt_hint) = signed_in_browser(&env, &prompt).await;

    // The first logout's delivery reaches the hanging app and stays there.
    log_out(&env, &at_stuck, &stuck_hint).await;
    wait_for(Duration::from_secs(5), "the hanging app is called", || {
        hanging.arrivals() == 1
    })
    .await;
    // Longer than a claim used to last: the delivery in flight must not be claimed and sent again.
    env.app.clock.advance(31);

    // The other app's logout, while the first one still hangs, arrives at once (within 3 s, well before the
    // 5 s the hanging request may take).
    log_out(&env, &at_prompt, &prompt_hint).await;
    let hits = receiver
        .wait_until(Duration::from_secs(3), |hits| !hits.is_empty())
        .await;
    assert_eq!(
        hanging.arrivals(),
        1,
        "the hanging app is still answering its first delivery"
    );
    assert!(hits[0].form.contains_key("logout_token"), "{hits:?}");

    // The hanging app answers at last: each app got its logout exactly once.
    hanging.release.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while outbox(&env, &stuck).await != vec![(true, 1)] {
        assert!(Instant::now() < deadline, "{:?}", outbox(&env, &stuck).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outbox(&env, &prompt).await, vec![(true, 1)]);
    assert_eq!(hanging.arrivals(), 1);
    let hits: Vec<Hit> = receiver.hits();
    assert_eq!(hits.len(), 1, "exactly once: {hits:?}");
    assert_eq!(hits[0].status, 200);
}

async fn a_late_retry_carries_a_logout_token_made_when_it_is_sent(backend: Backend) {
    // The app is down for the first attempt.
    let receiver = Receiver::start(1).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = app(&env, "down.example", receiver.url("/logout")).await;
    let (browser, hint) = signed_in_browser(&env, &client).await;
    let logged_out_at = env.app.now();
    log_out(&env, &browser, &hint).await;
    let hits = receiver
        .wait_until(Duration::from_secs(5), |hits| !hits.is_empty())
        .await;
    assert_eq!(hits[0].status, 500);

    // Ten minutes later (a logout token lives two minutes) the retry is delivered.
    env.app.clock.advance(600);
    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            hits.iter().any(|h| h.status == 200)
        })
        .await;
    let sent = &hits.iter().find(|h| h.status == 200).unwrap().form["logout_token"];
    let jwks = wire::jwks(&env.base).await;
    let (_, claims) = wire::verify_jws(&jwks, sent).expect("signed by the provider");
    let now = env.app.now();
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(iat >= logged_out_at + 600, "made when sent: {claims}");
    assert!(exp > now, "still valid when the app gets it: {claims}");
    let first: HashMap<String, Value> =
        serde_json::from_value(wire::jwt_parts(&hits[0].form["logout_token"]).1).unwrap();
    assert_ne!(first["jti"], claims["jti"], "a fresh jti");
    assert_eq!(first["sid"], claims["sid"]);
    assert_eq!(first["sub"], claims["sub"]);
}

async fn one_app_never_has_more_than_its_share_of_deliveries_in_flight(backend: Backend) {
    use yunid::services::logout::PER_APP;
    let hanging = Hanging::start().await;
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let stuck = app(&env, "stuck.example", format!("{}/logout", hanging.base)).await;
    let other = app(&env, "other.example", receiver.url("/logout")).await;
    let sessions = PER_APP as usize + 2;
    let mut browsers = Vec::new();
    for _ in 0..sessions {
        browsers.push(signed_in_browser(&env, &stuck).await);
    }
    for (browser, hint) in &browsers {
        log_out(&env, browser, hint).await;
    }
    wait_for(
        Duration::from_secs(5),
        "the hanging app's share is in flight",
        || hanging.arrivals() == PER_APP as usize,
    )
    .await;
    // Later ticks ran (another app's logout went out after these) and still sent no more to the hanging app.
    let (at_other, other_hint) = signed_in_browser(&env, &other).await;
    log_out(&env, &at_other, &other_hint).await;
    receiver
        .wait_until(Duration::from_secs(3), |hits| !hits.is_empty())
        .await;
    assert_eq!(hanging.arrivals(), PER_APP as usize);

    // Once it answers, the rest follow.
    hanging.release.send(true).unwrap();
    wait_for(Duration::from_secs(5), "every logout reaches the app", || {
        hanging.arrivals() >= sessions
    })
    .await;
}

on_both_backends!(
    one_app_never_has_more_than_its_share_of_deliveries_in_flight,
    a_hanging_app_does_not_hold_back_another_apps_logout,
    a_late_retry_carries_a_logout_token_made_when_it_is_sent,
);
