//! Real-name proofing online and legal persons by themselves (issue 18), against the authorities' test
//! double (`common::authorities`): a citizen raises her level from 1 to 3 and an app sees the evidence;
//! a mismatch, a slow, a down and a malformed connector; throttling; the face session bound to its
//! browser and person, once; a closed population record locking the account; a legal representative
//! binding her company and appointing an agent who acts for it until the registry says it is cancelled.
//! No ID number in any log, audit detail or connector error.

use openidconnect::OAuth2TokenResponse;
use serde_json::Value;
use yunid::services::registry::NewClient;

use crate::common::authorities::{Answer, Authorities};
use crate::common::browser::{Page, field};
use crate::common::rp::{Rp, http_client};
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, captured_logs, resident_id,
};
use crate::identity::userinfo;
use crate::on_both_backends;

const COMPANY: &str = "91350100M000100Y43";
const CLAIMS: &str = r#"{"userinfo":{"verified_claims":{"verification":{"trust_framework":null,"evidence":null},"claims":{"name":null}}}}"#;

async fn start(backend: Backend, authorities: &Authorities) -> Env {
    Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
    })
    .await
}

/// A browser signed in at yunid itself (no app) as `username`.
async fn signed_in(env: &Env, username: &str) -> Browser {
    let browser = Browser::new(&env.base);
    let login = browser.get("/login").await;
    let page = browser.login(&login, username, PASSWORD).await;
    let (url, _, body) = page.html();
    assert!(url.ends_with("/account"), "signed in: {url} {body}");
    browser
}

/// Submits the form posting to `action` on the page at `path`.
async fn submit(browser: &Browser, path: &str, action: &str, extra: &[(&str, &str)]) -> Page {
    let page = browser.get(path).await;
    let (_, _, body) = page.html();
    assert!(
        body.contains(&format!("action=\"{action}\"")),
        "no form to {action}: {body}"
    );
    let csrf = field(body, "csrf").unwrap();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    browser.post(action, &form).await
}

