//! Who may call the admin API with which token: an admin's token from any app but the console is
//! refused; a console token stops working when the console is disabled, the admin locked or their role
//! taken away; an automation token when its client is disabled or loses its admin scope. Licence
//! administration: only a super admin decides which apps receive a licence type, and every licence
//! change is in the audit trail, as is every change made from the command line. The console's audit
//! page shows the newest events first.

use std::collections::{BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;
use yunid::identity::licence_id::mod37_36;
use yunid::services::registry::NewClient;
use yunid::store::persons::PersonStatus;

use crate::common::browser::Page;
use crate::common::console::{self, is_step_up};
use crate::common::sms::SmsInbox;
use crate::common::wire::{self, jwt_parts};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce};
use crate::on_both_backends;

const DRIVING: &str = "11100000000013338W032";
const ISSUER: &str = "11220000013544541J";

use crate::admin::call;

/// What the admin API answers this token on a call every admin role may make (its audit listing is
/// open to super admins and auditors).
async fn audit_status(env: &Env, token: &str) -> (u16, Value) {
    call(env, token, Method::GET, "/admin/api/audit?limit=1", None).await
}

/// An automation client holding `scope`, and a client-credentials token for it.
async fn automation(env: &Env, scope: &str) -> (TestClient, String) {
    let client = env
        .client_with(NewClient {
            name: format!("automation {scope}"),
            scopes: vec![scope.to_owned()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let (status, res) = wire::token(
        &env.base,
        &client,
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, 200, "{res}");
    let token = res["access_token"].as_str().unwrap().to_owned();
    (client, token)
}

/// Alice, super admin.
async fn alice_super_admin(env: &Env) -> String {
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&alice, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();
    alice
}

/// Alice goes through `/authorize` for `client_id` asking for two factors (password, then the SMS code
/// of the step-up, consenting if asked); returns the code the provider sends back and the PKCE verifier.
async fn two_factor_code(
    env: &Env,
    inbox: &SmsInbox,
    client_id: &str,
    redirect_uri: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut url = Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", "state-1")
        .append_pair("nonce", "nonce-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("acr_values", "2");
    let browser = Browser::new(&env.base);
    let mut page = browser.get(url.as_str()).await;
    for _ in 0..4 {
        page = if page.is_login() {
            browser.login(&page, ALICE_ID, PASSWORD).await
        } else if is_step_up(&page) {
            console::step_up(&browser, inbox, &page).await
        } else if page.is_consent() {
            browser.consent(&page, true).await
        } else {
            break;
        };
    }
    // An app's redirect URI is elsewhere; the console's is on the provider, where the browser followed it
    // (and the console, which did not start this sign-in, refused it without redeeming the code).
    let back = match &page {
        Page::Left(u) => u.clone(),
        Page::Html { url, .. } if url.contains("/admin/callback?") => Url::parse(url).unwrap(),
        other => panic!("not sent back with a code: {other:?}"),
    };
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("state-1"), "{back}");
    (q["code"].clone(), verifier)
}

/// Redeems a code at the token endpoint; returns the access token.
async fn redeem(env: &Env, client: &TestClient, code: &str, verifier: &str) -> String {
    let (status, res) = wire::token(
        &env.base,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{res}");
    res["access_token"].as_str().unwrap().to_owned()
}

/// An access token the console itself obtains for Alice (its client, its redirect URI, its secret).
pub(crate) async fn console_token(env: &Env, inbox: &SmsInbox) -> String {
    let console = TestClient {
        id: yunid::services::console::CLIENT_ID.into(),
        secret: yunid::services::console::secret(&env.app.secrets),
        redirect_uri: env.url("/admin/callback"),
    };
    let (code, verifier) = two_factor_code(env, inbox, &console.id, &console.redirect_uri).await;
    let token = redeem(env, &console, &code, &verifier).await;
    assert_eq!(jwt_parts(&token).1["acr"], "2");
    token
}

/// Runs the `yunid` command line against the test's database as the operating-system user `ops-tester`.
fn cli(env: &Env, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yunid"))
        .args(args)
        .env("YUNID_DATABASE_URL", &env.db.url)
        .env("YUNID_KEYS_DIR", env.keys.path())
        .env("USER", "ops-tester")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "yunid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn an_admins_two_factor_token_from_an_ordinary_app_is_refused_a_console_token_works(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    alice_super_admin(&env).await;
    // Any department app can send her through acr_values=2: its token says acr 2, and she is a super admin.
    let app = env.client("http://127.0.0.1:9/cb").await;
    let (code, verifier) = two_factor_code(&env, &inbox, &app.id, &app.redirect_uri).await;
    let app_token = redeem(&env, &app, &code, &verifier).await;
    assert_eq!(jwt_parts(&app_token).1["acr"], "2");
    let (status, problem) = audit_status(&env, &app_token).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not issued for the admin API"),
        "{problem}"
    );
    let res = http()
        .post(env.url("/admin/api/keys/rotate"))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "nor can it change anything");
    // RFC 6750 §3.1: the app is told its token is not for this resource.
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The console's own token for the same sign-in works.
    let token = console_token(&env, &inbox).await;
    assert_eq!(audit_status(&env, &token).await.0, 200);
    assert_eq!(
        call(&env, &token, Method::GET, "/admin/api/keys", None).await.0,
        200
    );
}

async fn a_console_token_is_refused_while_the_console_is_disabled_or_the_admin_locked(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    let alice = alice_super_admin(&env).await;
    let token = console_token(&env, &inbox).await;
    assert_eq!(audit_status(&env, &token).await.0, 200);

    // The console's client disabled (behind yunid's back: the API refuses to): its tokens are refused.
    env.app
        .db
        .set_client_disabled("yunid-console", true)
        .await
        .unwrap();
    let (status, problem) = audit_status(&env, &token).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("disabled"),
        "{problem}"
    );
    env.app
        .db
        .set_client_disabled("yunid-console", false)
        .await
        .unwrap();
    assert_eq!(audit_status(&env, &token).await.0, 200);

    // Alice locked (her grants not revoked, as when the status is changed without ending her sessions).
    let now = env.app.now();
    env.app
        .db
        .set_person_status(&alice, PersonStatus::Locked, now)
        .await
        .unwrap();
    let (status, problem) = audit_status(&env, &token).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("not active"),
        "{problem}"
    );
    env.app
        .db
        .set_person_status(&alice, PersonStatus::Disabled, now)
        .await
        .unwrap();
    assert_eq!(audit_status(&env, &token).await.0, 401);
    env.app
        .db
        .set_person_status(&alice, PersonStatus::Active, now)
        .await
        .unwrap();
    assert_eq!(audit_status(&env, &token).await.0, 200);
}

