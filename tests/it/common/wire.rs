//! What an app's back end does on the wire besides the RP library: raw calls to the token, introspection,
//! revocation, userinfo and PAR endpoints, reading JWTs, and checking their signatures against the
//! published JWKS with ring (independently of the server's own code). Also a browser whose cookies
//! can be read, for handing a session to another node.

use std::sync::Arc;

use openidconnect::Nonce;
use openidconnect::core::CoreTokenResponse;
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use serde_json::Value;

use super::browser::Browser;
use super::rp::Rp;
use super::{ALICE_ID, PASSWORD, TestClient, http};

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    yunid::crypto::b64url(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    yunid::crypto::b64url_decode(s).unwrap_or_else(|| panic!("not base64url: {s}"))
}

/// Header and claims of a compact JWS, without checking anything.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = parts.next().expect("a JWT header");
    let payload = parts.next().expect("a JWT payload");
    (
        serde_json::from_slice(&unb64(header)).expect("header JSON"),
        serde_json::from_slice(&unb64(payload)).expect("payload JSON"),
    )
}

/// The published JWKS of a node.
pub async fn jwks(base: &str) -> Value {
    let res = http().get(format!("{base}/jwks")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The key ids in a JWKS.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The JWK with this kid, if published.
pub fn jwk<'a>(jwks: &'a Value, kid: &str) -> Option<&'a Value> {
    jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"].as_str() == Some(kid))
}

