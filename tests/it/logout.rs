//! Ending the SSO session: RP-initiated logout (with and without an ID token hint, and the redirects
//! it refuses) and back-channel logout to every app the session signed in to, retried until it lands.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::Value;
use yunid::services::registry::NewClient;

use crate::common::browser::Page;
use crate::common::receiver::{Hit, Receiver};
use crate::common::rp::Rp;
use crate::common::wire::{self, SignedIn, refresh, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/logged-out";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Alice and an app that registered where to return after logout.
async fn app_with_logout_page(env: &Env) -> (TestClient, Rp) {
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env
        .client_with(NewClient {
            name: "社保服务".into(),
            redirect_uris: vec![CALLBACK.into()],
            post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    (client, rp)
}

fn logout_url(env: &Env, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&env.url("/logout")).unwrap();
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    url.to_string()
}

/// A silent authorization (prompt=none): what the app gets back.
async fn silent(rp: &Rp, browser: &Browser) -> HashMap<String, String> {
    let attempt = rp.start(&["profile"]);
    browser
        .get(&format!("{}&prompt=none", attempt.url))
        .await
        .params()
}

fn assert_session_alive(params: &HashMap<String, String>) {
    assert!(
        params.contains_key("code"),
        "the SSO session should still be alive: {params:?}"
    );
}

fn assert_logged_out(params: &HashMap<String, String>) {
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("login_required"),
        "{params:?}"
    );
}

/// An HTML page on the provider, not a redirect anywhere.
fn stays_on_provider(page: &Page) -> (StatusCode, &str) {
    let (_, status, body) = page.html();
    (status, body)
}

async fn rp_initiated_logout_returns_to_the_app_with_its_state_and_ends_the_session(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = app_with_logout_page(&env).await;
    let browser = Browser::new(&env.base);
    let offline = sign_in(&rp, &browser, &["profile", "offline_access"]).await;
    let online = sign_in(&rp, &browser, &["profile"]).await;
    assert_session_alive(&silent(&rp, &browser).await);

    let page = browser
        .get(&logout_url(
            &env,
            &[
                ("id_token_hint", &online.id_token()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
                ("state", "bye/123 ok"),
            ],
        ))
        .await;
    let mut back = page.left().clone();
    let params: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    back.set_query(None);
    assert_eq!(back.as_str(), AFTER_LOGOUT);
    assert_eq!(params, vec![("state".into(), "bye/123 ok".into())]);

    assert_logged_out(&silent(&rp, &browser).await);
    // What the session granted ends with it…
    assert_eq!(
        refresh(&rp, &online.refresh_token(), &[]).await.unwrap_err(),
        "invalid_grant"
    );
    assert_eq!(
        wire::userinfo(&env.base, &online.access_token()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // …except what the person granted for offline access.
    refresh(&rp, &offline.refresh_token(), &[])
        .await
        .expect("an offline_access grant outlives the session");
}

async fn logout_refuses_to_redirect_without_proof(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = app_with_logout_page(&env).await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;
    let hint = signed.id_token();
    let (header, claims) = wire::jwt_parts(&hint);
    let payload = hint.split('.').nth(1).unwrap();

    let mut none_header = header.clone();
    none_header["alg"] = "none".into();
    let unsigned = format!("{}.{payload}.", wire::b64(none_header.to_string().as_bytes()));
    // The app (or anyone holding its secret) mints its own "ID token".
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = header["kid"].as_str().map(str::to_owned);
    let forged =
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(client.secret.as_bytes())).unwrap();
    let with_query = format!("{AFTER_LOGOUT}?foo=bar");

    let attempts: [(&str, &str, &str); 4] = [
        ("unregistered redirect", &hint, "http://127.0.0.1:9/elsewhere"),
        ("registered URI plus a query", &hint, &with_query),
        ("hint altered to alg none", &unsigned, AFTER_LOGOUT),
        ("hint forged with HS256", &forged, AFTER_LOGOUT),
    ];
    for (what, hint, redirect) in attempts {
        let page = browser
            .get(&logout_url(
                &env,
                &[
                    ("id_token_hint", hint),
                    ("post_logout_redirect_uri", redirect),
                    ("state", "s"),
                ],
            ))
            .await;
        let (status, _) = stays_on_provider(&page);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
    }

    // None of them logged anyone out.
    assert_session_alive(&silent(&rp, &browser).await);
    refresh(&rp, &signed.refresh_token(), &[])
        .await
        .expect("the grant is untouched");
}

/// Every `name="…" value="…"` pair of a page: what submitting its form sends.
fn form_fields(body: &str) -> Vec<(String, String)> {
    let re = regex_lite::Regex::new(r#"name="([^"]*)" value="([^"]*)""#).unwrap();
    re.captures_iter(body)
        .map(|c| (c[1].to_owned(), c[2].replace("&amp;", "&")))
        .collect()
}

async fn logout_without_a_hint_asks_the_person_first(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = app_with_logout_page(&env).await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;

    // A bare link to /logout only asks.
    let page = browser.get("/logout").await;
    let (status, body) = stays_on_provider(&page);
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("action=\"/logout\""), "{body}");
    assert_session_alive(&silent(&rp, &browser).await);

    // So does an app that names its registered return address but proves nothing.
    let page = browser
        .get(&logout_url(
            &env,
            &[
                ("client_id", &client.id),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
                ("state", "s"),
            ],
        ))
        .await;
    let (status, body) = stays_on_provider(&page);
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("action=\"/logout\""), "{body}");
    let fields = form_fields(body);
    assert!(fields.iter().any(|(k, v)| k == "csrf" && !v.is_empty()));
    assert_session_alive(&silent(&rp, &browser).await);

    // A cross-site form posting the confirmation without (or with a made-up) CSRF token does nothing.
    for forged in [
        vec![("confirm", "yes")],
        vec![("confirm", "yes"), ("csrf", "made-up")],
    ] {
        let page = browser.post("/logout", &forged).await;
        stays_on_provider(&page);
        assert_session_alive(&silent(&rp, &browser).await);
    }

    // The person confirms: logged out, and kept on the provider.
    let submitted: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(submitted.contains(&("confirm", "yes")), "{submitted:?}");
    let page = browser.post("/logout", &submitted).await;
    let (status, _) = stays_on_provider(&page);
    assert_eq!(status, StatusCode::OK);
    assert_logged_out(&silent(&rp, &browser).await);
    assert_eq!(
        refresh(&rp, &signed.refresh_token(), &[]).await.unwrap_err(),
        "invalid_grant"
    );

    // Nothing to confirm any more: a plain page, no redirect.
    let (status, _) = stays_on_provider(&browser.get("/logout").await);
    assert_eq!(status, StatusCode::OK);
}

/// Checks a logout token as an app must (Back-Channel Logout 1.0 §2.6) against what it knows from login.
fn check_logout_token(jwks: &Value, token: &str, client: &TestClient, signed: &SignedIn, iss: &str) {
    let (header, claims) = wire::verify_jws(jwks, token).expect("logout token signature");
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(claims["iss"], iss);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == client.id,
        Value::Array(a) => a.iter().any(|x| *x == client.id.as_str()),
        _ => false,
    };
    assert!(aud_ok, "aud {} for {}", claims["aud"], client.id);
    let id = signed.id_claims();
    assert!(id["sid"].is_string(), "the ID token carries a sid: {id}");
    assert_eq!(claims["sid"], id["sid"]);
    assert_eq!(claims["sub"], id["sub"]);
    assert!(claims["events"].get(EVENT).is_some(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["iat"].is_i64() && claims["jti"].is_string(), "{claims}");
}

fn delivered<'a>(hits: &'a [Hit], path: &str) -> Option<&'a Hit> {
    hits.iter().find(|h| h.path == path && h.status == 200)
}

