//! An app that publishes its keys at a `jwks_uri`: a small HTTP listener on 127.0.0.1:0 serving the JWK
//! set it is given (which can change: key rotation), counting the requests it answers. Also an app key
//! pair (ES256) and client assertions signed with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::wire;

#[derive(Default)]
struct Shared {
    jwks: Mutex<Value>,
    /// Requests to `/jwks`.
    hits: AtomicUsize,
}

pub struct JwksServer {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let body = shared.jwks.lock().unwrap().to_string();
    ([(header::CONTENT_TYPE, "application/jwk-set+json")], body)
}

impl JwksServer {
    /// Serves `keys` at `/jwks`; `/broken` answers 500, `/huge` a JWK set of 100 KiB.
    pub async fn start(keys: Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            jwks: Mutex::new(keys),
            ..Shared::default()
        });
        let huge = json!({ "keys": [], "padding": "x".repeat(100 * 1024) }).to_string();
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/broken", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route("/huge", get(move || async move { huge }))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What `/jwks` serves from now on.
    pub fn publish(&self, keys: Value) {
        *self.shared.jwks.lock().unwrap() = keys;
    }

    /// How many times `/jwks` was fetched.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }
}

/// A URL on loopback where nothing listens.
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/jwks")
}

/// An app's ES256 key pair.
pub struct AppKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    /// The public JWK.
    pub jwk: Value,
}

impl AppKey {
    pub fn new(kid: &str) -> AppKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let (x, y) = pair.public_key().as_ref()[1..].split_at(32);
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": wire::b64(x), "y": wire::b64(y),
            "kid": kid, "use": "sig", "alg": "ES256" });
        AppKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }
    }

    /// A fresh client assertion (RFC 7523) for `client_id` at `audience`, naming `kid` in its header.
    pub fn assertion_as(&self, kid: &str, client_id: &str, audience: &str, now: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let claims = json!({ "iss": client_id, "sub": client_id, "aud": audience, "iat": now,
            "exp": now + 60, "jti": yunid::crypto::random_token() });
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    /// Any claims, signed with this key (ES256, `kid` in the header).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    /// Signed with a header `typ` of `typ` (none: no `typ`).
    pub fn sign_typed(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> String {
        self.assertion_as(&self.kid, client_id, audience, now)
    }
}

/// A JWK set of these keys' public halves.
pub fn set(keys: &[&AppKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}
