//! The admin console in a real browser: headless Chromium driven by `tests/browser/console.mjs`
//! (playwright-core). An admin signs in through yunid's OIDC redirect with a password and an SMS code,
//! finds, verifies and unlocks a person, registers an app (secret shown once), appoints and revokes a
//! representative, reads the audit trail, adds a passkey and signs in with it alone on another device,
//! and does a task with the keyboard alone. Screenshots go to
//! `test-artifacts/screenshots/<backend>/console-*.png`.
//!
//! Needs Node.js, Chromium and `tests/browser/node_modules` (`npm ci --prefix tests/browser`); the test
//! fails, rather than skips, without them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::console::sms_to;
use crate::common::sms::SmsInbox;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Env, PASSWORD, resident_id};
use crate::on_both_backends;

const TIMEOUT: Duration = Duration::from_secs(180);
const ORG_CODE: &str = "91350100M000100Y43";

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("YUNID_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

async fn an_admin_works_in_the_console_in_a_real_browser(backend: Backend) {
    let modules = crate_root().join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        chromium().exists() && modules.exists(),
        "the browser tests need Chromium and tests/browser/node_modules: run `scripts/test`"
    );
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let screenshots = crate_root().join("test-artifacts/screenshots").join(label);
    std::fs::create_dir_all(&screenshots).unwrap();

    let inbox = SmsInbox::start(0).await;
    let sms = sms_to(&inbox);
    let env = Env::start_with(backend, move |c| {
        sms(c);
        // WebAuthn needs a domain: the provider is http://localhost:<port>.
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
    })
    .await;
    let admin = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .grant_admin_role(&admin, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();
    let locked_id = resident_id(31);
    let locked = env.person(&locked_id, "13900139031", PASSWORD).await;
    sqlx::query("UPDATE persons SET status = 'locked' WHERE id = $1")
        .bind(&locked)
        .execute(&env.app.db.pool)
        .await
        .unwrap();
    let rep_phone = "13900139032";
    env.person(&resident_id(32), rep_phone, PASSWORD).await;
    yunid::services::identity::add_org(
        &env.app.db,
        ORG_CODE,
        "福州示例科技有限公司",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();

    let run = tokio::process::Command::new("node")
        .arg("tests/browser/console.mjs")
        .current_dir(crate_root())
        .env("YUNID_URL", env.app.config.iss())
        .env("ADMIN_ID_NUMBER", ALICE_ID)
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("ADMIN_PHONE", ALICE_PHONE)
        .env("PERSON_ID_NUMBER", &locked_id)
        .env("ORG_CODE", ORG_CODE)
        .env("REP_PHONE", rep_phone)
        .env("REP_NAME", "张三")
        .env("SMS_LATEST_URL", &inbox.latest_url)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", chromium())
        .env("SCENARIO", "all")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the console flows took longer than {TIMEOUT:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "the console flows failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ok   console") && stdout.contains("ok   keyboard"),
        "{stdout}"
    );
    // What the browser did, the server did.
    let person = env.app.db.person(&locked).await.unwrap().unwrap();
    assert_eq!((person.status.as_str(), person.real_name_level), ("active", 3));
}

on_both_backends!(an_admin_works_in_the_console_in_a_real_browser);
