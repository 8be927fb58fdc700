//! What people and apps see when an authorization request goes wrong, or asks for something special.
//!
//! Two kinds of failure: while the redirect URI cannot be trusted the provider shows its own error
//! page and never redirects; once it is trusted, errors go back to the app with `error`, `state` and
//! `iss` (RFC 9207), by the response mode the app asked for.

use std::collections::HashMap;

use openidconnect::TokenResponse;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;

use crate::common::browser::{Page, field};
use crate::common::rp::Rp;
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce, resident_id,
};
use crate::on_both_backends;

/// The app's registered redirect URI (https, as production apps have).
const APP_CB: &str = "https://app.example.gov.cn/cb";

/// A provider with Alice and one app registered at [`APP_CB`].
async fn setup(backend: Backend) -> (Env, TestClient) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(APP_CB).await;
    (env, client)
}

/// The parameters of an authorization request, in order, so tests can change, drop or repeat any.
#[derive(Clone)]
struct AuthParams(Vec<(String, String)>);

impl AuthParams {
    /// A valid code-flow request with PKCE (S256), a state and a nonce.
    fn valid(client: &TestClient, state: &str) -> AuthParams {
        let (_, challenge) = pkce();
        AuthParams(
            [
                ("response_type", "code"),
                ("client_id", client.id.as_str()),
                ("redirect_uri", client.redirect_uri.as_str()),
                ("scope", "openid profile"),
                ("state", state),
                ("nonce", "n-0S6_WzA2Mj"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        )
    }

    /// Replaces a parameter (or adds it when absent).
    fn set(mut self, name: &str, value: &str) -> AuthParams {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(pair) => pair.1 = value.to_owned(),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    fn without(mut self, name: &str) -> AuthParams {
        self.0.retain(|(k, _)| k != name);
        self
    }

    /// Adds a parameter even if it is already there (a repeat).
    fn also(mut self, name: &str, value: &str) -> AuthParams {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }

    fn url(&self, env: &Env) -> String {
        env.url(&format!("/authorize?{}", self.query()))
    }
}

/// A browser-less GET (no cookies, no redirects followed).
async fn get(url: &str) -> reqwest::Response {
    let res = http().get(url).send().await.unwrap();
    assert_ne!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{url}");
    res
}

/// The provider refused on its own origin: an HTML error page, 400, no `Location`, and the untrusted
/// URI appears nowhere in the page (no link, no meta refresh, no auto-submitting form).
async fn assert_error_page(res: reqwest::Response, untrusted: Option<&str>) {
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        headers.get(header::LOCATION).is_none(),
        "redirected to {:?}",
        headers.get(header::LOCATION)
    );
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("class=\"error\" role=\"alert\""), "{body}");
    assert!(!body.contains("<form"), "{body}");
    assert!(!body.contains("document.forms"), "{body}");
    if let Some(uri) = untrusted {
        assert!(!body.contains(uri), "the page mentions {uri}: {body}");
    }
}

/// The error went back to the app's registered redirect URI with `error`, `state` and `iss`.
fn assert_error_to_app(
    env: &Env,
    client: &TestClient,
    res: &reqwest::Response,
    error: &str,
    state: &str,
) -> HashMap<String, String> {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    let mut bare = location.clone();
    bare.set_query(None);
    assert_eq!(bare.as_str(), client.redirect_uri);
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(params.get("error").map(String::as_str), Some(error), "{params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some(state), "{params:?}");
    assert_eq!(params.get("iss"), Some(&env.base), "{params:?}");
    assert!(!params.contains_key("code"), "{params:?}");
    params
}

/// Sends a request that must come back to the app as `error`.
async fn expect_error_to_app(env: &Env, client: &TestClient, params: &AuthParams, error: &str) {
    let state = params
        .0
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.clone())
        .unwrap();
    let res = get(&params.url(env)).await;
    assert_error_to_app(env, client, &res, error, &state);
}

/// Redeems a code at the token endpoint and returns the JSON answer.
async fn redeem(env: &Env, client: &TestClient, code: &str, verifier: &str) -> Value {
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Logs Alice in and consents once, so the browser has a session and the app has consent.
async fn signed_in(env: &Env, client: &TestClient) -> Browser {
    let browser = Browser::new(&env.base);
    let back = browser
        .sign_in(&AuthParams::valid(client, "first").url(env), ALICE_ID, PASSWORD)
        .await;
    assert!(back.params().contains_key("code"));
    browser
}

/// The header protections every provider page carries against being framed.
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

// ---------------------------------------------------------------------------------------------------
// An untrusted redirect URI: an error page on the provider, never a redirect.

async fn mutated_redirect_uri_gets_an_error_page(backend: Backend, mutated: &str) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "s1").set("redirect_uri", mutated);
    assert_error_page(get(&params.url(&env)).await, Some(mutated)).await;
    // The same request with the registered URI does go back to the app.
    let ok = get(&params.set("redirect_uri", APP_CB).url(&env)).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

async fn redirect_uri_with_trailing_slash_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://app.example.gov.cn/cb/").await;
}

