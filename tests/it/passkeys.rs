//! Passkeys with a software authenticator: registration from the account page, passwordless login that
//! reaches acr 2, and the ceremony's checks (origin, single use, replay); plus the account page's
//! sessions and connected apps.

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse};

use crate::common::browser::{Page, field};
use crate::common::console::sms_to;
use crate::common::rp::Rp;
use crate::common::sms::SmsInbox;
use crate::common::wire::{jwt_parts, userinfo};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, http};
use crate::on_both_backends;

/// A provider on `http://localhost:<port>` (a WebAuthn relying party must be a domain) whose SMS
/// (codes and notices) arrive in `sms`.
pub(crate) struct Localhost {
    pub env: Env,
    pub sms: SmsInbox,
}

impl std::ops::Deref for Localhost {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

pub(crate) async fn localhost_env(backend: Backend) -> Localhost {
    let sms = SmsInbox::start(0).await;
    let to_inbox = sms_to(&sms);
    let env = Env::start_with(backend, move |c| {
        to_inbox(c);
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
    })
    .await;
    Localhost { env, sms }
}

/// On the account page's step-up (a signed-in browser): asks for an SMS code to the registered phone,
/// types it in, and returns where the browser lands (the account page).
pub(crate) async fn step_up_for_account(browser: &Browser, sms: &SmsInbox) -> Page {
    let page = browser.get("/login?step_up=account").await;
    let (_, _, body) = page.html();
    assert!(
        crate::common::console::is_step_up(&page),
        "the step-up page asks for a code to the registered phone: {body}"
    );
    let csrf = field(body, "csrf").unwrap();
    let sent = browser.post("/login/sms/send", &[("csrf", &csrf)]).await;
    let (_, _, body) = sent.html();
    let attempt = field(body, "attempt").unwrap_or_else(|| panic!("a code form: {body}"));
    let csrf = field(body, "csrf").unwrap();
    browser
        .post(
            "/login/sms/verify",
            &[("csrf", &csrf), ("attempt", &attempt), ("code", &sms.last_code())],
        )
        .await
}

pub(crate) fn origin(env: &Env) -> url::Url {
    url::Url::parse(env.app.config.iss()).unwrap()
}

pub(crate) fn data_csrf(body: &str) -> String {
    let re = regex_lite::Regex::new(r#"data-csrf="([^"]*)""#).unwrap();
    re.captures(body)
        .map(|c| c[1].to_owned())
        .expect("the account page has a CSRF token")
}

/// Alice signs in with the password, steps up with an SMS code, then registers a passkey named `name`
/// from the account page.
pub(crate) async fn register_passkey(
    env: &Env,
    sms: &SmsInbox,
    browser: &Browser,
    key: &mut SoftPasskey,
    name: &str,
) -> Value {
    register_passkey_as(env, sms, browser, key, name, ALICE_ID).await
}

/// The same for the person with ID number `id_number` (password [`PASSWORD`]).
pub(crate) async fn register_passkey_as(
    env: &Env,
    sms: &SmsInbox,
    browser: &Browser,
    key: &mut SoftPasskey,
    name: &str,
    id_number: &str,
) -> Value {
    let login = browser.get("/login").await;
    browser.login(&login, id_number, PASSWORD).await;
    let after = step_up_for_account(browser, sms).await;
    let (_, status, body) = after.html();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"passkey-add\""), "{body}");
    let csrf = data_csrf(body);
    let start: Value = browser
        .http
        .post(format!("{}/account/passkeys/start", browser.origin))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let options: CreationChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    assert_eq!(
        options
            .public_key
            .authenticator_selection
            .as_ref()
            .and_then(|s| s.resident_key),
        Some(webauthn_rs_proto::ResidentKeyRequirement::Required),
        "discoverable credentials are asked for"
    );
    // The software authenticator refuses to be asked for a resident key (it keeps every key anyway);
    // a real platform authenticator honours the request.
    let mut options = options;
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.resident_key = None;
        sel.require_resident_key = false;
    }
    let credential = key
        .do_registration(origin(env), options)
        .expect("the authenticator registers");
    let res = browser
        .http
        .post(format!("{}/account/passkeys/finish", browser.origin))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "ceremony": start["ceremony"], "name": name, "credential": credential }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json!({ "credential_id": credential.id })
}