fn level_shown(page: &Page) -> String {
    let (_, _, body) = page.html();
    let re = regex_lite::Regex::new(r#"<strong id="level">(\d)</strong>"#).unwrap();
    re.captures(body).map(|c| c[1].to_owned()).unwrap_or_default()
}

fn message_shown(page: &Page) -> String {
    let (_, _, body) = page.html();
    let re = regex_lite::Regex::new(r#"id="proofing-message">([^<]*)<"#).unwrap();
    re.captures(body).map(|c| c[1].to_owned()).unwrap_or_default()
}

/// Starts face verification and follows the provider's page back to yunid (in `browser`); the page
/// it ends on, and the provider page's URL.
async fn face(browser: &Browser) -> (Page, String) {
    let go = submit(browser, "/account/verify", "/account/verify/face/start", &[]).await;
    let (_, _, body) = go.html();
    let re = regex_lite::Regex::new(r#"id="face-continue" href="([^"]*)""#).unwrap();
    let target = re.captures(body).expect("a link to the provider")[1].replace("&amp;", "&");
    (browser.get(&target).await, target)
}

async fn identity_client(env: &Env) -> TestClient {
    env.client_with(NewClient {
        name: "公积金".into(),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        scopes: ["openid", "identity", "offline_access"]
            .map(String::from)
            .to_vec(),
        ..NewClient::default()
    })
    .await
}

/// Alice signs in to the identity app in `browser` (already signed in at yunid), consents, and the app
/// reads userinfo with the `verified_claims` claims request.
async fn app_sees(
    env: &Env,
    browser: &Browser,
    client: &TestClient,
) -> (Value, openidconnect::core::CoreTokenResponse) {
    let rp = Rp::discover(&env.base, client).await;
    let attempt = rp.start(&["identity", "offline_access"]);
    let url = url::Url::parse_with_params(attempt.url.as_str(), [("claims", CLAIMS), ("prompt", "consent")])
        .unwrap();
    let mut page = browser.get(url.as_str()).await;
    if page.is_login() {
        page = browser.login(&page, ALICE_ID, PASSWORD).await;
    }
    if page.is_consent() {
        page = browser.consent(&page, true).await;
    }
    let tokens = rp
        .exchange(&page.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let (status, info) = userinfo(env, tokens.access_token().secret()).await;
    assert_eq!(status, 200, "{info}");
    (info, tokens)
}

async fn citizen_raises_her_level_from_one_to_three_and_an_app_sees_the_evidence(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;

    let page = browser.get("/account/verify").await;
    assert_eq!(level_shown(&page), "1");
    assert!(page.html().2.contains("lang=\"zh-CN\""), "Chinese by default");
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "2", "{}", page.html().2);
    assert!(message_shown(&page).contains("二级"), "{}", message_shown(&page));
    // What the authorities were asked: the person's own data, with the bearer token.
    let asked = authorities.calls("population");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["id_number"], ALICE_ID);
    assert_eq!(
        authorities.calls("carrier")[0]["phone"],
        format!("+86{ALICE_PHONE}")
    );

    let client = identity_client(&env).await;
    let (info, _) = app_sees(&env, &browser, &client).await;
    let verification = &info["verified_claims"]["verification"];
    assert_eq!(verification["assurance_level"], "2", "{info}");
    let evidence = verification["evidence"].as_array().unwrap();
    let records: Vec<&Value> = evidence
        .iter()
        .filter(|e| e["type"] == "electronic_record")
        .collect();
    assert_eq!(records.len(), 2, "population and carrier: {info}");
    assert_eq!(records[0]["record"]["type"], "population_register");
    assert!(
        records[0]["check_details"][0]["txn"]
            .as_str()
            .unwrap()
            .starts_with("pop-")
    );
    assert_eq!(records[1]["record"]["type"], "mobile_subscription");

    let (back, provider_page) = face(&browser).await;
    assert!(
        provider_page.starts_with(&authorities.base),
        "sent to the provider: {provider_page}"
    );
    assert_eq!(level_shown(&back), "3", "{}", back.html().2);
    assert!(message_shown(&back).contains("三级"));

    let (info, _) = app_sees(&env, &browser, &client).await;
    let verification = &info["verified_claims"]["verification"];
    assert_eq!(verification["assurance_level"], "3", "{info}");
    let face = verification["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == "bvr")
        .expect("face evidence");
    assert!(face["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{face}");
    assert!(
        face["check_details"][0]["txn"]
            .as_str()
            .unwrap()
            .starts_with("face-")
    );
    assert_eq!(info["real_name_level"], 3);
    // The evidence names checks and transactions, never the number.
    let evidence_text = verification["evidence"].as_array().unwrap()[1..]
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    assert!(!evidence_text.contains(ALICE_ID), "{evidence_text}");

    // English on request.
    let _ = browser.get("/lang/en").await;
    let page = browser.get("/account/verify").await;
    assert!(
        page.html().2.contains("Real-name verification"),
        "{}",
        page.html().2
    );
}

async fn a_mismatch_says_which_check_failed_and_sends_to_the_counter(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;

    authorities.answer("population", Answer::NoMatch);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "1");
    let msg = message_shown(&page);
    assert!(msg.contains("人口基础信息库") && msg.contains("窗口"), "{msg}");
    assert!(
        authorities.calls("carrier").is_empty(),
        "the carrier is not asked after a failed population check"
    );

    authorities.answer("population", Answer::Match);
    authorities.answer("carrier", Answer::NoMatch);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "1");
    let msg = message_shown(&page);
    assert!(msg.contains("运营商") && msg.contains("窗口"), "{msg}");

    // Level 3 is not offered before level 2, and the face endpoint refuses it.
    assert!(!page.html().2.contains("/account/verify/face/start"));
    let csrf = field(page.html().2, "csrf").unwrap();
    let page = browser
        .post("/account/verify/face/start", &[("csrf", &csrf)])
        .await;
    assert!(
        message_shown(&page).contains("上一级"),
        "{}",
        message_shown(&page)
    );
    assert!(authorities.calls("face").is_empty());
}

async fn a_slow_down_or_malformed_connector_says_try_later_and_never_blocks_a_login(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for answer in [Answer::Slow, Answer::Down, Answer::Malformed] {
        authorities.answer("population", answer);
        let started = std::time::Instant::now();
        let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{answer:?} waited"
        );
        assert_eq!(level_shown(&page), "1");
        assert!(
            message_shown(&page).contains("稍后再试"),
            "{answer:?}: {}",
            message_shown(&page)
        );
    }
    // Signing in to an app meanwhile works as ever.
    let client = env.client("http://127.0.0.1:9/cb").await;
    let rp = Rp::discover(&env.base, &client).await;
    let attempt = rp.start(&[]);
    let page = Browser::new(&env.base)
        .sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD)
        .await;
    assert!(
        rp.exchange(&page.params()["code"], attempt.verifier)
            .await
            .is_ok()
    );
    // The operator sees each failure per connector.
    let metrics = crate::common::http()
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["timeout", "down", "malformed"] {
        let line = format!("yunid_proofing_calls_total{{connector=\"population\",outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(metrics.contains("yunid_proofing_call_duration_seconds_count{connector=\"population\"} 3"));
}

async fn attempts_are_throttled_per_person_and_per_address(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 2;
        c.proofing_attempts_per_address = 3;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob_id = resident_id(7);
    env.person(&bob_id, "13900139000", PASSWORD).await;
    authorities.answer("population", Answer::NoMatch);
    let alice = signed_in(&env, ALICE_ID).await;
    for _ in 0..2 {
        let page = submit(&alice, "/account/verify", "/account/verify/online", &[]).await;
        assert!(message_shown(&page).contains("人口基础信息库"));
    }
    let page = submit(&alice, "/account/verify", "/account/verify/online", &[]).await;
    assert!(
        message_shown(&page).contains("次数过多"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(
        authorities.calls("population").len(),
        2,
        "a held-back attempt asks no authority"
    );
    // Another person from the same address: one more, then the address is held back too.
    let bob = signed_in(&env, &bob_id).await;
    let page = submit(&bob, "/account/verify", "/account/verify/online", &[]).await;
    assert!(message_shown(&page).contains("人口基础信息库"));
    let page = submit(&bob, "/account/verify", "/account/verify/online", &[]).await;
    assert!(
        message_shown(&page).contains("次数过多"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(authorities.calls("population").len(), 3);
}

async fn a_face_session_answers_only_its_browser_and_person_once(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice_id = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob_id = resident_id(8);
    let bob = env.person(&bob_id, "13900139001", PASSWORD).await;
    for p in [&alice_id, &bob] {
        env.app
            .db
            .set_real_name(p, 2, "online", "test", env.app.now())
            .await
            .unwrap();
    }
    let alice = signed_in(&env, ALICE_ID).await;
    let go = submit(&alice, "/account/verify", "/account/verify/face/start", &[]).await;
    let re = regex_lite::Regex::new(r#"id="face-continue" href="([^"]*)""#).unwrap();
    let provider_page = re.captures(go.html().2).unwrap()[1].replace("&amp;", "&");
    // Where the provider sends the browser back: yunid's return URL with the state.
    let back_to = {
        let res = crate::common::http().get(&provider_page).send().await.unwrap();
        res.headers()["location"].to_str().unwrap().to_owned()
    };
    assert!(
        back_to.starts_with(&env.url("/account/verify/face/return?state=")),
        "{back_to}"
    );

    // Another person's browser, and a browser with no session, get nothing from it.
    let other = signed_in(&env, &bob_id).await;
    let page = other.get(&back_to).await;
    assert!(message_shown(&page).contains("失效"), "{}", message_shown(&page));
    assert_eq!(level_shown(&page), "2");
    let nobody = Browser::new(&env.base);
    assert!(nobody.get(&back_to).await.is_login());
    // Bob's refused use did not spend it: Alice's own browser completes it, once.
    let page = alice.get(&back_to).await;
    assert_eq!(level_shown(&page), "3", "{}", message_shown(&page));
    assert_eq!(authorities.calls("face_result").len(), 1);
    let page = alice.get(&back_to).await;
    assert!(
        message_shown(&page).contains("失效"),
        "replayed: {}",
        message_shown(&page)
    );
    assert_eq!(
        authorities.calls("face_result").len(),
        1,
        "a replay asks the provider nothing"
    );

    // A session left too long expires; a failed verification changes nothing.
    let bob_browser = signed_in(&env, &bob_id).await;
    let go = submit(&bob_browser, "/account/verify", "/account/verify/face/start", &[]).await;
    let provider_page = re.captures(go.html().2).unwrap()[1].replace("&amp;", "&");
    env.app.clock.advance(601);
    let page = bob_browser.get(&provider_page).await;
    assert!(
        message_shown(&page).contains("失效"),
        "expired: {}",
        message_shown(&page)
    );
    authorities.answer("face", Answer::NoMatch);
    let bob_browser = signed_in(&env, &bob_id).await;
    let (page, _) = face(&bob_browser).await;
    assert_eq!(level_shown(&page), "2");
    assert!(
        message_shown(&page).contains("人脸核验未通过"),
        "{}",
        message_shown(&page)
    );
}

async fn a_closed_population_record_locks_the_account_and_ends_its_sessions(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "2");
    let client = identity_client(&env).await;
    let (_, tokens) = app_sees(&env, &browser, &client).await;
    let refresh = tokens.refresh_token().unwrap().clone();

    // Within the TTL nobody asks again; past it, the record is found closed.
    authorities.answer("population", Answer::Deceased);
    let page = browser.get("/account/verify").await;
    assert_eq!(level_shown(&page), "2");
    assert_eq!(authorities.calls("population").len(), 1);
    env.app.clock.advance(601);
    let page = browser.get("/account/verify").await;
    let (_, status, body) = page.html();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("锁定"), "{body}");
    // Signed out here, the app's grant is gone, and the password no longer signs in.
    assert!(browser.get("/account").await.is_login());
    let rp = Rp::discover(&env.base, &client).await;
    let err = rp
        .client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("refresh after the lock");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
    let again = Browser::new(&env.base);
    let login = again.get("/login").await;
    assert!(again.login(&login, ALICE_ID, PASSWORD).await.is_login());
    let events = env.app.db.all_audit_events().await.unwrap();
    let lock = events
        .iter()
        .find(|e| e.action == "person.lock")
        .expect("audited");
    assert!(lock.detail.contains("deceased"), "{}", lock.detail);
}

async fn no_id_number_in_any_log_audit_detail_or_connector_error(backend: Backend) {
    let authorities = Authorities::start().await;
    // Attempts are not what this test is about.
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
    })
    .await;
    let lr_id = resident_id(21);
    env.person(&lr_id, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, &lr_id).await;
    for answer in [Answer::Malformed, Answer::Down, Answer::Slow, Answer::NoMatch] {
        authorities.answer("population", answer);
        submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    }
    authorities.answer("population", Answer::Match);
    authorities.answer("carrier", Answer::Malformed);
    submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    authorities.answer("carrier", Answer::Match);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "2");
    authorities.answer("face_open", Answer::Malformed);
    submit(&browser, "/account/verify", "/account/verify/face/start", &[]).await;
    authorities.answer("registry", Answer::Malformed);
    submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    // The authorities did get the number (so the checks below can fail) ...
    assert!(
        authorities
            .calls("population")
            .iter()
            .any(|b| b["id_number"] == lr_id.as_str())
    );
    // ... and it is nowhere else: not in a log line, an audit detail, or a recorded check.
    let logs = captured_logs();
    assert!(
        logs.contains("proofing connector gave no usable answer"),
        "failures are logged"
    );
    assert!(!logs.contains(&lr_id), "an ID number in the logs");
    for e in env.app.db.all_audit_events().await.unwrap() {
        assert!(
            !format!("{e:?}").contains(&lr_id),
            "an ID number in the audit trail: {e:?}"
        );
    }
    for c in env.app.db.proofing_checks(None, None, None, 100).await.unwrap() {
        assert!(!format!("{c:?}").contains(&lr_id), "{c:?}");
    }
}

/// Signs `username` in to the org app in `browser` and acts for `code` on the act-as page.
async fn act_for(
    rp: &Rp,
    browser: &Browser,
    username: &str,
    code: &str,
) -> openidconnect::core::CoreTokenResponse {
    let attempt = rp.start(&["org", "offline_access"]);
    let mut page = browser.sign_in(attempt.url.as_str(), username, PASSWORD).await;
    if let Page::Html { body, .. } = &page {
        assert!(body.contains("action=\"/act-as\""), "unexpected page: {body}");
        let re = regex_lite::Regex::new(&format!(r#"value="([^"]*)">\s*<label[^>]*>[^<]*{code}"#)).unwrap();
        let choice = re
            .captures(body)
            .map(|c| c[1].to_owned())
            .expect("the organisation is offered");
        let csrf = field(body, "csrf").unwrap();
        let req = field(body, "req").unwrap();
        page = browser
            .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", &choice)])
            .await;
        if page.is_consent() {
            page = browser.consent(&page, true).await;
        }
    }
    rp.exchange(&page.params()["code"], attempt.verifier)
        .await
        .unwrap()
}

fn option_value(page: &Page, select: &str) -> String {
    let (_, _, body) = page.html();
    let re = regex_lite::Regex::new(&format!(
        r#"<select id="{select}" name="{select}"><option value="([^"]*)""#
    ))
    .unwrap();
    re.captures(body)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| panic!("no {select} in {body}"))
}

async fn a_legal_representative_binds_her_company_and_an_agent_acts_for_it_until_the_registry_cancels_it(
    backend: Backend,
) {
    let authorities = Authorities::start().await;
    let inbox = crate::common::sms::SmsInbox::start(0).await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(inbox.url.clone());
        c.sms_webhook_secret = Some("proofing-test-webhook-secret".into());
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    let agent_id = resident_id(31);
    let agent = env.person(&agent_id, "13900139031", PASSWORD).await;
    env.app
        .db
        .set_real_name(&agent, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);

    let browser = signed_in(&env, ALICE_ID).await;
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("已绑定"),
        "{}",
        message_shown(&page)
    );
    assert!(page.html().2.contains(COMPANY) && page.html().2.contains("福州示例科技有限公司"));
    assert_eq!(authorities.calls("registry")[0]["credit_code"], COMPANY);
    // Binding twice is refused, saying so.
    let again = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&again).contains("已绑定该企业"),
        "{}",
        message_shown(&again)
    );

    // She appoints an agent by phone number; it waits for the agent.
    let org_id = option_value(&page, "org_id");
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/appoint",
        &[
            ("org_id", &org_id),
            ("role", "agent"),
            ("appointee", "13900139031"),
            ("matters", "all"),
            ("valid_days", "30"),
        ],
    )
    .await;
    assert!(
        message_shown(&page).contains("授权已发出"),
        "{}",
        message_shown(&page)
    );
    let client = env
        .client_with(NewClient {
            name: "企业开办".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: ["openid", "org", "offline_access"].map(String::from).to_vec(),
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let agent = signed_in(&env, &agent_id).await;
    let pending = agent.get("/account/organisations").await;
    assert!(pending.html().2.contains("待接受"), "{}", pending.html().2);
    let re =
        regex_lite::Regex::new(r#"action="(/account/organisations/appointments/[^"]*/accept)""#).unwrap();
    let accept = re.captures(pending.html().2).expect("an accept form")[1].to_owned();
    let page = submit(&agent, "/account/organisations", &accept, &[]).await;
    assert!(message_shown(&page).contains("接受"), "{}", message_shown(&page));

    // The agent acts for the company at a real OIDC client.
    let tokens = act_for(&rp, &agent, &agent_id, COMPANY).await;
    let (status, info) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(status, 200);
    assert_eq!(info["org"]["credit_code"], COMPANY, "{info}");
    assert_eq!(info["org"]["role"], "agent");
    let refresh = tokens.refresh_token().unwrap().clone();

    // Every change was audited, and both were told by SMS.
    let actions: Vec<String> = env
        .app
        .db
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["org.bind", "org.appoint", "org.appointment.accept"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    let sent: Vec<String> = inbox.delivered().iter().map(|c| c.to()).collect();
    assert!(
        sent.iter().any(|t| t.ends_with(ALICE_PHONE)) && sent.iter().any(|t| t.ends_with("13900139031")),
        "{sent:?}"
    );

    // The registry now says the company is cancelled: at the next re-check its representations stop,
    // and the agent's next refresh fails.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(601);
    let mut refused = false;
    for _ in 0..40 {
        let result = rp
            .client
            .exchange_refresh_token(&refresh)
            .unwrap()
            .request_async(&http_client)
            .await;
        match result {
            Err(e) => {
                assert!(format!("{e:?}").contains("invalid_grant"), "{e:?}");
                refused = true;
                break;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    assert!(
        refused,
        "the agent's refresh still works after the registry cancelled the company"
    );
    // Her binding shows as suspended (the re-check may still be finishing).
    let mut shown = String::new();
    for _ in 0..20 {
        shown = browser.get("/account/organisations").await.html().2.to_owned();
        if shown.contains("已暂停") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(shown.contains("已暂停"), "{shown}");
    assert!(
        authorities.calls("registry").len() >= 3,
        "the registry was asked again"
    );
}

async fn a_binding_is_refused_saying_why(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;
    let bind = |code: &'static str| {
        let browser = &browser;
        async move {
            let page = submit(
                browser,
                "/account/organisations",
                "/account/organisations/bind",
                &[("credit_code", code)],
            )
            .await;
            message_shown(&page)
        }
    };
    // Level 1: the page offers no form and the endpoint refuses.
    let page = browser.get("/account/organisations").await;
    assert!(!page.html().2.contains("/account/organisations/bind"));
    let verify = browser.get("/account/verify").await;
    let csrf = field(verify.html().2, "csrf").unwrap();
    let refused = browser
        .post(
            "/account/organisations/bind",
            &[("csrf", &csrf), ("credit_code", COMPANY)],
        )
        .await;
    assert!(
        message_shown(&refused).contains("上一级"),
        "{}",
        message_shown(&refused)
    );
    assert!(authorities.calls("registry").is_empty());

    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    assert!(bind("91350100M000100Y4X").await.contains("不正确"));
    assert!(bind(COMPANY).await.contains("没有这个统一社会信用代码"));
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "revoked", "张三", ALICE_ID);
    assert!(bind(COMPANY).await.contains("吊销或注销"));
    authorities.enterprise(
        COMPANY,
        "福州示例科技有限公司",
        "active",
        "李四",
        &resident_id(40),
    );
    assert!(bind(COMPANY).await.contains("不是您本人"));
    // The same name with another person's number is not her either.
    authorities.enterprise(
        COMPANY,
        "福州示例科技有限公司",
        "active",
        "张三",
        &resident_id(41),
    );
    assert!(bind(COMPANY).await.contains("不是您本人"));
    authorities.answer("registry", Answer::Down);
    assert!(bind(COMPANY).await.contains("稍后再试"));
    // Nothing was recorded for her.
    let page = browser.get("/account/organisations").await;
    assert!(page.html().2.contains("尚未绑定企业"));
    assert!(env.app.db.org_by_code(COMPANY).await.unwrap().is_none());
}

async fn a_super_admin_finds_outcomes_and_bindings_and_suspends_a_binding(backend: Backend) {
    use reqwest::Method;
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    let client = env
        .client_with(NewClient {
            name: "企业开办".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: ["openid", "org", "offline_access"].map(String::from).to_vec(),
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let tokens = act_for(&rp, &Browser::new(&env.base), ALICE_ID, COMPANY).await;
    let refresh = tokens.refresh_token().unwrap().clone();

    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let clerk = crate::admin::admin_token(&env, "yunid:counter").await;
    let path = format!("/admin/api/proofing/checks?person_id={alice}&connector=registry");
    let (status, body) = crate::admin::call(&env, &clerk, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"][0]["outcome"], "match", "{body}");
    assert!(
        body["checks"][0]["transaction_id"]
            .as_str()
            .unwrap()
            .starts_with("reg-")
    );
    assert!(!body.to_string().contains(ALICE_ID));
    let (status, body) = crate::admin::call(
        &env,
        &root,
        Method::GET,
        "/admin/api/proofing/bindings?status=active",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let binding = body["bindings"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["bindings"][0]["person_id"], alice.as_str());

    // Only a super admin suspends; a clerk's attempt is refused and audited.
    let suspend = format!("/admin/api/proofing/bindings/{binding}/suspend");
    let (status, _) = crate::admin::call(&env, &clerk, Method::POST, &suspend, None).await;
    assert_eq!(status, 403);
    let (status, body) = crate::admin::call(&env, &root, Method::POST, &suspend, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "suspended");
    let (status, _) = crate::admin::call(&env, &root, Method::POST, &suspend, None).await;
    assert_eq!(status, 409, "suspended already");
    // The app sees it at the next refresh.
    let err = rp
        .client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("refresh after the suspension");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.binding.suspend" && e.outcome == "forbidden")
    );
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.binding.suspend" && e.outcome == "success")
    );
}

async fn the_legal_person_entry_signs_in_and_goes_straight_to_the_enterprises(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();

    // At yunid itself: the login page offers the entry; through it, the sign-in lands on the enterprises,
    // where a person with none is told how to bind one.
    let browser = Browser::new(&env.base);
    let login = browser.get("/login").await;
    assert!(login.html().2.contains("href=\"/login/legal\"") && login.html().2.contains("法人登录"));
    let login = browser.get("/login/legal").await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let (url, _, body) = page.html();
    assert!(url.ends_with("/account/organisations?entry=legal"), "{url}");
    assert!(
        body.contains("还没有可以代表的企业") && body.contains("action=\"/account/organisations/bind\""),
        "{body}"
    );
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(page.html().2.contains("id=\"represents\""), "{}", page.html().2);
    // The entry is used once: the account page is the account page again.
    let page = browser.get("/account").await;
    assert!(page.html().0.ends_with("/account"), "{}", page.html().0);
    // Signed in already, the entry goes straight there.
    let page = browser.get("/login/legal").await;
    assert!(
        page.html().0.ends_with("/account/organisations?entry=legal"),
        "{}",
        page.html().0
    );

    // In an app's request: the entry keeps the request, and the sign-in leads to the choice of whom to
    // act for, without the app naming the company in `login_hint`.
    let client = env
        .client_with(NewClient {
            name: "企业开办".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: ["openid", "org"].map(String::from).to_vec(),
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let attempt = rp.start(&["org"]);
    let fresh = Browser::new(&env.base);
    let login = fresh.get(attempt.url.as_str()).await;
    let re = regex_lite::Regex::new(r#"id="legal-entry" href="([^"]*)""#).unwrap();
    let entry = re
        .captures(login.html().2)
        .expect("the entry on the app's login page")[1]
        .replace("&amp;", "&");
    assert!(entry.starts_with("/login/legal?req="), "{entry}");
    let login = fresh.get(&entry).await;
    let page = fresh.login(&login, ALICE_ID, PASSWORD).await;
    let (_, _, body) = page.html();
    assert!(
        body.contains("action=\"/act-as\"") && body.contains(COMPANY),
        "{body}"
    );
}

/// What yunid believes of an authority: only an answer of the contract, for what it asked, from the
/// adapter holding the token; a provider page only when it is a web page.
async fn a_connector_is_trusted_only_within_its_contract(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
        c.proofing_carrier_token = Some("not-the-token".into());
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;
    // The carrier adapter refuses yunid's token (401): "try later", no level.
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(level_shown(&page), "1");

    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    // A registry answer about another enterprise binds nothing.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    authorities.answer("registry", Answer::Foreign);
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    assert!(env.app.db.org_by_code(COMPANY).await.unwrap().is_none());
    // The provider's answer naming a page elsewhere is not where the browser is sent: the configured
    // provider page is, with the session id.
    authorities.answer("face_open", Answer::Foreign);
    let page = submit(&browser, "/account/verify", "/account/verify/face/start", &[]).await;
    let body = page.html().2;
    assert!(!body.contains("phish.example"), "{body}");
    let re = regex_lite::Regex::new(r#"id="face-continue" href="([^"]*)""#).unwrap();
    let target = re.captures(body).expect("a link to the provider")[1].replace("&amp;", "&");
    assert!(
        target.starts_with(&format!("{}/v1/face/page?session=fs-", authorities.base)),
        "{target}"
    );
    // A state nobody issued, or none, is refused without asking the provider.
    let page = browser.get("/account/verify/face/return?state=forged").await;
    assert!(message_shown(&page).contains("失效"));
    let page = browser.get("/account/verify/face/return").await;
    assert!(message_shown(&page).contains("失效"));
    assert!(authorities.calls("face_result").is_empty());
    // Forms need their CSRF token.
    let refused = browser
        .post("/account/verify/online", &[("csrf", "forged")])
        .await;
    assert_eq!(refused.html().1, 403);
    let refused = browser
        .post("/account/organisations/bind", &[("credit_code", COMPANY)])
        .await;
    assert_eq!(refused.html().1, 403);
}

/// The registry later names someone else: the binding and the agents its holder appointed stop, and the
/// new legal representative binds the enterprise for themself.
async fn another_legal_representative_in_the_registry_ends_the_old_binding(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob_id = resident_id(51);
    let bob = env.person(&bob_id, "13900139051", PASSWORD).await;
    for p in [&alice, &bob] {
        env.app
            .db
            .set_real_name(p, 2, "online", "test", env.app.now())
            .await
            .unwrap();
    }
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let alice_browser = signed_in(&env, ALICE_ID).await;
    submit(
        &alice_browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    // Bob cannot bind it while the registry names Alice.
    let bob_browser = signed_in(&env, &bob_id).await;
    let page = submit(
        &bob_browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(message_shown(&page).contains("不是您本人"));
    // The registry changes: Bob binds it, and Alice's binding is suspended.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", &bob_id);
    let page = submit(
        &bob_browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("已绑定"),
        "{}",
        message_shown(&page)
    );
    let page = alice_browser.get("/account/organisations").await;
    assert!(page.html().2.contains("已暂停"), "{}", page.html().2);
    assert!(
        page.html().2.contains("还没有可以代表的企业"),
        "Alice represents it no more"
    );
    let page = bob_browser.get("/account/organisations").await;
    assert!(page.html().2.contains("id=\"represents\""));
}

/// The same in headless Chromium (`tests/browser/proofing.mjs`): the 法人登录 entry, levels 1 → 3 with the
/// face step through the provider's page, binding the company; language, autocomplete, no CSP violation.
async fn a_citizen_verifies_and_binds_her_company_in_a_real_browser(backend: Backend) {
    crate::browser::check_tools();
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let root = crate::browser::crate_root();
    let shots = root
        .join("test-artifacts")
        .join("screenshots")
        .join("proofing")
        .join(label);
    std::fs::create_dir_all(&shots).unwrap();
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        // A domain, as in the other browser flows (cookies of `localhost`).
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let run = tokio::process::Command::new("node")
        .arg("tests/browser/proofing.mjs")
        .current_dir(root)
        .env("YUNID_URL", env.app.config.iss())
        .env("PERSON_ID_NUMBER", ALICE_ID)
        .env("PERSON_PASSWORD", PASSWORD)
        .env("COMPANY", COMPANY)
        .env("PROVIDER_ORIGIN", &authorities.base)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", crate::browser::chromium())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the browser script finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "proofing.mjs failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all proofing flows passed"), "{stdout}");
    // What the browser did is what the server recorded.
    let alice = env
        .app
        .db
        .person_by_id_hash(&env.app.secrets.id_hash(ALICE_ID))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.real_name_level, 3);
    assert!(env.app.db.org_by_code(COMPANY).await.unwrap().is_some());
}

/// The console shows the same: outcomes and bindings, searchable; a super admin suspends a binding there
/// (a counter clerk sees the checks but no suspend button, and a forged post is refused and audited).
async fn the_console_finds_outcomes_and_a_super_admin_suspends_a_binding_there(backend: Backend) {
    let authorities = Authorities::start().await;
    let inbox = crate::common::sms::SmsInbox::start(0).await;
    let sms = crate::common::console::sms_to(&inbox);
    let env = Env::start_with(backend, |c| {
        sms(c);
        authorities.configure(c);
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;

    let carol_id = resident_id(61);
    let carol = env.person(&carol_id, "13900139061", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&carol, "counter_clerk", "", "test", env.app.now())
        .await
        .unwrap();
    let root_id = resident_id(62);
    let root = env.person(&root_id, "13900139062", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&root, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();

    let clerk = Browser::new(&env.base);
    crate::common::console::sign_in(&clerk, &inbox, &carol_id, PASSWORD).await;
    let page = clerk
        .get(&format!("/admin/proofing?person_id={alice}&connector=registry"))
        .await;
    let (_, status, body) = page.html();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reg-") && body.contains("match"), "{body}");
    assert!(!body.contains(ALICE_ID), "no ID number on the page");
    assert!(!body.contains("/suspend\""), "a clerk gets no suspend button");

    let admin = Browser::new(&env.base);
    crate::common::console::sign_in(&admin, &inbox, &root_id, PASSWORD).await;
    let page = admin.get("/admin/proofing").await;
    let body = page.html().2.to_owned();
    let re = regex_lite::Regex::new(r#"action="(/admin/proofing/bindings/[^"]*/suspend)""#).unwrap();
    let action = re.captures(&body).expect("a suspend button for the super admin")[1].to_owned();
    // The clerk posting it (with her browser's own form token) is refused.
    let csrf = field(clerk.get("/account/verify").await.html().2, "csrf").unwrap();
    let refused = clerk.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!(refused.html().1, 403);
    let csrf = field(&body, "csrf").unwrap();
    let done = admin.post(&action, &[("csrf", &csrf)]).await;
    assert!(done.html().2.contains("绑定已暂停"), "{}", done.html().2);
    let page = browser.get("/account/organisations").await;
    assert!(page.html().2.contains("已暂停"));
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.binding.suspend" && e.outcome == "forbidden")
    );
    assert!(events.iter().any(|e| e.action == "org.binding.suspend"
        && e.outcome == "success"
        && e.actor == format!("person:{root}")));
}

/// The evidence an app sees never carries the ID number, and claims in-person proofing (`pipp`) only
/// when a counter verified the person: a level reached online by face is `data` evidence.
async fn evidence_never_carries_the_id_number_nor_claims_a_counter_for_an_online_check(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 3, "online:face", "proofing", env.app.now())
        .await
        .unwrap();
    let browser = signed_in(&env, ALICE_ID).await;
    let client = identity_client(&env).await;
    let methods = |info: &Value| -> Vec<String> {
        info["verified_claims"]["verification"]["evidence"]
            .as_array()
            .unwrap_or_else(|| panic!("evidence: {info}"))
            .iter()
            .filter_map(|e| e["method"].as_str().map(str::to_owned))
            .collect()
    };

    let (info, _) = app_sees(&env, &browser, &client).await;
    let evidence = info["verified_claims"]["verification"]["evidence"].to_string();
    assert!(
        !evidence.contains(ALICE_ID),
        "no ID number in evidence: {evidence}"
    );
    assert!(!evidence.contains("document_number"), "{evidence}");
    assert!(
        !methods(&info).iter().any(|m| m == "pipp"),
        "an online check is not in person: {evidence}"
    );
    assert_eq!(info["verified_claims"]["verification"]["assurance_level"], "3");

    // Verified at a counter: in person, still without the number.
    env.app
        .db
        .set_real_name(&alice, 3, "counter:idcard", "admin", env.app.now())
        .await
        .unwrap();
    let (info, _) = app_sees(&env, &browser, &client).await;
    let evidence = info["verified_claims"]["verification"]["evidence"].to_string();
    assert!(
        !evidence.contains(ALICE_ID),
        "no ID number in evidence: {evidence}"
    );
    assert!(methods(&info).iter().any(|m| m == "pipp"), "{evidence}");
}

/// A `404` without the contract's body (a proxy, a gateway) on the re-check is an outage, not a
/// cancelled enterprise: the binding stays active.
async fn a_gateway_404_on_the_recheck_does_not_cancel_the_enterprise(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("已绑定"),
        "{}",
        message_shown(&page)
    );

    authorities.answer("registry", Answer::Gateway);
    env.app.clock.advance(601);
    for _ in 0..60 {
        if authorities.calls("registry").len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        authorities.calls("registry").len() >= 2,
        "the registry was asked again"
    );
    // Let the re-check that got the 404 finish.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let shown = browser.get("/account/organisations").await.html().2.to_owned();
    assert!(shown.contains(COMPANY), "{shown}");
    assert!(
        !shown.contains("已暂停"),
        "a gateway 404 suspended the binding: {shown}"
    );
}

/// A population record that cannot be re-checked (its stored ID number unreadable) holds up no other
/// re-check: the registry re-check still suspends a cancelled company's binding.
async fn one_bad_record_does_not_stop_the_rechecks(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    let bob = env.person(&resident_id(32), "13900139032", PASSWORD).await;
    env.app
        .db
        .set_population_state(&bob, "normal", env.app.now())
        .await
        .unwrap();
    sqlx::query("UPDATE persons SET id_number_enc = 'unreadable' WHERE id = $1")
        .bind(&bob)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("已绑定"),
        "{}",
        message_shown(&page)
    );

    authorities.enterprise(COMPANY, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(601);
    let mut shown = String::new();
    for _ in 0..60 {
        shown = browser.get("/account/organisations").await.html().2.to_owned();
        if shown.contains("已暂停") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        shown.contains("已暂停"),
        "the registry re-check never ran: {shown}"
    );
}

// ---- The hostile review of issue 18 ----

const COMPANY2: &str = "91350100M000200Y4T";
const COMPANY3: &str = "91350100M000300Y4J";

/// A person at real-name level 2 (set directly), registered with `phone`.
async fn level_two(env: &Env, id_number: &str, phone: &str) -> String {
    let id = env.person(id_number, phone, PASSWORD).await;
    env.app
        .db
        .set_real_name(&id, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    id
}

/// Alice (level 2) binds `code` in `browser`; the page after.
async fn bind(browser: &Browser, code: &str) -> Page {
    let page = submit(
        browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", code)],
    )
    .await;
    assert!(
        message_shown(&page).contains("已绑定"),
        "{}",
        message_shown(&page)
    );
    page
}

async fn org_client(env: &Env) -> TestClient {
    env.client_with(NewClient {
        name: "企业开办".into(),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        scopes: ["openid", "org", "offline_access"].map(String::from).to_vec(),
        ..NewClient::default()
    })
    .await
}

/// Appoints `appointee` (ID number or phone) for the first organisation offered, as `role`.
async fn appoint(browser: &Browser, appointee: &str, role: &str) -> Page {
    let page = browser.get("/account/organisations").await;
    let org_id = option_value(&page, "org_id");
    submit(
        browser,
        "/account/organisations",
        "/account/organisations/appoint",
        &[
            ("org_id", &org_id),
            ("role", role),
            ("appointee", appointee),
            ("matters", "all"),
            // A manager's time covers the agents they appoint later.
            ("valid_days", if role == "manager" { "60" } else { "30" }),
        ],
    )
    .await
}

/// Accepts the first appointment offered on `browser`'s organisations page; the page after.
async fn accept_first(browser: &Browser) -> Page {
    let pending = browser.get("/account/organisations").await;
    let re =
        regex_lite::Regex::new(r#"action="(/account/organisations/appointments/[^"]*/accept)""#).unwrap();
    let accept = re
        .captures(pending.html().2)
        .unwrap_or_else(|| panic!("an accept form: {}", pending.html().2))[1]
        .to_owned();
    submit(browser, "/account/organisations", &accept, &[]).await
}

/// Appointing answers the same whether or not the number belongs to someone, and never shows the
/// appointee's name; the appointee accepts only at real-name level 2, acts only while at level 2, and
/// an appointment not accepted within 14 days has expired.
async fn an_appointment_answers_the_same_for_anyone_and_waits_for_a_level_two_appointee(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(41);
    let bob = env.person(&bob_id, "13900139041", PASSWORD).await;
    sqlx::query("UPDATE persons SET name = '李四' WHERE id = $1")
        .bind(&bob)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    let carol_id = resident_id(42);
    level_two(&env, &carol_id, "13900139042").await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let alice = signed_in(&env, ALICE_ID).await;
    bind(&alice, COMPANY).await;

    // Someone registered, and a number nobody has: the same answer, and no name on the page.
    let to_bob = appoint(&alice, "13900139041", "agent").await;
    let to_nobody = appoint(&alice, "13900139099", "agent").await;
    let by_id_nobody = appoint(&alice, &resident_id(49), "agent").await;
    assert_eq!(message_shown(&to_bob), message_shown(&to_nobody));
    assert_eq!(message_shown(&to_bob), message_shown(&by_id_nobody));
    assert!(
        message_shown(&to_bob).contains("如该人员已注册"),
        "{}",
        message_shown(&to_bob)
    );
    let body = to_nobody.html().2;
    assert!(!body.contains("李四"), "the appointee's name is shown: {body}");
    assert!(!body.contains("李*"), "a name is shown before acceptance: {body}");
    assert!(
        body.contains("139****9041") && body.contains("139****9099"),
        "{body}"
    );
    assert!(!body.contains(&resident_id(49)), "{body}");

    // Bob, at level 1, sees it and cannot accept it yet.
    let bob_browser = signed_in(&env, &bob_id).await;
    let page = accept_first(&bob_browser).await;
    assert!(
        message_shown(&page).contains("实名认证"),
        "{}",
        message_shown(&page)
    );
    assert!(
        env.app
            .db
            .current_reps(&bob, env.app.now())
            .await
            .unwrap()
            .is_empty()
    );
    // At level 2 he can, and acts for the company at an app.
    env.app
        .db
        .set_real_name(&bob, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    let page = accept_first(&bob_browser).await;
    assert!(message_shown(&page).contains("接受"), "{}", message_shown(&page));
    // Now Alice sees who accepted: the masked name next to the masked number, never the full name.
    let shown = alice.get("/account/organisations").await.html().2.to_owned();
    assert!(shown.contains("139****9041 李*"), "{shown}");
    assert!(!shown.contains("李四"), "{shown}");
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let tokens = act_for(&rp, &Browser::new(&env.base), &bob_id, COMPANY).await;
    let (status, info) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(status, 200);
    assert_eq!(info["org"]["credit_code"], COMPANY, "{info}");
    // His level lowered (say, by the counter), the app's next refresh no longer acts for it.
    env.app
        .db
        .set_real_name(&bob, 1, "self", "test", env.app.now())
        .await
        .unwrap();
    let err = rp
        .client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("a level 1 appointee acts for nobody");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");

    // Carol's appointment waits 14 days, then has expired: shown so, and cannot be accepted.
    appoint(&alice, "13900139042", "agent").await;
    let carol = signed_in(&env, &carol_id).await;
    let pending = carol.get("/account/organisations").await;
    let re =
        regex_lite::Regex::new(r#"action="(/account/organisations/appointments/[^"]*/accept)""#).unwrap();
    let accept = re.captures(pending.html().2).expect("an accept form")[1].to_owned();
    env.app.clock.advance(14 * 86_400 + 1);
    let carol = signed_in(&env, &carol_id).await;
    let page = carol.get("/account/organisations").await;
    assert!(page.html().2.contains("已过期"), "{}", page.html().2);
    assert!(!page.html().2.contains("/accept\""), "{}", page.html().2);
    let csrf = field(page.html().2, "csrf").unwrap();
    let page = carol.post(&accept, &[("csrf", &csrf)]).await;
    assert!(message_shown(&page).contains("过期"), "{}", message_shown(&page));
    let carol_pid = env
        .app
        .db
        .person_by_id_hash(&env.app.secrets.id_hash(&carol_id))
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        env.app
            .db
            .current_reps(&carol_pid, env.app.now())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Waits (the background sweep runs every second here) until `browser`'s organisations page shows
/// `wanted` (or not).
async fn until_shown(browser: &Browser, wanted: &str, present: bool) -> String {
    let mut shown = String::new();
    for _ in 0..60 {
        shown = browser.get("/account/organisations").await.html().2.to_owned();
        if shown.contains(wanted) == present {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    shown
}

/// The registry saying the enterprise is gone (a contract 404) or cancelled suspends. A later
/// `active` answer with the same legal representative restores a binding suspended as gone, and what
/// it allows; a cancellation (注销) is final: no `active` answer restores it.
async fn a_gone_or_cancelled_enterprise_is_suspended_and_restored_when_active_again(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;

    for status in ["gone", "active", "cancelled"] {
        match status {
            "gone" => authorities.forget_enterprise(COMPANY),
            s => authorities.enterprise(COMPANY, "福州示例科技有限公司", s, "张三", ALICE_ID),
        }
        env.app.clock.advance(601);
        let suspended = status != "active";
        let shown = until_shown(&browser, "已暂停", suspended).await;
        assert_eq!(shown.contains("已暂停"), suspended, "after {status}: {shown}");
        assert_eq!(
            shown.contains("id=\"represents\""),
            !suspended,
            "after {status}: {shown}"
        );
    }
    // Active again after the cancellation: a sweep runs, the binding stays suspended.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    env.app.clock.advance(601);
    // (Whether this sweep or the node's own background one asks, it has been asked once this returns.)
    yunid::services::proofing::sweep(&env.app.proofing(), &env.app.node_id, env.app.now())
        .await
        .unwrap();
    let shown = browser.get("/account/organisations").await;
    let (_, _, shown) = shown.html();
    assert!(shown.contains("已暂停"), "{shown}");
    assert!(!shown.contains("id=\"represents\""), "{shown}");
    let events = env.app.db.all_audit_events().await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "org.binding.restore")
            .count(),
        1
    );
}

/// One wrong answer stream cannot suspend every enterprise or lock every account: a sweep stops at its
/// brake, says so in the log, the metrics and the audit trail, and the rest wait.
async fn a_sweep_stops_at_its_brake(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
        c.proofing_attempts_per_person = 50;
        c.proofing_sweep_interval = 86_400;
        c.proofing_suspend_brake = 2;
    })
    .await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
        bind(&browser, code).await;
    }
    let mut people = vec![];
    for n in 61..64 {
        let p = level_two(&env, &resident_id(n), &format!("139001390{n}")).await;
        env.app
            .db
            .set_population_state(&p, "normal", env.app.now())
            .await
            .unwrap();
        people.push(p);
    }
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    }
    authorities.answer("population", Answer::Deceased);
    env.app.clock.advance(601);
    let ran = yunid::services::proofing::sweep(&env.app.proofing(), &env.app.node_id, env.app.now())
        .await
        .unwrap();
    assert!(ran);
    let bindings = env.app.db.bindings(Some(&alice), None, None, 10).await.unwrap();
    let suspended = bindings
        .iter()
        .filter(|b| b.status.as_str() == "suspended")
        .count();
    assert_eq!(suspended, 2, "{bindings:?}");
    let mut locked = 0;
    for p in &people {
        if env.app.db.person(p).await.unwrap().unwrap().status.as_str() == "locked" {
            locked += 1;
        }
    }
    assert_eq!(locked, 2);
    let events = env.app.db.all_audit_events().await.unwrap();
    for sweep in ["registry", "population"] {
        assert!(
            events
                .iter()
                .any(|e| e.action == "proofing.brake" && e.subject == sweep && e.outcome == "failure"),
            "{sweep}"
        );
    }
    let metrics = crate::common::http()
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("yunid_proofing_brake_total{sweep=\"registry\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("yunid_proofing_brake_total{sweep=\"population\"} 1"));
    // An admin finds it in the audit search.
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/audit?action=proofing.brake",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("proofing.brake"), "{body}");
}

/// Binding again does not undo a super admin's suspension of the binding, nor reactivate an
/// organisation an admin deactivated; the page says why. One active binding per organisation, by a
/// unique index.
async fn binding_again_keeps_an_admin_suspension_and_an_admin_deactivation(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
    })
    .await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    let binding = env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0].clone();
    // A second active binding of the same organisation cannot be recorded.
    let mut twin = binding.clone();
    twin.id = "twin".into();
    assert!(env.app.db.insert_binding(&twin).await.is_err());

    yunid::services::proofing::orgs::suspend(&env.app.proofing(), &binding.id, "admin:root", env.app.now())
        .await
        .unwrap();
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("管理员已暂停"),
        "{}",
        message_shown(&page)
    );
    assert!(page.html().2.contains("管理员暂停"), "{}", page.html().2);
    assert!(
        env.app
            .db
            .current_reps(&alice, env.app.now())
            .await
            .unwrap()
            .is_empty()
    );
    let all = env.app.db.bindings(Some(&alice), None, None, 10).await.unwrap();
    assert!(all.iter().all(|b| b.status.as_str() == "suspended"), "{all:?}");

    // An organisation an admin deactivated stays so.
    env.app
        .db
        .insert_org(
            &yunid::store::orgs::Organisation {
                id: "org-deactivated".into(),
                credit_code: COMPANY2.into(),
                name: "福州停用示例有限公司".into(),
                org_type: "有限责任公司".into(),
                status: yunid::store::orgs::OrgStatus::Inactive,
                version: 1,
            },
            env.app.now(),
        )
        .await
        .unwrap();
    authorities.enterprise(COMPANY2, "福州停用示例有限公司", "active", "张三", ALICE_ID);
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY2)],
    )
    .await;
    assert!(
        message_shown(&page).contains("管理员已停用"),
        "{}",
        message_shown(&page)
    );
    let org = env.app.db.org_by_code(COMPANY2).await.unwrap().unwrap();
    assert_eq!(org.status.as_str(), "inactive");
}

/// The browser goes only to the configured provider page; identifiers outside the contract's format
/// are never stored; connector URLs must be https unless the development switch is on.
async fn identifiers_outside_the_contract_are_refused_and_connector_urls_need_https(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
    })
    .await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = signed_in(&env, ALICE_ID).await;
    authorities.answer("population", Answer::BadId);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(level_shown(&page), "1");
    authorities.answer("population", Answer::Match);
    authorities.answer("carrier", Answer::BadId);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(level_shown(&page), "1");
    authorities.answer("carrier", Answer::Match);
    let page = submit(&browser, "/account/verify", "/account/verify/online", &[]).await;
    assert_eq!(level_shown(&page), "2");
    authorities.answer("face_open", Answer::BadId);
    let page = submit(&browser, "/account/verify", "/account/verify/face/start", &[]).await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    authorities.answer("face_open", Answer::Match);
    authorities.answer("face", Answer::BadId);
    let (back, _) = face(&browser).await;
    assert!(
        message_shown(&back).contains("稍后再试"),
        "{}",
        message_shown(&back)
    );
    assert_eq!(level_shown(&back), "2");
    authorities.answer("registry", Answer::BadId);
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let page = submit(
        &browser,
        "/account/organisations",
        "/account/organisations/bind",
        &[("credit_code", COMPANY)],
    )
    .await;
    assert!(
        message_shown(&page).contains("稍后再试"),
        "{}",
        message_shown(&page)
    );
    for c in env
        .app
        .db
        .proofing_checks(Some(&alice), None, None, 100)
        .await
        .unwrap()
    {
        let txn = c.transaction_id.unwrap_or_default();
        assert!(!txn.contains('<') && txn.len() <= 128, "{txn}");
    }
    let evidence = env.app.db.evidence_of(&alice).await.unwrap();
    assert!(
        evidence.iter().all(|e| !e.transaction_id.contains('<')),
        "{evidence:?}"
    );

    // Configuration: http connector URLs only with the development switch.
    let mut config = env.app.config.clone();
    config.allow_insecure_redirects = false;
    let err = yunid::services::proofing::settings(&config).unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    config.proofing_population_url = Some("https://population.example/".into());
    config.proofing_carrier_url = Some("https://carrier.example/".into());
    config.proofing_face_url = Some("https://face.example/".into());
    config.proofing_registry_url = Some("https://registry.example/".into());
    let settings = yunid::services::proofing::settings(&config).unwrap();
    assert_eq!(
        settings.face_page.unwrap().as_str(),
        "https://face.example/v1/face/page"
    );
    config.proofing_face_page_url = Some("http://face.example/h5".into());
    assert!(yunid::services::proofing::settings(&config).is_err());
}

/// One node at a time runs the re-check sweep: while another node holds the lease in the database, a
/// sweep here asks nobody; once it has expired, it runs.
async fn only_one_node_runs_the_recheck_sweep_at_a_time(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
        c.proofing_sweep_interval = 86_400;
    })
    .await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(601);
    let now = env.app.now();
    let lease = yunid::services::proofing::SWEEP_LEASE;
    // This node's own sweep at start-up keeps the lease for its interval; as if it had not run.
    env.app.db.release_lease(lease, &env.app.node_id).await.unwrap();
    assert!(
        env.app
            .db
            .take_lease(lease, "other-node", now, now + 300)
            .await
            .unwrap()
    );
    assert!(
        !env.app
            .db
            .take_lease(lease, &env.app.node_id, now, now + 300)
            .await
            .unwrap()
    );
    let asked = authorities.calls("registry").len();
    let ran = yunid::services::proofing::sweep(&env.app.proofing(), &env.app.node_id, now)
        .await
        .unwrap();
    assert!(!ran);
    assert_eq!(authorities.calls("registry").len(), asked);
    let binding = &env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0];
    assert_eq!(binding.status.as_str(), "active");
    env.app.clock.advance(300);
    let ran = yunid::services::proofing::sweep(&env.app.proofing(), &env.app.node_id, env.app.now())
        .await
        .unwrap();
    assert!(ran);
    let binding = &env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0];
    assert_eq!(binding.status.as_str(), "suspended");
    // Kept for the whole sweep interval, not given back after the sweep: the other node may not take
    // it at once, so N nodes still sweep once per interval.
    assert!(
        !env.app
            .db
            .take_lease(lease, "other-node", env.app.now(), env.app.now() + 300)
            .await
            .unwrap()
    );
}

/// The brake stops, it does not slow: once a re-check would lock more accounts than the brake allows,
/// it latches in the database, and no later sweep (on this node or another) nor the account page locks
/// anyone until a super admin clears it; then locking resumes. Only super admins clear it, audited.
async fn the_brake_latches_until_a_super_admin_clears_it(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
        c.proofing_attempts_per_person = 50;
        c.proofing_sweep_interval = 86_400;
        c.proofing_suspend_brake = 1;
    })
    .await;
    let mut people = vec![];
    for n in 71..75 {
        let id = resident_id(n);
        let p = level_two(&env, &id, &format!("139001390{n}")).await;
        env.app
            .db
            .set_population_state(&p, "normal", env.app.now())
            .await
            .unwrap();
        people.push((p, id));
    }
    let locked = |env: &Env, people: &Vec<(String, String)>| {
        let db = env.app.db.clone();
        let ids: Vec<String> = people.iter().map(|(p, _)| p.clone()).collect();
        async move {
            let mut n = 0;
            for p in &ids {
                if db.person(p).await.unwrap().unwrap().status.as_str() == "locked" {
                    n += 1;
                }
            }
            n
        }
    };
    authorities.answer("population", Answer::Deceased);
    env.app.clock.advance(601);
    let proofing = env.app.proofing();
    assert!(
        yunid::services::proofing::sweep(&proofing, &env.app.node_id, env.app.now())
            .await
            .unwrap()
    );
    assert_eq!(locked(&env, &people).await, 1);
    // Sweep 2, a day later (the lease ran out, and the 24 hours' count alone would allow a lock
    // again), on another node sharing the database: the brake is latched, nothing more.
    env.app.clock.advance(86_401);
    assert!(
        yunid::services::proofing::sweep(&proofing, "node-b", env.app.now())
            .await
            .unwrap()
    );
    assert_eq!(locked(&env, &people).await, 1);
    // The account page goes through the same brake: a person due opening it is not locked.
    let mut open = None;
    for (p, id) in &people {
        if env.app.db.person(p).await.unwrap().unwrap().status.as_str() == "active" {
            open = Some(id.clone());
            break;
        }
    }
    let browser = signed_in(&env, &open.unwrap()).await;
    let page = browser.get("/account/verify").await;
    let (_, status, body) = page.html();
    assert_eq!(status, 200, "{body}");
    assert_eq!(locked(&env, &people).await, 1);
    // Admins see it tripped; only a super admin clears it.
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tripped"][0]["kind"], "population", "{body}");
    let (status, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::DELETE,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "proofing.brake.clear" && e.outcome == "success")
    );
    env.app.clock.advance(86_401);
    assert!(
        yunid::services::proofing::sweep(&proofing, &env.app.node_id, env.app.now())
            .await
            .unwrap()
    );
    // One more (the brake again), and it latched again.
    assert_eq!(locked(&env, &people).await, 2);
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (_, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(body["tripped"][0]["kind"], "population", "{body}");
}

