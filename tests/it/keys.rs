//! Signing keys as apps see them: the JWKS after first start (one key per algorithm, RFC 7638 key ids,
//! private files), and rotation (new tokens on new keys, old tokens valid until the grace period ends).

use std::collections::BTreeSet;

use openidconnect::{Nonce, TokenResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};
use yunid::keys::{KeyStore, rotation};

use crate::common::rp::Rp;
use crate::common::wire::{self, alice_and_app, pair, refresh, sign_in};
use crate::common::{Backend, Browser, Env, Server, TestClient, TestDb, http, test_config};
use crate::on_both_backends;
use yunid::Config;
use yunid::services::registry::NewClient;

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

/// Every file in the keys folder with its permission bits: (file name, mode).
fn private_files(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
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

    // The folder holds only the data-protection secret and the key-encryption key, owner-only.
    let mut files = private_files(&env.keys_dir);
    files.sort();
    assert_eq!(
        files,
        vec![("kek.key".to_owned(), 0o600), ("secret.key".to_owned(), 0o600)]
    );

    // The signing keys are in the database, sealed: no row is a PKCS#8 document, and opening them
    // with the folder's key-encryption key gives exactly the published keys.
    let rows = stored_keys(&env).await;
    assert_eq!(rows.len(), 3);
    let kek = KeyStore::new(&env.keys_dir).kek(None).unwrap();
    let mut opened = Vec::new();
    for row in &rows {
        let raw = wire::unb64(&row.sealed);
        assert!(!looks_like_pkcs8(&raw), "{} is stored in the clear", row.kid);
        let alg = yunid::keys::Alg::parse(&row.alg).unwrap();
        let der = kek.open(&row.sealed, &row.kid, alg).unwrap();
        assert!(looks_like_pkcs8(&der));
        // Bound to its own id: a row's ciphertext does not open as another key.
        assert!(kek.open(&row.sealed, "another-kid", alg).is_err());
        opened.push((stored_entry(row), der));
    }
    let reopened: Value =
        serde_json::from_slice(yunid::keys::KeySet::from_entries(&opened).unwrap().jwks_json()).unwrap();
    let by_kid = |doc: &Value| -> std::collections::BTreeMap<String, Value> {
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["kid"].as_str().unwrap().to_owned(), k.clone()))
            .collect()
    };
    assert_eq!(by_kid(&reopened), by_kid(&jwks));
    let wrong = yunid::keys::Kek::from_bytes(&[7u8; 32]).unwrap();
    let row = &rows[0];
    let alg = yunid::keys::Alg::parse(&row.alg).unwrap();
    let err = wrong.open(&row.sealed, &row.kid, alg).unwrap_err();
    assert!(err.to_string().contains("key-encryption key"), "{err}");
}

/// A DER SEQUENCE with a long-form length, as every PKCS#8 key here starts.
fn looks_like_pkcs8(bytes: &[u8]) -> bool {
    bytes.len() > 40
        && bytes[0] == 0x30
        && (bytes[1] == 0x81 || bytes[1] == 0x82 || bytes[1] < 0x80)
        && bytes
            .windows(3)
            .any(|w| w == [0x02, 0x01, 0x00] || w == [0x02, 0x01, 0x01])
}

async fn stored_keys(env: &Env) -> Vec<yunid::store::keys::StoredKey> {
    env.app.db.signing_keys(i64::MIN).await.unwrap()
}

fn stored_entry(row: &yunid::store::keys::StoredKey) -> yunid::keys::KeyEntry {
    yunid::keys::KeyEntry {
        kid: row.kid.clone(),
        alg: yunid::keys::Alg::parse(&row.alg).unwrap(),
        created_at: row.created_at,
        activated_at: row.activated_at,
        retired_at: row.retired_at,
    }
}

