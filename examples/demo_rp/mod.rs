//! The code shared by the demo department apps (`social_security`, `business_registration`): a complete
//! OpenID Connect relying party for yunid, built the standard way with the `openidconnect` crate.
//!
//! - discovery at start, then authorization code + PKCE (S256), `state` and `nonce` kept server-side;
//! - the ID token is verified by the crate (signature against the JWKS, `iss`, `aud`, `exp`, `nonce`),
//!   then userinfo is fetched and a local session is created (an HttpOnly cookie pointing into memory);
//! - RP-initiated logout sends the browser to yunid's `end_session_endpoint` with `id_token_hint`;
//! - back-channel logout (`POST /backchannel-logout`) verifies yunid's logout token and drops the local
//!   sessions of that SSO session, so logging out in one app logs the person out of every app.
//!
//! Sessions and login attempts live in memory: restart the app and everybody is logged out of it. A
//! real app keeps them where its other state is (database, Redis, …); the protocol part is the same.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, IdTokenFields, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl,
    Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What makes one demo app different from the other.
pub struct AppSpec {
    /// Display name, also the client name to register ("社保服务").
    pub name: &'static str,
    /// English name, shown in brackets.
    pub english: &'static str,
    pub default_port: u16,
    /// Scopes asked at login, besides `openid` (which the crate always sends).
    pub scopes: &'static [&'static str],
    /// `--scope` for `yunid client add`, when yunid's default (openid profile phone offline_access)
    /// does not cover what the app asks.
    pub register_scopes: Option<&'static str>,
    /// Prefix of this app's cookie names. Cookies are not isolated by port, so two apps on
    /// `localhost` share one cookie jar and must not use the same names.
    pub cookie_prefix: &'static str,
    /// The app's own content for a signed-in person (HTML, values escaped with [`escape`]).
    pub services: fn(&User) -> String,
}

/// The signed-in person, as this app shows them.
#[derive(Clone, Debug)]
pub struct User {
    /// The subject: stable for this person (yunid gives apps of one host the same pairwise value).
    pub sub: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The enterprise the person acts for (userinfo claim `org`, with scope `org`).
    pub org: Option<Value>,
    /// How strongly the person signed in (the ID token's `acr`: "1" one factor, "2" two).
    pub acr: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// openidconnect types. `CoreClient` drops claims it does not know; yunid puts `sid` (the SSO session,
// needed to match back-channel logouts) in the ID token and `org` in userinfo, so the client is
// `CoreClient` with our own `AdditionalClaims` — the crate's way to read extra claims.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct YunidClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<Value>,
}
impl AdditionalClaims for YunidClaims {}

type IdToken = openidconnect::IdToken<
    YunidClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type YunidTokenResponse = StandardTokenResponse<
    IdTokenFields<
        YunidClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// A client built from discovery: the authorization endpoint is set, token and userinfo "maybe".
type Client = openidconnect::Client<
    YunidClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    YunidTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

// ---------------------------------------------------------------------------------------------
// HTTP client. openidconnect does not pick one: anything `Fn(HttpRequest) -> Future<Output =
// Result<HttpResponse, E>>` will do. This adapts reqwest.
// ---------------------------------------------------------------------------------------------

/// One reqwest client (one connection pool) for every call to yunid. It never follows redirects:
/// following them from the token endpoint would open the app to SSRF.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    // yunid's reqwest is built without a TLS crypto backend: choose rustls' ring backend once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
});

#[derive(Debug)]
struct HttpError(String);
impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HttpError {}

/// The HTTP client handed to openidconnect (`&http_client`).
async fn http_client(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let res = HTTP
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut builder = openidconnect::http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        builder = builder.header(k, v);
    }
    let bytes = res.bytes().await.map_err(|e| HttpError(e.to_string()))?;
    builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// The app's state.
// ---------------------------------------------------------------------------------------------

