//! A scripted upstream OpenID Provider on 127.0.0.1:0: discovery, JWKS (one ES256 key), an authorization
//! endpoint that approves at once, and a token endpoint that checks the PKCE verifier and answers with
//! the ID token the test chose (a good one, or one forged, mis-audienced, with a wrong nonce, expired…).
//! It also signs logout tokens. What yunid sent to it is kept for the test to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::jwks_server::{AppKey, set};

/// Which ID token the token endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdToken {
    Good,
    /// Signed by a key the upstream does not publish (same `kid`).
    Forged,
    /// Issued to another client.
    OtherAudience,
    /// Several audiences, `azp` another client.
    OtherAzp,
    /// A nonce other than the one yunid sent.
    WrongNonce,
    /// Expired an hour ago.
    Expired,
    /// Signed with `alg: none`.
    Unsigned,
    /// Another issuer.
    OtherIssuer,
    /// `nbf` an hour ahead.
    NotYetValid,
    /// `nbf` 30 s ahead: within the tolerated clock difference.
    NbfSoon,
    /// Signed by a published key whose `use` is `enc`.
    EncryptionKey,
    /// Signed (ES256) by a published key whose `alg` is ES384.
    OtherAlgKey,
    /// Typed `logout+jwt` (a logout token's type), otherwise a good ID token.
    LogoutTyped,
    /// With a logout token's `events` claim, otherwise a good ID token.
    WithEvents,
    /// Signed by a published key with no `use` whose `key_ops` are `["encrypt"]`.
    EncryptOpsKey,
}

#[derive(Default)]
struct Shared {
    /// state → (nonce, code_challenge)
    pending: HashMap<String, (String, String)>,
    /// code → nonce, challenge
    codes: HashMap<String, (String, String)>,
    /// The last authorization request's parameters.
    last_authorize: HashMap<String, String>,
    /// The last token request's form, and whether its verifier matched.
    last_token: HashMap<String, String>,
    pkce_ok: Option<bool>,
    /// RFC 9207: discovery says the answers name the issuer; `send_iss`: they do.
    advertise_iss: bool,
    send_iss: bool,
    mode: Option<IdToken>,
    sub: String,
    claims: Value,
    now: i64,
}

