//! Three real `yunid` processes, started the way an operator (or the container) starts them — the
//! binary, `YUNID_*` variables, one PostgreSQL database, one keys folder, one issuer, each on its own
//! port — and a browser whose every step lands on a different node, as a load balancer without sticky
//! sessions sends it. PostgreSQL only: SQLite is the single-node mode by design.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::walk::{Tokens, Visitor, authorize_path, finish, flow, token, userinfo};
use super::{CALLBACK, yunid};
use crate::common::browser::field;
use crate::common::wire::{self, verify_jws};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, PASSWORD, TestClient, TestDb, pkce};

struct Node {
    base: String,
    child: tokio::process::Child,
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `yunid <args>` against the cluster's database and keys; returns standard output.
async fn cli(db: &str, keys: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use tokio::io::AsyncWriteExt;
    let mut cmd = yunid();
    cmd.args(args)
        .env("YUNID_DATABASE_URL", db)
        .env("YUNID_KEYS_DIR", keys)
        .env("YUNID_ARGON2_MEMORY_KIB", "1024")
        .env("YUNID_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "yunid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `yunid person add` for Alice, with her password on standard input.
async fn add_alice(db: &str, keys: &Path) {
    let person = [
        "person",
        "add",
        "--id-number",
        ALICE_ID,
        "--name",
        "张三",
        "--phone",
        ALICE_PHONE,
        "--password-stdin",
    ];
    cli(db, keys, &person, Some(PASSWORD)).await;
}

/// Starts `yunid serve` and waits until it is ready. JSON logs go to `logs/<name>.log`.
async fn start(name: &str, db: &str, keys: &Path, issuer: &str, logs: &Path) -> Node {
    start_with(name, db, keys, issuer, logs, &[]).await
}

/// `start` with more `YUNID_*` variables.
async fn start_with(
    name: &str,
    db: &str,
    keys: &Path,
    issuer: &str,
    logs: &Path,
    extra: &[(&str, &str)],
) -> Node {
    let addr = free_port();
    let log = logs.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = yunid()
        .arg("serve")
        .envs(extra.iter().copied())
        .env("YUNID_ISSUER", issuer)
        .env("YUNID_LISTEN", addr.to_string())
        .env("YUNID_DATABASE_URL", db)
        .env("YUNID_KEYS_DIR", keys)
        .env("YUNID_DATABASE_MAX_CONNECTIONS", "4")
        .env("YUNID_ARGON2_MEMORY_KIB", "1024")
        .env("YUNID_ARGON2_ITERATIONS", "1")
        .env("YUNID_LOG_FORMAT", "json")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    let started = Instant::now();
    loop {
        if let Ok(res) = crate::common::http().get(format!("{base}/readyz")).send().await
            && res.status() == StatusCode::OK
        {
            break;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} did not start: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Node { base, child }
}

/// Each flow of the stream: whether it began after the kill, and how it ended.
type Outcomes = Arc<Mutex<Vec<(bool, Result<Tokens, String>)>>>;

/// The nodes flows may use; after the kill, `after_kill` marks flows that began without the dead node.
struct Live {
    nodes: Vec<String>,
    after_kill: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_serve_one_flow_and_survive_a_kill() {
    // No in-process server here to install the TLS crypto provider the HTTP client wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(Backend::Postgres).await;
    let keys = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    // The operator prepares the database and the keys once, before any node starts.
    cli(&db.url, keys.path(), &["migrate"], None).await;
    cli(&db.url, keys.path(), &["keys", "list"], None).await;
    let out = cli(
        &db.url,
        keys.path(),
        &["client", "add", "--name", "社保服务", "--redirect-uri", CALLBACK],
        None,
    )
    .await;
    let client = client_from(&out, CALLBACK);
    add_alice(&db.url, keys.path()).await;

    // One issuer (what the load balancer presents); three nodes behind it.
    let issuer_addr = free_port();
    let issuer = format!("http://{issuer_addr}");
    let mut a = start("a", &db.url, keys.path(), &issuer, logs.path()).await;
    let mut b = start("b", &db.url, keys.path(), &issuer, logs.path()).await;
    let mut c = start("c", &db.url, keys.path(), &issuer, logs.path()).await;
    let (na, nb, nc) = (a.base.clone(), b.base.clone(), c.base.clone());

    // 1. One flow, every step elsewhere: authorize on A, login page on C, login POST on B, resume on C,
    //    consent on A and B, the last redirect on C; code redeemed on A, refreshed on B, userinfo on C.
    let (verifier, challenge) = pkce();
    let mut v = Visitor::new();
    let reply = v.get(&na, &authorize_path(&client, &challenge)).await.unwrap();
    assert!(reply.location.as_deref().unwrap().starts_with("/login?"));
    let mut hops = [&nc, &nb, &nc, &na, &nb, &nc].into_iter().cycle().cloned();
    let code = v.walk(reply, &mut hops).await.unwrap();
    let first = finish(&client, &code, &verifier, [&na, &nb, &nc]).await.unwrap();
    // Every node publishes the keys any node signs with.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first.refresh.as_str()),
    ];
    let again = token(&nc, &client, &form).await.unwrap();
    for base in [&na, &nb, &nc] {
        let jwks = wire::jwks(base).await;
        let (_, claims) = verify_jws(&jwks, again["id_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["sub"], first.sub.as_str());
    }

    // 2. A stream of flows over all three nodes; C is killed (SIGKILL) in the middle of it.
    let live = Arc::new(RwLock::new(Live {
        nodes: vec![na.clone(), nb.clone(), nc.clone()],
        after_kill: false,
    }));
    let results: Outcomes = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (live, results, stop, client) = (live.clone(), results.clone(), stop.clone(), client.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (nodes, after_kill) = {
                    let l = live.read().unwrap();
                    (l.nodes.clone(), l.after_kill)
                };
                let outcome = flow(&client, &nodes, i % nodes.len()).await;
                results.lock().unwrap().push((after_kill, outcome));
                i += 1;
            }
        }));
    }
    let count = |after: bool, ok: bool| {
        let r = results.lock().unwrap();
        r.iter().filter(|(k, o)| *k == after && o.is_ok() == ok).count()
    };
    let wait_for = |after: bool, n: usize| async move {
        let started = Instant::now();
        while count(after, true) + count(after, false) < n {
            assert!(started.elapsed() < Duration::from_secs(60), "the stream stalled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for(false, 6).await;

    // A flow C starts (authorize, login page, login) and acknowledges…
    let (verifier, challenge) = pkce();
    let mut orphan = Visitor::new();
    let reply = orphan
        .get(&nc, &authorize_path(&client, &challenge))
        .await
        .unwrap();
    let login_page = orphan.get(&nc, reply.location.as_deref().unwrap()).await.unwrap();
    let csrf = field(&login_page.body, "csrf").unwrap();
    let req = field(&login_page.body, "req").unwrap();
    let form = [
        ("csrf", csrf.as_str()),
        ("req", &req),
        ("username", ALICE_ID),
        ("password", PASSWORD),
    ];
    let logged_in = orphan.post(&nc, "/login", &form).await.unwrap();
    assert!(logged_in.status.is_redirection(), "{}", logged_in.body);

    // …and then C dies without a chance to flush or say goodbye.
    {
        let mut l = live.write().unwrap();
        l.nodes.retain(|n| *n != nc);
        l.after_kill = true;
    }
    c.child.start_kill().unwrap();
    c.child.wait().await.unwrap();
    wait_for(true, 6).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    // The flow C started finishes on A and B.
    let mut hops = [&na, &nb].into_iter().cycle().cloned();
    let code = orphan.walk(logged_in, &mut hops).await.unwrap();
    let orphan_tokens = finish(&client, &code, &verifier, [&nb, &na, &nb]).await.unwrap();
    assert_eq!(orphan_tokens.sub, first.sub);

    // Every flow that was acknowledged is intact on the survivors; every flow begun after the kill worked.
    let results = std::mem::take(&mut *results.lock().unwrap());
    let failed_after: Vec<_> = results.iter().filter(|(k, o)| *k && o.is_err()).collect();
    assert!(
        failed_after.is_empty(),
        "flows without C failed: {failed_after:?}"
    );
    let cut_off = results.iter().filter(|(k, o)| !*k && o.is_err()).count();
    let acknowledged: Vec<Tokens> = results.into_iter().filter_map(|(_, o)| o.ok()).collect();
    eprintln!(
        "{} flows acknowledged, {cut_off} cut off by the kill",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= 6, "{}", acknowledged.len());
    for (i, t) in acknowledged.iter().enumerate() {
        let (here, there) = if i % 2 == 0 { (&na, &nb) } else { (&nb, &na) };
        let info = userinfo(here, &t.access).await.unwrap();
        assert_eq!(info["sub"], t.sub.as_str());
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", t.refresh.as_str()),
        ];
        token(there, &client, &form).await.unwrap();
    }

    // Logs are JSON lines carrying the request id, and never a password, a token, a code or an ID number.
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    check_logs(
        &logs.path().join("a.log"),
        &[
            PASSWORD,
            ALICE_ID,
            &client.secret,
            &first.access,
            &first.refresh,
            &code,
        ],
    );

    // The container's health check is the binary itself; SIGTERM drains and exits cleanly.
    let listen = b.base.trim_start_matches("http://").to_owned();
    let health = yunid()
        .arg("health")
        .env("YUNID_LISTEN", &listen)
        .output()
        .await
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let pid = b.child.id().unwrap().to_string();
    let term = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), b.child.wait()).await;
    assert!(exit.expect("exits after SIGTERM").unwrap().success());
    let text = std::fs::read_to_string(logs.path().join("b.log")).unwrap();
    assert!(text.contains("draining requests"));
    let health = yunid()
        .arg("health")
        .env("YUNID_LISTEN", &listen)
        .output()
        .await
        .unwrap();
    assert!(!health.status.success());
}

fn check_logs(path: &PathBuf, secrets: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut requests = 0;
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if entry["fields"]["message"] == "request" {
            assert!(entry["span"]["request_id"].is_string(), "{line}");
            requests += 1;
        }
    }
    assert!(requests > 10, "{requests} request lines");
    for secret in secrets {
        assert!(!text.contains(secret), "a secret is in the log");
    }
}

/// What `yunid client add` printed: the client's id and secret.
fn client_from(out: &str, redirect_uri: &str) -> TestClient {
    let value = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label} in {out}"))
    };
    TestClient {
        id: value("client_id:"),
        secret: value("client_secret:"),
        redirect_uri: redirect_uri.into(),
    }
}

