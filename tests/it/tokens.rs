//! What an app does with tokens after the code flow: refreshing (rotation, reuse detection), client
//! credentials, introspection, revocation, userinfo, pushed authorization requests, private_key_jwt
//! client authentication, and ID tokens in each signing algorithm.

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openidconnect::core::CoreIdTokenVerifier;
use openidconnect::{AccessTokenHash, Nonce, OAuth2TokenResponse, PkceCodeVerifier, TokenResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use yunid::keys::Alg;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::common::rp::Rp;
use crate::common::wire::{self, alice_and_app, pair, refresh, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A refreshed ID token carries no nonce (OIDC Core §12.2).
fn no_nonce(n: Option<&Nonce>) -> Result<(), String> {
    match n {
        None => Ok(()),
        Some(_) => Err("a refreshed ID token carries a nonce".into()),
    }
}

fn scope_set(scope: &str) -> BTreeSet<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn refresh_rotates_tokens_and_reuse_revokes_the_family(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let first = sign_in(&rp, &browser, &["profile"]).await;
    let verifier = rp.client.id_token_verifier();
    let first_claims = first
        .tokens
        .id_token()
        .unwrap()
        .claims(&verifier, &first.nonce)
        .expect("first ID token verifies");

    let second = refresh(&rp, &first.refresh_token(), &[]).await.expect("refresh");
    let (access2, refresh2) = pair(&second);
    assert_ne!(access2, first.access_token(), "a new access token");
    assert_ne!(refresh2, first.refresh_token(), "a new refresh token");
    let second_claims = second
        .id_token()
        .expect("a refreshed ID token")
        .claims(&verifier, no_nonce)
        .expect("the refreshed ID token verifies against the JWKS");
    assert_eq!(second_claims.subject(), first_claims.subject());
    assert_eq!(second_claims.issuer(), first_claims.issuer());
    assert_eq!(second_claims.audiences(), first_claims.audiences());
    assert_eq!(second_claims.auth_time(), first_claims.auth_time());
    assert_eq!(wire::userinfo(&env.base, &access2).await.0, StatusCode::OK);

    // The rotated-out refresh token shows up again: a thief or a broken app.
    assert_eq!(
        refresh(&rp, &first.refresh_token(), &[]).await.unwrap_err(),
        "invalid_grant"
    );
    // Everything the grant issued is dead, including what the legitimate holder has now.
    assert!(!wire::is_active(&env.base, &client, &refresh2).await);
    assert!(!wire::is_active(&env.base, &client, &access2).await);
    assert_eq!(
        wire::userinfo(&env.base, &access2).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh(&rp, &refresh2, &[]).await.unwrap_err(), "invalid_grant");
}

async fn refresh_is_bound_to_its_client_and_scope_can_only_narrow(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = alice_and_app(&env, CALLBACK).await;
    let other = env.client("http://127.0.0.1:9/other-app").await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile", "phone"]).await;

    let (status, body) = wire::token(
        &env.base,
        &other,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &signed.refresh_token()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // The rightful app narrows the scope: fewer claims, same grant.
    let narrowed = refresh(&rp, &signed.refresh_token(), &["openid", "profile"])
        .await
        .expect("the other app's attempt did not burn the refresh token; narrowing works");
    let granted: BTreeSet<String> = narrowed
        .scopes()
        .expect("scope in the response")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(granted, set(&["openid", "profile"]));
    let (access, refresh_token) = pair(&narrowed);
    let (status, info) = wire::userinfo(&env.base, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["name"], "张三");
    assert!(
        info.get("phone_number").is_none(),
        "phone was not asked for: {info}"
    );

    // Asking for more than was granted is refused…
    assert_eq!(
        refresh(&rp, &refresh_token, &["openid", "profile", "offline_access"])
            .await
            .unwrap_err(),
        "invalid_scope"
    );
    // …and costs the app nothing: the same refresh token still works, for the whole original grant.
    let full = refresh(&rp, &refresh_token, &[])
        .await
        .expect("a refused scope request does not consume the refresh token");
    let granted = full.scopes().map(|s| s.iter().map(|s| s.to_string()).collect());
    assert_eq!(granted, Some(set(&["openid", "profile", "phone"])));

    // A replay of the now rotated-out token is still caught as reuse when it also asks for too much.
    assert_eq!(
        refresh(&rp, &refresh_token, &["openid", "offline_access"])
            .await
            .unwrap_err(),
        "invalid_grant"
    );
    let (_, newest) = pair(&full);
    assert_eq!(
        refresh(&rp, &newest, &[]).await.unwrap_err(),
        "invalid_grant",
        "reuse revoked the family"
    );
}

fn service_client(scopes: &[&str]) -> NewClient {
    NewClient {
        name: "数据交换服务".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        grant_types: vec!["client_credentials".into()],
        ..NewClient::default()
    }
}

async fn client_credentials_give_a_signed_jwt_and_nothing_else(backend: Backend) {
    let env = Env::start(backend).await;
    let service = env.client_with(service_client(&["openid", "profile"])).await;
    let now = env.app.now();

    let (status, body) = wire::token(
        &env.base,
        &service,
        &[("grant_type", "client_credentials"), ("scope", "profile")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::ES256);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(wire::jwks(&env.base).await).unwrap();
    let kid = header.kid.expect("a kid");
    let jwk = jwks.find(&kid).expect("the kid is published in the JWKS");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[env.base.as_str()]);
    validation.set_audience(&[service.id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the access token verifies against the JWKS")
        .claims;
    assert_eq!(claims["client_id"], service.id.as_str());
    assert_eq!(claims["sub"], service.id.as_str());
    assert_eq!(claims["scope"], "profile");
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp <= now + 900, "exp {exp} vs now {now}");

    // A code-flow app may not use the grant.
    let code_app = env.client(CALLBACK).await;
    let (status, body) = wire::token(&env.base, &code_app, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");

    // Scopes the service was not given, and openid (no person here), are refused.
    for scope in ["phone", "profile phone", "openid"] {
        let (status, body) = wire::token(
            &env.base,
            &service,
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "scope {scope}");
        assert_eq!(body["error"], "invalid_scope", "scope {scope}");
    }
}

async fn introspection_reports_live_tokens_only_to_their_client(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let other = env.client("http://127.0.0.1:9/other-app").await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;
    let sub = signed.id_claims()["sub"].clone();
    let now = env.app.now();

    let info = wire::introspect(&env.base, &client, &signed.access_token()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(
        scope_set(info["scope"].as_str().unwrap()),
        set(&["openid", "profile"])
    );
    assert_eq!(info["client_id"], client.id.as_str());
    assert_eq!(info["sub"], sub);
    let exp = info["exp"].as_i64().expect("exp");
    assert!(exp > now && exp <= now + 900, "exp {exp} vs now {now}");

    let info = wire::introspect(&env.base, &client, &signed.refresh_token()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], client.id.as_str());
    assert_eq!(info["sub"], sub);

    let inactive = json!({ "active": false });
    assert_eq!(
        wire::introspect(&env.base, &client, "no-such-token").await,
        inactive
    );
    // Another app learns nothing about tokens that are not its own.
    assert_eq!(
        wire::introspect(&env.base, &other, &signed.access_token()).await,
        inactive
    );
    assert_eq!(
        wire::introspect(&env.base, &other, &signed.refresh_token()).await,
        inactive
    );

    assert_eq!(
        wire::revoke(&env.base, &client, &signed.access_token()).await,
        StatusCode::OK
    );
    assert_eq!(
        wire::introspect(&env.base, &client, &signed.access_token()).await,
        inactive
    );
}

/// A node remembers which access tokens it found unrevoked, but a revocation on another node ends them
/// there at once: by the token itself, by its refresh token (the whole grant), or by a logout.
async fn a_revocation_on_one_node_ends_the_token_on_every_node(backend: Backend) {
    let env = Env::start(backend).await;
    let second;
    let other: &str = match backend {
        Backend::Postgres => {
            second = env.peer_node().await;
            &second.base
        }
        Backend::Sqlite => &env.base,
    };
    let person = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    // Polled for a second: a notification takes milliseconds; a remembered answer would last 5 s.
    async fn inactive_within_a_second(base: &str, client: &TestClient, token: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            if !wire::is_active(base, client, token).await {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let remembered_live = |access: String| {
        let client = &client;
        async move {
            for _ in 0..3 {
                let info = wire::introspect(other, client, &access).await;
                assert_eq!(info["active"], true, "{info}");
                assert_eq!(wire::userinfo(other, &access).await.0, StatusCode::OK);
            }
        }
    };

    // The access token itself.
    let signed = sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;
    remembered_live(signed.access_token()).await;
    assert_eq!(
        wire::revoke(&env.base, &client, &signed.access_token()).await,
        StatusCode::OK
    );
    assert!(
        inactive_within_a_second(other, &client, &signed.access_token()).await,
        "a revoked access token is still active on the other node after a second"
    );
    assert_eq!(
        wire::userinfo(other, &signed.access_token()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Its grant lives on: the refresh token still works.
    assert!(wire::is_active(other, &client, &signed.refresh_token()).await);

    // The refresh token: the grant ends, and with it every access token it gave.
    let signed = sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;
    remembered_live(signed.access_token()).await;
    assert_eq!(
        wire::revoke(&env.base, &client, &signed.refresh_token()).await,
        StatusCode::OK
    );
    assert!(
        inactive_within_a_second(other, &client, &signed.access_token()).await,
        "an access token of a revoked grant is still active on the other node after a second"
    );
    assert_eq!(
        wire::userinfo(other, &signed.access_token()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Withdrawing consent on the account page (through the store, as the page does) ends the grant too.
    let signed = sign_in(&rp, &Browser::new(&env.base), &["profile"]).await;
    remembered_live(signed.access_token()).await;
    assert!(
        env.app
            .db
            .revoke_app(&person, &client.id, env.app.now())
            .await
            .unwrap()
    );
    assert!(
        inactive_within_a_second(other, &client, &signed.access_token()).await,
        "an access token of a withdrawn consent is still active on the other node after a second"
    );
}

/// A node remembers the access tokens it verified (introspection and userinfo skip the signature check
/// the second time), but a remembered token still expires.
async fn a_remembered_access_token_still_expires(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;
    let access = signed.access_token();
    for _ in 0..2 {
        assert!(wire::is_active(&env.base, &client, &access).await);
        assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);
    }
    env.app.clock.advance(env.app.config.access_token_ttl);
    assert!(!wire::is_active(&env.base, &client, &access).await);
    assert_eq!(
        wire::userinfo(&env.base, &access).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn revocation_kills_tokens_and_is_quiet_about_unknown_ones(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let other = env.client("http://127.0.0.1:9/other-app").await;
    let browser = Browser::new(&env.base);

    // Revoking a refresh token ends its grant: the refresh token and every access token of the family.
    let first = sign_in(&rp, &browser, &["profile"]).await;
    let next = refresh(&rp, &first.refresh_token(), &[]).await.unwrap();
    let (access2, refresh2) = pair(&next);
    assert_eq!(wire::revoke(&env.base, &client, &refresh2).await, StatusCode::OK);
    assert_eq!(refresh(&rp, &refresh2, &[]).await.unwrap_err(), "invalid_grant");
    for access in [first.access_token(), access2] {
        assert!(!wire::is_active(&env.base, &client, &access).await);
        assert_eq!(
            wire::userinfo(&env.base, &access).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    // Another grant: an app cannot revoke someone else's token; the owner can.
    let second = sign_in(&rp, &browser, &["profile"]).await;
    let access = second.access_token();
    assert_eq!(wire::revoke(&env.base, &other, &access).await, StatusCode::OK);
    assert!(wire::is_active(&env.base, &client, &access).await);
    assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);
    assert_eq!(wire::revoke(&env.base, &client, &access).await, StatusCode::OK);
    assert!(!wire::is_active(&env.base, &client, &access).await);
    assert_eq!(
        wire::userinfo(&env.base, &access).await.0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        wire::revoke(&env.base, &client, "no-such-token").await,
        StatusCode::OK
    );
}

fn assert_bearer_challenge(res: &reqwest::Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

async fn userinfo_takes_a_bearer_token_and_nothing_else(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile", "phone"]).await;
    let access = signed.access_token();
    let sub = signed.id_claims()["sub"].clone();
    let url = env.url("/userinfo");

    let answers = [
        http().get(&url).bearer_auth(&access).send().await.unwrap(),
        http().post(&url).bearer_auth(&access).send().await.unwrap(),
        http()
            .post(&url)
            .form(&[("access_token", access.as_str())])
            .send()
            .await
            .unwrap(),
    ];
    for res in answers {
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["sub"], sub);
        assert_eq!(body["name"], "张三");
        assert_eq!(body["phone_number"], "+8613800138000");
    }

    // No token at all: a bare challenge, no error code (RFC 6750 §3.1).
    let bare = http().get(&url).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let challenge = bare.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("error="),
        "{challenge}"
    );
    assert_bearer_challenge(&http().get(&url).bearer_auth("garbage").send().await.unwrap());
    // An ID token is not an access token.
    assert_bearer_challenge(
        &http()
            .get(&url)
            .bearer_auth(signed.id_token())
            .send()
            .await
            .unwrap(),
    );
    // A client-credentials token names no person.
    let service = env.client_with(service_client(&["profile"])).await;
    let (status, body) = wire::token(&env.base, &service, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_bearer_challenge(
        &http()
            .get(&url)
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    );

    env.app.clock.advance(601);
    assert_bearer_challenge(&http().get(&url).bearer_auth(&access).send().await.unwrap());
}

/// The authorization parameters an app pushes.
fn pushed_params<'a>(client: &'a TestClient, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid profile"),
        ("state", "par-state"),
        ("nonce", "par-nonce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Pushes an authorization request with client_secret_basic; returns the request_uri.
async fn push(env: &Env, client: &TestClient, challenge: &str) -> String {
    let res = http()
        .post(env.url("/par"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&pushed_params(client, challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let expires_in = body["expires_in"].as_i64().expect("expires_in");
    assert!((1..=90).contains(&expires_in), "expires_in {expires_in}");
    let uri = body["request_uri"].as_str().expect("request_uri").to_owned();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");
    uri
}

fn authorize_by_reference(env: &Env, client_id: &str, request_uri: &str) -> String {
    let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    url.to_string()
}

fn assert_error_page(page: &crate::common::browser::Page) {
    let (_, status, body) = page.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn pushed_requests_are_single_use_short_lived_and_bound_to_their_client(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let other = env.client("http://127.0.0.1:9/other-app").await;
    let browser = Browser::new(&env.base);

    let (verifier, challenge) = pkce();
    let uri = push(&env, &client, &challenge).await;
    let url = authorize_by_reference(&env, &client.id, &uri);
    let back = browser.sign_in(&url, ALICE_ID, PASSWORD).await;
    let params = back.params();
    assert_eq!(params["state"], "par-state");
    let tokens = rp
        .exchange(&params["code"], PkceCodeVerifier::new(verifier))
        .await
        .expect("the code from a pushed request redeems");
    tokens
        .id_token()
        .unwrap()
        .claims(&rp.client.id_token_verifier(), &Nonce::new("par-nonce".into()))
        .expect("the ID token carries the pushed nonce");

    // Single use.
    assert_error_page(&browser.get(&url).await);

    // Bound to the client that pushed it: another client's request_uri is refused, and not consumed.
    let (_, other_challenge) = pkce();
    let others = push(&env, &other, &other_challenge).await;
    assert_error_page(
        &browser
            .get(&authorize_by_reference(&env, &client.id, &others))
            .await,
    );
    let back = browser
        .sign_in(
            &authorize_by_reference(&env, &other.id, &others),
            ALICE_ID,
            PASSWORD,
        )
        .await;
    assert!(back.params().contains_key("code"), "{back:?}");
    assert!(back.left().as_str().starts_with(&other.redirect_uri));

    // Pushing needs client authentication.
    let res = http()
        .post(env.url("/par"))
        .form(&pushed_params(&client, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // Short-lived: 91 seconds later the request_uri is gone.
    let (_, challenge) = pkce();
    let uri = push(&env, &client, &challenge).await;
    env.app.clock.advance(91);
    assert_error_page(&browser.get(&authorize_by_reference(&env, &client.id, &uri)).await);
}

async fn private_key_jwt_clients_prove_themselves_with_fresh_signed_assertions(backend: Backend) {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    let env = Env::start(backend).await;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "x": wire::b64(x), "y": wire::b64(y),
        "kid": "app-key-1", "use": "sig", "alg": "ES256",
    }]});
    let client = env
        .client_with(NewClient {
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(jwks.to_string()),
            ..service_client(&["profile"])
        })
        .await;
    let id = client.id.as_str();
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let es256 = || {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("app-key-1".into());
        h
    };
    let now = env.app.now();
    let token_endpoint = env.url("/token");
    let claims = |jti: &str, aud: &str, iat: i64, exp: i64| json!({ "iss": id, "sub": id, "aud": aud, "iat": iat, "exp": exp, "jti": jti });
    let sign = |claims: &Value| jsonwebtoken::encode(&es256(), claims, &key).unwrap();

    let good = sign(&claims("jti-1", &token_endpoint, now, now + 60));
    let (status, body) = wire::with_assertion(&env.base, id, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, at) = wire::jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(at["client_id"], id);

    let refused = |what: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert_eq!(body["error"], "invalid_client", "{what}");
        }
    };

    refused("replayed assertion")(wire::with_assertion(&env.base, id, &good).await);
    refused("expired assertion")(
        wire::with_assertion(
            &env.base,
            id,
            &sign(&claims("jti-2", &token_endpoint, now - 300, now - 120)),
        )
        .await,
    );
    refused("wrong audience")(
        wire::with_assertion(
            &env.base,
            id,
            &sign(&claims("jti-3", "https://elsewhere.example/token", now, now + 60)),
        )
        .await,
    );
    let unsigned = format!(
        "{}.{}.",
        wire::b64(br#"{"alg":"none","typ":"JWT"}"#),
        wire::b64(
            claims("jti-4", &token_endpoint, now, now + 60)
                .to_string()
                .as_bytes()
        ),
    );
    refused("alg none")(wire::with_assertion(&env.base, id, &unsigned).await);
    // HS256 with some secret, and with the public key itself as the HMAC secret (key confusion).
    for (n, secret) in [b"some shared secret".to_vec(), point.to_vec()]
        .into_iter()
        .enumerate()
    {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("app-key-1".into());
        let forged = jsonwebtoken::encode(
            &h,
            &claims(&format!("jti-hs-{n}"), &token_endpoint, now, now + 60),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        refused("HS256")(wire::with_assertion(&env.base, id, &forged).await);
    }

    // None of that locked the client out: a fresh, correct assertion still works.
    let fresh = sign(&claims("jti-5", &token_endpoint, now, now + 60));
    let (status, body) = wire::with_assertion(&env.base, id, &fresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn id_tokens_are_signed_with_the_algorithm_each_client_registered(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let jwks = wire::jwks(&env.base).await;

    // The default: RS256, with at_hash and c_hash as OIDC Core §3.1.3.6 defines them.
    let signed = sign_in(&rp, &browser, &["profile"]).await;
    let verifier: CoreIdTokenVerifier = rp.client.id_token_verifier();
    signed
        .tokens
        .id_token()
        .unwrap()
        .claims(&verifier, &signed.nonce)
        .expect("RS256 ID token verifies");
    let (header, claims) = wire::verify_jws(&jwks, &signed.id_token()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["at_hash"], wire::half_sha256(&signed.access_token()));
    assert_eq!(claims["c_hash"], wire::half_sha256(&signed.code));

    for alg in [Alg::ES256, Alg::EdDSA] {
        let client = env
            .client_with(NewClient {
                name: format!("{} 应用", alg.as_str()),
                redirect_uris: vec![CALLBACK.into()],
                id_token_alg: alg,
                ..NewClient::default()
            })
            .await;
        let rp = Rp::discover(&env.base, &client).await;
        let signed = sign_in(&rp, &browser, &["profile"]).await;
        let id_token = signed.tokens.id_token().unwrap();
        let verifier = rp.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &signed.nonce)
            .unwrap_or_else(|e| panic!("{} ID token verifies: {e:?}", alg.as_str()));

        let (header, raw) = wire::verify_jws(&jwks, &signed.id_token()).unwrap();
        assert_eq!(header["alg"], alg.as_str());
        let key = wire::jwk(&jwks, header["kid"].as_str().unwrap()).unwrap();
        assert_eq!(key["alg"], alg.as_str());
        assert_eq!(raw["aud"], client.id.as_str());

        // at_hash as the RP library computes it for this algorithm.
        let expected = AccessTokenHash::from_token(
            signed.tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected));
    }
}

/// A rolling upgrade (deploy/OPERATIONS.md): a code written by a node of the previous release, as a family
/// row and a code row of their own, is redeemed here once, and the refresh token stored with its use works.
async fn a_code_written_by_the_previous_release_is_redeemed_once_here(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let first = sign_in(&rp, &browser, &["profile"]).await;
    let fid = wire::jwt_parts(&first.access_token()).1["fid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The previous release's two writes, for another authorization of the same person and app.
    let db = &env.app.db;
    let mut family = db.family(&fid).await.unwrap().expect("the first grant");
    family.id = "family-written-by-the-previous-release".into();
    family.nonce = None;
    db.insert_family(&family).await.unwrap();
    let (verifier, challenge) = pkce();
    let code = yunid::crypto::random_token();
    let now = env.app.now();
    db.insert_code(
        &yunid::crypto::token_hash(&code),
        &yunid::store::families::CodeRow {
            client_id: family.client_id.clone(),
            redirect_uri: CALLBACK.into(),
            code_challenge: challenge,
            family_id: family.id.clone(),
            expires_at: now + 60,
        },
    )
    .await
    .unwrap();

    let tokens = rp
        .exchange(&code, PkceCodeVerifier::new(verifier.clone()))
        .await
        .expect("this release redeems the previous release's code");
    let (access, refresh_token) = pair(&tokens);
    assert_eq!(wire::jwt_parts(&access).1["fid"], family.id.as_str());
    let refreshed = refresh(&rp, &refresh_token, &[])
        .await
        .expect("its refresh token works");
    assert_eq!(
        wire::userinfo(&env.base, &pair(&refreshed).0).await.0,
        StatusCode::OK
    );
    let again = rp.exchange(&code, PkceCodeVerifier::new(verifier)).await;
    assert!(again.unwrap_err().contains("invalid_grant"), "a code works once");
}

/// The other way round: a code this release wrote (in one statement, through the `code_grants` view) is
/// found and redeemed by a node of the previous release with its own statements, which also store the
/// refresh token themselves; no second one appears, and the code is spent here too.
async fn a_code_written_here_is_redeemed_by_a_node_of_the_previous_release(backend: Backend) {
    use sqlx::Row;
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let code = back.params()["code"].clone();
    let hash = yunid::crypto::token_hash(&code);
    let challenge = yunid::crypto::b64url(&yunid::crypto::sha256(attempt.verifier.secret().as_bytes()));
    let db = &env.app.db;

    // The previous release's redemption, as it was written: read the grant, use the code, store a refresh token.
    let (family, _) = db
        .code_family_with_person(&hash)
        .await
        .unwrap()
        .expect("the previous release finds the grant of the code");
    let now = env.app.now();
    let used: Option<String> = sqlx::query_scalar(
        "UPDATE codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND client_id = $3 \
         AND redirect_uri = $4 AND code_challenge = $5 AND expires_at > $1 RETURNING family_id",
    )
    .bind(now)
    .bind(&hash)
    .bind(&client.id)
    .bind(CALLBACK)
    .bind(&challenge)
    .fetch_optional(&db.pool)
    .await
    .unwrap();
    assert_eq!(used.as_deref(), Some(family.id.as_str()));
    let old_refresh = yunid::crypto::random_token();
    db.insert_refresh(
        &yunid::crypto::token_hash(&old_refresh),
        &family.id,
        now,
        now + 3600,
    )
    .await
    .unwrap();
    let stored = sqlx::query("SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = $1")
        .bind(&family.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        stored.try_get::<i64, _>("n").unwrap(),
        1,
        "only the previous release's own"
    );

    let refreshed = refresh(&rp, &old_refresh, &[])
        .await
        .expect("that refresh token works here");
    assert_eq!(
        wire::userinfo(&env.base, &pair(&refreshed).0).await.0,
        StatusCode::OK
    );
    let here = rp.exchange(&code, attempt.verifier).await;
    assert!(
        here.unwrap_err().contains("invalid_grant"),
        "the code is spent here too"
    );
}

/// A redemption refused after the code's use (the person was locked in between): the app gets
/// `invalid_grant`, and the refresh token the code's use stored for the grant, never sent, is gone.
async fn a_redemption_refused_after_the_codes_use_leaves_no_refresh_token(backend: Backend) {
    let env = Env::start(backend).await;
    let (_client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let code = back.params()["code"].clone();
    let db = &env.app.db;
    let (family, person) = db
        .code_family_with_person(&yunid::crypto::token_hash(&code))
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE persons SET status = 'locked' WHERE id = $1")
        .bind(&person.unwrap().id)
        .execute(&db.pool)
        .await
        .unwrap();
    let refused = rp.exchange(&code, attempt.verifier).await;
    assert!(refused.unwrap_err().contains("invalid_grant"));
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $1")
        .bind(&family.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// A node does not start on a database that lost a trigger of migrations 0026-0027 (a table rebuild, a
/// restore without triggers): without them no code would bring its refresh token and no SMS code could be
/// sent, so it says so at start, naming the missing ones.
async fn a_node_does_not_start_without_the_code_triggers(backend: Backend) {
    let env = Env::start(backend).await;
    let drop = if env.db.is_sqlite() {
        "DROP TRIGGER codes_first_refresh"
    } else {
        "DROP TRIGGER codes_first_refresh ON codes"
    };
    sqlx::query(drop).execute(&env.app.db.pool).await.unwrap();
    // And the SMS send's (migration 0027): without it no SMS code could be sent.
    let drop = if env.db.is_sqlite() {
        "DROP TRIGGER sms_code_sends_insert"
    } else {
        "DROP TRIGGER sms_code_sends_insert ON sms_code_sends"
    };
    sqlx::query(drop).execute(&env.app.db.pool).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = crate::common::test_config(&env.db.url, env.keys.path(), listener.local_addr().unwrap());
    let refused = yunid::App::new(config)
        .await
        .err()
        .expect("the node refuses to start");
    let message = format!("{refused:#}");
    assert!(message.contains("codes_first_refresh"), "{message}");
    assert!(message.contains("sms_code_sends_insert"), "{message}");
    assert!(!message.contains("code_grants_insert"), "{message}");
}

on_both_backends!(
    a_redemption_refused_after_the_codes_use_leaves_no_refresh_token,
    a_node_does_not_start_without_the_code_triggers,
    a_code_written_by_the_previous_release_is_redeemed_once_here,
    a_code_written_here_is_redeemed_by_a_node_of_the_previous_release,
    a_revocation_on_one_node_ends_the_token_on_every_node,
    refresh_rotates_tokens_and_reuse_revokes_the_family,
    refresh_is_bound_to_its_client_and_scope_can_only_narrow,
    client_credentials_give_a_signed_jwt_and_nothing_else,
    introspection_reports_live_tokens_only_to_their_client,
    a_remembered_access_token_still_expires,
    revocation_kills_tokens_and_is_quiet_about_unknown_ones,
    userinfo_takes_a_bearer_token_and_nothing_else,
    pushed_requests_are_single_use_short_lived_and_bound_to_their_client,
    private_key_jwt_clients_prove_themselves_with_fresh_signed_assertions,
    id_tokens_are_signed_with_the_algorithm_each_client_registered,
);