async fn redirect_uri_with_different_case_in_path_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://app.example.gov.cn/CB").await;
}

async fn redirect_uri_with_different_case_in_host_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://APP.Example.gov.cn/cb").await;
}

async fn redirect_uri_with_an_added_port_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://app.example.gov.cn:8443/cb").await;
}

async fn redirect_uri_with_the_default_port_spelled_out_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://app.example.gov.cn:443/cb").await;
}

async fn redirect_uri_with_an_extra_query_parameter_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "https://app.example.gov.cn/cb?next=/admin").await;
}

async fn redirect_uri_downgraded_to_http_gets_an_error_page(backend: Backend) {
    mutated_redirect_uri_gets_an_error_page(backend, "http://app.example.gov.cn/cb").await;
}

async fn redirect_uri_of_another_app_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let other = env.client("https://other.example.gov.cn/cb").await;
    let params = AuthParams::valid(&client, "s1").set("redirect_uri", &other.redirect_uri);
    assert_error_page(get(&params.url(&env)).await, Some(&other.redirect_uri)).await;
}

async fn missing_redirect_uri_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "s1").without("redirect_uri");
    assert_error_page(get(&params.url(&env)).await, None).await;
}

async fn unknown_or_missing_client_id_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let unknown = AuthParams::valid(&client, "s1").set("client_id", "no-such-app");
    assert_error_page(get(&unknown.url(&env)).await, None).await;
    let missing = AuthParams::valid(&client, "s1").without("client_id");
    assert_error_page(get(&missing.url(&env)).await, None).await;
}

async fn repeated_redirect_uri_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    // Even the registered URI twice: which one would the app have meant?
    let same_twice = AuthParams::valid(&client, "s1").also("redirect_uri", APP_CB);
    assert_error_page(get(&same_twice.url(&env)).await, None).await;
    let evil = "https://evil.example.com/cb";
    let registered_then_evil = AuthParams::valid(&client, "s1").also("redirect_uri", evil);
    assert_error_page(get(&registered_then_evil.url(&env)).await, Some(evil)).await;
}

async fn repeated_client_id_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "s1").also("client_id", &client.id);
    assert_error_page(get(&params.url(&env)).await, None).await;
}

async fn invalid_request_with_an_untrusted_redirect_uri_still_gets_an_error_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let evil = "https://evil.example.com/cb";
    let params = AuthParams::valid(&client, "s1")
        .set("redirect_uri", evil)
        .set("response_type", "token")
        .set("prompt", "none")
        .set("response_mode", "form_post");
    let res = get(&params.url(&env)).await;
    assert_error_page(res, Some(evil)).await;
}

// ---------------------------------------------------------------------------------------------------
// Once the redirect URI is trusted, errors go back to the app.

async fn missing_response_type_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "st-rt").without("response_type");
    expect_error_to_app(&env, &client, &params, "invalid_request").await;
}

async fn response_type_token_goes_back_as_unsupported_response_type(backend: Backend) {
    let (env, client) = setup(backend).await;
    for response_type in ["token", "id_token", "code id_token"] {
        let params = AuthParams::valid(&client, "st-tok").set("response_type", response_type);
        expect_error_to_app(&env, &client, &params, "unsupported_response_type").await;
    }
}

