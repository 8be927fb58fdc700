//! The identifiers an app holds — `sub` (the person's or the organisation's, pairwise per app) and
//! `sid` (per app) — and that every later message to the app (logout tokens) names them as it knows them;
//! the redirect URI a native app listens at; and the ID tokens it holds, which stay good as hints for
//! as long as their session can live, across a key rotation.

use std::time::Duration;

use openidconnect::TokenResponse;
use reqwest::StatusCode;
use serde_json::Value;
use yunid::keys::rotation;
use yunid::services::identity::{self, NewRepresentation};
use yunid::services::registry::NewClient;
use yunid::store::orgs::{Matters, Role};

use crate::common::receiver::{Hit, Receiver};
use crate::common::rp::Rp;
use crate::common::wire::{self, jwt_parts, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient};
use crate::identity::{COMPANY, sign_in_acting};
use crate::on_both_backends;

/// Alice is the company's legal representative.
async fn alice_represents_the_company(env: &Env) {
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let org = identity::add_org(
        &env.app.db,
        COMPANY,
        "福州示例科技有限公司",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    identity::grant(
        &env.app.db,
        NewRepresentation {
            person_id: alice,
            org_id: org.id,
            role: Role::LegalRepresentative,
            matters: Matters::all(),
            valid_from: env.app.now() - 10,
            valid_until: None,
        },
        "test",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
}

/// An app that takes back-channel logouts at `path` on the receiver.
async fn app_with_back_channel(env: &Env, receiver: &Receiver, host: &str, path: &str) -> TestClient {
    env.client_with(NewClient {
        name: "企业开办".into(),
        redirect_uris: vec![format!("http://{host}:9/cb")],
        scopes: ["openid", "profile", "org"].map(String::from).to_vec(),
        backchannel_logout_uri: Some(receiver.url(path)),
        ..NewClient::default()
    })
    .await
}

fn logout_tokens(hits: &[Hit], path: &str) -> Vec<Value> {
    hits.iter()
        .filter(|h| h.path == path && h.status == 200)
        .map(|h| jwt_parts(&h.form["logout_token"]).1)
        .collect()
}

async fn log_out_with(env: &Env, browser: &Browser, id_token: &str) {
    let mut url = url::Url::parse(&env.url("/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", id_token);
    browser.get(url.as_str()).await;
}

/// Back-Channel Logout 1.0 §2.4: the logout token's `sub` is the one the app's ID token carried —
/// the organisation's when Alice signed in acting for it, not Alice's own.
async fn logout_token_names_the_organisation_the_app_signed_in(backend: Backend) {
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    alice_represents_the_company(&env).await;
    let client = app_with_back_channel(&env, &receiver, "127.0.0.1", "/bl").await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "profile"], Some(COMPANY)).await;
    let id_token = tokens.id_token().unwrap().to_string();
    let id = jwt_parts(&id_token).1;
    assert!(id["act"]["sub"].is_string(), "signed in for the company: {id}");

    log_out_with(&env, &browser, &id_token).await;
    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            !logout_tokens(hits, "/bl").is_empty()
        })
        .await;
    let sent = logout_tokens(&hits, "/bl");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["sub"], id["sub"], "the subject the app holds");
    assert_ne!(sent[0]["sub"], id["act"]["sub"], "not the person's own subject");
    assert_eq!(sent[0]["sid"], id["sid"]);
}

/// Two native apps on loopback redirect URIs, one SSO session: neither `sub` nor `sid` lets them join
/// Alice's records; a logout at one (its own `sid` in the hint ends the session at once) reaches both,
/// each with the identifiers it holds.
async fn two_loopback_apps_cannot_join_alice_and_both_hear_of_her_logout(backend: Backend) {
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let one = app_with_back_channel(&env, &receiver, "127.0.0.1", "/one").await;
    let two = app_with_back_channel(&env, &receiver, "127.0.0.1", "/two").await;
    let browser = Browser::new(&env.base);
    let at_one = sign_in(&Rp::discover(&env.base, &one).await, &browser, &["profile"]).await;
    let rp_two = Rp::discover(&env.base, &two).await;
    let attempt = rp_two.start(&["profile"]);
    let page = browser.get(attempt.url.as_str()).await;
    assert!(!page.is_login(), "single sign-on: {page:?}");
    let code = browser.consent(&page, true).await.params()["code"].clone();
    let tokens = rp_two.exchange(&code, attempt.verifier).await.unwrap();
    let id_one = at_one.id_claims();
    let id_two = jwt_parts(&tokens.id_token().unwrap().to_string()).1;
    assert_ne!(
        id_one["sub"], id_two["sub"],
        "loopback apps do not share a pairwise sector"
    );
    assert!(id_one["sid"].is_string() && id_two["sid"].is_string());
    assert_ne!(
        id_one["sid"], id_two["sid"],
        "each app has its own sid for the session"
    );

    // App two cannot pass app one's ID token off as its own.
    let mut borrowed = url::Url::parse(&env.url("/logout")).unwrap();
    borrowed
        .query_pairs_mut()
        .append_pair("id_token_hint", &at_one.id_token())
        .append_pair("client_id", &two.id);
    let (_, status, _) = browser.get(borrowed.as_str()).await.html();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    log_out_with(&env, &browser, &at_one.id_token()).await;
    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            !logout_tokens(hits, "/one").is_empty() && !logout_tokens(hits, "/two").is_empty()
        })
        .await;
    for (path, id) in [("/one", &id_one), ("/two", &id_two)] {
        let sent = logout_tokens(&hits, path);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (&sent[0]["sub"], &sent[0]["sid"]),
            (&id["sub"], &id["sid"]),
            "{path}"
        );
    }
}

