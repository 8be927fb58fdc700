//! Credentials and who may change them: a passkey (which signs in at level 2 on its own) is added only
//! after a recent second factor; a counter password reset takes the passkeys with it unless the clerk
//! keeps them; credential changes are audited and announced to the person by SMS; and a counter clerk
//! cannot take over an administrator's account, through the admin API or the console.

use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::CreationChallengeResponse;
use yunid::store::persons::PersonStatus;

use crate::admin::admin_token;
use crate::common::browser::{Page, field};
use crate::common::sms::SmsInbox;
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, captured_logs, http, resident_id,
};
use crate::on_both_backends;
use crate::passkeys::{self, Localhost, localhost_env, step_up_for_account};

const ALICE_E164: &str = "+8613800138000";

fn body(page: &Page) -> &str {
    page.html().2
}

/// Posts JSON to an account endpoint with the page's form token in the header.
async fn account_json(browser: &Browser, path: &str, csrf: &str, body: &Value) -> (u16, Value) {
    let res = browser
        .http
        .post(format!("{}{path}", browser.origin))
        .header("x-csrf-token", csrf)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Starts a passkey registration from the account page; (status, answer).
async fn start_registration(browser: &Browser) -> (u16, Value) {
    let account = browser.get("/account").await;
    let csrf = field(body(&account), "csrf").expect("the account page has a form token");
    account_json(
        browser,
        "/account/passkeys/start",
        &csrf,
        &json!({ "name": "新钥匙" }),
    )
    .await
}

/// The software authenticator's answer to a registration start.
fn answer(env: &Env, key: &mut SoftPasskey, start: &Value) -> Value {
    let mut options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap_or_else(|e| panic!("{e}: {start}"));
    // The software authenticator refuses to be asked for a resident key (see passkeys.rs).
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.resident_key = None;
        sel.require_resident_key = false;
    }
    let credential = key.do_registration(passkeys::origin(env), options).unwrap();
    json!({ "ceremony": start["ceremony"], "name": "新钥匙", "credential": credential })
}