async fn rotated_keys_sign_new_tokens_while_old_tokens_stay_valid_until_the_grace_ends(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let browser = Browser::new(&env.base);
    let before = sign_in(&rp, &browser, &["profile"]).await;
    let old_kids = kid_set(&wire::jwks(&env.base).await);
    let (old_id_kid, old_at_kid) = (kid_of(&before.id_token()), kid_of(&before.access_token()));

    rotation::rotate(&env.app.db, &env.app.kek, env.app.now())
        .await
        .unwrap();
    env.app.reload_keys().await.unwrap();

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
    assert_eq!(stored_keys(&env).await.len(), 6);

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
    env.app.reload_keys().await.unwrap();
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

/// A client that gets client-credentials access tokens.
async fn machine_client(server: &Server) -> TestClient {
    server
        .client_with(NewClient {
            name: "机器客户端".into(),
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await
}

/// A client-credentials access token (ES256) from `base`, and its kid.
async fn es256_kid(base: &str, client: &TestClient) -> String {
    let (status, body) = wire::token(base, client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    // What a node signs, it publishes (that the others do too is asserted where it matters).
    assert!(wire::verify_jws(&wire::jwks(base).await, token).is_ok());
    kid_of(token)
}

fn es256_kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_rotated_key_signs_only_once_every_node_publishes_it(backend: Backend) {
    // Refreshes are driven by the test: the background ones run at start, then not for a minute.
    let slow = |c: &mut Config| {
        c.key_refresh_interval_ms = 60_000;
        c.key_publish_delay = 30;
    };
    let env = Env::start_with(backend, slow).await;
    let b = Server::start(&env.db.url, &env.keys_dir, &slow).await;
    let nodes = [&env.server, &b];
    for n in nodes {
        n.app.reload_keys().await.unwrap();
    }
    let client = machine_client(&env).await;
    let old = es256_kid(&env.base, &client).await;
    assert_eq!(es256_kid(&b.base, &client).await, old);

    let added = rotation::rotate(&env.app.db, &env.app.kek, env.app.now())
        .await
        .unwrap();
    let next = added
        .iter()
        .find(|k| k.alg == yunid::keys::Alg::ES256)
        .unwrap()
        .kid
        .clone();

    // A refreshes: it publishes the next key, but B does not yet, so nobody signs with it.
    env.app.reload_keys().await.unwrap();
    assert!(es256_kids(&wire::jwks(&env.base).await).contains(&next));
    assert!(!es256_kids(&wire::jwks(&b.base).await).contains(&next));
    assert_eq!(es256_kid(&env.base, &client).await, old);
    assert_eq!(es256_kid(&b.base, &client).await, old);

    // B refreshes: now both publish it, but it has not been published for key_publish_delay yet.
    b.app.reload_keys().await.unwrap();
    assert!(es256_kids(&wire::jwks(&b.base).await).contains(&next));
    assert_eq!(es256_kid(&b.base, &client).await, old);
    env.app.reload_keys().await.unwrap();
    assert_eq!(es256_kid(&env.base, &client).await, old);

    // Thirty seconds on (as A's clock sees it), A lets it sign; B goes on with the old key — still
    // published everywhere — until its own refresh.
    env.app.clock.advance(31);
    env.app.reload_keys().await.unwrap();
    assert_eq!(es256_kid(&env.base, &client).await, next);
    assert_eq!(es256_kid(&b.base, &client).await, old);
    for n in nodes {
        let published = es256_kids(&wire::jwks(&n.base).await);
        assert!(
            published.contains(&old) && published.contains(&next),
            "{published:?}"
        );
    }
    b.app.clock.advance(31);
    b.app.reload_keys().await.unwrap();
    assert_eq!(es256_kid(&b.base, &client).await, next);

    // The admin API shows the states.
    let listed = rotation::list(
        &env.app.db,
        env.app.now(),
        yunid::app::publish_grace(&env.app.config),
    )
    .await
    .unwrap();
    let state = |kid: &str| listed.iter().find(|k| k.kid == kid).unwrap().clone();
    assert!(state(&next).is_signing());
    assert!(state(&old).retired_at.is_some());
}

async fn a_node_that_stopped_reporting_no_longer_holds_a_rotation_back(backend: Backend) {
    let slow = |c: &mut Config| c.key_refresh_interval_ms = 60_000;
    let env = Env::start_with(backend, slow).await;
    let b = Server::start(&env.db.url, &env.keys_dir, &slow).await;
    b.app.reload_keys().await.unwrap();
    drop(b);
    let client = machine_client(&env).await;
    let old = es256_kid(&env.base, &client).await;
    rotation::rotate(&env.app.db, &env.app.kek, env.app.now())
        .await
        .unwrap();
    env.app.reload_keys().await.unwrap();
    assert_eq!(
        es256_kid(&env.base, &client).await,
        old,
        "B was seen a moment ago and has not published the next key"
    );
    // Unseen for three refresh intervals (3 × 60 s here), B is taken for gone.
    env.app.clock.advance(181);
    env.app.reload_keys().await.unwrap();
    assert_ne!(
        es256_kid(&env.base, &client).await,
        old,
        "B, unseen for longer than the liveness window, is no longer waited for"
    );
}

async fn a_node_with_another_key_encryption_key_refuses_to_start(backend: Backend) {
    let env = Env::start(backend).await;
    let other = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = test_config(&env.db.url, other.path(), addr);
    config.key_encryption_key = Some(wire::b64(&[9u8; 32]));
    let err = match yunid::app::App::new(config).await {
        Ok(_) => panic!("a node with a foreign key-encryption key started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("key-encryption key"), "{err}");

    // The same key, given in the environment instead of the file, works.
    let kek = std::fs::read_to_string(env.keys_dir.join("kek.key")).unwrap();
    let mut config = test_config(&env.db.url, other.path(), addr);
    config.key_encryption_key = Some(kek.trim().to_owned());
    let app = yunid::app::App::new(config).await.unwrap();
    assert_eq!(app.keys().jwks_json(), env.app.keys().jwks_json());
    assert!(!other.path().join("kek.key").exists());
}

async fn keys_of_the_earlier_file_layout_are_imported_once(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    // keys.json with one file per algorithm, and an ES256 key retired a minute ago (still published),
    // as the first release wrote them.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut manifest = Vec::new();
    let (mut active, mut published) = (BTreeSet::new(), BTreeSet::new());
    for (alg, retired) in [
        (yunid::keys::Alg::RS256, None),
        (yunid::keys::Alg::ES256, Some(now - 60)),
        (yunid::keys::Alg::ES256, None),
        (yunid::keys::Alg::EdDSA, None),
    ] {
        let (entry, der) = yunid::keys::generate(alg, now - 3600).unwrap();
        let file = format!("{}-{}.pk8", alg.as_str().to_lowercase(), &entry.kid[..8]);
        std::fs::write(dir.path().join(&file), der).unwrap();
        std::fs::set_permissions(dir.path().join(&file), std::fs::Permissions::from_mode(0o600)).unwrap();
        if retired.is_none() {
            active.insert(entry.kid.clone());
        }
        published.insert(entry.kid.clone());
        manifest.push(json!({
            "kid": entry.kid, "alg": alg.as_str(), "file": file, "created_at": now - 3600, "retired_at": retired,
        }));
    }
    std::fs::write(
        dir.path().join("keys.json"),
        serde_json::to_vec(&json!({ "keys": manifest })).unwrap(),
    )
    .unwrap();
    let server = Server::start(&db.url, dir.path(), &|_| {}).await;
    // All four are published; the three active ones sign.
    assert_eq!(kid_set(&wire::jwks(&server.base).await), published);
    let client = machine_client(&server).await;
    assert!(active.contains(&es256_kid(&server.base, &client).await));
    assert_eq!(server.app.db.signing_key_count().await.unwrap(), 4);
    // A second start imports nothing twice.
    let again = Server::start(&db.url, dir.path(), &|_| {}).await;
    assert_eq!(again.app.db.signing_key_count().await.unwrap(), 4);
}

on_both_backends!(
    first_start_publishes_one_key_per_algorithm_named_by_its_thumbprint,
    rotated_keys_sign_new_tokens_while_old_tokens_stay_valid_until_the_grace_ends,
    a_rotated_key_signs_only_once_every_node_publishes_it,
    a_node_that_stopped_reporting_no_longer_holds_a_rotation_back,
    a_node_with_another_key_encryption_key_refuses_to_start,
    keys_of_the_earlier_file_layout_are_imported_once,
);
