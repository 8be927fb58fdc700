//! Attacks, each a story of what an attacker tries and what yunid does: forged JWTs wherever yunid reads
//! one (`alg: none`, RS256→HS256 key confusion, `kid` injection, keys carried in the token), open
//! redirects, CSRF on every form, session fixation, framing, CORS, user enumeration, oversized and
//! deeply nested input, and header injection. None of the answers may be a server error.
//!
//! Covered by other suites and not repeated here: code replay revoking what the code issued and fifty
//! concurrent redemptions (token_errors.rs), refresh-token replay revoking the family (tokens.rs
//! `refresh_rotates_tokens_and_reuse_revokes_the_family`), client assertions that are unsigned, HS256
//! with the client's EC public key, expired or replayed (tokens.rs
//! `private_key_jwt_clients_prove_themselves_with_fresh_signed_assertions`), a fresh session id at
//! password login (authorize_errors.rs `every_login_gets_a_new_session_id`), the same message for a
//! wrong password and an unknown account (authorize_errors.rs), the same page for an unregistered phone
//! (login_methods.rs `an_unregistered_phone_gets_the_same_page_and_no_sms`), a passkey answer for
//! another origin (passkeys.rs).

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::CreationChallengeResponse;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::common::browser::field;
use crate::common::rp::Rp;
use crate::common::sms::SmsInbox;
use crate::common::wire::{self, SignedIn, cookie, sign_in};
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce, resident_id,
};
use crate::on_both_backends;
use crate::passkeys;

const CALLBACK: &str = "https://app.example.gov.cn/cb";
const AFTER_LOGOUT: &str = "https://app.example.gov.cn/logged-out";
const SMS_SECRET: &str = "sms-webhook-secret-for-attack-tests";

/// `kid` values that try to reach a file or break out of an SQL string.
const KID_INJECTIONS: [&str; 6] = [
    "../../../../../../etc/passwd",
    "../keys/secret",
    "/dev/null",
    "' OR '1'='1",
    "x' UNION SELECT 'secret' --",
    "kid\0with-nul",
];

/// A compact JWS with this header and claims and a signature made of `sig`.
fn jws(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        wire::b64(header.to_string().as_bytes()),
        wire::b64(claims.to_string().as_bytes()),
        wire::b64(sig)
    )
}

/// An HS256 JWS with `header` (its `alg` replaced) and `claims`, keyed with `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let mut header = header.clone();
    header["alg"] = json!("HS256");
    let signing_input = format!(
        "{}.{}",
        wire::b64(header.to_string().as_bytes()),
        wire::b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", wire::b64(tag.as_ref()))
}

/// Everything an attacker could use as "the public key" for an HMAC: the JWK itself, and for RSA the
/// SPKI and PKCS#1 encodings (PEM and DER), for EC the point.
fn public_key_encodings(jwk: &Value) -> Vec<Vec<u8>> {
    let mut out = vec![jwk.to_string().into_bytes()];
    let field = |name: &str| wire::unb64(jwk[name].as_str().unwrap_or_default());
    match jwk["kty"].as_str() {
        Some("RSA") => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&field("n")),
                rsa::BigUint::from_bytes_be(&field("e")),
            )
            .unwrap();
            out.push(key.to_public_key_pem(LineEnding::LF).unwrap().into_bytes());
            out.push(key.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes());
            out.push(key.to_public_key_der().unwrap().as_bytes().to_vec());
            out.push(key.to_pkcs1_der().unwrap().as_bytes().to_vec());
        }
        Some("EC") => {
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            out.push(point[1..].to_vec());
            out.push(point);
        }
        Some("OKP") => out.push(field("x")),
        _ => {}
    }
    out
}

/// Forgeries of a token we issued: unsigned, HMAC-keyed with each published key, the real signature
/// under an injected `kid`, and signed by the attacker's own key carried in `jwk` or named by `jku`.
/// Each is (what, token).
fn forgeries(token: &str, jwks: &Value, tamper: impl Fn(&mut Value)) -> Vec<(String, String)> {
    let (header, mut claims) = wire::jwt_parts(token);
    tamper(&mut claims);
    let mut out = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let mut h = header.clone();
        h["alg"] = json!(alg);
        out.push((format!("alg {alg}"), jws(&h, &claims, b"")));
    }
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    no_kid["alg"] = json!("none");
    out.push(("alg none without kid".into(), jws(&no_kid, &claims, b"")));
    for key in jwks["keys"].as_array().unwrap() {
        for (n, secret) in public_key_encodings(key).into_iter().enumerate() {
            let mut h = header.clone();
            h["kid"] = key["kid"].clone();
            out.push((
                format!("HS256 keyed with encoding {n} of {}", key["kid"]),
                hs256(&h, &claims, &secret),
            ));
        }
    }
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let payload = signed.split('.').nth(1).unwrap();
    for kid in KID_INJECTIONS {
        let mut h = header.clone();
        h["kid"] = json!(kid);
        let forged = format!("{}.{payload}.{sig}", wire::b64(h.to_string().as_bytes()));
        out.push((format!("kid {kid:?}"), forged));
    }
    let (attacker_jwk, sign) = attacker_key();
    for (what, extra) in [
        ("embedded jwk", json!({ "jwk": attacker_jwk })),
        ("jku", json!({ "jku": "http://127.0.0.1:9/attacker/jwks.json" })),
        ("x5u", json!({ "x5u": "http://127.0.0.1:9/attacker/cert.pem" })),
    ] {
        for kid in [header["kid"].clone(), attacker_jwk["kid"].clone()] {
            let mut h = header.clone();
            h["alg"] = json!("ES256");
            h["kid"] = kid;
            for (k, v) in extra.as_object().unwrap() {
                h[k] = v.clone();
            }
            let input = format!(
                "{}.{}",
                wire::b64(h.to_string().as_bytes()),
                wire::b64(claims.to_string().as_bytes())
            );
            out.push((
                format!("{what} signed by the attacker"),
                format!("{input}.{}", wire::b64(&sign(&input))),
            ));
        }
    }
    out
}

/// An EC key of the attacker's: its public JWK and a signing function.
fn attacker_key() -> (Value, impl Fn(&str) -> Vec<u8>) {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "x": wire::b64(&point[1..33]), "y": wire::b64(&point[33..]),
        "kid": "attacker-key", "alg": "ES256", "use": "sig",
    });
    let sign = move |input: &str| {
        pair.sign(&SystemRandom::new(), input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    };
    (jwk, sign)
}

