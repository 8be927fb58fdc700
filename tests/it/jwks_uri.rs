//! private_key_jwt clients that publish their keys at a `jwks_uri`: keys fetched and kept per node, a
//! rotated key picked up on its first assertion, the old one refused once the rotation is seen, fetches
//! bounded however many bad assertions arrive, an unreachable or unfit JWKS an `invalid_client` (never
//! a server error), and the admin API keeping `jwks` and `jwks_uri` apart.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yunid::services::oidc::remote_jwks::{MIN_REFETCH, TTL};
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::admin::{admin_token, department_app};
use crate::common::jwks_server::{AppKey, JwksServer, dead_url, set};
use crate::common::{Backend, Env, http, wire};
use crate::on_both_backends;

/// A machine-to-machine app authenticating with keys published at `jwks_uri`.
async fn app_at(env: &Env, jwks_uri: &str) -> String {
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

fn assert_invalid_client((status, body): &(StatusCode, Value), case: &str) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
}

async fn keys_at_a_jwks_uri_are_fetched_cached_and_rotated(backend: Backend) {
    let env = Env::start(backend).await;
    let old = AppKey::new("app-key-1");
    let new = AppKey::new("app-key-2");
    let server = JwksServer::start(set(&[&old])).await;
    let id = app_at(&env, &server.url("/jwks")).await;
    let aud = env.url("/token");
    let sign = |key: &AppKey| key.assertion(&id, &aud, env.app.now());

    let ok = wire::with_assertion(&env.base, &id, &sign(&old)).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    let ok = wire::with_assertion(&env.base, &id, &sign(&old)).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(server.hits(), 1, "the keys are kept, not fetched per assertion");

    // 20 assertions naming a key the app never published: refused, and at most one more fetch.
    for _ in 0..20 {
        let forged = old.assertion_as("no-such-key", &id, &aud, env.app.now());
        assert_invalid_client(
            &wire::with_assertion(&env.base, &id, &forged).await,
            "unknown kid",
        );
    }
    assert_eq!(
        server.hits(),
        1,
        "fetched again within {MIN_REFETCH} s of the last fetch"
    );
    env.app.clock.advance(MIN_REFETCH);
    for _ in 0..20 {
        let forged = old.assertion_as("no-such-key", &id, &aud, env.app.now());
        assert_invalid_client(
            &wire::with_assertion(&env.base, &id, &forged).await,
            "unknown kid",
        );
    }
    assert_eq!(
        server.hits(),
        2,
        "one fetch per {MIN_REFETCH} s, however many bad assertions"
    );
    let ok = wire::with_assertion(&env.base, &id, &sign(&old)).await;
    assert_eq!(ok.0, StatusCode::OK, "the published key still works: {}", ok.1);

    // The app rotates its key: the new key's first assertion (after the refetch pause) makes yunid
    // fetch again and is accepted; from then on the old key is refused.
    server.publish(set(&[&new]));
    env.app.clock.advance(MIN_REFETCH);
    let ok = wire::with_assertion(&env.base, &id, &sign(&new)).await;
    assert_eq!(ok.0, StatusCode::OK, "the rotated key: {}", ok.1);
    assert_eq!(server.hits(), 3);
    assert_invalid_client(
        &wire::with_assertion(&env.base, &id, &sign(&old)).await,
        "the retired key",
    );
    let ok = wire::with_assertion(&env.base, &id, &sign(&new)).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(server.hits(), 3);

    // Kept no longer than the TTL: a known key is fetched again once it has passed.
    env.app.clock.advance(TTL);
    let ok = wire::with_assertion(&env.base, &id, &sign(&new)).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(server.hits(), 4, "fetched again after {TTL} s");
}

