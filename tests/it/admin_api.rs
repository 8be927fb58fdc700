//! The admin API's editing side: persons registered and reset at the counter, organisations and
//! representations, app settings — each with its roles, field-level errors, `ETag`/`If-Match`, and the
//! audit trail — and a schemathesis run against the published OpenAPI document.

use openidconnect::{OAuth2TokenResponse, TokenResponse};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{admin_token, department_app};
use crate::common::rp::{Rp, http_client};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, http, resident_id};
use crate::identity::{COMPANY, org_client, sign_in_acting, userinfo};
use crate::on_both_backends;

struct Res {
    status: u16,
    body: Value,
    etag: Option<String>,
    headers: reqwest::header::HeaderMap,
}

async fn send(
    env: &Env,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Res {
    let mut req = http().request(method, env.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let etag = headers.get("etag").map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    Res {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        etag,
        headers,
    }
}

fn field_of(res: &Res) -> &str {
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(
        res.headers["content-type"], "application/problem+json",
        "RFC 9457"
    );
    res.body["errors"][0]["field"].as_str().unwrap_or("")
}

/// The status a password login gets (200: signed in, landing on the account page).
async fn login_status(env: &Env, browser: &Browser, username: &str, password: &str) -> u16 {
    let _ = env;
    let page = browser.get("/login").await;
    browser.login(&page, username, password).await.html().1.as_u16()
}

async fn audit(env: &Env, action: &str) -> Vec<Value> {
    let auditor = admin_token(env, "yunid:audit").await;
    let res = send(
        env,
        &auditor,
        Method::GET,
        &format!("/admin/api/audit?action={action}"),
        None,
        None,
    )
    .await;
    res.body["events"].as_array().unwrap().clone()
}

async fn a_counter_clerk_registers_a_person_then_resets_phone_and_password(backend: Backend) {
    let env = Env::start(backend).await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let auditor = admin_token(&env, "yunid:audit").await;
    let tax_admin = admin_token(&env, "yunid:dept:tax").await;
    let bob_id = resident_id(31);
    let new_bob =
        json!({ "id_number": bob_id, "name": "李四", "phone": "13900139031", "password": PASSWORD });
    let post = |token: &str, body: Value| {
        let token = token.to_owned();
        let env = &env;
        async move { send(env, &token, Method::POST, "/admin/api/persons", Some(body), None).await }
    };

    // Bad input is refused field by field, with the self-registration rules for passwords.
    let mut bad = new_bob.clone();
    bad["id_number"] = json!("110105199001010310");
    assert_eq!(field_of(&post(&clerk, bad).await), "id_number");
    let mut bad = new_bob.clone();
    bad["password"] = json!("11111111");
    assert_eq!(field_of(&post(&clerk, bad).await), "password");
    let mut bad = new_bob.clone();
    bad["password"] = json!("short");
    assert_eq!(field_of(&post(&clerk, bad).await), "password");
    let mut bad = new_bob.clone();
    bad["phone"] = json!("12345");
    assert_eq!(field_of(&post(&clerk, bad).await), "phone");
    let mut bad = new_bob.clone();
    bad["real_name_level"] = json!(3);
    assert_eq!(post(&clerk, bad).await.status, 400, "unknown fields are refused");
    assert_eq!(post(&auditor, new_bob.clone()).await.status, 403);
    assert_eq!(post(&tax_admin, new_bob.clone()).await.status, 403);

    let created = post(&clerk, new_bob.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.etag.as_deref(), Some("\"1\""));
    assert!(!created.body.to_string().contains(&bob_id));
    let bob = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post(&clerk, new_bob).await.status, 409);
    let found = send(
        &env,
        &clerk,
        Method::GET,
        "/admin/api/persons?name=李四",
        None,
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["persons"][0]["id"], bob);
    assert_eq!(
        send(
            &env,
            &auditor,
            Method::GET,
            &format!("/admin/api/persons/{bob}"),
            None,
            None
        )
        .await
        .status,
        403
    );

    // Bob signs in with the password he chose at the counter.
    let browser = Browser::new(&env.base);
    assert_eq!(login_status(&env, &browser, &bob_id, PASSWORD).await, 200);
    assert!(!browser.get("/account").await.is_login());

    // He lost his phone: the clerk records the new one. A name change is not the clerk's to make.
    let path = format!("/admin/api/persons/{bob}");
    let read = send(&env, &clerk, Method::GET, &path, None, None).await;
    let tag = read.etag.clone().unwrap();
    let patch = |token: &str, body: Value, tag: Option<&str>| {
        let (token, tag, path) = (token.to_owned(), tag.map(str::to_owned), path.clone());
        let env = &env;
        async move { send(env, &token, Method::PATCH, &path, Some(body), tag.as_deref()).await }
    };
    assert_eq!(
        patch(&clerk, json!({ "name": "李五" }), Some(&tag)).await.status,
        403
    );
    assert_eq!(
        patch(&clerk, json!({ "phone": "13900139032" }), None)
            .await
            .status,
        428,
        "an edit names the version it is based on"
    );
    assert_eq!(
        patch(&clerk, json!({ "phone": "13900139032" }), Some("\"0\""))
            .await
            .status,
        412
    );
    assert_eq!(
        field_of(&patch(&clerk, json!({ "phone": "1390013" }), Some(&tag)).await),
        "phone"
    );
    let changed = patch(&clerk, json!({ "phone": "13900139032" }), Some(&tag)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["phone_masked"], "139****9032");
    assert_eq!(changed.etag.as_deref(), Some("\"2\""));
    assert!(
        browser.get("/account").await.is_login(),
        "the session that an SMS code to the old phone could have opened is over"
    );

    // He forgot his password too: a temporary one, shown once, valid for a day.
    let reset = format!("/admin/api/persons/{bob}/reset-password");
    assert_eq!(
        send(&env, &auditor, Method::POST, &reset, None, None)
            .await
            .status,
        403
    );
    let browser = Browser::new(&env.base);
    assert_eq!(login_status(&env, &browser, &bob_id, PASSWORD).await, 200);
    let r = send(&env, &clerk, Method::POST, &reset, None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let temporary = r.body["temporary_password"].as_str().unwrap().to_owned();
    assert!(temporary.len() >= 16);
    assert!(browser.get("/account").await.is_login(), "old sessions end");
    let fresh = Browser::new(&env.base);
    assert_eq!(login_status(&env, &fresh, &bob_id, PASSWORD).await, 401);

    // The temporary password opens only a form to choose a new one.
    let page = fresh.get("/login").await;
    let asked = fresh.login(&page, &bob_id, &temporary).await;
    let (_, status, html) = asked.html();
    assert_eq!(status, 200);
    assert!(html.contains("name=\"new_password\""), "{html}");
    assert!(fresh.get("/account").await.is_login(), "not signed in yet");
    let choose = |new: &str| {
        let csrf = crate::common::browser::field(html, "csrf").unwrap();
        let form = [
            ("csrf", csrf),
            ("username", bob_id.clone()),
            ("password", temporary.clone()),
            ("new_password", new.to_owned()),
        ];
        let fresh = &fresh;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fresh.post("/login", &form).await
        }
    };
    assert_eq!(choose("12345678").await.html().1, 400, "the usual password rules");
    assert_eq!(choose(&temporary).await.html().1, 400);
    let chosen = choose("a new and private phrase").await;
    assert_eq!(chosen.html().1, 200);
    assert!(!fresh.get("/account").await.is_login(), "signed in");
    let again = Browser::new(&env.base);
    assert_eq!(login_status(&env, &again, &bob_id, &temporary).await, 401);
    assert_eq!(
        login_status(&env, &again, &bob_id, "a new and private phrase").await,
        200
    );

    // An unused temporary password expires after a day.
    let r = send(&env, &clerk, Method::POST, &reset, None, None).await;
    let temporary = r.body["temporary_password"].as_str().unwrap().to_owned();
    env.app.clock.advance(24 * 3600 + 1);
    let later = Browser::new(&env.base);
    assert_eq!(
        login_status(&env, &later, &bob_id, &temporary).await,
        401,
        "a temporary password expires"
    );

    // Everything is in the trail, the refused name change too, and no password anywhere.
    let updates = audit(&env, "person.update").await;
    assert!(updates.iter().any(|e| e["outcome"] == "forbidden"));
    assert!(updates.iter().any(|e| e["outcome"] == "success"));
    let creates = audit(&env, "person.create").await;
    let outcomes: Vec<&str> = creates.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["forbidden", "forbidden", "success"]);
    let resets = audit(&env, "person.reset_password").await;
    assert!(resets.iter().any(|e| e["outcome"] == "success"));
    assert!(!resets.iter().any(|e| e.to_string().contains(&temporary)));
}

