//! Self-registration, phone first: the answers never tell whether a phone or an ID number has an
//! account (its owner hears of it by SMS), the phone is proven by a code before the account exists and
//! before the password is hashed, and every step is throttled in the database.

use reqwest::StatusCode;
use yunid::Config;
use yunid::http::i18n::ZH;

use crate::common::browser::{Page, field};
use crate::common::sms::SmsInbox;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, resident_id};
use crate::on_both_backends;
use crate::ops::{sample, scrape};

fn registration(inbox: &SmsInbox) -> impl Fn(&mut Config) + use<> {
    let url = inbox.url.clone();
    move |c: &mut Config| {
        c.self_registration = true;
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some("sms-webhook-secret-for-tests".into());
    }
}

async fn provider(backend: Backend, inbox: &SmsInbox) -> Env {
    let env = Env::start_with(backend, registration(inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env
}

fn alert(page: &Page) -> Option<String> {
    let re = regex_lite::Regex::new(r#"<p class="error" role="alert">([^<]*)</p>"#).unwrap();
    re.captures(page.html().2).map(|c| c[1].to_owned())
}

/// Step 1: opens /register and asks for a code for `phone`.
async fn ask_code(browser: &Browser, phone: &str) -> Page {
    let page = browser.get("/register").await;
    let csrf = field(page.html().2, "csrf").unwrap();
    browser
        .post("/register/code", &[("csrf", &csrf), ("phone", phone)])
        .await
}

/// Step 2: the code and the details, on the form of `page`.
async fn complete(browser: &Browser, page: &Page, code: &str, id_number: &str, password: &str) -> Page {
    let body = page.html().2;
    let csrf = field(body, "csrf").unwrap();
    let attempt = field(body, "attempt").unwrap_or_else(|| panic!("no code form: {body}"));
    let phone = field(body, "phone").unwrap();
    browser
        .post(
            "/register",
            &[
                ("csrf", csrf.as_str()),
                ("attempt", &attempt),
                ("phone", &phone),
                ("code", code),
                ("id_number", id_number),
                ("name", "李四"),
                ("password", password),
            ],
        )
        .await
}

/// The latest message to `national` (a mainland number), if any.
fn latest_to(inbox: &SmsInbox, national: &str) -> Option<serde_json::Value> {
    let to = format!("+86{national}");
    inbox
        .delivered()
        .into_iter()
        .rev()
        .map(|c| c.json())
        .find(|m| m["to"] == to.as_str())
}

/// A page without what differs from answer to answer (attempt, CSRF token, script nonce, the number).
fn normalised(page: &Page, phone: &str) -> String {
    let body = page.html().2;
    let mut out = body.replace(phone, "PHONE");
    for name in ["attempt", "csrf"] {
        if let Some(v) = field(body, name) {
            out = out.replace(&v, "VALUE");
        }
    }
    let nonce = regex_lite::Regex::new(r#"nonce="[^"]*""#).unwrap();
    nonce.replace_all(&out, "nonce").into_owned()
}

async fn registration_answers_the_same_whether_or_not_the_phone_or_id_number_is_taken(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let newcomer = "13900139000";

    // Step 1: Alice's phone and a new one get the same page; Alice's phone gets no code but a notice.
    let taken = ask_code(&Browser::new(&env.base), ALICE_PHONE).await;
    let browser = Browser::new(&env.base);
    let fresh = ask_code(&browser, newcomer).await;
    assert_eq!(taken.html().1, StatusCode::OK, "{}", taken.html().2);
    assert_eq!(fresh.html().1, taken.html().1);
    assert_eq!(normalised(&fresh, newcomer), normalised(&taken, ALICE_PHONE));
    let notice = latest_to(&inbox, ALICE_PHONE).expect("Alice is told by SMS");
    assert_eq!(
        notice["code"], "",
        "no code for a phone that has an account: {notice}"
    );
    assert!(notice["text"].as_str().unwrap().contains("已有账号"), "{notice}");
    let code = latest_to(&inbox, newcomer).expect("a code for the new phone")["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 6);

    // Step 2 with Alice's ID number: the same "done" page as a real registration, and Alice is told.
    let sent_before = inbox.delivered().len();
    let with_taken_id = complete(&browser, &fresh, &code, ALICE_ID, "a long enough passphrase 1").await;
    let other = Browser::new(&env.base);
    let other_phone = "13900139001";
    let page = ask_code(&other, other_phone).await;
    let other_code = latest_to(&inbox, other_phone).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_id = resident_id(7);
    let with_new_id = complete(&other, &page, &other_code, &new_id, "a long enough passphrase 2").await;
    assert_eq!(
        with_taken_id.html().1,
        StatusCode::OK,
        "{}",
        with_taken_id.html().2
    );
    assert_eq!(with_new_id.html().1, StatusCode::OK);
    assert_eq!(with_taken_id.html().2, with_new_id.html().2, "the same page");
    assert!(with_new_id.html().2.contains(ZH.registered));
    let told = inbox.delivered()[sent_before..]
        .iter()
        .map(|c| c.json())
        .find(|m| m["to"] == format!("+86{ALICE_PHONE}").as_str())
        .expect("Alice hears that her ID number was tried");
    assert!(told["text"].as_str().unwrap().contains("身份证号码"), "{told}");

    // Alice's account is untouched; the newcomer's phone is not hers.
    let alice = yunid::services::login::find_person(&env.app, ALICE_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.phone.as_deref(), Some("+8613800138000"));
    assert!(
        yunid::services::login::find_person(&env.app, newcomer)
            .await
            .unwrap()
            .is_none()
    );
    let login = Browser::new(&env.base);
    let page = login.login(&login.get("/login").await, ALICE_ID, PASSWORD).await;
    assert!(!page.is_login(), "Alice still signs in with her password");
    // The real newcomer can sign in, with a verified phone.
    let person = yunid::services::login::find_person(&env.app, &new_id)
        .await
        .unwrap()
        .expect("the account was created");
    assert!(person.phone_verified);
    let page = login
        .login(&login.get("/login").await, &new_id, "a long enough passphrase 2")
        .await;
    assert!(!page.is_login(), "{page:?}");
}

async fn the_phone_is_proven_before_the_account_exists_or_the_password_is_hashed(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let browser = Browser::new(&env.base);
    let phone = "13900139000";
    let id = resident_id(8);
    let page = ask_code(&browser, phone).await;
    let code = inbox.last_code();
    let before = scrape(&env.base).await;

    // A wrong code: no account, and no password hash.
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = complete(&browser, &page, &wrong, &id, "a long enough passphrase").await;
    assert_eq!(refused.html().1, StatusCode::UNAUTHORIZED);
    assert_eq!(alert(&refused).as_deref(), Some(ZH.err_code));
    assert!(
        field(refused.html().2, "attempt").is_some(),
        "the code can be typed again"
    );
    let after = scrape(&env.base).await;
    let hashes = "yunid_password_hashes_total";
    assert_eq!(
        sample(&after, hashes),
        sample(&before, hashes),
        "no hash before the code checks out"
    );
    assert!(
        yunid::services::login::find_person(&env.app, &id)
            .await
            .unwrap()
            .is_none()
    );

    // The code belongs to its phone: sent with another number, it opens nothing.
    let csrf = field(page.html().2, "csrf").unwrap();
    let attempt = field(page.html().2, "attempt").unwrap();
    let elsewhere = browser
        .post(
            "/register",
            &[
                ("csrf", csrf.as_str()),
                ("attempt", &attempt),
                ("phone", "13900139999"),
                ("code", &code),
                ("id_number", &id),
                ("name", "李四"),
                ("password", "a long enough passphrase"),
            ],
        )
        .await;
    assert_eq!(elsewhere.html().1, StatusCode::UNAUTHORIZED);
    assert!(
        yunid::services::login::find_person(&env.app, "13900139999")
            .await
            .unwrap()
            .is_none()
    );

    // The attempt belongs to the browser that asked for it: another browser, with the code, gets nowhere.
    let thief = Browser::new(&env.base);
    let their_page = thief.get("/register").await;
    let their_csrf = field(their_page.html().2, "csrf").unwrap();
    let stolen = thief
        .post(
            "/register",
            &[
                ("csrf", their_csrf.as_str()),
                ("attempt", &attempt),
                ("phone", phone),
                ("code", &code),
                ("id_number", &resident_id(11)),
                ("name", "王五"),
                ("password", "a long enough passphrase"),
            ],
        )
        .await;
    assert_eq!(stolen.html().1, StatusCode::UNAUTHORIZED);
    assert_eq!(alert(&stolen).as_deref(), Some(ZH.err_code_expired));
    assert!(
        yunid::services::login::find_person(&env.app, phone)
            .await
            .unwrap()
            .is_none()
    );

    // The right code creates the account, once.
    let done = complete(&browser, &refused, &code, &id, "a long enough passphrase").await;
    assert_eq!(done.html().1, StatusCode::OK, "{}", done.html().2);
    let person = yunid::services::login::find_person(&env.app, phone)
        .await
        .unwrap()
        .expect("created");
    assert!(person.phone_verified);
    let again = complete(
        &browser,
        &page,
        &code,
        &resident_id(9),
        "a long enough passphrase",
    )
    .await;
    assert_eq!(again.html().1, StatusCode::UNAUTHORIZED, "a code works once");
    assert_eq!(alert(&again).as_deref(), Some(ZH.err_code_expired));
    assert!(
        yunid::services::login::find_person(&env.app, &resident_id(9))
            .await
            .unwrap()
            .is_none()
    );
}

async fn registration_is_throttled_per_phone_address_and_id_number_on_every_node(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let b = Server::start(&env.db.url, env.keys.path(), &registration(&inbox)).await;
    let (at_a, at_b) = (Browser::new(&env.base), Browser::new(&b.base));

    // Per phone: a second code within the cooldown is refused, on the other node too, and alike for a
    // phone that has an account.
    for phone in ["13900139000", ALICE_PHONE] {
        assert_eq!(ask_code(&at_a, phone).await.html().1, StatusCode::OK);
        let again = ask_code(&at_b, phone).await;
        assert_eq!(again.html().1, StatusCode::TOO_MANY_REQUESTS, "{phone}");
        assert_eq!(alert(&again).as_deref(), Some(ZH.err_sms_throttled));
    }

    // Per ID number: three registrations of Alice's number (each with a proven phone) get the usual
    // answer and tell her; the fourth is held back, whichever node it reaches, and she hears no more.
    let mut told = 0;
    for (i, browser) in [&at_a, &at_b, &at_a, &at_b].into_iter().enumerate() {
        let phone = format!("1390013910{i}");
        let page = ask_code(browser, &phone).await;
        let code = latest_to(&inbox, &phone).unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let before = inbox.delivered().len();
        let answer = complete(browser, &page, &code, ALICE_ID, "a long enough passphrase").await;
        let notices = inbox.delivered()[before..]
            .iter()
            .filter(|c| c.to() == "+8613800138000")
            .count();
        told += notices;
        if i < 3 {
            assert_eq!(answer.html().1, StatusCode::OK, "{}", answer.html().2);
        } else {
            assert_eq!(answer.html().1, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(alert(&answer).as_deref(), Some(ZH.err_throttled));
            assert_eq!(notices, 0);
        }
    }
    assert_eq!(told, 3);

    // Per address: ten completions (here with a made-up attempt) and the next is held back.
    let page = ask_code(&at_a, "13900139200").await;
    let body = page
        .html()
        .2
        .replace(&field(page.html().2, "attempt").unwrap(), "made-up");
    let forged = Page::Html {
        url: String::new(),
        status: StatusCode::OK,
        body,
    };
    // Four completions above already came from this address.
    for _ in 4..10 {
        let answer = complete(
            &at_a,
            &forged,
            "123456",
            &resident_id(10),
            "a long enough passphrase",
        )
        .await;
        assert_eq!(answer.html().1, StatusCode::UNAUTHORIZED);
    }
    let held = complete(
        &at_a,
        &forged,
        "123456",
        &resident_id(10),
        "a long enough passphrase",
    )
    .await;
    assert_eq!(held.html().1, StatusCode::TOO_MANY_REQUESTS);
}

async fn sign_in_codes_and_registration_codes_do_not_cross(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = provider(backend, &inbox).await;
    let browser = Browser::new(&env.base);

    // Alice's sign-in code, brought to the registration form (same browser): it opens nothing.
    let login = browser.get("/login?method=sms").await;
    let csrf = field(login.html().2, "csrf").unwrap();
    let sent = browser
        .post("/login/sms/send", &[("csrf", &csrf), ("phone", ALICE_PHONE)])
        .await;
    let login_attempt = field(sent.html().2, "attempt").unwrap();
    let login_code = inbox.last_code();
    let id = resident_id(12);
    let crossed = browser
        .post(
            "/register",
            &[
                ("csrf", csrf.as_str()),
                ("attempt", &login_attempt),
                ("phone", ALICE_PHONE),
                ("code", &login_code),
                ("id_number", &id),
                ("name", "李四"),
                ("password", "a long enough passphrase"),
            ],
        )
        .await;
    assert_eq!(crossed.html().1, StatusCode::UNAUTHORIZED);
    assert!(
        yunid::services::login::find_person(&env.app, &id)
            .await
            .unwrap()
            .is_none()
    );

    // A registration code, brought to the sign-in form: nobody is signed in.
    let page = ask_code(&browser, "13900139000").await;
    let attempt = field(page.html().2, "attempt").unwrap();
    let code = inbox.last_code();
    let crossed = browser
        .post(
            "/login/sms/verify",
            &[("csrf", csrf.as_str()), ("attempt", &attempt), ("code", &code)],
        )
        .await;
    assert_eq!(crossed.html().1, StatusCode::UNAUTHORIZED);
    assert!(browser.get("/account").await.is_login(), "not signed in");

    // Each still works where it belongs.
    let done = complete(&browser, &page, &code, &id, "a long enough passphrase").await;
    assert_eq!(done.html().1, StatusCode::OK, "{}", done.html().2);
    let signed = browser
        .post(
            "/login/sms/verify",
            &[
                ("csrf", csrf.as_str()),
                ("attempt", &login_attempt),
                ("code", &login_code),
            ],
        )
        .await;
    assert!(signed.html().0.ends_with("/account"), "{signed:?}");
}

on_both_backends!(
    sign_in_codes_and_registration_codes_do_not_cross,
    registration_answers_the_same_whether_or_not_the_phone_or_id_number_is_taken,
    the_phone_is_proven_before_the_account_exists_or_the_password_is_hashed,
    registration_is_throttled_per_phone_address_and_id_number_on_every_node,
);
