//! Administration: roles enforced by the API, the tamper-evident audit trail, counter verification,
//! secret rotation, bootstrap.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use yunid::services::registry::NewClient;

use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, TestClient, http};
use crate::on_both_backends;

/// An automation client holding `scope`, and its access token.
pub(crate) async fn admin_token(env: &Env, scope: &str) -> String {
    let client = env
        .client_with(NewClient {
            name: format!("admin {scope}"),
            scopes: vec![scope.to_owned()],
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let res: Value = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["access_token"].as_str().expect("an admin token").to_owned()
}

/// Calls the admin API as `token`; returns the status and the JSON (or text) answer.
pub(crate) async fn call(
    env: &Env,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http().request(method, env.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

use reqwest::Method;

pub(crate) async fn department_app(env: &Env, department: &str) -> TestClient {
    env.client_with(NewClient {
        name: format!("{department} app"),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        department: department.into(),
        ..NewClient::default()
    })
    .await
}

async fn each_role_does_what_it_may_and_nothing_else(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let auditor = admin_token(&env, "yunid:audit").await;
    let tax_admin = admin_token(&env, "yunid:dept:tax").await;
    let library = admin_token(&env, "yunid:licences").await;
    let tax_app = department_app(&env, "tax").await;
    let health_app = department_app(&env, "health").await;
    let lock = format!("/admin/api/persons/{alice}/lock");
    let unlock = format!("/admin/api/persons/{alice}/unlock");

    // Persons: clerks look up and unlock, only super admins lock (and lift their own locks).
    let find = format!("/admin/api/persons?id_number={ALICE_ID}");
    let (s, found) = call(&env, &clerk, Method::GET, &find, None).await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["persons"][0]["id"], alice);
    assert_eq!(found["persons"][0]["id_number_masked"], "110*************2X");
    assert!(
        !found.to_string().contains(ALICE_ID),
        "the API never shows the full number"
    );
    assert_eq!(call(&env, &library, Method::GET, &find, None).await.0, 403);
    assert_eq!(call(&env, &auditor, Method::GET, &find, None).await.0, 403);
    assert_eq!(call(&env, &clerk, Method::POST, &lock, None).await.0, 403);
    assert_eq!(call(&env, &super_admin, Method::POST, &lock, None).await.0, 200);
    assert_eq!(call(&env, &tax_admin, Method::POST, &unlock, None).await.0, 403);
    assert_eq!(call(&env, &clerk, Method::POST, &unlock, None).await.0, 403);
    let (s, p) = call(&env, &super_admin, Method::POST, &unlock, None).await;
    assert_eq!((s, p["status"].as_str()), (200, Some("active")));

    // Apps: a department admin manages its own department's apps only.
    let rotate_own = format!("/admin/api/clients/{}/rotate-secret", tax_app.id);
    let rotate_other = format!("/admin/api/clients/{}/rotate-secret", health_app.id);
    assert_eq!(
        call(&env, &tax_admin, Method::POST, &rotate_own, None).await.0,
        200
    );
    assert_eq!(
        call(&env, &tax_admin, Method::POST, &rotate_other, None).await.0,
        403
    );
    let create = json!({ "name": "新应用", "department": "health", "redirect_uris": ["https://health.example.gov.cn/cb"] });
    assert_eq!(
        call(
            &env,
            &tax_admin,
            Method::POST,
            "/admin/api/clients",
            Some(create.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &env,
            &clerk,
            Method::POST,
            "/admin/api/clients",
            Some(create.clone())
        )
        .await
        .0,
        403
    );
    let (s, created) = call(
        &env,
        &super_admin,
        Method::POST,
        "/admin/api/clients",
        Some(create),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert!(created["client_secret"].as_str().is_some_and(|x| x.len() >= 43));

    // The audit trail: auditors read everything; the department admin only its apps' events, including
    // its own refused attempt on the other department's app being invisible to it but visible to auditors.
    let (s, all) = call(&env, &auditor, Method::GET, "/admin/api/audit", None).await;
    assert_eq!(s, 200);
    let events = all["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["action"] == "client.rotate_secret"
        && e["outcome"] == "forbidden"
        && e["client_id"] == health_app.id));
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "person.lock" && e["outcome"] == "success")
    );
    let (_, own) = call(&env, &tax_admin, Method::GET, "/admin/api/audit", None).await;
    let own = own["events"].as_array().unwrap();
    assert!(!own.is_empty());
    assert!(own.iter().all(|e| e["client_id"] == tax_app.id), "{own:?}");
    assert_eq!(
        call(&env, &clerk, Method::GET, "/admin/api/audit", None).await.0,
        403
    );
    assert_eq!(
        call(&env, &clerk, Method::POST, "/admin/api/keys/rotate", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&env, &super_admin, Method::POST, "/admin/api/keys/rotate", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&env, "garbage", Method::GET, "/admin/api/audit", None)
            .await
            .0,
        401
    );
}

/// An app of the tax department that gets tokens for itself (client credentials).
async fn cc_client(env: &Env) -> TestClient {
    env.client_with(NewClient {
        name: "cc".into(),
        scopes: vec!["profile".into()],
        grant_types: vec!["client_credentials".into()],
        department: "tax".into(),
        ..NewClient::default()
    })
    .await
}

/// The status of a form post to `url` authenticated as the app with this id and secret.
async fn post_as_app(url: String, id: String, secret: String, form: &[(&str, &str)]) -> u16 {
    http()
        .post(url)
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The status of a client-credentials token request to `url` with this id and secret.
async fn token_status(url: String, id: String, secret: String) -> u16 {
    let form = [("grant_type", "client_credentials")];
    post_as_app(url, id, secret, &form).await
}

/// Rotates the app's secret through the admin API (which must succeed) and returns the new one.
async fn rotate_secret(env: &Env, token: &str, client_id: &str) -> String {
    let path = format!("/admin/api/clients/{client_id}/rotate-secret");
    let (s, rotated) = call(env, token, Method::POST, &path, None).await;
    assert_eq!(s, 200);
    rotated["client_secret"].as_str().unwrap().to_owned()
}

async fn a_rotated_secret_stops_working_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    let app = cc_client(&env).await;
    let token_with = |secret: String| token_status(env.url("/token"), app.id.clone(), secret);
    assert_eq!(token_with(app.secret.clone()).await, 200);
    let new_secret = rotate_secret(&env, &super_admin, &app.id).await;
    assert_eq!(
        token_with(app.secret.clone()).await,
        401,
        "the old secret is dead"
    );
    assert_eq!(token_with(new_secret).await, 200);
}

/// Each node keeps the apps it authenticated in memory. A secret rotated or an app disabled through one
/// node is refused by another within a second (PostgreSQL: two nodes, told by NOTIFY); on SQLite,
/// which serves one node, by that same node.
async fn a_rotated_or_disabled_client_is_refused_on_every_node_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    let second;
    let other: &Server = match backend {
        Backend::Postgres => {
            second = env.second_node().await;
            &second
        }
        Backend::Sqlite => &env.server,
    };
    let super_admin = admin_token(&env, "yunid:admin").await;
    let app = cc_client(&env).await;
    let token_on_other = |secret: String| token_status(other.url("/token"), app.id.clone(), secret);
    let introspect_on_other = |secret: String| {
        post_as_app(
            other.url("/introspect"),
            app.id.clone(),
            secret,
            &[("token", "anything")],
        )
    };
    // Within about a second, polled (a notification takes milliseconds; the cache would keep a row 5 s).
    async fn within_a_second<F: std::future::Future<Output = u16>>(
        mut call: impl FnMut() -> F,
        want: u16,
    ) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            if call().await == want {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    // The other node has authenticated the app (and so holds it in memory).
    assert_eq!(token_on_other(app.secret.clone()).await, 200);
    assert_eq!(introspect_on_other(app.secret.clone()).await, 200);

    let new_secret = rotate_secret(&env, &super_admin, &app.id).await;
    assert!(
        within_a_second(|| token_on_other(app.secret.clone()), 401).await,
        "the old secret still works on the other node after a second"
    );
    assert_eq!(introspect_on_other(app.secret.clone()).await, 401);
    assert_eq!(token_on_other(new_secret.clone()).await, 200);
    assert_eq!(introspect_on_other(new_secret.clone()).await, 200);

    let (s, _) = call(
        &env,
        &super_admin,
        Method::POST,
        &format!("/admin/api/clients/{}/disable", app.id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        within_a_second(|| token_on_other(new_secret.clone()), 401).await,
        "the disabled app still gets tokens from the other node after a second"
    );
    assert_eq!(introspect_on_other(new_secret.clone()).await, 401);

    // Settings edited through PATCH reach the other node the same way: enabled again, it works there.
    let url = env.url(&format!("/admin/api/clients/{}", app.id));
    let res = http().get(&url).bearer_auth(&super_admin).send().await.unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = http()
        .patch(&url)
        .bearer_auth(&super_admin)
        .header("if-match", etag)
        .json(&json!({ "disabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert!(
        within_a_second(|| token_on_other(new_secret.clone()), 200).await,
        "the app enabled again is still refused by the other node after a second"
    );
}

async fn counter_verification_raises_the_level_apps_see(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let clerk = admin_token(&env, "yunid:counter").await;
    let client = env
        .client_with(NewClient {
            name: "公安".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: ["openid", "identity"].map(String::from).to_vec(),
            ..NewClient::default()
        })
        .await;
    let rp = crate::common::rp::Rp::discover(&env.base, &client).await;
    let signed = crate::common::wire::sign_in(&rp, &Browser::new(&env.base), &["identity"]).await;
    let base = env.base.clone();
    let level = |at: String| {
        let base = base.clone();
        async move { crate::common::wire::userinfo(&base, &at).await.1["real_name_level"].clone() }
    };
    assert_eq!(level(signed.access_token()).await, 1);
    let (s, p) = call(
        &env,
        &clerk,
        Method::POST,
        &format!("/admin/api/persons/{alice}/verify"),
        Some(json!({ "document": "idcard" })),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(level(signed.access_token()).await, 3);
    let (s, _) = call(
        &env,
        &clerk,
        Method::POST,
        &format!("/admin/api/persons/{alice}/verify"),
        Some(json!({ "document": "passport", "x": 1 })),
    )
    .await;
    assert_eq!(s, 400, "unknown fields are refused");
}

async fn the_audit_trail_shows_an_edited_or_deleted_row(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let auditor = admin_token(&env, "yunid:audit").await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    // Some history: a failed and a good login, a lock and an unlock.
    let browser = Browser::new(&env.base);
    let login = browser.get("/login").await;
    browser.login(&login, ALICE_ID, "wrong password!").await;
    let login = browser.get("/login").await;
    browser.login(&login, ALICE_ID, PASSWORD).await;
    for action in ["lock", "unlock"] {
        call(
            &env,
            &super_admin,
            Method::POST,
            &format!("/admin/api/persons/{alice}/{action}"),
            None,
        )
        .await;
    }
    let (_, v) = call(&env, &auditor, Method::GET, "/admin/api/audit/verify", None).await;
    assert_eq!(v["broken"], Value::Null, "{v}");
    assert!(v["checked"].as_u64().unwrap() >= 4);
    let (_, export) = call(&env, &auditor, Method::GET, "/admin/api/audit/export", None).await;
    let export = export.as_str().unwrap().to_owned();
    assert!(export.lines().count() >= 4 && export.contains("\"login\""));
    assert!(
        !export.contains(ALICE_ID) && !export.contains(&ALICE_ID[..17]),
        "no ID numbers in the trail"
    );

    // Someone "fixes" the failed login in the database.
    let pool = &env.app.db.pool;
    sqlx::query("UPDATE audit_events SET outcome = 'success' WHERE outcome = 'failure'")
        .execute(pool)
        .await
        .unwrap();
    let (_, v) = call(&env, &auditor, Method::GET, "/admin/api/audit/verify", None).await;
    assert!(
        v["broken"][1].as_str().unwrap().contains("content changed"),
        "{v}"
    );
    sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE action = 'login' AND actor = 'anonymous'")
        .execute(pool)
        .await
        .unwrap();
    let (_, v) = call(&env, &auditor, Method::GET, "/admin/api/audit/verify", None).await;
    assert_eq!(v["broken"], Value::Null, "restored: {v}");

    // Or deletes an event.
    sqlx::query("DELETE FROM audit_events WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    let (_, v) = call(&env, &auditor, Method::GET, "/admin/api/audit/verify", None).await;
    assert_eq!(v["broken"][0], 2, "{v}");
    assert!(v["broken"][1].as_str().unwrap().contains("missing"));

    // The CLI says the same, with a failing exit status.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yunid"))
        .args(["audit", "verify"])
        .env("YUNID_DATABASE_URL", &env.db.url)
        .env("YUNID_KEYS_DIR", env.keys.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BROKEN at event 2"));
}

async fn pruning_old_events_keeps_the_chain_verifiable(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let super_admin = admin_token(&env, "yunid:admin").await;
    for action in ["lock", "unlock", "lock"] {
        call(
            &env,
            &super_admin,
            Method::POST,
            &format!("/admin/api/persons/{alice}/{action}"),
            None,
        )
        .await;
    }
    let now = env.app.now();
    sqlx::query("UPDATE audit_events SET at = at - 200 * 86400 WHERE seq <= 2")
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    // (Their hashes no longer match their content, but pruning removes them and keeps the last one's
    // hash as the anchor the remaining chain starts from.)
    let pruned = env.app.db.prune_audit(now - 180 * 86400).await.unwrap();
    assert_eq!(pruned, 2);
    let v = yunid::services::audit::verify(&env.app.db).await.unwrap();
    assert_eq!(v.broken, None, "{v:?}");
    assert_eq!(v.checked, 1);
}

/// Sign-ins on two nodes at once: each node groups the events that arrive together into one transaction,
/// and the result is still one chain, every event in it once, that verifies.
async fn events_recorded_at_once_on_two_nodes_form_one_chain(backend: Backend) {
    use yunid::store::audit::NewEvent;
    let env = Env::start(backend).await;
    let second;
    let other = match backend {
        Backend::Postgres => {
            second = env.second_node().await;
            &second.app
        }
        Backend::Sqlite => &env.app,
    };
    let before = env.app.db.all_audit_events().await.unwrap().len();
    let mut calls = Vec::new();
    for i in 0..120 {
        let app = if i % 2 == 0 {
            env.app.clone()
        } else {
            other.clone()
        };
        calls.push(tokio::spawn(async move {
            let subject = format!("person-{i}");
            yunid::services::audit::record(
                &app.db,
                app.now(),
                NewEvent {
                    actor: &subject,
                    action: "login",
                    subject: &subject,
                    outcome: "ok",
                    ..NewEvent::default()
                },
            )
            .await
            .unwrap();
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    let events = env.app.db.all_audit_events().await.unwrap();
    assert_eq!(events.len(), before + 120);
    let subjects: BTreeSet<&str> = events[before..].iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects.len(), 120, "every event once");
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap in the sequence");
        assert_eq!(pair[1].prev_hash, pair[0].hash, "each event names the one before");
    }
    let v = yunid::services::audit::verify(&env.app.db).await.unwrap();
    assert_eq!(v.broken, None, "{v:?}");
}

/// The head row keeps the last event's hash whichever way an event is appended: a node of the previous
/// release (which chains from the head's hash, and writes it after its insert) appending between events
/// of this one leaves one chain that verifies, and this node goes on from that node's event.
/// Records a login event through the audit writer, as a sign-in does.
async fn record_login(env: &Env, subject: &'static str) {
    yunid::services::audit::record(
        &env.app.db,
        env.app.now(),
        yunid::store::audit::NewEvent {
            actor: subject,
            action: "login",
            subject,
            outcome: "ok",
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn an_append_by_a_node_of_the_previous_release_keeps_one_chain(backend: Backend) {
    use sqlx::Row;
    use yunid::store::audit::chain_hash;
    let env = Env::start(backend).await;
    let record = |subject: &'static str| record_login(&env, subject);
    record("a").await;
    record("b").await;
    // The previous release's append, as it was written.
    let mut tx = env.app.db.pool.begin().await.unwrap();
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let seq: i64 = head.try_get("seq").unwrap();
    let prev: String = head.try_get("hash").unwrap();
    let at = env.app.now();
    let hash = chain_hash(&prev, seq, at, ["old-node", "login", "c", "", "", "ok", ""]);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, subject, client_id, address, outcome, detail, \
         prev_hash, hash) VALUES ($1, $2, 'old-node', 'login', 'c', '', '', 'ok', '', $3, $4)",
    )
    .bind(seq)
    .bind(at)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    record("d").await;
    record("e").await;

    let events = env.app.db.all_audit_events().await.unwrap();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert!(subjects.ends_with(&["a", "b", "c", "d", "e"]), "{subjects:?}");
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap in the sequence");
        assert_eq!(pair[1].prev_hash, pair[0].hash, "each event names the one before");
    }
    let v = yunid::services::audit::verify(&env.app.db).await.unwrap();
    assert_eq!(v.broken, None, "{v:?}");
}

/// A database failed over or restored to a chain of the same length but other events (another hash at
/// the same number): the next append chains from the head as found, not from what this node remembers.
async fn a_database_restored_to_another_chain_of_the_same_length_is_chained_from_as_found(backend: Backend) {
    use yunid::store::audit::chain_hash;
    let env = Env::start(backend).await;
    let record = |subject: &'static str| record_login(&env, subject);
    record("a").await;
    record("b").await;
    // The restored database: its last event is another one at the same number (this node remembers "b").
    let events = env.app.db.all_audit_events().await.unwrap();
    let last = events.last().unwrap().clone();
    let before = &events[events.len() - 2];
    let at = env.app.now();
    let other = chain_hash(
        &before.hash,
        last.seq,
        at,
        ["restored", "login", "b2", "", "", "ok", ""],
    );
    let mut tx = env.app.db.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = $1")
        .bind(last.seq)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, subject, client_id, address, outcome, detail, \
         prev_hash, hash) VALUES ($1, $2, 'restored', 'login', 'b2', '', '', 'ok', '', $3, $4)",
    )
    .bind(last.seq)
    .bind(at)
    .bind(&before.hash)
    .bind(&other)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&other)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    record("c").await;

    let events = env.app.db.all_audit_events().await.unwrap();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert!(subjects.ends_with(&["a", "b2", "c"]), "{subjects:?}");
    let c = events.last().unwrap();
    assert_eq!(c.prev_hash, other, "chained from the head as found");
    let v = yunid::services::audit::verify(&env.app.db).await.unwrap();
    assert_eq!(v.broken, None, "{v:?}");
}

async fn the_first_super_admin_is_bootstrapped_once(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yunid"))
            .args(args)
            .env("YUNID_DATABASE_URL", &env.db.url)
            .env("YUNID_KEYS_DIR", env.keys.path())
            .output()
            .unwrap()
    };
    assert!(
        run(&["admin", "bootstrap", "--id-number", ALICE_ID])
            .status
            .success()
    );
    let again = run(&["admin", "bootstrap", "--id-number", ALICE_ID]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Her roles hold only at the console (with a two-factor sign-in): another app's token is refused.
    let admin_console = env
        .client_with(NewClient {
            name: "管理台".into(),
            redirect_uris: vec!["http://127.0.0.1:9/admin".into()],
            ..NewClient::default()
        })
        .await;
    let rp = crate::common::rp::Rp::discover(&env.base, &admin_console).await;
    let signed = crate::common::wire::sign_in(&rp, &Browser::new(&env.base), &[]).await;
    let (s, p) = call(
        &env,
        &signed.access_token(),
        Method::GET,
        "/admin/api/audit",
        None,
    )
    .await;
    assert_eq!(s, 401, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not issued for the admin API")
    );
}

on_both_backends!(
    each_role_does_what_it_may_and_nothing_else,
    a_rotated_secret_stops_working_at_once,
    a_rotated_or_disabled_client_is_refused_on_every_node_at_once,
    counter_verification_raises_the_level_apps_see,
    the_audit_trail_shows_an_edited_or_deleted_row,
    pruning_old_events_keeps_the_chain_verifiable,
    events_recorded_at_once_on_two_nodes_form_one_chain,
    an_append_by_a_node_of_the_previous_release_keeps_one_chain,
    a_database_restored_to_another_chain_of_the_same_length_is_chained_from_as_found,
    the_first_super_admin_is_bootstrapped_once,
);

mod openapi {
    use super::*;

    /// The admin API describes itself, the description is a valid OpenAPI 3 document (checked by the
    /// independent `openapi-spec-validator`), and it names every admin route.
    async fn the_admin_api_publishes_a_valid_openapi_document(backend: Backend) {
        let env = Env::start(backend).await;
        let doc: Value = http()
            .get(env.url("/admin/api/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        for path in [
            "/admin/api/persons",
            "/admin/api/persons/{id}/{action}",
            "/admin/api/clients",
            "/admin/api/clients/{id}/rotate-secret",
            "/admin/api/licences",
            "/admin/api/licences/import",
            "/admin/api/audit",
            "/admin/api/audit/verify",
            "/admin/api/keys/rotate",
            "/admin/api/persons/{id}",
            "/admin/api/persons/{id}/reset-password",
            "/admin/api/clients/{id}",
            "/admin/api/organisations",
            "/admin/api/organisations/{id}",
            "/admin/api/organisations/{id}/representations",
            "/admin/api/representations/{id}",
            "/admin/api/credit-code-allowlist",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is documented");
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), doc.to_string()).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys, json; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
            .arg(file.path())
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "openapi-spec-validator refused the document (or is missing: run scripts/test): {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // The same document as a page a browser reads without script or anything from elsewhere:
        // every operation listed, every resource on this origin.
        let res = http().get(env.url("/admin/api/docs")).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script"), "no script on the reference page");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    let label = format!("<code>{} {}</code>", method.to_uppercase(), path);
                    assert!(html.contains(&label), "{label} is on the page");
                }
            }
        }
        let external = regex_lite::Regex::new(r#"(?:src|href)="(?:https?:)?//"#).unwrap();
        assert!(!external.is_match(&html), "the page loads nothing from elsewhere");
    }

    on_both_backends!(the_admin_api_publishes_a_valid_openapi_document);
}

mod console {
    //! The console is an OIDC client of yunid: every test signs in through `/authorize` with a password
    //! and an SMS code (the step-up `acr_values=2` demands).

    use super::*;
    use crate::common::browser::{Page, field};
    use crate::common::console::{self, is_step_up, redirect_of};
    use crate::common::resident_id;
    use crate::common::sms::SmsInbox;
    use yunid::http::i18n::ZH;
    use yunid::store::persons::PersonStatus;

    /// A person holding `role`, signed in to the console through yunid.
    async fn signed_in_admin(
        env: &Env,
        inbox: &SmsInbox,
        id_number: &str,
        phone: &str,
        role: &str,
    ) -> (Browser, String) {
        let person = env.person(id_number, phone, PASSWORD).await;
        env.app
            .db
            .grant_admin_role(&person, role, "", "test", env.app.now())
            .await
            .unwrap();
        let browser = Browser::new(&env.base);
        let home = console::sign_in(&browser, inbox, id_number, PASSWORD).await;
        assert_eq!(home.html().1, 200, "{home:?}");
        assert!(home.html().0.ends_with("/admin"), "back on the console: {home:?}");
        (browser, person)
    }

    fn body(p: &Page) -> &str {
        p.html().2
    }

    async fn a_password_alone_does_not_open_the_console_step_up_is_demanded(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
        env.app
            .db
            .grant_admin_role(&alice, "super_admin", "", "test", env.app.now())
            .await
            .unwrap();
        // Signed in to yunid with one factor (at the account page, say).
        let browser = Browser::new(&env.base);
        let login = browser.get("/login").await;
        browser.login(&login, ALICE_ID, PASSWORD).await;

        // The console sends her to yunid's /authorize as a client asking for acr 2 …
        let start = redirect_of(&browser, "/admin").await.expect("a redirect");
        let authorize = url::Url::parse(&start).unwrap();
        assert_eq!(authorize.path(), "/authorize");
        let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "yunid-console");
        assert_eq!(q["acr_values"], "2");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], env.url("/admin/callback"));
        assert!(q.contains_key("state") && q.contains_key("nonce"));

        // … where the second factor is asked for, not the password again.
        let page = browser.get(&start).await;
        assert!(is_step_up(&page), "{page:?}");
        assert!(body(&page).contains(ZH.stepup_title));
        assert!(!body(&page).contains("name=\"password\""));
        let home = console::step_up(&browser, &inbox, &page).await;
        assert_eq!(home.html().1, 200, "{home:?}");
        assert!(body(&home).contains("超级管理员"), "{}", body(&home));
        let trail = env
            .app
            .db
            .audit_events(Some(("action", "console.sign_in")), 0, 10)
            .await
            .unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].actor, format!("person:{alice}"));
    }

    async fn a_person_without_an_admin_role_gets_a_403_page(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
        let browser = Browser::new(&env.base);
        let page = console::sign_in(&browser, &inbox, ALICE_ID, PASSWORD).await;
        let (_, status, html) = page.html();
        assert_eq!(status, 403, "{html}");
        assert!(html.contains("您没有管理权限"), "{html}");
        assert_eq!(browser.get("/admin/persons").await.html().1, 403);
    }

    async fn logging_out_of_yunid_ends_the_console_session(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let (browser, _) = signed_in_admin(&env, &inbox, ALICE_ID, ALICE_PHONE, "super_admin").await;
        assert_eq!(redirect_of(&browser, "/admin/audit").await, None, "signed in");

        // She logs out at yunid itself (the confirmation page, as from any app without a hint).
        let confirm = browser.get("/logout").await;
        let csrf = field(body(&confirm), "csrf").unwrap();
        let out = browser
            .post("/logout", &[("csrf", &csrf), ("confirm", "yes")])
            .await;
        assert!(body(&out).contains(ZH.logged_out), "{out:?}");

        // The console session went with it: the console starts a new sign-in, at the login page.
        let again = redirect_of(&browser, "/admin/audit").await.expect("a redirect");
        assert!(again.contains("/authorize?"), "{again}");
        assert!(browser.get("/admin/audit").await.is_login());

        // Signed in again, the console's own sign-out logs out of yunid too (RP-initiated logout).
        let home = console::complete(&browser, &inbox, browser.get("/admin").await, ALICE_ID, PASSWORD).await;
        assert_eq!(home.html().1, 200, "{home:?}");
        let csrf = field(body(&home), "csrf").unwrap();
        let signed_out = browser.post("/admin/sign-out", &[("csrf", &csrf)]).await;
        let (url, status, html) = signed_out.html();
        assert_eq!(status, 200);
        assert!(url.contains("/admin?state=signed-out"), "{url}");
        assert!(html.contains(ZH.logged_out), "{html}");
        assert!(
            browser.get("/account").await.is_login(),
            "the yunid session ended too"
        );
        let trail = env
            .app
            .db
            .audit_events(Some(("action", "console.sign_out")), 0, 10)
            .await
            .unwrap();
        assert_eq!(trail.len(), 1, "the sign-out is audited");
    }

    async fn the_console_session_ends_when_an_admin_ends_the_persons_sessions(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let (browser, alice) = signed_in_admin(&env, &inbox, ALICE_ID, ALICE_PHONE, "super_admin").await;
        // Ended elsewhere (another admin, another node, a back-channel logout): the row is gone.
        for s in env.app.db.sessions_of(&alice, env.app.now()).await.unwrap() {
            env.app.logout().end_session(&s.sid, env.app.now()).await.unwrap();
        }
        let again = redirect_of(&browser, "/admin").await.expect("a redirect");
        assert!(again.contains("/authorize?"), "{again}");
    }

    async fn a_callback_with_another_state_is_refused(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
        env.app
            .db
            .grant_admin_role(&alice, "super_admin", "", "test", env.app.now())
            .await
            .unwrap();
        let browser = Browser::new(&env.base);
        let start = redirect_of(&browser, "/admin").await.expect("a redirect");
        let mut forged = url::Url::parse(&start).unwrap();
        let pairs: Vec<(String, String)> = forged
            .query_pairs()
            .into_owned()
            .map(|(k, v)| {
                if k == "state" {
                    (k, "forged-state".to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        forged.query_pairs_mut().clear().extend_pairs(pairs);
        let page = browser.get(forged.as_str()).await;
        let refused = console::complete(&browser, &inbox, page, ALICE_ID, PASSWORD).await;
        let (url, status, html) = refused.html();
        assert!(url.contains("/admin/callback?"), "{url}");
        assert_eq!(status, 400, "{html}");
        assert!(html.contains("（state 不符）"), "{html}");
        assert!(
            redirect_of(&browser, "/admin")
                .await
                .is_some_and(|l| l.contains("/authorize?")),
            "no console session came of it"
        );
        // The same callback again (a replay) finds no sign-in under way.
        let replay = browser.get(&url.replace(env.base.as_str(), "")).await;
        assert_eq!(replay.html().1, 400);
        // A sign-in of her own goes through (yunid's session already has two factors).
        let home = browser.get("/admin").await;
        assert_eq!(home.html().1, 200, "{home:?}");
    }

    async fn an_admin_finds_a_person_locks_them_and_manages_an_app(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let bob_id = resident_id(21);
        let bob = env.person(&bob_id, "13900139021", PASSWORD).await;
        let (browser, _) = signed_in_admin(&env, &inbox, ALICE_ID, ALICE_PHONE, "super_admin").await;
        let home = browser.get("/admin").await;
        assert_eq!(home.html().1, 200);
        assert!(body(&home).contains("href=\"/admin/persons\""));
        assert!(body(&home).contains("href=\"#main\""), "a skip link");

        let search = browser.get("/admin/persons").await;
        let csrf = field(body(&search), "csrf").unwrap();
        let found = browser
            .post("/admin/persons", &[("csrf", &csrf), ("id_number", &bob_id)])
            .await;
        let text = body(&found).to_owned();
        assert!(text.contains("110*************"), "{text}");
        assert!(!text.contains(&bob_id));
        let done = browser
            .post(&format!("/admin/persons/{bob}/lock"), &[("csrf", &csrf)])
            .await;
        assert!(body(&done).contains("已完成"), "{}", body(&done));
        assert_eq!(
            env.app.db.person(&bob).await.unwrap().unwrap().status,
            PersonStatus::Locked
        );
        let forged = browser
            .post(&format!("/admin/persons/{bob}/unlock"), &[("x", "y")])
            .await;
        assert_eq!(forged.html().1, 403, "no CSRF token, no action");

        let apps = browser.get("/admin/apps").await;
        assert!(
            !body(&apps).contains("yunid-console"),
            "the console's own client is not listed"
        );
        let csrf = field(body(&apps), "csrf").unwrap();
        let created = browser
            .post(
                "/admin/apps",
                &[
                    ("csrf", &csrf),
                    ("name", "不动产登记"),
                    ("department", "land"),
                    ("redirect_uri", "https://land.example.gov.cn/cb"),
                ],
            )
            .await;
        let text = body(&created).to_owned();
        assert!(text.contains("密钥只显示这一次"), "{text}");
        let secret_re = regex_lite::Regex::new(r"client_secret</th><td><code>([^<]+)</code>").unwrap();
        let first = secret_re.captures(&text).unwrap()[1].to_owned();
        let id = regex_lite::Regex::new(r"client_id</th><td><code>([^<]+)</code>")
            .unwrap()
            .captures(&text)
            .unwrap()[1]
            .to_owned();
        let again = browser.get("/admin/apps").await;
        assert!(!body(&again).contains(&first), "the secret is shown once");
        let rotated = browser
            .post(&format!("/admin/apps/{id}/rotate"), &[("csrf", &csrf)])
            .await;
        let second = secret_re.captures(body(&rotated)).unwrap()[1].to_owned();
        assert_ne!(first, second);

        let trail = browser.get("/admin/audit").await;
        assert!(body(&trail).contains("person.lock") && body(&trail).contains("client.rotate_secret"));

        // The same console in English.
        browser.get("/lang/en").await;
        let home = browser.get("/admin").await;
        let html = body(&home);
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        for text in [
            "Skip to main content",
            "Admin console",
            "Sign out of the console",
            "super admin",
        ] {
            assert!(html.contains(text), "{text} in {html}");
        }
    }

    async fn the_console_repairs_its_client_when_its_secret_was_rotated_or_it_was_disabled(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
        env.app
            .db
            .grant_admin_role(&alice, "super_admin", "", "test", env.app.now())
            .await
            .unwrap();
        let token = admin_token(&env, "yunid:admin").await;
        // The API leaves the console's own client alone…
        for path in [
            "/admin/api/clients/yunid-console/rotate-secret",
            "/admin/api/clients/yunid-console/disable",
        ] {
            let (s, body) = call(&env, &token, Method::POST, path, None).await;
            assert_eq!(s, 409, "{body}");
        }
        // …and should the row be changed behind yunid's back, the console puts it right before signing in.
        env.app
            .db
            .set_client_disabled("yunid-console", true)
            .await
            .unwrap();
        env.app
            .db
            .set_client_secret("yunid-console", "not the secret's hash")
            .await
            .unwrap();
        let browser = Browser::new(&env.base);
        let home = console::sign_in(&browser, &inbox, ALICE_ID, PASSWORD).await;
        assert_eq!(home.html().1, 200, "{home:?}");
        assert!(home.html().0.ends_with("/admin"));
    }

    async fn a_counter_clerk_cannot_do_what_only_a_super_admin_may(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let bob = env.person(&resident_id(23), "13900139023", PASSWORD).await;
        let (browser, clerk) = signed_in_admin(&env, &inbox, ALICE_ID, ALICE_PHONE, "counter_clerk").await;
        let page = browser.get("/admin/persons").await;
        let csrf = field(body(&page), "csrf").unwrap();
        let found = browser
            .post(
                "/admin/persons",
                &[("csrf", &csrf), ("id_number", &resident_id(23))],
            )
            .await;
        assert!(body(&found).contains("110*************"), "clerks look people up");
        assert!(
            !body(&found).contains("href=\"/admin/audit\"") && !body(&found).contains("href=\"/admin/apps\""),
            "the navigation offers only what a clerk may open"
        );
        let lock = browser
            .post(&format!("/admin/persons/{bob}/lock"), &[("csrf", &csrf)])
            .await;
        assert_eq!(lock.html().1, 403);
        let verify = browser
            .post(&format!("/admin/persons/{bob}/verify"), &[("csrf", &csrf)])
            .await;
        assert!(body(&verify).contains("已完成"), "{}", body(&verify));
        assert_eq!(env.app.db.person(&bob).await.unwrap().unwrap().real_name_level, 3);
        let forbidden = env
            .app
            .db
            .audit_events(Some(("action", "person.lock")), 0, 10)
            .await
            .unwrap();
        assert!(
            forbidden
                .iter()
                .any(|e| e.outcome == "forbidden" && e.actor == format!("person:{clerk}"))
        );
        assert_eq!(
            browser.get("/admin/audit").await.html().1,
            403,
            "clerks do not read the audit trail"
        );
    }

    const COMPANY: &str = "91350100M000100Y43";

    async fn an_admin_appoints_and_revokes_a_representative(backend: Backend) {
        let (env, inbox) = console::provider(backend).await;
        let bob = env.person(&resident_id(25), "13900139025", PASSWORD).await;
        yunid::services::identity::add_org(
            &env.app.db,
            COMPANY,
            "福州示例科技有限公司",
            "enterprise",
            env.app.now(),
            env.app.random.as_ref(),
        )
        .await
        .unwrap();
        let (browser, _) = signed_in_admin(&env, &inbox, ALICE_ID, ALICE_PHONE, "super_admin").await;
        let org = browser.get(&format!("/admin/orgs?code={COMPANY}")).await;
        let html = body(&org).to_owned();
        assert!(html.contains("福州示例科技有限公司"), "{html}");
        let action = regex_lite::Regex::new(r#"action="(/admin/orgs/[^/"]+/representatives)""#)
            .unwrap()
            .captures(&html)
            .unwrap()[1]
            .to_owned();
        let csrf = field(&html, "csrf").unwrap();

        // By phone, an agent for two matters until the end of next year.
        let appointed = browser
            .post(
                &action,
                &[
                    ("csrf", &csrf),
                    ("person", "13900139025"),
                    ("role", "agent"),
                    ("matters", "tax.declare, social.enrol"),
                    ("valid_from", ""),
                    ("valid_until", "2099-12-31"),
                ],
            )
            .await;
        let html = body(&appointed).to_owned();
        assert_eq!(appointed.html().1, 200, "{html}");
        assert!(
            html.contains("已完成") && html.contains("<td>经办人</td>"),
            "{html}"
        );
        assert!(
            html.contains("tax.declare, social.enrol") && html.contains("2099-12-31"),
            "{html}"
        );
        let now = env.app.now();
        let reps = env.app.db.current_reps(&bob, now).await.unwrap();
        assert_eq!(reps.len(), 1, "Bob now represents the company");

        // A window that ends before it starts is refused, and says why.
        let bob_id = resident_id(25);
        let backwards: &[(&str, &str)] = &[
            ("csrf", &csrf),
            ("person", &bob_id),
            ("role", "manager"),
            ("matters", "all"),
            ("valid_from", "2030-01-01"),
            ("valid_until", "2029-01-01"),
        ];
        let refused = browser.post(&action, backwards).await;
        // The page is Chinese, and so is the reason (the admin API says it in English to integrators).
        assert_eq!(refused.html().1, 422, "{refused:?}");
        assert!(
            body(&refused).contains("有效期止必须晚于有效期起"),
            "{}",
            body(&refused)
        );
        assert!(
            !body(&refused).contains("valid_until must be after"),
            "{}",
            body(&refused)
        );
        // In English, the same refusal reads in English.
        browser.get("/lang/en").await;
        let refused_en = browser.post(&action, backwards).await;
        assert_eq!(refused_en.html().1, 422, "{refused_en:?}");
        assert!(
            body(&refused_en).contains("valid_until must be after valid_from"),
            "{}",
            body(&refused_en)
        );
        assert!(!body(&refused_en).contains("有效期止"), "{}", body(&refused_en));
        browser.get("/lang/zh").await;

        // Revoked, he acts for it no more.
        let revoke = regex_lite::Regex::new(r#"action="(/admin/orgs/[^"]+/revoke)""#)
            .unwrap()
            .captures(&html)
            .unwrap()[1]
            .to_owned();
        let after = browser.post(&revoke, &[("csrf", &csrf)]).await;
        assert!(body(&after).contains("已完成"), "{after:?}");
        assert!(!body(&after).contains("tax.declare"), "{}", body(&after));
        assert!(
            env.app
                .db
                .current_reps(&bob, env.app.now())
                .await
                .unwrap()
                .is_empty()
        );
        let again = browser.post(&revoke, &[("csrf", &csrf)]).await;
        assert_eq!(again.html().1, 404, "revoked once only");

        let trail = browser.get("/admin/audit").await;
        let text = body(&trail);
        assert!(text.contains("representation.appoint") && text.contains("representation.revoke"));
        assert!(!text.contains(&resident_id(25)), "no ID number in the trail");
    }

    /// The callback's checks, one claim at a time, on tokens signed with the provider's own keys (and one
    /// signed with a key the provider never published).
    async fn the_console_checks_its_id_token_like_any_relying_party(backend: Backend) {
        use yunid::keys::Alg;
        use yunid::services::console::{IdTokenError, check_id_token};
        let env = Env::start(backend).await;
        let now = env.app.now();
        let good = json!({
            "iss": env.app.config.iss(), "aud": "yunid-console", "sub": "p1", "sid": "s1",
            "iat": now, "exp": now + 300, "nonce": "n-1", "acr": "2", "amr": ["pwd", "sms", "mfa"],
        });
        let sign = |claims: &Value| env.app.keys().sign(Alg::RS256, "JWT", claims).unwrap();
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            sign(&c)
        };
        let ok = check_id_token(&env.app.keys(), env.app.config.iss(), &sign(&good), "n-1", now).unwrap();
        assert_eq!((ok.person_id.as_str(), ok.sid.as_str(), ok.acr), ("p1", "s1", 2));
        let cases = [
            (
                with("iss", json!("https://evil.example")),
                Err(IdTokenError::Claim("iss")),
            ),
            (with("aud", json!("another-app")), Err(IdTokenError::Claim("aud"))),
            (
                with("aud", json!(["yunid-console", "another-app"])),
                Err(IdTokenError::Claim("aud")),
            ),
            (with("nonce", json!("n-2")), Err(IdTokenError::Claim("nonce"))),
            (with("exp", json!(now - 1)), Err(IdTokenError::Expired)),
            (with("acr", json!("1")), Err(IdTokenError::WeakAcr(1))),
        ];
        for (token, expected) in cases {
            assert_eq!(
                check_id_token(&env.app.keys(), env.app.config.iss(), &token, "n-1", now).map(|_| ()),
                expected
            );
        }
        let mut no_sid = good.clone();
        no_sid.as_object_mut().unwrap().remove("sid");
        assert_eq!(
            check_id_token(&env.app.keys(), env.app.config.iss(), &sign(&no_sid), "n-1", now).map(|_| ()),
            Err(IdTokenError::Claim("sid"))
        );
        // Another provider's key (same kid, different key): the signature does not verify.
        let other = Env::start(backend).await;
        let kid_of = |t: &str| {
            let header = t.split('.').next().unwrap().to_owned();
            serde_json::from_slice::<Value>(&yunid::crypto::b64url_decode(&header).unwrap()).unwrap()["kid"]
                .clone()
        };
        let foreign = other.app.keys().sign(Alg::RS256, "JWT", &good).unwrap();
        let ours = sign(&good);
        let mut parts: Vec<&str> = foreign.split('.').collect();
        parts[0] = ours.split('.').next().unwrap();
        let spliced = parts.join(".");
        assert_eq!(kid_of(&spliced), kid_of(&ours));
        assert_eq!(
            check_id_token(&env.app.keys(), env.app.config.iss(), &spliced, "n-1", now).map(|_| ()),
            Err(IdTokenError::Signature)
        );
    }

    on_both_backends!(
        the_console_checks_its_id_token_like_any_relying_party,
        a_password_alone_does_not_open_the_console_step_up_is_demanded,
        a_person_without_an_admin_role_gets_a_403_page,
        logging_out_of_yunid_ends_the_console_session,
        the_console_session_ends_when_an_admin_ends_the_persons_sessions,
        a_callback_with_another_state_is_refused,
        an_admin_finds_a_person_locks_them_and_manages_an_app,
        a_counter_clerk_cannot_do_what_only_a_super_admin_may,
        an_admin_appoints_and_revokes_a_representative,
        the_console_repairs_its_client_when_its_secret_was_rotated_or_it_was_disabled,
    );
}
