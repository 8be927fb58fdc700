//! E-licences: pushed by the library through the admin API (or pulled from an upstream library),
//! released to an app as OIDC4IDA verified claims only with consent, only for allowed types, only while
//! valid.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use yunid::identity::licence_id::mod37_36;
use yunid::services::identity::{self, NewRepresentation};
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;
use yunid::store::orgs::{Matters, Role};

use crate::common::browser::{Page, field};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http};
use crate::on_both_backends;

pub(crate) const COMPANY: &str = "91350100M000100Y43";
/// Defining authority + 3 digits (the DESIGN.md example's type code): a driving licence here.
pub(crate) const DRIVING: &str = "11100000000013338W032";
/// A business licence type, defined by another authority.
const BUSINESS: &str = "91350100M000100Y43001";
const ISSUER: &str = "11220000013544541J";

pub(crate) fn licence_id(type_code: &str, serial: &str) -> String {
    let check = mod37_36(&format!("{type_code}{ISSUER}{serial}001")).unwrap();
    format!("1.2.156.3005.2.{type_code}.{ISSUER}.{serial}.001.{check}")
}

pub(crate) fn driving_licence(serial: &str) -> Value {
    json!({
        "id": licence_id(DRIVING, serial),
        "type_code": DRIVING,
        "number": format!("DL{serial}"),
        "issuer": { "name": "北京市公安局公安交通管理局", "code": ISSUER },
        "holder": { "name": "张三", "code": ALICE_ID, "code_type": "111" },
        "issued_on": "2020-01-01",
        "valid_from": "2020-01-01",
        "valid_until": "2099-12-31",
        "area_code": "110000",
        "status": "01",
        "surface": { "vehicle_class": "C1", "address": "北京市西城区某街道" }
    })
}

fn business_licence() -> Value {
    json!({
        "id": licence_id(BUSINESS, "777"),
        "type_code": BUSINESS,
        "number": COMPANY,
        "issuer": { "name": "福州市市场监督管理局", "code": ISSUER },
        "holder": { "name": "福州示例科技有限公司", "code": COMPANY, "code_type": "001" },
        "issued_on": "2019-05-01",
        "valid_from": "2019-05-01",
        "area_code": "350100",
        "status": "01",
        "surface": { "registered_capital": "1000万元", "legal_representative": "张三", "bank_account": "secret" }
    })
}