async fn app_settings_are_edited_only_by_their_department(backend: Backend) {
    let env = Env::start(backend).await;
    let tax_admin = admin_token(&env, "yunid:dept:tax").await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let auditor = admin_token(&env, "yunid:audit").await;
    let tax_app = department_app(&env, "tax").await;
    let health_app = department_app(&env, "health").await;
    let own = format!("/admin/api/clients/{}", tax_app.id);
    let other = format!("/admin/api/clients/{}", health_app.id);

    let read = send(&env, &tax_admin, Method::GET, &own, None, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["subject_type"], "pairwise");
    assert!(read.body.get("secret_hash").is_none());
    let tag = read.etag.clone().unwrap();
    let listed = send(&env, &tax_admin, Method::GET, "/admin/api/clients", None, None).await;
    let ids: Vec<&str> = listed.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [tax_app.id.as_str()], "a department sees its own apps");

    let patch = |token: &str, path: &str, body: Value, tag: Option<&str>| {
        let (token, path, tag) = (token.to_owned(), path.to_owned(), tag.map(str::to_owned));
        let env = &env;
        async move { send(env, &token, Method::PATCH, &path, Some(body), tag.as_deref()).await }
    };
    // Another department's app: refused, and the attempt is audited.
    let health_tag = send(&env, &auditor, Method::GET, &other, None, None)
        .await
        .etag
        .unwrap();
    assert_eq!(
        patch(&tax_admin, &other, json!({ "min_acr": 2 }), Some(&health_tag))
            .await
            .status,
        403
    );
    assert!(
        audit(&env, "client.update")
            .await
            .iter()
            .any(|e| e["outcome"] == "forbidden"
                && e["client_id"] == health_app.id
                && e["actor"].as_str().unwrap().starts_with("client:"))
    );
    assert_eq!(
        patch(&clerk, &own, json!({ "min_acr": 2 }), Some(&tag))
            .await
            .status,
        403
    );
    assert_eq!(
        patch(&auditor, &own, json!({ "min_acr": 2 }), Some(&tag))
            .await
            .status,
        403,
        "auditors only read"
    );

    // Field errors.
    for (body, field) in [
        (json!({ "min_acr": 5 }), "min_acr"),
        (
            json!({ "redirect_uris": ["ftp://tax.example.gov.cn/cb"] }),
            "redirect_uris",
        ),
        (json!({ "redirect_uris": [] }), "redirect_uris"),
        (json!({ "scopes": ["openid", "yunid:admin"] }), "scopes"),
        (json!({ "subject_type": "random" }), "subject_type"),
        (json!({ "token_endpoint_auth_method": "private_key_jwt" }), "jwks"),
        (
            json!({ "backchannel_logout_uri": "not a uri" }),
            "backchannel_logout_uri",
        ),
    ] {
        assert_eq!(
            field_of(&patch(&tax_admin, &own, body.clone(), Some(&tag)).await),
            field,
            "{body}"
        );
    }
    assert_eq!(
        patch(&tax_admin, &own, json!({ "secret_hash": "x" }), Some(&tag))
            .await
            .status,
        400
    );

    // The edit itself, seen by the token endpoint: an app disabled through PATCH gets no tokens.
    let edited = patch(
        &tax_admin,
        &own,
        // (on the app's own host: another host would be a super admin's decision)
        json!({ "redirect_uris": ["http://127.0.0.1:9/cb2"], "min_acr": 2,
                "backchannel_logout_uri": "https://tax.example.gov.cn/bc", "disabled": true }),
        Some(&tag),
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["min_acr"], 2);
    assert_eq!(edited.body["sector"], read.body["sector"], "subjects stay stable");
    assert_ne!(edited.etag, Some(tag));
    let token = http()
        .post(env.url("/token"))
        .basic_auth(&tax_app.id, Some(&tax_app.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", "https://tax.example.gov.cn/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status().as_u16(), 401, "a disabled app cannot authenticate");
    assert!(
        audit(&env, "client.update")
            .await
            .iter()
            .any(|e| e["outcome"] == "success")
    );

    // Keys: public ones only. Licence types: a super admin's decision, from the catalogue.
    let tag = edited.etag.unwrap();
    let public = json!({ "kty": "EC", "crv": "P-256", "kid": "1",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM" });
    let mut private = public.clone();
    private["d"] = json!("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE");
    assert_eq!(
        field_of(
            &patch(
                &tax_admin,
                &own,
                json!({ "jwks": { "keys": [private] } }),
                Some(&tag)
            )
            .await
        ),
        "jwks"
    );
    let keyed = patch(
        &tax_admin,
        &own,
        json!({ "jwks": { "keys": [public] }, "token_endpoint_auth_method": "private_key_jwt" }),
        Some(&tag),
    )
    .await;
    assert_eq!(keyed.status, 200, "{}", keyed.body);
    assert_eq!(keyed.body["token_endpoint_auth_method"], "private_key_jwt");
    let tag = keyed.etag.unwrap();
    let library = admin_token(&env, "yunid:licences").await;
    let code = "11100000000013338W032";
    let put = send(
        &env,
        &library,
        Method::PUT,
        &format!("/admin/api/licence-types/{code}"),
        Some(json!({ "name": "机动车驾驶证", "authority": "公安部", "holder_kind": "person" })),
        None,
    )
    .await;
    assert!(put.status < 300, "{}", put.body);
    assert_eq!(
        patch(&tax_admin, &own, json!({ "licence_types": [code] }), Some(&tag))
            .await
            .status,
        403
    );
    let super_admin = admin_token(&env, "yunid:admin").await;
    assert_eq!(
        field_of(
            &patch(
                &super_admin,
                &own,
                json!({ "licence_types": ["nope"] }),
                Some(&tag)
            )
            .await
        ),
        "licence_types"
    );
    let granted = patch(&super_admin, &own, json!({ "licence_types": [code] }), Some(&tag)).await;
    assert_eq!(granted.body["licence_types"], json!([code]), "{}", granted.body);
    let tag = granted.etag.unwrap();
    let cleared = patch(&super_admin, &own, json!({ "licence_types": [] }), Some(&tag)).await;
    assert_eq!(cleared.body["licence_types"], json!([]));
}

async fn two_edits_from_the_same_version_one_wins_and_nothing_is_lost(backend: Backend) {
    let env = Env::start(backend).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let app = department_app(&env, "tax").await;
    let path = format!("/admin/api/clients/{}", app.id);
    let tag = send(&env, &super_admin, Method::GET, &path, None, None)
        .await
        .etag
        .unwrap();
    let edit = |body: Value| send(&env, &super_admin, Method::PATCH, &path, Some(body), Some(&tag));
    let (a, b) = tokio::join!(edit(json!({ "name": "税务 A" })), edit(json!({ "min_acr": 2 })));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "{} / {}", a.body, b.body);
    let loser = if a.status == 412 { &a } else { &b };
    assert_eq!(loser.headers["content-type"], "application/problem+json");

    // The loser reads again and reapplies its edit: both edits are there.
    let now = send(&env, &super_admin, Method::GET, &path, None, None).await;
    assert_eq!(now.etag.as_deref(), Some("\"2\""));
    let retry = if a.status == 412 {
        json!({ "name": "税务 A" })
    } else {
        json!({ "min_acr": 2 })
    };
    let again = send(
        &env,
        &super_admin,
        Method::PATCH,
        &path,
        Some(retry),
        now.etag.as_deref(),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["name"], "税务 A");
    assert_eq!(again.body["min_acr"], 2);
    assert_eq!(again.etag.as_deref(), Some("\"3\""));

    // The same holds for organisations; a weak or wildcard tag is treated per RFC 9110.
    let org = send(
        &env,
        &super_admin,
        Method::POST,
        "/admin/api/organisations",
        Some(json!({ "credit_code": COMPANY, "name": "福州示例科技有限公司", "org_type": "enterprise" })),
        None,
    )
    .await;
    assert_eq!(org.status, 201, "{}", org.body);
    let org_path = format!("/admin/api/organisations/{}", org.body["id"].as_str().unwrap());
    let rename = |name: &str, tag: &str| {
        let (name, tag, org_path) = (name.to_owned(), tag.to_owned(), org_path.clone());
        let (env, token) = (&env, &super_admin);
        async move {
            send(
                env,
                token,
                Method::PATCH,
                &org_path,
                Some(json!({ "name": name })),
                Some(&tag),
            )
            .await
        }
    };
    assert_eq!(rename("甲", "W/\"1\"").await.status, 412, "weak tags never match");
    assert_eq!(rename("甲", "\"1\"").await.status, 200);
    assert_eq!(rename("乙", "\"1\"").await.status, 412, "stale");
    let last = rename("丙", "*").await;
    assert_eq!((last.status, last.body["name"].as_str()), (200, Some("丙")));
}

async fn representations_are_managed_and_a_revocation_reaches_apps_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let bob = env.person(&resident_id(41), "13900139041", PASSWORD).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let auditor = admin_token(&env, "yunid:audit").await;
    let new_org = json!({ "credit_code": COMPANY, "name": "福州示例科技有限公司", "org_type": "enterprise" });
    let orgs = "/admin/api/organisations";

    // Organisations: credit codes are checked; a pilot code passes once allow-listed.
    assert_eq!(
        send(&env, &clerk, Method::POST, orgs, Some(new_org.clone()), None)
            .await
            .status,
        403
    );
    let pilot = "91350100M000100Y44";
    let mut bad = new_org.clone();
    bad["credit_code"] = json!(pilot);
    assert_eq!(
        field_of(&send(&env, &super_admin, Method::POST, orgs, Some(bad.clone()), None).await),
        "credit_code"
    );
    let allowed = send(
        &env,
        &super_admin,
        Method::POST,
        "/admin/api/credit-code-allowlist",
        Some(json!({ "credit_code": pilot })),
        None,
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    bad["name"] = json!("试点单位");
    assert_eq!(
        send(&env, &super_admin, Method::POST, orgs, Some(bad), None)
            .await
            .status,
        201
    );
    let org = send(
        &env,
        &super_admin,
        Method::POST,
        orgs,
        Some(new_org.clone()),
        None,
    )
    .await;
    assert_eq!(org.status, 201, "{}", org.body);
    assert_eq!(
        send(&env, &super_admin, Method::POST, orgs, Some(new_org), None)
            .await
            .status,
        409
    );
    let org_id = org.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            &env,
            &auditor,
            Method::POST,
            orgs,
            Some(json!({ "credit_code": COMPANY, "name": "x" })),
            None
        )
        .await
        .status,
        403,
        "auditors only read"
    );
    let listed = send(&env, &auditor, Method::GET, orgs, None, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["organisations"].as_array().unwrap().len(), 2);

    // Representations: the registry's record by a super admin; an appointment at the counter.
    let reps = format!("/admin/api/organisations/{org_id}/representations");
    let post = |token: &str, body: Value| {
        let (token, reps) = (token.to_owned(), reps.clone());
        let env = &env;
        async move { send(env, &token, Method::POST, &reps, Some(body), None).await }
    };
    assert_eq!(
        field_of(
            &post(
                &super_admin,
                json!({ "person_id": alice, "role": "boss", "matters": "all" })
            )
            .await
        ),
        "role"
    );
    assert_eq!(
        field_of(
            &post(
                &super_admin,
                json!({ "person_id": alice, "role": "manager", "matters": 7 })
            )
            .await
        ),
        "matters"
    );
    assert_eq!(
        post(
            &clerk,
            json!({ "person_id": alice, "role": "manager", "matters": "all" })
        )
        .await
        .status,
        403,
        "only the registry's record makes a manager"
    );
    let manager = post(
        &super_admin,
        json!({ "person_id": alice, "role": "manager", "matters": ["M1", "M2"] }),
    )
    .await;
    assert_eq!(manager.status, 201, "{}", manager.body);
    let rep_id = manager.body["id"].as_str().unwrap().to_owned();
    let appoint = |matters: Value, by: &str| json!({ "person_id": bob, "role": "agent", "matters": matters, "appointed_by": by });
    assert_eq!(
        field_of(&post(&clerk, appoint(json!(["M3"]), &alice)).await),
        "appointed_by",
        "an agent gets no more matters than the appointer holds"
    );
    let agent = post(&clerk, appoint(json!(["M1"]), &alice)).await;
    assert_eq!(agent.status, 201, "{}", agent.body);
    assert_eq!(agent.body["granted_by"], format!("person:{alice}"));
    assert_eq!(
        field_of(&post(&clerk, appoint(json!(["M1"]), &bob)).await),
        "appointed_by",
        "agents appoint no one"
    );
    let all = send(&env, &auditor, Method::GET, &reps, None, None).await;
    assert_eq!(all.body["representations"].as_array().unwrap().len(), 2);

    // Edit the manager's matters (If-Match), then Alice signs in to an app acting for the company.
    let rep_path = format!("/admin/api/representations/{rep_id}");
    let read = send(&env, &auditor, Method::GET, &rep_path, None, None).await;
    let tag = read.etag.clone().unwrap();
    assert_eq!(
        send(
            &env,
            &clerk,
            Method::PATCH,
            &rep_path,
            Some(json!({ "matters": "all" })),
            Some(&tag)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        field_of(
            &send(
                &env,
                &super_admin,
                Method::PATCH,
                &rep_path,
                Some(json!({ "valid_until": read.body["valid_from"] })),
                Some(&tag)
            )
            .await
        ),
        "valid_until"
    );
    let edited = send(
        &env,
        &super_admin,
        Method::PATCH,
        &rep_path,
        Some(json!({ "matters": "all" })),
        Some(&tag),
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["matters"], "all");
    let client = org_client(&env, "127.0.0.1", &[]).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "offline_access"], Some(COMPANY)).await;
    let refreshed = rp
        .client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(refreshed.id_token().is_some() || refreshed.access_token().secret().len() > 10);
    assert_eq!(userinfo(&env, refreshed.access_token().secret()).await.0, 200);
    assert!(crate::common::wire::is_active(&env.base, &client, refreshed.access_token().secret()).await);

    // Revocation needs the current version, and then the app is cut off at once.
    assert_eq!(
        send(&env, &super_admin, Method::DELETE, &rep_path, None, None)
            .await
            .status,
        428
    );
    assert_eq!(
        send(&env, &super_admin, Method::DELETE, &rep_path, None, Some(&tag))
            .await
            .status,
        412,
        "the tag from before the edit is stale"
    );
    let revoked = send(
        &env,
        &clerk,
        Method::DELETE,
        &rep_path,
        None,
        edited.etag.as_deref(),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["current"], false);
    assert_eq!(userinfo(&env, refreshed.access_token().secret()).await.0, 401);
    assert!(
        !crate::common::wire::is_active(&env.base, &client, refreshed.access_token().secret()).await,
        "introspection says so too"
    );
    let err = rp
        .client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("refresh after revocation");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
    let trail = audit(&env, "representation.revoke").await;
    assert!(
        trail
            .iter()
            .any(|e| e["outcome"] == "success" && e["subject"] == rep_id)
    );
}

