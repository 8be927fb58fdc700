//! The device authorization grant (RFC 8628) for service-hall kiosks, counter screens and TVs: the kiosk
//! asks for a code, the person types it on `/device` in their own browser (or follows the QR code), signs
//! in, sees which app asks and allows or denies; the kiosk polls the token endpoint and hears
//! `authorization_pending`, `slow_down`, `access_denied` or `expired_token` until it gets its tokens,
//! once. A certified relying-party library (openid-client) drives the kiosk's side end to end.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use yunid::services::registry::NewClient;

use crate::common::browser::{Page, field};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, wire};
use crate::on_both_backends;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A kiosk app registered for the device grant (and refresh tokens).
async fn kiosk(env: &Env, name: &str) -> TestClient {
    env.client_with(NewClient {
        name: name.into(),
        grant_types: vec![GRANT.into(), "refresh_token".into()],
        ..NewClient::default()
    })
    .await
}

/// RFC 8628 §3.1 with client_secret_basic: status and body.
async fn device_authorization(env: &Env, client: &TestClient, scope: &str) -> (StatusCode, Value) {
    let res = http()
        .post(env.url("/device_authorization"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("scope", scope)])
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// One poll of the token endpoint: status and body.
async fn poll(env: &Env, client: &TestClient, device_code: &str) -> (StatusCode, Value) {
    wire::token(
        &env.base,
        client,
        &[("grant_type", GRANT), ("device_code", device_code)],
    )
    .await
}

fn assert_error(answer: &(StatusCode, Value), code: &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
}

/// Alice, in her own browser, opens `url` (the QR code's link or `/device?user_code=…`), signs in when
/// asked, and arrives at the device consent page.
async fn alice_opens(browser: &Browser, url: &str) -> Page {
    let mut page = browser.get(url).await;
    if page.is_login() {
        page = browser.login(&page, ALICE_ID, PASSWORD).await;
    }
    page
}

/// Answers the device consent page.
async fn answer(browser: &Browser, page: &Page, allow: bool) -> Page {
    let (_, _, body) = page.html();
    assert!(
        body.contains("action=\"/device\""),
        "not the device consent page: {body}"
    );
    let csrf = field(body, "csrf").unwrap();
    let code = field(body, "user_code").unwrap();
    let who = field(body, "who").unwrap();
    let consent = field(body, "consent").unwrap();
    let decision = if allow { "allow" } else { "deny" };
    browser
        .post(
            "/device",
            &[
                ("csrf", &csrf),
                ("user_code", &code),
                ("who", &who),
                ("consent", &consent),
                ("decision", decision),
            ],
        )
        .await
}

/// An admin token (client credentials with `yunid:admin`).
async fn admin_token(env: &Env) -> String {
    let admin = env
        .client_with(NewClient {
            name: "automation".into(),
            scopes: vec!["yunid:admin".into()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let (_, t) = wire::token(
        &env.base,
        &admin,
        &[("grant_type", "client_credentials"), ("scope", "yunid:admin")],
    )
    .await;
    t["access_token"].as_str().unwrap().to_owned()
}

/// Marks `app` as a kiosk through the admin API with `body`: the answer.
async fn mark_kiosk(env: &Env, app: &TestClient, body: Value) -> Value {
    let res = http()
        .put(env.url(&format!("/admin/api/clients/{}/device", app.id)))
        .bearer_auth(admin_token(env).await)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// A device flow of `app` that Alice approves in `browser`: the token response.
async fn approved_tokens(env: &Env, app: &TestClient, browser: &Browser, scope: &str) -> Value {
    let (status, started) = device_authorization(env, app, scope).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let page = alice_opens(browser, started["verification_uri_complete"].as_str().unwrap()).await;
    let done = answer(browser, &page, true).await;
    assert_eq!(done.html().1, StatusCode::OK, "{}", done.html().2);
    let (status, tokens) = poll(env, app, started["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn kiosk_signs_in_with_every_polling_answer_and_its_code_works_once(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "办事大厅自助终端").await;

    let (status, started) = device_authorization(&env, &app, "openid profile").await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let shape = regex_lite::Regex::new("^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$").unwrap();
    assert!(shape.is_match(&user_code), "{user_code}");
    assert_eq!(started["verification_uri"], env.url("/device"));
    let complete = started["verification_uri_complete"].as_str().unwrap();
    assert!(complete.starts_with(&env.url("/device?user_code=")), "{complete}");
    assert_eq!(started["expires_in"], 600);
    assert_eq!(started["interval"], 5);
    let device_code = started["device_code"].as_str().unwrap().to_owned();

    // Nobody answered yet; then the kiosk polls again at once: slow down.
    assert_error(&poll(&env, &app, &device_code).await, "authorization_pending");
    assert_error(&poll(&env, &app, &device_code).await, "slow_down");
    // The interval grew by 5 s (RFC 8628 §3.5): 6 s later is still too early (and it grows again to
    // 15 s); waiting that long is fine.
    env.app.clock.advance(6);
    assert_error(&poll(&env, &app, &device_code).await, "slow_down");
    env.app.clock.advance(15);
    assert_error(&poll(&env, &app, &device_code).await, "authorization_pending");

    // Alice types the code in lower case in her own browser, signs in, and sees the app and the code.
    let browser = Browser::new(&env.base);
    let typed = user_code.to_lowercase();
    let page = alice_opens(&browser, &format!("/device?user_code={typed}")).await;
    let (_, status, body) = page.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("办事大厅自助终端"),
        "the page names the app: {body}"
    );
    assert!(
        body.contains(&user_code),
        "the page shows the code to compare: {body}"
    );
    let done = answer(&browser, &page, true).await;
    assert_eq!(done.html().1, StatusCode::OK, "{}", done.html().2);

    env.app.clock.advance(15);
    let (status, tokens) = poll(&env, &app, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let (_, claims) = wire::jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], app.id.as_str());
    assert_eq!(claims["acr"], "1", "a password sign-in: {claims}");
    assert!(
        claims.get("nonce").is_none() && claims.get("c_hash").is_none(),
        "{claims}"
    );
    let (status, info) = wire::userinfo(&env.base, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["name"], "张三");

    // Single use: the same device code again is refused, and the approval is not reused.
    env.app.clock.advance(15);
    assert_error(&poll(&env, &app, &device_code).await, "invalid_grant");
    // The refresh token works like any other.
    let (status, refreshed) = wire::token(
        &env.base,
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
}

async fn a_denied_request_answers_access_denied_once(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "柜台屏").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    let done = answer(&browser, &page, false).await;
    assert_eq!(done.html().1, StatusCode::OK);
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "access_denied");
    env.app.clock.advance(10);
    assert_error(&poll(&env, &app, device_code).await, "invalid_grant");
    // The code cannot be approved after the denial either.
    let again = browser
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(again.html().1, StatusCode::BAD_REQUEST, "{}", again.html().2);
}

async fn an_unanswered_code_expires(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "电视").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let device_code = started["device_code"].as_str().unwrap();
    env.app.clock.advance(601);
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    // Typed after expiry: not valid (the person is never sent to sign in for it).
    let browser = Browser::new(&env.base);
    let page = browser
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    let (_, status, body) = page.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!page.is_login(), "{body}");
}

async fn codes_are_bound_to_their_app_and_unregistered_apps_are_refused(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let other = kiosk(&env, "另一终端").await;
    let web = env.client("https://app.example.gov.cn/cb").await;

    // An app not registered for the grant gets no device code, and cannot poll.
    let refused = device_authorization(&env, &web, "openid").await;
    assert_error(&refused, "unauthorized_client");
    // Client authentication is required, as at the token endpoint.
    let res = http()
        .post(env.url("/device_authorization"))
        .form(&[("client_id", app.id.as_str()), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let wrong = TestClient {
        secret: "wrong".into(),
        ..app.clone()
    };
    assert_eq!(
        device_authorization(&env, &wrong, "openid").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Scopes the app may not have are dropped; none left is invalid_scope.
    assert_error(
        &device_authorization(&env, &app, "identity org").await,
        "invalid_scope",
    );

    let (_, started) = device_authorization(&env, &app, "openid").await;
    let device_code = started["device_code"].as_str().unwrap();
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    // Another app presenting the code (stolen from the first) learns nothing and takes nothing.
    assert_error(&poll(&env, &other, device_code).await, "invalid_grant");
    let web_poll = poll(&env, &web, device_code).await;
    assert_error(&web_poll, "unsupported_grant_type");
    let (status, tokens) = poll(&env, &app, device_code).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the code still works for its own app: {tokens}"
    );
}

async fn user_codes_are_throttled_per_address_and_per_code(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let browser = Browser::new(&env.base);
    let lookup = |code: String| {
        let browser = &browser;
        async move {
            let page = browser.get(&format!("/device?user_code={code}")).await;
            match page {
                Page::Html { status, .. } => status,
                other => panic!("{other:?}"),
            }
        }
    };
    // The same (valid) code looked up again and again: after 5 lookups it waits.
    for _ in 0..5 {
        assert_eq!(lookup(user_code.clone()).await, StatusCode::OK, "sent to sign in");
    }
    assert_eq!(lookup(user_code.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    // Wrong codes from one address: after 10 the address waits, even for a real code.
    let (_, second) = device_authorization(&env, &app, "openid").await;
    let real = second["user_code"].as_str().unwrap().to_owned();
    for i in 0..10 {
        let wrong = format!("BCDF-{}", ["GHJK", "GHJL", "GHJM", "GHJN", "GHJP"][i % 5]);
        let wrong = if wrong == real { "ZZZZ-ZZZZ".into() } else { wrong };
        assert_eq!(lookup(wrong).await, StatusCode::BAD_REQUEST);
    }
    assert_eq!(lookup(real.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    // Held in the database: another node says the same.
    let node = env.peer_node().await;
    let page = Browser::new(&node.base)
        .get(&format!("/device?user_code={real}"))
        .await;
    assert_eq!(page.html().1, StatusCode::TOO_MANY_REQUESTS);
    // Later it works again (for a code still alive then).
    env.app.clock.advance(env.app.config.login_throttle_window + 1);
    let (_, third) = device_authorization(&env, &app, "openid").await;
    let fresh = third["user_code"].as_str().unwrap().to_owned();
    assert_eq!(lookup(fresh).await, StatusCode::OK);
}

async fn a_kiosk_app_is_marked_by_an_admin_and_gets_short_sessions(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    // An ordinary app, then marked as a kiosk through the admin API.
    let app = env.client("https://hall.example.gov.cn/cb").await;
    let admin = env
        .client_with(NewClient {
            name: "automation".into(),
            scopes: vec!["yunid:admin".into()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let (_, t) = wire::token(
        &env.base,
        &admin,
        &[("grant_type", "client_credentials"), ("scope", "yunid:admin")],
    )
    .await;
    let admin_token = t["access_token"].as_str().unwrap().to_owned();
    let url = env.url(&format!("/admin/api/clients/{}/device", app.id));
    let bad = http()
        .put(&url)
        .bearer_auth(&admin_token)
        .json(&json!({ "session_ttl": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = http()
        .put(&url)
        .bearer_auth(&admin_token)
        .json(&json!({ "session_ttl": 900 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let marked: Value = res.json().await.unwrap();
    assert_eq!(marked["device_grant"], true, "{marked}");
    assert_eq!(marked["session_ttl"], 900, "{marked}");
    // Without an admin token: refused.
    let anonymous = http().put(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (status, started) = device_authorization(&env, &app, "openid offline_access").await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    assert!(
        page.html().2.contains("公用终端"),
        "the page says it is a shared terminal"
    );
    answer(&browser, &page, true).await;
    let (status, tokens) = poll(&env, &app, started["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let scope = tokens["scope"].as_str().unwrap();
    assert!(
        !scope.contains("offline_access"),
        "a kiosk never keeps offline access: {scope}"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with = |token: String| {
        let env = &env;
        let app = &app;
        async move {
            wire::token(
                &env.base,
                app,
                &[("grant_type", "refresh_token"), ("refresh_token", token.as_str())],
            )
            .await
        }
    };
    // Within the short session the kiosk refreshes; after it, nothing works.
    env.app.clock.advance(600);
    let (status, next) = refresh_with(refresh).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    env.app.clock.advance(301);
    let (status, late) = refresh_with(next["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{late}");
    assert_eq!(late["error"], "invalid_grant");

    // Unmarked: the app may no longer start the grant.
    let (_, t) = wire::token(
        &env.base,
        &admin,
        &[("grant_type", "client_credentials"), ("scope", "yunid:admin")],
    )
    .await;
    let admin_token = t["access_token"].as_str().unwrap().to_owned();
    let gone = http()
        .delete(&url)
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_error(
        &device_authorization(&env, &app, "openid").await,
        "unauthorized_client",
    );
}

async fn discovery_advertises_the_device_grant_and_the_qr_code_is_drawn_on_the_server(backend: Backend) {
    let env = Env::start(backend).await;
    let doc: Value = http()
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        env.url("/device_authorization")
    );
    let grants: Vec<&str> = doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(grants.contains(&GRANT), "{grants:?}");
    let res = http()
        .get(env.url("/device/qr.svg?user_code=bcdf-ghjk"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let svg = res.text().await.unwrap();
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");
    let bad = http()
        .get(env.url("/device/qr.svg?user_code=<script>"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// The kiosk is openid-client (a certified relying party): it starts the device flow and polls with the
/// library's own loop while Alice allows (or denies) in her browser.
async fn openid_client_drives_the_kiosk_side(backend: Backend) {
    let dir = crate::interop::interop_dir();
    crate::interop::installed(&dir);
    let env = Env::start_with(backend, |c| {
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
        c.device_poll_interval = 1;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "openid-client 自助终端").await;
    for allow in [true, false] {
        let copy = dir.join("node/openid_client_device.mjs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/openid_client_device.mjs");
        std::fs::copy(script, &copy).unwrap();
        let mut child = tokio::process::Command::new("node")
            .arg(&copy)
            .env("ISSUER", env.app.config.iss())
            .env("CLIENT_ID", &app.id)
            .env("CLIENT_SECRET", &app.secret)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let next = async |lines: &mut tokio::io::Lines<_>| -> Value {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("openid-client answered in time")
                .unwrap()
                .expect("a line from openid-client");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
        };
        let started = next(&mut lines).await;
        assert_eq!(started["step"], "started", "{started}");
        // Let it poll (pending) a little before Alice answers.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The person's browser on the issuer's own host (`localhost`), as the QR code's link says.
        let browser = Browser::new(env.app.config.iss());
        let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
        answer(&browser, &page, allow).await;
        let end = next(&mut lines).await;
        if allow {
            assert_eq!(end["step"], "done", "{end}");
            assert!(end["sub"].as_str().is_some_and(|s| !s.is_empty()), "{end}");
            assert_eq!(end["userinfo_sub"], end["sub"], "{end}");
            assert!(end["polls"].as_i64().unwrap() >= 1, "{end}");
        } else {
            assert_eq!(end["step"], "error", "{end}");
            assert_eq!(end["error"], "access_denied", "{end}");
        }
        let _ = child.wait().await;
    }
}

/// Finding: POST /device approved whatever code it was given. An answer now needs the consent token of
/// the page shown to this session for this very request, and the `who` of that page; a signed-in
/// attacker posting guessed codes is refused and throttled like the page, and a stranger's kiosk is
/// never signed in to the attacker's account.
async fn an_answer_needs_the_page_shown_for_that_request(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let (_, own) = device_authorization(&env, &app, "openid").await;
    let (_, stranger) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    // Alice opens her own request's page: she has a CSRF token, `who` and a consent token for it.
    let page = alice_opens(&browser, own["verification_uri_complete"].as_str().unwrap()).await;
    let (_, _, body) = page.html();
    let csrf = field(body, "csrf").unwrap();
    let who = field(body, "who").unwrap();
    let consent = field(body, "consent").unwrap();
    let theirs = stranger["user_code"].as_str().unwrap();
    let mine = own["user_code"].as_str().unwrap();
    let post = |code: &'static str, fields: Vec<(&'static str, String)>| {
        let browser = &browser;
        let csrf = csrf.clone();
        async move {
            let mut form: Vec<(&str, String)> = vec![
                ("csrf", csrf),
                ("user_code", code.to_owned()),
                ("decision", "allow".to_owned()),
            ];
            form.extend(fields);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post("/device", &form).await
        }
    };
    let theirs: &'static str = Box::leak(theirs.to_owned().into_boxed_str());
    let mine: &'static str = Box::leak(mine.to_owned().into_boxed_str());
    // The stranger's code without a consent token, and with the token of Alice's own page: not answered.
    post(theirs, vec![("who", who.clone())]).await;
    post(theirs, vec![("who", who.clone()), ("consent", consent.clone())]).await;
    // Her own request without `who`: not answered either.
    post(mine, vec![("consent", consent.clone())]).await;
    let stranger_code = stranger["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, stranger_code).await, "authorization_pending");
    assert_error(
        &poll(&env, &app, own["device_code"].as_str().unwrap()).await,
        "authorization_pending",
    );
    // Posting the stranger's code again and again is throttled like looking it up.
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = post(theirs, vec![("who", who.clone())]).await.html().1;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    env.app.clock.advance(10);
    assert_error(&poll(&env, &app, stranger_code).await, "authorization_pending");
    // The page's own answer works, and the audit names the app.
    let done = post(mine, vec![("who", who.clone()), ("consent", consent.clone())]).await;
    assert_eq!(done.html().1, StatusCode::OK, "{}", done.html().2);
    let (status, _) = poll(&env, &app, own["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "device.approve" && e.outcome == "success" && e.client_id == app.id),
        "{events:?}"
    );
}

/// Finding: a kiosk's `session_ttl` bounded only the refresh token; its access and ID tokens outlived
/// the session, and userinfo and introspection kept answering for them. Now every token ends with the
/// grant, and the grant's end makes userinfo refuse and introspection say inactive.
async fn a_kiosks_tokens_end_with_its_short_session(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let marked = mark_kiosk(&env, &app, json!({ "session_ttl": 120 })).await;
    assert_eq!(marked["session_ttl"], 120, "{marked}");
    assert!(env.app.config.access_token_ttl > 120 && env.app.config.id_token_ttl > 120);
    let browser = Browser::new(&env.base);
    let tokens = approved_tokens(&env, &app, &browser, "openid profile").await;
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(tokens["expires_in"].as_i64().unwrap() <= 120, "{tokens}");
    let (_, at) = wire::jwt_parts(&access_token);
    assert!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap() <= 120,
        "{at}"
    );
    let (_, id) = wire::jwt_parts(tokens["id_token"].as_str().unwrap());
    assert!(
        id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap() <= 120,
        "{id}"
    );
    // Within the session both answer.
    assert_eq!(wire::userinfo(&env.base, &access_token).await.0, StatusCode::OK);
    assert!(wire::is_active(&env.base, &app, &access_token).await);
    // Once the grant has ended, neither does — though the token's own `exp` is still ahead: the grant is
    // ended early in the database (as by a shorter kiosk limit), the token left as it is.
    let now = env.app.now();
    assert!(at["exp"].as_i64().unwrap() > now + 1, "{at}");
    sqlx::query("UPDATE families SET expires_at = $1 WHERE id = $2")
        .bind(now)
        .bind(at["fid"].as_str().unwrap())
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    env.app.clock.advance(1);
    let (status, body) = wire::userinfo(&env.base, &access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!wire::is_active(&env.base, &app, &access_token).await);
}

/// Finding: an app marked as a kiosk without a `session_ttl` got no kiosk behaviour at all (ordinary
/// long grants, `offline_access` kept). Now it is a kiosk with the default limit (15 minutes).
async fn a_kiosk_marked_without_a_limit_gets_the_default_one(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let marked = mark_kiosk(&env, &app, json!({})).await;
    assert_eq!(marked["kiosk"], true, "{marked}");
    assert_eq!(
        marked["session_ttl"],
        yunid::services::device::DEFAULT_KIOSK_TTL,
        "{marked}"
    );
    let browser = Browser::new(&env.base);
    let (_, started) = device_authorization(&env, &app, "openid offline_access").await;
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    assert!(page.html().2.contains("公用终端"), "a shared terminal");
    answer(&browser, &page, true).await;
    let (status, tokens) = poll(&env, &app, started["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(
        !tokens["scope"].as_str().unwrap().contains("offline_access"),
        "{tokens}"
    );
    env.app
        .clock
        .advance(yunid::services::device::DEFAULT_KIOSK_TTL + 1);
    let (status, late) = wire::token(
        &env.base,
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{late}");
    assert_eq!(late["error"], "invalid_grant");
}

/// Finding: a code approved and not redeemed yet outlived the approving session's sign-out. Logout now
/// ends it: the kiosk's next poll hears `expired_token` (RFC 8628 §3.5: the authorization session has
/// concluded; the kiosk starts over — it was not the person's denial).
async fn signing_out_ends_an_approval_no_device_redeemed_yet(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    // Alice signs out before the kiosk polls again.
    let ask = browser.get("/logout").await;
    let csrf = field(ask.html().2, "csrf").unwrap();
    let out = browser
        .post("/logout", &[("csrf", csrf.as_str()), ("confirm", "yes")])
        .await;
    assert_eq!(out.html().1, StatusCode::OK);
    assert!(browser.get("/account").await.is_login(), "signed out");
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    env.app.clock.advance(10);
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    // A code approved by a session that is still live is unaffected.
    let other = Browser::new(&env.base);
    approved_tokens(&env, &app, &other, "openid").await;
}

/// Review F5: redemption checked only that the approving session had not been ended, not that it was
/// still live. An approval is worth no more than its session: once the session has timed out — idle or
/// past its absolute end — the kiosk hears `expired_token`, well within the device code's own life.
async fn an_approval_ends_when_its_session_times_out(backend: Backend) {
    let env = Env::start_with(backend, |c| {
        c.session_idle_ttl = 240;
        c.session_absolute_ttl = 400;
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    // Idle: Alice approves and leaves her browser alone for longer than the idle limit.
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    env.app.clock.advance(241);
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    // Absolute: the session kept busy, but past its absolute end.
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    env.app.clock.advance(200);
    assert!(!browser.get("/account").await.is_login(), "still signed in");
    env.app.clock.advance(201);
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    // Sign out everywhere ends the approval of a session that timed out too (it is not among the live
    // sessions it ends), and a live session's approval still works.
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    env.app.clock.advance(401); // past its absolute end: no longer among the sessions "sign out everywhere" ends
    env.app
        .logout()
        .end_everything(&alice, env.app.now())
        .await
        .unwrap();
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    // Ended by the sign-out itself (not only refused at redemption, which spends the code): polled
    // again, still `expired_token`.
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    approved_tokens(&env, &app, &Browser::new(&env.base), "openid").await;
}

/// The race between a redemption and a logout, arranged in the database: the logout ends the session
/// right after the redemption claimed the approved code (so the logout finds no grant to revoke and no
/// approval to expire). The redemption checks the session after writing the grant: the kiosk hears
/// `expired_token` and keeps no live grant.
async fn a_logout_racing_a_redemption_leaves_the_kiosk_nothing(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    answer(&browser, &page, true).await;
    crate::common::races::on(
        &env.app.db,
        env.db.is_sqlite(),
        "device_grants",
        "UPDATE OF status",
        "NEW.status = 'used'",
        "UPDATE sessions SET ended_at = NEW.created_at WHERE sid = NEW.session_sid",
    )
    .await;
    let device_code = started["device_code"].as_str().unwrap();
    assert_error(&poll(&env, &app, device_code).await, "expired_token");
    let live: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM families WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(&app.id)
            .fetch_one(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(live, 0, "no live grant for the kiosk");
    assert!(browser.get("/account").await.is_login(), "the session ended");
}

/// `POST /device_authorization` by `client` as if from `from` (behind a trusted proxy): status, body
/// and `Retry-After`.
async fn device_authorization_from(
    base: &str,
    client: &TestClient,
    from: &str,
) -> (StatusCode, Value, Option<i64>) {
    let res = http()
        .post(format!("{base}/device_authorization"))
        .basic_auth(&client.id, Some(&client.secret))
        .header("x-forwarded-for", from)
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let wait = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, res.json().await.unwrap_or(Value::Null), wait)
}

/// Findings F3/F4: `/device_authorization` was limited per address for all apps together (a guest's app
/// on a service hall's network could block every kiosk there), with a one-window memory, and answered
/// `slow_down`, which RFC 8628 defines only at the token endpoint. Now: a leaky bucket per app and
/// address (and IPv6 /48) in the database, refused asks counting; past it 429 `temporarily_unavailable`
/// with `Retry-After`; another app at the same address is unaffected; a /48 stops a spread over /64s.
async fn device_authorization_is_limited_per_app_and_network(backend: Backend) {
    // A small bucket draining slowly (one code per ten minutes), so the test's own running time drains
    // nothing that matters.
    let tweak = |c: &mut yunid::config::Config| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.new_code_burst = 10;
        c.new_code_interval_ms = 600_000;
    };
    let env = Env::start_with(backend, tweak).await;
    let node = env.peer_node_with(tweak).await;
    let burst = env.app.config.new_code_burst;
    let burst_48 = burst * yunid::services::new_codes::PER_48;
    let guest = kiosk(&env, "访客应用").await;
    let hall = kiosk(&env, "大厅自助终端").await;
    let at = "2001:db8:1:1::5";
    for _ in 0..burst {
        assert_eq!(
            device_authorization_from(&env.base, &guest, at).await.0,
            StatusCode::OK
        );
    }
    let (status, body, wait) = device_authorization_from(&env.base, &guest, at).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(wait.is_some_and(|w| w >= 1), "{wait:?}");
    // Held in the database: another node says the same.
    let (status, _, wait) = device_authorization_from(&node.base, &guest, at).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The hall's kiosks at the same address are not blocked by the guest's app.
    let (status, body, _) = device_authorization_from(&env.base, &hall, at).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // After the wait it was told, the guest's app gets a code again.
    env.app.clock.advance(wait.unwrap());
    node.app.clock.advance(wait.unwrap());
    assert_eq!(
        device_authorization_from(&env.base, &guest, at).await.0,
        StatusCode::OK
    );
    // Spread over the /64s of one /48: the /48 stops it at its own burst.
    let mut passed = 0;
    for net in 2..=6 {
        for _ in 0..burst {
            let from = format!("2001:db8:1:{net:x}::5");
            if device_authorization_from(&env.base, &guest, &from).await.0 == StatusCode::OK {
                passed += 1;
            }
        }
    }
    assert!(passed <= burst_48 && passed < 5 * burst, "{passed}");
    let (status, _, _) = device_authorization_from(&env.base, &guest, "2001:db8:1:7::5").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a fresh /64 of the same /48"
    );
    let (status, _, _) = device_authorization_from(&env.base, &guest, "2001:db8:2:7::5").await;
    assert_eq!(status, StatusCode::OK, "another /48");
}

/// Finding F3: nothing capped the live device codes in total (many addresses could fill the table).
/// Past `device_max_live`: 503 `temporarily_unavailable` with `Retry-After`, until codes expire.
async fn device_codes_are_capped_in_total(backend: Backend) {
    let env = Env::start_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.device_max_live = 3;
    })
    .await;
    let app = kiosk(&env, "自助终端").await;
    for n in 1..=3 {
        let from = format!("203.0.113.{n}");
        assert_eq!(
            device_authorization_from(&env.base, &app, &from).await.0,
            StatusCode::OK
        );
    }
    let (status, body, wait) = device_authorization_from(&env.base, &app, "198.51.100.9").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(wait.is_some(), "Retry-After");
    env.app.clock.advance(env.app.config.device_code_ttl + 1);
    assert_eq!(
        device_authorization_from(&env.base, &app, "198.51.100.9").await.0,
        StatusCode::OK
    );
}

/// Finding: the consent page did not say where or when the device asked. It now shows the device's
/// network (never its full address), whether it is the person's own, and how long ago the code was
/// issued.
async fn the_consent_page_shows_the_devices_network_and_the_codes_age(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = kiosk(&env, "自助终端").await;
    let (_, started) = device_authorization(&env, &app, "openid").await;
    env.app.clock.advance(3 * 60 + 10);
    let browser = Browser::new(&env.base);
    let page = alice_opens(&browser, started["verification_uri_complete"].as_str().unwrap()).await;
    let (_, status, body) = page.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("127.0.0.0/24"), "the device's network: {body}");
    assert!(!body.contains("127.0.0.1"), "never its full address: {body}");
    assert!(
        body.contains("与您现在的网络相同"),
        "the same network as Alice: {body}"
    );
    assert!(body.contains("3 分钟前"), "issued three minutes ago: {body}");
}

on_both_backends!(
    an_answer_needs_the_page_shown_for_that_request,
    a_kiosks_tokens_end_with_its_short_session,
    a_kiosk_marked_without_a_limit_gets_the_default_one,
    signing_out_ends_an_approval_no_device_redeemed_yet,
    an_approval_ends_when_its_session_times_out,
    a_logout_racing_a_redemption_leaves_the_kiosk_nothing,
    device_authorization_is_limited_per_app_and_network,
    device_codes_are_capped_in_total,
    the_consent_page_shows_the_devices_network_and_the_codes_age,
    kiosk_signs_in_with_every_polling_answer_and_its_code_works_once,
    a_denied_request_answers_access_denied_once,
    an_unanswered_code_expires,
    codes_are_bound_to_their_app_and_unregistered_apps_are_refused,
    user_codes_are_throttled_per_address_and_per_code,
    a_kiosk_app_is_marked_by_an_admin_and_gets_short_sessions,
    discovery_advertises_the_device_grant_and_the_qr_code_is_drawn_on_the_server,
    openid_client_drives_the_kiosk_side,
);
