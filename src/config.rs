//! Configuration: one optional TOML file plus `YUNID_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

pub mod upstream;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public URL of this provider, the `iss` of every token (`YUNID_ISSUER`).
    pub issuer: Url,
    /// Address and port to listen on (`YUNID_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://data/yunid.db` (default) or `postgres://…` (`YUNID_DATABASE_URL`).
    pub database_url: String,
    /// Largest number of pooled database connections per node; 0 (the default) chooses: 16 on PostgreSQL,
    /// and on SQLite one more than the cores this process may use (at least 2). SQLite writes one
    /// transaction at a time, so more connections than cores only make writers wait on each other's locks
    /// (measured: refresh on one core, 16 connections 0.33 ms of CPU each, 2 connections 0.22 ms).
    pub database_max_connections: u32,
    /// Folder holding signing keys and the data-protection secret (`YUNID_KEYS_DIR`).
    pub keys_dir: PathBuf,
    /// The key-encryption key sealing the signing keys in the database, base64url of 32 bytes
    /// (`YUNID_KEY_ENCRYPTION_KEY`); when unset, `keys/kek.key` (created on first start). Every node
    /// needs the same one.
    pub key_encryption_key: Option<String>,
    /// Seconds a new signing key is published in every node's JWKS before it may sign (covers relying
    /// parties' JWKS caches; the JWKS is served with `max-age=60`).
    pub key_publish_delay: i64,
    /// How often a node re-reads the signing keys and reports what it publishes, milliseconds.
    pub key_refresh_interval_ms: u64,
    /// Lifetime of authorization codes, seconds (at most 60).
    pub code_ttl: i64,
    /// Lifetime of pushed authorization request URIs, seconds (at most 90).
    pub par_ttl: i64,
    /// Lifetime of access tokens, seconds (5–15 minutes).
    pub access_token_ttl: i64,
    /// Lifetime of ID tokens, seconds.
    pub id_token_ttl: i64,
    /// Idle lifetime of a refresh token, seconds: unused for this long, it dies.
    pub refresh_idle_ttl: i64,
    /// Absolute lifetime of a refresh-token family, seconds.
    pub refresh_absolute_ttl: i64,
    /// SSO session idle timeout, seconds.
    pub session_idle_ttl: i64,
    /// SSO session absolute lifetime, seconds.
    pub session_absolute_ttl: i64,
    /// Adding a credential (a passkey) needs a two-factor sign-in at most this old, seconds; an older
    /// or one-factor session is sent through a step-up first.
    pub credential_step_up_max_age: i64,
    /// How long a pending authorization request (login, consent) may take, seconds.
    pub auth_request_ttl: i64,
    /// Failed password logins allowed per account, and per client address, in `login_throttle_window`.
    pub login_max_failures: i64,
    /// Window for counting failed logins, seconds.
    pub login_throttle_window: i64,
    /// Argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
    /// Password checks that may wait for a free hashing thread (one per core); more are refused at
    /// once with "try again shortly" (HTTP 503) and cost no hash.
    pub password_hash_queue: usize,
    /// How often a back-channel logout delivery is tried before it is given up.
    pub backchannel_max_attempts: i64,
    /// A production deployment: development conveniences (the console SMS gateway) are refused.
    pub production: bool,
    /// `console` (development: codes go to the log) or `webhook`.
    pub sms_gateway: SmsGatewayKind,
    /// Where the webhook gateway POSTs messages.
    pub sms_webhook_url: Option<String>,
    /// HMAC-SHA256 key for the webhook's `X-Yunid-Signature` header.
    pub sms_webhook_secret: Option<String>,
    /// Lifetime of an SMS code, seconds (at most 300).
    pub sms_code_ttl: i64,
    /// Wrong codes allowed per attempt.
    pub sms_max_tries: i64,
    /// Seconds before another code may be sent to the same phone.
    pub sms_resend_cooldown: i64,
    /// Codes per phone per hour.
    pub sms_per_phone_hour: i64,
    /// Codes requested per client address per hour.
    pub sms_per_address_hour: i64,
    /// WebAuthn relying-party id (a domain; defaults to the issuer's host).
    pub webauthn_rp_id: Option<String>,
    /// Extra origins allowed for WebAuthn besides the issuer's.
    pub webauthn_origins: Vec<String>,
    /// Base URL of an upstream e-licence library to pull holders' licences from (optional).
    pub licence_upstream_url: Option<String>,
    /// Bearer token for the upstream library.
    pub licence_upstream_token: Option<String>,
    /// How long a login waits for the upstream library, milliseconds.
    pub licence_upstream_timeout_ms: u64,
    /// How long pulled licences are trusted before asking the library again, seconds.
    pub licence_upstream_ttl: i64,
    /// Days audit events are kept (GB/T 22239 asks at least 180); older ones are pruned, the chain stays verifiable.
    pub audit_retention_days: i64,
    /// Whether people may register themselves (at real-name level 1) on `/register`.
    pub self_registration: bool,
    /// Dynamic client registration (RFC 7591/7592) at `/connect/register`, for holders of an initial
    /// access token a super admin issued. Off by default.
    pub dynamic_registration: bool,
    /// Allow `http://` redirect URIs for clients (development only; loopback is always allowed).
    pub allow_insecure_redirects: bool,
    /// Reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<String>,
    /// Networks (IPs or CIDRs) that requests yunid makes for apps (their `jwks_uri`, their back-channel
    /// logout endpoint) may reach although they are not public: by default none, so an app can never
    /// point yunid at loopback, private, link-local or other internal addresses (server-side request
    /// forgery), whatever its URL's host name resolves to. Development with apps on this machine:
    /// `["127.0.0.0/8", "::1"]`; apps on a department network: that network (e.g. `10.20.0.0/16`).
    /// Self-registered apps may use `http://` only for an address literal inside these networks.
    pub client_outbound_allow: Vec<String>,
    /// Upstream OpenID Connect providers people may sign in through (`[[upstreams]]`; see the README).
    /// Written into the database at every start, replacing an upstream of the same id; more can be
    /// registered through the admin API. Their URLs are reached through the same guard as apps' URLs
    /// (`client_outbound_allow`).
    pub upstreams: Vec<upstream::UpstreamConfig>,
    /// Base URL of the population base database connector (docs/CONNECTORS.md); unset: off.
    pub proofing_population_url: Option<String>,
    /// Bearer token for the population connector.
    pub proofing_population_token: Option<String>,
    /// Base URL of the mobile carrier three-element check connector; unset: off.
    pub proofing_carrier_url: Option<String>,
    /// Bearer token for the carrier connector.
    pub proofing_carrier_token: Option<String>,
    /// Base URL of the face verification provider's server API; unset: off.
    pub proofing_face_url: Option<String>,
    /// Bearer token for the face verification provider.
    pub proofing_face_token: Option<String>,
    /// Base URL of the legal-person (market regulation) registry connector; unset: off.
    pub proofing_registry_url: Option<String>,
    /// Bearer token for the registry connector.
    pub proofing_registry_token: Option<String>,
    /// How long a page waits for one connector call, milliseconds; slower is "try later".
    pub proofing_timeout_ms: u64,
    /// Seconds after which a person's population record (and an enterprise's registry record) is asked
    /// again; a record found cancelled or deceased locks the account.
    pub proofing_recheck_ttl: i64,
    /// Proofing attempts (online checks, face sessions, enterprise bindings) per person a day.
    pub proofing_attempts_per_person: i64,
    /// Proofing attempts per client address a day.
    pub proofing_attempts_per_address: i64,
    /// Lifetime of a face verification session, seconds.
    pub proofing_face_session_ttl: i64,
    /// Lowest face comparison score (0–100) that passes, with liveness.
    pub proofing_face_min_score: i64,
    /// The face provider's page the browser is sent to, `?session=<session_id>` added (https; unset:
    /// `{proofing_face_url}/v1/face/page`). Never taken from the provider's answer.
    pub proofing_face_page_url: Option<String>,
    /// Seconds between proofing re-check sweeps (one node at a time runs one, by a lease in the database).
    pub proofing_sweep_interval: i64,
    /// Most enterprises one registry sweep may suspend, and most accounts one population sweep may lock:
    /// past it the sweep stops, logs a warning, counts `yunid_proofing_brake_total` and records an audit
    /// event `proofing.brake` (a burst is likelier a wrong answer stream than that many closures at once).
    pub proofing_suspend_brake: i64,
    /// Most bindings the registry sweep may restore automatically (an `active` answer after "gone") per
    /// rolling 24 hours across the cluster: past it the restore brake latches like the suspension brake
    /// (an "active for everything" answer stream cannot restore every suspended enterprise in one sweep).
    pub proofing_restore_brake: i64,
    /// How long a device code and its user code live (RFC 8628 §3.2 `expires_in`), in seconds.
    pub device_code_ttl: i64,
    /// The polling interval a device is told (RFC 8628 §3.2 `interval`), in seconds.
    pub device_poll_interval: i64,
    /// How long a scan-to-sign-in QR code on the login page can be scanned and answered, in seconds.
    pub scan_ttl: i64,
    /// Client ids of the province's mobile app(s): only their access tokens may answer a scanned login
    /// (see docs/SCAN-API.md). Empty: scan to sign in is off and the login page does not offer it.
    pub scan_apps: Vec<String>,
    /// Most scan-to-sign-in codes live at once across the deployment (0: no cap). Past it `/login/scan`
    /// answers 503 with `Retry-After` (each code lives `scan_ttl`); per-address limits come first.
    pub scan_max_live: i64,
    /// Most device codes live at once across the deployment (0: no cap). Past it
    /// `/device_authorization` answers 503 `temporarily_unavailable` with `Retry-After`.
    pub device_max_live: i64,
    /// New scan-to-sign-in codes, and device codes per app, one IPv4 address or IPv6 /64 may have at once
    /// (an IPv6 /48 four times as many); refused asks count too.
    pub new_code_burst: i64,
    /// Past the burst, one new code per this many milliseconds (a /48: four times as fast).
    pub new_code_interval_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: Url::parse("http://localhost:8080").unwrap_or_else(|_| unreachable!()),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/yunid.db".into(),
            database_max_connections: 0,
            keys_dir: PathBuf::from("keys"),
            key_encryption_key: None,
            key_publish_delay: 60,
            key_refresh_interval_ms: 5000,
            code_ttl: 60,
            par_ttl: 90,
            access_token_ttl: 600,
            id_token_ttl: 600,
            refresh_idle_ttl: 7 * 24 * 3600,
            refresh_absolute_ttl: 30 * 24 * 3600,
            session_idle_ttl: 30 * 60,
            session_absolute_ttl: 12 * 3600,
            credential_step_up_max_age: 600,
            auth_request_ttl: 30 * 60,
            login_max_failures: 10,
            login_throttle_window: 15 * 60,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            password_hash_queue: crate::services::password::DEFAULT_QUEUE,
            backchannel_max_attempts: 6,
            self_registration: false,
            audit_retention_days: 180,
            licence_upstream_url: None,
            licence_upstream_token: None,
            licence_upstream_timeout_ms: 2000,
            licence_upstream_ttl: 300,
            production: false,
            sms_gateway: SmsGatewayKind::Console,
            sms_webhook_url: None,
            sms_webhook_secret: None,
            sms_code_ttl: 300,
            sms_max_tries: 5,
            sms_resend_cooldown: 60,
            sms_per_phone_hour: 5,
            sms_per_address_hour: 20,
            webauthn_rp_id: None,
            webauthn_origins: Vec::new(),
            dynamic_registration: false,
            allow_insecure_redirects: false,
            trusted_proxies: Vec::new(),
            client_outbound_allow: Vec::new(),
            upstreams: Vec::new(),
            proofing_population_url: None,
            proofing_population_token: None,
            proofing_carrier_url: None,
            proofing_carrier_token: None,
            proofing_face_url: None,
            proofing_face_token: None,
            proofing_registry_url: None,
            proofing_registry_token: None,
            proofing_timeout_ms: 3000,
            proofing_recheck_ttl: 7 * 24 * 3600,
            proofing_attempts_per_person: 5,
            proofing_attempts_per_address: 20,
            proofing_face_session_ttl: 600,
            proofing_face_min_score: 80,
            proofing_face_page_url: None,
            proofing_sweep_interval: 300,
            proofing_suspend_brake: 20,
            proofing_restore_brake: 20,
            device_code_ttl: 600,
            device_poll_interval: 5,
            scan_ttl: 120,
            scan_apps: Vec::new(),
            scan_max_live: 200_000,
            device_max_live: 200_000,
            new_code_burst: crate::services::new_codes::BURST,
            new_code_interval_ms: crate::services::new_codes::INTERVAL_MS,
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then `YUNID_*` variables. Variables that name no setting
    /// (Kubernetes service links such as `YUNID_PORT=tcp://…` for a Service named `yunid`, a shell's
    /// leftovers) are logged by name and ignored; a key the file does not know is refused.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let (config, ignored) = Config::from_sources(file, Env::prefixed("YUNID_"))?;
        if !ignored.is_empty() {
            tracing::warn!(
                variables = %ignored.join(", "),
                "ignoring environment variables that are not yunid settings"
            );
        }
        Ok(config)
    }

    /// `load` with the environment given: the configuration and the names of the ignored variables.
    pub fn from_sources(
        file: Option<&std::path::Path>,
        env: Env,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // `file_exact`: a relative path is not looked for in parent folders, and a missing file is
            // an error rather than silently the defaults.
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "configuration file {}: not found (--config / YUNID_CONFIG)",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let known = Config::keys();
        // YUNID_CONFIG and YUNID_LOG_FORMAT are read by the command line, YUNID_TEST_* by the tests.
        let env = env
            .ignore(&["config", "log_format"])
            .filter(|k| !k.starts_with("test_"));
        let mut ignored: Vec<String> = env
            .iter()
            .map(|(k, _)| k.as_str().to_ascii_lowercase())
            .filter(|k| !known.contains(k))
            .map(|k| format!("YUNID_{}", k.to_ascii_uppercase()))
            .collect();
        ignored.sort();
        let env = env.filter(move |k| known.iter().any(|name| k == name.as_str()));
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::from_figment(e, file))?;
        config
            .check()
            .map_err(|e| ConfigError(format!("configuration: {e}")))?;
        Ok((config, ignored))
    }

    /// The setting names: the TOML keys, and `YUNID_` + the name in upper case in the environment.
    pub fn keys() -> Vec<String> {
        // Every field is serialised (none skipped), so the defaults name them all.
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=60).contains(&self.code_ttl),
            "code_ttl must be 1..=60 seconds"
        );
        anyhow::ensure!((1..=90).contains(&self.par_ttl), "par_ttl must be 1..=90 seconds");
        // A pending request is sealed under a day key that opens for two days at most (`Secrets::open_carried`).
        anyhow::ensure!(
            (60..=86_400).contains(&self.auth_request_ttl),
            "auth_request_ttl must be 60..=86400 seconds"
        );
        anyhow::ensure!(
            (0..=86_400).contains(&self.key_publish_delay),
            "key_publish_delay must be 0..=86400 seconds"
        );
        anyhow::ensure!(
            (100..=60_000).contains(&self.key_refresh_interval_ms),
            "key_refresh_interval_ms must be 100..=60000"
        );
        anyhow::ensure!(
            (60..=900).contains(&self.access_token_ttl),
            "access_token_ttl must be 60..=900 seconds"
        );
        anyhow::ensure!(
            (60..=300).contains(&self.sms_code_ttl),
            "sms_code_ttl must be 60..=300 seconds"
        );
        anyhow::ensure!(
            !(self.production && self.sms_gateway == SmsGatewayKind::Console),
            "the console SMS gateway is for development only; configure sms_gateway = \"webhook\" in production"
        );
        anyhow::ensure!(
            self.issuer.query().is_none() && self.issuer.fragment().is_none(),
            "issuer must have no query or fragment"
        );
        anyhow::ensure!(
            (60..=1800).contains(&self.device_code_ttl) && (1..=60).contains(&self.device_poll_interval),
            "device_code_ttl must be 60..=1800 and device_poll_interval 1..=60 seconds"
        );
        anyhow::ensure!(
            (30..=600).contains(&self.scan_ttl),
            "scan_ttl must be 30..=600 seconds"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&self.new_code_burst)
                && (4..=3_600_000).contains(&self.new_code_interval_ms)
                && self.scan_max_live >= 0
                && self.device_max_live >= 0,
            "new_code_burst must be 1..=100000, new_code_interval_ms 4..=3600000, and the live caps 0 or more"
        );
        self.trusted_proxy_nets()?;
        self.client_outbound_nets()?;
        for u in &self.upstreams {
            u.check(self.allow_insecure_redirects).map_err(|(field, why)| {
                anyhow::anyhow!(
                    "upstreams: {}: {field} {why}",
                    u.id.as_deref().unwrap_or("(no id)")
                )
            })?;
        }
        Ok(())
    }

    /// `trusted_proxies` parsed: each entry an address (`10.0.0.7`) or a network (`10.0.0.0/8`).
    pub fn trusted_proxy_nets(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        nets("trusted_proxies", &self.trusted_proxies)
    }

    /// `client_outbound_allow` parsed, like `trusted_proxies`.
    pub fn client_outbound_nets(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        nets("client_outbound_allow", &self.client_outbound_allow)
    }

    /// True when the issuer is served over HTTPS (cookies then get `Secure` and the `__Host-` prefix).
    pub fn secure_cookies(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// The issuer identifier as it appears in `iss`: the configured URL without a trailing slash.
    pub fn iss(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// An endpoint URL below the issuer.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.iss(), path)
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

/// A list of addresses (`10.0.0.7`) or networks (`10.0.0.0/8`).
fn nets(setting: &str, list: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("{setting}: {s} is not an IP address or CIDR"))
        })
        .collect()
}

