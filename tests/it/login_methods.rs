//! The login page and its methods as a person and an app see them: SMS codes delivered through a
//! signed webhook, codes that work once, in time and for their own attempt, sending limits that hold
//! across nodes, step-up to a second factor, languages, and the page's own defences.

use openidconnect::TokenResponse;
use reqwest::StatusCode;
use serde_json::Value;
use yunid::Config;
use yunid::http::i18n::{EN, ZH};
use yunid::services::registry::NewClient;

use crate::common::browser::{Page, field};
use crate::common::rp::{Attempt, Rp};
use crate::common::sms::{SmsInbox, signature_is_valid};
use crate::common::wire::{alices_sid_at, cookie, jwt_parts};
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, TestClient, resident_id, test_config,
};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const STRONG_CALLBACK: &str = "http://127.0.0.1:9/strong";
const SECRET: &str = "sms-webhook-secret-for-tests";
const ALICE_E164: &str = "+8613800138000";

/// Config for the webhook gateway pointing at `inbox`.
fn webhook(inbox: &SmsInbox) -> impl Fn(&mut Config) + use<> {
    let url = inbox.url.clone();
    move |c: &mut Config| {
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some(SECRET.into());
    }
}

/// A provider sending codes to `inbox`, with Alice registered (phone verified).
async fn provider(backend: Backend, inbox: &SmsInbox) -> Env {
    let env = Env::start_with(backend, webhook(inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env
}

fn body(page: &Page) -> &str {
    page.html().2
}

fn status(page: &Page) -> StatusCode {
    page.html().1
}

/// The text of the page's error (`role="alert"`), if any.
fn error(page: &Page) -> Option<String> {
    let re = regex_lite::Regex::new(r#"<p class="error" role="alert">([^<]*)</p>"#).unwrap();
    re.captures(body(page)).map(|c| c[1].to_owned())
}

/// The text of the page's notice (`role="status"`), if any.
fn notice(page: &Page) -> Option<String> {
    let re = regex_lite::Regex::new(r#"<p class="notice" role="status">([^<]*)</p>"#).unwrap();
    re.captures(body(page)).map(|c| c[1].to_owned())
}

/// The form asking for the code that was sent.
fn has_code_form(page: &Page) -> bool {
    let b = body(page);
    b.contains(r#"action="/login/sms/verify""#) && b.contains(r#"autocomplete="one-time-code""#)
}

fn has_phone_field(page: &Page) -> bool {
    body(page).contains(r#"name="phone""#)
}

fn has_password_field(page: &Page) -> bool {
    body(page).contains(r#"name="password""#)
}

/// The SMS attempt the code form is for.
fn attempt_of(page: &Page) -> String {
    field(body(page), "attempt").unwrap_or_else(|| panic!("no code form: {}", body(page)))
}

/// A six-digit code that is not `code`.
fn other_than(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// The same login page (same request), on the SMS method.
async fn sms_method(browser: &Browser, login: &Page) -> Page {
    match field(body(login), "req") {
        Some(req) => browser.get(&format!("/login?req={req}&method=sms")).await,
        None => browser.get("/login?method=sms").await,
    }
}

/// Presses "send code" on `page`, with `phone` typed in (or no phone field at all, for step-up).
async fn send(browser: &Browser, page: &Page, phone: Option<&str>) -> Page {
    let csrf = field(body(page), "csrf").expect("a csrf field");
    let req = field(body(page), "req");
    let mut form = vec![("csrf", csrf.as_str())];
    if let Some(r) = &req {
        form.push(("req", r.as_str()));
    }
    if let Some(p) = phone {
        form.push(("phone", p));
    }
    browser.post("/login/sms/send", &form).await
}

/// Submits `code` for `attempt` with the form fields of `page`.
async fn verify_attempt(browser: &Browser, page: &Page, attempt: &str, code: &str) -> Page {
    let csrf = field(body(page), "csrf").expect("a csrf field");
    let req = field(body(page), "req");
    let mut form = vec![("csrf", csrf.as_str()), ("attempt", attempt), ("code", code)];
    if let Some(r) = &req {
        form.push(("req", r.as_str()));
    }
    browser.post("/login/sms/verify", &form).await
}

/// Types `code` into the code form on `page`.
async fn verify(browser: &Browser, page: &Page, code: &str) -> Page {
    verify_attempt(browser, page, &attempt_of(page), code).await
}

/// Consents when asked; returns where the browser ends up.
async fn through_consent(browser: &Browser, page: Page) -> Page {
    if page.is_consent() {
        browser.consent(&page, true).await
    } else {
        page
    }
}

/// The app redeems the code it got back and checks the ID token; returns the token's claims.
async fn redeem(rp: &Rp, attempt: Attempt, back: &Page) -> Value {
    let params = back.params();
    assert_eq!(params.get("state"), Some(attempt.state.secret()));
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

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("no amr in {claims}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// An app that requires a second factor.
async fn strong_app(env: &Env) -> (TestClient, Rp) {
    let client = env
        .client_with(NewClient {
            name: "公积金提取".into(),
            redirect_uris: vec![STRONG_CALLBACK.into()],
            min_acr: 2,
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    (client, rp)
}

async fn plain_app(env: &Env) -> (TestClient, Rp) {
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    (client, rp)
}

/// Alice signs in at `rp` with her password (the plain way); returns the ID token's claims.
async fn password_sign_in(rp: &Rp, browser: &Browser) -> Value {
    let attempt = rp.start(&["profile"]);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    redeem(rp, attempt, &back).await
}

// 1. The webhook gateway.

async fn the_webhook_receives_a_signed_message_with_the_code(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let browser = Browser::new(&env.base);

    let page = browser.get("/login?method=sms").await;
    let sent = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sent), StatusCode::OK, "{}", body(&sent));

    let delivered = inbox.delivered();
    assert_eq!(delivered.len(), 1, "one message: {delivered:?}");
    let call = &delivered[0];
    assert_eq!(call.header("content-type").as_deref(), Some("application/json"));
    let message = call.json();
    let mut keys: Vec<&str> = message
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "template", "text", "to"], "{message}");
    assert_eq!(message["to"], ALICE_E164);
    assert!(
        message["template"].as_str().is_some_and(|t| !t.is_empty()),
        "{message}"
    );
    let code = call.code();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "six digits: {code}"
    );
    let text = message["text"].as_str().expect("a text");
    assert!(text.contains(&code), "the text carries the code: {text}");

    // Signed now, over the timestamp and the exact body.
    let timestamp: i64 = call
        .header("x-yunid-timestamp")
        .expect("X-Yunid-Timestamp")
        .parse()
        .expect("a Unix timestamp");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((timestamp - wall).abs() < 60, "timestamp {timestamp}, now {wall}");
    signature_is_valid(call, SECRET).expect("the signature verifies with the shared secret");
    assert!(
        signature_is_valid(call, "some-other-secret-value").is_err(),
        "a different secret does not verify"
    );
}

async fn the_webhook_is_retried_after_a_server_error(backend: Backend) {
    let inbox = SmsInbox::start(1).await;
    let env = provider(backend, &inbox).await;
    let browser = Browser::new(&env.base);

    let page = browser.get("/login?method=sms").await;
    let sent = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sent), StatusCode::OK);
    assert!(has_code_form(&sent));

    let calls = inbox.calls();
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 200], "failed once, then delivered");
    assert_eq!(calls[0].body, calls[1].body, "the same message again");
    signature_is_valid(&calls[1], SECRET).expect("the retry is signed too");
    assert_eq!(calls[1].to(), ALICE_E164);
}

// 2. SMS login with a real authorization request.

async fn a_citizen_signs_in_with_an_sms_code(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);

    let attempt = rp.start(&["profile", "phone"]);
    let login = browser.get(attempt.url.as_str()).await;
    assert!(login.is_login(), "{}", body(&login));
    let page = sms_method(&browser, &login).await;
    assert_eq!(status(&page), StatusCode::OK);
    assert!(has_phone_field(&page), "{}", body(&page));

    let sent = send(&browser, &page, Some("138 0013 8000")).await;
    assert_eq!(status(&sent), StatusCode::OK, "{}", body(&sent));
    assert_eq!(notice(&sent).as_deref(), Some(ZH.sms_sent));
    assert!(has_code_form(&sent), "{}", body(&sent));
    assert_eq!(inbox.delivered().len(), 1);
    assert_eq!(inbox.delivered()[0].to(), ALICE_E164, "normalised to E.164");

    let back = verify(&browser, &sent, &inbox.last_code()).await;
    let back = through_consent(&browser, back).await;
    let claims = redeem(&rp, attempt, &back).await;
    assert_eq!(amr(&claims), ["sms"]);
    assert_eq!(claims["acr"], "1");
}

// 3. No enumeration.

async fn an_unregistered_phone_gets_the_same_page_and_no_sms(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let page = sms_method(&browser, &login).await;

    let known = send(&browser, &page, Some(ALICE_PHONE)).await;
    let unknown = send(&browser, &page, Some("13900139000")).await;
    assert_eq!(status(&unknown), status(&known));
    assert_eq!(status(&unknown), StatusCode::OK);
    assert_eq!(notice(&unknown), notice(&known));
    assert_eq!(notice(&unknown).as_deref(), Some(ZH.sms_sent));
    assert!(has_code_form(&unknown), "{}", body(&unknown));
    // The whole page is the same but for the attempt id (and the per-response script nonce).
    let nonce = regex_lite::Regex::new(r#"nonce="[^"]*""#).unwrap();
    let same = |p: &Page| {
        nonce
            .replace_all(&body(p).replace(&attempt_of(p), "ATTEMPT"), "nonce")
            .into_owned()
    };
    assert_eq!(same(&unknown), same(&known));
    let delivered = inbox.delivered();
    assert_eq!(delivered.len(), 1, "only the registered phone got a message");
    assert_eq!(delivered[0].to(), ALICE_E164);

    // No code opens the attempt for an unknown number; the answer is the usual one.
    let wrong = verify(&browser, &unknown, "000000").await;
    assert_eq!(status(&wrong), StatusCode::UNAUTHORIZED);
    assert_eq!(error(&wrong).as_deref(), Some(ZH.err_code));

    // A malformed number is a typing mistake, and is said so.
    let invalid = send(&browser, &page, Some("12345")).await;
    assert_eq!(status(&invalid), StatusCode::UNPROCESSABLE_ENTITY);
    let message = error(&invalid).expect("an error message");
    assert!(message.contains("手机号码"), "{message}");
    assert!(has_phone_field(&invalid) && !has_code_form(&invalid));
    assert_eq!(inbox.calls().len(), 1, "nothing sent for an invalid number");
}

// 4. Codes.

async fn wrong_codes_are_refused_and_five_use_up_the_attempt(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    let attempt = attempt_of(&sent);
    let code = inbox.last_code();
    let wrong = other_than(&code);

    let mut page = sent;
    for n in 1..=4 {
        page = verify(&browser, &page, &wrong).await;
        assert_eq!(status(&page), StatusCode::UNAUTHORIZED, "wrong try {n}");
        assert_eq!(error(&page).as_deref(), Some(ZH.err_code), "wrong try {n}");
        assert!(has_code_form(&page), "the code form again after try {n}");
        assert_eq!(attempt_of(&page), attempt, "the same attempt goes on");
    }
    let fifth = verify(&browser, &page, &wrong).await;
    assert_eq!(status(&fifth), StatusCode::UNAUTHORIZED);

    let right = verify_attempt(&browser, &page, &attempt, &code).await;
    assert_eq!(status(&right), StatusCode::UNAUTHORIZED, "{}", body(&right));
    assert_eq!(error(&right).as_deref(), Some(ZH.err_code_expired));
    assert!(!has_code_form(&right), "a new code must be requested");
}

async fn a_code_works_once_and_only_for_five_minutes(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;

    // Used once: the second time it is refused.
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    let code = inbox.last_code();
    let back = through_consent(&browser, verify(&browser, &sent, &code).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    // Posted again for its request, answered now: nobody is signed in against it.
    let again = verify(&browser, &sent, &code).await;
    assert_eq!(status(&again), StatusCode::BAD_REQUEST);
    assert!(
        body(&again).contains("此登录请求已经处理过了"),
        "{}",
        body(&again)
    );
    // Posted for a new request of the same browser (one that asks for a new sign-in): the code was
    // used, whatever request it is posted for.
    let fresh = rp.start(&["profile"]);
    let fresh = browser.get(&format!("{}&prompt=login", fresh.url)).await;
    let fresh = sms_method(&browser, &fresh).await;
    assert!(field(body(&fresh), "req").is_some(), "{}", body(&fresh));
    let replayed = verify_attempt(&browser, &fresh, &attempt_of(&sent), &code).await;
    assert_eq!(status(&replayed), StatusCode::UNAUTHORIZED, "{}", body(&replayed));
    assert_eq!(error(&replayed).as_deref(), Some(ZH.err_code_expired));

    // Still valid just before five minutes…
    let browser = Browser::new(&env.base);
    env.app.clock.advance(61);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    env.app.clock.advance(290);
    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");

    // …and not after.
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    assert_eq!(inbox.delivered().len(), 3);
    env.app.clock.advance(301);
    let late = verify(&browser, &sent, &inbox.last_code()).await;
    assert_eq!(status(&late), StatusCode::UNAUTHORIZED);
    assert_eq!(error(&late).as_deref(), Some(ZH.err_code_expired));
}

/// Review M1, checked by the writes of the sign-in itself (no read before them): a fresh code posted
/// for a request answered already — here another person's, asked for on the same request's page in the
/// same browser — signs nobody in. The page says the request was answered, no session is made for that
/// person, and the code is not spent on it: it still signs its person in for a new request.
async fn a_fresh_code_for_an_answered_request_signs_nobody_in_and_is_not_spent(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let bob_phone = "13900139031";
    let bob = env.person(&resident_id(31), bob_phone, PASSWORD).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let page = sms_method(&browser, &login).await;
    let sent = send(&browser, &page, Some(ALICE_PHONE)).await;
    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");

    // The answered request's SMS page, used again for Bob's number.
    let for_bob = send(&browser, &page, Some(bob_phone)).await;
    assert_eq!(status(&for_bob), StatusCode::OK, "{}", body(&for_bob));
    let bobs_code = inbox.last_code();
    let refused = verify(&browser, &for_bob, &bobs_code).await;
    assert_eq!(status(&refused), StatusCode::BAD_REQUEST, "{}", body(&refused));
    assert!(
        body(&refused).contains("此登录请求已经处理过了"),
        "{}",
        body(&refused)
    );
    let sessions = env.app.db.sessions_of(&bob, env.app.now()).await.unwrap();
    assert!(sessions.is_empty(), "nobody signed in for the answered request");

    // A new request of the same browser that asks for a sign-in: Bob's code was not spent.
    let fresh = rp.start(&["profile"]);
    let fresh = browser.get(&format!("{}&prompt=login", fresh.url)).await;
    let fresh = sms_method(&browser, &fresh).await;
    let signed = verify_attempt(&browser, &fresh, &attempt_of(&for_bob), &bobs_code).await;
    let back = through_consent(&browser, signed).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    let sessions = env.app.db.sessions_of(&bob, env.app.now()).await.unwrap();
    assert_eq!(sessions.len(), 1, "Bob is signed in for the new request");
}

/// A sign-in for an app the person consented to before finishes the request in the same answer: the
/// code form's response sends the browser straight back to the app with the code (and sets the
/// session cookie), no stop at `/authorize/resume` in between. What that stop checked still holds: an
/// app never consented to gets the consent page first, and the same form posted again for the answered
/// request gives no second code.
async fn a_sign_in_for_an_app_consented_before_goes_back_to_it_in_one_answer(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;

    // The first time, Alice is asked before the app gets anything.
    let first = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = first.get(attempt.url.as_str()).await;
    let sent = send(&first, &sms_method(&first, &login).await, Some(ALICE_PHONE)).await;
    let asked = verify(&first, &sent, &inbox.last_code()).await;
    assert!(asked.is_consent(), "consent comes first: {asked:?}");
    let back = first.consent(&asked, true).await;
    let before = redeem(&rp, attempt, &back).await;

    // On another computer, after the resend cooldown, her code's answer is the redirect to the app itself.
    env.app.clock.advance(120);
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    let code = inbox.last_code();
    let form = [
        ("csrf", field(body(&sent), "csrf").unwrap()),
        ("req", field(body(&sent), "req").unwrap()),
        ("attempt", attempt_of(&sent)),
        ("code", code),
    ];
    let res = browser
        .http
        .post(format!("{}/login/sms/verify", env.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(CALLBACK),
        "straight back to the app: {location}"
    );
    let cookies: Vec<&str> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().any(|c| c.contains("yunid_session=")),
        "the session cookie comes with it: {cookies:?}"
    );
    let back = Page::Left(url::Url::parse(&location).unwrap());
    let claims = redeem(&rp, attempt, &back).await;
    assert_eq!(claims["sub"], before["sub"], "for Alice");
    assert_eq!(amr(&claims), ["sms"]);

    // The same form again: the request was answered, no second code.
    let again = browser
        .post(
            "/login/sms/verify",
            &form.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(status(&again), StatusCode::BAD_REQUEST, "{again:?}");
    assert!(
        body(&again).contains("此登录请求已经处理过了"),
        "{}",
        body(&again)
    );
}

async fn a_code_opens_only_its_own_attempt(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let page = sms_method(&browser, &login).await;

    let first = send(&browser, &page, Some(ALICE_PHONE)).await;
    let code_a = inbox.last_code();
    // A second code for the same phone, once the cooldown allows (and, rarely, until it differs).
    let (second, code_b) = loop {
        env.app.clock.advance(61);
        let second = send(&browser, &page, Some(ALICE_PHONE)).await;
        assert_eq!(status(&second), StatusCode::OK, "{}", body(&second));
        let code_b = inbox.last_code();
        if code_b != code_a {
            break (second, code_b);
        }
    };
    assert_ne!(attempt_of(&first), attempt_of(&second));

    let crossed = verify(&browser, &second, &code_a).await;
    assert_eq!(status(&crossed), StatusCode::UNAUTHORIZED);
    assert_eq!(error(&crossed).as_deref(), Some(ZH.err_code));

    let back = through_consent(&browser, verify(&browser, &second, &code_b).await).await;
    let claims = redeem(&rp, attempt, &back).await;
    assert_eq!(amr(&claims), ["sms"]);
}

// 5. Sending limits.

async fn codes_to_one_phone_are_spaced_and_capped_per_hour(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;

    let first = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&first), StatusCode::OK);
    let soon = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&soon), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error(&soon).as_deref(), Some(ZH.err_sms_throttled));
    assert!(!has_code_form(&soon));
    assert_eq!(inbox.calls().len(), 1, "no second message within the cooldown");

    for n in 2..=5 {
        env.app.clock.advance(61);
        let later = send(&browser, &page, Some(ALICE_PHONE)).await;
        assert_eq!(status(&later), StatusCode::OK, "send {n} after the cooldown");
        assert_eq!(inbox.delivered().len(), n);
    }
    env.app.clock.advance(61);
    let sixth = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sixth), StatusCode::TOO_MANY_REQUESTS, "five an hour");
    assert_eq!(inbox.calls().len(), 5);

    env.app.clock.advance(3600);
    let next_hour = send(&browser, &page, Some(ALICE_PHONE)).await;
    assert_eq!(status(&next_hour), StatusCode::OK);
    assert_eq!(inbox.delivered().len(), 6);
}