async fn request_without_code_challenge_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "st-pkce")
        .without("code_challenge")
        .without("code_challenge_method");
    expect_error_to_app(&env, &client, &params, "invalid_request").await;
}

async fn plain_code_challenge_method_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (verifier, _) = pkce();
    let plain = AuthParams::valid(&client, "st-plain")
        .set("code_challenge", &verifier)
        .set("code_challenge_method", "plain");
    expect_error_to_app(&env, &client, &plain, "invalid_request").await;
    // No method at all defaults to plain (RFC 7636 §4.3): refused too.
    let defaulted = AuthParams::valid(&client, "st-plain").without("code_challenge_method");
    expect_error_to_app(&env, &client, &defaulted, "invalid_request").await;
}

async fn malformed_code_challenge_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (_, good) = pkce();
    let too_short = &good[..42];
    let too_long = format!("{good}A");
    let bad_chars = format!("{}+/=", &good[..40]);
    for challenge in [too_short, too_long.as_str(), bad_chars.as_str()] {
        let params = AuthParams::valid(&client, "st-mal").set("code_challenge", challenge);
        expect_error_to_app(&env, &client, &params, "invalid_request").await;
    }
}

async fn repeated_scope_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "st-rep").also("scope", "openid phone");
    expect_error_to_app(&env, &client, &params, "invalid_request").await;
    let params = AuthParams::valid(&client, "st-rep").also("nonce", "another");
    expect_error_to_app(&env, &client, &params, "invalid_request").await;
}

async fn request_object_goes_back_as_request_not_supported(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params =
        AuthParams::valid(&client, "st-ro").set("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.");
    expect_error_to_app(&env, &client, &params, "request_not_supported").await;
}

async fn prompt_none_without_a_session_returns_login_required_with_state_intact(backend: Backend) {
    let (env, client) = setup(backend).await;
    // 128 characters, including ones that must be escaped in a query string.
    let alphabet = "AZaz09-._~+/=&% 中?#";
    let state: String = alphabet.chars().cycle().take(128).collect();
    assert_eq!(state.chars().count(), 128);
    let params = AuthParams::valid(&client, &state).set("prompt", "none");
    let res = get(&params.url(&env)).await;
    assert_error_to_app(&env, &client, &res, "login_required", &state);
}

async fn invalid_max_age_goes_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    for max_age in ["-1", "ten", "1.5", "99999999999999999999999"] {
        let params = AuthParams::valid(&client, "st-age").set("max_age", max_age);
        expect_error_to_app(&env, &client, &params, "invalid_request").await;
    }
}

async fn claims_that_are_not_a_json_object_go_back_as_invalid_request(backend: Backend) {
    let (env, client) = setup(backend).await;
    for claims in ["{userinfo:", "not json", "[\"phone_number\"]", "42"] {
        let params = AuthParams::valid(&client, "st-claims").set("claims", claims);
        expect_error_to_app(&env, &client, &params, "invalid_request").await;
    }
}

async fn request_without_a_usable_scope_goes_back_as_invalid_scope(backend: Backend) {
    let (env, client) = setup(backend).await;
    for scope in ["email address", "admin"] {
        let params = AuthParams::valid(&client, "st-scope").set("scope", scope);
        expect_error_to_app(&env, &client, &params, "invalid_scope").await;
    }
    let params = AuthParams::valid(&client, "st-scope").without("scope");
    expect_error_to_app(&env, &client, &params, "invalid_scope").await;
}

// ---------------------------------------------------------------------------------------------------
// response_mode=form_post

/// The script nonce of a form_post response: the CSP allows exactly the nonce the page's script has.
async fn form_post_nonce(res: reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::OK);
    assert_unframeable(res.headers(), "form_post page");
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let body = res.text().await.unwrap();
    let nonce = regex_lite::Regex::new(r"script-src 'nonce-([A-Za-z0-9_-]{16,})'")
        .unwrap()
        .captures(&csp)
        .unwrap_or_else(|| panic!("no script nonce in {csp}"))[1]
        .to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("form-action https://app.example.gov.cn"), "{csp}");
    assert!(
        body.contains(&format!("<script nonce=\"{nonce}\">")),
        "the page's script does not carry the CSP nonce: {body}"
    );
    nonce
}