/// The legal representative appoints a manager on the account page; the manager (at level 2) accepts
/// and appoints an agent, who acts for the company, until the legal representative's binding stops.
async fn the_legal_representative_appoints_a_manager_who_appoints_an_agent(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_attempts_per_person = 50;
    })
    .await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(71);
    level_two(&env, &bob_id, "13900139071").await;
    let carol_id = resident_id(72);
    level_two(&env, &carol_id, "13900139072").await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    let page = bind(&browser, COMPANY).await;
    assert!(
        page.html().2.contains("<option value=\"manager\">"),
        "{}",
        page.html().2
    );
    let page = appoint(&browser, &bob_id, "manager").await;
    assert!(
        message_shown(&page).contains("授权已发出"),
        "{}",
        message_shown(&page)
    );
    let bob = signed_in(&env, &bob_id).await;
    let page = accept_first(&bob).await;
    assert!(message_shown(&page).contains("接受"), "{}", message_shown(&page));
    // The manager appoints agents, not managers.
    let page = bob.get("/account/organisations").await;
    assert!(
        page.html()
            .2
            .contains("action=\"/account/organisations/appoint\"")
    );
    assert!(!page.html().2.contains("<option value=\"manager\">"));
    let page = appoint(&bob, "13900139073", "manager").await;
    assert!(
        !message_shown(&page).contains("授权已发出"),
        "{}",
        message_shown(&page)
    );
    appoint(&bob, "13900139072", "agent").await;
    let carol = signed_in(&env, &carol_id).await;
    let page = accept_first(&carol).await;
    assert!(message_shown(&page).contains("接受"), "{}", message_shown(&page));
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let tokens = act_for(&rp, &Browser::new(&env.base), &carol_id, COMPANY).await;
    let (_, info) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(info["org"]["role"], "agent", "{info}");
    let tokens_bob = act_for(&rp, &Browser::new(&env.base), &bob_id, COMPANY).await;
    let (_, info) = userinfo(&env, tokens_bob.access_token().secret()).await;
    assert_eq!(info["org"]["role"], "manager", "{info}");
    // The legal representative's binding suspended: the manager and the agent under him stop too.
    let binding = env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0].clone();
    yunid::services::proofing::orgs::suspend(&env.app.proofing(), &binding.id, "admin:root", env.app.now())
        .await
        .unwrap();
    for t in [&tokens, &tokens_bob] {
        let err = rp
            .client
            .exchange_refresh_token(t.refresh_token().unwrap())
            .unwrap()
            .request_async(&http_client)
            .await
            .expect_err("no refresh after the legal representative's binding stopped");
        assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
    }
}