async fn one_address_may_ask_for_only_so_many_codes(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let tweak = webhook(&inbox);
    let env = Env::start_with(backend, move |c| {
        tweak(c);
        c.sms_per_address_hour = 3;
    })
    .await;
    let phones = ["13900139001", "13900139002", "13900139003", "13900139004"];
    for (n, phone) in phones.iter().enumerate() {
        env.person(&resident_id(n as u32 + 1), phone, PASSWORD).await;
    }
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;

    for phone in &phones[..3] {
        let sent = send(&browser, &page, Some(phone)).await;
        assert_eq!(status(&sent), StatusCode::OK, "{phone}");
    }
    let fourth = send(&browser, &page, Some(phones[3])).await;
    assert_eq!(status(&fourth), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error(&fourth).as_deref(), Some(ZH.err_sms_throttled));
    let to: Vec<String> = inbox.calls().iter().map(|c| c.to()).collect();
    assert_eq!(to, ["+8613900139001", "+8613900139002", "+8613900139003"]);
}

async fn the_cooldown_holds_across_nodes(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    env.person(&resident_id(7), "13700137000", PASSWORD).await;
    let b = Server::start(&env.db.url, &env.keys_dir, &webhook(&inbox)).await;
    let on_a = Browser::new(&env.base);
    let on_b = Browser::new(&b.base);

    let page_a = on_a.get("/login?method=sms").await;
    let sent = send(&on_a, &page_a, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sent), StatusCode::OK);

    let page_b = on_b.get("/login?method=sms").await;
    let again = send(&on_b, &page_b, Some(ALICE_PHONE)).await;
    assert_eq!(status(&again), StatusCode::TOO_MANY_REQUESTS, "{}", body(&again));
    assert_eq!(inbox.calls().len(), 1);

    // B sends codes to other phones all right.
    let other = send(&on_b, &page_b, Some("13700137000")).await;
    assert_eq!(status(&other), StatusCode::OK);
    assert_eq!(inbox.delivered().last().unwrap().to(), "+8613700137000");
}

