//! The pending request travels sealed with the browser (`services::authn::pending`): what the browser
//! carries cannot be altered, and however often a state of the request comes back, it is answered once.

use reqwest::StatusCode;

use crate::common::browser::{Page, field};
use crate::common::rp::Rp;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A provider with Alice registered, an app registered at it (discovered by a certified RP library) and
/// a fresh browser.
async fn alice_and_an_app(backend: Backend) -> (Env, Rp, Browser) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    let alice = Browser::new(&env.base);
    (env, rp, alice)
}

/// Posts the consent page's "allow" without following the redirect; returns the resume link.
async fn allow_without_following(browser: &Browser, consent: &Page) -> String {
    let body = consent.html().2;
    let res = browser
        .http
        .post(format!("{}/consent", browser.origin))
        .form(&[
            ("csrf", field(body, "csrf").unwrap().as_str()),
            ("req", field(body, "req").unwrap().as_str()),
            ("who", field(body, "who").unwrap_or_default().as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The resume link of a consented request, opened twice in the browser that started it: the first
/// visit goes back to the app with a code, the second is told the request was answered (no code).
/// An earlier state of the same request (the consent page's) is refused just the same.
async fn a_request_is_answered_once_whatever_state_comes_back(backend: Backend) {
    let (_env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let consent = alice.login(&login, ALICE_ID, PASSWORD).await;
    assert!(consent.is_consent(), "{consent:?}");
    let link = allow_without_following(&alice, &consent).await;

    let back = alice.get(&link).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    let again = alice.get(&link).await;
    let (_, status, body) = again.html();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("此登录请求已经处理过了"), "{body}");

    // The consent page's own state, answered again: still one answer only.
    let replayed = alice.consent(&consent, true).await;
    let (_, status, body) = replayed.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("此登录请求已经处理过了"), "{body}");
}

/// A request declined at the consent page is answered: its consent page's state posted again with
/// "allow" is told so, and nothing of it is kept — the next request of the same app asks for consent
/// again.
async fn an_answered_request_saves_no_consent_when_replayed(backend: Backend) {
    let (_env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let consent = alice.login(&login, ALICE_ID, PASSWORD).await;
    assert!(consent.is_consent(), "{consent:?}");
    let declined = alice.consent(&consent, false).await;
    assert_eq!(
        declined.params().get("error").map(String::as_str),
        Some("access_denied"),
        "{declined:?}"
    );

    let replayed = alice.consent(&consent, true).await;
    let (_, status, body) = replayed.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("此登录请求已经处理过了"), "{body}");

    let next = alice.get(rp.start(&["profile"]).url.as_str()).await;
    assert!(next.is_consent(), "the replayed allow must not be kept: {next:?}");
}

/// A `req` changed by one character is no request at all: the expired page, nothing done.
async fn an_altered_request_is_refused_as_expired(backend: Backend) {
    let (_env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let req = field(login.html().2, "req").unwrap();
    let mut altered = req.into_bytes();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for path in ["/login", "/consent", "/act-as", "/authorize/resume"] {
        let page = alice.get(&format!("{path}?req={altered}")).await;
        let (_, status, body) = page.html();
        assert!(
            status == StatusCode::BAD_REQUEST && body.contains("此登录请求已过期"),
            "{path}: {status} {body}"
        );
    }
}

/// The expiry is sealed in: past `auth_request_ttl` the request is refused even in the browser that
/// started it, at every step, and no code reaches the app.
async fn an_expired_request_is_refused_in_its_own_browser(backend: Backend) {
    let (env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let req = field(login.html().2, "req").unwrap();
    env.app.clock.advance(env.app.config.auth_request_ttl + 1);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", &req)
        .finish();
    for path in ["/login", "/consent", "/act-as", "/authorize/resume"] {
        let page = alice.get(&format!("{path}?{query}")).await;
        let (_, status, body) = page.html();
        assert!(
            status == StatusCode::BAD_REQUEST && body.contains("此登录请求已过期"),
            "{path}: {status} {body}"
        );
    }
    // Signing in with the expired request's login form signs the person in, but the request stays
    // expired: no code for the app.
    let after = alice.login(&login, ALICE_ID, PASSWORD).await;
    let (_, status, body) = after.html();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("此登录请求已过期"), "{body}");
}

/// A consented request whose resume link was not followed, then a logout in the same browser: the link
/// opened afterwards gives the app no code (the login sealed into the request ended with the session),
/// and neither does a `prompt=none` request started after the logout.
async fn a_request_consented_before_a_logout_gives_no_code_after_it(backend: Backend) {
    let (_env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let consent = alice.login(&login, ALICE_ID, PASSWORD).await;
    assert!(consent.is_consent(), "{consent:?}");
    let link = allow_without_following(&alice, &consent).await;

    // Logged out: the confirmation form, confirmed.
    let ask = alice.get("/logout").await;
    let body = ask.html().2;
    let csrf = field(body, "csrf").expect("a logout confirmation form");
    let out = alice
        .post("/logout", &[("csrf", csrf.as_str()), ("confirm", "yes")])
        .await;
    assert_eq!(out.html().1, StatusCode::OK);

    let replayed = alice.get(&link).await;
    let gave_code = matches!(&replayed, Page::Left(u) if u.query_pairs().any(|(k, _)| k == "code"));
    assert!(
        !gave_code,
        "a request answered for a session that ended must give no code: {replayed:?}"
    );
    let silent = alice
        .get(&format!("{}&prompt=none", rp.start(&["profile"]).url))
        .await;
    assert_eq!(
        silent.params().get("error").map(String::as_str),
        Some("login_required"),
        "{silent:?}"
    );
}

/// Review L1: a request too large to travel in URLs is refused to the app (`invalid_request`, with its
/// `state`), and a `req` longer than any sealed request can be is not even opened (the expired page).
async fn an_oversized_request_is_refused_and_an_oversized_req_not_opened(backend: Backend) {
    let (_env, rp, alice) = alice_and_an_app(backend).await;
    let attempt = rp.start(&["profile"]);
    // Each value within the per-parameter limit, the whole over 6 KiB.
    let big = "n".repeat(4000);
    let page = alice
        .get(&format!("{}&login_hint={big}&ui_locales={big}", attempt.url))
        .await;
    let params = page.params();
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_request"),
        "{page:?}"
    );
    assert_eq!(params.get("state"), Some(attempt.state.secret()));
    // Just under: a sign-in page.
    let fits = rp.start(&["profile"]);
    let page = alice
        .get(&format!("{}&login_hint={}", fits.url, "n".repeat(4000)))
        .await;
    assert!(page.is_login(), "{page:?}");

    let huge = "A".repeat(20 * 1024);
    for path in ["/login", "/consent", "/authorize/resume"] {
        let page = alice.get(&format!("{path}?req={huge}")).await;
        let (_, status, body) = page.html();
        assert!(
            status == StatusCode::BAD_REQUEST && body.contains("此登录请求已过期"),
            "{path}: {status} {body}"
        );
    }
}

on_both_backends!(
    a_request_is_answered_once_whatever_state_comes_back,
    an_altered_request_is_refused_as_expired,
    an_answered_request_saves_no_consent_when_replayed,
    an_expired_request_is_refused_in_its_own_browser,
    a_request_consented_before_a_logout_gives_no_code_after_it,
    an_oversized_request_is_refused_and_an_oversized_req_not_opened,
);
