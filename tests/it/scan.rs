//! Scan to sign in: a computer's login page shows a QR code; the province's mobile app (scripted here,
//! with Alice's access token from its own sign-in) scans it, sees what asks, and approves by typing the
//! number the computer shows, or denies. The computer — only the browser that showed the code, and only
//! for the sign-in it was shown for — continues with the phone's own sign-in: its level, its time, its
//! methods plus `mca`. Denial, expiry, a second scan, a wrong number, finishing in another browser or for
//! another request, and a phone sign-in older than the app accepts all fail cleanly.

use reqwest::StatusCode;
use serde_json::{Value, json};
use yunid::services::registry::NewClient;

use crate::common::browser::{Page, field};
use crate::common::console::sms_to;
use crate::common::rp::Rp;
use crate::common::sms::SmsInbox;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, TestClient, http, wire};
use crate::on_both_backends;

/// A provider node whose configuration names the province's app (`scan_apps`), and that app.
struct ScanEnv {
    node: Server,
    sms: SmsInbox,
    alice: String,
    phone_app: TestClient,
    env: Env,
}

async fn scan_env(backend: Backend) -> ScanEnv {
    let sms = SmsInbox::start(0).await;
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let phone_app = env
        .client_with(NewClient {
            name: "省政务服务App".into(),
            redirect_uris: vec!["http://127.0.0.1/app/callback".into()],
            scopes: ["openid", "profile", "phone", "offline_access", "scan"]
                .map(String::from)
                .to_vec(),
            ..NewClient::default()
        })
        .await;
    let id = phone_app.id.clone();
    let to_inbox = sms_to(&sms);
    // A node of the same deployment configured with the app's client id.
    let node = Server::start(&env.db.url, env.keys.path(), &move |c| {
        to_inbox(c);
        c.scan_apps = vec![id.clone()];
    })
    .await;
    ScanEnv {
        node,
        sms,
        alice,
        phone_app,
        env,
    }
}

/// The app on Alice's phone: she signed in to it (password, and an SMS code as well when `two_factor`);
/// its access token.
async fn phone_token(s: &ScanEnv, two_factor: bool) -> String {
    phone_sign_in(s, two_factor).await.0
}

/// [`phone_token`], with the time Alice signed in to the app (its ID token's `auth_time`).
async fn phone_sign_in(s: &ScanEnv, two_factor: bool) -> (String, i64) {
    phone_sign_in_for(s, two_factor, &["profile", "scan"]).await
}

/// [`phone_sign_in`], the app asking for `scopes`.
async fn phone_sign_in_for(s: &ScanEnv, two_factor: bool, scopes: &[&str]) -> (String, i64) {
    let base = &s.node.base;
    let browser = Browser::new(base);
    if two_factor {
        let login = browser.get("/login").await;
        browser.login(&login, ALICE_ID, PASSWORD).await;
        crate::passkeys::step_up_for_account(&browser, &s.sms).await;
    }
    let rp = Rp::discover(s.node.app.config.iss(), &s.phone_app).await;
    let attempt = rp.start(scopes);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let tokens = rp
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    let auth_time = wire::jwt_parts(&id_token).1["auth_time"].as_i64().unwrap();
    let token = openidconnect::OAuth2TokenResponse::access_token(&tokens)
        .secret()
        .clone();
    (token, auth_time)
}

/// The computer: opens a department app's sign-in and its scan page. The page, the QR code's value (as
/// a camera reads it) and the browser's handle.
struct Shown {
    page: Page,
    qr: String,
    handle: String,
}

async fn show_code(s: &ScanEnv, browser: &Browser, app: &Rp) -> Shown {
    show_code_for(s, browser, app).await.0
}

/// [`show_code`], with the app's authorization attempt (to redeem the code the app gets).
async fn show_code_for(s: &ScanEnv, browser: &Browser, app: &Rp) -> (Shown, crate::common::rp::Attempt) {
    show_code_with(s, browser, app, &[]).await
}

/// [`show_code_for`], the app's request carrying `extra` parameters (`max_age`, …).
async fn show_code_with(
    s: &ScanEnv,
    browser: &Browser,
    app: &Rp,
    extra: &[(&str, &str)],
) -> (Shown, crate::common::rp::Attempt) {
    let mut attempt = app.start(&["profile"]);
    for (k, v) in extra {
        attempt.url.query_pairs_mut().append_pair(k, v);
    }
    let login = browser.get(attempt.url.as_str()).await;
    assert!(login.is_login());
    let body = login.html().2;
    let link = regex_lite::Regex::new(r#"href="(/login/scan\?req=[^"]*)""#)
        .unwrap()
        .captures(body)
        .unwrap_or_else(|| panic!("the login page offers scanning: {body}"))[1]
        .replace("&amp;", "&");
    let page = browser.get(&link).await;
    let (_, status, body) = page.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("<svg"),
        "the QR code is drawn on the server: {body}"
    );
    let token = field(body, "c").unwrap();
    let handle = field(body, "handle").unwrap();
    let shown = Shown {
        qr: format!("{}/scan?c={token}", s.node.base),
        handle,
        page: page.clone_html(),
    };
    (shown, attempt)
}