// 6. Step-up.

async fn a_strong_app_gets_a_second_factor_by_sms(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, plain) = plain_app(&env).await;
    let (_, strong) = strong_app(&env).await;
    let (browser, jar) = Browser::with_jar(&env.base);

    let first = password_sign_in(&plain, &browser).await;
    assert_eq!(first["acr"], "1");
    let cookie_before = cookie(&jar, &env.base, "yunid_session").expect("a session cookie");

    let attempt = strong.start(&["profile"]);
    let page = browser.get(attempt.url.as_str()).await;
    let (_, code, html) = page.html();
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains(&format!("<h1>{}</h1>", ZH.stepup_title)), "{html}");
    assert!(!has_password_field(&page), "the password was given already");
    assert!(!has_phone_field(&page), "the code goes to her own phone");
    assert!(html.contains(r#"action="/login/sms/send""#), "{html}");

    let sent = send(&browser, &page, None).await;
    assert_eq!(status(&sent), StatusCode::OK, "{}", body(&sent));
    assert!(has_code_form(&sent));
    assert_eq!(inbox.delivered().len(), 1);
    assert_eq!(inbox.delivered()[0].to(), ALICE_E164);

    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    let claims = redeem(&strong, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
    let methods = amr(&claims);
    for m in ["pwd", "sms", "mfa"] {
        assert!(methods.iter().any(|x| x == m), "{m} in {methods:?}");
    }
    assert_eq!(first["sid"], alices_sid_at(&env, &plain).await);
    assert_eq!(
        claims["sid"],
        alices_sid_at(&env, &strong).await,
        "the same SSO session, raised"
    );
    let cookie_after = cookie(&jar, &env.base, "yunid_session").expect("a session cookie");
    assert_ne!(cookie_after, cookie_before, "a new session id after step-up");
}

async fn a_password_at_a_strong_app_leads_on_to_step_up(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, strong) = strong_app(&env).await;
    let browser = Browser::new(&env.base);

    let attempt = strong.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let Page::Html { body: html, .. } = &page else {
        panic!("expected the step-up page, got {page:?}");
    };
    assert!(html.contains(&format!("<h1>{}</h1>", ZH.stepup_title)), "{html}");

    let sent = send(&browser, &page, None).await;
    assert!(has_code_form(&sent), "{}", body(&sent));
    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    let claims = redeem(&strong, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
    assert!(amr(&claims).contains(&"mfa".to_owned()));
}

async fn a_failed_step_up_leaves_the_session_as_it_was(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, plain) = plain_app(&env).await;
    let (_, strong) = strong_app(&env).await;
    let (browser, jar) = Browser::with_jar(&env.base);
    let first = password_sign_in(&plain, &browser).await;
    let cookie_before = cookie(&jar, &env.base, "yunid_session").unwrap();

    let page = browser.get(strong.start(&["profile"]).url.as_str()).await;
    let sent = send(&browser, &page, None).await;
    let wrong = verify(&browser, &sent, &other_than(&inbox.last_code())).await;
    assert_eq!(status(&wrong), StatusCode::UNAUTHORIZED);
    assert_eq!(error(&wrong).as_deref(), Some(ZH.err_code));
    assert!(body(&wrong).contains(ZH.stepup_title));
    assert_eq!(
        cookie(&jar, &env.base, "yunid_session").as_deref(),
        Some(cookie_before.as_str())
    );

    // The plain app still gets Alice without asking her anything.
    let mut attempt = plain.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("prompt", "none");
    let back = browser.get(attempt.url.as_str()).await;
    let claims = redeem(&plain, attempt, &back).await;
    assert_eq!(claims["acr"], "1");
    assert_eq!(claims["sid"], first["sid"]);
}

async fn an_essential_acr_claim_asks_for_step_up(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, plain) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    password_sign_in(&plain, &browser).await;

    let mut attempt = plain.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair(
        "claims",
        r#"{"id_token":{"acr":{"essential":true,"values":["2"]}}}"#,
    );
    let page = browser.get(attempt.url.as_str()).await;
    assert!(page.html().2.contains(ZH.stepup_title), "{page:?}");
    let sent = send(&browser, &page, None).await;
    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    let claims = redeem(&plain, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
}

async fn acr_values_asking_for_two_factors_asks_for_step_up(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, plain) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    password_sign_in(&plain, &browser).await;

    // "1 2" accepts what the session has; "2" alone needs the second factor.
    let mut either = plain.start(&["profile"]);
    either.url.query_pairs_mut().append_pair("acr_values", "1 2");
    let page = browser.get(either.url.as_str()).await;
    assert!(page.params().contains_key("code"), "{page:?}");

    let mut attempt = plain.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("acr_values", "2");
    let page = browser.get(attempt.url.as_str()).await;
    assert!(page.html().2.contains(ZH.stepup_title), "{page:?}");
    assert!(
        !page.html().2.contains("name=\"password\""),
        "the password the session already has is not offered again"
    );
    let sent = send(&browser, &page, None).await;
    let back = through_consent(&browser, verify(&browser, &sent, &inbox.last_code()).await).await;
    let claims = redeem(&plain, attempt, &back).await;
    assert_eq!(claims["acr"], "2");
}

