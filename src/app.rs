//! The application: configuration, database, keys and services, shared by every handler.

use std::ops::Deref;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{Config, SmsGatewayKind};
use crate::crypto::Secrets;
use crate::keys::rotation::{self, Node};
use crate::keys::{Kek, KeySet, KeyStore};
use crate::services::password::Hasher;
use crate::store::Db;

pub struct Inner {
    pub config: Config,
    pub db: Db,
    /// The node's one clock, shared with the database's caches (`Db::with_clock`); tests advance it.
    pub clock: Arc<Clock>,
    pub secrets: Secrets,
    pub hasher: Hasher,
    pub key_store: KeyStore,
    /// Seals and opens the signing keys stored in the database.
    pub kek: Kek,
    /// This process's name in `key_nodes` (random per start).
    pub node_id: String,
    keys: RwLock<Arc<KeySet>>,
    /// Requests to services the operator configured (the e-licence library).
    pub http: reqwest::Client,
    /// Requests made on behalf of apps, to URLs they registered: guarded against internal addresses.
    pub client_http: crate::services::outbound::ClientHttp,
    pub sms: Box<dyn crate::services::sms::SmsGateway>,
    /// SMS this node queued claimed, for its outbox worker to send at once.
    pub sms_handoff: crate::services::sms_outbox::Handoff,
    /// The WebAuthn relying party; `None` when the issuer's host cannot serve passkeys.
    pub webauthn: Option<webauthn_rs::Webauthn>,
    pub metrics: crate::metrics::Metrics,
    /// Access tokens this node verified already (`tokens::parse_access_token`).
    pub verified_tokens: crate::services::oidc::tokens::VerifiedTokens,
    /// Keys of private_key_jwt clients registered with a `jwks_uri`, as this node fetched them.
    pub client_jwks: crate::services::oidc::remote_jwks::RemoteJwks,
    /// Peers whose `X-Forwarded-For` is believed (`Config::trusted_proxies`, parsed).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Randomness handed to the services (`crypto::Random`).
    pub random: Box<dyn crate::crypto::Random>,
    /// Upstream providers' keys and metadata, as this node fetched them (`services::federation`).
    pub upstream_jwks: crate::services::oidc::remote_jwks::RemoteJwks,
    pub upstream_metadata: crate::services::federation::Discovered,
    /// Real-name proofing and enterprise binding settings (`services::proofing`).
    pub proofing: crate::services::proofing::Settings,
}

/// Cheap to clone; every handler gets one.
#[derive(Clone)]
pub struct App(Arc<Inner>);