/// schemathesis (an independent property-based API tester) generates requests from the published
/// OpenAPI document, valid and invalid, with a super admin's token: none may get a 5xx.
async fn schemathesis_finds_no_server_error(backend: Backend) {
    let env = Env::start(backend).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    // A deeper run: YUNID_SCHEMATHESIS_EXAMPLES=200 YUNID_SCHEMATHESIS_SEED=… cargo test … schemathesis
    let examples = std::env::var("YUNID_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "8".into());
    let seed = std::env::var("YUNID_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261127".into());
    let checks = std::env::var("YUNID_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| {
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
            .into()
    });
    let scratch = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("schemathesis")
        .args(["run", &env.url("/admin/api/openapi.json")])
        .args(["--checks", &checks])
        .args(["--header", &format!("Authorization: Bearer {super_admin}")])
        .args(["--max-examples", &examples, "--seed", &seed, "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--exclude-path", "/admin/api/keys/rotate"])
        .args(["--request-timeout", "20", "--no-shrink"])
        .env("NO_COLOR", "1")
        // Its example cache and reports go there, not into the checkout.
        .current_dir(&scratch)
        .output()
        .await
        .expect("schemathesis runs (installed by scripts/test: tests/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("Server error"), "{stdout}");
}

on_both_backends!(
    a_counter_clerk_registers_a_person_then_resets_phone_and_password,
    app_settings_are_edited_only_by_their_department,
    two_edits_from_the_same_version_one_wins_and_nothing_is_lost,
    representations_are_managed_and_a_revocation_reaches_apps_at_once,
    schemathesis_finds_no_server_error,
    malformed_input_is_a_problem_never_a_server_error,
);

/// Input the API cannot take is a client error in RFC 9457 form, never a 500: NUL characters (which
/// PostgreSQL cannot store in text), malformed query strings, wrong methods.
async fn malformed_input_is_a_problem_never_a_server_error(backend: Backend) {
    let env = Env::start(backend).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let app = department_app(&env, "tax").await;
    let tag = send(
        &env,
        &super_admin,
        Method::GET,
        &format!("/admin/api/clients/{}", app.id),
        None,
        None,
    )
    .await
    .etag;
    let cases = [
        (
            Method::GET,
            "/admin/api/persons?name=a%00b".to_owned(),
            None,
            None,
        ),
        (Method::GET, "/admin/api/persons/a%00b".to_owned(), None, None),
        (
            Method::POST,
            "/admin/api/persons".to_owned(),
            Some(json!({ "id_number": ALICE_ID, "name": "张\u{0}三" })),
            None,
        ),
        (
            Method::POST,
            "/admin/api/organisations".to_owned(),
            Some(json!({ "credit_code": COMPANY, "name": "示例\u{0}", "org_type": "x" })),
            None,
        ),
        (
            Method::PATCH,
            format!("/admin/api/clients/{}", app.id),
            Some(json!({ "name": "税务\u{0}", "matters": ["\u{0}"] })),
            tag.clone(),
        ),
        (
            Method::GET,
            "/admin/api/audit?action=a%00b".to_owned(),
            None,
            None,
        ),
    ];
    // A malformed query string and a method the path does not have: problem details too.
    for (method, path) in [
        (Method::GET, "/admin/api/organisations?limit=many"),
        (Method::GET, "/admin/api/organisations?colour=red"),
        (Method::PUT, "/admin/api/organisations"),
    ] {
        let res = send(&env, &super_admin, method.clone(), path, None, None).await;
        assert!(
            (400..500).contains(&res.status),
            "{method} {path}: {}",
            res.status
        );
        assert_eq!(res.headers["content-type"], "application/problem+json", "{path}");
        assert_eq!(res.body["status"], res.status, "{}", res.body);
    }
    for (method, path, body, tag) in cases {
        let res = send(&env, &super_admin, method.clone(), &path, body, tag.as_deref()).await;
        assert!(
            (400..500).contains(&res.status),
            "{method} {path}: {} {}",
            res.status,
            res.body
        );
    }
}