/// Settings from the environment.
struct Config {
    issuer: String,
    client_id: String,
    client_secret: String,
    port: u16,
    /// The app's public base URL, without a trailing slash.
    app_url: String,
}

/// A login in progress: what `/callback` needs to finish it, keyed by a random cookie.
struct Pending {
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

/// A local session, keyed by the session cookie.
struct Session {
    user: User,
    /// yunid's SSO session (`sid` of the ID token): what a back-channel logout names.
    sid: Option<String>,
    /// Sent back as `id_token_hint` at logout.
    id_token: IdToken,
}

struct Rp {
    spec: AppSpec,
    config: Config,
    client: Client,
    /// From discovery: the issuer exactly as yunid spells it, its JWKS and its logout endpoint.
    issuer: String,
    jwks_uri: String,
    end_session: Option<EndSessionUrl>,
    post_logout_redirect: PostLogoutRedirectUrl,
    login_cookie: String,
    session_cookie: String,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
}

type Shared = Arc<Rp>;

/// How long a login may take between `/login` and `/callback`.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// The event a logout token must carry (Back-Channel Logout 1.0 §2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Runs the app: reads the environment, prints how to register it, discovers yunid and serves.
pub async fn run(spec: AppSpec) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let port = match env("PORT") {
        Some(p) => p.parse()?,
        None => spec.default_port,
    };
    let config = Config {
        issuer: env("YUNID_ISSUER").unwrap_or_else(|| "http://localhost:8080".into()),
        client_id: env("CLIENT_ID").unwrap_or_default(),
        client_secret: env("CLIENT_SECRET").unwrap_or_default(),
        port,
        app_url: env("APP_URL")
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .trim_end_matches('/')
            .to_owned(),
    };

    print_registration(&spec, &config);
    if config.client_id.is_empty() || config.client_secret.is_empty() {
        eprintln!("CLIENT_ID and CLIENT_SECRET are not set: register the app as above, then set them.");
        std::process::exit(2);
    }

    // Discovery: endpoints, JWKS, and (RP-Initiated Logout metadata) `end_session_endpoint`.
    let metadata =
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(config.issuer.clone())?, &http_client)
            .await?;
    let issuer = metadata.issuer().to_string();
    let jwks_uri = metadata.jwks_uri().to_string();
    let end_session = metadata.additional_metadata().end_session_endpoint.clone();
    let client = Client::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(format!("{}/callback", config.app_url))?);

    let rp = Arc::new(Rp {
        post_logout_redirect: PostLogoutRedirectUrl::new(format!("{}/", config.app_url))?,
        login_cookie: format!("{}_login", spec.cookie_prefix),
        session_cookie: format!("{}_session", spec.cookie_prefix),
        spec,
        config,
        client,
        issuer,
        jwks_uri,
        end_session,
        pending: Mutex::default(),
        sessions: Mutex::default(),
    });

    let app = Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", get(logout))
        .route("/backchannel-logout", post(backchannel_logout))
        .with_state(rp.clone());
    // Loopback only, like yunid's default; the app is reached through APP_URL.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", rp.config.port)).await?;
    tracing::info!(url = %rp.config.app_url, issuer = %rp.issuer, "{} listening", rp.spec.name);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Prints the `yunid client add` command that registers this app.
fn print_registration(spec: &AppSpec, config: &Config) {
    let url = &config.app_url;
    let scopes = spec
        .register_scopes
        .map(|s| format!(" \\\n    --scope \"{s}\""))
        .unwrap_or_default();
    println!(
        "{name} ({english}): register this app with yunid once (it prints the client id and secret):\n\n\
         yunid client add --name \"{name}\" \\\n    \
         --redirect-uri {url}/callback \\\n    \
         --post-logout-redirect-uri {url}/ \\\n    \
         --backchannel-logout-uri {url}/backchannel-logout{scopes}\n\n\
         then run it with CLIENT_ID=… CLIENT_SECRET=… cargo run --example {bin}\n",
        name = spec.name,
        english = spec.english,
        bin = env!("CARGO_BIN_NAME"),
    );
}

