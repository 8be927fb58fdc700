//! The OpenID Foundation conformance suite's OP test plans, re-created as black-box tests (the suite
//! itself cannot run here). One test per suite module, named after it: the Basic OP plan, the same 38
//! modules again with `response_mode=form_post` (the Form Post OP plan), the Config OP plan, the
//! RP-Initiated Logout OP plan and the Back-Channel Logout OP plan. Each asserts what the suite asserts
//! (its failures, and its warnings where yunid can honour them); where yunid deliberately differs the
//! test asserts the refusal, and README.md's "Conformance" section says why.
//!
//! Like the suite's default relying party, every request sends `state` and `nonce`, authenticates with
//! `client_secret_basic` and redirects to an https URI. Unlike it, every request also sends PKCE (S256):
//! yunid requires it (RFC 9700 §2.1.1).

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header;
use serde_json::{Value, json};
use yunid::http::i18n::ZH;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::common::browser::Page;
use crate::common::receiver::{Hit, Receiver};
use crate::common::wire;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce};

/// The relying party's redirect URI (the suite registers an https one).
const REDIRECT_URI: &str = "https://rp.conformance.example/callback";
const POST_LOGOUT_REDIRECT_URI: &str = "https://rp.conformance.example/post_logout_redirect";
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How authorization responses reach the redirect URI: the Basic OP plan, or the Form Post OP plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Query,
    FormPost,
}

/// The OP under test, with Alice and the suite's client registered.
struct Op {
    env: Env,
    client: TestClient,
    auth: AuthMethod,
    mode: Mode,
}

/// One authorization request, in order (so tests can reorder, drop or add parameters), and its verifier.
#[derive(Clone)]
struct Req {
    params: Vec<(String, String)>,
    verifier: String,
}

/// A successful token response, already checked as the suite checks it.
struct Tokens {
    body: Value,
    id: Value,
}

impl Tokens {
    fn access_token(&self) -> &str {
        self.body["access_token"].as_str().unwrap()
    }

    fn id_token(&self) -> &str {
        self.body["id_token"].as_str().unwrap()
    }
}

fn suite_client(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT_REDIRECT_URI.into()],
        ..NewClient::default()
    }
}

impl Op {
    async fn start(backend: Backend, mode: Mode) -> Op {
        Op::with_client(backend, mode, suite_client("conformance-suite")).await
    }

    async fn with_client(backend: Backend, mode: Mode, new: NewClient) -> Op {
        let env = Env::start(backend).await;
        env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
        let auth = new.auth_method;
        let client = env.client_with(new).await;
        Op {
            env,
            client,
            auth,
            mode,
        }
    }

    fn issuer(&self) -> &str {
        &self.env.base
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.env.base)
    }

    /// The suite's standard request: code flow, `scope=openid`, fresh `state` and `nonce`.
    fn request(&self) -> Req {
        self.request_for(&self.client)
    }

    fn request_for(&self, client: &TestClient) -> Req {
        let (verifier, challenge) = pkce();
        let mut params: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid"),
            ("state", &yunid::crypto::random_token()),
            ("nonce", &yunid::crypto::random_token()),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if self.mode == Mode::FormPost {
            params.push(("response_mode".into(), "form_post".into()));
        }
        Req { params, verifier }
    }

    /// What arrived at the redirect URI: query parameters, or the fields of a form POST. In the Form
    /// Post plan nothing may arrive in the URL.
    fn callback(&self, page: &Page) -> HashMap<String, String> {
        match (self.mode, page) {
            (Mode::Query, Page::Left(url)) => {
                assert!(url.fragment().is_none(), "a fragment in {url}");
                let mut bare = url.clone();
                bare.set_query(None);
                assert_eq!(bare.as_str(), REDIRECT_URI, "sent to {url}");
                url.query_pairs().into_owned().collect()
            }
            (Mode::FormPost, Page::FormPost { action, fields }) => {
                assert_eq!(action, REDIRECT_URI, "the form posts to {action}");
                fields.clone()
            }
            (mode, other) => panic!("expected a response at the redirect URI by {mode:?}, got {other:?}"),
        }
    }

    /// A successful authorization response: `code`, the same `state`, `iss` = issuer, no `error`.
    fn expect_code(&self, page: &Page, req: &Req) -> String {
        let params = self.callback(page);
        assert!(!params.contains_key("error"), "{params:?}");
        assert_eq!(
            params.get("state").map(String::as_str),
            req.get("state"),
            "{params:?}"
        );
        assert_eq!(
            params.get("iss").map(String::as_str),
            Some(self.issuer()),
            "{params:?}"
        );
        params
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code in {params:?}"))
    }

    /// An error response: a valid code among `allowed`, `state` back, no `code`, clean description.
    fn expect_error(&self, page: &Page, req: &Req, allowed: &[&str]) -> HashMap<String, String> {
        let params = self.callback(page);
        let error = params.get("error").map(String::as_str).unwrap_or("");
        assert!(
            allowed.contains(&error),
            "error {error:?}, expected one of {allowed:?}: {params:?}"
        );
        assert_eq!(
            params.get("state").map(String::as_str),
            req.get("state"),
            "{params:?}"
        );
        assert_eq!(
            params.get("iss").map(String::as_str),
            Some(self.issuer()),
            "{params:?}"
        );
        assert!(!params.contains_key("code"), "{params:?}");
        for name in ["error_description", "error_uri"] {
            if let Some(text) = params.get(name) {
                // RFC 6749 §4.1.2.1: %x20-21 / %x23-5B / %x5D-7E.
                assert!(
                    text.chars()
                        .all(|c| matches!(c, '\x20'..='\x7e') && c != '"' && c != '\\'),
                    "{name} has characters RFC 6749 does not allow: {text:?}"
                );
            }
        }
        params
    }

    /// Alice goes through the request (logging in and consenting when asked); the code.
    async fn sign_in(&self, browser: &Browser, req: &Req) -> String {
        let page = browser.sign_in(&req.url(self), ALICE_ID, PASSWORD).await;
        self.expect_code(&page, req)
    }

    /// Redeems a code as `client` and checks the token response and ID token as the suite does.
    async fn redeem(&self, client: &TestClient, code: &str, req: &Req) -> Tokens {
        let (status, headers, body) = self
            .token_request(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", client.redirect_uri.as_str()),
                    ("code_verifier", req.verifier.as_str()),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_token_response(&headers, &body);
        let id = self
            .id_token_claims(client, &body, req.get("nonce"), Some(code))
            .await;
        Tokens { body, id }
    }

    /// The standard flow: sign in, redeem, check.
    async fn flow(&self, browser: &Browser, req: &Req) -> Tokens {
        let code = self.sign_in(browser, req).await;
        self.redeem(&self.client, &code, req).await
    }

    /// A raw token request authenticated the way `client` registered.
    async fn token_request(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> (StatusCode, header::HeaderMap, Value) {
        let mut form = form.to_vec();
        let mut req = http().post(self.env.url("/token"));
        if client.id == self.client.id && self.auth == AuthMethod::ClientSecretPost {
            form.push(("client_id", &client.id));
            form.push(("client_secret", &client.secret));
        } else {
            req = req.basic_auth(&client.id, Some(&client.secret));
        }
        let res = req.form(&form).send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        assert!(!status.is_server_error(), "{status}: {text}");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// The suite's ID token checks: signature by a `jwks_uri` key named by `kid`, `iss`, `aud`, `exp`,
    /// `iat`, `sub`, `nonce`, `acr` a string, `at_hash` and `c_hash` right when present.
    async fn id_token_claims(
        &self,
        client: &TestClient,
        body: &Value,
        nonce: Option<&str>,
        code: Option<&str>,
    ) -> Value {
        let token = body["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no id_token: {body}"));
        let jwks = wire::jwks(&self.env.base).await;
        assert_unique_kids(&jwks);
        let (header, claims) =
            wire::verify_jws(&jwks, token).unwrap_or_else(|e| panic!("ID token signature: {e}"));
        assert!(header["kid"].is_string(), "{header}");
        assert_eq!(header["alg"], "RS256", "the default ID token algorithm");
        let now = self.env.app.now();
        assert_eq!(claims["iss"], self.issuer(), "{claims}");
        match &claims["aud"] {
            Value::String(aud) => assert_eq!(*aud, client.id),
            Value::Array(auds) => {
                assert!(auds.iter().any(|a| *a == client.id.as_str()), "{claims}");
                assert_eq!(claims["azp"], client.id.as_str(), "several audiences need azp");
            }
            other => panic!("aud is {other}"),
        }
        let exp = claims["exp"].as_i64().expect("exp");
        let iat = claims["iat"].as_i64().expect("iat");
        assert!(exp > now, "expired: exp {exp}, now {now}");
        assert!(iat <= now + 5 && iat > now - 300, "iat {iat}, now {now}");
        assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty()), "{claims}");
        assert!(
            claims["sub"].as_str().unwrap().len() <= 255,
            "OIDC Core §2: sub at most 255 ASCII"
        );
        match nonce {
            Some(n) => assert_eq!(claims["nonce"], n, "{claims}"),
            None => assert!(claims.get("nonce").is_none(), "a nonce nobody sent: {claims}"),
        }
        if let Some(acr) = claims.get("acr") {
            assert!(acr.is_string(), "acr {acr}");
        }
        if let Some(auth_time) = claims.get("auth_time") {
            assert!(
                auth_time.as_i64().is_some_and(|t| t <= now),
                "auth_time {auth_time}"
            );
        }
        if let Some(at_hash) = claims.get("at_hash") {
            let access = body["access_token"].as_str().unwrap();
            assert_eq!(*at_hash, wire::half_sha256(access), "at_hash");
        }
        if let Some(c_hash) = claims.get("c_hash") {
            let code = code.expect("c_hash in a token that no code was redeemed for");
            assert_eq!(*c_hash, wire::half_sha256(code), "c_hash");
        }
        claims
    }

    /// GET /userinfo with a bearer header: 200 JSON, well-typed, about the ID token's subject.
    async fn userinfo(&self, tokens: &Tokens) -> Value {
        let res = http()
            .get(self.env.url("/userinfo"))
            .bearer_auth(tokens.access_token())
            .send()
            .await
            .unwrap();
        self.check_userinfo(res, tokens).await
    }

    async fn check_userinfo(&self, res: reqwest::Response, tokens: &Tokens) -> Value {
        assert_eq!(res.status(), StatusCode::OK);
        let content_type = res.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let info: Value = res.json().await.unwrap();
        assert_eq!(info["sub"], tokens.id["sub"], "userinfo sub = ID token sub");
        assert_well_typed(&info);
        info
    }
}

