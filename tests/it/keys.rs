//! Signing keys as apps see them: the JWKS after first start (one key per algorithm, RFC 7638 key ids,
//! private files), and rotation (new tokens on new keys, old tokens valid until the grace period ends).

use std::collections::BTreeSet;

use openidconnect::{Nonce, TokenResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use yunid::keys::KeyStore;

use crate::common::rp::Rp;
use crate::common::wire::{self, alice_and_app, pair, refresh, sign_in};
use crate::common::{Backend, Browser, Env, http};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// RFC 7638 §3: SHA-256 over the required members, lexicographic order, no white space.
fn thumbprint(key: &Value) -> String {
    let s = |name: &str| key[name].as_str().unwrap_or_else(|| panic!("{name} in {key}"));
    let canonical = match s("kty") {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        other => panic!("unexpected kty {other}"),
    };
    wire::b64(&yunid::crypto::sha256(canonical.as_bytes()))
}

fn kid_set(jwks: &Value) -> BTreeSet<String> {
    wire::kids(jwks).into_iter().collect()
}

fn kid_of(token: &str) -> String {
    wire::jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

/// Permission bits of the private key material in the keys folder: (file name, mode).
fn private_files(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".pk8") || name == "secret.key"
        })
        .map(|e| {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect()
}

async fn first_start_publishes_one_key_per_algorithm_named_by_its_thumbprint(backend: Backend) {
    // The thumbprint computed here is RFC 7638's own example first.
    let rfc_example = json!({
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    assert_eq!(
        thumbprint(&rfc_example),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );

    let env = Env::start(backend).await;
    let res = http().get(env.url("/jwks")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.contains("json"), "{content_type}");
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{jwks}");

    let mut algs = BTreeSet::new();
    for key in keys {
        let alg = key["alg"].as_str().unwrap();
        algs.insert(alg.to_owned());
        let (kty, crv) = match alg {
            "RS256" => ("RSA", None),
            "ES256" => ("EC", Some("P-256")),
            "EdDSA" => ("OKP", Some("Ed25519")),
            other => panic!("unexpected alg {other}"),
        };
        assert_eq!(key["kty"], kty);
        assert_eq!(key["crv"].as_str(), crv);
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"].as_str().unwrap(), thumbprint(key), "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} published: {key}");
        }
    }
    assert_eq!(
        algs,
        ["EdDSA", "ES256", "RS256"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(kid_set(&jwks).len(), 3, "kids are unique");

    let files = private_files(&env.keys_dir);
    assert_eq!(
        files.iter().filter(|(n, _)| n.ends_with(".pk8")).count(),
        3,
        "{files:?}"
    );
    assert!(files.iter().any(|(n, _)| n == "secret.key"), "{files:?}");
    for (name, mode) in files {
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}

async fn rotated_keys_sign_new_tokens_while_old_tokens_stay_valid_until_the_grace_ends(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let before = sign_in(&rp, &browser, &["profile"]).await;
    let old_kids = kid_set(&wire::jwks(&env.base).await);
    let (old_id_kid, old_at_kid) = (kid_of(&before.id_token()), kid_of(&before.access_token()));

    KeyStore::new(&env.keys_dir).rotate(env.app.now()).unwrap();
    env.app.reload_keys().unwrap();

    let after = refresh(&rp, &before.refresh_token(), &[]).await.unwrap();
    let (access, refresh_token) = pair(&after);
    let new_id_kid = kid_of(&after.id_token().unwrap().to_string());
    let new_at_kid = kid_of(&access);
    assert_ne!(new_id_kid, old_id_kid, "ID tokens are signed with the new key");
    assert_ne!(
        new_at_kid, old_at_kid,
        "access tokens are signed with the new key"
    );

    let jwks = wire::jwks(&env.base).await;
    let published = kid_set(&jwks);
    assert_eq!(published.len(), 6, "{jwks}");
    assert!(published.is_superset(&old_kids), "old keys stay published");
    assert!(published.contains(&new_id_kid) && published.contains(&new_at_kid));
    for (name, mode) in private_files(&env.keys_dir) {
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }

    // An app that fetches the JWKS now accepts both the old and the new ID token.
    let fresh = Rp::discover(&env.base, &client).await;
    let verifier = fresh.client.id_token_verifier();
    before
        .tokens
        .id_token()
        .unwrap()
        .claims(&verifier, &before.nonce)
        .expect("the ID token signed before the rotation still verifies");
    after
        .id_token()
        .unwrap()
        .claims(&verifier, |_: Option<&Nonce>| Ok(()))
        .expect("the new ID token verifies");
    assert_eq!(
        wire::userinfo(&env.base, &before.access_token()).await.0,
        StatusCode::OK,
        "the access token signed before the rotation still works"
    );
    assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);

    // Once every token the old keys signed has expired, they are withdrawn.
    env.app
        .clock
        .advance(yunid::app::publish_grace(&env.app.config) + 1);
    env.app.reload_keys().unwrap();
    let published = kid_set(&wire::jwks(&env.base).await);
    assert_eq!(published.len(), 3, "{published:?}");
    assert!(published.is_disjoint(&old_kids), "{published:?}");
    assert!(published.contains(&new_id_kid) && published.contains(&new_at_kid));

    // The new keys go on signing.
    let later = refresh(&rp, &refresh_token, &[]).await.unwrap();
    let id_token = later.id_token().unwrap();
    assert_eq!(kid_of(&id_token.to_string()), new_id_kid);
    let fresh = Rp::discover(&env.base, &client).await;
    id_token
        .claims(&fresh.client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .expect("tokens signed after the grace period verify");
}

on_both_backends!(
    first_start_publishes_one_key_per_algorithm_named_by_its_thumbprint,
    rotated_keys_sign_new_tokens_while_old_tokens_stay_valid_until_the_grace_ends,
);
