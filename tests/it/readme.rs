//! The README's commands, run as written: its shell blocks are read from README.md — the run command, the
//! five-minute walk-through (client add, person add, serve) and the by-hand code exchange (PKCE values, the
//! authorization URL, the curl token request and the userinfo call) — and run with bash in an empty folder,
//! so a README edit that breaks a command fails here.
//!
//! Substitutions, and only these: `cargo run --release [--]` is the `yunid` binary this test run built (the
//! debug build of the same source; CI runs the real `cargo run --release` in a fresh clone), and
//! `http://localhost:8080` is a free port on 127.0.0.1 (`YUNID_LISTEN` and `YUNID_ISSUER` say so). The
//! person's "open that URL, log in, consent" is done over HTTP by the test's browser stand-in.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Browser, http};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The README's ```sh blocks, each as its commands (continuation lines joined, comments dropped).
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(cmds), line) => {
                let line = line.trim();
                if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
                    continue;
                }
                match line.strip_suffix('\\') {
                    Some(part) => pending.push_str(part),
                    None => {
                        pending.push_str(line);
                        cmds.push(std::mem::take(&mut pending));
                    }
                }
            }
            _ => {}
        }
    }
    blocks
}

struct Shell {
    dir: tempfile::TempDir,
    base: String,
    port: u16,
}

impl Shell {
    fn new() -> Shell {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Shell {
            dir: tempfile::tempdir().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// `command` with the two substitutions of the module comment.
    fn substitute(&self, command: &str) -> String {
        command
            .replace("cargo run --release --", "\"$YUNID\"")
            .replace("cargo run --release", "\"$YUNID\"")
            .replace("http://localhost:8080", &self.base)
    }

    /// bash in the README reader's empty folder, with no `YUNID_*` variable but the substituted ones.
    fn bash(&self, script: &str, env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("bash");
        for (key, _) in std::env::vars() {
            if key.starts_with("YUNID_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(["-euo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env("YUNID", env!("CARGO_BIN_EXE_yunid"))
            .env("YUNID_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("YUNID_ISSUER", &self.base)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, script: &str, env: &[(&str, &str)]) -> String {
        let script = self.substitute(script);
        let out: Output = self.bash(&script, env).output().await.unwrap();
        assert!(
            out.status.success(),
            "README command failed: {script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The value after `label` on a line of `out` (`client_id:     abc` → `abc`).
fn printed(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {out}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_work_as_written() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let blocks = sh_blocks(&readme());
    let [run, test, walk, by_hand, ..] = blocks.as_slice() else {
        panic!("the README has fewer shell blocks than run, test, walk-through, by hand: {blocks:?}");
    };
    assert_eq!(run.as_slice(), ["cargo run --release"], "the run command");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(test.len(), 1, "one test command: {test:?}");
    assert!(
        root.join(&test[0]).is_file(),
        "the test command {} exists",
        test[0]
    );
    let [client_add, person_add, serve] = walk.as_slice() else {
        panic!("the walk-through is client add, person add, serve: {walk:?}");
    };
    assert_eq!(serve, &run[0], "the walk-through serves with the run command");
    let shell = Shell::new();

    // 1. and 2.: the department app and the citizen.
    let out = shell.run(client_add, &[]).await;
    let client_id = printed(&out, "client_id:");
    let client_secret = printed(&out, "client_secret:");
    shell.run(person_add, &[]).await;
    let id_number = person_add
        .split_whitespace()
        .skip_while(|w| *w != "--id-number")
        .nth(1)
        .unwrap()
        .to_owned();
    let password = person_add.split('\'').nth(1).unwrap().to_owned();

    // 3.: the provider, until discovery answers.
    let mut provider = shell
        .bash(&shell.substitute(serve), &[])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http()
        .get(format!("{}/.well-known/openid-configuration", shell.base))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(provider.try_wait().unwrap().is_none(), "the run command exited");
        assert!(started.elapsed() < Duration::from_secs(60), "no discovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // By hand: the PKCE pair and the authorization URL, as the README computes them.
    let (setup, exchange) = by_hand.split_at(3);
    let mut script = setup.join("\n");
    script.push_str("\nprintf 'verifier=%s\\n' \"$verifier\"");
    let out = shell.run(&script, &[("CLIENT_ID", &client_id)]).await;
    let url = out
        .lines()
        .find(|l| l.starts_with(&shell.base))
        .unwrap_or_else(|| panic!("no authorization URL printed: {out}"))
        .to_owned();
    let verifier = printed(&out, "verifier=");
    assert!(url.starts_with(&format!("{}/authorize?", shell.base)), "{url}");

    // The person opens it, logs in and consents.
    let back = Browser::new(&shell.base)
        .sign_in(&url, &id_number, &password)
        .await;
    let params = back.params();
    assert_eq!(params["state"], "xyz");
    let code = params["code"].clone();

    // The token request and the userinfo call, as written.
    let [token_request, userinfo_request] = exchange else {
        panic!("by hand ends with the token request and the userinfo call: {exchange:?}");
    };
    let env = [
        ("CLIENT_ID", client_id.as_str()),
        ("CLIENT_SECRET", client_secret.as_str()),
        ("CODE", code.as_str()),
        ("verifier", verifier.as_str()),
    ];
    let tokens: Value = serde_json::from_str(&shell.run(token_request, &env).await).unwrap();
    let access_token = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let info: Value = serde_json::from_str(
        &shell
            .run(userinfo_request, &[("ACCESS_TOKEN", &access_token)])
            .await,
    )
    .unwrap();
    assert_eq!(info["name"], "张三", "{info}");
    provider.kill().await.unwrap();
}