impl Req {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(mut self, name: &str, value: &str) -> Req {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(pair) => pair.1 = value.to_owned(),
            None => self.params.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    fn without(mut self, name: &str) -> Req {
        self.params.retain(|(k, _)| k != name);
        self
    }

    fn url(&self, op: &Op) -> String {
        let mut url = url::Url::parse(&op.env.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(&self.params);
        url.to_string()
    }

    fn form(&self) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// RFC 6749 §5.1 and OIDC Core §3.1.3.3: JSON, `no-store`, a Bearer access token with its lifetime.
fn assert_token_response(headers: &header::HeaderMap, body: &Value) {
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert_eq!(
        headers.get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{body}"
    );
    // The suite warns when expires_in is missing.
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
}

/// The suite: every key in the JWKS has a `kid`, and no two share one.
fn assert_unique_kids(jwks: &Value) {
    let mut kids = wire::kids(jwks);
    let n = kids.len();
    assert!(n > 0, "an empty JWKS");
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), n, "duplicate kids in {jwks}");
}

/// OIDC Core §5.1: standard claims have their types.
fn assert_well_typed(info: &Value) {
    for name in [
        "sub",
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "email",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "phone_number",
    ] {
        if let Some(v) = info.get(name) {
            assert!(v.is_string(), "{name} is {v}");
        }
    }
    for name in ["email_verified", "phone_number_verified"] {
        if let Some(v) = info.get(name) {
            assert!(v.is_boolean(), "{name} is {v}");
        }
    }
    if let Some(v) = info.get("address") {
        assert!(v.is_object(), "address is {v}");
    }
    if let Some(v) = info.get("updated_at") {
        assert!(v.is_number(), "updated_at is {v}");
    }
    if let Some(b) = info.get("birthdate").and_then(Value::as_str) {
        assert!(
            regex_lite::Regex::new(r"^\d{4}(-\d{2}-\d{2})?$")
                .unwrap()
                .is_match(b),
            "birthdate {b}"
        );
    }
}

/// Shannon entropy of a string times its length: what the suite estimates a code's entropy by.
fn entropy_bits(s: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let n = s.chars().count() as f64;
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum::<f64>()
        * n
}

async fn discovery(base: &str) -> Value {
    let res = http()
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    res.json().await.unwrap()
}

fn strings(doc: &Value, name: &str) -> Vec<String> {
    doc[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not an array: {}", doc[name]))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{name} holds {v}"))
                .to_owned()
        })
        .collect()
}

