//! Who may appoint whom (issue 15, representation): one rule for the console and the admin API — a
//! counter clerk records only an agent appointed in person by a legal representative or manager, nobody
//! appoints themself, and empty matters are no matters — and an appointed agent acts only while the
//! appointer's representation is current and still covers the agent's matters and time.

use openidconnect::OAuth2TokenResponse;
use reqwest::Method;
use serde_json::{Value, json};
use yunid::services::identity::{self, NewRepresentation};
use yunid::store::orgs::{Matters, Role};

use crate::admin::admin_token;
use crate::admin_authz::console_token;
use crate::common::browser::{Page, field};
use crate::common::console;
use crate::common::rp::{Rp, http_client};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, http, resident_id};
use crate::identity::{COMPANY, org_client, sign_in_acting, userinfo};
use crate::on_both_backends;

/// The company, with `manager` as its manager from the registry (any role the test names).
async fn company(env: &Env, manager: &str, matters: Matters, until: Option<i64>) -> (String, String) {
    let org = identity::add_org(
        &env.app.db,
        COMPANY,
        "福州示例科技有限公司",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    let rep = identity::grant(
        &env.app.db,
        NewRepresentation {
            person_id: manager.to_owned(),
            org_id: org.id.clone(),
            role: Role::Manager,
            matters,
            valid_from: env.app.now() - 10,
            valid_until: until,
        },
        "registry",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    (org.id, rep.id)
}

pub(crate) async fn api(
    env: &Env,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    tag: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut req = http().request(method, env.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(t) = tag {
        req = req.header("if-match", t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        etag,
    )
}

/// A super admin changes (`PATCH`) or revokes (`DELETE`) a representation through the API.
async fn change_rep(env: &Env, rep_id: &str, method: Method, body: Option<Value>) -> (u16, Value) {
    let root = admin_token(env, "yunid:admin").await;
    let path = format!("/admin/api/representations/{rep_id}");
    let (_, _, tag) = api(env, &root, Method::GET, &path, None, None).await;
    let (status, body, _) = api(env, &root, method, &path, body, tag.as_deref()).await;
    (status, body)
}

/// A counter clerk records, through the API, an agent `appointer` appoints in person.
async fn clerk_appoints(
    env: &Env,
    org_id: &str,
    agent: &str,
    appointer: &str,
    matters: Value,
    until: Option<i64>,
) -> Value {
    let clerk = admin_token(env, "yunid:counter").await;
    let (status, body, _) = api(
        env,
        &clerk,
        Method::POST,
        &format!("/admin/api/organisations/{org_id}/representations"),
        Some(
            json!({ "person_id": agent, "role": "agent", "matters": matters, "appointed_by": appointer,
                     "valid_until": until }),
        ),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn refresh_fails(rp: &Rp, refresh: &openidconnect::RefreshToken) {
    let err = rp
        .client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("the agent's grant for the company is refreshed no more");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
}

/// Alice signs in to the app in a fresh browser: is the company offered on the act-as page?
async fn company_offered(env: &Env, rp: &Rp) -> bool {
    let attempt = rp.start(&["org"]);
    let page = Browser::new(&env.base)
        .sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD)
        .await;
    matches!(&page, Page::Html { body, .. } if body.contains("action=\"/act-as\"") && body.contains(COMPANY))
}

async fn a_counter_clerk_appoints_in_the_console_only_agents_of_a_present_representative(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    let carol_id = resident_id(41);
    let carol = env.person(&carol_id, "13900139041", PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&carol, "counter_clerk", "", "test", env.app.now())
        .await
        .unwrap();
    let bob = env.person(&resident_id(42), "13900139042", PASSWORD).await;
    let dave_id = resident_id(43);
    let dave = env.person(&dave_id, "13900139043", PASSWORD).await;
    let (org_id, bob_rep) = company(&env, &bob, Matters::Only(vec!["M1".into(), "M2".into()]), None).await;

    let browser = Browser::new(&env.base);
    let home = console::sign_in(&browser, &inbox, &carol_id, PASSWORD).await;
    assert_eq!(home.html().1, 200, "{home:?}");
    let page = browser.get(&format!("/admin/orgs?code={COMPANY}")).await;
    let html = page.html().2.to_owned();
    assert!(
        html.contains("name=\"appointed_by\""),
        "the form asks who appoints: {html}"
    );
    let csrf = field(&html, "csrf").unwrap();
    let action = format!("/admin/orgs/{org_id}/representatives");
    let post = |person: String, role: &'static str, by: String, matters: &'static str| {
        let (browser, csrf, action) = (&browser, csrf.clone(), action.clone());
        async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("person", person.as_str()),
                ("role", role),
                ("appointed_by", by.as_str()),
                ("matters", matters),
                ("valid_from", ""),
                ("valid_until", ""),
            ];
            let page = browser.post(&action, &form).await;
            let (_, status, body) = page.html();
            (status.as_u16(), body.to_owned())
        }
    };

    // The clerk makes herself the manager, with the matters left empty: refused.
    let (status, body) = post(carol_id.clone(), "manager", String::new(), "").await;
    assert_eq!(status, 403, "{body}");
    // Anyone else a manager, or a legal representative, without the registry: refused.
    let (status, _) = post(dave_id.clone(), "manager", String::new(), "all").await;
    assert_eq!(status, 403);
    let (status, _) = post(
        dave_id.clone(),
        "legal_representative",
        "13900139042".into(),
        "all",
    )
    .await;
    assert_eq!(
        status, 403,
        "the manager appoints agents, not legal representatives"
    );
    // Herself an agent, on the word of the manager: refused; the manager appointing himself: refused.
    let (status, body) = post(carol_id.clone(), "agent", "13900139042".into(), "M1").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = post("13900139042".into(), "agent", "13900139042".into(), "M1").await;
    assert_eq!(status, 403);
    // Empty matters are no matters, not all of them.
    let (status, body) = post(dave_id.clone(), "agent", "13900139042".into(), " ").await;
    assert_eq!(status, 422, "{body}");
    // An agent with more than the manager holds: refused.
    let (status, _) = post(dave_id.clone(), "agent", "13900139042".into(), "all").await;
    assert_eq!(status, 403);
    for person in [&carol, &dave, &bob] {
        let reps = env.app.db.current_reps(person, env.app.now()).await.unwrap();
        assert!(
            reps.iter().all(|(r, _)| r.id == bob_rep),
            "nothing was recorded: {reps:?}"
        );
    }

    // What the rules allow: Dave, an agent for M1, appointed by Bob in person.
    let (status, body) = post(dave_id.clone(), "agent", "13900139042".into(), "M1").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("已完成"), "{body}");
    let reps = env.app.db.current_reps(&dave, env.app.now()).await.unwrap();
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].0.role, Role::Agent);
    assert_eq!(reps[0].0.appointed_under.as_deref(), Some(bob_rep.as_str()));
}

