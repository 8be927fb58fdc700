//! Dynamic client registration (RFC 7591) and its management (RFC 7592): off unless configured, only
//! with an initial access token a super admin issued, metadata checked field by field, and a registered
//! app that signs people in like any other — until it deletes itself.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use yunid::services::registry::NewClient;

use crate::common::rp::Rp;
use crate::common::wire::{self, refresh, sign_in};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/cb";

async fn enabled(backend: Backend) -> Env {
    Env::start_with(backend, |c| c.dynamic_registration = true).await
}

/// An automation client holding `scope`, and its access token.
async fn admin_token(env: &Env, scope: &str) -> String {
    let client = env
        .client_with(NewClient {
            name: format!("admin {scope}"),
            scopes: vec![scope.to_owned()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let (status, res) = wire::token(
        &env.base,
        &client,
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["access_token"].as_str().unwrap().to_owned()
}

/// A call with an optional bearer token and JSON body: status, `WWW-Authenticate`, body.
async fn call(
    env: &Env,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = http().request(method, env.url(path));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A super admin issues an initial access token; returns (id, token).
async fn issue(env: &Env, admin: &str, body: Value) -> (String, String) {
    let (s, _, t) = call(
        env,
        Method::POST,
        "/admin/api/registration-tokens",
        Some(admin),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    (
        t["id"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

async fn register(env: &Env, token: Option<&str>, body: Value) -> (StatusCode, String, Value) {
    call(env, Method::POST, "/connect/register", token, Some(body)).await
}

fn minimal() -> Value {
    json!({ "redirect_uris": [CALLBACK] })
}

/// The answer is `401 invalid_token` with a Bearer challenge naming the error.
fn assert_invalid_token((status, challenge, body): &(StatusCode, String, Value), case: &str) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{case}: challenge {challenge:?}"
    );
    assert_eq!(body["error"], "invalid_token", "{case}: {body}");
}

async fn discovery(env: &Env) -> Value {
    http()
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn registration_is_off_by_default(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (id, token) = issue(&env, &admin, json!({})).await;
    assert!(!id.is_empty());
    let (s, _, _) = register(&env, Some(&token), minimal()).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no registration endpoint when it is off"
    );
    let (s, _, _) = call(
        &env,
        Method::GET,
        "/connect/register/anything",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let doc = discovery(&env).await;
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");

    let on = enabled(backend).await;
    assert_eq!(
        discovery(&on).await["registration_endpoint"],
        on.url("/connect/register")
    );
}

async fn registration_needs_a_usable_initial_access_token(backend: Backend) {
    let env = enabled(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;

    assert_invalid_token(&register(&env, None, minimal()).await, "missing");
    assert_invalid_token(&register(&env, Some("not-a-token"), minimal()).await, "wrong");
    // A token used up after max_uses registrations.
    let (twice_id, twice) = issue(&env, &admin, json!({ "max_uses": 2, "note": "两个应用" })).await;
    for _ in 0..2 {
        let (s, _, c) = register(&env, Some(&twice), minimal()).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
    }
    assert_invalid_token(&register(&env, Some(&twice), minimal()).await, "used up");
    // A refused body does not spend a use.
    let (_, once) = issue(&env, &admin, json!({})).await;
    let (s, _, _) = register(&env, Some(&once), json!({ "redirect_uris": [] })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, c) = register(&env, Some(&once), minimal()).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_invalid_token(
        &register(&env, Some(&once), minimal()).await,
        "default max_uses is 1",
    );
    // Revoked.
    let (revoked_id, revoked) = issue(&env, &admin, json!({ "max_uses": 5 })).await;
    let path = format!("/admin/api/registration-tokens/{revoked_id}/revoke");
    let (s, _, r) = call(&env, Method::POST, &path, Some(&admin), None).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("revoked")),
        "{r}"
    );
    assert_invalid_token(&register(&env, Some(&revoked), minimal()).await, "revoked");
    // Expired.
    let (_, short) = issue(&env, &admin, json!({ "expires_in": 60, "max_uses": 5 })).await;
    let (s, _, c) = register(&env, Some(&short), minimal()).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    env.app.clock.advance(61);
    assert_invalid_token(&register(&env, Some(&short), minimal()).await, "expired");

    // The list shows what happened to each token, never the token itself.
    let admin = admin_token(&env, "yunid:admin").await;
    let (s, _, list) = call(
        &env,
        Method::GET,
        "/admin/api/registration-tokens",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let text = list.to_string();
    for secret in [&twice, &once, &revoked, &short] {
        assert!(!text.contains(secret.as_str()), "the list never shows a token");
    }
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 4);
    let twice_row = tokens.iter().find(|t| t["id"] == twice_id.as_str()).unwrap();
    assert_eq!(twice_row["uses"], 2);
    assert_eq!(twice_row["status"], "used_up");
    assert_eq!(twice_row["note"], "两个应用");
    let statuses: Vec<&str> = tokens.iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains(&"revoked") && statuses.contains(&"expired"),
        "{statuses:?}"
    );
}

async fn bad_metadata_is_refused_naming_the_field(backend: Backend) {
    let env = enabled(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({ "max_uses": 100 })).await;
    let with = |k: &str, v: Value| {
        let mut b = minimal();
        b[k] = v;
        b
    };
    let redirect = "invalid_redirect_uri";
    let meta = "invalid_client_metadata";
    let cases = [
        (json!({ "client_name": "no redirect" }), redirect, "redirect_uris"),
        (
            with("redirect_uris", json!("https://rp.example.cn/cb")),
            redirect,
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["/relative/cb"])),
            redirect,
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["https://rp.example.cn/cb#frag"])),
            redirect,
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["http://rp.example.cn/cb"])),
            redirect,
            "redirect_uris",
        ),
        (
            with(
                "redirect_uris",
                json!(["https://a.example.cn/cb", "https://b.example.cn/cb"]),
            ),
            redirect,
            "redirect_uris",
        ),
        (
            with("application_type", json!("native"))
                .tap(|b| b["redirect_uris"] = json!(["https://rp.example.cn/cb"])),
            redirect,
            "redirect_uris",
        ),
        (
            with("response_types", json!(["code", "token"])),
            meta,
            "response_types",
        ),
        (
            with("grant_types", json!(["authorization_code", "client_credentials"])),
            meta,
            "grant_types",
        ),
        (
            with("grant_types", json!(["authorization_code", "password"])),
            meta,
            "grant_types",
        ),
        (with("grant_types", json!(["refresh_token"])), meta, "grant_types"),
        (
            with("token_endpoint_auth_method", json!("none")),
            meta,
            "token_endpoint_auth_method",
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            meta,
            "jwks",
        ),
        (
            with("jwks_uri", json!("http://rp.example.cn/jwks"))
                .tap(|b| b["token_endpoint_auth_method"] = json!("private_key_jwt")),
            meta,
            "jwks_uri",
        ),
        (
            with("jwks_uri", json!("https://rp.example.cn/jwks"))
                .tap(|b| b["token_endpoint_auth_method"] = json!("private_key_jwt"))
                .tap(|b| b["jwks"] = json!({ "keys": [] })),
            meta,
            "jwks_uri",
        ),
        (with("scope", json!("openid identity")), meta, "scope"),
        (with("scope", json!("openid licences")), meta, "scope"),
        (with("scope", json!("openid yunid:admin")), meta, "scope"),
        (
            with("post_logout_redirect_uris", json!(["ftp://rp.example.cn/bye"])),
            meta,
            "post_logout_redirect_uris",
        ),
        (
            with("backchannel_logout_uri", json!("http://rp.example.cn/bc")),
            meta,
            "backchannel_logout_uri",
        ),
        (
            with("backchannel_logout_session_required", json!("yes")),
            meta,
            "backchannel_logout_session_required",
        ),
        (with("client_name", json!(42)), meta, "client_name"),
        (
            with("client_name#zh CN", json!("应用")),
            meta,
            "client_name#zh CN",
        ),
        (with("subject_type", json!("anonymous")), meta, "subject_type"),
        (
            with(
                "sector_identifier_uri",
                json!("https://rp.example.cn/sector.json"),
            ),
            meta,
            "sector_identifier_uri",
        ),
        (
            with("id_token_signed_response_alg", json!("none")),
            meta,
            "id_token_signed_response_alg",
        ),
        (
            with("id_token_signed_response_alg", json!("HS256")),
            meta,
            "id_token_signed_response_alg",
        ),
        (
            with("application_type", json!("desktop")),
            meta,
            "application_type",
        ),
        (with("logo_uri", json!("javascript:alert(1)")), meta, "logo_uri"),
        (with("contacts", json!("ops@rp.example.cn")), meta, "contacts"),
        (json!(["not", "an", "object"]), meta, "body"),
    ];
    for (body, code, field) in cases {
        let (s, _, e) = register(&env, Some(&token), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(e["error"], code, "{body}: {e}");
        let description = e["error_description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with(&format!("{field}:")),
            "{body}: the description names {field}: {description}"
        );
    }
    // None of those spent the token's uses.
    let (s, _, list) = call(
        &env,
        Method::GET,
        "/admin/api/registration-tokens",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["tokens"][0]["uses"], 0);
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

fn test_client(registered: &Value, redirect_uri: &str) -> TestClient {
    TestClient {
        id: registered["client_id"].as_str().unwrap().to_owned(),
        secret: registered["client_secret"].as_str().unwrap().to_owned(),
        redirect_uri: redirect_uri.to_owned(),
    }
}

fn app_metadata() -> Value {
    json!({
        "redirect_uris": [CALLBACK],
        "client_name": "办事大厅",
        "client_name#en": "Service Hall",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile phone offline_access",
        "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
        "contacts": ["ops@hall.example.cn"],
        "policy_uri": "https://hall.example.cn/privacy",
        "id_token_signed_response_alg": "ES256",
        "x_vendor_extension": "ignored",
    })
}

async fn registered_app_signs_a_citizen_in_and_refreshes(backend: Backend) {
    let env = enabled(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (token_id, token) = issue(&env, &admin, json!({ "department": "tax" })).await;

    let (s, _, reg) = register(&env, Some(&token), app_metadata()).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    assert!(
        reg["client_secret"].as_str().is_some_and(|x| x.len() >= 43),
        "{reg}"
    );
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert!(
        reg["client_id_issued_at"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    assert!(
        reg["registration_access_token"]
            .as_str()
            .is_some_and(|x| x.len() >= 43)
    );
    let client_id = reg["client_id"].as_str().unwrap();
    assert_eq!(
        reg["registration_client_uri"],
        env.url(&format!("/connect/register/{client_id}"))
    );
    assert_eq!(reg["client_name#en"], "Service Hall");
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["response_types"], json!(["code"]));
    assert_eq!(reg["subject_type"], "pairwise");
    assert_eq!(reg["id_token_signed_response_alg"], "ES256");
    assert_eq!(reg["contacts"], json!(["ops@hall.example.cn"]));
    assert!(
        reg.get("x_vendor_extension").is_none(),
        "unknown metadata is not echoed"
    );

    // A standard RP library, discovering the provider, signs Alice in with code + PKCE and refreshes.
    let client = test_client(&reg, CALLBACK);
    let rp = Rp::discover(&env.base, &client).await;

    // Its name is its own choice: the consent page says the app registered itself and shows where it
    // sends Alice. An app an administrator registered carries no such note.
    let notice = yunid::http::i18n::ZH.consent_self_registered;
    let base = env.base.clone();
    let consent_page = |rp: Rp| {
        let base = base.clone();
        async move {
            let look = Browser::new(&base);
            let page = look.get(rp.start(&["profile"]).url.as_str()).await;
            let page = look.login(&page, ALICE_ID, PASSWORD).await;
            assert!(page.is_consent());
            page.html().2.to_owned()
        }
    };
    let body = consent_page(Rp::discover(&env.base, &client).await).await;
    assert!(
        body.contains(notice) && body.contains("<strong>127.0.0.1</strong>"),
        "{body}"
    );
    let reviewed = env.client(CALLBACK).await;
    let body = consent_page(Rp::discover(&env.base, &reviewed).await).await;
    assert!(!body.contains(notice), "{body}");

    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile", "phone"]).await;
    let (header, claims) = wire::jwt_parts(&signed.id_token());
    assert_eq!(header["alg"], "ES256", "the registered ID token algorithm");
    assert_eq!(claims["aud"], client_id);
    let verifier = rp.client.id_token_verifier().set_allowed_algs(vec![
        openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]);
    use openidconnect::TokenResponse;
    signed
        .tokens
        .id_token()
        .unwrap()
        .claims(&verifier, &signed.nonce)
        .expect("the ID token verifies");
    let (s, info) = wire::userinfo(&env.base, &signed.access_token()).await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(info["phone_number"], "+8613800138000");
    let refreshed = refresh(&rp, &signed.refresh_token(), &[]).await.expect("refresh");
    let (access, _) = wire::pair(&refreshed);
    assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);

    // The app belongs to the token's department: that department's admin manages it; the use is audited.
    let tax_admin = admin_token(&env, "yunid:dept:tax").await;
    let rotate = format!("/admin/api/clients/{client_id}/rotate-secret");
    let (s, _, r) = call(&env, Method::POST, &rotate, Some(&tax_admin), None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (_, _, audit) = call(
        &env,
        Method::GET,
        "/admin/api/audit?action=client.register",
        Some(&admin),
        None,
    )
    .await;
    let event = &audit["events"][0];
    assert_eq!(event["client_id"], client_id, "{audit}");
    assert_eq!(event["actor"], format!("registration_token:{token_id}"));
    assert_eq!(event["outcome"], "success");
}

/// A P-256 key: its public JWK, and a signed client assertion (RFC 7523) for `client_id`.
fn app_key() -> (Value, impl Fn(&str, &str) -> String) {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "x": wire::b64(&point[1..33]), "y": wire::b64(&point[33..]),
        "kid": "app-key-1", "alg": "ES256", "use": "sig",
    });
    let der = pkcs8.as_ref().to_vec();
    let assertion = move |client_id: &str, audience: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("app-key-1".into());
        let claims = json!({ "iss": client_id, "sub": client_id, "aud": audience, "exp": now + 60,
            "iat": now, "jti": yunid::crypto::random_token() });
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&der)).unwrap()
    };
    (jwk, assertion)
}