async fn form_post_delivers_the_code_in_a_self_submitting_form(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (verifier, challenge) = pkce();
    let params = AuthParams::valid(&client, "st-fp")
        .set("code_challenge", &challenge)
        .set("response_mode", "form_post");
    let browser = Browser::new(&env.base);
    let page = browser.sign_in(&params.url(&env), ALICE_ID, PASSWORD).await;
    let Page::FormPost { action, fields } = &page else {
        panic!("expected a form_post page, got {page:?}");
    };
    assert_eq!(action, APP_CB);
    assert_eq!(fields["state"], "st-fp");
    assert_eq!(fields["iss"], env.base);
    assert!(!fields.contains_key("error"), "{fields:?}");
    let body = redeem(&env, &client, &fields["code"], &verifier).await;
    assert!(body["id_token"].is_string());

    // The same request again, now with a session and consent: the page comes straight back, and its
    // script nonce is fresh every time.
    let first = browser.http.get(params.url(&env)).send().await.unwrap();
    let second = browser.http.get(params.url(&env)).send().await.unwrap();
    let n1 = form_post_nonce(first).await;
    let n2 = form_post_nonce(second).await;
    assert_ne!(n1, n2);
}

async fn form_post_delivers_errors_in_a_self_submitting_form(backend: Backend) {
    let (env, client) = setup(backend).await;
    let params = AuthParams::valid(&client, "st-fperr")
        .set("response_mode", "form_post")
        .set("response_type", "token");
    let page = Browser::new(&env.base).get(&params.url(&env)).await;
    let Page::FormPost { action, fields } = &page else {
        panic!("expected a form_post page, got {page:?}");
    };
    assert_eq!(action, APP_CB);
    assert_eq!(fields["error"], "unsupported_response_type");
    assert_eq!(fields["state"], "st-fperr");
    assert_eq!(fields["iss"], env.base);
    assert!(!fields.contains_key("code"));
    form_post_nonce(get(&params.url(&env)).await).await;

    // prompt=none without a session also answers by form_post.
    let params = AuthParams::valid(&client, "st-fpnone")
        .set("response_mode", "form_post")
        .set("prompt", "none");
    let page = Browser::new(&env.base).get(&params.url(&env)).await;
    let Page::FormPost { fields, .. } = &page else {
        panic!("expected a form_post page, got {page:?}");
    };
    assert_eq!(fields["error"], "login_required");
    assert_eq!(fields["state"], "st-fpnone");
}

// ---------------------------------------------------------------------------------------------------
// prompt, max_age, consent

async fn prompt_login_asks_for_the_password_again_despite_a_session(backend: Backend) {
    let (env, client) = setup(backend).await;
    let browser = signed_in(&env, &client).await;
    // Without prompt=login the session is enough.
    let again = browser.get(&AuthParams::valid(&client, "s2").url(&env)).await;
    assert!(again.params().contains_key("code"));

    let page = browser
        .get(&AuthParams::valid(&client, "s3").set("prompt", "login").url(&env))
        .await;
    assert!(page.is_login(), "{page:?}");
    let back = browser.login(&page, ALICE_ID, PASSWORD).await;
    let params = back.params();
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(params["state"], "s3");
}

