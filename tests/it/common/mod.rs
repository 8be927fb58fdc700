//! Test harness: a real yunid on port 0 with its own database (a fresh SQLite file, or a uniquely named
//! PostgreSQL database dropped afterwards), a cookie-keeping browser, and a real OIDC relying party.

#![allow(dead_code)]

pub mod authorities;
pub mod browser;
pub mod console;
pub mod fake_op;
pub mod jwks_server;
pub mod races;
pub mod receiver;
pub mod rp;
pub mod sms;
pub mod tools;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use yunid::services::registry::{NewClient, NewPerson};
use yunid::{App, Config};

pub use browser::Browser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed async test fn once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn pg_admin_url() -> String {
    std::env::var("YUNID_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        tools::require();
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/yunid.db", dir.path().display()),
                pg_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let name = format!("yunid_test_{}", uuid::Uuid::new_v4().simple());
                let admin = pg_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap();
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
                TestDb {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.pg_name.is_none()
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = pg_admin_url();
        // A fresh runtime on its own thread: Drop cannot await, and the test's runtime may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// One running yunid node.
pub struct Server {
    pub app: App,
    pub base: String,
    pub addr: SocketAddr,
    pub keys_dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        sms::forget_sender(&self.app);
    }
}

/// The test environment: a database, a keys folder, and the first node.
pub struct Env {
    pub db: TestDb,
    pub keys: tempfile::TempDir,
    pub server: Server,
}

impl std::ops::Deref for Env {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Env {
    pub async fn start(backend: Backend) -> Env {
        Env::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl Fn(&mut Config)) -> Env {
        capture_logs();
        let db = TestDb::new(backend).await;
        let keys = tempfile::tempdir().unwrap();
        let server = Server::start(&db.url, keys.path(), &tweak).await;
        Env { db, keys, server }
    }

    /// Another node on the same database and keys (what a cluster looks like).
    pub async fn second_node(&self) -> Server {
        Server::start(&self.db.url, self.keys.path(), &|_| {}).await
    }

    /// [`Env::peer_node`], its configuration tweaked.
    pub async fn peer_node_with(&self, tweak: impl Fn(&mut Config) + 'static) -> Server {
        let issuer = self.app.config.issuer.clone();
        Server::start(&self.db.url, self.keys.path(), &move |c: &mut Config| {
            c.issuer = issuer.clone();
            tweak(c);
        })
        .await
    }

    /// Another node on the same database and keys that answers for the same issuer as the first (so the
    /// tokens one node issues are valid on the other).
    pub async fn peer_node(&self) -> Server {
        let issuer = self.app.config.issuer.clone();
        Server::start(&self.db.url, self.keys.path(), &move |c: &mut Config| {
            c.issuer = issuer.clone()
        })
        .await
    }
}

pub fn test_config(db_url: &str, keys_dir: &Path, addr: SocketAddr) -> Config {
    Config {
        issuer: url::Url::parse(&format!("http://{addr}")).unwrap(),
        listen: addr,
        database_url: db_url.to_owned(),
        database_max_connections: 8,
        keys_dir: keys_dir.to_owned(),
        // Cheap hashing keeps tests fast; production defaults are exercised by the benchmarks.
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        // A rotated key signs as soon as every node publishes it (tests drive refreshes themselves).
        key_publish_delay: 0,
        // The test doubles of apps (JWKS servers, back-channel receivers) listen on loopback.
        client_outbound_allow: vec!["127.0.0.0/8".into(), "::1".into()],
        ..Config::default()
    }
}

impl Server {
    pub async fn start(db_url: &str, keys_dir: &Path, tweak: &dyn Fn(&mut Config)) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = test_config(db_url, keys_dir, addr);
        tweak(&mut config);
        let app = App::new(config).await.unwrap();
        app.spawn_background();
        // Its SMS go through an outbox: an inbox waits for it to drain before it shows what arrived.
        if let Some(url) = &app.config.sms_webhook_url {
            sms::watch_sender(url, &app);
        }
        let serving = app.clone();
        let task = tokio::spawn(async move {
            let _ = yunid::http::serve(serving, listener, std::future::pending()).await;
        });
        Server {
            base: format!("http://{addr}"),
            app,
            addr,
            keys_dir: keys_dir.to_owned(),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Registers a confidential code-flow client with one redirect URI.
    pub async fn client(&self, redirect_uri: &str) -> TestClient {
        self.client_with(NewClient {
            name: "测试应用".into(),
            redirect_uris: vec![redirect_uri.to_owned()],
            ..NewClient::default()
        })
        .await
    }

    pub async fn client_with(&self, new: NewClient) -> TestClient {
        let redirect_uri = new.redirect_uris.first().cloned().unwrap_or_default();
        let (client, secret) = self.app.registry().add_client(new, self.app.now()).await.unwrap();
        TestClient {
            id: client.id,
            secret: secret.unwrap_or_default(),
            redirect_uri,
        }
    }

    /// Creates a person who can log in with `password`.
    pub async fn person(&self, id_number: &str, phone: &str, password: &str) -> String {
        self.app
            .registry()
            .add_person(
                NewPerson {
                    id_number: id_number.into(),
                    name: "张三".into(),
                    phone: Some(phone.into()),
                    phone_verified: true,
                    password: Some(password.into()),
                },
                self.app.now(),
            )
            .await
            .unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
    pub redirect_uri: String,
}

/// Valid resident ID numbers for tests (GB 11643 check characters computed, not hard-coded).
pub fn resident_id(seq: u32) -> String {
    let body = format!("11010519900101{:03}", seq % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

pub const PASSWORD: &str = "correct horse battery";
pub const ALICE_ID: &str = "11010519491231002X";
pub const ALICE_PHONE: &str = "13800138000";

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = yunid::crypto::random_token();
    let challenge = yunid::crypto::b64url(&yunid::crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

/// A plain HTTP client that does not follow redirects or keep cookies (what an app's back end uses).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every server log line (yunid at trace, sqlx at debug) of this test binary into a buffer.
fn capture_logs() {
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,yunid=trace,sqlx=debug"))
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    });
}

/// Everything logged so far by any server in this test binary.
pub fn captured_logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}
