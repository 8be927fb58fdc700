//! An authorization code is consumed only by a request that may redeem it: the client it was issued to,
//! with the redirect URI of the authorization request and the PKCE verifier. A leaked code presented by
//! another client (or with a wrong verifier or redirect URI) is refused and stays usable by its own
//! client; its own client presenting it twice still revokes what the first redemption issued.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce};
use crate::on_both_backends;

const APP_CB: &str = "https://app.example.gov.cn/cb";

/// Alice signs in to `client` in a fresh browser; the code and its verifier.
async fn code_for(env: &Env, client: &TestClient) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = url::Url::parse_with_params(
        &env.url("/authorize"),
        [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile offline_access"),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let back = Browser::new(&env.base)
        .sign_in(url.as_str(), ALICE_ID, PASSWORD)
        .await;
    (back.params()["code"].clone(), verifier)
}

/// `client` (client_secret_basic) redeems `code`: status and body.
async fn redeem(
    env: &Env,
    client: &TestClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn assert_invalid_grant((status, body): &(StatusCode, Value), what: &str) {
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    assert!(body.get("access_token").is_none(), "{what}: {body}");
}

async fn is_active(env: &Env, client: &TestClient, token: &str) -> bool {
    crate::common::wire::is_active(&env.base, client, token).await
}

async fn a_code_presented_by_another_client_stays_usable_by_its_own(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = env.client(APP_CB).await;
    // Another registered app holding the leaked code, with the same redirect URI and the right verifier.
    let thief = env.client(APP_CB).await;
    let (code, verifier) = code_for(&env, &app).await;

    assert_invalid_grant(
        &redeem(&env, &thief, &code, APP_CB, &verifier).await,
        "another client",
    );

    // The rightful app still redeems it, once.
    let (status, tokens) = redeem(&env, &app, &code, APP_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(is_active(&env, &app, &access).await);

    // The thief presenting it again, now used, ends nothing.
    assert_invalid_grant(
        &redeem(&env, &thief, &code, APP_CB, &verifier).await,
        "another client, used code",
    );
    assert!(
        is_active(&env, &app, &access).await,
        "a stranger cannot end the grant"
    );

    // Reuse by its own client is still detected: what the first redemption issued is revoked.
    assert_invalid_grant(&redeem(&env, &app, &code, APP_CB, &verifier).await, "reuse");
    assert!(!is_active(&env, &app, &access).await);
    assert!(!is_active(&env, &app, &refresh).await);
}

async fn a_wrong_verifier_or_redirect_uri_does_not_burn_the_code(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let app = env.client(APP_CB).await;
    let (code, verifier) = code_for(&env, &app).await;

    let (someone_elses, _) = pkce();
    assert_invalid_grant(
        &redeem(&env, &app, &code, APP_CB, &someone_elses).await,
        "wrong verifier",
    );
    assert_invalid_grant(
        &redeem(&env, &app, &code, "https://app.example.gov.cn/other", &verifier).await,
        "wrong redirect_uri",
    );
    assert_invalid_grant(
        &redeem(&env, &app, &code, APP_CB, "too-short").await,
        "malformed verifier",
    );

    let (status, tokens) = redeem(&env, &app, &code, APP_CB, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(is_active(&env, &app, &access).await);
    assert_invalid_grant(&redeem(&env, &app, &code, APP_CB, &verifier).await, "reuse");
    assert!(!is_active(&env, &app, &access).await);
}

on_both_backends!(
    a_code_presented_by_another_client_stays_usable_by_its_own,
    a_wrong_verifier_or_redirect_uri_does_not_burn_the_code,
);