async fn an_unreachable_or_unfit_jwks_is_invalid_client_not_a_server_error(backend: Backend) {
    let env = Env::start(backend).await;
    let key = AppKey::new("app-key-1");
    let mut leaked = key.jwk.clone();
    leaked["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI".into();
    let server = JwksServer::start(json!({ "keys": [leaked] })).await;
    let aud = env.url("/token");
    let cases = [
        (dead_url().await, "the app's server is down"),
        (server.url("/broken"), "the app's server answers 500"),
        (server.url("/huge"), "a JWKS over the size limit"),
        (server.url("/jwks"), "a JWKS holding a private key"),
    ];
    for (uri, case) in cases {
        let id = app_at(&env, &uri).await;
        let refused = wire::with_assertion(&env.base, &id, &key.assertion(&id, &aud, env.app.now())).await;
        assert_invalid_client(&refused, case);
        assert!(
            refused.1["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("jwks_uri")),
            "{case}: the description says what failed: {}",
            refused.1
        );
    }

    // Once the app fixes its JWKS, it authenticates (after the refetch pause).
    let id = app_at(&env, &server.url("/jwks")).await;
    assert_invalid_client(
        &wire::with_assertion(&env.base, &id, &key.assertion(&id, &aud, env.app.now())).await,
        "private key published",
    );
    server.publish(set(&[&key]));
    env.app.clock.advance(MIN_REFETCH);
    let ok = wire::with_assertion(&env.base, &id, &key.assertion(&id, &aud, env.app.now())).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
}

async fn patch(env: &Env, token: &str, path: &str, body: Value) -> (u16, Value) {
    let tag = http()
        .get(env.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let res = http()
        .request(Method::PATCH, env.url(path))
        .bearer_auth(token)
        .header("if-match", tag)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn field(res: &(u16, Value)) -> &str {
    assert_eq!(res.0, 422, "{}", res.1);
    res.1["errors"][0]["field"].as_str().unwrap_or("")
}

async fn admins_set_a_jwks_uri_never_alongside_jwks(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let app = department_app(&env, "tax").await;
    let path = format!("/admin/api/clients/{}", app.id);
    let key = AppKey::new("app-key-1");
    let server = JwksServer::start(set(&[&key])).await;
    let uri = server.url("/jwks");

    let both = json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": set(&[&key]),
        "jwks_uri": uri });
    assert_eq!(field(&patch(&env, &admin, &path, both).await), "jwks_uri");
    for bad in [
        "ftp://app.example.cn/jwks",
        "http://app.example.cn/jwks",
        "not a url",
    ] {
        let body = json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": bad });
        assert_eq!(
            field(&patch(&env, &admin, &path, body).await),
            "jwks_uri",
            "{bad}"
        );
    }
    let body = json!({ "token_endpoint_auth_method": "private_key_jwt" });
    assert_eq!(field(&patch(&env, &admin, &path, body).await), "jwks");

    let body = json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri,
        "grant_types": ["authorization_code", "client_credentials"], "scopes": ["openid", "profile"] });
    let (status, read) = patch(&env, &admin, &path, body).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["jwks_uri"], uri.as_str());
    assert_eq!(read["jwks"], Value::Null);
    let aud = env.url("/token");
    let ok = wire::with_assertion(&env.base, &app.id, &key.assertion(&app.id, &aud, env.app.now())).await;
    assert_eq!(
        ok.0,
        StatusCode::OK,
        "the edited app authenticates by its published key: {}",
        ok.1
    );

    // Adding keys by value while the URI stays: refused; replacing the URI by keys: fine.
    let body = json!({ "jwks": set(&[&key]) });
    assert_eq!(field(&patch(&env, &admin, &path, body).await), "jwks_uri");
    let body = json!({ "jwks": set(&[&key]), "jwks_uri": null });
    let (status, read) = patch(&env, &admin, &path, body).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["jwks_uri"], Value::Null);
    assert_eq!(read["jwks"]["keys"][0]["kid"], "app-key-1");
}

on_both_backends!(
    keys_at_a_jwks_uri_are_fetched_cached_and_rotated,
    an_unreachable_or_unfit_jwks_is_invalid_client_not_a_server_error,
    admins_set_a_jwks_uri_never_alongside_jwks,
);