impl Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Connects the database (migrating it), loads or creates keys, and builds the services.
    pub async fn new(config: Config) -> anyhow::Result<App> {
        config.check()?;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let clock = Arc::new(Clock::default());
        let now = clock.now();
        let key_store = KeyStore::new(&config.keys_dir);
        key_store.ensure(config.key_encryption_key.is_some())?;
        let secrets = Secrets::from_master(&key_store.secret()?)?;
        let kek = key_store.kek(config.key_encryption_key.as_deref())?;
        let db = Db::connect(&config.database_url, config.database_max_connections)
            .await?
            .with_clock(clock.clone());
        db.watch_changes(&config.database_url);
        rotation::bootstrap(&db, &kek, &key_store, now).await?;
        let node_id = crate::crypto::random_token();
        // Serving nodes report what they publish (`reload_keys`); command-line tools only load.
        let keys = rotation::load(&db, &kek, now, publish_grace(&config), hint_grace(&config)).await?;
        let hasher = Hasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            &crate::crypto::OsRandom,
        )?
        .with_queue(config.password_hash_queue);
        let sms: Box<dyn crate::services::sms::SmsGateway> = match &config.sms_gateway {
            SmsGatewayKind::Console => Box::new(crate::services::sms::ConsoleGateway),
            SmsGatewayKind::Webhook => Box::new(crate::services::sms::WebhookGateway::new(
                config
                    .sms_webhook_url
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("sms_webhook_url is required for the webhook gateway"))?,
                config.sms_webhook_secret.as_deref().unwrap_or(""),
            )?),
            SmsGatewayKind::Other(other) => anyhow::bail!("unknown sms_gateway {other}"),
        };
        let webauthn = crate::services::passkey::relying_party(&config)?;
        let trusted_proxies = config.trusted_proxy_nets()?;
        let proofing = crate::services::proofing::settings(&config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let client_http = crate::services::outbound::ClientHttp::new(
            config.client_outbound_nets()?,
            Duration::from_secs(5),
        )?;
        let metrics = {
            let (pool, hasher) = (db.pool.clone(), hasher.clone());
            crate::metrics::Metrics::new(move || {
                let (hashes, hash_cpu_seconds) = hasher.spent();
                crate::metrics::Sample {
                    pool_open: i64::from(pool.size()),
                    pool_idle: i64::try_from(pool.num_idle()).unwrap_or(i64::MAX),
                    pool_max: i64::from(pool.options().get_max_connections()),
                    hashes,
                    hash_cpu_seconds,
                }
            })
        };
        let app = App(Arc::new(Inner {
            config,
            db,
            clock,
            secrets,
            hasher,
            key_store,
            kek,
            node_id,
            keys: RwLock::new(Arc::new(keys)),
            http,
            client_http,
            sms,
            sms_handoff: Default::default(),
            webauthn,
            metrics,
            verified_tokens: Default::default(),
            client_jwks: Default::default(),
            trusted_proxies,
            random: Box::new(crate::crypto::OsRandom),
            upstream_jwks: Default::default(),
            upstream_metadata: Default::default(),
            proofing,
        }));
        crate::services::federation::settings::sync_config(
            &app.db,
            &app.secrets,
            &app.config.upstreams,
            app.config.allow_insecure_redirects,
            now,
        )
        .await?;
        // The admin console signs in through yunid like any app: its client must exist.
        crate::services::console::ensure_client(&app.db, &app.config, &app.secrets, now).await?;
        Ok(app)
    }

    /// What identity brokering needs (`services::federation`).
    pub fn federation(&self) -> crate::services::federation::Ctx<'_> {
        crate::services::federation::Ctx {
            db: &self.db,
            secrets: &self.secrets,
            http: &self.client_http,
            jwks: &self.upstream_jwks,
            discovered: &self.upstream_metadata,
            keys: self.keys(),
            issuer: &self.config.issuer,
            session_ttl: self.config.session_absolute_ttl,
            allow_http: self.config.allow_insecure_redirects,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Self-registration.
    pub fn signup(&self) -> crate::services::signup::Signup<'_> {
        crate::services::signup::Signup {
            db: &self.db,
            secrets: &self.secrets,
            metrics: &self.metrics,
            rng: &*self.random,
            sms: self.sms(),
            registry: self.registry(),
        }
    }

    /// Pulls a holder's licences from the upstream e-licence library (when configured).
    pub fn licence_upstream(&self) -> crate::services::licence_upstream::Upstream<'_> {
        let c = &self.config;
        crate::services::licence_upstream::Upstream {
            db: &self.db,
            secrets: &self.secrets,
            http: &self.http,
            metrics: &self.metrics,
            settings: crate::services::licence_upstream::Settings {
                url: c.licence_upstream_url.as_deref(),
                token: c.licence_upstream_token.as_deref(),
                ttl: c.licence_upstream_ttl,
                timeout: Duration::from_millis(c.licence_upstream_timeout_ms),
            },
        }
    }

    /// Dynamic client registration (RFC 7591, 7592).
    pub fn registration(&self) -> crate::services::registration::Ctx<'_> {
        crate::services::registration::Ctx {
            db: &self.db,
            issuer: &self.config.issuer,
            guard: self.client_http.guard(),
            registry: self.registry(),
            rng: &*self.random,
        }
    }

    /// Registers apps and persons.
    pub fn registry(&self) -> crate::services::registry::Registry<'_> {
        crate::services::registry::Registry {
            db: &self.db,
            secrets: &self.secrets,
            hasher: &self.hasher,
            rng: &*self.random,
            allow_http: self.config.allow_insecure_redirects,
        }
    }

    /// Ends sessions and queues their back-channel logouts.
    pub fn logout(&self) -> crate::services::logout::Logout<'_> {
        crate::services::logout::Logout {
            db: &self.db,
            secrets: &self.secrets,
            rng: self.random.as_ref(),
        }
    }

    /// Queues SMS messages (codes, notices) for this node's outbox worker.
    pub fn sms_outbox(&self) -> crate::services::sms_outbox::Outbox<'_> {
        crate::services::sms_outbox::Outbox {
            db: &self.db,
            secrets: &self.secrets,
            metrics: &self.metrics,
            handoff: &self.sms_handoff,
            rng: self.random.as_ref(),
        }
    }

    /// Sends and checks SMS one-time codes.
    pub fn sms(&self) -> crate::services::sms::Sms<'_> {
        let c = &self.config;
        crate::services::sms::Sms {
            db: &self.db,
            secrets: &self.secrets,
            metrics: &self.metrics,
            outbox: self.sms_outbox(),
            rng: &*self.random,
            settings: crate::services::sms::Settings {
                code_ttl: c.sms_code_ttl,
                max_tries: c.sms_max_tries,
                resend_cooldown: c.sms_resend_cooldown,
                per_phone_hour: c.sms_per_phone_hour,
                per_address_hour: c.sms_per_address_hour,
            },
        }
    }

    /// What real-name proofing works with.
    pub fn proofing(&self) -> crate::services::proofing::Ctx<'_> {
        crate::services::proofing::Ctx {
            db: &self.db,
            secrets: &self.secrets,
            http: &self.http,
            settings: &self.proofing,
            rng: &*self.random,
            metrics: &self.metrics,
            host: self,
            clock: &self.clock,
        }
    }

    /// Signing in (`services::login`); ending another person's session goes through the logout
    /// service (`http::login::ports`).
    pub fn login(&self) -> crate::services::login::Ctx<'_> {
        crate::services::login::Ctx {
            db: &self.db,
            secrets: &self.secrets,
            hasher: &self.hasher,
            metrics: &self.metrics,
            settings: crate::services::login::Settings {
                max_failures: self.config.login_max_failures,
                throttle_window: self.config.login_throttle_window,
                session_absolute_ttl: self.config.session_absolute_ttl,
                session_idle_ttl: self.config.session_idle_ttl,
            },
            rng: self.random.as_ref(),
            sessions: self,
        }
    }

    /// Passkey ceremonies (`services::passkey`).
    pub fn passkeys(&self) -> crate::services::passkey::Ctx<'_> {
        crate::services::passkey::Ctx {
            db: &self.db,
            webauthn: self.webauthn.as_ref(),
            step_up_max_age: self.config.credential_step_up_max_age,
            rng: self.random.as_ref(),
        }
    }

    /// The sign-in path (`services::authn`); acting options and licence types come from their
    /// services (`http::login::ports`).
    pub fn authn(&self) -> crate::services::authn::Ctx<'_> {
        crate::services::authn::Ctx {
            db: &self.db,
            secrets: &self.secrets,
            keys: self.keys(),
            settings: crate::services::authn::Settings {
                issuer: self.config.iss().to_owned(),
                auth_request_ttl: self.config.auth_request_ttl,
                code_ttl: self.config.code_ttl,
                refresh_absolute_ttl: self.config.refresh_absolute_ttl,
                session_idle_ttl: self.config.session_idle_ttl,
            },
            rng: self.random.as_ref(),
            directory: self,
            login: self.login(),
        }
    }

    /// The current key set (parsed once; replaced whole on reload).
    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the signing keys, reports what this node publishes, and lets next keys sign once every
    /// node publishes them (after `yunid keys rotate`; also drops keys past their grace period).
    pub async fn reload_keys(&self) -> anyhow::Result<()> {
        let node = key_node(&self.config, &self.node_id);
        let keys = rotation::refresh(&self.db, &self.kek, &node, self.now(), Some(self.keys())).await?;
        match self.keys.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        Ok(())
    }

    /// Background work every node runs: key reload, back-channel logout and SMS delivery, sweeping.
    pub fn spawn_background(&self) {
        let app = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(app.config.key_refresh_interval_ms);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = app.reload_keys().await {
                    tracing::warn!(error = %e, "key reload failed");
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let now = app.now();
                let grace = hint_grace(&app.config);
                if let Err(e) = app.db.sweep_keys(now - 86_400, now - grace - 86_400).await {
                    tracing::warn!(error = %e, "key sweep failed");
                }
                if let Err(e) = app
                    .db
                    .sweep(now, now - crate::services::login::THROTTLE_MEMORY)
                    .await
                {
                    tracing::warn!(error = %e, "sweep failed");
                }
                if let Err(e) = app
                    .db
                    .prune_audit(now - app.config.audit_retention_days * 86_400)
                    .await
                {
                    tracing::warn!(error = %e, "audit pruning failed");
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            // The proofing re-check sweep, at its own interval; one node at a time (a lease).
            let every = Duration::from_secs(app.proofing.sweep_interval.max(1) as u64);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = app.now();
                if let Err(e) = crate::services::proofing::sweep(&app.proofing(), &app.node_id, now).await {
                    tracing::warn!(error = %e, "proofing re-check failed");
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            let slots = crate::services::logout::slots();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for (claimed, permit) in crate::services::logout::claim_due(&app.db, &slots, app.now()).await
                {
                    let app = app.clone();
                    tokio::spawn(async move {
                        let keys = app.keys();
                        let sender = crate::services::logout::Sender {
                            db: &app.db,
                            keys: &keys,
                            client_http: &app.client_http,
                            clock: &app.clock,
                            rng: &*app.random,
                            iss: app.config.iss(),
                            max_attempts: app.config.backchannel_max_attempts,
                        };
                        sender.deliver(claimed).await;
                        drop(permit);
                    });
                }
            }
        });
        let app = self.clone();
        // From here on, messages this node queues are claimed by it and handed to this worker.
        app.sms_handoff.start();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let sweep = tokio::select! {
                    _ = tick.tick() => true,
                    _ = app.sms_handoff.handed() => false,
                };
                let handed = app.sms_handoff.take();
                if !handed.is_empty() {
                    // In a task of their own: their lease started when they were queued, so they never
                    // wait behind a sweep's batch or the batch handed before them (a hanging provider
                    // holds a batch ~16 s).
                    let app = app.clone();
                    tokio::spawn(async move {
                        let delivery = crate::services::sms_outbox::Delivery {
                            db: &app.db,
                            secrets: &app.secrets,
                            metrics: &app.metrics,
                            gateway: &*app.sms,
                        };
                        delivery.deliver_claimed(&handed, app.now()).await;
                    });
                }
                // What is due of any node's (retries, a dead node's messages after their lease).
                if sweep {
                    let delivery = crate::services::sms_outbox::Delivery {
                        db: &app.db,
                        secrets: &app.secrets,
                        metrics: &app.metrics,
                        gateway: &*app.sms,
                    };
                    delivery.deliver_due(app.now()).await;
                }
            }
        });
    }
}