/// An unsigned JWT (`alg: none`).
fn unsigned_jwt(claims: &Value) -> String {
    format!(
        "{}.{}.",
        wire::b64(br#"{"alg":"none"}"#),
        wire::b64(claims.to_string().as_bytes())
    )
}

// ===================================================================================================
// Basic OP (oidcc-basic-certification-test-plan); the Form Post OP plan runs each with form_post.

async fn oidcc_server(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let req = op.request();
    let code = op.sign_in(&browser, &req).await;
    let bits = entropy_bits(&code);
    assert!(bits >= 128.0, "code {code} has about {bits:.0} bits of entropy");
    let tokens = op.redeem(&op.client, &code, &req).await;
    // Only openid was asked for: the ID token carries no profile claims (the suite warns otherwise).
    for claim in ["name", "birthdate", "gender", "phone_number"] {
        assert!(
            tokens.id.get(claim).is_none(),
            "unrequested {claim}: {}",
            tokens.id
        );
    }
    op.userinfo(&tokens).await;
    // Codes are not derived from anything predictable.
    let again = op.request();
    assert_ne!(op.sign_in(&browser, &again).await, code);
}

async fn oidcc_response_type_missing(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().without("response_type");
    let page = op.browser().get(&req.url(&op)).await;
    op.expect_error(&page, &req, &["invalid_request", "unsupported_response_type"]);
}

async fn oidcc_idtoken_signature(backend: Backend, mode: Mode) {
    // A client registered without naming an ID token algorithm gets RS256, with a kid.
    let op = Op::start(backend, mode).await;
    let tokens = op.flow(&op.browser(), &op.request()).await;
    let (header, _) = wire::jwt_parts(tokens.id_token());
    assert_eq!(header["alg"], "RS256");
    let jwks = wire::jwks(&op.env.base).await;
    let kid = header["kid"].as_str().expect("a kid");
    assert_eq!(wire::jwk(&jwks, kid).expect("the kid is published")["kty"], "RSA");
}

async fn oidcc_idtoken_unsigned(backend: Backend, mode: Mode) {
    // Deliberate difference: unsigned ID tokens are never issued. Discovery does not list `none`
    // (so the suite skips this module), no client can register it, and every ID token is signed.
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    let algs = strings(&doc, "id_token_signing_alg_values_supported");
    assert!(!algs.iter().any(|a| a.eq_ignore_ascii_case("none")), "{algs:?}");
    assert_eq!(yunid::keys::Alg::parse("none"), None);
    let tokens = op.flow(&op.browser(), &op.request()).await;
    let signature = tokens.id_token().rsplit('.').next().unwrap();
    assert!(!signature.is_empty(), "an unsigned ID token");
}

async fn oidcc_userinfo_get(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("scope", "openid profile");
    let tokens = op.flow(&op.browser(), &req).await;
    let info = op.userinfo(&tokens).await;
    assert_eq!(info["name"], "张三");
}

async fn oidcc_userinfo_post_header(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("scope", "openid profile");
    let tokens = op.flow(&op.browser(), &req).await;
    let res = http()
        .post(op.env.url("/userinfo"))
        .bearer_auth(tokens.access_token())
        .send()
        .await
        .unwrap();
    let info = op.check_userinfo(res, &tokens).await;
    assert_eq!(info["name"], "张三");
}

async fn oidcc_userinfo_post_body(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("scope", "openid profile");
    let tokens = op.flow(&op.browser(), &req).await;
    let res = http()
        .post(op.env.url("/userinfo"))
        .form(&[("access_token", tokens.access_token())])
        .send()
        .await
        .unwrap();
    let info = op.check_userinfo(res, &tokens).await;
    assert_eq!(info["name"], "张三");
}

async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().without("nonce");
    // `redeem` checks that the ID token then carries no nonce.
    let tokens = op.flow(&op.browser(), &req).await;
    assert!(tokens.id.get("nonce").is_none());
}

/// A flow asking for `scope`; the granted scope and the userinfo answer.
async fn scope_flow(op: &Op, scope: &str) -> (Vec<String>, Value) {
    let req = op.request().set("scope", scope);
    let tokens = op.flow(&op.browser(), &req).await;
    let granted = tokens.body["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect();
    (granted, op.userinfo(&tokens).await)
}

async fn oidcc_scope_profile(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    assert!(strings(&doc, "scopes_supported").contains(&"profile".to_owned()));
    let (_, info) = scope_flow(&op, "openid profile").await;
    assert_eq!(info["name"], "张三");
    assert_eq!(info["birthdate"], "1949-12-31");
    assert_eq!(info["gender"], "female");
}

/// Deliberate difference: yunid holds no e-mail addresses or postal addresses. The scope is not in
/// `scopes_supported` (the suite skips the module), and asking for it anyway is ignored: the flow
/// succeeds, nothing is granted for it, and no such claim appears (OIDC Core §5.4: claims are returned
/// only when available).
async fn unsupported_scope_is_ignored(op: &Op, scope: &str, claims: &[&str]) {
    let doc = discovery(&op.env.base).await;
    assert!(!strings(&doc, "scopes_supported").contains(&scope.to_owned()));
    let (granted, info) = scope_flow(op, &format!("openid {scope}")).await;
    assert_eq!(granted, ["openid"], "granted");
    for claim in claims {
        assert!(info.get(*claim).is_none(), "{claim} in {info}");
    }
}

async fn oidcc_scope_email(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    unsupported_scope_is_ignored(&op, "email", &["email", "email_verified"]).await;
}

async fn oidcc_scope_address(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    unsupported_scope_is_ignored(&op, "address", &["address"]).await;
}

async fn oidcc_scope_phone(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let (_, info) = scope_flow(&op, "openid phone").await;
    assert_eq!(info["phone_number"], "+8613800138000");
    assert_eq!(info["phone_number_verified"], true);
    assert!(info.get("name").is_none(), "profile was not asked for: {info}");
}

async fn oidcc_scope_all(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let (mut granted, info) = scope_flow(&op, "openid profile email address phone").await;
    granted.sort();
    assert_eq!(granted, ["openid", "phone", "profile"]);
    assert_eq!(info["name"], "张三");
    assert_eq!(info["phone_number"], "+8613800138000");
    assert!(
        info.get("email").is_none() && info.get("address").is_none(),
        "{info}"
    );
}

async fn oidcc_alternate_happy_flow(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let mut req = op.request().set("scope", "email openid");
    req.params.reverse();
    let tokens = op.flow(&op.browser(), &req).await;
    op.userinfo(&tokens).await;
}

async fn display_succeeds(backend: Backend, mode: Mode, display: &str) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("display", display);
    op.flow(&op.browser(), &req).await;
}

async fn oidcc_display_page(backend: Backend, mode: Mode) {
    display_succeeds(backend, mode, "page").await;
}

async fn oidcc_display_popup(backend: Backend, mode: Mode) {
    display_succeeds(backend, mode, "popup").await;
}

fn auth_time(tokens: &Tokens) -> i64 {
    tokens.id["auth_time"].as_i64().expect("auth_time")
}