/// Verifies a JWS against the key its `kid` names in `jwks`, using the algorithm of that key (RS256,
/// ES256 or EdDSA); returns header and claims.
pub fn verify_jws(jwks: &Value, token: &str) -> Result<(Value, Value), String> {
    use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
    let (header, claims) = jwt_parts(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwk(jwks, kid).ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let alg = header["alg"].as_str().ok_or("no alg")?;
    let (signed, sig) = token.rsplit_once('.').ok_or("not a JWS")?;
    let sig = yunid::crypto::b64url_decode(sig).ok_or("signature not base64url")?;
    let field = |name: &str| unb64(key[name].as_str().unwrap_or_default());
    let ok = match (alg, key["kty"].as_str()) {
        ("RS256", Some("RSA")) => RsaPublicKeyComponents {
            n: field("n"),
            e: field("e"),
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig)
        .is_ok(),
        ("ES256", Some("EC")) => {
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
        }
        ("EdDSA", Some("OKP")) => UnparsedPublicKey::new(&signature::ED25519, field("x"))
            .verify(signed.as_bytes(), &sig)
            .is_ok(),
        (alg, kty) => return Err(format!("alg {alg} does not fit key type {kty:?}")),
    };
    if ok {
        Ok((header, claims))
    } else {
        Err("bad signature".into())
    }
}

/// OIDC Core §3.1.3.6 for SHA-256 algorithms: base64url of the left half of SHA-256 of the ASCII value.
pub fn half_sha256(value: &str) -> String {
    let digest = yunid::crypto::sha256(value.as_bytes());
    b64(&digest[..16])
}

/// POST to a node's token endpoint with `client_secret_basic`.
pub async fn token(base: &str, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = http()
        .post(format!("{base}/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// RFC 7662 introspection by `client`.
pub async fn introspect(base: &str, client: &TestClient, token: &str) -> Value {
    let res = http()
        .post(format!("{base}/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "introspection answers 200");
    res.json().await.unwrap()
}

/// True when introspection by `client` says the token is active.
pub async fn is_active(base: &str, client: &TestClient, token: &str) -> bool {
    introspect(base, client, token).await["active"] == Value::Bool(true)
}

/// RFC 7009 revocation by `client`.
pub async fn revoke(base: &str, client: &TestClient, token: &str) -> StatusCode {
    http()
        .post(format!("{base}/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// GET /userinfo with a bearer token: status and JSON body (Null when there is none).
pub async fn userinfo(base: &str, access_token: &str) -> (StatusCode, Value) {
    let res = http()
        .get(format!("{base}/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The outcome of a completed code flow.
pub struct SignedIn {
    pub tokens: CoreTokenResponse,
    pub nonce: Nonce,
    pub code: String,
}

impl SignedIn {
    pub fn access_token(&self) -> String {
        use openidconnect::OAuth2TokenResponse;
        self.tokens.access_token().secret().clone()
    }

    pub fn refresh_token(&self) -> String {
        use openidconnect::OAuth2TokenResponse;
        self.tokens
            .refresh_token()
            .expect("a refresh token")
            .secret()
            .clone()
    }

    pub fn id_token(&self) -> String {
        use openidconnect::TokenResponse;
        self.tokens.id_token().expect("an ID token").to_string()
    }

    /// The ID token's claims as sent (for members the RP library does not expose, such as `sid`).
    pub fn id_claims(&self) -> Value {
        jwt_parts(&self.id_token()).1
    }
}

/// Alice signs in at `rp` in `browser` (logging in and consenting when asked); the app redeems the code.
pub async fn sign_in(rp: &Rp, browser: &Browser, scopes: &[&str]) -> SignedIn {
    let attempt = rp.start(scopes);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let params = back.params();
    assert_eq!(params["state"], *attempt.state.secret());
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {params:?}"))
        .clone();
    let tokens = rp.exchange(&code, attempt.verifier).await.expect("code exchange");
    SignedIn {
        tokens,
        nonce: attempt.nonce,
        code,
    }
}

impl Browser {
    /// A browser whose cookie jar the test can read.
    pub fn with_jar(origin: &str) -> (Browser, Arc<Jar>) {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        (
            Browser {
                http,
                origin: origin.trim_end_matches('/').to_owned(),
            },
            jar,
        )
    }
}

/// The value of cookie `name` the jar would send to `url`.
pub fn cookie(jar: &Jar, url: &str, name: &str) -> Option<String> {
    let header = jar.cookies(&url::Url::parse(url).unwrap())?;
    header.to_str().ok()?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Alice exists and one confidential code-flow app is registered; returns the app and its RP.
pub async fn alice_and_app(env: &super::Env, redirect_uri: &str) -> (TestClient, Rp) {
    env.person(ALICE_ID, super::ALICE_PHONE, PASSWORD).await;
    let client = env.client(redirect_uri).await;
    let rp = Rp::discover(&env.base, &client).await;
    (client, rp)
}

/// The RP refreshes (optionally asking for `scopes`); an error comes back as its OAuth error code.
pub async fn refresh(rp: &Rp, refresh_token: &str, scopes: &[&str]) -> Result<CoreTokenResponse, String> {
    use openidconnect::{RefreshToken, RequestTokenError, Scope};
    let token = RefreshToken::new(refresh_token.to_owned());
    let mut req = rp.client.exchange_refresh_token(&token).unwrap();
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    req.request_async(&super::rp::http_client)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => r.error().as_ref().to_owned(),
            other => format!("{other:?}"),
        })
}

/// Access and refresh token of a token response.
pub fn pair(tokens: &CoreTokenResponse) -> (String, String) {
    use openidconnect::OAuth2TokenResponse;
    (
        tokens.access_token().secret().clone(),
        tokens.refresh_token().expect("a refresh token").secret().clone(),
    )
}

/// A client-credentials request authenticated by a private_key_jwt `assertion`: status and body.
pub async fn with_assertion(base: &str, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    let res = http()
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                yunid::services::oidc::client_auth::ASSERTION_TYPE,
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The `sid` the app behind `rp` holds for Alice's one live SSO session (each app has its own).
pub async fn alices_sid_at(env: &super::Env, rp: &Rp) -> String {
    let person = yunid::services::login::find_person(&env.app, ALICE_ID)
        .await
        .unwrap()
        .expect("Alice");
    let live = env.app.db.sessions_of(&person.id, env.app.now()).await.unwrap();
    assert_eq!(live.len(), 1, "Alice has one SSO session");
    env.app
        .secrets
        .client_sid(&live[0].sid, rp.client.client_id().as_str())
}