/// Alice signs in at a self-registered app (code flow with PKCE, `openid profile`): the code and its
/// verifier.
async fn code_for(env: &Env, client_id: &str) -> (String, String) {
    let (verifier, challenge) = crate::common::pkce();
    let mut authorize = url::Url::parse(&env.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "openid profile")
        .append_pair("state", "s1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let back = Browser::new(&env.base)
        .sign_in(authorize.as_str(), ALICE_ID, PASSWORD)
        .await;
    (back.params()["code"].clone(), verifier)
}

/// The code redeemed by a client that authenticates with a private_key_jwt `assertion`.
async fn redeem_with_assertion(env: &Env, code: &str, verifier: &str, assertion: &str) -> reqwest::Response {
    http()
        .post(env.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
            (
                "client_assertion_type",
                yunid::services::oidc::client_auth::ASSERTION_TYPE,
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

async fn app_registered_with_private_key_jwt_redeems_a_code_with_its_assertion(backend: Backend) {
    let env = enabled(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({ "max_uses": 2 })).await;
    let (jwk, assertion) = app_key();

    let mut leaked = jwk.clone();
    leaked["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI".into();
    let with_keys = |keys: Value| {
        json!({ "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": keys } })
    };
    let (s, _, e) = register(&env, Some(&token), with_keys(json!([leaked]))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "{e}"
    );
    assert!(
        e["error_description"].as_str().unwrap().starts_with("jwks:"),
        "{e}"
    );

    let (s, _, reg) = register(&env, Some(&token), with_keys(json!([jwk]))).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    assert!(
        reg.get("client_secret").is_none(),
        "no secret for a key-authenticated client: {reg}"
    );
    assert!(reg.get("client_secret_expires_at").is_none());
    assert_eq!(reg["jwks"]["keys"][0]["kid"], "app-key-1");
    let client_id = reg["client_id"].as_str().unwrap();

    let (code, verifier) = code_for(&env, client_id).await;
    let res = redeem_with_assertion(&env, &code, &verifier, &assertion(client_id, &env.url("/token"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["id_token"].as_str().is_some(), "{tokens}");
}

async fn app_registered_with_a_jwks_uri_redeems_a_code_with_its_assertion(backend: Backend) {
    use crate::common::jwks_server::{AppKey, JwksServer, set};
    let env = enabled(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({ "max_uses": 1 })).await;
    let key = AppKey::new("app-key-1");
    let server = JwksServer::start(set(&[&key])).await;
    let jwks_uri = server.url("/jwks");

    let (s, _, reg) = register(
        &env,
        Some(&token),
        json!({ "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": jwks_uri }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["jwks_uri"], jwks_uri.as_str(), "echoed: {reg}");
    assert!(reg.get("jwks").is_none(), "{reg}");
    assert!(reg.get("client_secret").is_none(), "{reg}");
    let client_id = reg["client_id"].as_str().unwrap();
    assert_eq!(
        server.hits(),
        0,
        "keys are fetched when needed, not at registration"
    );

    let (code, verifier) = code_for(&env, client_id).await;
    let assertion = key.assertion(client_id, &env.url("/token"), env.app.now());
    let res = redeem_with_assertion(&env, &code, &verifier, &assertion).await;
    let status = res.status();
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["id_token"].as_str().is_some(), "{tokens}");
    assert_eq!(server.hits(), 1);
}

async fn registered_app_reads_updates_and_deletes_its_registration(backend: Backend) {
    let env = enabled(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({})).await;
    let (_, _, reg) = register(&env, Some(&token), app_metadata()).await;
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    let uri = format!("/connect/register/{client_id}");
    let first = reg["registration_access_token"].as_str().unwrap().to_owned();

    // Read (RFC 7592 §2.1): the registration as registered, a fresh management token, no secret.
    assert_invalid_token(
        &call(&env, Method::GET, &uri, Some("wrong"), None).await,
        "wrong registration access token",
    );
    assert_invalid_token(&call(&env, Method::GET, &uri, None, None).await, "none");
    assert_invalid_token(
        &call(
            &env,
            Method::GET,
            "/connect/register/nosuchclient",
            Some(&first),
            None,
        )
        .await,
        "another client's path",
    );
    let (s, _, read) = call(&env, Method::GET, &uri, Some(&first), None).await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(read["client_id"], client_id.as_str());
    assert_eq!(read["client_name"], "办事大厅");
    assert_eq!(read["redirect_uris"], json!([CALLBACK]));
    assert!(
        read.get("client_secret").is_none(),
        "the secret is never shown again"
    );
    let second = read["registration_access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_invalid_token(
        &call(&env, Method::GET, &uri, Some(&first), None).await,
        "a spent registration access token",
    );

    // Update (§2.2): the full metadata with client_id; a new redirect URI replaces the old.
    let browser = Browser::new(&env.base);
    let old = test_client(&reg, CALLBACK);
    let old_rp = Rp::discover(&env.base, &old).await;
    sign_in(&old_rp, &browser, &["profile"]).await;

    let new_callback = "http://127.0.0.1:9/new-cb";
    let mut body = app_metadata();
    body["redirect_uris"] = json!([new_callback]);
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(&second), Some(body.clone())).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "without client_id: {e}"
    );
    body["client_id"] = client_id.clone().into();
    body["client_secret"] = "a-secret-of-my-choosing".into();
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(&second), Some(body.clone())).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "chosen secret: {e}"
    );
    body["scope"] = "openid profile identity".into();
    body["client_secret"] = secret.clone().into();
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(&second), Some(body.clone())).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "identity scope: {e}"
    );
    body["scope"] = "openid profile offline_access".into();
    // Pairwise subjects depend on the host and the subject type: neither changes after registration.
    let mut moved = body.clone();
    moved["redirect_uris"] = json!(["https://elsewhere.example.cn/cb"]);
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(&second), Some(moved)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")),
        "moved: {e}"
    );
    let mut public = body.clone();
    public["subject_type"] = "public".into();
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(&second), Some(public)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "public: {e}"
    );
    let (s, _, updated) = call(&env, Method::PUT, &uri, Some(&second), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["redirect_uris"], json!([new_callback]));
    assert_eq!(updated["scope"], "openid profile offline_access");
    assert!(
        updated.get("client_secret").is_none(),
        "the secret did not change"
    );
    let third = updated["registration_access_token"].as_str().unwrap().to_owned();

    let new = TestClient {
        redirect_uri: new_callback.into(),
        ..old.clone()
    };
    let new_rp = Rp::discover(&env.base, &new).await;
    let signed = sign_in(&new_rp, &browser, &["profile"]).await;
    let refresh_token = signed.refresh_token();
    let attempt = old_rp.start(&["profile"]);
    let page = browser.get(attempt.url.as_str()).await;
    let (_, status, _) = page.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "the old redirect URI is refused");
    assert!(
        wire::userinfo(&env.base, &signed.access_token())
            .await
            .0
            .is_success()
    );

    // Delete (§2.3): 204; the app's tokens stop working, and so does the management token.
    let (s, _, _) = call(&env, Method::DELETE, &uri, Some(&second), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a spent token cannot delete");
    let (s, _, _) = call(&env, Method::DELETE, &uri, Some(&third), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        wire::userinfo(&env.base, &signed.access_token()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(refresh(&new_rp, &refresh_token, &[]).await.is_err());
    let (s, _) = wire::token(
        &env.base,
        &new,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the client no longer authenticates");
    let page = browser.get(new_rp.start(&["profile"]).url.as_str()).await;
    assert_eq!(page.html().1, StatusCode::BAD_REQUEST, "no more sign-ins");
    for method in [Method::GET, Method::DELETE] {
        assert_invalid_token(
            &call(&env, method, &uri, Some(&third), None).await,
            "after deletion",
        );
    }
    let (_, _, audit) = call(
        &env,
        Method::GET,
        &format!("/admin/api/audit?client_id={client_id}"),
        Some(&admin),
        None,
    )
    .await;
    let actions: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    for expected in [
        ("client.register", "success"),
        ("client.registration.read", "success"),
        ("client.registration.read", "refused"),
        ("client.registration.update", "invalid"),
        ("client.registration.update", "success"),
        ("client.registration.delete", "success"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} audited: {actions:?}");
    }
}

/// `yunid registration-token issue|revoke` against this environment's database; stdout.
async fn cli(env: &Env, args: &[&str]) -> String {
    let out = crate::ops::yunid()
        .arg("registration-token")
        .args(args)
        .env("YUNID_DATABASE_URL", &env.db.url)
        .env("YUNID_KEYS_DIR", env.keys.path())
        .env("USER", "registrar")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn operator_issues_and_revokes_initial_access_tokens_on_the_command_line(backend: Backend) {
    let env = enabled(backend).await;
    let line = |out: &str, key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap()
            .to_owned()
    };
    let issued = cli(&env, &["issue", "--department", "tax", "--note", "运维"]).await;
    let (s, _, reg) = register(&env, Some(&line(&issued, "token")), minimal()).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    let client = env
        .app
        .db
        .client(reg["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.department, "tax");

    let other = cli(&env, &["issue", "--max-uses", "3"]).await;
    cli(&env, &["revoke", &line(&other, "id")]).await;
    assert_invalid_token(
        &register(&env, Some(&line(&other, "token")), minimal()).await,
        "revoked by the CLI",
    );
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, _, audit) = call(
        &env,
        Method::GET,
        "/admin/api/audit?actor=cli:registrar",
        Some(&admin),
        None,
    )
    .await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "registration_token.issue")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"registration_token.revoke"), "{actions:?}");
}

async fn only_super_admins_issue_initial_access_tokens(backend: Backend) {
    let env = enabled(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (id, _) = issue(&env, &admin, json!({})).await;
    let revoke = format!("/admin/api/registration-tokens/{id}/revoke");
    for scope in ["yunid:dept:tax", "yunid:counter", "yunid:audit"] {
        let other = admin_token(&env, scope).await;
        let (s, _, p) = call(
            &env,
            Method::POST,
            "/admin/api/registration-tokens",
            Some(&other),
            Some(json!({ "department": "tax" })),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope}: {p}");
        assert_eq!(p["status"], 403);
        let (s, _, _) = call(
            &env,
            Method::GET,
            "/admin/api/registration-tokens",
            Some(&other),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope} lists");
        let (s, _, _) = call(&env, Method::POST, &revoke, Some(&other), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope} revokes");
    }
    // Bad input is a problem naming the field; unknown fields are refused.
    let path = "/admin/api/registration-tokens";
    for (body, field) in [
        (json!({ "max_uses": 0 }), "max_uses"),
        (json!({ "expires_in": 10 }), "expires_in"),
    ] {
        let (s, _, p) = call(&env, Method::POST, path, Some(&admin), Some(body)).await;
        assert_eq!(
            (s, p["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{p}"
        );
    }
    let (s, _, _) = call(
        &env,
        Method::POST,
        path,
        Some(&admin),
        Some(json!({ "scopes": "all" })),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(
        &env,
        Method::POST,
        "/admin/api/registration-tokens/nosuch/revoke",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The admin API's OpenAPI document describes these endpoints.
    let (_, _, doc) = call(&env, Method::GET, "/admin/api/openapi.json", None, None).await;
    for path in [
        "/admin/api/registration-tokens",
        "/admin/api/registration-tokens/{id}/revoke",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }

    let (_, _, audit) = call(
        &env,
        Method::GET,
        "/admin/api/audit?action=registration_token.issue",
        Some(&admin),
        None,
    )
    .await;
    let outcomes: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "success").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "forbidden").count(),
        3,
        "{outcomes:?}"
    );
}

async fn self_registered_urls_yunid_calls_must_be_https_on_a_public_host(backend: Backend) {
    // As in production: no internal network allowed for requests made for apps.
    let env = Env::start_with(backend, |c| {
        c.dynamic_registration = true;
        c.client_outbound_allow.clear();
    })
    .await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({})).await;
    let with = |field: &str, uri: &str| {
        let mut body = minimal();
        body[field] = json!(uri);
        if field == "jwks_uri" {
            body["token_endpoint_auth_method"] = json!("private_key_jwt");
        }
        body
    };
    let refused = [
        ("backchannel_logout_uri", "http://127.0.0.1:9/bc"),
        ("backchannel_logout_uri", "http://rp.example.cn/bc"),
        ("backchannel_logout_uri", "https://localhost/bc"),
        ("backchannel_logout_uri", "https://10.0.0.8/bc"),
        ("backchannel_logout_uri", "https://[::1]/bc"),
        ("jwks_uri", "http://127.0.0.1:9/jwks"),
        ("jwks_uri", "https://169.254.169.254/latest/meta-data"),
    ];
    for (field, uri) in refused {
        let (s, _, e) = register(&env, Some(&token), with(field, uri)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"], "invalid_client_metadata", "{uri}: {e}");
        let why = e["error_description"].as_str().unwrap_or_default();
        assert!(why.starts_with(field), "{uri}: {why}");
    }
    // A public https endpoint is registered, and an update cannot then move it inside.
    let public = "https://rp.example.cn/bc";
    let (s, _, reg) = register(&env, Some(&token), with("backchannel_logout_uri", public)).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["backchannel_logout_uri"], public);
    let client_id = reg["client_id"].as_str().unwrap();
    let management = reg["registration_access_token"].as_str().unwrap();
    let mut update = with("backchannel_logout_uri", "http://127.0.0.1:9/bc");
    update["client_id"] = json!(client_id);
    let uri = format!("/connect/register/{client_id}");
    let (s, _, e) = call(&env, Method::PUT, &uri, Some(management), Some(update)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "invalid_client_metadata", "{e}");
    let client = env.app.db.client(client_id).await.unwrap().unwrap();
    assert_eq!(client.backchannel_logout_uri.as_deref(), Some(public));
}

/// README: public subjects (one identifier for a person across apps) need an administrator. Whoever holds
/// an initial access token cannot choose them; the token is not spent on the refusal.
async fn self_registration_cannot_choose_public_subjects(backend: Backend) {
    let env = enabled(backend).await;
    let admin = admin_token(&env, "yunid:admin").await;
    let (_, token) = issue(&env, &admin, json!({ "department": "tax", "max_uses": 1 })).await;
    let mut public = minimal();
    public["subject_type"] = json!("public");
    let (s, _, e) = register(&env, Some(&token), public).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "invalid_client_metadata", "{e}");
    assert!(
        e["error_description"].as_str().unwrap().contains("subject_type"),
        "{e}"
    );
    let (s, _, reg) = register(&env, Some(&token), minimal()).await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["subject_type"], "pairwise");
}

on_both_backends!(
    self_registration_cannot_choose_public_subjects,
    self_registered_urls_yunid_calls_must_be_https_on_a_public_host,
    registration_is_off_by_default,
    registration_needs_a_usable_initial_access_token,
    bad_metadata_is_refused_naming_the_field,
    registered_app_signs_a_citizen_in_and_refreshes,
    app_registered_with_private_key_jwt_redeems_a_code_with_its_assertion,
    registered_app_reads_updates_and_deletes_its_registration,
    app_registered_with_a_jwks_uri_redeems_a_code_with_its_assertion,
    only_super_admins_issue_initial_access_tokens,
    operator_issues_and_revokes_initial_access_tokens_on_the_command_line,
);