/// Through the 法人登录 entry inside an app's request, a person with no enterprise is sent to bind one
/// (not signed in to the app as themself) and from there goes back to the request, acting for it.
async fn a_legal_person_without_an_enterprise_binds_one_inside_the_apps_request(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let attempt = rp.start(&["org"]);
    let browser = Browser::new(&env.base);
    let login = browser.get(attempt.url.as_str()).await;
    let re = regex_lite::Regex::new(r#"id="legal-entry" href="([^"]*)""#).unwrap();
    let entry = re.captures(login.html().2).expect("the entry")[1].replace("&amp;", "&");
    let login = browser.get(&entry).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let (url, _, body) = page.html();
    assert!(
        url.contains("/account/organisations?entry=legal&req="),
        "{url} {body}"
    );
    assert!(body.contains("action=\"/account/organisations/bind\""), "{body}");
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req").expect("the bind form keeps the request");
    // A code the registry does not know: back on the page, the request kept.
    let page = browser
        .post(
            "/account/organisations/bind",
            &[("csrf", &csrf), ("req", &req), ("credit_code", COMPANY2)],
        )
        .await;
    assert!(message_shown(&page).contains("没有"), "{}", message_shown(&page));
    assert_eq!(field(page.html().2, "req").as_deref(), Some(req.as_str()));
    let page = browser
        .post(
            "/account/organisations/bind",
            &[("csrf", &csrf), ("req", &req), ("credit_code", COMPANY)],
        )
        .await;
    let (_, _, body) = page.html();
    assert!(
        body.contains("action=\"/act-as\"") && body.contains(COMPANY),
        "{body}"
    );
    let re = regex_lite::Regex::new(&format!(r#"value="([^"]*)">\s*<label[^>]*>[^<]*{COMPANY}"#)).unwrap();
    let choice = re.captures(body).expect("the organisation is offered")[1].to_owned();
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req").unwrap();
    let mut page = browser
        .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", &choice)])
        .await;
    if page.is_consent() {
        page = browser.consent(&page, true).await;
    }
    let tokens = rp
        .exchange(&page.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let (status, info) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(status, 200);
    assert_eq!(info["org"]["credit_code"], COMPANY, "{info}");
}

/// A registry env for the sweep tests: the background sweep kept quiet (its lease at start-up lasts a
/// day), so each test runs its own sweeps.
async fn sweep_env(
    backend: Backend,
    authorities: &Authorities,
    tune: impl Fn(&mut yunid::config::Config),
) -> Env {
    Env::start_with(backend, |c| {
        authorities.configure(c);
        c.proofing_recheck_ttl = 600;
        c.proofing_attempts_per_person = 50;
        c.proofing_sweep_interval = 86_400;
        tune(c);
    })
    .await
}

/// Runs one sweep on `node` at the current time.
async fn sweep_now(env: &Env, node: &str) {
    assert!(
        yunid::services::proofing::sweep(&env.app.proofing(), node, env.app.now())
            .await
            .unwrap(),
        "{node} holds the sweep's lease"
    );
}

/// Tries the app's refresh; true when the app still acts (false: `invalid_grant`).
async fn refresh_works(rp: &Rp, tokens: &openidconnect::core::CoreTokenResponse) -> bool {
    match rp
        .client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            assert!(format!("{e:?}").contains("invalid_grant"), "{e:?}");
            false
        }
    }
}

/// A registry suspension rests on the binding, not on the organisation's status: an admin setting the
/// organisation active again revives nobody. A super admin pins a suspension the registry made, and then
/// the registry's later `active` answer lifts nothing.
async fn a_registry_suspension_survives_the_organisation_set_active_and_a_super_admin_pins_it(
    backend: Backend,
) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(81);
    level_two(&env, &bob_id, "13900139081").await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    appoint(&browser, "13900139081", "agent").await;
    let bob = signed_in(&env, &bob_id).await;
    accept_first(&bob).await;
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let tokens = act_for(&rp, &Browser::new(&env.base), &bob_id, COMPANY).await;

    // The registry no longer knows the company: suspended, the agent stops.
    authorities.forget_enterprise(COMPANY);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let binding = env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0].clone();
    assert_eq!(
        (binding.status.as_str(), binding.suspended_by.as_deref()),
        ("suspended", Some("registry"))
    );
    assert!(!refresh_works(&rp, &tokens).await);
    // An admin sets the organisation active again: the binding's suspension stands, nobody acts.
    env.app
        .db
        .set_org_status(&binding.org_id, "active", env.app.now())
        .await
        .unwrap();
    let tokens = act_for_or_none(&env, &rp, &bob_id).await;
    assert!(
        tokens.is_none(),
        "the agent acts again after the organisation was set active"
    );
    let page = browser.get("/account/organisations").await;
    assert!(!page.html().2.contains("id=\"represents\""), "{}", page.html().2);

    // A super admin pins the registry's suspension.
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::POST,
        &format!("/admin/api/proofing/bindings/{}/suspend", binding.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "admin", "{body}");
    // The registry says active again: the pinned binding stays suspended.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let binding = env.app.db.binding(&binding.id).await.unwrap().unwrap();
    assert_eq!(binding.status.as_str(), "suspended");
    let page = browser.get("/account/organisations").await;
    assert!(!page.html().2.contains("id=\"represents\""), "{}", page.html().2);
    assert!(act_for_or_none(&env, &rp, &bob_id).await.is_none());
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(!events.iter().any(|e| e.action == "org.binding.restore"));
}

