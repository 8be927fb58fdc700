//! The server under test: a `yunid` process started from the built binary (pinned to core 0), its
//! database and keys in a temporary folder, and what the driver seeds into it through the library.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use yunid::services::registry::NewClient;
use yunid::{App, Config};

use crate::ServerArgs;
use crate::inbox::Inbox;
use crate::softkey::SoftKey;

/// Pins this process (all threads) to `core` when the machine has it and `taskset` exists.
pub fn pin_self(core: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= core {
        eprintln!("not pinning the driver: only {cores} core(s) visible");
        return;
    }
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-cp", &core.to_string(), &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("taskset failed: the driver is not pinned");
    }
}

/// Whether `taskset` can be run (util-linux); without it nothing is pinned.
pub fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Clock ticks per second for `/proc/<pid>/stat` (getconf CLK_TCK; 100 on Linux in practice).
pub fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of every PostgreSQL process on this machine (the server's backends among them), in clock
/// ticks: what the database spends, which the yunid process's own figure leaves out.
pub fn postgres_ticks() -> u64 {
    ticks_of("postgres")
}

/// utime + stime of every Redis server on this machine (the store of the Redis-backed peer), in clock
/// ticks.
pub fn redis_ticks() -> u64 {
    ticks_of("redis-server")
}

/// utime + stime of every process whose command name is `comm`, in clock ticks.
fn ticks_of(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .map(cpu_ticks)
        .sum()
}

/// utime + stime of a process (all its threads, including exited ones), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name may contain spaces; fields after ") " start at field 3 (state).
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Resident set size in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// A free port on loopback (bound and released; the server binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A folder under the system temp dir, removed on drop unless kept.
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str, keep: bool) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A process the driver started, pinned to core 0 unless told otherwise.
pub struct Proc {
    /// `None` for a process we did not start (`attach`): never killed by us.
    child: Option<Child>,
    pub pid: u32,
    pub base: String,
    pub log: PathBuf,
    pinned: bool,
}

