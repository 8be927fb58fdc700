//! Interoperability with relying-party libraries nobody here wrote: the Node package `openid-client` (a
//! certified RP) and Python's `authlib` each complete code + PKCE, ID token validation, userinfo, refresh,
//! introspection and RP-initiated logout against a running yunid, and the logout reaches the app's
//! back channel. The libraries are installed by `tests/interop/run.sh` (which `.ci/run` calls) into
//! `$YUNID_INTEROP_DIR` (default `/tmp/yunid-interop`); without them this test fails and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use yunid::services::registry::NewClient;

use crate::common::receiver::Receiver;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Env, PASSWORD};
use crate::on_both_backends;

pub fn interop_dir() -> PathBuf {
    std::env::var_os("YUNID_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("yunid-interop"))
}

/// The installed libraries, or a failure that says how to install them.
pub fn installed(dir: &Path) {
    for (what, marker) in [
        ("openid-client", "node/node_modules/openid-client/package.json"),
        ("authlib", "python/authlib/__init__.py"),
    ] {
        assert!(
            dir.join(marker).exists(),
            "{what} is not installed in {}: run scripts/test, or tests/interop/run.sh --install-only",
            dir.display()
        );
    }
}

/// Runs one RP script against `env` as `client`; the JSON line it printed.
async fn run_rp(env: &Env, lib: &str, client: &crate::common::TestClient, post_logout: &str) -> Value {
    let dir = interop_dir();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let mut command = match lib {
        "openid-client" => {
            // Node resolves `import 'openid-client'` from the script's folder: run a copy beside node_modules.
            let copy = dir.join("node/openid_client.mjs");
            std::fs::copy(scripts.join("openid_client.mjs"), &copy).unwrap();
            let mut c = tokio::process::Command::new("node");
            c.arg(copy);
            c
        }
        _ => {
            let mut c = tokio::process::Command::new("python3");
            c.arg(scripts.join("authlib_rp.py"))
                .env("PYTHONPATH", dir.join("python"))
                .env("AUTHLIB_INSECURE_TRANSPORT", "1");
            c
        }
    };
    command
        .env("ISSUER", env.app.config.iss())
        .env("CLIENT_ID", &client.id)
        .env("CLIENT_SECRET", &client.secret)
        .env("REDIRECT_URI", &client.redirect_uri)
        .env("POST_LOGOUT_REDIRECT_URI", post_logout)
        .env("USERNAME", ALICE_ID)
        .env("PASSWORD", PASSWORD)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{lib} did not finish in 2 minutes"))
        .unwrap_or_else(|e| panic!("{lib} could not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{lib} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{lib} printed {stdout:?}: {e}"))
}

async fn openid_client_and_authlib_sign_in_refresh_introspect_and_log_out(backend: Backend) {
    let dir = interop_dir();
    installed(&dir);
    let receiver = Receiver::start(0).await;
    // `localhost`, as a developer's app would be configured.
    let env = Env::start_with(backend, |c| {
        c.issuer = url::Url::parse(&format!("http://localhost:{}", c.listen.port())).unwrap();
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;

    for lib in ["openid-client", "authlib"] {
        let post_logout = format!("http://localhost:9/{lib}/signed-out");
        let client = env
            .client_with(NewClient {
                name: format!("{lib} app"),
                redirect_uris: vec![format!("http://localhost:9/{lib}/callback")],
                post_logout_redirect_uris: vec![post_logout.clone()],
                backchannel_logout_uri: Some(receiver.url(&format!("/{lib}/backchannel"))),
                ..NewClient::default()
            })
            .await;
        let seen = run_rp(&env, lib, &client, &post_logout).await;

        assert!(
            seen["sub"].as_str().is_some_and(|s| !s.is_empty()),
            "{lib}: {seen}"
        );
        assert_eq!(seen["userinfo"]["sub"], seen["sub"], "{lib}: {seen}");
        assert_eq!(seen["userinfo"]["name"], "张三", "{lib}: {seen}");
        assert_eq!(
            seen["userinfo"]["phone_number"], "+8613800138000",
            "{lib}: {seen}"
        );
        assert_eq!(seen["refreshed_sub"], seen["sub"], "{lib}: {seen}");
        assert_eq!(seen["refresh_rotated"], true, "{lib}: {seen}");
        assert_eq!(seen["introspection"]["active"], true, "{lib}: {seen}");
        assert_eq!(seen["introspection"]["sub"], seen["sub"], "{lib}: {seen}");
        assert_eq!(
            seen["introspection"]["client_id"],
            client.id.as_str(),
            "{lib}: {seen}"
        );
        assert_eq!(seen["logout_state"], "signed-out", "{lib}: {seen}");
        assert_eq!(
            seen["introspection_after_logout"]["active"], false,
            "{lib}: {seen}"
        );

        // The logout also reached the app's back channel, for the session the library saw.
        let path = format!("/{lib}/backchannel");
        let hits = receiver
            .wait_until(Duration::from_secs(10), |hits| {
                hits.iter().any(|h| h.path == path)
            })
            .await;
        let token = &hits.iter().find(|h| h.path == path).unwrap().form["logout_token"];
        let (_, claims) = crate::common::wire::jwt_parts(token);
        assert_eq!(claims["sid"], seen["sid"], "{lib}: {claims}");
        assert_eq!(claims["sub"], seen["sub"], "{lib}: {claims}");
    }
}

on_both_backends!(openid_client_and_authlib_sign_in_refresh_introspect_and_log_out);