pub struct FakeOp {
    pub base: String,
    pub client_id: String,
    pub secret: String,
    key: Arc<Keys>,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The published signing key, then a key published for encryption, then one published for ES384.
type Keys = [AppKey; 4];
type St = (Arc<Mutex<Shared>>, Arc<Keys>, String, String);

async fn discovery(State((shared, _, base, _)): State<St>) -> Response {
    let advertise_iss = shared.lock().unwrap().advertise_iss;
    axum::Json(json!({
        "authorization_response_iss_parameter_supported": advertise_iss,
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn jwks(State((_, keys, _, _)): State<St>) -> Response {
    axum::Json(set(&[&keys[0], &keys[1], &keys[2], &keys[3]])).into_response()
}

async fn authorize(
    State((shared, _, base, _)): State<St>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let code = yunid::crypto::random_token();
    let mut s = shared.lock().unwrap();
    s.last_authorize = q.clone();
    s.codes.insert(
        code.clone(),
        (
            q["nonce"].clone(),
            q.get("code_challenge").cloned().unwrap_or_default(),
        ),
    );
    let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    if s.send_iss {
        back.query_pairs_mut().append_pair("iss", &base);
    }
    Redirect::to(back.as_str()).into_response()
}

async fn token(
    State((shared, keys, base, client_id)): State<St>,
    headers: axum::http::HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut s = shared.lock().unwrap();
    let mut seen = f.clone();
    if let Some(auth) = headers.get("authorization") {
        seen.insert("authorization".into(), auth.to_str().unwrap().to_owned());
    }
    s.last_token = seen;
    let Some((nonce, challenge)) = s.codes.remove(&f["code"]) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = yunid::crypto::b64url(&yunid::crypto::sha256(verifier.as_bytes()));
    s.pkce_ok = Some(computed == challenge);
    let now = s.now;
    let mode = s.mode.unwrap_or(IdToken::Good);
    let mut claims = json!({
        "iss": base,
        "sub": s.sub,
        "aud": client_id,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "acr": "urn:national:loa:high",
        "sid": "upstream-session-1",
    });
    if let Value::Object(extra) = &s.claims {
        for (k, v) in extra {
            claims[k] = v.clone();
        }
    }
    let forged;
    let signer = match mode {
        IdToken::Forged => {
            forged = AppKey::new(&keys[0].kid);
            &forged
        }
        IdToken::EncryptionKey => &keys[1],
        IdToken::OtherAlgKey => &keys[2],
        IdToken::EncryptOpsKey => &keys[3],
        _ => &keys[0],
    };
    match mode {
        IdToken::OtherAudience => claims["aud"] = json!("someone-else"),
        IdToken::OtherAzp => {
            claims["aud"] = json!([client_id, "someone-else"]);
            claims["azp"] = json!("someone-else");
        }
        IdToken::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        IdToken::Expired => {
            claims["iat"] = json!(now - 3600);
            claims["exp"] = json!(now - 3300);
        }
        IdToken::OtherIssuer => claims["iss"] = json!("https://elsewhere.example"),
        IdToken::NotYetValid => claims["nbf"] = json!(now + 3600),
        IdToken::NbfSoon => claims["nbf"] = json!(now + 30),
        IdToken::WithEvents => {
            claims["events"] = json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
        }
        _ => {}
    }
    let id_token = match mode {
        IdToken::Unsigned => {
            let b64 = |v: &Value| yunid::crypto::b64url(v.to_string().as_bytes());
            format!("{}.{}.", b64(&json!({ "alg": "none" })), b64(&claims))
        }
        IdToken::LogoutTyped => signer.sign_typed(Some("logout+jwt"), &claims),
        _ => signer.sign(&claims),
    };
    axum::Json(json!({ "access_token": "opaque", "token_type": "Bearer", "id_token": id_token }))
        .into_response()
}

impl FakeOp {
    pub async fn start(client_id: &str) -> FakeOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut encryption = AppKey::new("upstream-enc-key");
        encryption.jwk["use"] = json!("enc");
        encryption.jwk.as_object_mut().unwrap().remove("alg");
        let mut es384 = AppKey::new("upstream-es384-key");
        es384.jwk["alg"] = json!("ES384");
        let mut encrypt_ops = AppKey::new("upstream-key-ops-encrypt");
        encrypt_ops.jwk.as_object_mut().unwrap().remove("use");
        encrypt_ops.jwk["key_ops"] = json!(["encrypt"]);
        let key = Arc::new([AppKey::new("upstream-key-1"), encryption, es384, encrypt_ops]);
        let shared = Arc::new(Mutex::new(Shared {
            sub: "national-subject-1".into(),
            claims: json!({}),
            ..Shared::default()
        }));
        let state: St = (shared.clone(), key.clone(), base.clone(), client_id.to_owned());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOp {
            base,
            client_id: client_id.to_owned(),
            secret: format!("fake-op-secret-{}", yunid::crypto::random_token()),
            key,
            shared,
            task,
        }
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base)
    }

    /// The next ID tokens: which kind, about which subject, with which extra claims, issued at `now`.
    pub fn answer(&self, mode: IdToken, sub: &str, claims: Value, now: i64) {
        let mut s = self.shared.lock().unwrap();
        s.mode = Some(mode);
        s.sub = sub.to_owned();
        s.claims = claims;
        s.now = now;
    }

    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.shared.lock().unwrap().last_authorize.clone()
    }

    pub fn last_token_request(&self) -> HashMap<String, String> {
        self.shared.lock().unwrap().last_token.clone()
    }

    /// Whether the last token request's `code_verifier` matched the challenge.
    pub fn pkce_ok(&self) -> Option<bool> {
        self.shared.lock().unwrap().pkce_ok
    }

    /// From now on discovery says (`advertise`) the answers name the issuer (RFC 9207), and they do
    /// (`send`) or not.
    pub fn names_itself(&self, advertise: bool, send: bool) {
        let mut s = self.shared.lock().unwrap();
        s.advertise_iss = advertise;
        s.send_iss = send;
    }

    /// A logout token (Back-Channel Logout 1.0 §2.4, `typ` `logout+jwt`) for `sub`, signed with the
    /// published key (or, `forged`, a key of the same `kid` that is not published).
    pub fn logout_token(&self, sub: &str, now: i64, forged: bool) -> String {
        let claims = self.logout_claims(sub, now);
        if forged {
            AppKey::new(&self.key[0].kid).sign_typed(Some("logout+jwt"), &claims)
        } else {
            self.key[0].sign_typed(Some("logout+jwt"), &claims)
        }
    }

    /// A well-made logout token for `sub` but with the header `typ` given (none: no `typ`).
    pub fn logout_token_typed(&self, sub: &str, now: i64, typ: Option<&str>) -> String {
        self.key[0].sign_typed(typ, &self.logout_claims(sub, now))
    }

    /// An ID token for `sub`, signed with the published key (a nonce, no `events`).
    pub fn id_token(&self, sub: &str, now: i64) -> String {
        self.key[0].sign(&json!({
            "iss": self.base,
            "sub": sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": "a-nonce",
            "jti": yunid::crypto::random_token(),
        }))
    }

    /// A logout token for `sub` with `claims` set over the usual ones (typed `logout+jwt`).
    pub fn logout_token_with(&self, sub: &str, now: i64, claims: Value) -> String {
        let mut all = self.logout_claims(sub, now);
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        self.key[0].sign_typed(Some("logout+jwt"), &all)
    }

    /// A logout token without the claim `name`.
    pub fn logout_token_without(&self, sub: &str, now: i64, name: &str) -> String {
        let mut all = self.logout_claims(sub, now);
        all.as_object_mut().unwrap().remove(name);
        self.key[0].sign_typed(Some("logout+jwt"), &all)
    }

    fn logout_claims(&self, sub: &str, now: i64) -> Value {
        json!({
            "iss": self.base,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": yunid::crypto::random_token(),
            "sub": sub,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        })
    }
}