/// Asks the login page for passkey options, lets the authenticator answer for `at`, and returns
/// (ceremony, credential JSON, csrf, req).
pub(crate) async fn passkey_assertion(
    browser: &Browser,
    page: &Page,
    key: &mut SoftPasskey,
    credential_id: &str,
    person_id: &str,
    at: url::Url,
) -> (String, PublicKeyCredential, String, Option<String>) {
    let (_, _, body) = page.html();
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req");
    let start: Value = browser
        .http
        .post(format!("{}/login/passkey/start", browser.origin))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut options: RequestChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    assert!(
        options.public_key.allow_credentials.is_empty(),
        "passwordless: no user is named"
    );
    // The software authenticator cannot look up resident keys by itself: point it at ours, and give the
    // user handle a discoverable credential returns (it is not part of the signed data).
    options.public_key.allow_credentials = vec![webauthn_rs_proto::AllowCredentials {
        type_: "public-key".into(),
        id: yunid::crypto::b64url_decode(credential_id).unwrap(),
        transports: None,
    }];
    let mut credential = key
        .do_authentication(at, options)
        .expect("the authenticator signs");
    credential.response.user_handle = Some(uuid::Uuid::parse_str(person_id).unwrap().as_bytes().to_vec());
    (
        start["ceremony"].as_str().unwrap().to_owned(),
        credential,
        csrf,
        req,
    )
}

pub(crate) async fn finish(
    browser: &Browser,
    ceremony: &str,
    credential: &PublicKeyCredential,
    csrf: &str,
    req: Option<&str>,
) -> Page {
    let credential = serde_json::to_string(credential).unwrap();
    let mut form = vec![
        ("csrf", csrf),
        ("ceremony", ceremony),
        ("credential", credential.as_str()),
    ];
    if let Some(r) = req {
        form.push(("req", r));
    }
    browser.post("/login/passkey/finish", &form).await
}

/// Alice with a passkey she registered from her account page, and an app of the provider.
struct PasskeyApp {
    alice: String,
    key: SoftPasskey,
    credential_id: String,
    rp: Rp,
}

async fn passkey_app(env: &Localhost) -> PasskeyApp {
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    let registered = register_passkey(
        env,
        &env.sms,
        &Browser::new(env.app.config.iss()),
        &mut key,
        "我的手机",
    )
    .await;
    let credential_id = registered["credential_id"].as_str().unwrap().to_owned();
    let client = env.client("http://localhost:9/cb").await;
    let rp = Rp::discover(env.app.config.iss(), &client).await;
    PasskeyApp {
        alice,
        key,
        credential_id,
        rp,
    }
}