// ---------------------------------------------------------------------------------------------
// Handlers.
// ---------------------------------------------------------------------------------------------

/// `GET /`: who is signed in, or a login link.
async fn home(State(rp): State<Shared>, headers: HeaderMap) -> Html<String> {
    let user = cookie(&headers, &rp.session_cookie)
        .and_then(|id| Some(rp.sessions.lock().unwrap().get(&id)?.user.clone()));
    let body = match user {
        Some(user) => {
            let row = |label: &str, value: &str| {
                format!("<tr><th>{label}</th><td>{}</td></tr>", escape(value))
            };
            let mut rows = row("sub", &user.sub);
            rows += &row("姓名 (Name)", user.name.as_deref().unwrap_or("—"));
            if let Some(phone) = &user.phone {
                rows += &row("手机号 (Phone)", phone);
            }
            if let Some(org) = &user.org {
                // yunid's `org` claim: shown as is (a string, or the JSON of an object).
                let org = org.as_str().map_or_else(|| org.to_string(), str::to_owned);
                rows += &row("企业 (Organization)", &org);
            }
            if let Some(acr) = &user.acr {
                rows += &row("认证等级 (acr)", acr);
            }
            format!(
                "<p>已通过统一身份认证登录 (Signed in with the unified identity service)</p>\
                 <table>{rows}</table>{services}\
                 <p><a href=\"/logout\">退出登录 (Log out)</a></p>",
                services = (rp.spec.services)(&user),
            )
        }
        None => "<p>您尚未登录 (You are not signed in).</p>\
                 <p><a class=\"button\" href=\"/login\">使用统一身份认证登录 (Log in with 统一身份认证)</a></p>"
            .to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <title>{name}</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         th{{text-align:left;padding-right:1em}}.button{{padding:.5em 1em;background:#c00;color:#fff;\
         text-decoration:none;border-radius:4px}}</style></head>\
         <body><h1>{name} <small>({english})</small></h1>{body}</body></html>",
        name = rp.spec.name,
        english = rp.spec.english,
    ))
}

#[derive(Deserialize)]
struct LoginParams {
    /// The authentication level this login needs (`/login?acr=2` for a stronger sign-in), sent to yunid
    /// as `acr_values`. yunid asks a person signed in with one factor for another (step-up).
    acr: Option<String>,
}

