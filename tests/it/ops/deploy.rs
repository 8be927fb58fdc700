//! The deployment files as the platform reads them: the `yunid` binary started with exactly the
//! environment the Kubernetes Deployment, the compose file and the systemd unit give it becomes ready —
//! with the variables Kubernetes adds for a Service named `yunid` (`YUNID_PORT=tcp://…`,
//! `YUNID_SERVICE_HOST`, …) logged by name and ignored. A configuration mistake is one line on standard
//! error and a non-zero exit, never a backtrace.
//!
//! What the test machine substitutes, and nothing else: the port in `YUNID_LISTEN` (a free one), the
//! database (the test's own, on each backend) and the keys folder (prepared the way `secret.yaml` says).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::yunid;
use crate::common::{Backend, TestDb, http};
use crate::on_both_backends;

/// Variables Kubernetes puts into every pod of the namespace for the Service `yunid` (port 80, named
/// `http`) unless `enableServiceLinks: false`, and for a neighbour Service `yunid-metrics`.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("YUNID_SERVICE_HOST", "10.96.12.34"),
    ("YUNID_SERVICE_PORT", "80"),
    ("YUNID_SERVICE_PORT_HTTP", "80"),
    ("YUNID_PORT", "tcp://10.96.12.34:80"),
    ("YUNID_PORT_80_TCP", "tcp://10.96.12.34:80"),
    ("YUNID_PORT_80_TCP_PROTO", "tcp"),
    ("YUNID_PORT_80_TCP_PORT", "80"),
    ("YUNID_PORT_80_TCP_ADDR", "10.96.12.34"),
    ("YUNID_METRICS_SERVICE_HOST", "10.96.12.35"),
    ("YUNID_METRICS_PORT", "tcp://10.96.12.35:9090"),
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document of a file, with merge keys (`<<: *yunid`) applied.
fn documents(path: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(path))
        .map(|d| {
            let mut v = Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}"));
            v.apply_merge().unwrap_or_else(|e| panic!("{path}: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// A YAML mapping of names to scalars, as environment variables (numbers and booleans as written).
fn variables(map: &Value) -> Vec<(String, String)> {
    let Some(map) = map.as_mapping() else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{k:?}: not a scalar: {other:?}"),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// The image's `ENV` (deploy/Dockerfile): `K=V` pairs, continued over lines ending in `\`.
fn image_env() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile");
    let mut env = Vec::new();
    let mut in_env = false;
    for line in text.lines() {
        let line = line.trim();
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    assert!(!env.is_empty(), "the Dockerfile sets no ENV");
    env
}

/// The environment of the Deployment's `yunid` container: the image's `ENV`, then each `envFrom`
/// (the ConfigMap's `data`, the Secret's `stringData`, found by name in deploy/k8s/), then `env`.
fn kubernetes_env() -> Vec<(String, String)> {
    let docs: Vec<Value> = ["configmap", "secret", "deployment"]
        .iter()
        .flat_map(|f| documents(&format!("deploy/k8s/{f}.yaml")))
        .collect();
    let named = |kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
            .clone()
    };
    let deployment = named("Deployment", "yunid");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "yunid")
        .unwrap();
    let mut env = image_env();
    for source in container["envFrom"].as_sequence().unwrap() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            env.extend(variables(&named("ConfigMap", name)["data"]));
        }
        if let Some(name) = source["secretRef"]["name"].as_str() {
            env.extend(variables(&named("Secret", name)["stringData"]));
        }
    }
    for var in container["env"].as_sequence().into_iter().flatten() {
        env.push((
            var["name"].as_str().unwrap().to_owned(),
            var["value"].as_str().unwrap().to_owned(),
        ));
    }
    env
}

/// The environment of the compose file's yunid nodes: the image's `ENV`, then the shared `environment`.
fn compose_env() -> Vec<(String, String)> {
    let compose = &documents("deploy/compose.yaml")[0];
    let node = &compose["services"]["yunid-a"];
    assert!(node["environment"].is_mapping(), "yunid-a has its environment");
    let mut env = image_env();
    env.extend(variables(&node["environment"]));
    env
}

/// The systemd unit's `Environment=` lines.
fn systemd_env() -> Vec<(String, String)> {
    read("deploy/yunid.service")
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The last value each variable is given (later sources override earlier ones, as on the platform).
fn last_wins(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        out.retain(|(key, _)| *key != k);
        out.push((k, v));
    }
    out
}