impl crate::services::proofing::Host for App {
    fn end_everything<'a>(
        &'a self,
        person_id: &'a str,
        now: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move { self.logout().end_everything(person_id, now).await })
    }

    fn appoint<'a>(
        &'a self,
        appointment_id: &'a str,
        appointer_id: &'a str,
        new: crate::services::identity::NewRepresentation,
        by: &'a str,
        now: i64,
    ) -> crate::services::proofing::Appointed<'a> {
        Box::pin(async move {
            let planned = match new.role {
                crate::store::orgs::Role::Manager => {
                    crate::services::identity::plan_manager(&self.db, appointer_id, new, now, &*self.random)
                        .await
                }
                _ => {
                    crate::services::identity::plan_agent(&self.db, appointer_id, new, now, &*self.random)
                        .await
                }
            };
            let rep = match planned {
                Ok(rep) => rep,
                Err(crate::services::identity::IdentityError::Internal(e)) => return Err(e),
                Err(refused) => return Ok(Err(refused.to_string())),
            };
            let accepted = self.db.accept_appointment(appointment_id, &rep, by, now).await?;
            Ok(Ok(accepted.then_some(rep.id)))
        })
    }
}

/// How this node takes part in key rotation: a node unseen for three refresh intervals (at least
/// 15 s) no longer holds a rotation back.
pub fn key_node<'a>(config: &Config, id: &'a str) -> Node<'a> {
    let interval = (config.key_refresh_interval_ms / 1000).max(1) as i64;
    Node {
        id,
        grace: publish_grace(config),
        hint_grace: hint_grace(config),
        publish_delay: config.key_publish_delay,
        liveness: (3 * interval).max(15),
    }
}