/// An authorization request at `redirect_uri` for `client`: the PKCE verifier and the URL.
fn authorize_at(env: &Env, client: &TestClient, redirect_uri: &str) -> (String, String) {
    let (verifier, challenge) = crate::common::pkce();
    let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    (verifier, url.to_string())
}

async fn redeem(
    env: &Env,
    client: &TestClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    wire::token(
        &env.base,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// RFC 8252 §7.3: a native app registered at `http://127.0.0.1:<port>/cb` or `http://[::1]:<port>/cb`
/// listens on whatever port it gets; /authorize takes any port with the rest exact, and the code is
/// redeemed with the redirect URI /authorize received (not the registered one).
async fn a_native_app_is_redirected_to_the_port_it_listens_on(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let native = env
        .client_with(NewClient {
            name: "桌面客户端".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into(), "http://[::1]:9/cb".into()],
            ..NewClient::default()
        })
        .await;
    let browser = Browser::new(&env.base);
    for listening in ["http://127.0.0.1:53117/cb", "http://[::1]:49152/cb"] {
        let (verifier, url) = authorize_at(&env, &native, listening);
        let back = browser.sign_in(&url, ALICE_ID, PASSWORD).await;
        let mut left = back.left().clone();
        left.set_query(None);
        assert_eq!(left.as_str(), listening, "back to the port the app listens on");
        let code = back.params()["code"].clone();
        let (status, body) = redeem(&env, &native, &code, "http://127.0.0.1:9/cb", &verifier).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let (verifier, url) = authorize_at(&env, &native, listening);
        let code = browser.get(&url).await.params()["code"].clone();
        let (status, body) = redeem(&env, &native, &code, listening, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Only the port is free: another path, another host, or https are not the registered URI.
    for other in [
        "http://127.0.0.1:53117/elsewhere",
        "http://localhost:53117/cb",
        "https://127.0.0.1:53117/cb",
        "http://127.0.0.1:53117/cb?x=1",
        "http://127.0.0.1.evil.example:9/cb",
    ] {
        let (_, url) = authorize_at(&env, &native, other);
        let page = browser.get(&url).await;
        let (_, status, _) = page.html();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{other}");
    }
}

fn kid_of(jwt: &str) -> String {
    jwt_parts(jwt).0["kid"].as_str().unwrap().to_owned()
}

/// After a key rotation, once the old key has left the JWKS (publication grace), the ID token Alice's
/// app holds is still a genuine hint while her session can live: a silent re-authorization naming her
/// by it succeeds, and RP-initiated logout with it ends her session and returns to the app. Past the
/// session's absolute lifetime the old key verifies nothing.
async fn an_id_token_from_before_a_key_rotation_still_logs_alice_out(backend: Backend) {
    const AFTER_LOGOUT: &str = "http://127.0.0.1:9/logged-out";
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env
        .client_with(NewClient {
            name: "社保服务".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let held = sign_in(&rp, &browser, &["profile"]).await.id_token();

    rotation::rotate(&env.app.db, &env.app.kek, env.app.now())
        .await
        .unwrap();
    env.app.reload_keys().await.unwrap();
    env.app
        .clock
        .advance(yunid::app::publish_grace(&env.app.config) + 1);
    env.app.reload_keys().await.unwrap();
    let published = wire::kids(&wire::jwks(&env.base).await);
    assert!(
        !published.contains(&kid_of(&held)),
        "the old key is no longer published"
    );

    let mut silent = rp.start(&["profile"]);
    silent
        .url
        .query_pairs_mut()
        .append_pair("prompt", "none")
        .append_pair("id_token_hint", &held);
    let back = browser.get(silent.url.as_str()).await.params();
    assert!(back.contains_key("code"), "the hint names Alice: {back:?}");

    let mut logout = url::Url::parse(&env.url("/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", &held)
        .append_pair("post_logout_redirect_uri", AFTER_LOGOUT);
    let page = browser.get(logout.as_str()).await;
    let mut left = page.left().clone();
    left.set_query(None);
    assert_eq!(left.as_str(), AFTER_LOGOUT, "logged out and back at the app");
    let mut silent = rp.start(&["profile"]);
    silent.url.query_pairs_mut().append_pair("prompt", "none");
    let back = browser.get(silent.url.as_str()).await.params();
    assert_eq!(
        back.get("error").map(String::as_str),
        Some("login_required"),
        "{back:?}"
    );

    // No session issued with the old key can live any more: it verifies nothing.
    env.app.clock.advance(env.app.config.session_absolute_ttl);
    env.app.reload_keys().await.unwrap();
    let (_, status, _) = browser.get(logout.as_str()).await.html();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

on_both_backends!(
    an_id_token_from_before_a_key_rotation_still_logs_alice_out,
    a_native_app_is_redirected_to_the_port_it_listens_on,
    logout_token_names_the_organisation_the_app_signed_in,
    two_loopback_apps_cannot_join_alice_and_both_hear_of_her_logout,
);