async fn a_passkey_signs_a_citizen_in_without_a_password(backend: Backend) {
    let env = localhost_env(backend).await;
    let PasskeyApp {
        alice,
        mut key,
        credential_id,
        rp,
    } = passkey_app(&env).await;
    let attempt = rp.start(&["profile"]);
    let browser = Browser::new(env.app.config.iss());
    let first = browser.get(attempt.url.as_str()).await;
    // The password page already carries the passkey form (for autofill); the passkey tab has the button.
    assert!(first.html().2.contains("autocomplete=\"username webauthn\""));
    let tab = regex_lite::Regex::new(r#"href="(/login\?req=[^"]*method=passkey)""#)
        .unwrap()
        .captures(first.html().2)
        .unwrap()[1]
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let login = browser.get(&tab).await;
    assert!(
        login.html().2.contains("id=\"passkey-button\""),
        "{tab}: {}",
        login.html().2
    );
    let (ceremony, credential, csrf, req) =
        passkey_assertion(&browser, &login, &mut key, &credential_id, &alice, origin(&env)).await;
    let mut page = finish(&browser, &ceremony, &credential, &csrf, req.as_deref()).await;
    if page.is_consent() {
        page = browser.consent(&page, true).await;
    }
    let tokens = rp
        .exchange(&page.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let id_token = openidconnect::TokenResponse::id_token(&tokens)
        .unwrap()
        .to_string();
    let claims = jwt_parts(&id_token).1;
    assert_eq!(claims["acr"], "2", "a user-verified passkey is two factors");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(amr.contains(&"hwk") && amr.contains(&"user"), "{amr:?}");

    // The same signed answer again, with a fresh ceremony, fails (the challenge is not that one's).
    let again = browser.get("/login?method=passkey").await;
    let (fresh, _, csrf2, _) =
        passkey_assertion(&browser, &again, &mut key, &credential_id, &alice, origin(&env)).await;
    let replay = finish(&browser, &fresh, &credential, &csrf2, None).await;
    assert_eq!(replay.html().1, 401);
    // And the used ceremony cannot be used twice.
    let reused = finish(&browser, &ceremony, &credential, &csrf, None).await;
    assert_eq!(reused.html().1, 401);
}

async fn a_passkey_answer_for_another_origin_is_refused(backend: Backend) {
    let env = localhost_env(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    let registered = register_passkey(
        &env,
        &env.sms,
        &Browser::new(env.app.config.iss()),
        &mut key,
        "key",
    )
    .await;
    let credential_id = registered["credential_id"].as_str().unwrap().to_owned();
    let browser = Browser::new(env.app.config.iss());
    let login = browser.get("/login?method=passkey").await;
    let evil = url::Url::parse(&format!("http://localhost:{}", env.addr.port() + 1)).unwrap();
    let (ceremony, credential, csrf, _) =
        passkey_assertion(&browser, &login, &mut key, &credential_id, &alice, evil).await;
    let page = finish(&browser, &ceremony, &credential, &csrf, None).await;
    let (_, status, body) = page.html();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("通行密钥验证未通过"), "{body}");
}

/// Review M1, checked by the statement that writes the session (nothing read before it): a passkey
/// answer posted for a request whose app has its code already signs nobody in for it. The page says the
/// request was answered, and no session is made or raised with the passkey.
async fn a_passkey_for_an_answered_request_signs_nobody_in(backend: Backend) {
    let env = localhost_env(backend).await;
    let PasskeyApp {
        alice,
        mut key,
        credential_id,
        rp,
    } = passkey_app(&env).await;
    let browser = Browser::new(env.app.config.iss());
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let mut page = browser.login(&login, ALICE_ID, PASSWORD).await;
    if page.is_consent() {
        page = browser.consent(&page, true).await;
    }
    assert!(page.params().contains_key("code"), "{page:?}");
    let before = env.app.db.sessions_of(&alice, env.app.now()).await.unwrap();

    // The answered request's login page, answered again with the passkey.
    let (ceremony, credential, csrf, req) =
        passkey_assertion(&browser, &login, &mut key, &credential_id, &alice, origin(&env)).await;
    assert!(req.is_some(), "the login page carries its request");
    let refused = finish(&browser, &ceremony, &credential, &csrf, req.as_deref()).await;
    let (_, status, body) = refused.html();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("此登录请求已经处理过了"), "{body}");
    let after = env.app.db.sessions_of(&alice, env.app.now()).await.unwrap();
    assert_eq!(after.len(), before.len(), "no session made: {after:?}");
    assert!(
        after.iter().all(|s| !s.amr.contains(yunid::amr::Method::Hwk)),
        "no session raised with the passkey: {after:?}"
    );
}

async fn a_removed_passkey_no_longer_signs_in(backend: Backend) {
    let env = localhost_env(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    let owner = Browser::new(env.app.config.iss());
    let registered = register_passkey(&env, &env.sms, &owner, &mut key, "旧钥匙").await;
    let credential_id = registered["credential_id"].as_str().unwrap().to_owned();
    let account = owner.get("/account").await;
    let body = account.html().2.to_owned();
    assert!(body.contains("旧钥匙"), "the passkey is listed");
    let action = regex_lite::Regex::new(r#"action="(/account/passkeys/[^"]*/delete)""#)
        .unwrap()
        .captures(&body)
        .unwrap()[1]
        .to_owned();
    let csrf = field(&body, "csrf").unwrap();
    let after = owner.post(&action, &[("csrf", &csrf)]).await;
    assert!(
        !after.html().2.contains("旧钥匙"),
        "the passkey is gone from the list"
    );

    let browser = Browser::new(env.app.config.iss());
    let login = browser.get("/login?method=passkey").await;
    let (ceremony, credential, csrf, _) =
        passkey_assertion(&browser, &login, &mut key, &credential_id, &alice, origin(&env)).await;
    assert_eq!(
        finish(&browser, &ceremony, &credential, &csrf, None)
            .await
            .html()
            .1,
        401
    );
}

async fn passkey_registration_needs_a_session_and_the_csrf_token(backend: Backend) {
    let env = localhost_env(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(env.app.config.iss());
    let login = browser.get("/login").await;
    browser.login(&login, ALICE_ID, PASSWORD).await;
    let res = browser
        .http
        .post(format!("{}/account/passkeys/start", browser.origin))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no CSRF header");
    let stranger = http()
        .post(format!("{}/account/passkeys/start", env.app.config.iss()))
        .header("x-csrf-token", "whatever")
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
}

async fn the_account_page_ends_sessions_and_revokes_apps(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client("http://127.0.0.1:9/cb").await;
    let rp = Rp::discover(&env.base, &client).await;
    let phone_browser = Browser::new(&env.base);
    let signed = crate::common::wire::sign_in(&rp, &phone_browser, &["offline_access"]).await;
    let laptop = Browser::new(&env.base);
    let login = laptop.get("/login").await;
    let account = laptop.login(&login, ALICE_ID, PASSWORD).await;
    let body = account.html().2.to_owned();
    assert!(body.contains("测试应用"), "the connected app is listed: {body}");
    assert!(body.contains("110*************2X"), "the ID number is masked");
    assert!(!body.contains(ALICE_ID));
    assert_eq!(body.matches("/end\"").count(), 2, "two signed-in sessions");

    // Revoking the app kills its refresh token and access token, and forgets the consent.
    let csrf = field(&body, "csrf").unwrap();
    let revoke = format!("/account/apps/{}/revoke", client.id);
    let after = laptop.post(&revoke, &[("csrf", &csrf)]).await;
    assert!(!after.html().2.contains("测试应用"));
    assert_eq!(userinfo(&env.base, &signed.access_token()).await.0, 401);
    assert!(
        crate::common::wire::refresh(&rp, &signed.refresh_token(), &[])
            .await
            .is_err()
    );

    // Ending the other session signs the phone out; logging out everywhere signs the laptop out too.
    let body = after.html().2.to_owned();
    let rows = regex_lite::Regex::new(r#"<tr><td>([^<]*)</td><td>[^<]*</td>\s*<td><form method="post" action="(/account/sessions/[^"]*/end)""#)
        .unwrap();
    let other = rows
        .captures_iter(&body)
        .find(|c| !c[1].contains("当前"))
        .map(|c| c[2].to_owned())
        .expect("the other session has an end button");
    let _ = laptop.post(&other, &[("csrf", &csrf)]).await;
    let attempt = rp.start(&[]);
    let prompt_none = format!("{}&prompt=none", attempt.url);
    assert_eq!(
        phone_browser.get(&prompt_none).await.params()["error"],
        "login_required"
    );
    let out = laptop.post("/account/logout-all", &[("csrf", &csrf)]).await;
    assert!(out.html().2.contains("您已退出登录"));
    assert!(laptop.get("/account").await.is_login());
}

on_both_backends!(
    a_passkey_signs_a_citizen_in_without_a_password,
    a_passkey_answer_for_another_origin_is_refused,
    a_removed_passkey_no_longer_signs_in,
    a_passkey_for_an_answered_request_signs_nobody_in,
    passkey_registration_needs_a_session_and_the_csrf_token,
    the_account_page_ends_sessions_and_revokes_apps,
);