async fn the_admin_api_applies_the_same_rule_nobody_appoints_themself(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&alice, "counter_clerk", "", "test", env.app.now())
        .await
        .unwrap();
    let bob = env.person(&resident_id(42), "13900139042", PASSWORD).await;
    let dave = env.person(&resident_id(43), "13900139043", PASSWORD).await;
    let (org_id, bob_rep) = company(&env, &bob, Matters::all(), None).await;
    let token = console_token(&env, &inbox).await;
    let path = format!("/admin/api/organisations/{org_id}/representations");
    let post = |body: Value| {
        let (env, token, path) = (&env, token.clone(), path.clone());
        async move { api(env, &token, Method::POST, &path, Some(body), None).await }
    };

    // The clerk records herself as the manager's agent: refused, on the person.
    let (status, body, _) =
        post(json!({ "person_id": alice, "role": "agent", "matters": "all", "appointed_by": bob })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "person_id", "{body}");
    let (status, _, _) = post(json!({ "person_id": alice, "role": "manager", "matters": "all" })).await;
    assert_eq!(status, 403);
    // The manager named as his own appointer.
    let (status, body, _) =
        post(json!({ "person_id": bob, "role": "agent", "matters": ["M1"], "appointed_by": bob })).await;
    assert_eq!(status, 422, "{body}");
    // Empty matters.
    let (status, body, _) =
        post(json!({ "person_id": dave, "role": "agent", "matters": [], "appointed_by": bob })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "matters", "{body}");
    let root = admin_token(&env, "yunid:admin").await;
    let (_, listed, _) = api(&env, &root, Method::GET, &path, None, None).await;
    assert_eq!(
        listed["representations"].as_array().unwrap().len(),
        1,
        "only the manager: {listed}"
    );

    // Allowed: Dave as Bob's agent, recorded under Bob's representation.
    let (status, body, _) =
        post(json!({ "person_id": dave, "role": "agent", "matters": ["M1"], "appointed_by": bob })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["appointed_under"], bob_rep.as_str());
}