async fn back_channel_logout_reaches_every_app_of_the_session(backend: Backend) {
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let social = env
        .client_with(NewClient {
            name: "社保服务".into(),
            redirect_uris: vec![CALLBACK.into()],
            backchannel_logout_uri: Some(receiver.url("/social/logout")),
            ..NewClient::default()
        })
        .await;
    let fund = env
        .client_with(NewClient {
            name: "公积金服务".into(),
            redirect_uris: vec!["http://127.0.0.1:9/fund/callback".into()],
            backchannel_logout_uri: Some(receiver.url("/fund/logout")),
            sector: Some("gjj.example".into()),
            id_token_alg: yunid::keys::Alg::ES256,
            ..NewClient::default()
        })
        .await;
    let social_rp = Rp::discover(&env.base, &social).await;
    let fund_rp = Rp::discover(&env.base, &fund).await;
    let browser = Browser::new(&env.base);

    let at_social = sign_in(&social_rp, &browser, &["profile"]).await;
    // Single sign-on: the second app needs no password, only consent.
    let attempt = fund_rp.start(&["profile"]);
    let page = browser.get(attempt.url.as_str()).await;
    assert!(!page.is_login() && page.is_consent(), "{page:?}");
    let code = browser.consent(&page, true).await.params()["code"].clone();
    let at_fund = SignedIn {
        tokens: fund_rp.exchange(&code, attempt.verifier).await.unwrap(),
        nonce: attempt.nonce,
        code,
    };
    // One session, but each app holds its own `sid` for it.
    assert_ne!(at_social.id_claims()["sid"], at_fund.id_claims()["sid"]);
    assert_ne!(at_social.id_claims()["sub"], at_fund.id_claims()["sub"]);

    let page = browser
        .get(&logout_url(&env, &[("id_token_hint", &at_social.id_token())]))
        .await;
    stays_on_provider(&page);

    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            delivered(hits, "/social/logout").is_some() && delivered(hits, "/fund/logout").is_some()
        })
        .await;
    let jwks = wire::jwks(&env.base).await;
    for (path, client, signed) in [
        ("/social/logout", &social, &at_social),
        ("/fund/logout", &fund, &at_fund),
    ] {
        let hit = delivered(&hits, path).unwrap();
        let token = hit
            .form
            .get("logout_token")
            .unwrap_or_else(|| panic!("no logout_token form field: {hit:?}"));
        check_logout_token(&jwks, token, client, signed, &env.base);
    }
}