/// `GET /login`: starts the authorization code flow with PKCE.
async fn login(State(rp): State<Shared>, Query(params): Query<LoginParams>) -> Response {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in rp.spec.scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    if let Some(acr) = params.acr.filter(|a| !a.is_empty()) {
        request = request.add_extra_param("acr_values", acr);
    }
    let (url, state, nonce) = request.url();

    // state, nonce and the PKCE verifier stay here; the browser only holds a random key to them.
    let key = random_id();
    {
        let mut pending = rp.pending.lock().unwrap();
        pending.retain(|_, p| p.started.elapsed() < LOGIN_TIMEOUT);
        pending.insert(
            key.clone(),
            Pending {
                state,
                nonce,
                verifier,
                started: Instant::now(),
            },
        );
    }
    let cookie = rp.set_cookie(&rp.login_cookie, &key, Some(LOGIN_TIMEOUT));
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(url.as_str()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: finishes the login and opens a local session.
async fn callback(
    State(rp): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, Failure> {
    // The attempt this browser started (each is used once), and the answer must be for it.
    let pending = cookie(&headers, &rp.login_cookie)
        .and_then(|key| rp.pending.lock().unwrap().remove(&key))
        .filter(|p| p.started.elapsed() < LOGIN_TIMEOUT)
        .ok_or_else(|| Failure::bad("没有进行中的登录 (no login in progress, or it expired)"))?;
    if params.state.as_deref() != Some(pending.state.secret().as_str()) {
        return Err(Failure::bad("state 不匹配 (state mismatch)"));
    }
    // RFC 9207: yunid names itself in every answer; one from another provider is refused.
    if params.iss.as_deref().is_some_and(|iss| iss != rp.issuer) {
        return Err(Failure::bad("iss 不匹配 (answer from another provider)"));
    }
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_default();
        return Err(Failure::bad(format!("{error}: {description}")));
    }
    let code = params.code.ok_or_else(|| Failure::bad("缺少 code (no code)"))?;

    // Code → tokens (the client authenticates with its secret, and proves PKCE).
    let tokens = rp
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(Failure::upstream)?
        .set_pkce_verifier(pending.verifier)
        .request_async(&http_client)
        .await
        .map_err(Failure::upstream)?;

    // The ID token: signature (JWKS from discovery), iss, aud, exp and our nonce, checked by the crate.
    let id_token = tokens
        .id_token()
        .ok_or_else(|| Failure::upstream("no ID token"))?
        .clone();
    let verifier = rp.client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &pending.nonce)
        .map_err(Failure::upstream)?;
    // at_hash binds the access token to the ID token (OpenID Connect Core §3.1.3.8).
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().map_err(Failure::upstream)?,
            id_token.signing_key(&verifier).map_err(Failure::upstream)?,
        )
        .map_err(Failure::upstream)?;
        if actual != *expected {
            return Err(Failure::upstream("at_hash does not match the access token"));
        }
    }

    // Userinfo: the crate checks that its `sub` is the ID token's.
    let info: UserInfoClaims<YunidClaims, CoreGenderClaim> = rp
        .client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .map_err(Failure::upstream)?
        .request_async(&http_client)
        .await
        .map_err(Failure::upstream)?;
    let user = User {
        sub: claims.subject().to_string(),
        name: info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        phone: info.phone_number().map(|p| p.to_string()),
        org: info.additional_claims().org.clone(),
        acr: claims.auth_context_ref().map(|acr| acr.to_string()),
    };
    tracing::info!(sub = %user.sub, sid = ?claims.additional_claims().sid, "signed in");

    // A new local session (a new id: never reuse one from before the login).
    let session_id = random_id();
    let session = Session {
        user,
        sid: claims.additional_claims().sid.clone(),
        id_token,
    };
    rp.sessions.lock().unwrap().insert(session_id.clone(), session);
    let cookies = [
        (
            header::SET_COOKIE,
            rp.set_cookie(&rp.session_cookie, &session_id, None),
        ),
        (
            header::SET_COOKIE,
            rp.set_cookie(&rp.login_cookie, "", Some(Duration::ZERO)),
        ),
    ];
    Ok((AppendHeaders(cookies), Redirect::to("/")).into_response())
}

/// `GET /logout`: ends the local session, then the SSO session at yunid (RP-Initiated Logout 1.0).
/// yunid then tells every other app through back-channel logout. (A GET link keeps the demo short; a
/// real app would use a POST form with a CSRF token, so no other site can log its users out.)
async fn logout(State(rp): State<Shared>, headers: HeaderMap) -> Response {
    let session = cookie(&headers, &rp.session_cookie).and_then(|id| rp.sessions.lock().unwrap().remove(&id));
    let target = match (session, &rp.end_session) {
        (Some(session), Some(endpoint)) => LogoutRequest::from(endpoint.clone())
            .set_id_token_hint(&session.id_token)
            .set_post_logout_redirect_uri(rp.post_logout_redirect.clone())
            // Echoed back on the return to APP_URL/. This app has nothing to restore there; one
            // that has would keep the state server-side, like the login state.
            .set_state(CsrfToken::new_random())
            .http_get_url()
            .to_string(),
        _ => "/".to_owned(),
    };
    let cookie = rp.set_cookie(&rp.session_cookie, "", Some(Duration::ZERO));
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(&target),
    )
        .into_response()
}

#[derive(Deserialize)]
struct BackchannelForm {
    logout_token: String,
}

