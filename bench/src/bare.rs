//! The ceiling for client credentials: an axum endpoint on the same runtime setup as yunid that does
//! nothing but sign an ES256 JWT of the same shape with ring and answer it as JSON (no client
//! authentication, no database). yunid's `cc` should reach a large fraction of it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header: String,
}

fn b64(bytes: &[u8]) -> String {
    yunid::crypto::b64url(bytes)
}

async fn token(
    axum::extract::State(s): axum::extract::State<Arc<Signer>>,
    _body: String,
) -> axum::response::Response {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1",
        "sub": "bench",
        "aud": "bench",
        "client_id": "bench",
        "iat": now,
        "exp": now + 600,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "scope": "api",
    });
    let mut jwt = s.header.clone();
    jwt.push('.');
    jwt.push_str(&b64(&serde_json::to_vec(&claims).unwrap_or_default()));
    let sig = match s.key.sign(&s.rng, jwt.as_bytes()) {
        Ok(sig) => sig,
        Err(_) => return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    jwt.push('.');
    jwt.push_str(&b64(sig.as_ref()));
    axum::Json(serde_json::json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": 600,
        "scope": "api",
    }))
    .into_response()
}

use axum::response::IntoResponse;

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("key parsing failed"))?;
    let header = b64(br#"{"alg":"ES256","typ":"at+jwt","kid":"bench"}"#);
    let signer = Arc::new(Signer { key, rng, header });
    let app = Router::new()
        .route("/token", post(token))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(signer);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