async fn oidcc_prompt_login(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let first = op.flow(&browser, &op.request()).await;
    op.env.app.clock.advance(1);

    let req = op.request().set("prompt", "login");
    let page = browser.get(&req.url(&op)).await;
    assert!(
        page.is_login(),
        "prompt=login shows the login page despite the session: {page:?}"
    );
    let back = browser.login(&page, ALICE_ID, PASSWORD).await;
    let code = op.expect_code(&back, &req);
    let second = op.redeem(&op.client, &code, &req).await;
    assert_eq!(second.id["sub"], first.id["sub"]);
    assert!(
        auth_time(&second) > auth_time(&first),
        "the second login is later"
    );
}

async fn oidcc_prompt_none_not_logged_in(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let state: String = "x".repeat(64) + &"y".repeat(64);
    assert_eq!(state.len(), 128);
    let req = op.request().set("prompt", "none").set("state", &state);
    let page = op.browser().get(&req.url(&op)).await;
    op.expect_error(
        &page,
        &req,
        &[
            "login_required",
            "interaction_required",
            "consent_required",
            "account_selection_required",
        ],
    );
}

/// A request answered without any page (what prompt=none asks for): the first response goes to the app.
async fn silent(op: &Op, browser: &Browser, req: &Req) -> String {
    let page = browser.get(&req.url(op)).await;
    assert!(!matches!(page, Page::Html { .. }), "a page was shown: {page:?}");
    op.expect_code(&page, req)
}

async fn oidcc_prompt_none_logged_in(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let first = op.flow(&browser, &op.request()).await;
    let req = op.request().set("prompt", "none");
    let code = silent(&op, &browser, &req).await;
    let second = op.redeem(&op.client, &code, &req).await;
    assert_eq!(second.id["sub"], first.id["sub"]);
    assert_eq!(second.id["auth_time"], first.id["auth_time"]);
}

async fn oidcc_max_age_1(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let first = op.flow(&browser, &op.request()).await;
    op.env.app.clock.advance(2);

    let req = op.request().set("max_age", "1");
    let page = browser.get(&req.url(&op)).await;
    assert!(page.is_login(), "the session is older than max_age: {page:?}");
    let back = browser.login(&page, ALICE_ID, PASSWORD).await;
    let code = op.expect_code(&back, &req);
    let second = op.redeem(&op.client, &code, &req).await;
    assert_eq!(second.id["sub"], first.id["sub"]);
    assert!(auth_time(&second) > auth_time(&first));
    assert!(op.env.app.now() - auth_time(&second) <= 30, "a recent auth_time");
}

async fn oidcc_max_age_10000(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let first = op.flow(&browser, &op.request().set("max_age", "15000")).await;
    op.env.app.clock.advance(2);
    let req = op.request().set("max_age", "10000");
    let code = silent(&op, &browser, &req).await;
    let second = op.redeem(&op.client, &code, &req).await;
    assert_eq!(second.id["sub"], first.id["sub"]);
    assert_eq!(auth_time(&second), auth_time(&first));
}

async fn oidcc_ensure_request_with_unknown_parameter_succeeds(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("extra", "foobar");
    let code = op.sign_in(&op.browser(), &req).await;
    op.redeem(&op.client, &code, &req).await;
}

async fn oidcc_id_token_hint(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let first = op.flow(&browser, &op.request()).await;
    let req = op
        .request()
        .set("prompt", "none")
        .set("id_token_hint", first.id_token());
    let code = silent(&op, &browser, &req).await;
    let second = op.redeem(&op.client, &code, &req).await;
    assert_eq!(second.id["sub"], first.id["sub"]);
}

async fn oidcc_login_hint(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let req = op.request().set("login_hint", ALICE_PHONE);
    let page = browser.get(&req.url(&op)).await;
    assert!(page.is_login(), "{page:?}");
    assert!(
        page.html().2.contains(&format!("value=\"{ALICE_PHONE}\"")),
        "the hint fills in the user name"
    );
    let page = browser.login(&page, ALICE_PHONE, PASSWORD).await;
    let page = browser.consent(&page, true).await;
    let code = op.expect_code(&page, &req);
    op.redeem(&op.client, &code, &req).await;
}

async fn oidcc_ui_locales(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let req = op.request().set("ui_locales", "en-US en");
    let page = browser.get(&req.url(&op)).await;
    assert!(page.is_login(), "{page:?}");
    assert!(
        page.html().2.contains("<html lang=\"en\">"),
        "the page is in English"
    );
    let page = browser.login(&page, ALICE_ID, PASSWORD).await;
    let page = browser.consent(&page, true).await;
    let code = op.expect_code(&page, &req);
    op.redeem(&op.client, &code, &req).await;
}

async fn oidcc_claims_locales(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request().set("claims_locales", "zh-CN en");
    op.flow(&op.browser(), &req).await;
}

async fn oidcc_ensure_request_with_acr_values_succeeds(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    let supported = strings(&doc, "acr_values_supported");
    assert!(!supported.is_empty());
    let req = op.request().set("acr_values", &supported.join(" "));
    let tokens = op.flow(&op.browser(), &req).await;
    let acr = tokens.id["acr"].as_str().expect("an acr");
    assert!(
        supported.iter().any(|s| s == acr),
        "acr {acr} not in {supported:?}"
    );
}

async fn oidcc_codereuse(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request();
    let code = op.sign_in(&op.browser(), &req).await;
    op.redeem(&op.client, &code, &req).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", req.verifier.as_str()),
    ];
    let (status, headers, body) = op.token_request(&op.client, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(body["error"], "invalid_grant");
}

