//! The happy path a department app takes, with a standard OIDC library.

use openidconnect::{OAuth2TokenResponse, TokenResponse};

use crate::common::rp::Rp;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD};
use crate::on_both_backends;

async fn app_logs_a_citizen_in_with_code_and_pkce(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client("http://127.0.0.1:9/callback").await;
    let rp = Rp::discover(&env.base, &client).await;
    let attempt = rp.start(&["profile", "phone"]);

    let browser = Browser::new(&env.base);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let params = back.params();
    assert_eq!(params["state"], *attempt.state.secret());
    assert_eq!(params["iss"], env.base);

    let tokens = rp.exchange(&params["code"], attempt.verifier).await.unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &attempt.nonce)
        .expect("ID token verifies against the JWKS");
    assert!(claims.auth_time().is_some());
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("1"));
    assert!(tokens.refresh_token().is_some());

    let userinfo: openidconnect::core::CoreUserInfoClaims = rp
        .client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&crate::common::rp::http_client)
        .await
        .expect("userinfo");
    assert_eq!(userinfo.subject(), claims.subject());
    let name = userinfo
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    assert_eq!(name.as_deref(), Some("张三"));
    assert_eq!(userinfo.birthdate().map(|b| b.as_str()), Some("1949-12-31"));
    assert_eq!(
        userinfo.phone_number().map(|p| p.as_str()),
        Some("+8613800138000")
    );
}

on_both_backends!(app_logs_a_citizen_in_with_code_and_pkce);