/// Signs `username` in to the org app in a fresh browser; the tokens when it is offered the company.
async fn act_for_or_none(
    env: &Env,
    rp: &Rp,
    username: &str,
) -> Option<openidconnect::core::CoreTokenResponse> {
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["org", "offline_access"]);
    let page = browser.sign_in(attempt.url.as_str(), username, PASSWORD).await;
    match &page {
        Page::Html { body, .. } if body.contains(COMPANY) && body.contains("action=\"/act-as\"") => {
            Some(act_for(rp, &browser, username, COMPANY).await)
        }
        _ => None,
    }
}

/// Migration 0023 suspended the older of two active bindings of one organisation; 0025 revokes the
/// representation behind it (0023 had left it live).
async fn migration_25_ends_the_representation_of_a_duplicate_binding(backend: Backend) {
    use yunid::store::Db;
    let test_db = crate::common::TestDb::new(backend).await;
    let db = Db::open(&test_db.url, 2).await.unwrap();
    db.migrate_until(22).await.unwrap();
    for (id, name) in [("p-1", "张三"), ("p-2", "李四")] {
        let person = yunid::store::persons::PersonRow {
            id: id.into(),
            id_number_hash: format!("hash-{id}"),
            id_number_enc: "sealed".into(),
            name: name.into(),
            phone: None,
            phone_verified: false,
            password_hash: None,
            real_name_level: 2,
            status: yunid::store::persons::PersonStatus::Active,
            real_name_verified_at: None,
            real_name_method: None,
            real_name_verified_by: None,
            version: 1,
            password_expires_at: None,
            password_must_change: false,
        };
        db.insert_person(&person, 100).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO organisations (id, credit_code, name, org_type, status, version, created_at, updated_at) \
         VALUES ('o-1', $1, '福州示例科技有限公司', '', 'active', 1, 100, 100)",
    )
    .bind(COMPANY)
    .execute(&db.pool)
    .await
    .unwrap();
    for (rep, person, binding) in [("r-1", "p-1", "b-1"), ("r-2", "p-2", "b-2")] {
        sqlx::query(
            "INSERT INTO representations (id, person_id, org_id, role, matters, valid_from, granted_by, created_at) \
             VALUES ($1, $2, 'o-1', 'legal_representative', '\"all\"', 100, 'registry', 100)",
        )
        .bind(rep)
        .bind(person)
        .execute(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO org_bindings (id, org_id, person_id, rep_id, status, transaction_id, bound_at, checked_at) \
             VALUES ($1, 'o-1', $2, $3, 'active', 'reg-1', 100, 100)",
        )
        .bind(binding)
        .bind(person)
        .bind(rep)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    db.pool.close().await;

    let db = Db::connect(&test_db.url, 2).await.expect("the upgrade");
    let old = db.binding("b-1").await.unwrap().unwrap();
    assert_eq!(
        (old.status.as_str(), old.reason.as_deref()),
        ("suspended", Some("duplicate"))
    );
    assert!(old.suspended_at.is_some());
    assert!(
        db.rep("r-1").await.unwrap().unwrap().revoked_at.is_some(),
        "the duplicate binding's representation is still live"
    );
    assert!(db.rep("r-2").await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(
        db.binding("b-2").await.unwrap().unwrap().status.as_str(),
        "active"
    );
}

/// An online appointer whose real-name level drops below 2, or whose account is locked, appoints
/// nobody, and everyone appointed under them stops at the next refresh.
async fn an_appointer_below_level_two_or_locked_appoints_nobody_and_their_appointees_stop(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(82);
    let bob = level_two(&env, &bob_id, "13900139082").await;
    let carol_id = resident_id(83);
    level_two(&env, &carol_id, "13900139083").await;
    let dave_id = resident_id(84);
    level_two(&env, &dave_id, "13900139084").await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    appoint(&browser, &bob_id, "manager").await;
    let bob_browser = signed_in(&env, &bob_id).await;
    accept_first(&bob_browser).await;
    appoint(&bob_browser, "13900139083", "agent").await;
    let carol = signed_in(&env, &carol_id).await;
    accept_first(&carol).await;
    // Bob also appoints Dave, who has not accepted yet.
    appoint(&bob_browser, "13900139084", "agent").await;
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let carol_tokens = act_for(&rp, &Browser::new(&env.base), &carol_id, COMPANY).await;
    let bob_tokens = act_for(&rp, &Browser::new(&env.base), &bob_id, COMPANY).await;

    // Bob's level lowered: Carol, his agent, stops; he can no longer appoint; Dave can no longer accept.
    env.app
        .db
        .set_real_name(&bob, 1, "self", "test", env.app.now())
        .await
        .unwrap();
    assert!(
        !refresh_works(&rp, &carol_tokens).await,
        "the agent of a level-1 manager still acts"
    );
    let page = bob_browser.get("/account/organisations").await;
    assert!(
        !page
            .html()
            .2
            .contains("action=\"/account/organisations/appoint\""),
        "{}",
        page.html().2
    );
    let dave = signed_in(&env, &dave_id).await;
    let page = accept_first(&dave).await;
    assert!(
        !message_shown(&page).contains("已接受"),
        "{}",
        message_shown(&page)
    );
    let dave_pid = env
        .app
        .db
        .person_by_phone("+8613900139084")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        env.app
            .db
            .current_reps(&dave_pid, env.app.now())
            .await
            .unwrap()
            .is_empty()
    );

    // Bob back at level 2, but Alice, the legal representative, locked: Bob stops too.
    env.app
        .db
        .set_real_name(&bob, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    sqlx::query("UPDATE persons SET status = 'locked' WHERE id = $1")
        .bind(&alice)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    assert!(
        !refresh_works(&rp, &bob_tokens).await,
        "the manager of a locked legal representative still acts"
    );
    assert!(act_for_or_none(&env, &rp, &carol_id).await.is_none());
}

/// An "active for everything" answer stream restores at most `proofing_restore_brake` bindings: then
/// the restore brake latches (audited, seen by admins) until a super admin clears it.
async fn restores_stop_at_their_own_brake_until_a_super_admin_clears_it(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |c| {
        c.proofing_restore_brake = 1;
        c.proofing_suspend_brake = 10;
    })
    .await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
        bind(&browser, code).await;
        authorities.forget_enterprise(code);
    }
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let active = |env: &Env| {
        let db = env.app.db.clone();
        let alice = alice.clone();
        async move {
            db.bindings(Some(&alice), None, None, 10)
                .await
                .unwrap()
                .iter()
                .filter(|b| b.status.as_str() == "active")
                .count()
        }
    };
    assert_eq!(active(&env).await, 0);
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    }
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(active(&env).await, 1, "more restores than the brake allows");
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "proofing.brake" && e.subject == "restore" && e.outcome == "failure")
    );
    // A day later, on another node: latched, nothing more.
    env.app.clock.advance(86_401);
    sweep_now(&env, "node-b").await;
    assert_eq!(active(&env).await, 1);
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tripped"][0]["kind"], "restore", "{body}");
    let (status, _) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::DELETE,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 204);
    env.app.clock.advance(601);
    sweep_now(&env, "node-b").await;
    assert_eq!(
        active(&env).await,
        2,
        "one more restore after the clear, then the brake again"
    );
}