async fn oidcc_codereuse_30seconds(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request();
    let code = op.sign_in(&op.browser(), &req).await;
    let first = op.redeem(&op.client, &code, &req).await;
    op.userinfo(&first).await;

    op.env.app.clock.advance(30);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", req.verifier.as_str()),
    ];
    let (status, _, body) = op.token_request(&op.client, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // The suite warns unless the first access token is then refused (RFC 6749 §4.1.2); yunid refuses it.
    let (status, _) = wire::userinfo(&op.env.base, first.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn oidcc_ensure_registered_redirect_uri(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let unregistered = format!("{REDIRECT_URI}/{}", yunid::crypto::random_token());
    let req = op.request().set("redirect_uri", &unregistered);
    let res = http().get(req.url(&op)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::LOCATION).is_none(), "redirected");
    let body = res.text().await.unwrap();
    assert!(body.contains("role=\"alert\""), "an error page: {body}");
    assert!(
        !body.contains(&unregistered),
        "the page links to the unregistered URI"
    );
    assert!(!body.contains("document.forms"), "the page posts somewhere");
}

async fn oidcc_ensure_post_request_succeeds(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let browser = op.browser();
    let req = op.request();
    let mut page = browser.post("/authorize", &req.form()).await;
    assert!(page.is_login(), "{page:?}");
    page = browser.login(&page, ALICE_ID, PASSWORD).await;
    page = browser.consent(&page, true).await;
    let code = op.expect_code(&page, &req);
    op.redeem(&op.client, &code, &req).await;
}

async fn oidcc_server_client_secret_post(backend: Backend, mode: Mode) {
    let op = Op::with_client(
        backend,
        mode,
        NewClient {
            auth_method: AuthMethod::ClientSecretPost,
            ..suite_client("conformance-suite (client_secret_post)")
        },
    )
    .await;
    let tokens = op.flow(&op.browser(), &op.request()).await;
    op.userinfo(&tokens).await;
}

async fn oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    backend: Backend,
    mode: Mode,
) {
    // Deliberate difference: request_uri only from PAR (RFC 9126). Discovery says so, and an outside
    // request_uri is refused with `request_uri_not_supported`.
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    assert_eq!(doc["request_uri_parameter_supported"], false);
    let req = op
        .request()
        .set("request_uri", "https://rp.conformance.example/requests/1.jwt");
    let page = op.browser().get(&req.url(&op)).await;
    op.expect_error(&page, &req, &["request_uri_not_supported"]);
}

async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    backend: Backend,
    mode: Mode,
) {
    // Deliberate difference: request objects are refused (`request_not_supported`), never ignored.
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    assert_eq!(doc["request_parameter_supported"], false);
    let req = op.request();
    let object: serde_json::Map<String, Value> =
        req.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let req = req.set("request", &unsigned_jwt(&Value::Object(object)));
    let page = op.browser().get(&req.url(&op)).await;
    op.expect_error(&page, &req, &["request_not_supported"]);
}

async fn oidcc_claims_essential(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let claims = json!({ "userinfo": { "name": { "essential": true } } }).to_string();
    let req = op.request().set("scope", "openid profile").set("claims", &claims);
    let tokens = op.flow(&op.browser(), &req).await;
    assert!(
        tokens.id.get("name").is_none(),
        "asked for in userinfo only: {}",
        tokens.id
    );
    let info = op.userinfo(&tokens).await;
    assert_eq!(info["name"], "张三");

    // Deliberate difference: claims are released only within the scopes the person consented to, so
    // with `scope=openid` alone the request succeeds without `name` (the suite only warns).
    let req = op.request().set("claims", &claims);
    let tokens = op.flow(&op.browser(), &req).await;
    assert!(op.userinfo(&tokens).await.get("name").is_none());
}

async fn oidcc_ensure_request_object_with_redirect_uri(backend: Backend, mode: Mode) {
    // The request object names the registered redirect URI, the query another: yunid does not read the
    // object, so the unregistered query URI gets an error page, and nothing is redirected anywhere.
    let op = Op::start(backend, mode).await;
    let req = op.request();
    let object: serde_json::Map<String, Value> =
        req.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let elsewhere = "https://rp.conformance.example/not-registered";
    let req = req
        .set("request", &unsigned_jwt(&Value::Object(object)))
        .set("redirect_uri", elsewhere);
    let res = http().get(req.url(&op)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::LOCATION).is_none(), "redirected");
    let body = res.text().await.unwrap();
    assert!(
        !body.contains(elsewhere) && !body.contains("document.forms"),
        "{body}"
    );
}