async fn max_age_forces_a_fresh_login_and_a_later_auth_time(backend: Backend) {
    let (env, client) = setup(backend).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);

    let auth_time = |attempt: crate::common::rp::Attempt, code: String| {
        let rp = &rp;
        async move {
            let tokens = rp.exchange(&code, attempt.verifier).await.unwrap();
            let verifier = rp.client.id_token_verifier();
            let claims = tokens
                .id_token()
                .unwrap()
                .claims(&verifier, &attempt.nonce)
                .unwrap()
                .clone();
            claims.auth_time().unwrap().timestamp()
        }
    };

    let first = rp.start(&["profile"]);
    let back = browser.sign_in(first.url.as_str(), ALICE_ID, PASSWORD).await;
    let t0 = auth_time(first, back.params()["code"].clone()).await;

    env.app.clock.advance(2);
    // A generous max_age is satisfied by the session: no page.
    let lenient = rp.start(&["profile"]);
    let back = browser.get(&format!("{}&max_age=600", lenient.url)).await;
    assert_eq!(auth_time(lenient, back.params()["code"].clone()).await, t0);

    // max_age=1 after two seconds: the password again, and a later auth_time.
    let strict = rp.start(&["profile"]);
    let page = browser.get(&format!("{}&max_age=1", strict.url)).await;
    assert!(page.is_login(), "{page:?}");
    let back = browser.login(&page, ALICE_ID, PASSWORD).await;
    let t1 = auth_time(strict, back.params()["code"].clone()).await;
    assert!(t1 > t0, "auth_time {t1} is not later than {t0}");

    // max_age=0 one second later: again.
    env.app.clock.advance(1);
    let zero = rp.start(&["profile"]);
    let page = browser.get(&format!("{}&max_age=0", zero.url)).await;
    assert!(page.is_login(), "{page:?}");
}

async fn prompt_none_with_a_session_and_consent_returns_a_code_without_any_page(backend: Backend) {
    let (env, client) = setup(backend).await;
    let browser = signed_in(&env, &client).await;
    let (verifier, challenge) = pkce();
    let params = AuthParams::valid(&client, "st-silent")
        .set("prompt", "none")
        .set("code_challenge", &challenge);
    // One response, straight back to the app.
    let res = browser.http.get(params.url(&env)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(res.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(APP_CB), "{location}");
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "st-silent");
    assert_eq!(params["iss"], env.base);
    assert!(!params.contains_key("error"), "{params:?}");
    let body = redeem(&env, &client, &params["code"], &verifier).await;
    assert!(body["access_token"].is_string());

    // A scope not consented to yet cannot be granted silently.
    let more = AuthParams::valid(&client, "st-more")
        .set("prompt", "none")
        .set("scope", "openid phone");
    let res = browser.http.get(more.url(&env)).send().await.unwrap();
    assert_error_to_app(&env, &client, &res, "consent_required", "st-more");
}

async fn prompt_consent_shows_the_consent_page_again(backend: Backend) {
    let (env, client) = setup(backend).await;
    let browser = signed_in(&env, &client).await;
    let page = browser
        .get(
            &AuthParams::valid(&client, "st-c")
                .set("prompt", "consent")
                .url(&env),
        )
        .await;
    assert!(page.is_consent(), "{page:?}");
    let back = browser.consent(&page, true).await;
    assert_eq!(back.params()["state"], "st-c");
    assert!(back.params().contains_key("code"));
}

async fn denying_consent_sends_access_denied_to_the_app(backend: Backend) {
    let (env, client) = setup(backend).await;
    let browser = Browser::new(&env.base);
    let page = browser
        .get(&AuthParams::valid(&client, "st-deny").url(&env))
        .await;
    let page = browser.login(&page, ALICE_ID, PASSWORD).await;
    let back = browser.consent(&page, false).await;
    let params = back.params();
    assert!(back.left().as_str().starts_with(APP_CB));
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "st-deny");
    assert_eq!(params["iss"], env.base);
    assert!(!params.contains_key("code"));
    // Nothing was remembered: the next request asks again.
    let page = browser
        .get(&AuthParams::valid(&client, "st-again").url(&env))
        .await;
    assert!(page.is_consent(), "{page:?}");
}

async fn unknown_extra_parameters_are_ignored(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (verifier, challenge) = pkce();
    let params = AuthParams::valid(&client, "st-extra")
        .set("code_challenge", &challenge)
        .set("utm_source", "wechat")
        .set("theme", "dark")
        .set("x-trace", "abc123");
    let back = Browser::new(&env.base)
        .sign_in(&params.url(&env), ALICE_ID, PASSWORD)
        .await;
    let params = back.params();
    assert_eq!(params["state"], "st-extra");
    assert!(!params.contains_key("utm_source"));
    redeem(&env, &client, &params["code"], &verifier).await;
}