impl Proc {
    /// Starts `bin args…` (with `taskset -c 0` when pinning) and waits for `base + health` to answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn spawn(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        pin: bool,
        wrap: &[String],
        base: String,
        health: &str,
        log: PathBuf,
    ) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(&log)?;
        // [taskset -c 0] [wrapper …] bin args…
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if pin {
            argv.extend(["taskset", "-c", "0"].map(Into::into));
        }
        argv.extend(wrap.iter().map(Into::into));
        argv.push(bin.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // The server reads only what we give it: no YUNID_* from the driver's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("YUNID_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let mut proc = Proc {
            child: Some(child),
            pid,
            base,
            log,
            pinned: pin,
        };
        let http = http_client().build()?;
        let deadline = Instant::now() + Duration::from_secs(if wrap.is_empty() { 60 } else { 600 });
        loop {
            if let Some(Ok(Some(status))) = proc.child.as_mut().map(Child::try_wait) {
                anyhow::bail!("{} exited ({status}): {}", bin.display(), proc.log_tail());
            }
            if let Ok(r) = http.get(format!("{}{health}", proc.base)).send().await
                && r.status().is_success()
            {
                return Ok(proc);
            }
            if Instant::now() > deadline {
                proc.kill();
                anyhow::bail!("{} did not answer in time: {}", bin.display(), proc.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid)
    }

    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid)
    }

    pub fn describe(&self) -> &'static str {
        match (&self.child, self.pinned) {
            (None, _) => "attached",
            (Some(_), true) => "pinned to core 0",
            (Some(_), false) => "not pinned",
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops our own child (never an attached process): SIGTERM so that yunid drains and a profiler
    /// wrapping it writes its output, then SIGKILL after ten seconds.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A server someone else started (the peer): measured through its pid, never stopped by us.
    pub fn attach(pid: u32, base: String) -> Proc {
        Proc {
            child: None,
            pid,
            base,
            log: PathBuf::new(),
            pinned: false,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client builder for the driver: `localhost` is 127.0.0.1 (never ::1, never the resolver), so the
/// server's issuer can be `http://localhost:<port>` while it listens on IPv4 loopback only.
pub fn http_client() -> reqwest::ClientBuilder {
    // The port comes from each URL; the one here is ignored.
    reqwest::Client::builder().resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Credentials of a registered client.
#[derive(Clone, Debug)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub use crate::seed::PASSWORD;
const WEBHOOK_SECRET: &str = "bench-webhook-secret-0123456789";

/// Where a provider's endpoints are: yunid's own paths, or the peer's from its discovery document.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub introspect: String,
    pub userinfo: String,
}

impl Endpoints {
    fn yunid(base: &str) -> Endpoints {
        Endpoints {
            authorize: format!("{base}/authorize"),
            token: format!("{base}/token"),
            introspect: format!("{base}/introspect"),
            userinfo: format!("{base}/userinfo"),
        }
    }

    /// The endpoints a provider names in `/.well-known/openid-configuration`.
    async fn discover(base: &str) -> anyhow::Result<Endpoints> {
        let url = format!("{base}/.well-known/openid-configuration");
        let r = reqwest::get(&url).await?;
        anyhow::ensure!(r.status().is_success(), "discovery {url}: HTTP {}", r.status());
        let doc: serde_json::Value = r.json().await?;
        let get = |key: &str| {
            doc[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("discovery {url}: no {key}"))
        };
        Ok(Endpoints {
            authorize: get("authorization_endpoint")?,
            token: get("token_endpoint")?,
            introspect: get("introspection_endpoint")?,
            userinfo: get("userinfo_endpoint")?,
        })
    }
}

/// Everything a scenario needs: the running server and what was seeded into it.
pub struct Bench {
    pub server: Proc,
    pub base: String,
    pub endpoints: Endpoints,
    /// The peer (node oidc-provider): its own login and consent pages, no SMS.
    pub is_peer: bool,
    pub cc: Creds,
    pub code: Creds,
    pub inbox: Arc<Inbox>,
    /// Persons 0..persons exist (see `seed::person`).
    pub persons: usize,
    /// The driver's own App on the same database and keys (seeding); `None` for an attached peer.
    pub setup_app: Option<App>,
    /// What the results call the database (`sqlite`, `postgres`, or the peer's name).
    pub label: String,
    pub pin: bool,
    pub dir: TempDir,
    /// The software authenticator registered for a person (by seed index), kept across scenarios so
    /// each person enrols once.
    pub passkeys: Mutex<HashMap<usize, Arc<SoftKey>>>,
    pg: Option<(String, String)>,
}

fn server_bin(args: &ServerArgs) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.server_bin {
        return Ok(b.clone());
    }
    let me = std::env::current_exe()?;
    let bin = me
        .parent()
        .map(|d| d.join("yunid"))
        .ok_or_else(|| anyhow::anyhow!("no folder for the yunid binary"))?;
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: build it first (cargo build --release --workspace --bins) or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

async fn create_pg_database(admin: &str) -> anyhow::Result<(String, String)> {
    let name = format!("yunid_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .ok_or_else(|| anyhow::anyhow!("the PostgreSQL URL has no database part"))?;
    Ok((format!("{base}/{name}"), name))
}

impl Bench {
    pub async fn start(args: &ServerArgs, persons: usize) -> anyhow::Result<Bench> {
        let bin = server_bin(args)?;
        let dir = TempDir::new("yunid-bench", args.keep)?;
        let keys_dir = dir.path.join("keys");
        let (database_url, pg) = match args.db.as_str() {
            "sqlite" => (format!("sqlite://{}/yunid.db", dir.path.display()), None),
            "postgres" => {
                let (url, name) = create_pg_database(&args.pg).await?;
                (url.clone(), Some((args.pg.clone(), name)))
            }
            other => anyhow::bail!("--db must be sqlite or postgres, not {other}"),
        };
        let inbox = Inbox::start().await?;
        let port = free_port()?;
        // WebAuthn needs a domain for the relying party: the issuer is `localhost`, the listener stays on
        // 127.0.0.1, and every client of the driver resolves `localhost` to it (see `http_client`).
        let base = format!("http://localhost:{port}");
        let toml = format!(
            "issuer = \"{base}\"\n\
             listen = \"127.0.0.1:{port}\"\n\
             database_url = \"{database_url}\"\n\
             database_max_connections = {conns}\n\
             keys_dir = \"{keys}\"\n\
             sms_gateway = \"webhook\"\n\
             sms_webhook_url = \"{webhook}\"\n\
             sms_webhook_secret = \"{WEBHOOK_SECRET}\"\n\
             sms_resend_cooldown = 0\n\
             sms_per_phone_hour = 1000000000\n\
             sms_per_address_hour = 1000000000\n\
             trusted_proxies = [\"127.0.0.1\"]\n",
            conns = args.db_connections,
            keys = keys_dir.display(),
            webhook = inbox.url,
        );
        let config_path = dir.path.join("yunid.toml");
        std::fs::write(&config_path, &toml)?;
        // The driver's own App on the same database and keys: migrates, creates the keys, seeds.
        // The file alone: the driver's own YUNID_* environment must not change what it seeds.
        let mut config: Config =
            figment::Figment::from(figment::providers::Serialized::defaults(Config::default()))
                .merge(<figment::providers::Toml as figment::providers::Format>::file(
                    &config_path,
                ))
                .extract()?;
        config.check()?;
        config.database_max_connections = 4;
        let setup_app = App::new(config).await?;
        let cc = setup_app
            .registry()
            .add_client(
                NewClient {
                    name: "bench service".into(),
                    scopes: vec!["api".into()],
                    grant_types: vec!["client_credentials".into()],
                    ..NewClient::default()
                },
                setup_app.now(),
            )
            .await?;
        let alg = yunid::keys::Alg::parse(&args.id_token_alg)
            .ok_or_else(|| anyhow::anyhow!("unknown --id-token-alg {}", args.id_token_alg))?;
        let code = setup_app
            .registry()
            .add_client(
                NewClient {
                    name: "bench app".into(),
                    redirect_uris: vec![REDIRECT_URI.into()],
                    id_token_alg: alg,
                    ..NewClient::default()
                },
                setup_app.now(),
            )
            .await?;
        crate::seed::seed_range(&setup_app, 0, persons).await?;
        let config_arg = config_path.display().to_string();
        let pin = !args.no_pin && has_taskset();
        let server = Proc::spawn(
            &bin,
            &["--config", &config_arg, "serve"],
            &[("RUST_LOG", args.server_log.as_str())],
            pin,
            &args
                .server_wrap
                .as_deref()
                .map(|w| w.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default(),
            base.clone(),
            "/healthz",
            dir.path.join("server.log"),
        )
        .await?;
        let creds = |(c, s): (yunid::store::clients::Client, Option<String>)| Creds {
            id: c.id,
            secret: s.unwrap_or_default(),
        };
        Ok(Bench {
            server,
            endpoints: Endpoints::yunid(&base),
            is_peer: false,
            base,
            cc: creds(cc),
            code: creds(code),
            inbox,
            persons,
            label: args.db.clone(),
            setup_app: Some(setup_app),
            pin,
            dir,
            passkeys: Mutex::default(),
            pg,
        })
    }

    /// A provider that is already running (the peer), with its service and app clients; `persons` is
    /// how many login names the login scenarios cycle through (the peer signs in any name).
    pub async fn attach(
        pid: u32,
        base: String,
        cc: Creds,
        code: Creds,
        persons: usize,
        label: String,
    ) -> anyhow::Result<Bench> {
        Ok(Bench {
            server: Proc::attach(pid, base.clone()),
            endpoints: Endpoints::discover(&base).await?,
            is_peer: true,
            base,
            code,
            cc,
            inbox: Inbox::start().await?,
            persons,
            setup_app: None,
            label,
            pin: false,
            dir: TempDir::new("yunid-bench-peer", false)?,
            passkeys: Mutex::default(),
            pg: None,
        })
    }

    pub async fn stop(mut self) {
        self.server.kill();
        if let Some(app) = &self.setup_app {
            app.db.pool.close().await;
        }
        if let Some((admin, name)) = self.pg.take()
            && let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
        {
            let _ = sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
            )
            .await;
        }
    }
}