async fn oidcc_refresh_token(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let doc = discovery(&op.env.base).await;
    assert!(strings(&doc, "scopes_supported").contains(&"offline_access".to_owned()));
    let browser = op.browser();
    let req = op.request().set("scope", "openid offline_access");
    let first = op.flow(&browser, &req).await;
    let refresh_token = first.body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    // RFC 6749 Appendix A.17: 1*VSCHAR.
    assert!(
        refresh_token.chars().all(|c| matches!(c, '\x20'..='\x7e')),
        "{refresh_token}"
    );

    let (status, headers, body) = op
        .token_request(
            &op.client,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_response(&headers, &body);
    let refreshed = op.id_token_claims(&op.client, &body, None, None).await;
    for claim in ["iss", "sub", "aud", "auth_time", "azp"] {
        assert_eq!(
            refreshed.get(claim),
            first.id.get(claim),
            "{claim} changed on refresh"
        );
    }

    // Another client's refresh token is not this client's to use.
    let other = op
        .env
        .client_with(suite_client("conformance-suite (second client)"))
        .await;
    let other_req = op.request_for(&other).set("scope", "openid offline_access");
    let code = op.sign_in(&browser, &other_req).await;
    let theirs = op.redeem(&other, &code, &other_req).await;
    let their_refresh = theirs.body["refresh_token"].as_str().unwrap();
    let (status, _, body) = op
        .token_request(
            &op.client,
            &[("grant_type", "refresh_token"), ("refresh_token", their_refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

async fn oidcc_ensure_request_with_valid_pkce_succeeds(backend: Backend, mode: Mode) {
    let op = Op::start(backend, mode).await;
    let req = op.request();
    assert_eq!(req.get("code_challenge_method"), Some("S256"));
    let code = op.sign_in(&op.browser(), &req).await;
    let tokens = op.redeem(&op.client, &code, &req).await;
    op.userinfo(&tokens).await;
}

/// Generates, for one plan, a test fn per module with the plan's response mode, on both backends.
macro_rules! plan {
    ($mode:expr; $($module:ident),* $(,)?) => {
        $(
            async fn $module(backend: $crate::common::Backend) {
                super::$module(backend, $mode).await
            }
        )*
        $crate::on_both_backends!($($module),*);
    };
}

/// The 38 modules of oidcc-basic-certification-test-plan; the form-post plan runs the same ones.
macro_rules! basic_plan {
    ($mode:expr) => {
        plan!($mode;
            oidcc_server,
            oidcc_response_type_missing,
            oidcc_idtoken_signature,
            oidcc_idtoken_unsigned,
            oidcc_userinfo_get,
            oidcc_userinfo_post_header,
            oidcc_userinfo_post_body,
            oidcc_ensure_request_without_nonce_succeeds_for_code_flow,
            oidcc_scope_profile,
            oidcc_scope_email,
            oidcc_scope_address,
            oidcc_scope_phone,
            oidcc_scope_all,
            oidcc_alternate_happy_flow,
            oidcc_display_page,
            oidcc_display_popup,
            oidcc_prompt_login,
            oidcc_prompt_none_not_logged_in,
            oidcc_prompt_none_logged_in,
            oidcc_max_age_1,
            oidcc_max_age_10000,
            oidcc_ensure_request_with_unknown_parameter_succeeds,
            oidcc_id_token_hint,
            oidcc_login_hint,
            oidcc_ui_locales,
            oidcc_claims_locales,
            oidcc_ensure_request_with_acr_values_succeeds,
            oidcc_codereuse,
            oidcc_codereuse_30seconds,
            oidcc_ensure_registered_redirect_uri,
            oidcc_ensure_post_request_succeeds,
            oidcc_server_client_secret_post,
            oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported,
            oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported,
            oidcc_claims_essential,
            oidcc_ensure_request_object_with_redirect_uri,
            oidcc_refresh_token,
            oidcc_ensure_request_with_valid_pkce_succeeds,
        );
    };
}

/// oidcc-basic-certification-test-plan.
mod basic_op {
    basic_plan!(super::Mode::Query);
}

/// oidcc-formpost-basic-certification-test-plan: the same 38 modules with `response_mode=form_post`.
mod form_post_op {
    basic_plan!(super::Mode::FormPost);
}

// ===================================================================================================
// Config OP (oidcc-config-certification-test-plan) and the discovery checks of the logout plans.

/// A provider configured with an https issuer, as deployed (the test server itself speaks plain HTTP on
/// loopback; discovery only reflects the configured issuer).
async fn deployed(backend: Backend) -> Env {
    Env::start_with(backend, |c| {
        c.issuer = url::Url::parse("https://id.example.gov.cn").unwrap();
    })
    .await
}

const ENDPOINTS: [&str; 8] = [
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "end_session_endpoint",
    "pushed_authorization_request_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
];

/// Every endpoint is an https URL on the issuer's origin.
fn assert_https_endpoints(doc: &Value) {
    let issuer = url::Url::parse(doc["issuer"].as_str().expect("issuer")).unwrap();
    assert_eq!(issuer.scheme(), "https", "{issuer}");
    assert!(
        issuer.query().is_none() && issuer.fragment().is_none(),
        "{issuer}"
    );
    for name in ENDPOINTS {
        let url = url::Url::parse(doc[name].as_str().unwrap_or_else(|| panic!("no {name}"))).unwrap();
        assert_eq!(url.scheme(), "https", "{name}: {url}");
        assert_eq!(url.origin(), issuer.origin(), "{name}: {url}");
    }
}

async fn oidcc_discovery_endpoint_verification(backend: Backend) {
    let env = Env::start(backend).await;
    let doc = discovery(&env.base).await;
    // `issuer` is where the document was fetched from (a trailing slash aside).
    assert_eq!(doc["issuer"].as_str().unwrap().trim_end_matches('/'), env.base);
    assert!(
        strings(&doc, "response_types_supported").iter().any(|t| [
            "code",
            "id_token",
            "code id_token",
            "id_token token"
        ]
        .contains(&t.as_str())),
        "{doc}"
    );
    let subjects = strings(&doc, "subject_types_supported");
    assert!(
        subjects.iter().any(|s| s == "public" || s == "pairwise"),
        "{subjects:?}"
    );
    assert!(strings(&doc, "id_token_signing_alg_values_supported").contains(&"RS256".to_owned()));
    assert!(!strings(&doc, "grant_types_supported").is_empty());
    assert!(strings(&doc, "scopes_supported").contains(&"openid".to_owned()));
    assert!(!strings(&doc, "claims_supported").is_empty());
    assert!(!strings(&doc, "code_challenge_methods_supported").is_empty());
    // Known members have their types (OIDC Discovery §3).
    for name in [
        "response_modes_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "acr_values_supported",
        "claim_types_supported",
        "prompt_values_supported",
    ] {
        strings(&doc, name);
    }
    for name in [
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
    ] {
        assert!(doc[name].is_boolean(), "{name} is {}", doc[name]);
    }
    // BCP 47 language tags.
    let tag = regex_lite::Regex::new(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$").unwrap();
    for locale in strings(&doc, "ui_locales_supported") {
        assert!(tag.is_match(&locale), "{locale}");
    }
    // The JWKS is there, parses, and every key has a unique kid.
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    let jwks: Value = http().get(jwks_uri).send().await.unwrap().json().await.unwrap();
    assert_unique_kids(&jwks);
    for key in jwks["keys"].as_array().unwrap() {
        assert!(
            key["kty"].is_string() && key.get("d").is_none(),
            "a private key is published: {key}"
        );
    }
    // Dynamic registration is off unless an operator turns it on (registration.rs tests it on).
    assert!(doc.get("registration_endpoint").is_none());

    // Deployed with an https issuer, every endpoint is https on that origin.
    let deployed = deployed(backend).await;
    let doc = discovery(&deployed.base).await;
    assert_eq!(
        doc["issuer"].as_str().unwrap().trim_end_matches('/'),
        "https://id.example.gov.cn"
    );
    assert_https_endpoints(&doc);
}

mod config_op {
    use super::oidcc_discovery_endpoint_verification;
    crate::on_both_backends!(oidcc_discovery_endpoint_verification);
}

// ===================================================================================================
// RP-Initiated Logout OP (oidcc-rp-initiated-logout-certification-test-plan).

/// Logged in by the standard flow, ready to send the browser to the end-session endpoint.
struct LoggedIn {
    op: Op,
    browser: Browser,
    tokens: Tokens,
}

async fn logged_in(backend: Backend) -> LoggedIn {
    let op = Op::start(backend, Mode::Query).await;
    let browser = op.browser();
    let tokens = op.flow(&browser, &op.request()).await;
    LoggedIn { op, browser, tokens }
}

impl LoggedIn {
    fn logout_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.op.env.url("/logout")).unwrap();
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        url.to_string()
    }

    async fn logout(&self, params: &[(&str, &str)]) -> Page {
        self.browser.get(&self.logout_url(params)).await
    }

    /// A later `prompt=none` request: the session is over when it gets a login-required-type error.
    async fn assert_logged_out(&self) {
        let req = self.op.request().set("prompt", "none");
        let page = self.browser.get(&req.url(&self.op)).await;
        self.op
            .expect_error(&page, &req, &["login_required", "interaction_required"]);
    }

    async fn assert_still_logged_in(&self) {
        let req = self.op.request().set("prompt", "none");
        silent(&self.op, &self.browser, &req).await;
    }

    /// Refused: a page on the provider (error or confirmation), never a redirect.
    fn assert_refused(&self, page: &Page) {
        let (url, status, body) = page.html();
        assert!(url.starts_with(&self.op.env.base), "{url}");
        assert!(
            status == StatusCode::BAD_REQUEST || body.contains("action=\"/logout\""),
            "neither an error nor a confirmation page: {status} {body}"
        );
    }

    /// The person confirms on the confirmation page.
    async fn confirm(&self, page: &Page) -> Page {
        let body = page.html().2;
        assert!(
            body.contains("action=\"/logout\""),
            "not a confirmation page: {body}"
        );
        let re = regex_lite::Regex::new(r#"name="([^"]*)" value="([^"]*)""#).unwrap();
        let fields: Vec<(String, String)> = re
            .captures_iter(body)
            .map(|c| (c[1].to_owned(), c[2].replace("&amp;", "&")))
            .collect();
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.browser.post("/logout", &form).await
    }

    /// The "logged out" page, on the provider, with no redirect.
    fn assert_logged_out_page(&self, page: &Page) {
        let (url, status, body) = page.html();
        assert!(url.starts_with(&self.op.env.base), "{url}");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(ZH.logged_out), "{body}");
    }

    /// The browser was sent to the registered post-logout URI; its query parameters.
    fn back_at_the_app(&self, page: &Page) -> Vec<(String, String)> {
        let mut url = page.left().clone();
        let params = url.query_pairs().into_owned().collect();
        url.set_query(None);
        assert_eq!(url.as_str(), POST_LOGOUT_REDIRECT_URI);
        params
    }
}

async fn oidcc_rp_initiated_logout_discovery_endpoint_verification(backend: Backend) {
    let env = deployed(backend).await;
    let doc = discovery(&env.base).await;
    assert_eq!(doc["end_session_endpoint"], "https://id.example.gov.cn/logout");
    assert_https_endpoints(&doc);
}

async fn oidcc_rp_initiated_logout(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s
        .logout(&[
            ("id_token_hint", s.tokens.id_token()),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "rp-logout-state"),
        ])
        .await;
    assert_eq!(
        s.back_at_the_app(&page),
        [("state".into(), "rp-logout-state".into())]
    );
    s.assert_logged_out().await;
}

async fn oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s
        .logout(&[
            ("id_token_hint", s.tokens.id_token()),
            (
                "post_logout_redirect_uri",
                "https://rp.conformance.example/not-registered",
            ),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
    assert!(!page.html().2.contains("not-registered"), "the page links to it");
}

async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(backend: Backend) {
    let s = logged_in(backend).await;
    let with_query = format!("{POST_LOGOUT_REDIRECT_URI}?foo=bar");
    let page = s
        .logout(&[
            ("id_token_hint", s.tokens.id_token()),
            ("post_logout_redirect_uri", &with_query),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
}

async fn oidcc_rp_initiated_logout_modified_id_token_hint(backend: Backend) {
    let s = logged_in(backend).await;
    let hint = s.tokens.id_token();
    let (mut header, _) = wire::jwt_parts(hint);
    header["alg"] = json!("none");
    let payload = hint.split('.').nth(1).unwrap();
    let unsigned = format!("{}.{payload}.", wire::b64(header.to_string().as_bytes()));
    let page = s
        .logout(&[
            ("id_token_hint", &unsigned),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
    s.assert_still_logged_in().await;
}

async fn oidcc_rp_initiated_logout_bad_id_token_hint(backend: Backend) {
    let s = logged_in(backend).await;
    // The client mints its own "ID token": iss = its client_id, HS256 with its secret.
    let (_, mut claims) = wire::jwt_parts(s.tokens.id_token());
    claims["iss"] = json!(s.op.client.id);
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(s.op.client.secret.as_bytes()),
    )
    .unwrap();
    let page = s
        .logout(&[
            ("id_token_hint", &forged),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
    s.assert_still_logged_in().await;
}

async fn oidcc_rp_initiated_logout_no_id_token_hint(backend: Backend) {
    let s = logged_in(backend).await;
    // Without client_id nothing vouches for the URI: an error page.
    let page = s
        .logout(&[
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
    // With client_id: the person is asked, and confirming keeps them on the provider.
    let page = s
        .logout(&[
            ("client_id", &s.op.client.id),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "s"),
        ])
        .await;
    s.assert_refused(&page);
    s.assert_still_logged_in().await;
    let page = s.confirm(&page).await;
    s.assert_logged_out_page(&page);
    s.assert_logged_out().await;
}

async fn oidcc_rp_initiated_logout_no_params(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s.logout(&[]).await;
    // A bare link cannot log anyone out by itself: the person confirms.
    s.assert_still_logged_in().await;
    let page = s.confirm(&page).await;
    s.assert_logged_out_page(&page);
    s.assert_logged_out().await;
}

async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s
        .logout(&[("id_token_hint", s.tokens.id_token()), ("state", "s")])
        .await;
    s.assert_logged_out_page(&page);
    s.assert_logged_out().await;
}

async fn oidcc_rp_initiated_logout_no_state(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s
        .logout(&[
            ("id_token_hint", s.tokens.id_token()),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
        ])
        .await;
    assert_eq!(s.back_at_the_app(&page), []);
    s.assert_logged_out().await;
}

async fn oidcc_rp_initiated_logout_only_state(backend: Backend) {
    let s = logged_in(backend).await;
    let page = s.logout(&[("state", "only-state")]).await;
    assert!(!matches!(page, Page::Left(_)), "redirected: {page:?}");
    s.assert_still_logged_in().await;
    let page = s.confirm(&page).await;
    s.assert_logged_out_page(&page);
    s.assert_logged_out().await;
}

mod rp_initiated_logout_op {
    use super::*;
    crate::on_both_backends!(
        oidcc_rp_initiated_logout_discovery_endpoint_verification,
        oidcc_rp_initiated_logout,
        oidcc_rp_initiated_logout_bad_post_logout_redirect_uri,
        oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri,
        oidcc_rp_initiated_logout_modified_id_token_hint,
        oidcc_rp_initiated_logout_bad_id_token_hint,
        oidcc_rp_initiated_logout_no_id_token_hint,
        oidcc_rp_initiated_logout_no_params,
        oidcc_rp_initiated_logout_no_post_logout_redirect_uri,
        oidcc_rp_initiated_logout_no_state,
        oidcc_rp_initiated_logout_only_state,
    );
}

// ===================================================================================================
// Back-Channel Logout OP (oidcc-backchannel-rp-initiated-logout-certification-test-plan), and the
// behaviours of OIDC Back-Channel Logout 1.0 that plan relies on.

/// The suite's client with a back-channel logout URI at `receiver`.
fn backchannel_client(receiver: &Receiver, name: &str, path: &str) -> NewClient {
    NewClient {
        backchannel_logout_uri: Some(receiver.url(path)),
        ..suite_client(name)
    }
}

/// Waits for the one delivery to `path` and returns the logout token, after checking the request has
/// no other form member (Back-Channel Logout 1.0 §2.5).
async fn logout_token_at(receiver: &Receiver, path: &str) -> String {
    let hits = receiver
        .wait_until(std::time::Duration::from_secs(10), |hits| {
            hits.iter().any(|h| h.path == path)
        })
        .await;
    let hit: &Hit = hits.iter().find(|h| h.path == path).unwrap();
    assert_eq!(
        hit.form.keys().collect::<Vec<_>>(),
        ["logout_token"],
        "the POST carries only logout_token"
    );
    hit.form["logout_token"].clone()
}

/// Back-Channel Logout 1.0 §2.4 and §2.6, as the suite checks a logout token.
async fn check_logout_token(op: &Op, client: &TestClient, token: &str, id: &Value) -> Value {
    let jwks = wire::jwks(&op.env.base).await;
    let (header, claims) = wire::verify_jws(&jwks, token).expect("signed by a published key");
    assert_eq!(header["typ"], "logout+jwt", "§2.4: explicitly typed");
    assert_eq!(claims["iss"], op.issuer());
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == client.id,
        Value::Array(a) => a.iter().any(|x| *x == client.id.as_str()),
        _ => false,
    };
    assert!(aud_ok, "aud {} for {}", claims["aud"], client.id);
    let now = op.env.app.now();
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(iat <= now + 300 && iat >= now - 86_400, "iat {iat}, now {now}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "jti");
    assert_eq!(
        claims["events"],
        json!({ BACKCHANNEL_EVENT: {} }),
        "exactly the logout event"
    );
    assert!(claims.get("nonce").is_none(), "§2.4: a logout token has no nonce");
    assert!(claims.get("sub").is_some() || claims.get("sid").is_some());
    if let Some(sub) = claims.get("sub") {
        assert_eq!(*sub, id["sub"]);
    }
    if let Some(sid) = claims.get("sid") {
        assert_eq!(*sid, id["sid"]);
    }
    claims
}

async fn oidcc_backchannel_logout_discovery_endpoint_verification(backend: Backend) {
    let env = deployed(backend).await;
    let doc = discovery(&env.base).await;
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert_https_endpoints(&doc);
}

async fn oidcc_backchannel_rp_initiated_logout(backend: Backend) {
    let receiver = Receiver::start(0).await;
    let op = Op::with_client(
        backend,
        Mode::Query,
        backchannel_client(&receiver, "conformance-suite", "/backchannel"),
    )
    .await;
    let browser = op.browser();
    let tokens = op.flow(&browser, &op.request()).await;
    assert!(
        tokens.id["sid"].is_string(),
        "the ID token names its session: {}",
        tokens.id
    );

    let s = LoggedIn { op, browser, tokens };
    let page = s
        .logout(&[
            ("id_token_hint", s.tokens.id_token()),
            ("post_logout_redirect_uri", POST_LOGOUT_REDIRECT_URI),
            ("state", "bc-state"),
        ])
        .await;
    assert_eq!(s.back_at_the_app(&page), [("state".into(), "bc-state".into())]);
    let token = logout_token_at(&receiver, "/backchannel").await;
    let claims = check_logout_token(&s.op, &s.op.client, &token, &s.tokens.id).await;
    assert_eq!(claims["sid"], s.tokens.id["sid"], "sid, as discovery promises");
    s.assert_logged_out().await;
}

async fn backchannel_logout_token_is_typed_signed_and_carries_no_nonce(backend: Backend) {
    // The token is explicitly typed `logout+jwt` (so no ID token can be replayed as one, and no logout
    // token accepted as an ID token), signed with the client's ID token algorithm, and nonce-free.
    let receiver = Receiver::start(0).await;
    let op = Op::with_client(
        backend,
        Mode::Query,
        NewClient {
            id_token_alg: yunid::keys::Alg::ES256,
            ..backchannel_client(&receiver, "es256 app", "/es256")
        },
    )
    .await;
    let browser = op.browser();
    let req = op.request();
    let code = op.sign_in(&browser, &req).await;
    let (status, _, body) = op
        .token_request(
            &op.client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &req.verifier),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    let (id_header, id) = wire::jwt_parts(id_token);
    assert_eq!(id["nonce"], req.get("nonce").unwrap(), "the ID token had a nonce");

    browser
        .get(&format!("{}/logout?id_token_hint={id_token}", op.env.base))
        .await;
    let token = logout_token_at(&receiver, "/es256").await;
    let (header, _) = wire::jwt_parts(&token);
    assert_eq!(header["alg"], id_header["alg"]);
    assert_ne!(header["typ"], id_header["typ"]);
    check_logout_token(&op, &op.client, &token, &id).await;
}

async fn backchannel_logout_reaches_each_client_with_its_own_token(backend: Backend) {
    // Every client the session signed in to gets a token naming only itself, with its own sub (pairwise)
    // and the one shared sid; no two tokens share a jti.
    let receiver = Receiver::start(0).await;
    let op = Op::with_client(
        backend,
        Mode::Query,
        backchannel_client(&receiver, "first app", "/first"),
    )
    .await;
    let second = op
        .env
        .client_with(NewClient {
            sector: Some("second.example".into()),
            ..backchannel_client(&receiver, "second app", "/second")
        })
        .await;
    let browser = op.browser();
    let first_tokens = op.flow(&browser, &op.request()).await;
    let second_req = op.request_for(&second);
    let code = op.sign_in(&browser, &second_req).await;
    let second_tokens = op.redeem(&second, &code, &second_req).await;
    // One session, but each app holds its own `sid` for it.
    assert_ne!(first_tokens.id["sid"], second_tokens.id["sid"]);
    assert_ne!(first_tokens.id["sub"], second_tokens.id["sub"]);

    browser
        .get(&format!(
            "{}/logout?id_token_hint={}",
            op.env.base,
            second_tokens.id_token()
        ))
        .await;
    let first = logout_token_at(&receiver, "/first").await;
    let second_token = logout_token_at(&receiver, "/second").await;
    let a = check_logout_token(&op, &op.client, &first, &first_tokens.id).await;
    let b = check_logout_token(&op, &second, &second_token, &second_tokens.id).await;
    assert_ne!(a["jti"], b["jti"]);
    assert_eq!(a["aud"], op.client.id.as_str());
    assert_eq!(b["aud"], second.id.as_str());
}

mod backchannel_logout_op {
    use super::*;
    crate::on_both_backends!(
        oidcc_backchannel_logout_discovery_endpoint_verification,
        oidcc_backchannel_rp_initiated_logout,
        backchannel_logout_token_is_typed_signed_and_carries_no_nonce,
        backchannel_logout_reaches_each_client_with_its_own_token,
    );
}

#[test]
fn entropy_of_a_code_is_estimated_like_the_suite() {
    assert!(entropy_bits(&yunid::crypto::random_token()) > 128.0);
    assert!(entropy_bits(&"a".repeat(100)) < 1.0);
    assert!(entropy_bits("0123456789abcdef") < 128.0);
}