/// `YUNID_KEYS_DIR=./keys yunid keys list`, as deploy/k8s/secret.yaml prepares the keys Secret.
async fn prepared_keys(dir: &Path) {
    let out = yunid()
        .args(["keys", "list"])
        .env("YUNID_KEYS_DIR", dir.join("keys"))
        .env(
            "YUNID_DATABASE_URL",
            format!("sqlite://{}/local.db", dir.display()),
        )
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Starts `yunid serve` with `env` (three substitutions, see the module comment) and waits until it is
/// ready and discovery answers; returns the discovery document and the log.
async fn serve_as_deployed(backend: Backend, env: Vec<(String, String)>) -> (serde_json::Value, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    prepared_keys(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env: Vec<(String, String)> = last_wins(env)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            // The pod listens on all interfaces of its own network namespace; here, loopback.
            "YUNID_LISTEN" => (k, format!("127.0.0.1:{port}")),
            "YUNID_DATABASE_URL" => (k, db.url.clone()),
            "YUNID_KEYS_DIR" => (k, dir.path().join("keys").display().to_string()),
            _ => (k, v),
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "YUNID_LISTEN"), "{env:?}");
    let log = dir.path().join("yunid.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = yunid()
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(res) = http().get(format!("{base}/readyz")).send().await
            && res.status() == StatusCode::OK
        {
            break;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            child.try_wait().unwrap().is_none(),
            "yunid exited with {env:?}: {text}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "not ready: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = http()
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let discovery = res.json().await.unwrap();
    child.kill().await.unwrap();
    (discovery, std::fs::read_to_string(&log).unwrap())
}

fn value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

async fn the_kubernetes_deployment_starts_despite_service_links(backend: Backend) {
    let mut env = kubernetes_env();
    let issuer = value(&env, "YUNID_ISSUER").to_owned();
    env.extend(SERVICE_LINKS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (discovery, log) = serve_as_deployed(backend, env).await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    // Named in a warning, values never.
    let warning = log
        .lines()
        .find(|l| l.contains("not yunid settings"))
        .unwrap_or_else(|| panic!("no warning about the service links: {log}"));
    for (name, _) in SERVICE_LINKS {
        assert!(warning.contains(name), "{name} not named: {warning}");
    }
    assert!(!log.contains("tcp://10.96"), "{log}");
}

async fn the_compose_nodes_start(backend: Backend) {
    let env = compose_env();
    let issuer = value(&env, "YUNID_ISSUER").to_owned();
    let (discovery, log) = serve_as_deployed(backend, env).await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert!(!log.contains("not yunid settings"), "{log}");
}

async fn the_systemd_unit_starts(backend: Backend) {
    let (discovery, _) = serve_as_deployed(backend, systemd_env()).await;
    assert_eq!(discovery["issuer"], "http://localhost:8080");
}

on_both_backends!(
    the_kubernetes_deployment_starts_despite_service_links,
    the_compose_nodes_start,
    the_systemd_unit_starts,
);

#[test]
fn every_variable_the_deploy_files_set_is_a_setting() {
    let mut known: Vec<String> = ::yunid::Config::keys()
        .iter()
        .map(|k| format!("YUNID_{}", k.to_ascii_uppercase()))
        .collect();
    // Read by the command line rather than the configuration.
    known.extend(["YUNID_CONFIG".into(), "YUNID_LOG_FORMAT".into()]);
    let all = [image_env(), kubernetes_env(), compose_env(), systemd_env()].concat();
    assert!(all.len() > 10, "{all:?}");
    for (name, _) in all {
        assert!(known.contains(&name), "{name} in deploy/ is not a yunid setting");
    }
}

#[test]
fn the_deployment_turns_service_links_off() {
    let docs = documents("deploy/k8s/deployment.yaml");
    let pod = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(pod["enableServiceLinks"], Value::Bool(false), "{pod:?}");
}

/// `yunid` with `args` and `env`, expected to stop at once: its exit code and standard error.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let run = yunid()
        .args(args)
        .current_dir(dir.path())
        .env("YUNID_LISTEN", "127.0.0.1:0")
        .env(
            "YUNID_DATABASE_URL",
            format!("sqlite://{}/yunid.db", dir.path().display()),
        )
        .env("YUNID_KEYS_DIR", dir.path().join("keys"))
        .envs(env.iter().copied())
        // A panic or an error's Debug form would print a backtrace with this.
        .env("RUST_BACKTRACE", "1")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("yunid started instead of refusing its configuration")
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    (out.status.code().unwrap(), stderr)
}

#[tokio::test]
async fn an_unknown_key_in_the_file_is_one_line_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("yunid.toml");
    std::fs::write(&file, "issuer = \"https://id.example.gov.cn\"\nport = 8080\n").unwrap();
    let (code, stderr) = refused(&["--config", file.to_str().unwrap(), "serve"], &[]).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown setting `port`"), "{stderr}");
    assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("listen"), "what is allowed: {stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}

#[tokio::test]
async fn a_bad_variable_is_one_line_naming_it_and_what_is_allowed() {
    let (code, stderr) = refused(&["serve"], &[("YUNID_LISTEN", "everywhere")]).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("YUNID_LISTEN"), "{stderr}");
    assert!(stderr.contains("expected an address and port"), "{stderr}");

    let (code, stderr) = refused(&["serve"], &[("YUNID_CODE_TTL", "600")]).await;
    assert_ne!(code, 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("code_ttl must be 1..=60"), "{stderr}");
}