async fn back_channel_logout_is_retried_until_the_app_takes_it(backend: Backend) {
    let receiver = Receiver::start(1).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env
        .client_with(NewClient {
            name: "社保服务".into(),
            redirect_uris: vec![CALLBACK.into()],
            backchannel_logout_uri: Some(receiver.url("/logout")),
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;

    browser
        .get(&logout_url(&env, &[("id_token_hint", &signed.id_token())]))
        .await;
    let hits = receiver
        .wait_until(Duration::from_secs(5), |hits| !hits.is_empty())
        .await;
    assert_eq!(hits[0].status, 500, "the app was down at first");

    // The outbox backs off (2 s after the first failure); move this node's clock past it.
    env.app.clock.advance(3);
    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            delivered(hits, "/logout").is_some()
        })
        .await;
    let token = &delivered(&hits, "/logout").unwrap().form["logout_token"];
    // The same logout, in a token made for this attempt (fresh `jti`, `iat` and `exp`).
    let (first, again) = (
        wire::jwt_parts(&hits[0].form["logout_token"]).1,
        wire::jwt_parts(token).1,
    );
    assert_eq!((&first["sid"], &first["sub"]), (&again["sid"], &again["sub"]));
    assert_ne!(first["jti"], again["jti"]);
    let jwks = wire::jwks(&env.base).await;
    check_logout_token(&jwks, token, &client, &signed, &env.base);
}

on_both_backends!(
    rp_initiated_logout_returns_to_the_app_with_its_state_and_ends_the_session,
    logout_refuses_to_redirect_without_proof,
    logout_without_a_hint_asks_the_person_first,
    back_channel_logout_reaches_every_app_of_the_session,
    back_channel_logout_is_retried_until_the_app_takes_it,
);