/// A configuration that cannot be used, as one line: which setting, from where, what is wrong and what is
/// allowed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn from_figment(error: figment::Error, file: Option<&std::path::Path>) -> ConfigError {
        use figment::error::Kind;
        let lines: Vec<String> = error
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let from_env = e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("environment"));
                let setting = match from_env {
                    true => format!("YUNID_{}", key.to_ascii_uppercase()),
                    false => match file {
                        Some(f) => format!("`{key}` in {}", f.display()),
                        None => format!("`{key}`"),
                    },
                };
                match &e.kind {
                    Kind::UnknownField(found, allowed) => format!(
                        "configuration: unknown setting `{found}` in {}; the settings are: {}",
                        file.map_or_else(|| "the configuration".into(), |f| f.display().to_string()),
                        allowed.join(", ")
                    ),
                    Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
                        format!("configuration: {setting}: {found} is not allowed, expected {expected}")
                    }
                    kind => format!("configuration: {setting}: {kind}{}", allowed(&key)),
                }
            })
            .collect();
        ConfigError(lines.join("; "))
    }
}

/// What a setting accepts, where the parser's own message does not say.
fn allowed(key: &str) -> &'static str {
    match key {
        "listen" => "; expected an address and port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
        "issuer" => "; expected an absolute URL, e.g. https://id.example.gov.cn",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment with no variables: a prefix no process here sets.
    fn no_env() -> Env {
        Env::prefixed("YUNID_UNIT_TEST_NOTHING_")
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn a_file_with_an_unknown_key_is_refused_naming_the_key_and_the_file() {
        let f = file("issuer = \"https://id.example.gov.cn\"\nport = 8080\n");
        let e = Config::from_sources(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting `port`"), "{e}");
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("listen"), "the allowed settings are listed: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn a_bad_value_in_a_file_names_the_setting_the_file_and_what_is_allowed() {
        let f = file("listen = \"everywhere\"\n");
        let e = Config::from_sources(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`listen`") && e.contains(&f.path().display().to_string()),
            "{e}"
        );
        assert!(e.contains("expected an address and port"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn a_missing_file_is_an_error_not_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("yunid.toml");
        let e = Config::from_sources(Some(&missing), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found") && e.contains("yunid.toml"), "{e}");
    }

    #[test]
    fn a_good_file_is_read() {
        let f = file("listen = \"0.0.0.0:9000\"\ncode_ttl = 30\n");
        let (config, ignored) = Config::from_sources(Some(f.path()), no_env()).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.code_ttl, 30);
        assert!(ignored.is_empty());
    }

    #[test]
    fn every_field_is_a_key() {
        let keys = Config::keys();
        // Spot checks across the struct (no count: every new setting would have to edit it).
        for key in [
            "listen",
            "key_encryption_key",
            "client_outbound_allow",
            "password_hash_queue",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
    }
}

/// Where SMS messages go (`sms_gateway`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum SmsGatewayKind {
    /// Development only: messages go to the log.
    Console,
    /// A provider behind a signed webhook (`sms_webhook_url`, `sms_webhook_secret`).
    Webhook,
    /// A name yunid does not know: refused at start.
    Other(String),
}

impl SmsGatewayKind {
    pub fn as_str(&self) -> &str {
        match self {
            SmsGatewayKind::Console => "console",
            SmsGatewayKind::Webhook => "webhook",
            SmsGatewayKind::Other(name) => name,
        }
    }
}

impl From<&str> for SmsGatewayKind {
    fn from(name: &str) -> Self {
        match name {
            "console" => SmsGatewayKind::Console,
            "webhook" => SmsGatewayKind::Webhook,
            other => SmsGatewayKind::Other(other.to_owned()),
        }
    }
}

impl From<String> for SmsGatewayKind {
    fn from(name: String) -> Self {
        SmsGatewayKind::from(name.as_str())
    }
}

impl From<SmsGatewayKind> for String {
    fn from(kind: SmsGatewayKind) -> Self {
        kind.as_str().to_owned()
    }
}

impl PartialEq<&str> for SmsGatewayKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for SmsGatewayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