/// A relying party with a JWKS cache. A token with a kid it has not seen sends it to fetch the JWKS,
/// and whichever node the load balancer picks must serve that key: so each node is asked here.
#[derive(Default)]
struct Verifier {
    cache: std::collections::HashMap<String, Value>,
}

impl Verifier {
    async fn check(&mut self, nodes: &[String], token: &str) -> Result<String, String> {
        let kid = wire::jwt_parts(token).0["kid"]
            .as_str()
            .ok_or("no kid")?
            .to_owned();
        if !self.cache.contains_key(&kid) {
            for node in nodes {
                let jwks = wire::jwks(node).await;
                verify_jws(&jwks, token)
                    .map_err(|e| format!("{node} does not publish {kid}, which signed a token: {e}"))?;
                self.cache.insert(kid.clone(), jwks);
            }
        }
        verify_jws(&self.cache[&kid], token)?;
        Ok(kid)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_rotate_keys_during_a_stream_of_verifications_without_a_failure() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(Backend::Postgres).await;
    let keys = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    cli(&db.url, keys.path(), &["migrate"], None).await;
    let out = cli(
        &db.url,
        keys.path(),
        &[
            "client",
            "add",
            "--name",
            "数据交换",
            "--grant",
            "client_credentials",
        ],
        None,
    )
    .await;
    let client = client_from(&out, "");
    let issuer = format!("http://{}", free_port());
    // Nodes re-read the keys every half, one and a half, two and a half seconds: a node that signed
    // with a key as soon as it saw it would sign long before the slowest node publishes it. A next key
    // waits a second after every node has it.
    let mut nodes = Vec::new();
    for (name, every) in [("a", "500"), ("b", "1500"), ("c", "2500")] {
        let env = [
            ("YUNID_KEY_REFRESH_INTERVAL_MS", every),
            ("YUNID_KEY_PUBLISH_DELAY", "1"),
        ];
        nodes.push(start_with(name, &db.url, keys.path(), &issuer, logs.path(), &env).await);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // Two workers ask the nodes in turn for ES256 access tokens and verify each as a relying party.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    type Seen = Arc<Mutex<Vec<(usize, Result<String, String>)>>>;
    let seen: Seen = Arc::default();
    let mut workers = Vec::new();
    for w in 0..2 {
        let (stop, seen, bases, client) = (stop.clone(), seen.clone(), bases.clone(), client.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            let mut rp = Verifier::default();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let node = i % bases.len();
                let form = [("grant_type", "client_credentials")];
                let outcome = match token(&bases[node], &client, &form).await {
                    Ok(body) => {
                        rp.check(&bases, body["access_token"].as_str().unwrap_or(""))
                            .await
                    }
                    Err(e) => Err(format!("token from node {node}: {e}")),
                };
                seen.lock().unwrap().push((node, outcome));
                i += 1;
            }
        }));
    }
    let count = |seen: &Seen| seen.lock().unwrap().len();
    let started = Instant::now();
    while count(&seen) < 100 {
        assert!(started.elapsed() < Duration::from_secs(30), "the stream stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old: String = seen.lock().unwrap()[0].1.clone().unwrap();

    // An operator rotates on any node's command line, in the middle of the stream.
    let out = cli(&db.url, keys.path(), &["keys", "rotate"], None).await;
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("next ES256 key "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no next ES256 key in {out}"))
        .to_owned();

    // Until every node signs with the new key, and a little after.
    let signs_new = |seen: &Seen, node: usize| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(n, o)| *n == node && o.as_deref() == Ok(next.as_str()))
    };
    let started = Instant::now();
    while !(0..3).all(|n| signs_new(&seen, n)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every node signs with the new key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = count(&seen);
    while count(&seen) < total + 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let failures: Vec<_> = seen.iter().filter(|(_, o)| o.is_err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let with = |kid: &str| seen.iter().filter(|(_, o)| o.as_deref() == Ok(kid)).count();
    eprintln!(
        "{} tokens verified: {} with the old key, {} with the new",
        seen.len(),
        with(&old),
        with(&next)
    );
    assert!(with(&old) >= 100 && with(&next) >= 100);
    assert_eq!(with(&old) + with(&next), seen.len());
    for mut n in nodes {
        n.child.start_kill().unwrap();
        n.child.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_add_up_failed_logins() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(Backend::Postgres).await;
    let keys = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    cli(&db.url, keys.path(), &["migrate"], None).await;
    add_alice(&db.url, keys.path()).await;
    let issuer = format!("http://{}", free_port());
    let limit = [("YUNID_LOGIN_MAX_FAILURES", "4")];
    let mut a = start_with("a", &db.url, keys.path(), &issuer, logs.path(), &limit).await;
    let mut b = start_with("b", &db.url, keys.path(), &issuer, logs.path(), &limit).await;
    let (at_a, at_b) = (Browser::new(&a.base), Browser::new(&b.base));

    // Two wrong passwords on each process: each alone is under the limit of four.
    for browser in [&at_a, &at_b, &at_a, &at_b] {
        let page = browser.get("/login").await;
        let page = browser.login(&page, ALICE_ID, "not the password").await;
        let (_, status, body) = page.html();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Together they reach it: the right password is refused by both.
    for browser in [&at_a, &at_b] {
        let page = browser.get("/login").await;
        let page = browser.login(&page, ALICE_ID, PASSWORD).await;
        let (_, status, body) = page.html();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    for n in [&mut a, &mut b] {
        n.child.start_kill().unwrap();
        n.child.wait().await.unwrap();
    }
}