trait CloneHtml {
    fn clone_html(&self) -> Page;
}

impl CloneHtml for Page {
    fn clone_html(&self) -> Page {
        let (url, status, body) = self.html();
        Page::Html {
            url: url.to_owned(),
            status,
            body: body.to_owned(),
        }
    }
}

/// The app's API call: status and body.
async fn api(s: &ScanEnv, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = http().post(s.node.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// What the computer's page asks about its request.
async fn status(browser: &Browser, handle: &str) -> (StatusCode, Value) {
    let res = browser
        .http
        .get(format!("{}/login/scan/status?handle={handle}", browser.origin))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The computer presses Continue (what the page's script does once approved).
async fn finish(browser: &Browser, shown: &Shown) -> Page {
    let req = field(shown.page.html().2, "req");
    finish_for(browser, shown, req.as_deref()).await
}

/// Continue posted with the code's handle for the request `req` (none: the account page).
async fn finish_for(browser: &Browser, shown: &Shown, req: Option<&str>) -> Page {
    let body = shown.page.html().2;
    let mut form = vec![
        ("csrf", field(body, "csrf").unwrap()),
        ("handle", shown.handle.clone()),
    ];
    if let Some(req) = req {
        form.push(("req", req.to_owned()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post("/login/scan/finish", &form).await
}

/// The computer shows a code for yunid's own account page.
async fn account_code(s: &ScanEnv, computer: &Browser) -> Shown {
    let page = computer.get("/login/scan").await;
    let body = page.html().2;
    Shown {
        qr: format!("{}/scan?c={}", s.node.base, field(body, "c").unwrap()),
        handle: field(body, "handle").unwrap(),
        page: page.clone_html(),
    }
}

/// The phone scans the code, Alice reads the number off the computer and types it (as the app sends
/// what was typed: a string of digits): the answer's status and body.
async fn scan_and_approve(
    s: &ScanEnv,
    phone: &str,
    computer: &Browser,
    shown: &Shown,
) -> (StatusCode, Value) {
    let (code, asking) = api(s, "/scan/api/scan", Some(phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::OK, "{asking}");
    let number = status(computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    api(
        s,
        "/scan/api/answer",
        Some(phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number.to_string() }),
    )
    .await
}

/// The `req` of the page the browser landed on.
fn req_of(page: &Page) -> String {
    let url = url::Url::parse(page.html().0).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "req")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no req in {url}"))
}

fn amr_of(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Past the consent page, when the app asks for the first time.
async fn to_app(browser: &Browser, page: Page) -> Page {
    if page.is_consent() {
        browser.consent(&page, true).await
    } else {
        page
    }
}

async fn department_app(s: &ScanEnv) -> Rp {
    let client = s
        .env
        .client_with(NewClient {
            name: "不动产登记".into(),
            redirect_uris: vec!["https://estate.example.gov.cn/cb".into()],
            ..NewClient::default()
        })
        .await;
    Rp::discover(s.node.app.config.iss(), &client).await
}

async fn approving_on_the_phone_signs_the_computer_in_at_the_phones_level(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, true).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let (shown, attempt) = show_code_for(&s, &computer, &app).await;
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "waiting");

    let (code, asking) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::OK, "{asking}");
    assert_eq!(asking["app"]["name"], "不动产登记", "{asking}");
    assert_eq!(asking["browser_network"], "127.0.0.0/24", "{asking}");
    assert_eq!(asking["same_network"], true, "{asking}");
    assert!(asking["expires_at"].as_i64().unwrap() > asking["requested_at"].as_i64().unwrap());
    // The phone is given no numbers to choose from: Alice types the one the computer shows.
    assert!(asking.get("choices").is_none(), "{asking}");
    assert_eq!(asking["number_digits"], 2, "{asking}");

    // Once scanned, the computer shows the number to type.
    let (_, scanned) = status(&computer, &shown.handle).await;
    assert_eq!(scanned["status"], "scanned", "{scanned}");
    let number = scanned["number"].as_i64().unwrap();
    assert!((10..=99).contains(&number), "{number}");
    // Continue pressed too early (no script): the same page again, nothing signed in.
    let early = finish(&computer, &shown).await;
    assert_eq!(early.html().1, StatusCode::CONFLICT);

    let (code, answered) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{answered}");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "approved");

    // The computer continues to the app; the app's ID token says two factors, as on the phone.
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    let tokens = app
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    let claims = wire::jwt_parts(&id_token).1;
    assert_eq!(claims["acr"], "2", "the phone's two factors: {claims}");
    let amr = amr_of(&claims);
    assert!(
        amr.iter().any(|m| m == "pwd") && amr.iter().any(|m| m == "sms") && amr.iter().any(|m| m == "mca"),
        "the phone's factors, and the scan: {amr:?}"
    );

    // Used once: pressing Continue again, or answering again, changes nothing.
    let replay = finish(&computer, &shown).await;
    assert_eq!(replay.html().1, StatusCode::BAD_REQUEST);
    let (code, again) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{again}");
}

async fn a_one_factor_phone_gives_a_one_factor_session(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    // The account page's own sign-in (no app asking).
    let page = computer.get("/login/scan").await;
    let body = page.html().2;
    let shown = Shown {
        qr: format!("{}/scan?c={}", s.node.base, field(body, "c").unwrap()),
        handle: field(body, "handle").unwrap(),
        page: page.clone_html(),
    };
    let (code, asking) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::OK, "{asking}");
    assert_eq!(asking["app"], Value::Null, "no app: the account page");
    let number = status(&computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    let landed = finish(&computer, &shown).await;
    let (url, status, body) = landed.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(url.ends_with("/account"), "{url}");
    let app = department_app(&s).await;
    let attempt = app.start(&["profile"]);
    let mut page = computer.get(attempt.url.as_str()).await;
    if page.is_consent() {
        page = computer.consent(&page, true).await;
    }
    let tokens = app
        .exchange(&page.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    assert_eq!(wire::jwt_parts(&id_token).1["acr"], "1");
}

async fn a_denial_on_the_phone_leaves_the_computer_signed_out(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "deny" }),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "denied");
    let refused = finish(&computer, &shown).await;
    assert_eq!(refused.html().1, StatusCode::BAD_REQUEST);
    let account = computer.get("/account").await;
    assert!(account.is_login(), "nobody is signed in on the computer");
}

async fn a_wrong_number_refuses_the_sign_in_for_good(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    let number = status(&computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    let wrong = if number == 99 { 10 } else { number + 1 };
    let (code, body) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": wrong }),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "number_mismatch");
    // No second guess.
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "denied");
}

/// Finding: the app was handed three numbers to pick from (a one-in-three guess). Now the app gets none:
/// the person types what the computer shows; a wrong number ends that code, is a failed sign-in in the
/// person's login history, and after five of them the person's approvals wait (a deny still works).
async fn the_number_is_typed_and_wrong_numbers_count_as_failed_attempts(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    for _ in 0..yunid::services::scan::WRONG_NUMBERS {
        let shown = account_code(&s, &computer).await;
        let (code, asking) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
        assert_eq!(code, StatusCode::OK, "{asking}");
        assert!(asking.get("choices").is_none(), "nothing to pick from: {asking}");
        let number = status(&computer, &shown.handle).await.1["number"]
            .as_i64()
            .unwrap();
        let wrong = if number == 99 { 10 } else { number + 1 };
        let (code, body) = api(
            &s,
            "/scan/api/answer",
            Some(&phone),
            json!({ "code": shown.qr, "decision": "approve", "number": wrong.to_string() }),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "number_mismatch", "{body}");
        assert_eq!(status(&computer, &shown.handle).await.1["status"], "denied");
    }
    let history = s.node.app.db.login_events(&s.alice, 50).await.unwrap();
    let failures = history
        .iter()
        .filter(|e| e.method == "scan" && e.outcome == "failure")
        .count();
    assert_eq!(
        failures,
        yunid::services::scan::WRONG_NUMBERS as usize,
        "{history:?}"
    );
    // Now even the right number waits; nothing is answered, and Alice can still deny.
    let shown = account_code(&s, &computer).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_attempts", "{body}");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "scanned");
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "deny" }),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    // A number that is not digits is not an answer.
    let shown = account_code(&s, &computer).await;
    api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": "4x" }),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // After the throttle window (and with a new token: the old one expired meanwhile) the right number
    // signs the computer in.
    s.node
        .app
        .clock
        .advance(s.node.app.config.login_throttle_window + 1);
    let phone = phone_token(&s, false).await;
    let shown = account_code(&s, &computer).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(finish(&computer, &shown).await.html().0.ends_with("/account"));
}

/// Finding: the computer's session took the phone's factors with `auth_time` = the scan. Now it takes the
/// phone's own sign-in time and level, and `amr` says a scan carried it (`mca`); an app asking that
/// session for a recent sign-in sees the real age.
async fn a_scan_hands_on_the_phones_sign_in_time_and_marks_the_scan(backend: Backend) {
    let s = scan_env(backend).await;
    let (phone, signed_in_at) = phone_sign_in(&s, false).await;
    // Eight minutes later (the app's access token still valid: it lives ten).
    s.node.app.clock.advance(480);
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let (shown, attempt) = show_code_for(&s, &computer, &app).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    let tokens = app
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    let claims = wire::jwt_parts(&id_token).1;
    assert_eq!(
        claims["auth_time"].as_i64(),
        Some(signed_in_at),
        "the phone's sign-in time, not the scan's: {claims}"
    );
    assert!(claims["iat"].as_i64().unwrap() >= signed_in_at + 480, "{claims}");
    assert_eq!(claims["acr"], "1", "no more than the phone had: {claims}");
    let amr = amr_of(&claims);
    assert!(
        amr.iter().any(|m| m == "pwd") && amr.iter().any(|m| m == "mca"),
        "{amr:?}"
    );
    // The app asks again for a sign-in at most five minutes old: the scan-made session (from a sign-in
    // eight minutes old) does not pass for one.
    let mut again = app.start(&["profile"]);
    again.url.query_pairs_mut().append_pair("max_age", "300");
    assert!(computer.get(again.url.as_str()).await.is_login());
}

/// Review F6: a scan-made session holds the phone's methods (its `pwd` perhaps months old). An app
/// asking for two factors sends the computer to step up; one SMS code typed there must not join the
/// phone's password into a "fresh" two-factor session. The step-up counts only what this browser proves:
/// after the SMS code it asks for the password too, and only then does the app get its code, with
/// `acr` 2 from the browser's own two factors (no `mca`).
async fn a_browser_step_up_never_joins_the_phones_factors(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    let shown = account_code(&s, &computer).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let landed = finish(&computer, &shown).await;
    let (url, status, body) = landed.html();
    assert!(url.ends_with("/account"), "{status} {body}");
    // An app asking for two factors.
    let app = department_app(&s).await;
    let mut attempt = app.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("acr_values", "2");
    let up = computer.get(attempt.url.as_str()).await;
    let req = req_of(&up);
    assert!(
        up.html().2.contains("/login/sms/send") || up.html().2.contains("method=sms"),
        "the step-up page: {up:?}"
    );
    let sms_page = computer
        .get(&format!("/login?req={}&method=sms", urlencoding(&req)))
        .await;
    let after_sms = crate::common::console::step_up(&computer, &s.sms, &sms_page).await;
    let (_, status, body) = after_sms.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        after_sms.is_login(),
        "one SMS code in a scan-made session is one factor: the password is asked for too: {body}"
    );
    let back = to_app(&computer, computer.login(&after_sms, ALICE_ID, PASSWORD).await).await;
    let tokens = app
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    let claims = wire::jwt_parts(&id_token).1;
    assert_eq!(claims["acr"], "2", "{claims}");
    let amr = amr_of(&claims);
    assert!(
        amr.iter().any(|m| m == "sms") && amr.iter().any(|m| m == "pwd"),
        "{amr:?}"
    );
    assert!(
        !amr.iter().any(|m| m == "mca"),
        "nothing of the scan is left: {amr:?}"
    );
}