/// A binding suspended as gone comes back on an `active` answer only for a holder who is an active
/// account at real-name level 2 or above.
async fn a_restore_needs_an_active_holder_at_level_two(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    authorities.forget_enterprise(COMPANY);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let status = |env: &Env| {
        let db = env.app.db.clone();
        let alice = alice.clone();
        async move {
            db.bindings(Some(&alice), None, None, 1).await.unwrap()[0]
                .status
                .as_str()
        }
    };
    assert_eq!(status(&env).await, "suspended");
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    // At level 1: not restored.
    env.app
        .db
        .set_real_name(&alice, 1, "self", "test", env.app.now())
        .await
        .unwrap();
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(status(&env).await, "suspended", "restored for a level-1 holder");
    // At level 2 but locked: not restored.
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    sqlx::query("UPDATE persons SET status = 'locked' WHERE id = $1")
        .bind(&alice)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(status(&env).await, "suspended", "restored for a locked holder");
    // Active at level 2: restored.
    sqlx::query("UPDATE persons SET status = 'active' WHERE id = $1")
        .bind(&alice)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(status(&env).await, "active");
}

/// The registry brake latches like the population one: a sweep stops at it, later sweeps on any node
/// suspend nothing more until a super admin clears it, and then it counts again from the clear.
async fn the_registry_brake_latches_until_a_super_admin_clears_it(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |c| c.proofing_suspend_brake = 1).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
        bind(&browser, code).await;
        authorities.enterprise(code, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    }
    let suspended = |env: &Env| {
        let db = env.app.db.clone();
        let alice = alice.clone();
        async move {
            db.bindings(Some(&alice), None, None, 10)
                .await
                .unwrap()
                .iter()
                .filter(|b| b.status.as_str() == "suspended")
                .count()
        }
    };
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(suspended(&env).await, 1);
    // A day later (the 24 hours' count alone would allow one more), on another node: latched.
    env.app.clock.advance(86_401);
    sweep_now(&env, "node-b").await;
    assert_eq!(suspended(&env).await, 1, "the registry brake did not latch");
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (_, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(body["tripped"][0]["kind"], "registry", "{body}");
    let (status, _) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::DELETE,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 204);
    env.app.clock.advance(601);
    sweep_now(&env, "node-b").await;
    assert_eq!(suspended(&env).await, 2);
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (_, body) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(body["tripped"][0]["kind"], "registry", "latched again: {body}");
}

/// A sweep that started long ago stops once its lease has expired by the clock, item by item, even
/// when no other node took the lease over.
async fn a_sweep_that_outlived_its_lease_stops(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |c| c.proofing_sweep_interval = 300).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(2_000);
    // A sweep whose `now` is 400 s old: its lease (300 s) ran out 100 s ago.
    let started = env.app.now() - 400;
    let asked = authorities.calls("registry").len();
    yunid::services::proofing::sweep(&env.app.proofing(), &env.app.node_id, started)
        .await
        .unwrap();
    let binding = &env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0];
    assert_eq!(
        binding.status.as_str(),
        "active",
        "a sweep past its lease went on"
    );
    assert_eq!(authorities.calls("registry").len(), asked);
    // A sweep on time does it.
    sweep_now(&env, &env.app.node_id).await;
    let binding = &env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0];
    assert_eq!(binding.status.as_str(), "suspended");
}

/// The console shows the brakes (held back or not, counts and limits) to admins who read
/// organisations, in Chinese by default and in English; a super admin clears them there with the
/// page's form (CSRF token), audited; a form without the token changes nothing.
async fn the_console_shows_the_brakes_and_a_super_admin_clears_them(backend: Backend) {
    let authorities = Authorities::start().await;
    let inbox = crate::common::sms::SmsInbox::start(0).await;
    let sms = crate::common::console::sms_to(&inbox);
    let env = Env::start_with(backend, |c| {
        sms(c);
        authorities.configure(c);
    })
    .await;
    env.app.db.trip_brake("registry", "sweep").await.unwrap();
    let root_id = resident_id(85);
    let root = env.person(&root_id, "13900139085", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&root, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();
    let admin = Browser::new(&env.base);
    crate::common::console::sign_in(&admin, &inbox, &root_id, PASSWORD).await;
    let page = admin.get("/admin/proofing").await;
    let (_, status, body) = page.html();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"brakes\""), "{body}");
    assert!(
        body.contains("企业复核暂停绑定") && body.contains("已熔断"),
        "{body}"
    );
    assert!(body.contains("0 / 20"), "{body}");
    assert!(body.contains("action=\"/admin/proofing/brake/clear\""), "{body}");
    let csrf = field(body, "csrf").unwrap();
    // Without the form's token: refused, still latched.
    admin.post("/admin/proofing/brake/clear", &[]).await;
    assert_eq!(env.app.db.brakes_tripped().await.unwrap().len(), 1);
    let done = admin
        .post("/admin/proofing/brake/clear", &[("csrf", &csrf)])
        .await;
    let body = done.html().2;
    assert!(body.contains("熔断已解除"), "{body}");
    assert!(body.contains("未熔断") && !body.contains("已熔断："), "{body}");
    assert!(env.app.db.brakes_tripped().await.unwrap().is_empty());
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(events.iter().any(|e| e.action == "proofing.brake.clear"
        && e.outcome == "success"
        && e.actor == format!("person:{root}")));
    // In English.
    env.app.db.trip_brake("restore", "sweep").await.unwrap();
    let english = Browser::new(&env.base);
    crate::common::console::sign_in(&english, &inbox, &root_id, PASSWORD).await;
    english.get("/lang/en").await;
    let body = english.get("/admin/proofing").await.html().2.to_owned();
    assert!(
        body.contains("Automatic action brakes")
            && body.contains("Held back")
            && body.contains("Bindings restored"),
        "{body}"
    );
}