// 7. The page itself.

async fn the_login_page_is_chinese_unless_english_is_asked_for(backend: Backend) {
    let env = Env::start(backend).await;
    let (_, rp) = plain_app(&env).await;
    let lang = |p: &Page| {
        let re = regex_lite::Regex::new(r#"<html lang="([^"]*)">"#).unwrap();
        re.captures(body(p)).map(|c| c[1].to_owned())
    };
    let chinese = |p: &Page| {
        lang(p).as_deref() == Some("zh-CN") && body(p).contains(&format!("<h1>{}</h1>", ZH.login_title))
    };
    let english = |p: &Page| {
        lang(p).as_deref() == Some("en") && body(p).contains(&format!("<h1>{}</h1>", EN.login_title))
    };

    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    assert!(chinese(&login), "{}", body(&login));
    let (url, _, _) = login.html();

    // Accept-Language.
    let res = browser
        .http
        .get(url)
        .header("accept-language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(html.contains("<h1>Sign in</h1>"), "{html}");

    // ui_locales of the authorization request.
    let fresh = Browser::new(&env.base);
    let mut attempt = rp.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("ui_locales", "en");
    let page = fresh.get(attempt.url.as_str()).await;
    assert!(english(&page), "{}", body(&page));

    // The language switch, remembered in a cookie.
    let switched = Browser::new(&env.base);
    switched.get("/lang/en").await;
    let page = switched.get(rp.start(&["profile"]).url.as_str()).await;
    assert!(english(&page), "{}", body(&page));
    let page = sms_method(&switched, &page).await;
    assert!(english(&page), "{}", body(&page));
}

async fn the_login_page_helps_the_browser_and_keeps_scripts_out(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let req = field(body(&login), "req").unwrap();

    let password = body(&login);
    assert!(
        password.contains(r#"autocomplete="username webauthn""#),
        "{password}"
    );
    assert!(
        password.contains(r#"autocomplete="current-password""#),
        "{password}"
    );
    let sms = sms_method(&browser, &login).await;
    assert!(body(&sms).contains(r#"type="tel""#), "{}", body(&sms));
    assert!(body(&sms).contains(r#"autocomplete="tel""#), "{}", body(&sms));
    let sent = send(&browser, &sms, Some(ALICE_PHONE)).await;
    assert!(body(&sent).contains(r#"autocomplete="one-time-code""#));

    let script = regex_lite::Regex::new(r"(?s)<script\b([^>]*)>").unwrap();
    let mut scripts = 0;
    for method in ["password", "sms", "passkey"] {
        let res = browser
            .http
            .get(env.url(&format!("/login?req={req}&method={method}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res
            .headers()
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("a CSP on the {method} page"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let html = res.text().await.unwrap();
        for tag in script.captures_iter(&html) {
            scripts += 1;
            let attrs = &tag[1];
            assert!(
                regex_lite::Regex::new(r#"\bnonce="[^"]+""#)
                    .unwrap()
                    .is_match(attrs),
                "a script without a nonce on the {method} page: <script{attrs}>"
            );
        }
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "{html}"
        );
    }
    assert!(scripts > 0, "the passkey page loads its script");
}

async fn forms_without_the_csrf_token_are_refused(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let req = field(body(&login), "req").unwrap();

    let page = browser
        .post(
            "/login",
            &[("req", &req), ("username", ALICE_ID), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status(&page), StatusCode::FORBIDDEN);
    let page = browser
        .post(
            "/login",
            &[
                ("csrf", "forged"),
                ("req", &req),
                ("username", ALICE_ID),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status(&page), StatusCode::FORBIDDEN);
    let page = browser
        .post("/login/sms/send", &[("req", &req), ("phone", ALICE_PHONE)])
        .await;
    assert_eq!(status(&page), StatusCode::FORBIDDEN);
    assert!(inbox.calls().is_empty());

    // With the token from the page it works.
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert!(page.is_consent(), "{page:?}");
}

// 8. Locked accounts.

async fn a_locked_account_is_told_only_after_the_right_password(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    sqlx::query("UPDATE persons SET status = 'locked'")
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;

    let wrong = browser.login(&login, ALICE_ID, "not her password").await;
    assert_eq!(status(&wrong), StatusCode::UNAUTHORIZED);
    assert_eq!(error(&wrong).as_deref(), Some(ZH.err_credentials));

    let right = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert_eq!(status(&right), StatusCode::FORBIDDEN);
    assert_eq!(error(&right).as_deref(), Some(ZH.err_unavailable));

    // No code goes to a locked account's phone either (and the page does not say why).
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sent), StatusCode::OK);
    assert_eq!(notice(&sent).as_deref(), Some(ZH.sms_sent));
    assert!(inbox.calls().is_empty());
}

/// A status yunid never writes (put there by hand) stops that account like a lock, and nothing else: the
/// sign-in is refused as for a locked account, not answered with a server error.
async fn an_unknown_stored_status_stops_the_account_like_a_lock(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let (_, rp) = plain_app(&env).await;
    sqlx::query("UPDATE persons SET status = 'suspended'")
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let right = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert_eq!(status(&right), StatusCode::FORBIDDEN);
    assert_eq!(error(&right).as_deref(), Some(ZH.err_unavailable));
    let sent = send(&browser, &sms_method(&browser, &login).await, Some(ALICE_PHONE)).await;
    assert_eq!(status(&sent), StatusCode::OK);
    assert!(inbox.calls().is_empty());
}

// 9. Production refuses development conveniences.

async fn production_refuses_the_console_gateway(backend: Backend) {
    let db = crate::common::TestDb::new(backend).await;
    let keys = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();

    let mut config = test_config(&db.url, keys.path(), addr);
    config.production = true;
    assert_eq!(config.sms_gateway, "console");
    let refused = yunid::App::new(config.clone()).await;
    let e = refused
        .err()
        .expect("the console gateway is refused in production");
    assert!(format!("{e:#}").contains("console"), "{e:#}");

    // A webhook gateway is what production runs with.
    let inbox = SmsInbox::start(0).await;
    webhook(&inbox)(&mut config);
    yunid::App::new(config)
        .await
        .expect("production with the webhook gateway starts");
}

on_both_backends!(
    the_webhook_receives_a_signed_message_with_the_code,
    the_webhook_is_retried_after_a_server_error,
    a_citizen_signs_in_with_an_sms_code,
    an_unregistered_phone_gets_the_same_page_and_no_sms,
    wrong_codes_are_refused_and_five_use_up_the_attempt,
    a_code_works_once_and_only_for_five_minutes,
    a_fresh_code_for_an_answered_request_signs_nobody_in_and_is_not_spent,
    a_sign_in_for_an_app_consented_before_goes_back_to_it_in_one_answer,
    a_code_opens_only_its_own_attempt,
    codes_to_one_phone_are_spaced_and_capped_per_hour,
    one_address_may_ask_for_only_so_many_codes,
    the_cooldown_holds_across_nodes,
    a_strong_app_gets_a_second_factor_by_sms,
    a_password_at_a_strong_app_leads_on_to_step_up,
    a_failed_step_up_leaves_the_session_as_it_was,
    an_essential_acr_claim_asks_for_step_up,
    acr_values_asking_for_two_factors_asks_for_step_up,
    the_login_page_is_chinese_unless_english_is_asked_for,
    the_login_page_helps_the_browser_and_keeps_scripts_out,
    forms_without_the_csrf_token_are_refused,
    a_locked_account_is_told_only_after_the_right_password,
    an_unknown_stored_status_stops_the_account_like_a_lock,
    production_refuses_the_console_gateway,
);