/// Review of F6 (H2): a scan-made session from a two-factor phone sign-in is `acr` 2 and recent, but its
/// factors were proven on the phone. Adding a passkey from it would make them the browser's own (a
/// passkey then signs in at level 2 without `mca`): the account page asks for a step-up in this browser
/// first.
async fn a_scan_made_session_adds_no_passkey_without_its_own_factors(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, true).await;
    let computer = Browser::new(&s.node.base);
    let shown = account_code(&s, &computer).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let landed = finish(&computer, &shown).await;
    let (url, _, _) = landed.html();
    assert!(url.ends_with("/account"), "{url}");
    let account = computer.get("/account").await;
    let html = account.html().2;
    assert!(
        html.contains("href=\"/login?step_up=account\""),
        "a step-up in this browser first: {html}"
    );
}

fn urlencoding(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Finding: an app asking for `max_age` or `prompt=login` got a scan-made session from an old phone
/// sign-in. A phone sign-in older than `max_age` claims nothing (the app is told to have the person sign
/// in again), and the computer checks again when it continues; `prompt=login` is not offered scanning.
async fn an_app_asking_for_a_recent_or_new_sign_in_gets_no_scan_of_an_older_one(backend: Backend) {
    let s = scan_env(backend).await;
    let (phone, _) = phone_sign_in(&s, false).await;
    s.node.app.clock.advance(480);
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);

    // max_age=120 and a phone sign-in eight minutes old: refused, nothing claimed.
    let (shown, _) = show_code_with(&s, &computer, &app, &[("max_age", "120")]).await;
    let (code, body) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "sign_in_too_old", "{body}");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "waiting");
    // Alice signs in to the app again: the same code now works, and the app gets a recent sign-in.
    let (fresh, fresh_at) = phone_sign_in(&s, false).await;
    let (code, body) = scan_and_approve(&s, &fresh, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    let _ = fresh_at;

    // max_age=30: approved in time, but Continue comes 31 s later — refused, nobody signed in.
    let other = Browser::new(&s.node.base);
    let (shown, _) = show_code_with(&s, &other, &app, &[("max_age", "30")]).await;
    let (fresh, _) = phone_sign_in(&s, false).await;
    let (code, body) = scan_and_approve(&s, &fresh, &other, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    s.node.app.clock.advance(31);
    let late = finish(&other, &shown).await;
    let (_, status_code, body) = late.html();
    assert_eq!(status_code, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("手机上的登录时间太早"), "{body}");
    assert!(other.get("/account").await.is_login(), "nobody signed in");

    // prompt=login: the login page offers no scanning, and the scan page says why, with no code.
    let third = Browser::new(&s.node.base);
    let mut attempt = app.start(&["profile"]);
    attempt.url.query_pairs_mut().append_pair("prompt", "login");
    let login = third.get(attempt.url.as_str()).await;
    assert!(login.is_login());
    assert!(!login.html().2.contains("/login/scan"), "{}", login.html().2);
    let req = req_of(&login);
    let page = third.get(&format!("/login/scan?req={req}")).await;
    let (_, status_code, body) = page.html();
    assert_eq!(status_code, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("要求您现在重新登录"), "{body}");
    assert!(!body.contains("<svg"), "no code to scan: {body}");
}

/// Finding: `finish` did not check that the browser continues the sign-in the phone was shown. The code
/// is bound to the request it was shown for; Continue for another request of the same browser (or for
/// none) is refused, and the request it was shown for still finishes.
async fn a_code_finishes_only_for_the_sign_in_it_was_shown_for(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let estate = department_app(&s).await;
    let other_client = s
        .env
        .client_with(NewClient {
            name: "社保查询".into(),
            redirect_uris: vec!["https://social.example.gov.cn/cb".into()],
            ..NewClient::default()
        })
        .await;
    let social = Rp::discover(s.node.app.config.iss(), &other_client).await;
    let computer = Browser::new(&s.node.base);
    let (shown, _) = show_code_for(&s, &computer, &estate).await;
    // The same browser opens another app's sign-in too.
    let other_login = computer.get(social.start(&["profile"]).url.as_str()).await;
    assert!(other_login.is_login());
    let other_req = req_of(&other_login);
    let (code, asking) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(asking["app"]["name"], "不动产登记", "what the phone shows");
    let number = status(&computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    // Continue for the other app's request, or for the account page: refused, nobody signed in.
    let wrong = finish_for(&computer, &shown, Some(&other_req)).await;
    assert_eq!(wrong.html().1, StatusCode::FORBIDDEN, "{}", wrong.html().2);
    assert!(wrong.html().2.contains("另一次登录"), "{}", wrong.html().2);
    let none = finish_for(&computer, &shown, None).await;
    assert_eq!(none.html().1, StatusCode::FORBIDDEN, "{}", none.html().2);
    assert!(computer.get("/account").await.is_login(), "nobody signed in");
    // The request it was shown for continues.
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    assert!(
        back.left()
            .as_str()
            .starts_with("https://estate.example.gov.cn/cb"),
        "{back:?}"
    );
}

/// Finding F3: new codes were counted with a memory of one window, so a refused ask did not count and a
/// fresh burst came every ~61 s. Now a leaky bucket per address (and IPv6 /48) in the database: a burst of
/// `new_code_burst`, then one per `new_code_interval_ms`; a refused ask counts too, so whoever keeps
/// asking faster gets nothing more and, once they stop, waits what `Retry-After` says.
async fn new_codes_are_limited_per_address(backend: Backend) {
    let s = scan_env(backend).await;
    // A small bucket draining slowly (one code per ten minutes), so the test's own running time
    // drains nothing that matters.
    let id = s.phone_app.id.clone();
    let node = crate::common::Server::start(&s.env.db.url, s.env.keys.path(), &move |c| {
        c.scan_apps = vec![id.clone()];
        c.new_code_burst = 10;
        c.new_code_interval_ms = 600_000;
    })
    .await;
    let (burst, interval) = (node.app.config.new_code_burst, 600);
    let computer = Browser::new(&node.base);
    let mut first = None;
    for _ in 0..burst {
        let page = computer.get("/login/scan").await;
        assert_eq!(page.html().1, StatusCode::OK);
        first.get_or_insert_with(|| page.clone_html());
    }
    let page = computer.get("/login/scan").await;
    let (_, code, body) = page.html();
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(!body.contains("<svg"), "{body}");
    assert!(body.contains("二维码太多"), "{body}");
    // Another browser at the same address is held back too (the count is the address's).
    let other = Browser::new(&node.base);
    assert_eq!(
        other.get("/login/scan").await.html().1,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The code shown first is still shown (no new row).
    let first = first.unwrap();
    let body = first.html().2;
    let again = computer
        .get(&format!(
            "/login/scan?handle={}&c={}",
            field(body, "handle").unwrap(),
            field(body, "c").unwrap()
        ))
        .await;
    assert_eq!(again.html().1, StatusCode::OK);
    assert!(again.html().2.contains("<svg"));
    // Asking twice per drain interval, far longer than the old one-window memory: nothing.
    for _ in 0..15 {
        node.app.clock.advance(interval);
        for _ in 0..2 {
            assert_eq!(
                computer.get("/login/scan").await.html().1,
                StatusCode::TOO_MANY_REQUESTS,
                "a refused ask counts: no new burst"
            );
        }
    }
    // Once it stops, it waits what it is told, then gets one code per interval.
    let res = computer.http.get(node.url("/login/scan")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=(2 * burst + 1) * interval).contains(&wait), "{wait}");
    node.app.clock.advance(wait);
    assert_eq!(computer.get("/login/scan").await.html().1, StatusCode::OK);
    for _ in 0..3 {
        node.app.clock.advance(interval);
        assert_eq!(computer.get("/login/scan").await.html().1, StatusCode::OK);
    }
    assert_eq!(
        computer.get("/login/scan").await.html().1,
        StatusCode::TOO_MANY_REQUESTS,
        "one per interval, not more"
    );
}

/// Finding F4: any site could make browsers load `/login/scan` (an image, a frame) and use up the
/// address's new codes for everyone behind it. A cross-site or same-site load (a department app on a
/// sibling subdomain is another party) gets no code and costs nothing; the login page's own link
/// (same-origin), a typed address (`none`) and browsers without Fetch Metadata still get one. And however many addresses ask, the live codes stop at `scan_max_live`: 503 with
/// `Retry-After` until codes expire.
async fn scan_codes_are_refused_to_other_sites_and_capped_in_total(backend: Backend) {
    let s = scan_env(backend).await;
    let id = s.phone_app.id.clone();
    let node = crate::common::Server::start(&s.env.db.url, s.env.keys.path(), &move |c| {
        c.scan_apps = vec![id.clone()];
        c.scan_max_live = 3;
    })
    .await;
    let from = |site: &str| Browser::with_headers(&node.base, &[("sec-fetch-site", site)]);
    for site in ["cross-site", "same-site"] {
        for _ in 0..yunid::services::new_codes::BURST + 5 {
            let page = from(site).get("/login/scan").await;
            let (_, status, body) = page.html();
            assert_eq!(status, StatusCode::FORBIDDEN, "{site}: {body}");
            assert!(
                field(body, "c").is_none() && !body.contains("<svg"),
                "no code: {body}"
            );
        }
    }
    // None of those counted: the live cap (3) is reached by the pages that may have codes.
    for site in ["same-origin", "none"] {
        let page = from(site).get("/login/scan").await;
        assert_eq!(page.html().1, StatusCode::OK, "{site}");
        assert!(field(page.html().2, "c").is_some(), "{site}");
    }
    let page = Browser::new(&node.base).get("/login/scan").await;
    assert_eq!(page.html().1, StatusCode::OK, "no Fetch Metadata");
    let res = Browser::new(&node.base)
        .http
        .get(node.url("/login/scan"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(field(&body, "c").is_none() && body.contains("稍后再试"), "{body}");
    node.app.clock.advance(node.app.config.scan_ttl + 1);
    assert_eq!(
        Browser::new(&node.base).get("/login/scan").await.html().1,
        StatusCode::OK
    );
}

async fn an_expired_code_cannot_be_scanned(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    s.node.app.clock.advance(s.node.app.config.scan_ttl + 1);
    let (code, body) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "expired");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "expired");
    // Scanned in time but answered too late: refused as well.
    let late = show_code(&s, &computer, &app).await;
    let phone = phone_token(&s, false).await;
    api(&s, "/scan/api/scan", Some(&phone), json!({ "code": late.qr })).await;
    let number = status(&computer, &late.handle).await.1["number"]
        .as_i64()
        .unwrap();
    s.node.app.clock.advance(s.node.app.config.scan_ttl + 1);
    let (code, _) = api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": late.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::GONE);
    assert_eq!(finish(&computer, &late).await.html().1, StatusCode::BAD_REQUEST);
}

async fn a_second_scan_is_refused_whoever_makes_it(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    let (code, _) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::OK);
    // The same phone again, and Bob's phone (someone who photographed the screen): refused.
    let (code, body) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "already_scanned");
    let bob_id = crate::common::resident_id(7);
    s.node.person(&bob_id, "13900139007", PASSWORD).await;
    let bob_browser = Browser::new(&s.node.base);
    let rp = Rp::discover(s.node.app.config.iss(), &s.phone_app).await;
    let attempt = rp.start(&["profile", "scan"]);
    let back = bob_browser.sign_in(attempt.url.as_str(), &bob_id, PASSWORD).await;
    let tokens = rp
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let bob = openidconnect::OAuth2TokenResponse::access_token(&tokens)
        .secret()
        .clone();
    let (code, _) = api(&s, "/scan/api/scan", Some(&bob), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::CONFLICT);
    // Bob cannot answer Alice's scan either.
    let number = status(&computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    let (code, body) = api(
        &s,
        "/scan/api/answer",
        Some(&bob),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_yours");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "scanned");
}

async fn an_approved_code_finishes_only_in_the_browser_that_showed_it(backend: Backend) {
    let s = scan_env(backend).await;
    let phone = phone_token(&s, false).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    let number = status(&computer, &shown.handle).await.1["number"]
        .as_i64()
        .unwrap();
    api(
        &s,
        "/scan/api/answer",
        Some(&phone),
        json!({ "code": shown.qr, "decision": "approve", "number": number }),
    )
    .await;
    // Another browser that learned the handle (and has its own CSRF token) is refused and learns nothing.
    let other = Browser::new(&s.node.base);
    assert_eq!(status(&other, &shown.handle).await.0, StatusCode::NOT_FOUND);
    let own_page = other.get("/login/scan").await;
    let csrf = field(own_page.html().2, "csrf").unwrap();
    let stolen = other
        .post(
            "/login/scan/finish",
            &[("csrf", &csrf), ("handle", &shown.handle)],
        )
        .await;
    assert_eq!(stolen.html().1, StatusCode::FORBIDDEN, "{}", stolen.html().2);
    assert!(
        other.get("/account").await.is_login(),
        "the other browser is not signed in"
    );
    // The browser that showed it still finishes.
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");
}

async fn only_the_provinces_app_with_a_live_token_may_answer(backend: Backend) {
    let s = scan_env(backend).await;
    let app = department_app(&s).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    // No token, a forged one, and a token of another app of Alice's.
    let (code, _) = api(&s, "/scan/api/scan", None, json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = api(
        &s,
        "/scan/api/scan",
        Some("not.a.token"),
        json!({ "code": shown.qr }),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let attempt = app.start(&["profile"]);
    let other_browser = Browser::new(&s.node.base);
    let back = other_browser
        .sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD)
        .await;
    let tokens = app
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let foreign = openidconnect::OAuth2TokenResponse::access_token(&tokens)
        .secret()
        .clone();
    let (code, body) = api(&s, "/scan/api/scan", Some(&foreign), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "insufficient_scope");
    // The province app's own token without the `scan` scope (one it sends to resource servers): 403
    // insufficient_scope (RFC 6750 §3.1), nothing claimed.
    let (unscoped, _) = phone_sign_in_for(&s, false, &["profile"]).await;
    let res = http()
        .post(s.node.url("/scan/api/scan"))
        .bearer_auth(&unscoped)
        .json(&json!({ "code": shown.qr }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"scan\""),
        "{challenge}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    // The app's token after Alice signed out everywhere on the phone: refused.
    let phone = phone_token(&s, false).await;
    s.node
        .app
        .db
        .revoke_person_families(&s.alice, s.node.app.now())
        .await
        .unwrap();
    let (code, _) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": shown.qr })).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // Nothing was claimed by the refused calls.
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "waiting");
    // A camera that opens the code in a browser is told to use the app.
    let opened = Browser::new(&s.node.base).get(&shown.qr).await;
    assert_eq!(opened.html().1, StatusCode::OK);
    assert!(opened.html().2.contains("App"), "{}", opened.html().2);
}

/// An approval lasts only as long as the phone grant that gave it: Alice approves on her phone, then
/// signs out everywhere (a password reset does the same) before the computer presses Continue — the
/// computer stays signed out; likewise when only the phone's grant is revoked.
async fn an_approval_ends_with_sign_out_everywhere_or_the_phones_grant(backend: Backend) {
    let s = scan_env(backend).await;
    let app = department_app(&s).await;
    // Sign out everywhere after the approval.
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "approved");
    s.node
        .app
        .logout()
        .end_everything(&s.alice, s.node.app.now())
        .await
        .unwrap();
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "denied");
    let refused = finish(&computer, &shown).await;
    assert_ne!(refused.html().1, StatusCode::OK, "{}", refused.html().2);
    assert!(
        computer.get("/account").await.is_login(),
        "nobody is signed in on the computer"
    );
    // Only the phone's grant revoked after the approval (the row still says approved).
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let fid = wire::jwt_parts(&phone).1["fid"].as_str().unwrap().to_owned();
    s.node.app.db.revoke_family(&fid, s.node.app.now()).await.unwrap();
    assert_eq!(status(&computer, &shown.handle).await.1["status"], "approved");
    let refused = finish(&computer, &shown).await;
    assert_eq!(refused.html().1, StatusCode::FORBIDDEN, "{}", refused.html().2);
    assert!(
        computer.get("/account").await.is_login(),
        "nobody is signed in on the computer"
    );
    // A live grant still finishes (the check refuses only ended ones).
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    scan_and_approve(&s, &phone, &computer, &shown).await;
    let back = to_app(&computer, finish(&computer, &shown).await).await;
    assert!(back.params().contains_key("code"), "{back:?}");
}

/// The race between Continue and "sign out everywhere", arranged in the database: the sign-out listed
/// the person's sessions just before Continue made the computer's, and revokes the phone's grant right
/// after (here: as the session row is written). Continue checks the grant again once the session exists,
/// ends it and refuses: nobody is signed in on the computer.
async fn a_sign_out_everywhere_racing_continue_signs_nobody_in(backend: Backend) {
    let s = scan_env(backend).await;
    let app = department_app(&s).await;
    let phone = phone_token(&s, false).await;
    let computer = Browser::new(&s.node.base);
    let shown = show_code(&s, &computer, &app).await;
    let (code, body) = scan_and_approve(&s, &phone, &computer, &shown).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    crate::common::races::on(
        &s.node.app.db,
        s.env.db.is_sqlite(),
        "sessions",
        "INSERT",
        "NEW.person_id IS NOT NULL",
        "UPDATE families SET revoked_at = NEW.created_at WHERE person_id = NEW.person_id AND revoked_at IS NULL",
    )
    .await;
    let refused = finish(&computer, &shown).await;
    assert_eq!(refused.html().1, StatusCode::FORBIDDEN, "{}", refused.html().2);
    assert!(
        computer.get("/account").await.is_login(),
        "nobody is signed in on the computer"
    );
}

/// The same in headless Chromium (`tests/browser/scan.mjs`): the page's script shows the number once the
/// phone scanned and continues once it approved; a denial is shown; without JavaScript the page says
/// what to do and its Refresh link and Continue button do the same.
async fn in_chromium_the_page_follows_the_phone_with_and_without_script(backend: Backend) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("YUNID_CHROMIUM").map_or_else(
        || std::path::PathBuf::from("/usr/bin/chromium"),
        std::path::PathBuf::from,
    );
    assert!(
        chromium.exists() && root.join("tests/browser/node_modules/playwright-core").exists(),
        "Chromium and tests/browser/node_modules are needed: run scripts/test"
    );
    let s = scan_env(backend).await;
    let phone = phone_token(&s, true).await;
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/scan.mjs"))
        .env("YUNID_URL", &s.node.base)
        .env("CHROMIUM", &chromium)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut qr = String::new();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(90), lines.next_line())
            .await
            .expect("Chromium reported in time")
            .unwrap();
        let Some(line) = line else { break };
        let step: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_ne!(step["step"], "error", "{step}");
        let flow = step["flow"].as_str().unwrap().to_owned();
        match step["step"].as_str().unwrap() {
            "shown" => {
                assert_eq!(step["qr"], 1, "the QR code is an inline SVG: {step}");
                assert_eq!(
                    step["noscript"], true,
                    "the page tells script-less browsers what to do"
                );
                qr = step["c"].as_str().unwrap().to_owned();
                let (code, body) = api(&s, "/scan/api/scan", Some(&phone), json!({ "code": qr })).await;
                assert_eq!(code, StatusCode::OK, "{body}");
                if flow == "noscript" {
                    stdin.write_all(b"go\n").await.unwrap();
                }
            }
            "number" => {
                let number: i64 = step["number"].as_str().unwrap().parse().unwrap();
                let answer = if flow == "deny" {
                    json!({ "code": qr, "decision": "deny" })
                } else {
                    json!({ "code": qr, "decision": "approve", "number": number })
                };
                let (code, body) = api(&s, "/scan/api/answer", Some(&phone), answer).await;
                assert_eq!(code, StatusCode::OK, "{body}");
                if flow == "noscript" {
                    stdin.write_all(b"go\n").await.unwrap();
                }
            }
            "signed_in" => assert!(step["url"].as_str().unwrap().ends_with("/account"), "{step}"),
            "denied" => assert!(
                step["url"].as_str().unwrap().contains("/login"),
                "signed out: {step}"
            ),
            other => panic!("unexpected step {other}: {step}"),
        }
        seen.push(format!("{flow}:{}", step["step"].as_str().unwrap()));
    }
    assert!(child.wait().await.unwrap().success());
    assert_eq!(
        seen,
        [
            "approve:shown",
            "approve:number",
            "approve:signed_in",
            "deny:shown",
            "deny:number",
            "deny:denied",
            "noscript:shown",
            "noscript:number",
            "noscript:signed_in",
        ]
    );
}