/// How long a retired key stays in the JWKS: longer than any token it signed lives.
pub fn publish_grace(config: &Config) -> i64 {
    config.id_token_ttl.max(config.access_token_ttl) + 300
}

/// How long a retired key, no longer published, still verifies `id_token_hint`s: an ID token may be
/// presented as a hint (at /logout, /authorize) for as long as the session it was issued in can live.
pub fn hint_grace(config: &Config) -> i64 {
    publish_grace(config).max(config.session_absolute_ttl)
}

/// What the cross-device services (device grant, scan to sign in) are handed.
impl App {
    pub fn device(&self) -> crate::services::device::Ctx<'_> {
        let c = &self.config;
        crate::services::device::Ctx {
            db: &self.db,
            settings: crate::services::device::Settings {
                code_ttl: c.device_code_ttl,
                interval: c.device_poll_interval,
                verification_uri: url::Url::parse(&c.endpoint("/device"))
                    .unwrap_or_else(|_| c.issuer.clone()),
                throttle_window: c.login_throttle_window,
                throttle_memory: crate::services::login::THROTTLE_MEMORY,
                limit: crate::services::new_codes::Settings {
                    burst: c.new_code_burst,
                    interval_ms: c.new_code_interval_ms,
                    max_live: c.device_max_live,
                },
            },
            rng: self.random.as_ref(),
            secrets: &self.secrets,
        }
    }

    pub fn scan(&self) -> crate::services::scan::Ctx<'_> {
        crate::services::scan::Ctx {
            db: &self.db,
            ttl: self.config.scan_ttl,
            apps: &self.config.scan_apps,
            limit: crate::services::new_codes::Settings {
                burst: self.config.new_code_burst,
                interval_ms: self.config.new_code_interval_ms,
                max_live: self.config.scan_max_live,
            },
            rng: self.random.as_ref(),
            throttle: crate::services::scan::Throttle {
                window: self.config.login_throttle_window,
                memory: crate::services::login::THROTTLE_MEMORY,
            },
        }
    }
}