/// The notices (messages without a code) delivered to `to`, as (template, text).
fn notices(sms: &SmsInbox, to: &str) -> Vec<(String, String)> {
    sms.delivered()
        .iter()
        .map(|c| c.json())
        .filter(|m| m["to"] == to && m["code"] == "")
        .map(|m| {
            (
                m["template"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Audit events with this action about this subject, as JSON.
async fn audit(env: &Env, action: &str, subject: &str) -> Vec<Value> {
    env.app
        .db
        .audit_events(Some(("action", action)), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject == subject)
        .map(|e| serde_json::to_value(&e).unwrap())
        .collect()
}

/// Tries a passkey login in a fresh browser; returns the page it ends on.
async fn passkey_login(env: &Localhost, key: &mut SoftPasskey, credential_id: &str, person: &str) -> Page {
    let browser = Browser::new(env.app.config.iss());
    let login = browser.get("/login?method=passkey").await;
    let (ceremony, credential, csrf, _) = passkeys::passkey_assertion(
        &browser,
        &login,
        key,
        credential_id,
        person,
        passkeys::origin(env),
    )
    .await;
    passkeys::finish(&browser, &ceremony, &credential, &csrf, None).await
}

async fn a_password_alone_cannot_add_a_passkey_the_account_page_asks_for_a_second_factor(backend: Backend) {
    let env = localhost_env(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(env.app.config.iss());
    let login = browser.get("/login").await;
    let account = browser.login(&login, ALICE_ID, PASSWORD).await;

    // One factor: the page offers the step-up instead of the "add" button, and the endpoints refuse.
    let html = body(&account).to_owned();
    assert!(!html.contains("id=\"passkey-add\""), "{html}");
    assert!(html.contains("href=\"/login?step_up=account\""), "{html}");
    assert!(html.contains("添加通行密钥前，需要再验证一次您的身份"), "{html}");
    let (status, refused) = start_registration(&browser).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "step_up_required");
    assert_eq!(refused["step_up"], "/login?step_up=account");
    // A finish needs the same: a ceremony from elsewhere gets nowhere either.
    let csrf = field(&html, "csrf").unwrap();
    let (status, refused) = account_json(
        &browser,
        "/account/passkeys/finish",
        &csrf,
        &json!({ "ceremony": "x", "credential": answer_shape() }),
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("step_up_required"))
    );

    // The step-up page asks for a code to the registered phone (no number to type, no password again).
    let step_up = browser.get("/login?step_up=account").await;
    let page = body(&step_up);
    assert!(
        page.contains("需要进一步验证") && page.contains("更改登录方式前"),
        "{page}"
    );
    assert!(
        !page.contains("name=\"phone\"") && !page.contains("name=\"password\""),
        "{page}"
    );
    let back = step_up_for_account(&browser, &env.sms).await;
    assert!(
        back.html().0.ends_with("/account"),
        "back on the account page: {back:?}"
    );
    assert_eq!(env.sms.delivered().last().unwrap().to(), ALICE_E164);
    assert!(body(&back).contains("id=\"passkey-add\""), "{}", body(&back));

    // Now the registration goes through, is audited, and Alice is told by SMS.
    let (status, start) = start_registration(&browser).await;
    assert_eq!(status, 200, "{start}");
    let mut key = SoftPasskey::new(true);
    let csrf = passkeys::data_csrf(body(&browser.get("/account").await));
    let (status, done) = account_json(
        &browser,
        "/account/passkeys/finish",
        &csrf,
        &answer(&env, &mut key, &start),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(body(&browser.get("/account").await).contains("新钥匙"));
    let added = audit(&env, "passkey.add", &alice).await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["actor"], format!("person:{alice}"));
    let told = notices(&env.sms, ALICE_E164);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "passkey_added");
    assert!(!told[0].1.contains("新钥匙"), "no user-typed text in an SMS");

    // Ten minutes later the two-factor sign-in is too old to add another credential.
    env.app
        .clock
        .advance(env.app.config.credential_step_up_max_age + 1);
    let (status, refused) = start_registration(&browser).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("step_up_required"))
    );
}

/// A registration answer's shape with nothing valid in it (the handler refuses before reading it).
fn answer_shape() -> Value {
    json!({
        "id": "AA", "rawId": "AA", "type": "public-key",
        "response": { "attestationObject": "AA", "clientDataJSON": "AA" },
        "extensions": {}
    })
}

async fn a_counter_password_reset_removes_the_passkeys_unless_the_clerk_keeps_them(backend: Backend) {
    let env = localhost_env(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob_id = resident_id(41);
    let bob_phone = "13900139041";
    let bob = env.person(&bob_id, bob_phone, PASSWORD).await;
    let mut alices_key = SoftPasskey::new(true);
    let alices = passkeys::register_passkey(
        &env,
        &env.sms,
        &Browser::new(env.app.config.iss()),
        &mut alices_key,
        "k",
    )
    .await["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bobs_key = SoftPasskey::new(true);
    let bobs = passkeys::register_passkey_as(
        &env,
        &env.sms,
        &Browser::new(env.app.config.iss()),
        &mut bobs_key,
        "k",
        &bob_id,
    )
    .await["credential_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let clerk = admin_token(&env, "yunid:counter").await;

    // Alice's password is reset at the counter: her passkey goes with it.
    let (status, reset) = api(
        &env,
        &clerk,
        Method::POST,
        &format!("/admin/api/persons/{alice}/reset-password"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["passkeys_removed"], 1);
    let refused = passkey_login(&env, &mut alices_key, &alices, &alice).await;
    assert_eq!(refused.html().1, 401, "the removed passkey no longer signs in");
    let event = &audit(&env, "person.reset_password", &alice).await[0];
    assert_eq!(event["outcome"], "success");
    let detail: Value = serde_json::from_str(event["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            detail["keep_passkeys"].as_bool(),
            detail["passkeys_removed"].as_i64()
        ),
        (Some(false), Some(1))
    );
    let told = notices(&env.sms, ALICE_E164);
    assert_eq!(told.last().unwrap().0, "password_reset", "{told:?}");
    assert!(told.last().unwrap().1.contains("通行密钥已全部移除"), "{told:?}");

    // Bob's clerk ticks "keep passkeys": his passkey still signs him in (at level 2, to his account).
    let (status, reset) = api(
        &env,
        &clerk,
        Method::POST,
        &format!("/admin/api/persons/{bob}/reset-password"),
        Some(json!({ "keep_passkeys": true })),
    )
    .await;
    assert_eq!(
        (status, reset["passkeys_removed"].as_i64()),
        (200, Some(0)),
        "{reset}"
    );
    let kept = passkey_login(&env, &mut bobs_key, &bobs, &bob).await;
    assert!(kept.html().0.ends_with("/account"), "{kept:?}");
    let told = notices(&env.sms, "+8613900139041");
    assert_eq!(told.last().unwrap().0, "password_reset");
    assert!(!told.last().unwrap().1.contains("通行密钥"), "{told:?}");
    // `keep_passkeys` belongs to the reset only.
    let (status, _) = api(
        &env,
        &clerk,
        Method::POST,
        &format!("/admin/api/persons/{bob}/unlock"),
        Some(json!({ "keep_passkeys": true })),
    )
    .await;
    assert_eq!(status, 422);
}

async fn api(env: &Env, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    api_with(env, token, method, path, body, None).await
}

async fn api_with(
    env: &Env,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<i64>,
) -> (u16, Value) {
    let mut req = http().request(method, env.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(v) = if_match {
        req = req.header("if-match", format!("\"{v}\""));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A person holding `role` (password [`PASSWORD`]).
async fn admin_person(env: &Env, seq: u32, role: &str, department: &str) -> String {
    let id = env
        .person(&resident_id(seq), &format!("139001390{seq:02}"), PASSWORD)
        .await;
    env.app
        .db
        .grant_admin_role(&id, role, department, "test", env.app.now())
        .await
        .unwrap();
    id
}

async fn version_of(env: &Env, person: &str) -> i64 {
    env.app.db.person(person).await.unwrap().unwrap().version
}

async fn a_counter_clerk_cannot_take_over_an_administrator_through_the_api(backend: Backend) {
    let sms = SmsInbox::start(0).await;
    let env = Env::start_with(backend, crate::common::console::sms_to(&sms)).await;
    let root = admin_person(&env, 51, "super_admin", "").await;
    let tax_admin = admin_person(&env, 52, "department_admin", "tax").await;
    let citizen = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let reset = |p: &str| format!("/admin/api/persons/{p}/reset-password");
    let person = |p: &str| format!("/admin/api/persons/{p}");

    // The clerk resets a super admin's password, changes an admin's phone: refused, and audited.
    let (status, problem) = api(&env, &clerk, Method::POST, &reset(&root), None).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem.to_string().contains("super admins only"), "{problem}");
    let new_phone = json!({ "phone": "13700137000" });
    for target in [&tax_admin, &root] {
        let v = version_of(&env, target).await;
        let (status, problem) = api_with(
            &env,
            &clerk,
            Method::PATCH,
            &person(target),
            Some(new_phone.clone()),
            Some(v),
        )
        .await;
        assert_eq!(status, 403, "{problem}");
    }
    assert_eq!(
        env.app
            .db
            .person(&tax_admin)
            .await
            .unwrap()
            .unwrap()
            .phone
            .as_deref(),
        Some("+8613900139052"),
        "the phone did not change"
    );
    assert!(
        audit(&env, "person.reset_password", &root)
            .await
            .iter()
            .any(|e| e["outcome"] == "forbidden")
    );
    assert!(sms.delivered().is_empty(), "nothing happened, nobody was told");

    // A super admin locks the citizen: the clerk cannot lift that lock, a super admin can.
    let (status, _) = api(
        &env,
        &super_admin,
        Method::POST,
        &format!("/admin/api/persons/{citizen}/lock"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let unlock = format!("/admin/api/persons/{citizen}/unlock");
    let (status, problem) = api(&env, &clerk, Method::POST, &unlock, None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        env.app.db.person(&citizen).await.unwrap().unwrap().status,
        PersonStatus::Locked
    );
    let (status, unlocked) = api(&env, &super_admin, Method::POST, &unlock, None).await;
    assert_eq!((status, unlocked["status"].as_str()), (200, Some("active")));

    // On a citizen the clerk still does the counter's work; the old phone is told of the change.
    let v = version_of(&env, &citizen).await;
    let (status, changed) = api_with(
        &env,
        &clerk,
        Method::PATCH,
        &person(&citizen),
        Some(new_phone.clone()),
        Some(v),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let told = notices(&sms, ALICE_E164);
    assert_eq!(
        told.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["phone_changed"]
    );
    assert!(
        notices(&sms, "+8613700137000").is_empty(),
        "the old phone is told, not the new one"
    );
    assert_eq!(
        api(&env, &clerk, Method::POST, &reset(&citizen), None).await.0,
        200
    );

    // A super admin may act on an admin; on another super admin, loudly (audit and log).
    let v = version_of(&env, &tax_admin).await;
    let (status, _) = api_with(
        &env,
        &super_admin,
        Method::PATCH,
        &person(&tax_admin),
        Some(json!({ "phone": "13700137001" })),
        Some(v),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = api(&env, &super_admin, Method::POST, &reset(&root), None).await;
    assert_eq!(status, 200, "{answer}");
    let event = audit(&env, "person.reset_password", &root)
        .await
        .into_iter()
        .find(|e| e["outcome"] == "success")
        .unwrap();
    let detail: Value = serde_json::from_str(event["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["alert"], "super_admin_target");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("another super admin") && l.contains(&root)),
        "a warning in the log"
    );
}

/// A console signed in (password + SMS) as a person holding `role`.
async fn console_as(env: &Env, sms: &SmsInbox, seq: u32, role: &str) -> (Browser, String) {
    let id = admin_person(env, seq, role, "").await;
    let browser = Browser::new(&env.base);
    let home = crate::common::console::sign_in(&browser, sms, &resident_id(seq), PASSWORD).await;
    assert_eq!(home.html().1, 200, "{home:?}");
    (browser, id)
}

/// Posts a console form for `person` with the page's form token.
async fn console_post(browser: &Browser, path: &str, extra: &[(&str, &str)]) -> Page {
    let page = browser.get("/admin/persons").await;
    let csrf = field(body(&page), "csrf").unwrap();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    browser.post(path, &form).await
}

async fn a_counter_clerk_cannot_take_over_an_administrator_in_the_console(backend: Backend) {
    let (env, sms) = crate::common::console::provider(backend).await;
    let (clerk, _) = console_as(&env, &sms, 61, "counter_clerk").await;
    let (root, root_id) = console_as(&env, &sms, 62, "super_admin").await;
    let other_root = admin_person(&env, 63, "super_admin", "").await;
    let citizen = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;

    // The console offers the reset (passkeys removed unless kept) and the phone change.
    let page = root.get(&format!("/admin/persons?person={citizen}")).await;
    assert!(body(&page).contains(&format!("action=\"/admin/persons/{citizen}/reset-password\"")));
    assert!(body(&page).contains("name=\"keep_passkeys\""));

    // The clerk: a super admin's password, another admin's phone → 403, nothing changed.
    let refused = console_post(
        &clerk,
        &format!("/admin/persons/{other_root}/reset-password"),
        &[],
    )
    .await;
    assert_eq!(refused.html().1, 403, "{refused:?}");
    assert!(!body(&refused).contains("temporary-password"));
    let v = version_of(&env, &root_id).await.to_string();
    let refused = console_post(
        &clerk,
        &format!("/admin/persons/{root_id}/phone"),
        &[("phone", "13700137002"), ("version", &v)],
    )
    .await;
    assert_eq!(refused.html().1, 403, "{refused:?}");
    assert_eq!(
        env.app
            .db
            .person(&root_id)
            .await
            .unwrap()
            .unwrap()
            .phone
            .as_deref(),
        Some("+8613900139062")
    );

    // The super admin locks the citizen; the clerk cannot unlock, the super admin can.
    let locked = console_post(&root, &format!("/admin/persons/{citizen}/lock"), &[]).await;
    assert!(body(&locked).contains("已完成"), "{locked:?}");
    let refused = console_post(&clerk, &format!("/admin/persons/{citizen}/unlock"), &[]).await;
    assert_eq!(refused.html().1, 403);
    assert_eq!(
        env.app.db.person(&citizen).await.unwrap().unwrap().status,
        PersonStatus::Locked
    );
    let unlocked = console_post(&root, &format!("/admin/persons/{citizen}/unlock"), &[]).await;
    assert!(body(&unlocked).contains("已完成"));
    assert_eq!(
        env.app.db.person(&citizen).await.unwrap().unwrap().status,
        PersonStatus::Active
    );

    // The clerk resets the citizen's password and changes her phone; the old phone hears of both.
    let reset = console_post(&clerk, &format!("/admin/persons/{citizen}/reset-password"), &[]).await;
    let temporary = regex_lite::Regex::new(r#"<code id="temporary-password">([^<]+)</code>"#)
        .unwrap()
        .captures(body(&reset))
        .unwrap_or_else(|| panic!("the temporary password is shown: {reset:?}"))[1]
        .to_owned();
    assert_eq!(temporary.len(), 16);
    let html = body(&reset);
    assert!(
        html.find("id=\"main\"") < html.find("id=\"temporary-password\""),
        "shown in the page's main part: {html}"
    );
    let v = version_of(&env, &citizen).await.to_string();
    let changed = console_post(
        &clerk,
        &format!("/admin/persons/{citizen}/phone"),
        &[("phone", "13700137003"), ("version", &v)],
    )
    .await;
    assert!(body(&changed).contains("已完成"), "{changed:?}");
    let told: Vec<String> = notices(&sms, ALICE_E164).into_iter().map(|t| t.0).collect();
    assert_eq!(told, ["password_reset", "phone_changed"]);

    // The super admin may reset another super admin's password, loudly.
    let reset = console_post(
        &root,
        &format!("/admin/persons/{other_root}/reset-password"),
        &[("keep_passkeys", "1")],
    )
    .await;
    assert!(body(&reset).contains("temporary-password"), "{reset:?}");
    let event = audit(&env, "person.reset_password", &other_root)
        .await
        .into_iter()
        .find(|e| e["outcome"] == "success")
        .unwrap();
    let detail: Value = serde_json::from_str(event["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        (detail["alert"].as_str(), detail["keep_passkeys"].as_bool()),
        (Some("super_admin_target"), Some(true))
    );
}

async fn a_step_up_and_a_registration_count_only_for_the_session_and_person_they_were_made_for(
    backend: Backend,
) {
    let env = localhost_env(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob_id = resident_id(42);
    let bob = env.person(&bob_id, "13900139042", PASSWORD).await;
    let sign_in = |id: String| {
        let browser = Browser::new(env.app.config.iss());
        async move {
            let login = browser.get("/login").await;
            browser.login(&login, &id, PASSWORD).await;
            browser
        }
    };

    // Alice starts a registration after her step-up; Bob, stepped up in his own browser, cannot finish it.
    let alice = sign_in(ALICE_ID.to_owned()).await;
    step_up_for_account(&alice, &env.sms).await;
    let (status, start) = start_registration(&alice).await;
    assert_eq!(status, 200, "{start}");
    let bobs_browser = sign_in(bob_id.clone()).await;
    step_up_for_account(&bobs_browser, &env.sms).await;
    let csrf = field(body(&bobs_browser.get("/account").await), "csrf").unwrap();
    let (status, refused) = account_json(
        &bobs_browser,
        "/account/passkeys/finish",
        &csrf,
        &answer(&env, &mut SoftPasskey::new(true), &start),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(env.app.db.passkey_count(&bob).await.unwrap(), 0);

    // A step-up code sent for one of Alice's sessions, typed into another of hers, does not make that
    // one able to add a passkey.
    let first = sign_in(ALICE_ID.to_owned()).await;
    let step_up = first.get("/login?step_up=account").await;
    let csrf = field(body(&step_up), "csrf").unwrap();
    let sent = first.post("/login/sms/send", &[("csrf", &csrf)]).await;
    let attempt = field(body(&sent), "attempt").unwrap();
    let second = sign_in(ALICE_ID.to_owned()).await;
    let page = second.get("/login?step_up=account").await;
    let csrf = field(body(&page), "csrf").unwrap();
    second
        .post(
            "/login/sms/verify",
            &[
                ("csrf", &csrf),
                ("attempt", &attempt),
                ("code", &env.sms.last_code()),
            ],
        )
        .await;
    let (status, refused) = start_registration(&second).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("step_up_required"))
    );
    let (status, _) = start_registration(&first).await;
    assert_eq!(
        status, 403,
        "and the session it was sent for was not raised either"
    );
}

on_both_backends!(
    a_password_alone_cannot_add_a_passkey_the_account_page_asks_for_a_second_factor,
    a_counter_password_reset_removes_the_passkeys_unless_the_clerk_keeps_them,
    a_counter_clerk_cannot_take_over_an_administrator_through_the_api,
    a_counter_clerk_cannot_take_over_an_administrator_in_the_console,
    a_step_up_and_a_registration_count_only_for_the_session_and_person_they_were_made_for,
);