async fn authorization_request_by_post_works_like_get(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (verifier, challenge) = pkce();
    let params = AuthParams::valid(&client, "st-post").set("code_challenge", &challenge);
    let form: Vec<(&str, &str)> = params.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let browser = Browser::new(&env.base);
    let mut page = browser.post("/authorize", &form).await;
    assert!(page.is_login(), "{page:?}");
    page = browser.login(&page, ALICE_ID, PASSWORD).await;
    page = browser.consent(&page, true).await;
    let back = page.params();
    assert_eq!(back["state"], "st-post");
    assert_eq!(back["iss"], env.base);
    let body = redeem(&env, &client, &back["code"], &verifier).await;
    assert!(body["id_token"].is_string());

    // Errors in a POSTed request go back to the app the same way.
    let bad = params.set("response_type", "token");
    let res = http()
        .post(env.url("/authorize"))
        .form(&bad.0)
        .send()
        .await
        .unwrap();
    assert_error_to_app(&env, &client, &res, "unsupported_response_type", "st-post");
}

// ---------------------------------------------------------------------------------------------------
// The login form

/// A browser on the login page of a fresh authorization request.
async fn at_login(env: &Env, client: &TestClient) -> (Browser, Page) {
    let browser = Browser::new(&env.base);
    let page = browser.get(&AuthParams::valid(client, "st-login").url(env)).await;
    assert!(page.is_login(), "{page:?}");
    (browser, page)
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn login_without_csrf_token_is_forbidden(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (browser, page) = at_login(&env, &client).await;
    let req = field(page.html().2, "req").unwrap();
    let res = browser
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
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        !set_cookies(res.headers())
            .iter()
            .any(|c| c.starts_with("yunid_session=")),
        "a session was started"
    );
    // The real form still works.
    let next = browser.login(&page, ALICE_ID, PASSWORD).await;
    assert!(next.is_consent(), "{next:?}");
}

