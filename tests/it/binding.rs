//! Whose is a pending authorization request? Each belongs to the browser that started it and to the
//! person who answered its pages there: a link to a half-finished request opened in another browser,
//! or answered by another person on the same browser, never yields a code without that person seeing
//! the consent page. And a forced re-authentication (`prompt=login`, `max_age`) counts only the factors
//! of that login, never the factors the old session had.

use openidconnect::TokenResponse;
use reqwest::StatusCode;
use serde_json::Value;
use yunid::services::registry::NewClient;

use crate::common::browser::{Page, field};
use crate::common::console::{is_step_up, sms_to, step_up};
use crate::common::rp::{Attempt, Rp};
use crate::common::sms::SmsInbox;
use crate::common::wire::{alices_sid_at, jwt_parts};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, resident_id};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const STRONG_CALLBACK: &str = "http://127.0.0.1:9/strong";
const BOB_PHONE: &str = "13900139000";

fn body(page: &Page) -> &str {
    page.html().2
}

/// Alice's own app, and Alice and Bob as people.
async fn alices_app(env: &Env) -> Rp {
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.person(&resident_id(7), BOB_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    Rp::discover(&env.base, &client).await
}

/// Posts the consent page's "allow" without following the redirect; returns where it points.
async fn allow_without_following(browser: &Browser, consent: &Page) -> String {
    assert!(consent.is_consent(), "{consent:?}");
    let csrf = field(body(consent), "csrf").unwrap();
    let req = field(body(consent), "req").unwrap();
    let res = browser
        .http
        .post(format!("{}/consent", browser.origin))
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The app redeems the code it got back; returns the ID token's claims.
async fn redeem(rp: &Rp, attempt: Attempt, back: &Page) -> Value {
    let params = back.params();
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {params:?}"));
    let tokens = rp.exchange(code, attempt.verifier).await.expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    id_token
        .claims(&rp.client.id_token_verifier(), &attempt.nonce)
        .expect("the ID token verifies");
    jwt_parts(&id_token.to_string()).1
}

/// Signs Bob in on `browser` (through the account page's login, no app involved).
async fn bob_signs_in(browser: &Browser) {
    let login = browser.get("/login").await;
    let after = browser.login(&login, &resident_id(7), PASSWORD).await;
    assert!(!after.is_login(), "Bob is signed in: {after:?}");
}

/// The reproduced attack: Alice consents for her own app without following the redirect and sends the
/// resume link to Bob, who is signed in to yunid. Bob's browser must not be sent to Alice's app with a
/// code for Bob; Bob sees the consent page for Alice's app instead (and may decline), while Alice's own
/// browser still finishes her request.
async fn a_consented_request_opened_in_another_browser_issues_no_code(backend: Backend) {
    let env = Env::start(backend).await;
    let rp = alices_app(&env).await;
    let alice = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let consent = alice.login(&login, ALICE_ID, PASSWORD).await;
    let link = allow_without_following(&alice, &consent).await;
    assert!(link.starts_with("/authorize/resume?req="), "{link}");

    let bob = Browser::new(&env.base);
    bob_signs_in(&bob).await;
    let at_bob = bob.get(&link).await;
    assert!(
        !matches!(at_bob, Page::Left(_)),
        "Bob's browser was sent to the app: {at_bob:?}"
    );
    assert!(at_bob.is_consent(), "Bob is asked himself: {at_bob:?}");
    assert_ne!(
        field(body(&at_bob), "req"),
        field(body(&consent), "req"),
        "Bob answers a request of his own browser, not Alice's"
    );
    let declined = bob.consent(&at_bob, false).await;
    assert_eq!(
        declined.params().get("error").map(String::as_str),
        Some("access_denied")
    );

    // Alice's browser still finishes her own request, for her.
    let back = alice.get(&link).await;
    let claims = redeem(&rp, attempt, &back).await;
    let alice_sub = claims["sub"].as_str().unwrap().to_owned();
    // Bob, for comparison, has another subject at this app.
    let bob_attempt = rp.start(&["profile"]);
    let bob_back = bob.sign_in(bob_attempt.url.as_str(), "", "").await;
    let bob_claims = redeem(&rp, bob_attempt, &bob_back).await;
    assert_ne!(bob_claims["sub"].as_str().unwrap(), alice_sub);
}

/// Every page of a pending request, opened in another browser, starts the request over there: the
/// login page, the consent page and the forms posted for it never continue the first browser's request.
async fn every_step_of_a_foreign_request_starts_over(backend: Backend) {
    let env = Env::start(backend).await;
    let rp = alices_app(&env).await;
    let alice = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = alice.get(attempt.url.as_str()).await;
    let req = field(body(&login), "req").expect("a pending request");

    // A stranger (not signed in) opens Alice's login link: a login page for a request of his own.
    let stranger = Browser::new(&env.base);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", &req)
        .finish();
    let his = stranger.get(&format!("/login?{q}")).await;
    assert!(his.is_login(), "{his:?}");
    let his_req = field(body(&his), "req").expect("a pending request");
    assert_ne!(his_req, req);

    // Bob, signed in, posts the consent form for Alice's request with his own form token: nothing is
    // issued, he lands on a consent page of his own request.
    let bob = Browser::new(&env.base);
    bob_signs_in(&bob).await;
    let mine = bob.get(&format!("/consent?{q}")).await;
    assert!(mine.is_consent(), "{mine:?}");
    let csrf = field(body(&mine), "csrf").unwrap();
    let posted = bob
        .post(
            "/consent",
            &[("csrf", &csrf), ("req", &req), ("decision", "allow")],
        )
        .await;
    assert!(
        posted.is_consent(),
        "Bob's post for Alice's request issued nothing: {posted:?}"
    );
    assert_ne!(field(body(&posted), "req").as_deref(), Some(req.as_str()));

    // A login posted by Bob's browser for Alice's request does not attach to it either.
    let pwd = bob
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("username", ALICE_ID),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(!matches!(pwd, Page::Left(_)), "{pwd:?}");

    // Alice's browser is unaffected: she signs in and her app gets her code.
    let page = alice.login(&login, ALICE_ID, PASSWORD).await;
    let back = alice.consent(&page, true).await;
    let claims = redeem(&rp, attempt, &back).await;
    assert!(claims["sub"].is_string());
}

/// A shared counter terminal: Alice consents for the app but does not follow the redirect; Bob then
/// signs in on the same browser. Her consent is not his: he sees the consent page.
async fn a_consent_counts_only_for_the_person_who_gave_it(backend: Backend) {
    let env = Env::start(backend).await;
    let rp = alices_app(&env).await;
    let terminal = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = terminal.get(attempt.url.as_str()).await;
    let consent = terminal.login(&login, ALICE_ID, PASSWORD).await;
    let link = allow_without_following(&terminal, &consent).await;

    bob_signs_in(&terminal).await;
    let next = terminal.get(&link).await;
    assert!(next.is_consent(), "Bob must answer for himself: {next:?}");
    let back = terminal.consent(&next, true).await;
    let claims = redeem(&rp, attempt, &back).await;
    let bob_view = rp.start(&["profile"]);
    let again = terminal.get(bob_view.url.as_str()).await;
    let bob_claims = redeem(&rp, bob_view, &again).await;
    assert_eq!(
        claims["sub"], bob_claims["sub"],
        "the code that was issued is Bob's, by his consent"
    );
}

/// An app that requires two factors.
async fn strong_rp(env: &Env) -> Rp {
    let client = env
        .client_with(NewClient {
            name: "公积金提取".into(),
            redirect_uris: vec![STRONG_CALLBACK.into()],
            min_acr: 2,
            ..NewClient::default()
        })
        .await;
    Rp::discover(&env.base, &client).await
}

/// Alice signs in at the strong app with her password and the SMS code; returns the ID token's claims.
async fn two_factors_at(strong: &Rp, browser: &Browser, inbox: &SmsInbox) -> Value {
    let attempt = strong.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let up = browser.login(&login, ALICE_ID, PASSWORD).await;
    let mut back = step_up(browser, inbox, &up).await;
    if back.is_consent() {
        back = browser.consent(&back, true).await;
    }
    let claims = redeem(strong, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
    claims
}

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("no amr in {claims}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// Alice holds a two-factor session (password + SMS). An app forcing re-authentication with
/// `prompt=login` or `max_age` gets a login that counts only the password typed now: `acr` 1, `amr`
/// `pwd` alone. An app that needs two factors and forces a fresh login gets both factors asked anew.
async fn a_forced_reauthentication_counts_only_its_own_factors(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, sms_to(&inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let strong = strong_rp(&env).await;
    let plain = Rp::discover(&env.base, &env.client(CALLBACK).await).await;
    let browser = Browser::new(&env.base);

    let claims = two_factors_at(&strong, &browser, &inbox).await;
    assert_eq!(claims["sid"], alices_sid_at(&env, &strong).await);

    for force in [("prompt", "login"), ("max_age", "0")] {
        env.app.clock.advance(5);
        let mut attempt = plain.start(&["profile"]);
        attempt.url.query_pairs_mut().append_pair(force.0, force.1);
        let page = browser.get(attempt.url.as_str()).await;
        assert!(page.is_login(), "{force:?} asks for a login: {page:?}");
        let mut back = browser.login(&page, ALICE_ID, PASSWORD).await;
        if back.is_consent() {
            back = browser.consent(&back, true).await;
        }
        let claims = redeem(&plain, attempt, &back).await;
        assert_eq!(claims["acr"], "1", "{force:?}: one factor now");
        assert_eq!(amr(&claims), vec!["pwd".to_owned()], "{force:?}");
        // The same SSO session, its factors replaced: logout still finds it and every app in it.
        assert_eq!(claims["sid"], alices_sid_at(&env, &plain).await, "{force:?}");
    }

    // The strong app with prompt=login: the password alone is not enough, the SMS code is asked again.
    let mut attempt = strong.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("prompt", "login");
    let page = browser.get(attempt.url.as_str()).await;
    assert!(page.is_login(), "{page:?}");
    let up = browser.login(&page, ALICE_ID, PASSWORD).await;
    assert!(is_step_up(&up), "the second factor is asked again: {up:?}");
    let back = step_up(&browser, &inbox, &up).await;
    let claims = redeem(&strong, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
    let methods = amr(&claims);
    assert!(
        methods.contains(&"sms".to_owned()) && methods.contains(&"pwd".to_owned()),
        "{methods:?}"
    );
}

/// Alice holds a two-factor session; someone with only her password types it on the login page again
/// (no app involved). The session now holds the password alone: an app that needs two factors asks
/// for the second one again.
async fn a_password_typed_again_does_not_refresh_an_old_second_factor(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, sms_to(&inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let strong = strong_rp(&env).await;
    let browser = Browser::new(&env.base);
    two_factors_at(&strong, &browser, &inbox).await;

    let page = browser.get("/login").await;
    assert!(page.is_login(), "{page:?}");
    browser.login(&page, ALICE_ID, PASSWORD).await;
    let attempt = strong.start(&["profile"]);
    let next = browser.get(attempt.url.as_str()).await;
    assert!(is_step_up(&next), "the second factor is asked again: {next:?}");
}

/// On a shared terminal Alice's consent page is still open when Bob signs in; the page's "allow",
/// posted now, is not taken as Bob's answer: he is shown the consent page for himself.
async fn an_open_consent_page_is_not_answered_for_the_next_person(backend: Backend) {
    let env = Env::start(backend).await;
    let rp = alices_app(&env).await;
    let terminal = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = terminal.get(attempt.url.as_str()).await;
    let alices_page = terminal.login(&login, ALICE_ID, PASSWORD).await;
    assert!(alices_page.is_consent());
    bob_signs_in(&terminal).await;
    let answered = terminal.consent(&alices_page, true).await;
    assert!(answered.is_consent(), "Bob sees the page himself: {answered:?}");
    assert!(answered.html().2.contains("name=\"who\""));
}

/// Refreshes `refresh` at `client`; returns the status.
async fn refresh_status(env: &Env, client: &crate::common::TestClient, refresh: &str) -> StatusCode {
    crate::common::http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap()
        .status()
}

/// Someone who signed in with Alice's stolen password holds an `offline_access` refresh token. A counter
/// password reset ends it, and a login SMS code sent
/// before the reset no longer signs in. (Sign out everywhere, a lock and a phone change take the same path,
/// `logout::end_everything`.)
async fn a_counter_reset_ends_offline_grants_and_earlier_sms_codes(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, sms_to(&inbox)).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    let sign_in = |browser: Browser| {
        let rp = &rp;
        async move {
            let attempt = rp.start(&["profile", "offline_access"]);
            let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
            let params = back.params();
            let tokens = rp.exchange(&params["code"], attempt.verifier).await.unwrap();
            use openidconnect::OAuth2TokenResponse;
            (browser, tokens.refresh_token().unwrap().secret().clone())
        }
    };
    let (_, thief) = sign_in(Browser::new(&env.base)).await;
    assert_eq!(refresh_status(&env, &client, &thief).await, StatusCode::OK);
    // A login code requested with the old phone before the reset.
    let pending = Browser::new(&env.base);
    let login = pending.get("/login?method=sms").await;
    let csrf = field(body(&login), "csrf").unwrap();
    let sent = pending
        .post("/login/sms/send", &[("csrf", &csrf), ("phone", ALICE_PHONE)])
        .await;
    let attempt = field(body(&sent), "attempt").expect("a code form");

    let clerk = crate::admin::admin_token(&env, "yunid:counter").await;
    let res = crate::common::http()
        .post(env.url(&format!("/admin/api/persons/{alice}/reset-password")))
        .bearer_auth(&clerk)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        refresh_status(&env, &client, &thief).await,
        StatusCode::BAD_REQUEST
    );
    let csrf = field(body(&sent), "csrf").unwrap();
    let late = pending
        .post(
            "/login/sms/verify",
            &[
                ("csrf", &csrf),
                ("attempt", &attempt),
                ("code", &inbox.last_code()),
            ],
        )
        .await;
    assert!(
        !matches!(&late, Page::Html { url, .. } if url.ends_with("/account")),
        "{late:?}"
    );
    assert!(
        late.html().1.is_client_error(),
        "the old code no longer signs in: {late:?}"
    );
}

/// Alice signs in at `rp` on `browser` with `scopes`; returns the refresh token.
async fn alices_refresh_token(rp: &Rp, browser: &Browser, scopes: &[&str]) -> String {
    use openidconnect::OAuth2TokenResponse;
    let attempt = rp.start(scopes);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let tokens = rp
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    tokens.refresh_token().expect("a refresh token").secret().clone()
}

/// Alice signs in to an app without `offline_access` and one with it. Her session idles out: the first
/// app's refresh token stops working with it, the offline one goes on. On a shared terminal, Bob signing
/// in ends Alice's session, and with it her non-offline grants.
async fn a_grant_without_offline_access_ends_with_its_session(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.person(&resident_id(7), BOB_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let online = alices_refresh_token(&rp, &browser, &["profile"]).await;
    let offline = alices_refresh_token(&rp, &browser, &["profile", "offline_access"]).await;
    env.app.clock.advance(env.app.config.session_idle_ttl + 1);
    assert_eq!(
        refresh_status(&env, &client, &online).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(refresh_status(&env, &client, &offline).await, StatusCode::OK);

    let terminal = Browser::new(&env.base);
    let alices = alices_refresh_token(&rp, &terminal, &["profile"]).await;
    assert_eq!(refresh_status(&env, &client, &alices).await, StatusCode::OK);
    bob_signs_in(&terminal).await;
    assert_eq!(
        refresh_status(&env, &client, &alices).await,
        StatusCode::BAD_REQUEST,
        "Bob's sign-in ended Alice's session on the terminal"
    );
}

on_both_backends!(
    a_grant_without_offline_access_ends_with_its_session,
    a_counter_reset_ends_offline_grants_and_earlier_sms_codes,
    a_password_typed_again_does_not_refresh_an_old_second_factor,
    an_open_consent_page_is_not_answered_for_the_next_person,
    a_consented_request_opened_in_another_browser_issues_no_code,
    every_step_of_a_foreign_request_starts_over,
    a_consent_counts_only_for_the_person_who_gave_it,
    a_forced_reauthentication_counts_only_its_own_factors,
);