/// A provider with Alice signed in to an app (offline access, so the grant outlives the session).
async fn alice_signed_in(backend: Backend) -> (Env, TestClient, Rp, Browser, SignedIn) {
    let env = Env::start(backend).await;
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
    let browser = Browser::new(&env.base);
    let signed = sign_in(&rp, &browser, &["profile"]).await;
    (env, client, rp, browser, signed)
}

/// A silent authorization in `browser`: Ok(code) or Err(error).
async fn silent(rp: &Rp, browser: &Browser, extra: &[(&str, &str)]) -> Result<String, String> {
    let mut url = rp.start(&["profile"]).url;
    url.query_pairs_mut()
        .append_pair("prompt", "none")
        .extend_pairs(extra);
    let params = browser.get(url.as_str()).await.params();
    match (params.get("code"), params.get("error")) {
        (Some(code), None) => Ok(code.clone()),
        (None, Some(error)) => Err(error.clone()),
        _ => panic!("neither code nor error: {params:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Forged JWTs

async fn forged_access_tokens_get_nothing_from_userinfo(backend: Backend) {
    let (env, _, _, _, signed) = alice_signed_in(backend).await;
    let access = signed.access_token();
    assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);
    let jwks = wire::jwks(&env.base).await;
    // The forger also extends the lifetime and claims every scope.
    let forged = forgeries(&access, &jwks, |claims| {
        claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
        claims["scope"] = json!("openid profile phone identity");
    });
    assert!(forged.len() >= 25, "{}", forged.len());
    for (what, token) in forged {
        let res = http()
            .get(env.url("/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }
    // Still serving the real token.
    assert_eq!(wire::userinfo(&env.base, &access).await.0, StatusCode::OK);
}

async fn forged_id_token_hints_neither_sign_in_nor_log_out(backend: Backend) {
    let (env, client, rp, browser, signed) = alice_signed_in(backend).await;
    let hint = signed.id_token();
    assert!(silent(&rp, &browser, &[("id_token_hint", &hint)]).await.is_ok());
    let jwks = wire::jwks(&env.base).await;
    // Someone else's subject, under Alice's session.
    let forged = forgeries(&hint, &jwks, |claims| claims["sub"] = json!("someone-else"));
    for (what, token) in &forged {
        assert_eq!(
            silent(&rp, &browser, &[("id_token_hint", token)]).await,
            Err("invalid_request".into()),
            "{what}"
        );
        let mut logout = url::Url::parse(&env.url("/logout")).unwrap();
        logout
            .query_pairs_mut()
            .append_pair("id_token_hint", token)
            .append_pair("post_logout_redirect_uri", AFTER_LOGOUT)
            .append_pair("client_id", &client.id);
        let page = browser.get(logout.as_str()).await;
        assert_eq!(page.html().1, StatusCode::BAD_REQUEST, "{what}");
    }
    assert!(
        silent(&rp, &browser, &[]).await.is_ok(),
        "none of that logged Alice out"
    );
}

/// A private_key_jwt service with an RSA key; (client, its public JWK, a signer for any header).
async fn rsa_service(env: &Env) -> (TestClient, Value, impl Fn(&Header, &Value) -> String) {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let public = private.to_public_key();
    let jwk = json!({
        "kty": "RSA", "n": wire::b64(&public.n().to_bytes_be()), "e": wire::b64(&public.e().to_bytes_be()),
        "kid": "app-rsa-1", "alg": "RS256", "use": "sig",
    });
    let client = env
        .client_with(NewClient {
            name: "数据交换服务".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["profile".into()],
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(json!({ "keys": [jwk] }).to_string()),
            ..NewClient::default()
        })
        .await;
    let der = private.to_pkcs1_der().unwrap().as_bytes().to_vec();
    let sign = move |h: &Header, claims: &Value| {
        jsonwebtoken::encode(h, claims, &EncodingKey::from_rsa_der(&der)).unwrap()
    };
    (client, jwk, sign)
}

async fn client_assertions_with_borrowed_keys_injected_kids_or_future_times_are_refused(backend: Backend) {
    let env = Env::start(backend).await;
    let (client, jwk, sign) = rsa_service(&env).await;
    let id = client.id.as_str();
    let now = env.app.now();
    let claims = |jti: &str| json!({ "iss": id, "sub": id, "aud": env.url("/token"), "iat": now, "exp": now + 60, "jti": jti });
    let rs256 = |kid: &str| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.into());
        h
    };
    let refused = |what: String, (status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}");
    };

    // RS256→HS256: the HMAC keyed with the client's registered public key, in every encoding.
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "app-rsa-1" });
    for (n, secret) in public_key_encodings(&jwk).into_iter().enumerate() {
        let forged = hs256(&header, &claims(&format!("hs-{n}")), &secret);
        refused(
            format!("HS256 with encoding {n}"),
            wire::with_assertion(&env.base, id, &forged).await,
        );
    }
    // kid injection, with the client's real signature.
    for (n, kid) in KID_INJECTIONS.iter().enumerate() {
        let assertion = sign(&rs256(kid), &claims(&format!("kid-{n}")));
        refused(
            format!("kid {kid:?}"),
            wire::with_assertion(&env.base, id, &assertion).await,
        );
    }
    // A key carried in the assertion is never used, not even the client's own one.
    let mut with_jwk = rs256("app-rsa-1");
    with_jwk.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
    refused(
        "jwk header".into(),
        wire::with_assertion(&env.base, id, &sign(&with_jwk, &claims("jwk"))).await,
    );
    let mut with_jku = rs256("app-rsa-1");
    with_jku.jku = Some("http://127.0.0.1:9/attacker/jwks.json".into());
    refused(
        "jku header".into(),
        wire::with_assertion(&env.base, id, &sign(&with_jku, &claims("jku"))).await,
    );
    let mut with_x5u = rs256("app-rsa-1");
    with_x5u.x5u = Some("http://127.0.0.1:9/attacker/cert.pem".into());
    refused(
        "x5u header".into(),
        wire::with_assertion(&env.base, id, &sign(&with_x5u, &claims("x5u"))).await,
    );
    // The attacker's own key in `jwk`, and the assertion signed with it.
    let (attacker_jwk, attacker_sign) = attacker_key();
    let h = json!({ "alg": "ES256", "kid": "attacker-key", "jwk": attacker_jwk });
    let input = format!(
        "{}.{}",
        wire::b64(h.to_string().as_bytes()),
        wire::b64(claims("own-key").to_string().as_bytes())
    );
    let forged = format!("{input}.{}", wire::b64(&attacker_sign(&input)));
    refused(
        "the attacker's own embedded key".into(),
        wire::with_assertion(&env.base, id, &forged).await,
    );

    // Not yet valid, issued in the future, or valid for far too long.
    let mut future = claims("nbf");
    future["nbf"] = json!(now + 300);
    future["exp"] = json!(now + 400);
    refused(
        "nbf in 5 minutes".into(),
        wire::with_assertion(&env.base, id, &sign(&rs256("app-rsa-1"), &future)).await,
    );
    let mut issued_later = claims("iat");
    issued_later["iat"] = json!(now + 300);
    refused(
        "iat in 5 minutes".into(),
        wire::with_assertion(&env.base, id, &sign(&rs256("app-rsa-1"), &issued_later)).await,
    );
    let mut long_lived = claims("long");
    long_lived["exp"] = json!(now + 86_400);
    refused(
        "valid for a day".into(),
        wire::with_assertion(&env.base, id, &sign(&rs256("app-rsa-1"), &long_lived)).await,
    );

    // Control: the client's own fresh assertion works, so every refusal above was the attack's doing.
    let (status, body) =
        wire::with_assertion(&env.base, id, &sign(&rs256("app-rsa-1"), &claims("good"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------------------
// Open redirects

/// Redirect targets that try to leave the registered URI `registered` (https://host/path).
fn open_redirect_attempts(registered: &str) -> Vec<String> {
    let rest = registered.strip_prefix("https://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    [
        "//evil.example/cb".to_owned(),
        "https://evil.example/cb".to_owned(),
        format!("https://{host}@evil.example/{path}"),
        format!("https://evil.example\\@{host}/{path}"),
        format!("https://evil.example#@{host}/{path}"),
        format!("https://evil.example?@{host}/{path}"),
        format!("https://{host}.evil.example/{path}"),
        format!("https:\\\\evil.example\\{path}"),
        "/\\evil.example".to_owned(),
        format!("https://{host}/{path}/../../evil"),
        format!("https://{host}/{path}%2F..%2F..%2Fevil"),
        format!("https%3A%2F%2Fevil.example%2F{path}"),
        format!("https://evil.example%2F@{host}/{path}"),
        format!("https://evil.example%00.{host}/{path}"),
        format!("{registered}#@evil.example"),
        format!("{registered}?next=https://evil.example"),
        format!("javascript:alert(document.domain)//{registered}"),
        "data:text/html,<script>alert(1)</script>".to_owned(),
        format!(" {registered}"),
        format!("{registered}\t"),
    ]
    .into()
}

fn assert_no_redirect(headers: &HeaderMap, what: &str) {
    for name in ["location", "refresh"] {
        assert!(
            headers.get(name).is_none(),
            "{what}: {name} {:?}",
            headers.get(name)
        );
    }
}

async fn authorize_never_redirects_to_an_unregistered_uri(backend: Backend) {
    let env = Env::start(backend).await;
    let client = env.client(CALLBACK).await;
    let (_, challenge) = pkce();
    for target in open_redirect_attempts(CALLBACK) {
        for mode in ["query", "form_post"] {
            let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
            url.query_pairs_mut().extend_pairs([
                ("response_type", "code"),
                ("client_id", client.id.as_str()),
                ("redirect_uri", target.as_str()),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("response_mode", mode),
                ("prompt", "none"),
            ]);
            let res = http().get(url).send().await.unwrap();
            let what = format!("{target:?} by {mode}");
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{what}");
            assert_no_redirect(res.headers(), &what);
            let body = res.text().await.unwrap();
            assert!(
                !body.contains("evil.example") && !body.contains("<form"),
                "{what}: {body}"
            );
        }
    }
}

async fn logout_never_redirects_to_an_unregistered_uri(backend: Backend) {
    let (env, client, rp, browser, signed) = alice_signed_in(backend).await;
    let hint = signed.id_token();
    for target in open_redirect_attempts(AFTER_LOGOUT) {
        let mut url = url::Url::parse(&env.url("/logout")).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", &hint)
            .append_pair("client_id", &client.id)
            .append_pair("post_logout_redirect_uri", &target)
            .append_pair("state", "s");
        let res = browser.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{target:?}");
        assert_no_redirect(res.headers(), &target);
        assert!(!res.text().await.unwrap().contains("evil.example"), "{target:?}");
    }
    assert!(silent(&rp, &browser, &[]).await.is_ok(), "still signed in");

    // The language switch goes back to the page it came from, on our own origin only.
    for referer in [
        "https://evil.example/account",
        "https://evil.example//evil.example/x",
        "https://evil.example/\\evil.example/x",
        "https://evil.example/%2F%2Fevil.example",
        "javascript:alert(1)",
    ] {
        let res = http()
            .get(env.url("/lang/en"))
            .header(header::REFERER, referer)
            .send()
            .await
            .unwrap();
        let location = res.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with('/'), "{referer}: {location}");
        assert!(
            !location.starts_with("//") && !location.starts_with("/\\"),
            "{referer}: {location}"
        );
        assert!(!location.contains("evil.example/"), "{referer}: {location}");
    }
}

// ---------------------------------------------------------------------------------------------------
// CSRF

/// Posts `form` to `path` from `browser` (cookies included) and returns the answer's status.
async fn post_status(browser: &Browser, path: &str, form: &[(&str, &str)]) -> StatusCode {
    let res = browser
        .http
        .post(format!("{}{path}", browser.origin))
        .form(form)
        .send()
        .await
        .unwrap();
    res.status()
}

/// The form as sent without a token, and with a made-up one.
fn without_and_with_a_forged_token<'a>(form: &[(&'a str, &'a str)]) -> [Vec<(&'a str, &'a str)>; 2] {
    let mut forged = form.to_vec();
    forged.push(("csrf", "forged-token"));
    [form.to_vec(), forged]
}

async fn sign_in_forms_refuse_posts_without_the_csrf_token(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let url = inbox.url.clone();
    let env = Env::start_with(backend, move |c| {
        c.self_registration = true;
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some(SMS_SECRET.into());
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    // The victim's browser: it has the CSRF cookie and a pending sign-in; the attacker's page lacks
    // only the token.
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let req = field(login.html().2, "req").unwrap();
    let csrf = field(login.html().2, "csrf").unwrap();

    for form in
        without_and_with_a_forged_token(&[("req", &req), ("username", ALICE_ID), ("password", PASSWORD)])
    {
        assert_eq!(
            post_status(&browser, "/login", &form).await,
            StatusCode::FORBIDDEN,
            "/login {form:?}"
        );
    }
    for form in without_and_with_a_forged_token(&[("req", &req), ("phone", ALICE_PHONE)]) {
        assert_eq!(
            post_status(&browser, "/login/sms/send", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    assert!(inbox.calls().is_empty(), "no SMS was sent");

    // A code really sent, then submitted by a forged form: refused, and not used up.
    let sent = browser
        .post(
            "/login/sms/send",
            &[("csrf", &csrf), ("req", &req), ("phone", ALICE_PHONE)],
        )
        .await;
    let attempt = field(sent.html().2, "attempt").unwrap();
    let code = inbox.last_code();
    for form in without_and_with_a_forged_token(&[("req", &req), ("attempt", &attempt), ("code", &code)]) {
        assert_eq!(
            post_status(&browser, "/login/sms/verify", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    let res = browser
        .http
        .post(env.url("/login/passkey/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "/login/passkey/start");
    for form in without_and_with_a_forged_token(&[("req", &req), ("ceremony", "c"), ("credential", "{}")]) {
        assert_eq!(
            post_status(&browser, "/login/passkey/finish", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    let id = resident_id(42);
    for form in without_and_with_a_forged_token(&[("phone", "13900139000")]) {
        assert_eq!(
            post_status(&browser, "/register/code", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(inbox.delivered().len(), 1, "no registration code was sent");
    for form in without_and_with_a_forged_token(&[
        ("attempt", "a"),
        ("code", "123456"),
        ("id_number", &id),
        ("name", "李四"),
        ("phone", "13900139000"),
        ("password", "a long enough passphrase 42"),
    ]) {
        assert_eq!(
            post_status(&browser, "/register", &form).await,
            StatusCode::FORBIDDEN
        );
    }

    // The real code still signs Alice in; then the consent and act-as forms, and logout.
    let page = browser
        .post(
            "/login/sms/verify",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("attempt", &attempt),
                ("code", &code),
            ],
        )
        .await;
    assert!(
        page.is_consent(),
        "the forged forms did not use up the code: {page:?}"
    );
    let consent_req = field(page.html().2, "req").unwrap();
    for form in without_and_with_a_forged_token(&[("req", &consent_req), ("decision", "allow")]) {
        assert_eq!(
            post_status(&browser, "/consent", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    for form in without_and_with_a_forged_token(&[("req", &consent_req), ("acting", "")]) {
        assert_eq!(
            post_status(&browser, "/act-as", &form).await,
            StatusCode::FORBIDDEN
        );
    }
    assert!(
        browser
            .get(&format!("/consent?req={consent_req}"))
            .await
            .is_consent(),
        "consent was not given by the forged form"
    );
    // RP-initiated logout must accept a POST from any app, so a forged confirmation is not a 403: it
    // just asks the person again, and nobody is logged out.
    let back = browser.consent(&page, true).await;
    assert!(back.params().contains_key("code"));
    for form in without_and_with_a_forged_token(&[("confirm", "yes")]) {
        let page = browser.post("/logout", &form).await;
        assert!(page.html().2.contains("action=\"/logout\""), "asked again");
    }
    assert!(silent(&rp, &browser, &[]).await.is_ok(), "still signed in");

    // Registration with the token works: the forged attempts did not take the ID number.
    let page = browser.get("/register").await;
    let token = field(page.html().2, "csrf").unwrap();
    let page = browser
        .post(
            "/register/code",
            &[("csrf", token.as_str()), ("phone", "13900139000")],
        )
        .await;
    let attempt = field(page.html().2, "attempt").unwrap();
    let res = browser
        .http
        .post(env.url("/register"))
        .form(&[
            ("csrf", token.as_str()),
            ("attempt", &attempt),
            ("code", &inbox.last_code()),
            ("id_number", &id),
            ("name", "李四"),
            ("phone", "13900139000"),
            ("password", "a long enough passphrase 42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        yunid::services::login::find_person(&env.app, &id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn account_forms_refuse_posts_without_the_csrf_token(backend: Backend) {
    let env = passkeys::localhost_env(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client("http://localhost:9/cb").await;
    let rp = Rp::discover(env.app.config.iss(), &client).await;
    let phone = Browser::new(env.app.config.iss());
    sign_in(&rp, &phone, &["profile"]).await;
    let laptop = Browser::new(env.app.config.iss());
    let mut key = SoftPasskey::new(true);
    passkeys::register_passkey(&env, &env.sms, &laptop, &mut key, "钥匙").await;
    let account = laptop.get("/account").await;
    let body = account.html().2.to_owned();
    let csrf = passkeys::data_csrf(&body);
    let action = |re: &str| {
        regex_lite::Regex::new(re)
            .unwrap()
            .captures(&body)
            .unwrap_or_else(|| panic!("{re}: {body}"))[1]
            .to_owned()
    };
    let delete = action(r#"action="(/account/passkeys/[^"]*/delete)""#);
    let end = action(r#"action="(/account/sessions/[^"]*/end)""#);
    let revoke = format!("/account/apps/{}/revoke", client.id);

    // The JSON endpoints take the token in a header. A real registration answer for a second key,
    // submitted without it, is refused.
    let start: Value = laptop
        .http
        .post(format!("{}/account/passkeys/start", laptop.origin))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": "第二把钥匙" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap_or_else(|e| panic!("{e}: {start}"));
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.resident_key = None;
        sel.require_resident_key = false;
    }
    let credential = SoftPasskey::new(true)
        .do_registration(passkeys::origin(&env), options)
        .unwrap();
    let finish = json!({ "ceremony": start["ceremony"], "name": "第二把钥匙", "credential": credential });
    for (path, body) in [
        ("/account/passkeys/start", json!({ "name": "x" })),
        ("/account/passkeys/finish", finish.clone()),
    ] {
        for token in [None, Some("forged-token")] {
            let mut req = laptop.http.post(format!("{}{path}", laptop.origin)).json(&body);
            if let Some(t) = token {
                req = req.header("x-csrf-token", t);
            }
            let status = req.send().await.unwrap().status();
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    for path in [
        delete.as_str(),
        end.as_str(),
        "/account/logout-all",
        revoke.as_str(),
    ] {
        for form in without_and_with_a_forged_token(&[]) {
            assert_eq!(
                post_status(&laptop, path, &form).await,
                StatusCode::FORBIDDEN,
                "{path} {form:?}"
            );
        }
    }
    // Nothing happened: the passkey, both sessions and the app are still listed.
    let after = laptop.get("/account").await.html().2.to_owned();
    assert!(
        after.contains("钥匙") && after.contains(&end) && after.contains(&revoke),
        "{after}"
    );
    assert!(
        silent(&rp, &phone, &[]).await.is_ok(),
        "the phone is still signed in"
    );
    assert!(!after.contains("第二把钥匙"), "the second key was not added");
    // Control: with the token the same requests work.
    let res = laptop
        .http
        .post(format!("{}/account/passkeys/finish", laptop.origin))
        .header("x-csrf-token", &csrf)
        .json(&finish)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let page = laptop.post(&revoke, &[("csrf", &csrf)]).await;
    assert!(!page.html().2.contains(&revoke));
}

// ---------------------------------------------------------------------------------------------------
// Session fixation on the SMS and passkey paths (the password path: authorize_errors.rs)

const PLANTED: &str = "attacker-planted-session-id-0123456789abcdef";

async fn sms_and_passkey_logins_never_keep_a_planted_session_id(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let url = inbox.url.clone();
    let env = Env::start_with(backend, move |c| {
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some(SMS_SECRET.into());
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let origin = env.app.config.iss().to_owned();
    let mut key = SoftPasskey::new(true);
    let registered = passkeys::register_passkey(&env, &inbox, &Browser::new(&origin), &mut key, "k").await;
    let credential_id = registered["credential_id"].as_str().unwrap().to_owned();
    // The registration's step-up code went to this phone just now: past the resend cooldown.
    env.app.clock.advance(env.app.config.sms_resend_cooldown);

    // SMS.
    let (browser, jar) = Browser::with_jar(&origin);
    jar.add_cookie_str(
        &format!("yunid_session={PLANTED}; Path=/"),
        &origin.parse().unwrap(),
    );
    let page = browser.get("/login?method=sms").await;
    let csrf = field(page.html().2, "csrf").unwrap();
    let sent = browser
        .post("/login/sms/send", &[("csrf", &csrf), ("phone", ALICE_PHONE)])
        .await;
    let attempt = field(sent.html().2, "attempt").unwrap();
    browser
        .post(
            "/login/sms/verify",
            &[
                ("csrf", &csrf),
                ("attempt", &attempt),
                ("code", &inbox.last_code()),
            ],
        )
        .await;
    let after_sms = cookie(&jar, &origin, "yunid_session").expect("a session cookie");
    assert_ne!(after_sms, PLANTED);
    assert!(
        browser.get("/account").await.html().2.contains("张三"),
        "signed in"
    );

    // Passkey, in a browser carrying the planted id.
    let (browser, jar) = Browser::with_jar(&origin);
    jar.add_cookie_str(
        &format!("yunid_session={PLANTED}; Path=/"),
        &origin.parse().unwrap(),
    );
    let login = browser.get("/login?method=passkey").await;
    let (ceremony, credential, csrf, _) = passkeys::passkey_assertion(
        &browser,
        &login,
        &mut key,
        &credential_id,
        &alice,
        passkeys::origin(&env),
    )
    .await;
    passkeys::finish(&browser, &ceremony, &credential, &csrf, None).await;
    let after_passkey = cookie(&jar, &origin, "yunid_session").expect("a session cookie");
    assert_ne!(after_passkey, PLANTED);
    assert_ne!(after_passkey, after_sms);
    assert!(
        browser.get("/account").await.html().2.contains("张三"),
        "signed in"
    );
}

// ---------------------------------------------------------------------------------------------------
// Framing

fn assert_unframeable(headers: &HeaderMap, what: &str) {
    assert_eq!(
        headers.get(header::X_FRAME_OPTIONS).map(|v| v.to_str().unwrap()),
        Some("DENY"),
        "{what}"
    );
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
}

async fn every_html_page_refuses_to_be_framed(backend: Backend) {
    let env = Env::start_with(backend, |c| c.self_registration = true).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    let (browser, _jar) = Browser::with_jar(&env.base);
    let mut seen = Vec::new();
    let check = |res: reqwest::Response, what: &str, seen: &mut Vec<String>| {
        let headers = res.headers().clone();
        assert_unframeable(&headers, what);
        let is_html = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        if is_html {
            seen.push(what.to_owned());
        }
        res
    };
    let get = |path: String| {
        let browser = &browser;
        async move {
            browser
                .http
                .get(format!("{}{path}", browser.origin))
                .send()
                .await
                .unwrap()
        }
    };

    let attempt = rp.start(&["profile"]);
    let res = browser.http.get(attempt.url.as_str()).send().await.unwrap();
    let login = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let page = check(get(login.clone()).await, "login page", &mut seen)
        .text()
        .await
        .unwrap();
    let req = field(&page, "req").unwrap();
    let csrf = field(&page, "csrf").unwrap();
    for (path, what) in [
        ("/".to_owned(), "home page"),
        (format!("/login?req={req}&method=sms"), "SMS login page"),
        (format!("/login?req={req}&method=passkey"), "passkey login page"),
        ("/login?req=expired".to_owned(), "expired request page"),
        ("/register".to_owned(), "registration page"),
        ("/authorize?client_id=nope".to_owned(), "authorization error page"),
        ("/logout".to_owned(), "logged-out page"),
        ("/no-such-page".to_owned(), "not found"),
    ] {
        check(get(path).await, what, &mut seen);
    }
    let wrong = browser
        .http
        .post(env.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", &req),
            ("username", ALICE_ID),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    check(wrong, "login page with an error", &mut seen);
    let forged = browser
        .http
        .post(env.url("/login"))
        .form(&[
            ("req", req.as_str()),
            ("username", ALICE_ID),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    check(forged, "CSRF refusal page", &mut seen);
    let res = browser
        .http
        .post(env.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", &req),
            ("username", ALICE_ID),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    // The sign-in goes straight on to the consent page (issue 17: no stop at `/authorize/resume`).
    let consent = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let body = check(get(consent).await, "consent page", &mut seen)
        .text()
        .await
        .unwrap();
    assert!(body.contains("action=\"/consent\""), "{body}");
    check(get("/account".into()).await, "account page", &mut seen);
    check(get("/logout".into()).await, "logout confirmation page", &mut seen);
    // form_post: consent is given, so the next request answers with the self-submitting page.
    let body_req = field(&body, "req").unwrap();
    browser
        .http
        .post(env.url("/consent"))
        .form(&[("csrf", csrf.as_str()), ("req", &body_req), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    let mut url = rp.start(&["profile"]).url;
    url.query_pairs_mut().append_pair("response_mode", "form_post");
    let res = browser.http.get(url.as_str()).send().await.unwrap();
    check(res, "form_post page", &mut seen);
    // Every page above is HTML but the bare 404 (which carries the headers all the same).
    assert_eq!(seen.len(), 14, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------------
// CORS

const SPA: &str = "https://spa.example.org";

fn allow_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

fn assert_cors(res: &reqwest::Response, what: &str) {
    assert_eq!(allow_origin(res.headers()), Some("*"), "{what}");
    assert!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none(),
        "{what}: credentials are never shared"
    );
}

fn assert_no_cors(res: &reqwest::Response, what: &str) {
    assert_eq!(allow_origin(res.headers()), None, "{what}");
}

async fn cors_only_on_discovery_jwks_token_and_userinfo(backend: Backend) {
    let (env, client, _rp, browser, signed) = alice_signed_in(backend).await;
    let from_spa = |req: reqwest::RequestBuilder| req.header(header::ORIGIN, SPA).send();

    for path in ["/.well-known/openid-configuration", "/jwks"] {
        let res = from_spa(http().get(env.url(path))).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_cors(&res, path);
    }
    let res = from_spa(
        http()
            .get(env.url("/userinfo"))
            .bearer_auth(signed.access_token()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_cors(&res, "userinfo");
    let res = from_spa(http().get(env.url("/userinfo")).bearer_auth("garbage"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_cors(&res, "userinfo error");
    let exposed = res.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap();
    assert!(
        exposed.to_ascii_lowercase().contains("www-authenticate"),
        "{exposed}"
    );
    let res = from_spa(
        http()
            .post(env.url("/token"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &signed.refresh_token()),
            ]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_cors(&res, "token");
    let res = from_spa(
        http()
            .post(env.url("/token"))
            .form(&[("grant_type", "refresh_token")]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_cors(&res, "token error");

    // Preflights for what a script sends: Authorization and a form body.
    for (path, method) in [
        ("/.well-known/openid-configuration", "GET"),
        ("/jwks", "GET"),
        ("/token", "POST"),
        ("/userinfo", "GET"),
        ("/userinfo", "POST"),
    ] {
        let res = http()
            .request(reqwest::Method::OPTIONS, env.url(path))
            .header(header::ORIGIN, SPA)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        let what = format!("preflight {method} {path}");
        assert!(res.status().is_success(), "{what}: {}", res.status());
        assert_cors(&res, &what);
        let methods = res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        assert!(methods.contains(method), "{what}: {methods}");
        let headers = res.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{what}: {headers}"
        );
    }

    // Never on the authorization and end-session endpoints, pages, or server-to-server endpoints.
    let authorize = rp_url(&env, &client, "s");
    let answers = [
        (
            "GET /authorize",
            from_spa(browser.http.get(&authorize)).await.unwrap(),
        ),
        (
            "POST /authorize",
            from_spa(
                browser
                    .http
                    .post(env.url("/authorize"))
                    .form(&[("client_id", client.id.as_str())]),
            )
            .await
            .unwrap(),
        ),
        (
            "OPTIONS /authorize",
            from_spa(
                http()
                    .request(reqwest::Method::OPTIONS, env.url("/authorize"))
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET"),
            )
            .await
            .unwrap(),
        ),
        (
            "GET /login",
            from_spa(browser.http.get(env.url("/login"))).await.unwrap(),
        ),
        (
            "POST /login",
            from_spa(
                browser
                    .http
                    .post(env.url("/login"))
                    .form(&[("username", "x"), ("password", "y")]),
            )
            .await
            .unwrap(),
        ),
        (
            "GET /account",
            from_spa(browser.http.get(env.url("/account"))).await.unwrap(),
        ),
        (
            "GET /logout",
            from_spa(browser.http.get(env.url("/logout"))).await.unwrap(),
        ),
        (
            "OPTIONS /logout",
            from_spa(
                http()
                    .request(reqwest::Method::OPTIONS, env.url("/logout"))
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST"),
            )
            .await
            .unwrap(),
        ),
        (
            "POST /introspect",
            from_spa(
                http()
                    .post(env.url("/introspect"))
                    .basic_auth(&client.id, Some(&client.secret))
                    .form(&[("token", "x")]),
            )
            .await
            .unwrap(),
        ),
        (
            "POST /revoke",
            from_spa(
                http()
                    .post(env.url("/revoke"))
                    .basic_auth(&client.id, Some(&client.secret))
                    .form(&[("token", "x")]),
            )
            .await
            .unwrap(),
        ),
        (
            "POST /par",
            from_spa(
                http()
                    .post(env.url("/par"))
                    .form(&[("client_id", client.id.as_str())]),
            )
            .await
            .unwrap(),
        ),
        ("GET /", from_spa(browser.http.get(env.url("/"))).await.unwrap()),
    ];
    for (what, res) in &answers {
        assert!(!res.status().is_server_error(), "{what}: {}", res.status());
        assert_no_cors(res, what);
    }
}

fn rp_url(env: &Env, client: &TestClient, state: &str) -> String {
    let (_, challenge) = pkce();
    let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid profile"),
        ("state", state),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    url.to_string()
}

// ---------------------------------------------------------------------------------------------------
// User enumeration

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn alert(body: &str) -> Option<String> {
    regex_lite::Regex::new(r#"<p class="error" role="alert">([^<]*)</p>"#)
        .unwrap()
        .captures(body)
        .map(|c| c[1].to_owned())
}

async fn a_wrong_password_takes_as_long_for_an_unknown_account_as_for_a_known_one(backend: Backend) {
    // Production-strength hashing (a hash costs tens of milliseconds), so skipping it for an unknown
    // account would show; and no throttling, so every attempt takes the whole path.
    let env = Env::start_with(backend, |c| {
        c.argon2_memory_kib = 19 * 1024;
        c.argon2_iterations = 2;
        c.login_max_failures = 1_000;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login").await;
    let csrf = field(page.html().2, "csrf").unwrap();
    let unknown = resident_id(77);
    let attempt = |username: String| {
        let (browser, csrf) = (&browser, &csrf);
        async move {
            let started = Instant::now();
            let res = browser
                .http
                .post(format!("{}/login", browser.origin))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", &username),
                    ("password", "not the password"),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            (started.elapsed(), status, alert(&body))
        }
    };
    // Warm up both paths (connection, caches).
    for _ in 0..2 {
        attempt(ALICE_ID.into()).await;
        attempt(unknown.clone()).await;
    }
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for round in 0..15 {
        // Alternate which goes first, so drift in the machine's load falls on both alike.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for known in order {
            let name = if known {
                ALICE_ID.to_owned()
            } else {
                unknown.clone()
            };
            let (took, status, message) = attempt(name).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(message.is_some(), "an error message");
            if known {
                known_times.push((took, message));
            } else {
                unknown_times.push((took, message));
            }
        }
    }
    let same_message = known_times[0].1.clone();
    assert!(
        known_times
            .iter()
            .chain(&unknown_times)
            .all(|(_, m)| *m == same_message)
    );
    let known = median(known_times.into_iter().map(|(t, _)| t).collect());
    let unknown = median(unknown_times.into_iter().map(|(t, _)| t).collect());
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "median {unknown:?} for an unknown account vs {known:?} for a known one (ratio {ratio:.2})"
    );
}

async fn passkey_answers_do_not_tell_which_accounts_or_keys_exist(backend: Backend) {
    let env = passkeys::localhost_env(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let origin = env.app.config.iss().to_owned();
    let mut key = SoftPasskey::new(true);
    let registered = passkeys::register_passkey(&env, &env.sms, &Browser::new(&origin), &mut key, "k").await;
    let alices_key = registered["credential_id"].as_str().unwrap().to_owned();
    // A key registered on another provider: real, well-formed, and unknown here.
    let elsewhere = passkeys::localhost_env(backend).await;
    elsewhere.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let mut stranger = SoftPasskey::new(true);
    let other = passkeys::register_passkey(
        &elsewhere,
        &elsewhere.sms,
        &Browser::new(elsewhere.app.config.iss()),
        &mut stranger,
        "k",
    )
    .await;
    let strangers_key = other["credential_id"].as_str().unwrap().to_owned();
    let nobody = uuid::Uuid::new_v4().to_string();

    let mut answers = Vec::new();
    for (what, alices, handle) in [
        ("an unknown key for Alice", false, alice.as_str()),
        ("an unknown key for nobody", false, nobody.as_str()),
        ("Alice's key for nobody", true, nobody.as_str()),
    ] {
        let (key, id) = if alices {
            (&mut key, &alices_key)
        } else {
            (&mut stranger, &strangers_key)
        };
        let browser = Browser::new(&origin);
        let login = browser.get("/login?method=passkey").await;
        let (ceremony, mut credential, csrf, _) =
            passkeys::passkey_assertion(&browser, &login, key, id, &alice, passkeys::origin(&env)).await;
        credential.response.user_handle = Some(uuid::Uuid::parse_str(handle).unwrap().as_bytes().to_vec());
        let page = passkeys::finish(&browser, &ceremony, &credential, &csrf, None).await;
        let (_, status, body) = page.html();
        answers.push((what, status, alert(body)));
    }
    let (_, status, message) = &answers[0];
    assert_eq!(*status, StatusCode::UNAUTHORIZED);
    assert!(message.is_some());
    for (what, s, m) in &answers {
        assert_eq!((s, m), (status, message), "{what} is told apart: {answers:?}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Oversized and deeply nested input

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

async fn oversized_and_deeply_nested_inputs_are_client_errors(backend: Backend) {
    let (env, client, rp, browser, _) = alice_signed_in(backend).await;
    let megabyte = "a".repeat(1 << 20);
    let form_paths = [
        "/authorize",
        "/token",
        "/par",
        "/introspect",
        "/revoke",
        "/userinfo",
        "/logout",
        "/login",
        "/login/sms/send",
        "/login/sms/verify",
        "/login/passkey/finish",
        "/consent",
        "/act-as",
        "/register",
        "/register/code",
        "/account/logout-all",
    ];
    for path in form_paths {
        match browser
            .http
            .post(env.url(path))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("csrf", "x"), ("state", megabyte.as_str())])
            .send()
            .await
        {
            Ok(res) => assert!(
                res.status().is_client_error(),
                "1 MB form to {path}: {}",
                res.status()
            ),
            Err(e) => assert!(e.is_request() && !e.is_timeout(), "1 MB form to {path}: {e}"),
        }
    }
    for path in [
        "/account/passkeys/start",
        "/account/passkeys/finish",
        "/login/passkey/start",
    ] {
        // Refused by its length before the body is read: a client error, or the connection closed while
        // the client was still writing the megabyte (a broken pipe), never a timeout or a success.
        match browser
            .http
            .post(env.url(path))
            .json(&json!({ "name": megabyte }))
            .send()
            .await
        {
            Ok(res) => assert!(
                res.status().is_client_error(),
                "1 MB JSON to {path}: {}",
                res.status()
            ),
            Err(e) => assert!(e.is_request() && !e.is_timeout(), "1 MB JSON to {path}: {e}"),
        }
    }
    // A megabyte in the URL or a header: refused before any handler, or the connection is closed.
    let mut url = url::Url::parse(&rp_url(&env, &client, "s")).unwrap();
    url.query_pairs_mut().append_pair("login_hint", &megabyte);
    match http().get(url).send().await {
        Ok(res) => assert!(res.status().is_client_error(), "1 MB query: {}", res.status()),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    match http()
        .get(env.url("/login"))
        .header(header::COOKIE, format!("x={megabyte}"))
        .send()
        .await
    {
        Ok(res) => assert!(res.status().is_client_error(), "1 MB cookie: {}", res.status()),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }

    // `claims` nested 10,000 arrays deep, by value and pushed, and within the length limit.
    let deep = format!("{{\"userinfo\":{{\"name\":{}}}}}", nested_arrays(10_000));
    let shallow_enough = format!("{{\"userinfo\":{{\"name\":{}}}}}", nested_arrays(4_000));
    for claims in [&deep, &shallow_enough] {
        let mut url = url::Url::parse(&rp_url(&env, &client, "s")).unwrap();
        url.query_pairs_mut().append_pair("claims", claims);
        let res = http().get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let location = url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let error = location
            .query_pairs()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned());
        assert_eq!(error.as_deref(), Some("invalid_request"), "{location}");
    }
    let (_, challenge) = pkce();
    let res = http()
        .post(env.url("/par"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("claims", deep.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error(),
        "nested claims pushed: {}",
        res.status()
    );
    // Nested JSON where yunid parses JSON from outside: a client assertion, a passkey answer.
    let nested_jwt = format!(
        "{}.{}.{}",
        wire::b64(br#"{"alg":"RS256","kid":"k"}"#),
        // As deep as fits in the longest parameter accepted (8 KiB), so the JSON parser does see it.
        wire::b64(nested_arrays(2_900).as_bytes()),
        wire::b64(b"sig")
    );
    let (status, body) = wire::with_assertion(&env.base, &client.id, &nested_jwt).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let res = browser
        .http
        .post(env.url("/account/passkeys/finish"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!(
            "{{\"ceremony\":\"c\",\"credential\":{}}}",
            nested_arrays(10_000)
        ))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error(),
        "nested passkey JSON: {}",
        res.status()
    );
    let page = browser.get("/login?method=passkey").await;
    let csrf = field(page.html().2, "csrf").unwrap();
    let res = browser
        .http
        .post(env.url("/login/passkey/finish"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("ceremony", "c"),
            ("credential", &nested_arrays(10_000)),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error(),
        "nested passkey answer: {}",
        res.status()
    );

    // Still serving, and Alice still signed in.
    assert!(silent(&rp, &browser, &[]).await.is_ok());
}

// ---------------------------------------------------------------------------------------------------
// Header injection

const INJECTION: &str = "x\r\nSet-Cookie: injected=1\r\nX-Injected: yes";

fn assert_not_injected(headers: &HeaderMap, what: &str) {
    assert!(headers.get("x-injected").is_none(), "{what}: {headers:?}");
    for cookie in headers.get_all(header::SET_COOKIE) {
        assert!(
            !cookie.to_str().unwrap().contains("injected"),
            "{what}: {cookie:?}"
        );
    }
    for value in headers.values() {
        let bytes = value.as_bytes();
        assert!(
            !bytes.contains(&b'\r') && !bytes.contains(&b'\n'),
            "{what}: {value:?}"
        );
    }
}

async fn cr_lf_in_state_or_redirect_uris_never_reaches_a_response_header(backend: Backend) {
    let (env, client, _, browser, signed) = alice_signed_in(backend).await;
    // state, on the error path (no session) and on the success path (Alice's session).
    let url = rp_url(&env, &client, INJECTION);
    for (what, res) in [
        (
            "state, no session",
            http().get(format!("{url}&prompt=none")).send().await.unwrap(),
        ),
        ("state, signed in", browser.http.get(&url).send().await.unwrap()),
    ] {
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{what}");
        assert_not_injected(res.headers(), what);
        let location = url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let state = location
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            state.as_deref(),
            Some(INJECTION),
            "{what}: the state comes back intact, encoded"
        );
    }
    // A redirect URI with CR/LF is no registered one; a parameter name with CR/LF ends up in a message.
    let mut bad_uri = url::Url::parse(&rp_url(&env, &client, "s")).unwrap();
    bad_uri
        .query_pairs_mut()
        .append_pair("redirect_uri", &format!("{CALLBACK}{INJECTION}"));
    let res = http().get(bad_uri).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_not_injected(res.headers(), "redirect_uri");
    let mut repeated = url::Url::parse(&rp_url(&env, &client, "s")).unwrap();
    repeated
        .query_pairs_mut()
        .append_pair(INJECTION, "1")
        .append_pair(INJECTION, "2");
    let res = http().get(repeated).send().await.unwrap();
    assert_not_injected(res.headers(), "repeated parameter name");

    // Logout: post_logout_redirect_uri with CR/LF is refused; state with CR/LF comes back encoded.
    let logout = |uri: String, state: &str| {
        let mut u = url::Url::parse(&env.url("/logout")).unwrap();
        u.query_pairs_mut()
            .append_pair("id_token_hint", &signed.id_token())
            .append_pair("post_logout_redirect_uri", &uri)
            .append_pair("state", state);
        u
    };
    let res = browser
        .http
        .get(logout(format!("{AFTER_LOGOUT}{INJECTION}"), "s"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_not_injected(res.headers(), "post_logout_redirect_uri");
    let res = browser
        .http
        .get(logout(AFTER_LOGOUT.into(), INJECTION))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_not_injected(res.headers(), "logout state");
    // The language switch: the code in the path is never echoed.
    let res = http()
        .get(env.url("/lang/en%0d%0aX-Injected:%20yes"))
        .send()
        .await
        .unwrap();
    assert_not_injected(res.headers(), "language switch");
}

on_both_backends!(
    forged_access_tokens_get_nothing_from_userinfo,
    forged_id_token_hints_neither_sign_in_nor_log_out,
    client_assertions_with_borrowed_keys_injected_kids_or_future_times_are_refused,
    authorize_never_redirects_to_an_unregistered_uri,
    logout_never_redirects_to_an_unregistered_uri,
    sign_in_forms_refuse_posts_without_the_csrf_token,
    account_forms_refuse_posts_without_the_csrf_token,
    sms_and_passkey_logins_never_keep_a_planted_session_id,
    every_html_page_refuses_to_be_framed,
    cors_only_on_discovery_jwks_token_and_userinfo,
    a_wrong_password_takes_as_long_for_an_unknown_account_as_for_a_known_one,
    passkey_answers_do_not_tell_which_accounts_or_keys_exist,
    oversized_and_deeply_nested_inputs_are_client_errors,
    cr_lf_in_state_or_redirect_uris_never_reaches_a_response_header,
);