async fn an_agent_stops_acting_for_the_company_once_the_appointing_manager_is_revoked(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob = env.person(&resident_id(42), "13900139042", PASSWORD).await;
    let (org_id, bob_rep) = company(&env, &bob, Matters::all(), None).await;
    let agent = clerk_appoints(&env, &org_id, &alice, &bob, json!("all"), None).await;
    assert_eq!(agent["acts"], true, "{agent}");
    let client = org_client(&env, "127.0.0.1", &[]).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "offline_access"], Some(COMPANY)).await;
    assert!(company_offered(&env, &rp).await);

    let (status, body) = change_rep(&env, &bob_rep, Method::DELETE, None).await;
    assert_eq!(status, 200, "{body}");

    refresh_fails(&rp, tokens.refresh_token().unwrap()).await;
    let (status, _) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(status, 401, "userinfo for the company ends with the manager");
    assert!(
        !company_offered(&env, &rp).await,
        "the act-as page no longer offers the company"
    );
    // Administrators see it too: the agent's record stands, but it no longer acts.
    let auditor = admin_token(&env, "yunid:audit").await;
    let path = format!("/admin/api/organisations/{org_id}/representations");
    let (_, listed, _) = api(&env, &auditor, Method::GET, &path, None, None).await;
    let shown = listed["representations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == agent["id"])
        .unwrap()
        .clone();
    assert_eq!(
        (shown["current"].clone(), shown["acts"].clone()),
        (json!(true), json!(false)),
        "{shown}"
    );
}

async fn an_agent_stops_acting_once_the_appointers_matters_or_time_are_narrowed(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob = env.person(&resident_id(42), "13900139042", PASSWORD).await;
    let now = env.app.now();
    let day = 24 * 3600;
    let (org_id, bob_rep) = company(
        &env,
        &bob,
        Matters::Only(vec!["M1".into(), "M2".into()]),
        Some(now + 10 * day),
    )
    .await;
    let agent = clerk_appoints(&env, &org_id, &alice, &bob, json!(["M1"]), Some(now + 5 * day)).await;
    let agent_rep = agent["id"].as_str().unwrap().to_owned();
    let client = org_client(&env, "127.0.0.1", &["M1"]).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);

    // The manager's matters narrowed to M2: the agent's M1 is no longer his to give.
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "offline_access"], Some(COMPANY)).await;
    let (status, body) = change_rep(&env, &bob_rep, Method::PATCH, Some(json!({ "matters": ["M2"] }))).await;
    assert_eq!(status, 200, "{body}");
    refresh_fails(&rp, tokens.refresh_token().unwrap()).await;
    assert!(!company_offered(&env, &rp).await);

    // Given back, the agent acts again (checked at use, nothing was cascaded).
    let (status, _) = change_rep(
        &env,
        &bob_rep,
        Method::PATCH,
        Some(json!({ "matters": ["M1", "M2"] })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(company_offered(&env, &rp).await);

    // The manager's time cut to end before the agent's: the agent stops now.
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "offline_access"], Some(COMPANY)).await;
    let (status, body) = change_rep(
        &env,
        &bob_rep,
        Method::PATCH,
        Some(json!({ "valid_until": now + day })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    refresh_fails(&rp, tokens.refresh_token().unwrap()).await;
    assert!(!company_offered(&env, &rp).await);

    // And an edit cannot push the agent past the appointer either.
    let (status, body) = change_rep(&env, &agent_rep, Method::PATCH, Some(json!({ "matters": "all" }))).await;
    assert_eq!(status, 422, "{body}");
}

on_both_backends!(
    a_counter_clerk_appoints_in_the_console_only_agents_of_a_present_representative,
    the_admin_api_applies_the_same_rule_nobody_appoints_themself,
    an_agent_stops_acting_for_the_company_once_the_appointing_manager_is_revoked,
    an_agent_stops_acting_once_the_appointers_matters_or_time_are_narrowed,
);