async fn a_console_token_stops_working_once_the_role_is_revoked(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    let alice = alice_super_admin(&env).await;
    let token = console_token(&env, &inbox).await;
    assert_eq!(audit_status(&env, &token).await.0, 200);
    cli(
        &env,
        &[
            "admin",
            "revoke",
            "--id-number",
            ALICE_ID,
            "--role",
            "super_admin",
        ],
    );
    let (status, problem) = audit_status(&env, &token).await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no administrative role")
    );
    let events = env
        .app
        .db
        .audit_events(Some(("action", "admin.revoke")), 0, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].actor.as_str(), events[0].subject.as_str()),
        ("cli:ops-tester", alice.as_str())
    );
}

async fn an_automation_token_stops_working_when_its_client_is_disabled_or_loses_the_scope(backend: Backend) {
    let env = Env::start(backend).await;
    let (_, super_admin) = automation(&env, "yunid:admin").await;
    let (first, first_token) = automation(&env, "yunid:audit").await;
    let (second, second_token) = automation(&env, "yunid:audit").await;
    assert_eq!(audit_status(&env, &first_token).await.0, 200);
    assert_eq!(audit_status(&env, &second_token).await.0, 200);

    // The first loses its admin scope: its token carries a scope the client no longer has.
    let res = http()
        .patch(env.url(&format!("/admin/api/clients/{}", first.id)))
        .bearer_auth(&super_admin)
        .header("if-match", "*")
        .json(&json!({ "scopes": ["profile"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (status, problem) = audit_status(&env, &first_token).await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no administrative role")
    );

    // The second is disabled: its token is refused at once.
    let path = format!("/admin/api/clients/{}/disable", second.id);
    assert_eq!(call(&env, &super_admin, Method::POST, &path, None).await.0, 200);
    let (status, problem) = audit_status(&env, &second_token).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("disabled"),
        "{problem}"
    );
}

fn driving_licence(serial: &str) -> Value {
    let check = mod37_36(&format!("{DRIVING}{ISSUER}{serial}001")).unwrap();
    json!({
        "id": format!("1.2.156.3005.2.{DRIVING}.{ISSUER}.{serial}.001.{check}"),
        "type_code": DRIVING,
        "number": format!("DL{serial}"),
        "issuer": { "name": "北京市公安局公安交通管理局", "code": ISSUER },
        "holder": { "name": "张三", "code": ALICE_ID, "code_type": "111" },
        "issued_on": "2020-01-01",
        "valid_from": "2020-01-01",
        "valid_until": "2099-12-31",
        "area_code": "110000",
        "status": "01",
        "surface": { "vehicle_class": "C1" }
    })
}

async fn only_a_super_admin_lets_an_app_receive_a_licence_type_and_every_licence_change_is_audited(
    backend: Backend,
) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (library, library_token) = automation(&env, "yunid:licences").await;
    let (boss, super_admin) = automation(&env, "yunid:admin").await;
    let (_, auditor) = automation(&env, "yunid:audit").await;
    let app = env.client("http://127.0.0.1:9/cb").await;
    let put_type = format!("/admin/api/licence-types/{DRIVING}");
    let ty = json!({ "name": "机动车驾驶证", "authority": "公安部", "holder_kind": "person" });
    assert_eq!(
        call(&env, &library_token, Method::PUT, &put_type, Some(ty))
            .await
            .0,
        200
    );

    // Nor may it widen what an existing type releases (or whose licences it holds); a super admin may.
    let wider = json!({ "name": "机动车驾驶证", "authority": "公安部", "holder_kind": "person",
        "released_fields": ["准驾车型"] });
    assert_eq!(
        call(&env, &library_token, Method::PUT, &put_type, Some(wider.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&env, &super_admin, Method::PUT, &put_type, Some(wider))
            .await
            .0,
        200
    );

    // The library may not decide which apps receive its licences.
    let allow = format!("/admin/api/clients/{}/licence-types", app.id);
    let (status, problem) = call(&env, &library_token, Method::PUT, &allow, Some(json!([DRIVING]))).await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        env.app
            .db
            .allowed_licence_types(&app.id)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, body) = call(&env, &super_admin, Method::PUT, &allow, Some(json!([DRIVING]))).await;
    assert_eq!(status, 200, "{body}");
    let allowed = env.app.db.allowed_licence_types(&app.id).await.unwrap();
    assert_eq!(allowed.len(), 1);

    // A push, a status change and an import.
    let pushed = driving_licence("2430599");
    let id = pushed["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &env,
        &library_token,
        Method::POST,
        "/admin/api/licences",
        Some(pushed),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let status_path = format!("/admin/api/licences/{id}/status");
    let (status, body) = call(
        &env,
        &library_token,
        Method::POST,
        &status_path,
        Some(json!({ "status": "02" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let imported = driving_licence("2430600");
    let imported_id = imported["id"].as_str().unwrap().to_owned();
    let res = http()
        .post(env.url("/admin/api/licences/import"))
        .bearer_auth(&library_token)
        .body(format!("{imported}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The auditor reads all of it in the trail, with who did it; never the holder's ID number.
    let events = |action: &'static str| {
        let (env, auditor) = (&env, &auditor);
        async move {
            let (status, body) = call(
                env,
                auditor,
                Method::GET,
                &format!("/admin/api/audit?action={action}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["events"].as_array().unwrap().clone()
        }
    };
    let lib = format!("client:{}", library.id);
    let the = |e: &Value, k: &str| e[k].as_str().unwrap().to_owned();
    let types = events("licence_type.put").await;
    let put_by = |actor: &str, outcome: &str| {
        types
            .iter()
            .filter(|e| {
                the(e, "actor") == actor && the(e, "outcome") == outcome && the(e, "subject") == DRIVING
            })
            .count()
    };
    // The library's definition, its refused widening, and the super admin's widening.
    assert_eq!(types.len(), 3, "{types:?}");
    assert_eq!(put_by(&lib, "success"), 1);
    assert_eq!(put_by(&lib, "forbidden"), 1);
    assert_eq!(put_by(&format!("client:{}", boss.id), "success"), 1);
    let allows = events("client.licence_types.allow").await;
    let seen: Vec<(String, String, String)> = allows
        .iter()
        .map(|e| (the(e, "actor"), the(e, "subject"), the(e, "outcome")))
        .collect();
    assert_eq!(
        seen,
        [
            (lib.clone(), app.id.clone(), "forbidden".into()),
            (format!("client:{}", boss.id), app.id.clone(), "success".into())
        ]
    );
    assert!(the(&allows[1], "detail").contains(DRIVING));
    let pushes = events("licence.push").await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        (the(&pushes[0], "actor"), the(&pushes[0], "subject")),
        (lib.clone(), id.clone())
    );
    let changes = events("licence.status").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(the(&changes[0], "subject"), id);
    let detail: Value = serde_json::from_str(&the(&changes[0], "detail")).unwrap();
    assert_eq!(
        (detail["before"].as_str(), detail["status"].as_str()),
        (Some("01"), Some("02"))
    );
    let imports = events("licence.import").await;
    assert_eq!(imports.len(), 1);
    assert_eq!(the(&imports[0], "actor"), lib);
    assert!(the(&imports[0], "detail").contains(&imported_id));
    let everything = env.app.db.all_audit_events().await.unwrap();
    assert!(
        !serde_json::to_string(&everything).unwrap().contains(ALICE_ID),
        "no holder ID number in the trail"
    );
}

async fn every_change_made_from_the_command_line_is_audited_with_the_operator(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let person_number = crate::common::resident_id(7);
    let out = cli(
        &env,
        &[
            "client",
            "add",
            "--name",
            "运维应用",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let client_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .unwrap()
        .trim()
        .to_owned();
    cli(
        &env,
        &[
            "person",
            "add",
            "--id-number",
            &person_number,
            "--name",
            "李四",
            "--phone",
            "13800138007",
        ],
    );
    cli(
        &env,
        &[
            "licence",
            "type",
            "--code",
            DRIVING,
            "--name",
            "驾驶证",
            "--authority",
            "公安部",
            "--holder",
            "person",
        ],
    );
    cli(
        &env,
        &["licence", "allow", "--client", &client_id, "--type", DRIVING],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{}\n", driving_licence("2430599"))).unwrap();
    cli(&env, &["licence", "import", file.path().to_str().unwrap()]);
    cli(
        &env,
        &[
            "org",
            "add",
            "--credit-code",
            "91350100M000100Y43",
            "--name",
            "示例公司",
        ],
    );
    cli(
        &env,
        &[
            "org",
            "represent",
            "--id-number",
            &person_number,
            "--credit-code",
            "91350100M000100Y43",
            "--role",
            "manager",
        ],
    );
    cli(
        &env,
        &["org", "allow-code", "--credit-code", "91350100M000100Y99"],
    );
    cli(&env, &["registration-token", "issue", "--department", "tax"]);
    cli(&env, &["keys", "rotate"]);
    cli(
        &env,
        &[
            "admin",
            "grant",
            "--id-number",
            &person_number,
            "--role",
            "auditor",
        ],
    );
    cli(
        &env,
        &[
            "admin",
            "revoke",
            "--id-number",
            &person_number,
            "--role",
            "auditor",
        ],
    );

    let events = env.app.db.all_audit_events().await.unwrap();
    let by_operator: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.actor == "cli:ops-tester")
        .map(|e| e.action.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "client.create",
        "person.create",
        "licence_type.put",
        "client.licence_types.allow",
        "licence.import",
        "organisation.create",
        "representation.create",
        "credit_code.allow",
        "registration_token.issue",
        "keys.rotate",
        "admin.grant",
        "admin.revoke",
    ]
    .into();
    assert_eq!(by_operator, expected);
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains(&person_number), "no ID number in the trail");
    assert!(!trail.contains(ALICE_ID), "no holder ID number in the trail");
}

async fn the_console_audit_page_shows_the_newest_events_first_a_page_at_a_time(backend: Backend) {
    let (env, inbox) = console::provider(backend).await;
    alice_super_admin(&env).await;
    let browser = Browser::new(&env.base);
    let home = console::sign_in(&browser, &inbox, ALICE_ID, PASSWORD).await;
    assert_eq!(home.html().1, 200, "{home:?}");
    for n in 0..250 {
        yunid::services::audit::record(
            &env.app.db,
            env.app.now(),
            yunid::store::audit::NewEvent {
                actor: "test",
                action: "test.event",
                subject: &format!("ev-{n:04}"),
                outcome: "success",
                detail: "{}".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let cell = |n: usize| format!("<td>ev-{n:04}</td>");
    let first = browser.get("/admin/audit").await;
    let (_, status, body) = first.html();
    assert_eq!(status, 200);
    let at = |n: usize| body.find(&cell(n));
    assert!(at(249).is_some(), "the newest event is on the first page");
    assert!(at(249) < at(248) && at(248) < at(50), "newest first");
    assert!(at(49).is_none() && at(0).is_none(), "200 a page");
    let older = regex_lite::Regex::new(r#"href="(/admin/audit\?before=\d+)""#)
        .unwrap()
        .captures(body)
        .expect("a link to the older events")[1]
        .to_owned();
    let second = browser.get(&older).await;
    let (_, status, body) = second.html();
    assert_eq!(status, 200);
    let at = |n: usize| body.find(&cell(n));
    assert!(at(50).is_none(), "not shown again");
    assert!(at(49).is_some() && at(49) < at(0), "the older ones, newest first");
    assert!(body.contains("console.sign_in"), "down to the oldest");
    assert!(!body.contains("before="), "no page older than the oldest");
}

on_both_backends!(
    an_admins_two_factor_token_from_an_ordinary_app_is_refused_a_console_token_works,
    a_console_token_is_refused_while_the_console_is_disabled_or_the_admin_locked,
    a_console_token_stops_working_once_the_role_is_revoked,
    an_automation_token_stops_working_when_its_client_is_disabled_or_loses_the_scope,
    only_a_super_admin_lets_an_app_receive_a_licence_type_and_every_licence_change_is_audited,
    every_change_made_from_the_command_line_is_audited_with_the_operator,
    the_console_audit_page_shows_the_newest_events_first_a_page_at_a_time,
);