/// The library's automation client: a client-credentials token with the licence admin scope.
async fn library_token(env: &Env) -> String {
    let client = env
        .client_with(NewClient {
            name: "电子证照库".into(),
            scopes: vec!["yunid:licences".into()],
            grant_types: vec!["client_credentials".into()],
            auth_method: AuthMethod::ClientSecretBasic,
            ..NewClient::default()
        })
        .await;
    let res: Value = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "yunid:licences")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn admin(
    env: &Env,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let res = http()
        .request(method, env.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Alice, her company, the two licence types, and the library's token.
pub(crate) async fn setup(env: &Env) -> String {
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
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
    identity::grant(
        &env.app.db,
        NewRepresentation {
            person_id: alice,
            org_id: org.id,
            role: Role::LegalRepresentative,
            matters: Matters::all(),
            valid_from: env.app.now() - 10,
            valid_until: None,
        },
        "test",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    let token = library_token(env).await;
    let put = reqwest::Method::PUT;
    let (s, _) = admin(
        env,
        &token,
        put.clone(),
        &format!("/admin/api/licence-types/{DRIVING}"),
        json!({"name": "机动车驾驶证", "authority": "公安部", "holder_kind": "person", "released_fields": ["vehicle_class"]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = admin(
        env,
        &token,
        put,
        &format!("/admin/api/licence-types/{BUSINESS}"),
        json!({"name": "营业执照", "authority": "市场监督管理总局", "holder_kind": "org", "released_fields": ["registered_capital", "legal_representative"]}),
    )
    .await;
    assert_eq!(s, 200);
    token
}

/// An app a super admin lets receive `types` (a data-release decision the library cannot make).
async fn app_allowed(env: &Env, types: &[&str]) -> TestClient {
    app_with(
        env,
        &["openid", "profile", "org", "licences", "offline_access"],
        types,
    )
    .await
}

/// An app with these scopes that a super admin lets receive licences of `types`.
pub(crate) async fn app_with(env: &Env, scopes: &[&str], types: &[&str]) -> TestClient {
    let client = env
        .client_with(NewClient {
            name: "公积金中心".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..NewClient::default()
        })
        .await;
    let super_admin = crate::admin::admin_token(env, "yunid:admin").await;
    let (s, body) = admin(
        env,
        &super_admin,
        reqwest::Method::PUT,
        &format!("/admin/api/clients/{}/licence-types", client.id),
        json!(types),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    client
}

/// Signs Alice in through a real OIDC client (the `openidconnect` crate: PKCE, ID token checked against
/// the JWKS), consenting and choosing whom to act for; returns the tokens and the consent page seen.
pub(crate) async fn sign_in(
    env: &Env,
    client: &TestClient,
    scopes: &str,
    claims: Option<&str>,
    act_for: Option<&str>,
) -> (Value, String) {
    use openidconnect::{OAuth2TokenResponse, TokenResponse};
    let rp = crate::common::rp::Rp::discover(&env.base, client).await;
    let scopes: Vec<&str> = scopes.split(' ').filter(|s| *s != "openid").collect();
    let mut attempt = rp.start(&scopes);
    if let Some(c) = claims {
        attempt.url.query_pairs_mut().append_pair("claims", c);
    }
    if let Some(code) = act_for {
        attempt
            .url
            .query_pairs_mut()
            .append_pair("login_hint", &format!("org:{code}"));
    }
    let browser = Browser::new(&env.base);
    let mut page = browser.get(attempt.url.as_str()).await;
    if page.is_login() {
        page = browser.login(&page, ALICE_ID, PASSWORD).await;
    }
    let mut consent_text = String::new();
    loop {
        if page.is_consent() {
            consent_text = page.html().2.to_owned();
            page = browser.consent(&page, true).await;
            continue;
        }
        if let Page::Html { body, .. } = &page
            && body.contains("action=\"/act-as\"")
        {
            // The act-as page (before consent): Alice takes what is preselected — the company the app
            // named in login_hint, else herself.
            let choice = regex_lite::Regex::new(r#"name="acting" value="([^"]*)" checked"#)
                .unwrap()
                .captures(body)
                .map(|c| c[1].to_owned())
                .unwrap_or_default();
            let csrf = field(body, "csrf").unwrap();
            let req = field(body, "req").unwrap();
            page = browser
                .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", &choice)])
                .await;
            continue;
        }
        break;
    }
    let tokens = rp
        .exchange(&page.params()["code"], attempt.verifier)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    id_token
        .claims(&rp.client.id_token_verifier(), &attempt.nonce)
        .expect("the ID token verifies");
    let json = json!({
        "access_token": tokens.access_token().secret(),
        "refresh_token": tokens.refresh_token().map(|r| r.secret().clone()),
        "id_token": id_token.to_string(),
    });
    (json, consent_text)
}

pub(crate) async fn userinfo(env: &Env, tokens: &Value) -> Value {
    http()
        .get(env.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) fn licences(claims: &Value) -> Vec<Value> {
    match &claims["verified_claims"] {
        Value::Array(a) => a
            .iter()
            .filter(|v| v["verification"]["evidence"][0]["type"] == "electronic_record")
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

async fn a_citizens_and_a_companys_licences_are_released_after_consent(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    let (s, body) = admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("2430599"),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        business_licence(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let client = app_allowed(&env, &[DRIVING, BUSINESS]).await;

    let (tokens, consent) = sign_in(&env, &client, "openid licences", None, None).await;
    assert!(
        consent.contains("电子证照：机动车驾驶证"),
        "the person consents per type: {consent}"
    );
    assert!(consent.contains("电子证照：营业执照"));
    let info = userinfo(&env, &tokens).await;
    let released = licences(&info);
    assert_eq!(released.len(), 1, "only her own licence: {info}");
    let dl = &released[0];
    assert_eq!(dl["verification"]["trust_framework"], "cn_gov");
    let record = &dl["verification"]["evidence"][0]["record"];
    assert_eq!(record["type"], DRIVING);
    assert!(
        record.get("personal_number").is_none() && !info.to_string().contains(ALICE_ID),
        "no ID number without the identity scope: {info}"
    );
    assert_eq!(record["created_at"], "2020-01-01");
    assert_eq!(record["date_of_expiry"], "2099-12-31");
    assert_eq!(record["source"]["name"], "北京市公安局公安交通管理局");
    assert_eq!(dl["claims"]["licence_id"], licence_id(DRIVING, "2430599"));
    assert_eq!(dl["claims"]["licence_status"], "01");
    assert_eq!(dl["claims"]["vehicle_class"], "C1");
    assert!(
        dl["claims"].get("address").is_none(),
        "surface fields outside the catalogue stay in"
    );

    // Acting for the company: the company's licence, not hers.
    let (tokens, _) = sign_in(&env, &client, "openid org licences", None, Some(COMPANY)).await;
    let info = userinfo(&env, &tokens).await;
    let released = licences(&info);
    assert_eq!(released.len(), 1, "{info}");
    assert_eq!(
        released[0]["verification"]["evidence"][0]["record"]["personal_number"],
        COMPANY
    );
    assert_eq!(released[0]["claims"]["registered_capital"], "1000万元");
    assert!(released[0]["claims"].get("bank_account").is_none());

    // Introspection never carries licences.
    let intro: Value = http()
        .post(env.url("/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true);
    assert!(!intro.to_string().contains("verified_claims") && !intro.to_string().contains(COMPANY));
}

async fn a_type_the_app_is_not_allowed_is_never_released(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("1"),
    )
    .await;
    admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        business_licence(),
    )
    .await;
    let client = app_allowed(&env, &[DRIVING]).await;
    // Asking for the business licence by name in the claims parameter changes nothing.
    let claims = format!(
        r#"{{"userinfo":{{"verified_claims":{{"verification":{{"evidence":[{{"type":"electronic_record","record":{{"type":{{"value":"{BUSINESS}"}}}}}}]}},"claims":null}}}}}}"#
    );
    let (tokens, consent) = sign_in(&env, &client, "openid org", Some(&claims), Some(COMPANY)).await;
    assert!(!consent.contains("营业执照"), "{consent}");
    assert!(licences(&userinfo(&env, &tokens).await).is_empty());
}

async fn a_suspended_or_expired_licence_is_gone_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("11"),
    )
    .await;
    let mut old = driving_licence("12");
    old["valid_from"] = json!("2000-01-01");
    old["valid_until"] = json!("2010-01-01");
    admin(&env, &token, reqwest::Method::POST, "/admin/api/licences", old).await;
    let client = app_allowed(&env, &[DRIVING]).await;
    let (tokens, _) = sign_in(&env, &client, "openid licences", None, None).await;
    let released = licences(&userinfo(&env, &tokens).await);
    assert_eq!(released.len(), 1, "the expired one is not released");
    assert_eq!(released[0]["claims"]["licence_id"], licence_id(DRIVING, "11"));

    let path = format!("/admin/api/licences/{}/status", licence_id(DRIVING, "11"));
    let (s, _) = admin(
        &env,
        &token,
        reqwest::Method::POST,
        &path,
        json!({ "status": "02" }),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        licences(&userinfo(&env, &tokens).await).is_empty(),
        "suspended: gone from the next response"
    );
    // And from the next token's ID token too.
    let refreshed: Value = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap_or("")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = crate::common::wire::jwt_parts(refreshed["id_token"].as_str().unwrap_or_default()).1;
    assert!(licences(&id).is_empty());
}

async fn licences_go_in_the_id_token_only_when_asked_there(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("21"),
    )
    .await;
    let client = app_allowed(&env, &[DRIVING]).await;
    let (plain, _) = sign_in(&env, &client, "openid licences", None, None).await;
    let id = crate::common::wire::jwt_parts(plain["id_token"].as_str().unwrap()).1;
    assert!(licences(&id).is_empty());
    let claims = format!(
        r#"{{"id_token":{{"verified_claims":{{"verification":{{"evidence":[{{"type":"electronic_record","record":{{"type":{{"value":"{DRIVING}"}}}}}}]}},"claims":null}}}}}}"#
    );
    let (asked, _) = sign_in(&env, &client, "openid", Some(&claims), None).await;
    let id = crate::common::wire::jwt_parts(asked["id_token"].as_str().unwrap()).1;
    assert_eq!(licences(&id).len(), 1, "{id}");
}

async fn bad_records_are_refused_with_the_reason_and_imports_report_each_line(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    let post = |body: Value| admin(&env, &token, reqwest::Method::POST, "/admin/api/licences", body);
    let mut bad_check = driving_licence("31");
    let id = licence_id(DRIVING, "31");
    let wrong = if id.ends_with('A') {
        format!("{}B", &id[..id.len() - 1])
    } else {
        format!("{}A", &id[..id.len() - 1])
    };
    bad_check["id"] = json!(wrong);
    let (s, p) = post(bad_check.clone()).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["field"], "id");
    assert!(p["detail"].as_str().unwrap().contains("check character"), "{p}");
    let mut unknown_type = driving_licence("32");
    unknown_type["type_code"] = json!("91350100M000100Y43999");
    unknown_type["id"] = json!(licence_id("91350100M000100Y43999", "32"));
    assert_eq!(
        post(unknown_type.clone()).await.1["errors"][0]["field"],
        "type_code"
    );
    let mut bad_holder = driving_licence("33");
    bad_holder["holder"]["code"] = json!("110105194912310021");
    assert_eq!(
        post(bad_holder.clone()).await.1["errors"][0]["field"],
        "holder.code"
    );
    let mut nobody = driving_licence("34");
    nobody["holder"]["code"] = json!(crate::common::resident_id(77));
    let (s, p) = post(nobody.clone()).await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (422, Some("holder.code")),
        "{p}"
    );
    let mut backwards = driving_licence("35");
    backwards["valid_until"] = json!("2019-01-01");
    assert!(
        post(backwards.clone()).await.1["detail"]
            .as_str()
            .unwrap()
            .contains("after valid_from")
    );
    let mut extra = driving_licence("36");
    extra["colour"] = json!("red");
    assert_eq!(post(extra).await.0, 400, "unknown fields are refused");
    // Nothing was written by any of them.
    assert!(
        env.app
            .db
            .licence(&licence_id(DRIVING, "34"))
            .await
            .unwrap()
            .is_none()
    );

    let lines = [
        driving_licence("40"),
        bad_check,
        unknown_type,
        bad_holder,
        nobody,
        backwards,
    ]
    .iter()
    .map(|v| v.to_string())
    .chain(["not json".to_owned()])
    .collect::<Vec<_>>()
    .join("\n");
    let import = |atomic: bool| {
        let lines = lines.clone();
        let token = token.clone();
        let url = env.url(&format!("/admin/api/licences/import?atomic={atomic}"));
        async move {
            let res = http()
                .post(url)
                .bearer_auth(token)
                .body(lines)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s, report) = import(true).await;
    assert_eq!(s, 422);
    assert_eq!(report["imported"], 0, "atomic: none");
    assert!(
        env.app
            .db
            .licence(&licence_id(DRIVING, "40"))
            .await
            .unwrap()
            .is_none()
    );
    let (_, report) = import(false).await;
    assert_eq!(report["imported"], 1);
    let lines_reported: Vec<i64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines_reported, vec![2, 3, 4, 5, 6, 7]);
    assert!(
        env.app
            .db
            .licence(&licence_id(DRIVING, "40"))
            .await
            .unwrap()
            .is_some()
    );
    // Idempotent: importing again changes nothing.
    let (_, again) = import(false).await;
    assert_eq!(again["imported"], 1);
}

async fn the_admin_api_needs_the_licence_scope(backend: Backend) {
    let env = Env::start(backend).await;
    setup(&env).await;
    let (s, _) = admin(
        &env,
        "not-a-token",
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("50"),
    )
    .await;
    assert_eq!(s, 401);
    let other = env
        .client_with(NewClient {
            name: "other".into(),
            scopes: vec!["profile".into()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let t: Value = http()
        .post(env.url("/token"))
        .basic_auth(&other.id, Some(&other.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, _) = admin(
        &env,
        t["access_token"].as_str().unwrap(),
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("50"),
    )
    .await;
    assert_eq!(s, 403);
}

/// A stand-in e-licence library: answers, answers slowly, or is switched off.
async fn upstream(mode: Arc<AtomicU8>) -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/holders/{kind}/{code}/licences",
        get(
            move |axum::extract::Path((kind, code)): axum::extract::Path<(String, String)>| {
                let mode = mode.clone();
                async move {
                    match mode.load(Ordering::SeqCst) {
                        1 => tokio::time::sleep(Duration::from_secs(5)).await,
                        2 => return (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))),
                        _ => {}
                    }
                    // Mode 3: the library has stopped listing Alice's licence.
                    let list = if kind == "111" && code == ALICE_ID && mode.load(Ordering::SeqCst) != 3 {
                        vec![driving_licence("60")]
                    } else {
                        vec![]
                    };
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({ "licences": list })),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn the_upstream_library_is_used_when_up_and_never_blocks_when_slow_or_down(backend: Backend) {
    let mode = Arc::new(AtomicU8::new(1));
    let url = upstream(mode.clone()).await;
    let env = Env::start_with(backend, move |c| {
        c.licence_upstream_url = Some(url.clone());
        c.licence_upstream_timeout_ms = 500;
        c.licence_upstream_ttl = 0;
    })
    .await;
    setup(&env).await;
    let client = app_allowed(&env, &[DRIVING]).await;
    let (tokens, _) = sign_in(&env, &client, "openid licences", None, None).await;

    // Slow: the answer comes back without the licence, within the timeout, and the log says why.
    let started = std::time::Instant::now();
    let info = userinfo(&env, &tokens).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a slow library must not hold the response"
    );
    assert!(licences(&info).is_empty());
    assert!(crate::common::captured_logs().contains("e-licence library unavailable"));
    let metrics = http()
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("yunid_licence_upstream_total{outcome=\"timeout\"}"),
        "{metrics}"
    );
    // Down.
    mode.store(2, Ordering::SeqCst);
    assert!(licences(&userinfo(&env, &tokens).await).is_empty());
    // Up: the holder's licence arrives from the library.
    mode.store(0, Ordering::SeqCst);
    let released = licences(&userinfo(&env, &tokens).await);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["claims"]["licence_id"], licence_id(DRIVING, "60"));
}

/// A licence learnt from the library that a later successful answer no longer lists is withdrawn here
/// (status 03) and released no more; a failed fetch withdraws nothing, a pushed licence is left alone,
/// and a licence listed again is valid again.
async fn a_licence_the_library_no_longer_lists_is_withdrawn(backend: Backend) {
    let mode = Arc::new(AtomicU8::new(0));
    let url = upstream(mode.clone()).await;
    let env = Env::start_with(backend, move |c| {
        c.licence_upstream_url = Some(url.clone());
        c.licence_upstream_ttl = 0;
    })
    .await;
    let token = setup(&env).await;
    let (s, body) = admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("61"),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let client = app_allowed(&env, &[DRIVING]).await;
    let (tokens, _) = sign_in(&env, &client, "openid licences", None, None).await;
    let ids = |info: &Value| -> Vec<String> {
        licences(info)
            .iter()
            .map(|l| l["claims"]["licence_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (pulled, pushed) = (licence_id(DRIVING, "60"), licence_id(DRIVING, "61"));
    assert_eq!(
        ids(&userinfo(&env, &tokens).await),
        vec![pulled.clone(), pushed.clone()]
    );

    mode.store(3, Ordering::SeqCst);
    assert_eq!(
        ids(&userinfo(&env, &tokens).await),
        vec![pushed.clone()],
        "no longer listed: not released"
    );
    let status = |id: String| {
        let env = &env;
        async move { env.app.db.licence(&id).await.unwrap().unwrap().status.code() }
    };
    assert_eq!(status(pulled.clone()).await, "03", "withdrawn locally");
    assert_eq!(
        status(pushed.clone()).await,
        "01",
        "a pushed licence is not the pull's to withdraw"
    );

    // The library down: nothing changes, the withdrawn licence stays withdrawn.
    mode.store(2, Ordering::SeqCst);
    assert_eq!(ids(&userinfo(&env, &tokens).await), vec![pushed.clone()]);
    // Listed again: valid again.
    mode.store(0, Ordering::SeqCst);
    assert_eq!(ids(&userinfo(&env, &tokens).await), vec![pulled, pushed]);
}

async fn a_failing_upstream_library_never_writes_the_holders_id_number_to_the_log(backend: Backend) {
    // A library where nothing listens: the request fails with an error that names its URL, whose path
    // holds Alice's ID number.
    let url = crate::common::jwks_server::dead_url()
        .await
        .trim_end_matches("/jwks")
        .to_owned();
    let base = url.clone();
    let env = Env::start_with(backend, move |c| {
        c.licence_upstream_url = Some(base.clone());
        c.licence_upstream_ttl = 0;
    })
    .await;
    setup(&env).await;
    let client = app_allowed(&env, &[DRIVING]).await;
    let (tokens, _) = sign_in(&env, &client, "openid licences", None, None).await;
    assert!(licences(&userinfo(&env, &tokens).await).is_empty());

    let logs = crate::common::captured_logs();
    let failure = logs
        .lines()
        .find(|l| l.contains("e-licence library unavailable") && l.contains(&url))
        .unwrap_or_else(|| panic!("the failure of {url} is logged"));
    assert!(failure.contains("error="), "{failure}");
    assert!(
        !logs.contains(ALICE_ID),
        "an ID number reached the log: {failure}"
    );
}

on_both_backends!(
    a_licence_the_library_no_longer_lists_is_withdrawn,
    a_failing_upstream_library_never_writes_the_holders_id_number_to_the_log,
    a_citizens_and_a_companys_licences_are_released_after_consent,
    a_type_the_app_is_not_allowed_is_never_released,
    a_suspended_or_expired_licence_is_gone_at_once,
    licences_go_in_the_id_token_only_when_asked_there,
    bad_records_are_refused_with_the_reason_and_imports_report_each_line,
    the_admin_api_needs_the_licence_scope,
    the_upstream_library_is_used_when_up_and_never_blocks_when_slow_or_down,
);