on_both_backends!(
    approving_on_the_phone_signs_the_computer_in_at_the_phones_level,
    a_one_factor_phone_gives_a_one_factor_session,
    a_denial_on_the_phone_leaves_the_computer_signed_out,
    a_wrong_number_refuses_the_sign_in_for_good,
    the_number_is_typed_and_wrong_numbers_count_as_failed_attempts,
    a_scan_hands_on_the_phones_sign_in_time_and_marks_the_scan,
    a_browser_step_up_never_joins_the_phones_factors,
    a_scan_made_session_adds_no_passkey_without_its_own_factors,
    an_app_asking_for_a_recent_or_new_sign_in_gets_no_scan_of_an_older_one,
    a_code_finishes_only_for_the_sign_in_it_was_shown_for,
    new_codes_are_limited_per_address,
    scan_codes_are_refused_to_other_sites_and_capped_in_total,
    an_expired_code_cannot_be_scanned,
    a_second_scan_is_refused_whoever_makes_it,
    an_approved_code_finishes_only_in_the_browser_that_showed_it,
    only_the_provinces_app_with_a_live_token_may_answer,
    an_approval_ends_with_sign_out_everywhere_or_the_phones_grant,
    a_sign_out_everywhere_racing_continue_signs_nobody_in,
    in_chromium_the_page_follows_the_phone_with_and_without_script,
);
