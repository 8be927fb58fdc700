//! Real-browser flows: headless Chromium (driven by `tests/browser/flows.mjs` with playwright-core)
//! through yunid's pages and the two demo department apps (`examples/`), started as their own
//! processes. Password, SMS and passkey logins, single sign-on and back-channel single logout,
//! step-up, a declined consent, and a screenshot of every page in Chinese and English
//! (`test-artifacts/screenshots/<backend>/<lang>/<page>.png`).
//!
//! Needs Node.js, Chromium and `tests/browser/node_modules` (`npm ci --prefix tests/browser`); the test
//! fails, rather than skips, without them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use yunid::services::registry::NewClient;

use crate::common::sms::SmsInbox;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Env, PASSWORD};
use crate::on_both_backends;

/// How long the whole browser script may take.
const FLOWS_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn chromium() -> PathBuf {
    std::env::var_os("YUNID_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Node.js, Chromium and the script's node_modules must be there: a missing one fails the test.
pub(crate) fn check_tools() {
    const HOW: &str = "run `scripts/test` (it installs them), or by hand: `apt-get install -y chromium fonts-noto-cjk` \
                       (and Node.js 20 or later with npm), then `npm ci --prefix tests/browser`";
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "the browser tests need Node.js (`node` is not on PATH): {HOW}"
    );
    assert!(
        chromium().exists(),
        "the browser tests need Chromium at {} (or set YUNID_CHROMIUM): {HOW}",
        chromium().display()
    );
    assert!(
        crate_root()
            .join("tests/browser/node_modules/playwright-core/package.json")
            .exists(),
        "the browser tests need tests/browser/node_modules (playwright-core): {HOW}"
    );
}

/// A demo app binary, built by `cargo test` next to the test binary (`target/debug/examples/`).
fn demo_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/it-<hash> → target/debug/examples/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "demo app {} is not built: `cargo test` builds it (with `cargo test --test it`, run `cargo build --examples` first)",
        path.display()
    );
    // `cargo test --test it` does not rebuild the examples: refuse one older than its sources.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
    for source in [
        format!("examples/{name}.rs"),
        "examples/demo_rp/mod.rs".to_owned(),
    ] {
        let changed = std::fs::metadata(crate_root().join(&source))
            .and_then(|m| m.modified())
            .unwrap();
        assert!(
            changed <= built,
            "demo app {} is older than {source}: run `cargo build --examples` (or plain `cargo test`)",
            path.display()
        );
    }
    path
}

/// A free port on 127.0.0.1 (bound, read, released: the app binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Demo app processes, killed when the test ends (panics included).
struct Apps {
    children: Vec<std::process::Child>,
}

impl Drop for Apps {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct DemoApp {
    url: String,
    log: PathBuf,
}

impl Apps {
    /// Registers `name` with yunid (redirect, post-logout and back-channel URIs under its URL) and
    /// starts its binary on `port`; returns once it answers.
    async fn start(
        &mut self,
        env: &Env,
        binary: &str,
        name: &str,
        scopes: &[&str],
        port: u16,
        logs: &Path,
    ) -> DemoApp {
        let url = format!("http://localhost:{port}");
        let client = env
            .client_with(NewClient {
                name: name.into(),
                redirect_uris: vec![format!("{url}/callback")],
                post_logout_redirect_uris: vec![format!("{url}/")],
                backchannel_logout_uri: Some(format!("{url}/backchannel-logout")),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ..NewClient::default()
            })
            .await;
        let log = logs.join(format!("{binary}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(demo_binary(binary))
            .env("YUNID_ISSUER", env.app.config.iss())
            .env("CLIENT_ID", &client.id)
            .env("CLIENT_SECRET", &client.secret)
            .env("PORT", port.to_string())
            .env("APP_URL", &url)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        self.children.push(child);
        let child = self.children.last_mut().unwrap();
        let http = crate::common::http();
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{binary} exited ({status}) before answering:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if http
                .get(format!("{url}/"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return DemoApp { url, log };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{binary} did not answer on {url}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

async fn a_person_uses_two_apps_in_a_real_browser(backend: Backend) {
    check_tools();
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let artifacts = crate_root().join("test-artifacts");
    let screenshots = artifacts.join("screenshots").join(label);
    let logs = artifacts.join("browser-logs").join(label);
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();
    std::fs::create_dir_all(&logs).unwrap();

    let inbox = SmsInbox::start(0).await;
    let sms_url = inbox.url.clone();
    let env = Env::start_with(backend, move |c| {
        // WebAuthn needs a domain: the provider is http://localhost:<port>, like the apps.
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
        c.self_registration = true;
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(sms_url.clone());
        c.sms_webhook_secret = Some("browser-test-webhook-secret".into());
        // One browser sends several codes to the same phone within a minute.
        c.sms_resend_cooldown = 0;
        c.sms_per_phone_hour = 50;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;

    let mut apps = Apps { children: Vec::new() };
    let social = apps
        .start(
            &env,
            "social_security",
            "社保服务",
            &["openid", "profile", "phone", "offline_access"],
            free_port(),
            &logs,
        )
        .await;
    let business = apps
        .start(
            &env,
            "business_registration",
            "企业开办",
            &["openid", "profile", "org", "offline_access"],
            free_port(),
            &logs,
        )
        .await;

    let run = tokio::process::Command::new("node")
        .arg("tests/browser/flows.mjs")
        .current_dir(crate_root())
        .env("YUNID_URL", env.app.config.iss())
        .env("SOCIAL_SECURITY_URL", &social.url)
        .env("BUSINESS_REGISTRATION_URL", &business.url)
        .env("PERSON_ID_NUMBER", ALICE_ID)
        .env("PERSON_PHONE", ALICE_PHONE)
        .env("PERSON_PASSWORD", PASSWORD)
        .env("PERSON_NAME", "张三")
        .env("SMS_LATEST_URL", &inbox.latest_url)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FLOWS_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser flows took longer than {FLOWS_TIMEOUT:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    if !output.status.success() {
        let app_logs: String = [&social, &business]
            .iter()
            .map(|a| {
                format!(
                    "--- {}\n{}",
                    a.log.display(),
                    std::fs::read_to_string(&a.log).unwrap_or_default()
                )
            })
            .collect();
        // The provider's log (of every server in this test binary) goes to a file: it is long.
        let yunid_log = logs.join("yunid.log");
        std::fs::write(&yunid_log, crate::common::captured_logs()).unwrap();
        panic!(
            "the browser flows failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n{app_logs}\n\
             (screenshots in {}, yunid's log in {})",
            output.status,
            screenshots.display(),
            yunid_log.display()
        );
    }
    drop(apps);
}

on_both_backends!(a_person_uses_two_apps_in_a_real_browser);