/// What the domain services receive: narrow pieces of the application, and the ports through which they
/// reach services that still take the whole `App`.
impl App {
    pub fn token_settings(&self) -> crate::services::oidc::tokens::TokenSettings<'_> {
        crate::services::oidc::tokens::TokenSettings {
            iss: self.config.iss(),
            access_token_ttl: self.config.access_token_ttl,
            id_token_ttl: self.config.id_token_ttl,
            refresh_idle_ttl: self.config.refresh_idle_ttl,
        }
    }

    pub fn minting(&self) -> crate::services::oidc::tokens::Minting<'_> {
        crate::services::oidc::tokens::Minting {
            keys: self.keys(),
            secrets: &self.secrets,
            settings: self.token_settings(),
        }
    }

    pub fn access_tokens(&self) -> crate::services::oidc::tokens::Verifier<'_> {
        crate::services::oidc::tokens::Verifier {
            keys: self.keys(),
            iss: self.config.iss(),
            cache: &self.verified_tokens,
            revocations: self.db.revocation_epoch(),
        }
    }

    pub fn subjects(&self) -> crate::services::oidc::claims::Subjects<'_> {
        crate::services::oidc::claims::Subjects {
            db: &self.db,
            secrets: &self.secrets,
            representations: self,
        }
    }

    pub fn client_auth(&self) -> crate::services::oidc::client_auth::Ctx<'_> {
        crate::services::oidc::client_auth::Ctx {
            db: &self.db,
            jwks: &self.client_jwks,
            http: &self.client_http,
            audiences: vec![
                self.config.iss().to_owned(),
                self.config.endpoint("/token"),
                self.config.endpoint("/par"),
                self.config.issuer.as_str().to_owned(),
            ],
        }
    }

    pub fn userinfo(&self) -> crate::services::oidc::userinfo::Ctx<'_> {
        crate::services::oidc::userinfo::Ctx {
            verifier: self.access_tokens(),
            subjects: self.subjects(),
            licences: self,
        }
    }

    pub fn introspection(&self) -> crate::services::oidc::introspection::Ctx<'_> {
        crate::services::oidc::introspection::Ctx {
            verifier: self.access_tokens(),
            subjects: self.subjects(),
        }
    }

    pub fn grants(&self) -> crate::services::oidc::grants::Ctx<'_> {
        crate::services::oidc::grants::Ctx {
            db: &self.db,
            minting: self.minting(),
            settings: crate::services::oidc::grants::Settings {
                session_idle_ttl: self.config.session_idle_ttl,
                grant_ttl: self.config.refresh_absolute_ttl,
            },
            representations: self,
            licences: self,
            rng: &*self.random,
        }
    }
}

impl crate::services::oidc::claims::Representations for App {
    fn current_acting<'a>(
        &'a self,
        rep_id: &'a str,
        person_id: &'a str,
        client: &'a crate::store::clients::Client,
        now: i64,
    ) -> crate::services::oidc::BoxFuture<
        'a,
        anyhow::Result<
            Option<(
                crate::store::orgs::Representation,
                crate::store::orgs::Organisation,
            )>,
        >,
    > {
        Box::pin(async move {
            crate::services::identity::current_acting(&self.db, rep_id, person_id, client, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
    }
}

impl crate::services::oidc::Licences for App {
    fn release<'a>(
        &'a self,
        client: &'a crate::store::clients::Client,
        asked: &'a crate::services::licence::Release<'a>,
        subject: &'a crate::services::oidc::claims::GrantSubject,
        now: i64,
    ) -> crate::services::oidc::BoxFuture<'a, anyhow::Result<Vec<serde_json::Value>>> {
        Box::pin(async move {
            crate::services::licence::release(&self.licence_upstream(), client, asked, subject, now).await
        })
    }
}

impl crate::services::connected_apps::Backchannel for App {
    fn queue_for_app<'a>(
        &'a self,
        sid: &'a str,
        client: &'a crate::store::clients::Client,
        person_id: &'a str,
        now: i64,
    ) -> crate::services::oidc::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.logout().queue_for_app(sid, client, person_id, now).await })
    }
}