/// What this app reads from a logout token (the registered claims are checked by jsonwebtoken).
#[derive(Deserialize)]
struct LogoutClaims {
    sub: Option<String>,
    sid: Option<String>,
    #[serde(default)]
    events: serde_json::Map<String, Value>,
    nonce: Option<Value>,
}

/// `POST /backchannel-logout` (Back-Channel Logout 1.0): yunid, server to server, says that an SSO
/// session has ended; every local session opened from it ends too.
async fn backchannel_logout(
    State(rp): State<Shared>,
    form: Result<Form<BackchannelForm>, FormRejection>,
) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    let verified = match form {
        Ok(Form(form)) => rp.verify_logout_token(&form.logout_token).await,
        Err(e) => Err(e.body_text()),
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(e) => {
            tracing::warn!(error = %e, "rejected a logout token");
            let body = json!({ "error": "invalid_request", "error_description": e });
            return (StatusCode::BAD_REQUEST, no_store, axum::Json(body)).into_response();
        }
    };
    let mut sessions = rp.sessions.lock().unwrap();
    let before = sessions.len();
    sessions.retain(|_, s| {
        let same_sid = s.sid.is_some() && s.sid == claims.sid;
        let same_sub = claims.sub.as_ref().is_none_or(|sub| *sub == s.user.sub);
        !(same_sid && same_sub)
    });
    tracing::info!(sid = ?claims.sid, ended = before - sessions.len(), "back-channel logout");
    (StatusCode::OK, no_store).into_response()
}

impl Rp {
    /// Verifies a logout token (Back-Channel Logout 1.0 §2.6).
    async fn verify_logout_token(&self, token: &str) -> Result<LogoutClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        // yunid's current keys. (A busy app would cache them and refetch on an unknown `kid`.)
        let jwks: JwkSet = HTTP
            .get(&self.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("the token names no key (kid)")?;
        let jwk = jwks.find(&kid).ok_or("not a key of the provider")?;
        // The algorithm is the key's, never the one the token claims for itself.
        let alg = jwk
            .common
            .key_algorithm
            .ok_or("the key has no alg")
            .and_then(|a| Algorithm::try_from(a).map_err(|_| "unsupported alg"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;

        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["iss", "aud", "exp"]);
        let claims: LogoutClaims = jsonwebtoken::decode(token, &key, &validation)
            .map_err(|e| e.to_string())?
            .claims;

        if !claims.events.contains_key(BACKCHANNEL_EVENT) {
            return Err("not a back-channel logout event".into());
        }
        // A nonce would make it an ID token: refused so one can never be replayed as the other.
        if claims.nonce.is_some() {
            return Err("a logout token has no nonce".into());
        }
        // This app matches sessions by sid (yunid always sends it).
        if claims.sid.is_none() {
            return Err("the logout token has no sid".into());
        }
        Ok(claims)
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax (it must come along on the redirect back from
    /// yunid), Secure when the app is served over https. `max_age` zero deletes the cookie.
    fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            cookie += &format!("; Max-Age={}", age.as_secs());
        }
        if self.config.app_url.starts_with("https://") {
            cookie += "; Secure";
        }
        cookie
    }
}

/// The value of a cookie the browser sent.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// An unguessable id for cookies (122 random bits).
fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A failed login, shown to the person as a short page.
struct Failure(StatusCode, String);

impl Failure {
    /// Something wrong with the request the browser brought back.
    fn bad(message: impl Into<String>) -> Failure {
        Failure(StatusCode::BAD_REQUEST, message.into())
    }

    /// yunid answered something this app cannot accept, or could not be reached.
    fn upstream(error: impl std::fmt::Display) -> Failure {
        Failure(StatusCode::BAD_GATEWAY, error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::warn!(status = %self.0, error = %self.1, "login failed");
        let page = format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>登录失败</title>\
             <h1>登录失败 (Login failed)</h1><p>{}</p><p><a href=\"/\">返回首页 (Home)</a></p>",
            escape(&self.1)
        );
        (self.0, Html(page)).into_response()
    }
}