/// A registry suspension is lifted by the registry's `active` answer or by a super admin explicitly
/// (`POST /admin/api/proofing/bindings/{id}/restore`, audited); a clerk cannot, and an admin's own
/// suspension is not lifted this way.
async fn a_super_admin_lifts_a_registry_suspension(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    // Cancelled: never restored by a later answer alone.
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let binding = env.app.db.bindings(Some(&alice), None, None, 1).await.unwrap()[0].clone();
    assert_eq!(binding.status.as_str(), "suspended");
    let path = format!("/admin/api/proofing/bindings/{}/restore", binding.id);
    let clerk = crate::admin::admin_token(&env, "yunid:counter").await;
    let (status, _) = crate::admin::call(&env, &clerk, reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 403);
    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body) = crate::admin::call(&env, &root, reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active", "{body}");
    // A lift is not an automatic restore: the restore brake does not count it (review L2).
    assert_eq!(
        counted(&env, "restore").await,
        0,
        "the lift counted against the restore brake"
    );
    let page = browser.get("/account/organisations").await;
    assert!(page.html().2.contains("id=\"represents\""), "{}", page.html().2);
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.binding.restore" && e.outcome == "forbidden")
    );
    assert!(
        events
            .iter()
            .any(|e| e.action == "org.binding.restore" && e.outcome == "success" && e.actor != "registry")
    );
    // An admin's own suspension is not lifted here.
    let (status, _) = crate::admin::call(
        &env,
        &root,
        reqwest::Method::POST,
        &format!("/admin/api/proofing/bindings/{}/suspend", binding.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = crate::admin::call(&env, &root, reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 409, "{body}");
    let page = browser.get("/account/organisations").await;
    assert!(!page.html().2.contains("id=\"represents\""), "{}", page.html().2);
}

/// A binding the registry suspended and then restored still counts against the suspension brake for
/// 24 hours: restoring it does not make room for suspending more.
async fn a_restored_binding_still_counts_against_the_suspension_brake(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |c| c.proofing_suspend_brake = 2).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for code in [COMPANY, COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
        bind(&browser, code).await;
    }
    authorities.forget_enterprise(COMPANY);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let bindings = env.app.db.bindings(Some(&alice), None, None, 10).await.unwrap();
    assert!(
        bindings.iter().all(|b| b.status.as_str() == "active"),
        "{bindings:?}"
    );
    // The other two cancelled: one suspension counted already (the restored one), so only one more.
    for code in [COMPANY2, COMPANY3] {
        authorities.enterprise(code, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    }
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    let bindings = env.app.db.bindings(Some(&alice), None, None, 10).await.unwrap();
    let suspended = bindings
        .iter()
        .filter(|b| b.status.as_str() == "suspended")
        .count();
    assert_eq!(
        suspended, 1,
        "the restored binding's suspension was not counted: {bindings:?}"
    );
}

// ---- The hostile review of proof3 ----

/// Records `person` as the legal representative of a new organisation `code`, as an admin does at the
/// counter (no binding, no appointment); the organisation's id.
async fn recorded_legal_rep(env: &Env, person: &str, code: &str) -> String {
    use yunid::services::identity;
    use yunid::store::orgs::{Matters, Role};
    let now = env.app.now();
    let org = identity::add_org(
        &env.app.db,
        code,
        "福州示例科技有限公司",
        "company",
        now,
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    identity::grant(
        &env.app.db,
        identity::NewRepresentation {
            person_id: person.to_owned(),
            org_id: org.id.clone(),
            role: Role::LegalRepresentative,
            matters: Matters::all(),
            valid_from: now - 1,
            valid_until: None,
        },
        "admin:counter",
        now,
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    org.id
}

async fn set_status(env: &Env, person: &str, status: &str) {
    sqlx::query("UPDATE persons SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(person)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
}

/// A legal representative an admin recorded at the counter appoints online only at level 2 and while
/// active, and the agent she appointed there stops when she is locked or drops below level 2 (review
/// H1: the admin's record itself is not held to level 2, its appointees' chain is).
async fn an_admin_recorded_appointer_is_held_to_level_two_and_an_active_account(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let carol_id = resident_id(91);
    level_two(&env, &carol_id, "13900139091").await;
    let org_id = recorded_legal_rep(&env, &alice, COMPANY).await;
    let browser = signed_in(&env, ALICE_ID).await;

    // Below level 2: no appointment form, and a forged post is refused.
    let page = browser.get("/account/organisations").await;
    let body = page.html().2.to_owned();
    assert!(body.contains(COMPANY), "the recorded company is shown: {body}");
    assert!(
        !body.contains("action=\"/account/organisations/appoint\""),
        "{body}"
    );
    let csrf = field(browser.get("/account/verify").await.html().2, "csrf").unwrap();
    let page = browser
        .post(
            "/account/organisations/appoint",
            &[
                ("csrf", csrf.as_str()),
                ("org_id", org_id.as_str()),
                ("role", "agent"),
                ("appointee", "13900139091"),
                ("matters", "all"),
                ("valid_days", "30"),
            ],
        )
        .await;
    assert!(
        !message_shown(&page).contains("已发出"),
        "a level-1 appointer appointed: {}",
        message_shown(&page)
    );
    assert!(
        env.app.db.appointments_of(&alice).await.unwrap().is_empty(),
        "a level-1 appointer's appointment was recorded"
    );

    // At level 2 she appoints Carol, who accepts and acts.
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    appoint(&browser, "13900139091", "agent").await;
    let carol = signed_in(&env, &carol_id).await;
    accept_first(&carol).await;
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let tokens = act_for(&rp, &Browser::new(&env.base), &carol_id, COMPANY).await;
    assert!(refresh_works(&rp, &tokens).await);

    // Alice locked: Carol's refresh is refused, and she is offered the company nowhere.
    set_status(&env, &alice, "locked").await;
    assert!(
        !refresh_works(&rp, &tokens).await,
        "the agent of a locked admin-recorded appointer still acts"
    );
    assert!(act_for_or_none(&env, &rp, &carol_id).await.is_none());

    // Active again but at level 1: still nobody acts under her appointment; back at 2, Carol acts.
    set_status(&env, &alice, "active").await;
    env.app
        .db
        .set_real_name(&alice, 1, "self", "test", env.app.now())
        .await
        .unwrap();
    assert!(
        act_for_or_none(&env, &rp, &carol_id).await.is_none(),
        "the agent of a level-1 admin-recorded appointer still acts"
    );
    env.app
        .db
        .set_real_name(&alice, 2, "online", "test", env.app.now())
        .await
        .unwrap();
    let tokens = act_for_or_none(&env, &rp, &carol_id)
        .await
        .expect("Carol acts again");
    // A locked holder of an admin's record never acts herself either.
    let alice_tokens = act_for(&rp, &Browser::new(&env.base), ALICE_ID, COMPANY).await;
    set_status(&env, &alice, "locked").await;
    assert!(!refresh_works(&rp, &alice_tokens).await);
    assert!(!refresh_works(&rp, &tokens).await);
}

/// An organisation the registry reported cancelled is not set active again by an admin who is not a
/// super admin (refused, audited); a super admin's override is audited with the status it overrode
/// (review M1).
async fn only_a_super_admin_sets_an_organisation_the_registry_cancelled_active(backend: Backend) {
    use crate::representation_rules::api;
    use reqwest::Method;
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let org_id = recorded_legal_rep(&env, &alice, COMPANY).await;
    env.app
        .db
        .set_org_status(&org_id, "cancelled", env.app.now())
        .await
        .unwrap();
    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    assert!(act_for_or_none(&env, &rp, ALICE_ID).await.is_none());

    let path = format!("/admin/api/organisations/{org_id}");
    let clerk = crate::admin::admin_token(&env, "yunid:counter").await;
    let (_, _, tag) = api(&env, &clerk, Method::GET, &path, None, None).await;
    let patch = Some(serde_json::json!({ "status": "active" }));
    let (status, body, _) = api(&env, &clerk, Method::PATCH, &path, patch.clone(), tag.as_deref()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        env.app.db.org(&org_id).await.unwrap().unwrap().status.as_str(),
        "cancelled"
    );
    assert!(act_for_or_none(&env, &rp, ALICE_ID).await.is_none());
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "organisation.update" && e.outcome == "forbidden"),
        "the refusal is audited"
    );

    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let (status, body, _) = api(&env, &root, Method::PATCH, &path, patch, tag.as_deref()).await;
    assert_eq!(status, 200, "{body}");
    let events = env.app.db.all_audit_events().await.unwrap();
    let update = events
        .iter()
        .find(|e| e.action == "organisation.update" && e.outcome == "success")
        .expect("the override is audited");
    assert!(update.detail.contains("cancelled"), "{}", update.detail);
    assert!(act_for_or_none(&env, &rp, ALICE_ID).await.is_some());
}

/// What `GET /admin/api/proofing/brake` counts for `kind` in its window.
async fn counted(env: &Env, kind: &str) -> i64 {
    let root = crate::admin::admin_token(env, "yunid:admin").await;
    let (_, body) = crate::admin::call(
        env,
        &root,
        reqwest::Method::GET,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    body["brakes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == kind)
        .unwrap_or_else(|| panic!("{body}"))["counted"]
        .as_i64()
        .unwrap()
}

async fn clear_brakes_by_api(env: &Env) {
    let root = crate::admin::admin_token(env, "yunid:admin").await;
    let (status, body) = crate::admin::call(
        env,
        &root,
        reqwest::Method::DELETE,
        "/admin/api/proofing/brake",
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// Clearing a brake starts the count again only for a brake that was latched, and a replayed clear
/// changes nothing: the registry's count stands while the population brake is cleared, and a second
/// clear of the registry brake does not reset the suspensions counted since the first (review M3).
async fn a_clear_restarts_only_the_latched_brakes_count_and_a_replay_changes_nothing(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |c| c.proofing_suspend_brake = 3).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let browser = signed_in(&env, ALICE_ID).await;
    for code in [COMPANY, COMPANY2] {
        authorities.enterprise(code, "福州示例科技有限公司", "active", "张三", ALICE_ID);
        bind(&browser, code).await;
        authorities.enterprise(code, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    }
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(counted(&env, "registry").await, 2);

    // Only the population brake latched: clearing it leaves the registry's count as it was.
    env.app.db.trip_brake("population", "sweep").await.unwrap();
    env.app.clock.advance(10);
    clear_brakes_by_api(&env).await;
    assert!(env.app.db.brakes_tripped().await.unwrap().is_empty());
    assert_eq!(
        counted(&env, "registry").await,
        2,
        "clearing another brake reset this count"
    );

    // The registry brake latched and cleared: its count starts again; a replay resets nothing more.
    env.app.db.trip_brake("registry", "sweep").await.unwrap();
    env.app.clock.advance(10);
    clear_brakes_by_api(&env).await;
    assert_eq!(counted(&env, "registry").await, 0);
    authorities.enterprise(COMPANY3, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    bind(&browser, COMPANY3).await;
    authorities.enterprise(COMPANY3, "福州示例科技有限公司", "cancelled", "张三", ALICE_ID);
    env.app.clock.advance(601);
    sweep_now(&env, &env.app.node_id).await;
    assert_eq!(counted(&env, "registry").await, 1);
    env.app.clock.advance(10);
    clear_brakes_by_api(&env).await;
    assert_eq!(
        counted(&env, "registry").await,
        1,
        "a replayed clear reset the count"
    );
    let events = env.app.db.all_audit_events().await.unwrap();
    let clears: Vec<_> = events
        .iter()
        .filter(|e| e.action == "proofing.brake.clear")
        .collect();
    assert_eq!(clears.len(), 3);
    assert!(clears[2].detail.contains("\"cleared\":0"), "{}", clears[2].detail);
}

/// The columns the sign-in and token paths and the brakes look rows up by are indexed (review M4): the
/// first column of some index of the table, read from the database's own catalogue.
async fn the_representation_checks_and_brake_counts_are_indexed(backend: Backend) {
    let env = Env::start(backend).await;
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT sql AS def FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL"
        }
        Backend::Postgres => "SELECT indexdef AS def FROM pg_indexes WHERE tablename = $1",
    };
    for (table, column) in [
        ("org_bindings", "rep_id"),
        ("org_appointments", "rep_id"),
        ("org_bindings", "restored_at"),
        ("org_bindings", "registry_suspended_at"),
    ] {
        let defs: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(table)
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
        let leading = regex_lite::Regex::new(&format!(r#"\(\s*"?{column}"?\s*[,)]"#)).unwrap();
        assert!(
            defs.iter().any(|d| leading.is_match(d)),
            "no index leads with {table}.{column}: {defs:?}"
        );
    }
}

/// Accepting an appointment records the representation and the acceptance together or not at all
/// (review M2): with the appointment's update made to fail in the database, the appointee is left with
/// no representation; once it works, exactly one.
async fn an_appointment_accepted_leaves_no_representation_without_it(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(92);
    let bob = level_two(&env, &bob_id, "13900139092").await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let browser = signed_in(&env, ALICE_ID).await;
    bind(&browser, COMPANY).await;
    appoint(&browser, "13900139092", "agent").await;
    let org_id = env.app.db.org_by_code(COMPANY).await.unwrap().unwrap().id;
    let bobs = |env: &Env| {
        let db = env.app.db.clone();
        let (org_id, bob) = (org_id.clone(), bob.clone());
        async move {
            db.reps_of_org(&org_id)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.person_id == bob)
                .count()
        }
    };
    let fail: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER fail_accept BEFORE UPDATE ON org_appointments BEGIN SELECT RAISE(ABORT, 'test'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION fail_accept() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_accept BEFORE UPDATE ON org_appointments FOR EACH ROW EXECUTE FUNCTION fail_accept()",
        ],
    };
    for sql in fail {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&env.app.db.pool)
            .await
            .unwrap();
    }
    let bob_browser = signed_in(&env, &bob_id).await;
    let page = accept_first(&bob_browser).await;
    assert!(
        !message_shown(&page).contains("已接受"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(
        bobs(&env).await,
        0,
        "a representation without its accepted appointment"
    );

    let drop = match backend {
        Backend::Sqlite => "DROP TRIGGER fail_accept",
        Backend::Postgres => "DROP TRIGGER fail_accept ON org_appointments",
    };
    sqlx::query(drop).execute(&env.app.db.pool).await.unwrap();
    let page = accept_first(&bob_browser).await;
    assert!(
        message_shown(&page).contains("已接受"),
        "{}",
        message_shown(&page)
    );
    assert_eq!(bobs(&env).await, 1);
}

/// The legal-person entry and the admin API's `acts` use the rule acting uses (review L5): an agent
/// whose appointer is locked has nothing to act for, so the entry sends her to bind an enterprise, and
/// the admin API shows her representation current but not acting.
async fn the_legal_entry_and_the_admin_view_use_the_acting_rule(backend: Backend) {
    use crate::representation_rules::api;
    let authorities = Authorities::start().await;
    let env = sweep_env(backend, &authorities, |_| {}).await;
    let alice = level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let carol_id = resident_id(93);
    let carol = level_two(&env, &carol_id, "13900139093").await;
    let org_id = recorded_legal_rep(&env, &alice, COMPANY).await;
    let browser = signed_in(&env, ALICE_ID).await;
    appoint(&browser, "13900139093", "agent").await;
    accept_first(&signed_in(&env, &carol_id).await).await;
    set_status(&env, &alice, "locked").await;

    let client = org_client(&env).await;
    let rp = Rp::discover(&env.base, &client).await;
    let attempt = rp.start(&["org"]);
    let entry_browser = Browser::new(&env.base);
    let login = entry_browser.get(attempt.url.as_str()).await;
    let re = regex_lite::Regex::new(r#"id="legal-entry" href="([^"]*)""#).unwrap();
    let entry = re.captures(login.html().2).expect("the entry")[1].replace("&amp;", "&");
    let login = entry_browser.get(&entry).await;
    let page = entry_browser.login(&login, &carol_id, PASSWORD).await;
    let (url, _, body) = page.html();
    assert!(
        url.contains("/account/organisations?entry=legal&req="),
        "an agent with nothing in force is not sent to bind: {url} {body}"
    );

    let root = crate::admin::admin_token(&env, "yunid:admin").await;
    let path = format!("/admin/api/organisations/{org_id}/representations");
    let carols = |body: &Value| {
        body["representations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["person_id"] == carol.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{body}"))
    };
    let (status, body, _) = api(&env, &root, reqwest::Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    let shown = carols(&body);
    assert_eq!(
        (shown["current"].clone(), shown["acts"].clone()),
        (Value::Bool(true), Value::Bool(false)),
        "{shown}"
    );
    set_status(&env, &alice, "active").await;
    let (_, body, _) = api(&env, &root, reqwest::Method::GET, &path, None, None).await;
    assert_eq!(carols(&body)["acts"], true, "{body}");
}

/// The console's brake clear posted by a counter clerk is refused (403) and audited, the brake stays
/// latched; a super admin's clear replayed (the same form posted again) clears nothing more and
/// restarts no count (review L6, M3).
async fn the_console_clear_is_refused_to_a_clerk_and_a_replay_clears_nothing_more(backend: Backend) {
    let authorities = Authorities::start().await;
    let inbox = crate::common::sms::SmsInbox::start(0).await;
    let sms = crate::common::console::sms_to(&inbox);
    let env = Env::start_with(backend, |c| {
        sms(c);
        authorities.configure(c);
    })
    .await;
    env.app.db.trip_brake("registry", "sweep").await.unwrap();
    let clerk_id = resident_id(94);
    let clerk = env.person(&clerk_id, "13900139094", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&clerk, "counter_clerk", "", "test", env.app.now())
        .await
        .unwrap();
    let root_id = resident_id(95);
    let root = env.person(&root_id, "13900139095", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&root, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();

    let clerk_browser = Browser::new(&env.base);
    crate::common::console::sign_in(&clerk_browser, &inbox, &clerk_id, PASSWORD).await;
    // The clerk's proofing page offers no clear; the console's token from another of its forms.
    let page = clerk_browser.get("/admin/proofing").await;
    assert!(
        !page.html().2.contains("action=\"/admin/proofing/brake/clear\""),
        "{}",
        page.html().2
    );
    let csrf = field(clerk_browser.get("/admin").await.html().2, "csrf").unwrap();
    let refused = clerk_browser
        .post("/admin/proofing/brake/clear", &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.html().1, 403, "{}", refused.html().2);
    assert_eq!(
        env.app.db.brakes_tripped().await.unwrap().len(),
        1,
        "a clerk cleared the brake"
    );
    let events = env.app.db.all_audit_events().await.unwrap();
    assert!(events.iter().any(|e| e.action == "proofing.brake.clear"
        && e.outcome == "forbidden"
        && e.actor == format!("person:{clerk}")));

    let admin = Browser::new(&env.base);
    crate::common::console::sign_in(&admin, &inbox, &root_id, PASSWORD).await;
    let csrf = field(admin.get("/admin/proofing").await.html().2, "csrf").unwrap();
    admin
        .post("/admin/proofing/brake/clear", &[("csrf", &csrf)])
        .await;
    assert!(env.app.db.brakes_tripped().await.unwrap().is_empty());
    let cleared_at = env.app.db.brake_cleared_at("registry").await.unwrap();
    assert!(cleared_at.is_some());
    env.app.clock.advance(60);
    admin
        .post("/admin/proofing/brake/clear", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        env.app.db.brake_cleared_at("registry").await.unwrap(),
        cleared_at,
        "the replay restarted the count"
    );
    assert_eq!(env.app.db.brake_cleared_at("population").await.unwrap(), None);
    let events = env.app.db.all_audit_events().await.unwrap();
    let cleared: Vec<_> = events
        .iter()
        .filter(|e| e.action == "proofing.brake.clear" && e.outcome == "success")
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(cleared[1].contains("\"cleared\":0"), "{cleared:?}");
}

/// Appointing someone registered and a number nobody has queues the same outbox work: two rows each
/// (the appointer's notice, and the appointee's or one never sent), the nobody row sealed empty
/// (review L6 for #9). Rows are seen as they are inserted (a trigger), not after the worker drains them.
async fn appointing_nobody_queues_the_same_outbox_rows(backend: Backend) {
    let authorities = Authorities::start().await;
    let env = start(backend, &authorities).await;
    level_two(&env, ALICE_ID, ALICE_PHONE).await;
    let bob_id = resident_id(96);
    env.person(&bob_id, "13900139096", PASSWORD).await;
    authorities.enterprise(COMPANY, "福州示例科技有限公司", "active", "张三", ALICE_ID);
    let alice = signed_in(&env, ALICE_ID).await;
    bind(&alice, COMPANY).await;
    let watch: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TABLE outbox_seen (id TEXT, nobody INTEGER)",
            "CREATE TRIGGER outbox_seen AFTER INSERT ON sms_outbox BEGIN \
             INSERT INTO outbox_seen VALUES (NEW.id, NEW.sealed IS NULL); END",
        ],
        Backend::Postgres => &[
            "CREATE TABLE outbox_seen (id TEXT, nobody BOOLEAN)",
            "CREATE FUNCTION outbox_seen() RETURNS trigger AS $$ BEGIN \
             INSERT INTO outbox_seen VALUES (NEW.id, NEW.sealed IS NULL); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER outbox_seen AFTER INSERT ON sms_outbox FOR EACH ROW EXECUTE FUNCTION outbox_seen()",
        ],
    };
    for sql in watch {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&env.app.db.pool)
            .await
            .unwrap();
    }
    let seen = |env: &Env| {
        let db = env.app.db.clone();
        async move {
            let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_seen")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            let nobody: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_seen WHERE nobody")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            (all, nobody)
        }
    };
    appoint(&alice, "13900139096", "agent").await;
    assert_eq!(seen(&env).await, (2, 0), "a registered appointee");
    appoint(&alice, "13900139099", "agent").await;
    assert_eq!(seen(&env).await, (4, 1), "a number nobody has");
}

on_both_backends!(
    the_console_clear_is_refused_to_a_clerk_and_a_replay_clears_nothing_more,
    appointing_nobody_queues_the_same_outbox_rows,
    the_legal_entry_and_the_admin_view_use_the_acting_rule,
    an_appointment_accepted_leaves_no_representation_without_it,
    the_representation_checks_and_brake_counts_are_indexed,
    a_clear_restarts_only_the_latched_brakes_count_and_a_replay_changes_nothing,
    only_a_super_admin_sets_an_organisation_the_registry_cancelled_active,
    an_admin_recorded_appointer_is_held_to_level_two_and_an_active_account,
    a_restored_binding_still_counts_against_the_suspension_brake,
    a_super_admin_lifts_a_registry_suspension,
    a_registry_suspension_survives_the_organisation_set_active_and_a_super_admin_pins_it,
    migration_25_ends_the_representation_of_a_duplicate_binding,
    an_appointer_below_level_two_or_locked_appoints_nobody_and_their_appointees_stop,
    restores_stop_at_their_own_brake_until_a_super_admin_clears_it,
    a_restore_needs_an_active_holder_at_level_two,
    the_registry_brake_latches_until_a_super_admin_clears_it,
    a_sweep_that_outlived_its_lease_stops,
    the_console_shows_the_brakes_and_a_super_admin_clears_them,
    a_legal_person_without_an_enterprise_binds_one_inside_the_apps_request,
    an_appointment_answers_the_same_for_anyone_and_waits_for_a_level_two_appointee,
    a_gone_or_cancelled_enterprise_is_suspended_and_restored_when_active_again,
    a_sweep_stops_at_its_brake,
    the_brake_latches_until_a_super_admin_clears_it,
    binding_again_keeps_an_admin_suspension_and_an_admin_deactivation,
    identifiers_outside_the_contract_are_refused_and_connector_urls_need_https,
    only_one_node_runs_the_recheck_sweep_at_a_time,
    the_legal_representative_appoints_a_manager_who_appoints_an_agent,
    one_bad_record_does_not_stop_the_rechecks,
    a_gateway_404_on_the_recheck_does_not_cancel_the_enterprise,
    evidence_never_carries_the_id_number_nor_claims_a_counter_for_an_online_check,
    the_console_finds_outcomes_and_a_super_admin_suspends_a_binding_there,
    a_citizen_verifies_and_binds_her_company_in_a_real_browser,
    a_connector_is_trusted_only_within_its_contract,
    another_legal_representative_in_the_registry_ends_the_old_binding,
    the_legal_person_entry_signs_in_and_goes_straight_to_the_enterprises,
    a_super_admin_finds_outcomes_and_bindings_and_suspends_a_binding,
    a_legal_representative_binds_her_company_and_an_agent_acts_for_it_until_the_registry_cancels_it,
    a_binding_is_refused_saying_why,
    citizen_raises_her_level_from_one_to_three_and_an_app_sees_the_evidence,
    a_mismatch_says_which_check_failed_and_sends_to_the_counter,
    a_slow_down_or_malformed_connector_says_try_later_and_never_blocks_a_login,
    attempts_are_throttled_per_person_and_per_address,
    a_face_session_answers_only_its_browser_and_person_once,
    a_closed_population_record_locks_the_account_and_ends_its_sessions,
    no_id_number_in_any_log_audit_detail_or_connector_error,
);