async fn login_with_a_wrong_csrf_token_is_forbidden(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (browser, page) = at_login(&env, &client).await;
    let req = field(page.html().2, "req").unwrap();
    // A token that is valid for someone else's browser (an attacker's own login page).
    let (_, attackers_page) = at_login(&env, &client).await;
    let attackers_token = field(attackers_page.html().2, "csrf").unwrap();
    let mine = field(page.html().2, "csrf").unwrap();
    assert_ne!(attackers_token, mine);
    for token in [attackers_token.as_str(), "forged", &mine[..mine.len() - 1]] {
        let res = browser
            .http
            .post(env.url("/login"))
            .form(&[
                ("csrf", token),
                ("req", req.as_str()),
                ("username", ALICE_ID),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token {token}");
    }
    let next = browser.login(&page, ALICE_ID, PASSWORD).await;
    assert!(next.is_consent(), "{next:?}");
}

fn login_error(page: &Page) -> (StatusCode, String) {
    let (_, status, body) = page.html();
    assert!(page.is_login(), "{body}");
    let message = regex_lite::Regex::new(r#"<p class="error" role="alert">([^<]*)</p>"#)
        .unwrap()
        .captures(body)
        .unwrap_or_else(|| panic!("no error message: {body}"))[1]
        .to_owned();
    (status, message)
}

async fn wrong_password_and_unknown_account_get_the_same_answer(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (browser, page) = at_login(&env, &client).await;
    let wrong_password = browser.login(&page, ALICE_ID, "not the password at all").await;
    let unknown_id = browser
        .login(&wrong_password, &resident_id(7), "not the password at all")
        .await;
    let unknown_phone = browser
        .login(&unknown_id, "13900139000", "not the password at all")
        .await;
    let nonsense = browser
        .login(&unknown_phone, "nobody", "not the password at all")
        .await;
    let expected = login_error(&wrong_password);
    assert_eq!(expected.0, StatusCode::UNAUTHORIZED);
    for page in [&unknown_id, &unknown_phone, &nonsense] {
        assert_eq!(login_error(page), expected);
    }
    // Alice can still log in from the last form.
    let next = browser.login(&nonsense, ALICE_ID, PASSWORD).await;
    assert!(next.is_consent(), "{next:?}");
}

/// Posts the login form of `page` and returns the raw answer (cookies still kept by the browser).
async fn post_login(browser: &Browser, page: &Page) -> reqwest::Response {
    let body = page.html().2;
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req").unwrap();
    browser
        .http
        .post(format!("{}/login", browser.origin))
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("username", ALICE_ID),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

fn session_cookie(headers: &HeaderMap) -> String {
    set_cookies(headers)
        .into_iter()
        .find(|c| c.starts_with("yunid_session="))
        .unwrap_or_else(|| panic!("no session cookie in {headers:?}"))
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .unwrap()
        .1
}

async fn session_cookie_is_http_only_and_same_site_lax(backend: Backend) {
    let (env, client) = setup(backend).await;
    let (browser, page) = at_login(&env, &client).await;
    let res = post_login(&browser, &page).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(res.headers());
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.contains(&"httponly".to_owned()), "{cookie}");
    assert!(attributes.contains(&"samesite=lax".to_owned()), "{cookie}");
    assert!(attributes.contains(&"path=/".to_owned()), "{cookie}");
    assert!(!attributes.iter().any(|a| a.starts_with("domain")), "{cookie}");
    assert!(cookie_value(&cookie).len() >= 32, "{cookie}");
}

async fn every_login_gets_a_new_session_id(backend: Backend) {
    let (env, client) = setup(backend).await;
    let raw = http();
    let planted = "attacker-chosen-session-id-0123456789abcdef";

    // The victim's browser carries a session id an attacker planted, then logs in.
    let login_with = |session: String, prompt: Option<&'static str>| {
        let (env, client, raw) = (&env, &client, &raw);
        async move {
            let mut params = AuthParams::valid(client, "st-fix");
            if let Some(p) = prompt {
                params = params.set("prompt", p);
            }
            let cookie = format!("yunid_session={session}");
            let res = raw
                .get(params.url(env))
                .header(header::COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            // The pending request belongs to this browser: it keeps the binding cookie it was given.
            let binding = set_cookies(res.headers())
                .into_iter()
                .find(|c| c.starts_with("yunid_browser="))
                .expect("a browser binding cookie");
            let cookie = format!("{cookie}; yunid_browser={}", cookie_value(&binding));
            let login = env.url(res.headers()[header::LOCATION].to_str().unwrap());
            assert!(login.contains("/login?"), "{login}");
            let res = raw
                .get(&login)
                .header(header::COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            let csrf_cookie = set_cookies(res.headers())
                .into_iter()
                .find(|c| c.starts_with("yunid_csrf="))
                .unwrap();
            let body = res.text().await.unwrap();
            let res = raw
                .post(env.url("/login"))
                .header(
                    header::COOKIE,
                    format!("yunid_csrf={}; {cookie}", cookie_value(&csrf_cookie)),
                )
                .form(&[
                    ("csrf", field(&body, "csrf").unwrap().as_str()),
                    ("req", field(&body, "req").unwrap().as_str()),
                    ("username", ALICE_ID),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            cookie_value(&session_cookie(res.headers())).to_owned()
        }
    };

    let first = login_with(planted.to_owned(), None).await;
    assert_ne!(first, planted);
    let second = login_with(first.clone(), Some("login")).await;
    assert_ne!(second, first);
    assert_ne!(second, planted);

    // The planted id is no session; the issued one is (silent login then only lacks consent).
    let silent = |session: String| {
        let (env, client, raw) = (&env, &client, &raw);
        async move {
            raw.get(AuthParams::valid(client, "st-fix").set("prompt", "none").url(env))
                .header(header::COOKIE, format!("yunid_session={session}"))
                .send()
                .await
                .unwrap()
        }
    };
    let res = silent(planted.to_owned()).await;
    assert_error_to_app(&env, &client, &res, "login_required", "st-fix");
    let res = silent(second).await;
    assert_error_to_app(&env, &client, &res, "consent_required", "st-fix");
}

// ---------------------------------------------------------------------------------------------------
// Framing protection

async fn provider_pages_cannot_be_framed(backend: Backend) {
    let (env, client) = setup(backend).await;
    let browser = Browser::new(&env.base);

    // The error page.
    let res = get(&AuthParams::valid(&client, "s").set("client_id", "nope").url(&env)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_unframeable(res.headers(), "error page");

    // The login page.
    let res = browser
        .http
        .get(AuthParams::valid(&client, "s").url(&env))
        .send()
        .await
        .unwrap();
    let login = env.url(res.headers()[header::LOCATION].to_str().unwrap());
    let res = browser.http.get(&login).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_unframeable(res.headers(), "login page");
    let page = Page::Html {
        url: login.clone(),
        status: StatusCode::OK,
        body: res.text().await.unwrap(),
    };
    assert!(page.is_login());

    // The consent page.
    // The sign-in goes straight on to the consent page (issue 17: no stop at `/authorize/resume`).
    let res = post_login(&browser, &page).await;
    let consent = env.url(res.headers()[header::LOCATION].to_str().unwrap());
    assert!(consent.contains("/consent?"), "{consent}");
    let res = browser.http.get(&consent).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_unframeable(res.headers(), "consent page");
    assert!(res.text().await.unwrap().contains("action=\"/consent\""));

    // The home page.
    let res = browser.http.get(env.url("/")).send().await.unwrap();
    assert_unframeable(res.headers(), "home page");
}

on_both_backends!(
    redirect_uri_with_trailing_slash_gets_an_error_page,
    redirect_uri_with_different_case_in_path_gets_an_error_page,
    redirect_uri_with_different_case_in_host_gets_an_error_page,
    redirect_uri_with_an_added_port_gets_an_error_page,
    redirect_uri_with_the_default_port_spelled_out_gets_an_error_page,
    redirect_uri_with_an_extra_query_parameter_gets_an_error_page,
    redirect_uri_downgraded_to_http_gets_an_error_page,
    redirect_uri_of_another_app_gets_an_error_page,
    missing_redirect_uri_gets_an_error_page,
    unknown_or_missing_client_id_gets_an_error_page,
    repeated_redirect_uri_gets_an_error_page,
    repeated_client_id_gets_an_error_page,
    invalid_request_with_an_untrusted_redirect_uri_still_gets_an_error_page,
    missing_response_type_goes_back_as_invalid_request,
    response_type_token_goes_back_as_unsupported_response_type,
    request_without_code_challenge_goes_back_as_invalid_request,
    plain_code_challenge_method_goes_back_as_invalid_request,
    malformed_code_challenge_goes_back_as_invalid_request,
    repeated_scope_goes_back_as_invalid_request,
    request_object_goes_back_as_request_not_supported,
    prompt_none_without_a_session_returns_login_required_with_state_intact,
    invalid_max_age_goes_back_as_invalid_request,
    claims_that_are_not_a_json_object_go_back_as_invalid_request,
    request_without_a_usable_scope_goes_back_as_invalid_scope,
    form_post_delivers_the_code_in_a_self_submitting_form,
    form_post_delivers_errors_in_a_self_submitting_form,
    prompt_login_asks_for_the_password_again_despite_a_session,
    max_age_forces_a_fresh_login_and_a_later_auth_time,
    prompt_none_with_a_session_and_consent_returns_a_code_without_any_page,
    prompt_consent_shows_the_consent_page_again,
    denying_consent_sends_access_denied_to_the_app,
    unknown_extra_parameters_are_ignored,
    authorization_request_by_post_works_like_get,
    login_without_csrf_token_is_forbidden,
    login_with_a_wrong_csrf_token_is_forbidden,
    wrong_password_and_unknown_account_get_the_same_answer,
    session_cookie_is_http_only_and_same_site_lax,
    every_login_gets_a_new_session_id,
    provider_pages_cannot_be_framed,
);
