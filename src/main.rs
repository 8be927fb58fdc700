//! The `yunid` command line: serve (default), migrate, keys, client, person. Every command that
//! changes something records it in the audit trail as `cli:<operating-system user>`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use yunid::keys::{Alg, KeyStore, rotation};
use yunid::services::registry::{self, NewClient, NewPerson};
use yunid::store::clients::AuthMethod;
use yunid::{App, Config};

#[derive(Parser)]
#[command(name = "yunid", version, about = "Unified identity provider (OpenID Connect)")]
struct Cli {
    /// Configuration file (TOML); `YUNID_*` environment variables override it.
    #[arg(long, short, env = "YUNID_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the local node answers `/healthz` (for container health checks: no curl needed).
    Health,
    /// Copy the SQLite database into a new file while the provider runs (PostgreSQL: use pg_dump).
    Backup {
        /// The file to write; it must not exist yet.
        #[arg(long)]
        to: PathBuf,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Department applications (OIDC clients).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Persons.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Administrators: the first super admin, and role grants.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// E-licences: the type catalogue, bulk import, which types an app may receive.
    Licence {
        #[command(subcommand)]
        command: LicenceCommand,
    },
    /// Organisations (legal persons) and who represents them.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Initial access tokens for dynamic client registration (`dynamic_registration = true`).
    RegistrationToken {
        #[command(subcommand)]
        command: RegistrationTokenCommand,
    },
}

#[derive(Subcommand)]
enum RegistrationTokenCommand {
    /// Issue a token (printed once; only its hash is stored).
    Issue {
        /// Lifetime in seconds (default 7 days).
        #[arg(long)]
        expires_in: Option<i64>,
        /// How many clients it may register (default 1).
        #[arg(long)]
        max_uses: Option<i64>,
        /// The department the registered clients belong to.
        #[arg(long, default_value = "")]
        department: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make an existing person the first super admin (refused once one exists).
    Bootstrap {
        #[arg(long)]
        id_number: String,
    },
    /// Grant an admin role: super_admin, department_admin (with --department), counter_clerk, auditor.
    Grant {
        #[arg(long)]
        id_number: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        department: String,
    },
    /// Take an admin role away; the person's admin API tokens and console pages stop working at once.
    Revoke {
        #[arg(long)]
        id_number: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        department: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exits non-zero and names the first broken event if anything was changed.
    Verify,
    /// Write events as JSON Lines to standard output.
    Export {
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
}

#[derive(Subcommand)]
enum LicenceCommand {
    /// Add or change a licence type in the catalogue.
    Type {
        /// Defining authority's credit code + 3 digits.
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        authority: String,
        /// person or org.
        #[arg(long)]
        holder: String,
        /// Surface fields that may be released (repeat or comma-separate).
        #[arg(long = "field")]
        fields: Vec<String>,
    },
    /// Import licences from a JSON Lines file (idempotent by identifier); bad lines are reported.
    Import {
        file: PathBuf,
        /// All or nothing: any bad line means nothing is imported.
        #[arg(long)]
        atomic: bool,
    },
    /// Let an app receive a licence type.
    Allow {
        #[arg(long)]
        client: String,
        #[arg(long = "type")]
        type_code: String,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Register an organisation by its unified social credit code.
    Add {
        #[arg(long)]
        credit_code: String,
        #[arg(long)]
        name: String,
        /// e.g. enterprise, institution, social_organisation.
        #[arg(long, default_value = "enterprise")]
        r#type: String,
    },
    /// Allow a lawful early pilot credit code that fails the check character.
    AllowCode {
        #[arg(long)]
        credit_code: String,
    },
    /// Record that a person represents an organisation.
    Represent {
        /// The person's resident ID number.
        #[arg(long)]
        id_number: String,
        #[arg(long)]
        credit_code: String,
        /// legal_representative, manager or agent.
        #[arg(long)]
        role: String,
        /// Matter codes (repeat or comma-separate); none means all matters.
        #[arg(long = "matter")]
        matters: Vec<String>,
        /// Days the representation is valid for; none means until revoked.
        #[arg(long)]
        days: Option<i64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List keys and their state.
    List,
    /// Add the next key per algorithm: published by every node at once, signing once every node
    /// publishes it (and `key_publish_delay` has passed); the old ones stay published until their
    /// tokens have expired.
    Rotate,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and (once) its secret.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Allowed scopes (repeat or space-separate).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Allowed grants: authorization_code, refresh_token, client_credentials.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// client_secret_basic (default), client_secret_post or private_key_jwt.
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// File with the client's public JWKS (for private_key_jwt).
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// URL where the client publishes its public JWKS (for private_key_jwt; instead of --jwks-file).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// ID token algorithm: RS256 (default), ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        id_token_alg: String,
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Give this client the public subject instead of a pairwise one.
        #[arg(long)]
        public_subject: bool,
    },
}

#[derive(Subcommand)]
enum PersonCommand {
    /// Create a person; with --password-stdin the password is read from standard input.
    Add {
        #[arg(long)]
        id_number: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // YUNID_LOG_FORMAT=json: one JSON object per line, with the request span (and its request_id).
    if std::env::var("YUNID_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let cli = Cli::parse();
    // A configuration error is one line (the setting, what is wrong, what is allowed), not a backtrace.
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("yunid: {e}");
            std::process::exit(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            App::new(config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Health => health(&config).await,
        Command::Backup { to } => {
            let db = yunid::store::Db::open(&config.database_url, 1).await?;
            db.backup_to(&to).await?;
            println!("backed up to {}", to.display());
            Ok(())
        }
        Command::Keys { command } => keys(config, command).await,
        Command::Client { command } => client(config, command).await,
        Command::Person { command } => person(config, command).await,
        Command::Org { command } => org(config, command).await,
        Command::Licence { command } => licence(config, command).await,
        Command::Admin { command } => admin(config, command).await,
        Command::Audit { command } => audit(config, command).await,
        Command::RegistrationToken { command } => registration_token(config, command).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let app = App::new(config).await?;
    // Publish every key (and report it) before serving a request.
    app.reload_keys().await?;
    app.spawn_background();
    tracing::info!(addr = %listener.local_addr()?, issuer = %app.config.issuer, "yunid listening");
    let result = yunid::http::serve(app.clone(), listener, shutdown_signal()).await;
    // A node that has stopped no longer holds back key rotations.
    if let Err(e) = app.db.forget_key_node(&app.node_id).await {
        tracing::warn!(error = %e, "could not withdraw this node from key rotation");
    }
    result
}

async fn health(config: &Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let res = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(format!("http://{addr}/healthz"))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "/healthz answered {}", res.status());
    println!("ok");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining requests");
}

async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    let store = KeyStore::new(&config.keys_dir);
    let now = yunid::clock::Clock::default().now();
    store.ensure(config.key_encryption_key.is_some())?;
    let kek = store.kek(config.key_encryption_key.as_deref())?;
    let db = yunid::store::Db::connect(&config.database_url, 2).await?;
    rotation::bootstrap(&db, &kek, &store, now).await?;
    if let KeysCommand::Rotate = command {
        let added = rotation::rotate(&db, &kek, now).await?;
        for k in &added {
            println!(
                "next {} key {} (signs once every node publishes it)",
                k.alg.as_str(),
                k.kid
            );
        }
        let kids: Vec<&str> = added.iter().map(|k| k.kid.as_str()).collect();
        db.append_audit(
            &yunid::store::audit::NewEvent {
                actor: &cli_actor(),
                action: "keys.rotate",
                address: "cli",
                outcome: "success",
                detail: serde_json::json!({ "new": kids }).to_string(),
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    let grace = yunid::app::publish_grace(&config);
    for k in rotation::list(&db, now, grace).await? {
        println!("{:<6} {}  {}", k.alg.as_str(), k.kid, k.state(grace, now));
    }
    Ok(())
}

fn split(values: Vec<String>) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split([' ', ',']))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who ran a command, as the audit trail names them: `cli:<operating-system user>`, or `cli:operator`
/// when the user is unknown or the name is not a plain one. (Whoever runs the CLI holds the database
/// credentials: this attributes, it does not authenticate.)
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let plain = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        format!("cli:{user}")
    } else {
        "cli:operator".to_owned()
    }
}

/// Records a change made from the command line; a change that cannot be audited is reported as failed.
async fn cli_audit(
    app: &App,
    action: &str,
    subject: &str,
    client_id: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    yunid::services::audit::record(
        app,
        yunid::store::audit::NewEvent {
            actor: &cli_actor(),
            action,
            subject,
            client_id,
            address: "cli",
            outcome: "success",
            detail: detail.to_string(),
        },
    )
    .await
}

async fn client(config: Config, command: ClientCommand) -> anyhow::Result<()> {
    let ClientCommand::Add {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        scopes,
        grants,
        auth_method,
        jwks_file,
        jwks_uri,
        id_token_alg,
        backchannel_logout_uri,
        public_subject,
    } = command;
    let app = App::new(config).await?;
    let defaults = NewClient::default();
    let new = NewClient {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        scopes: if scopes.is_empty() {
            defaults.scopes
        } else {
            split(scopes)
        },
        grant_types: if grants.is_empty() {
            defaults.grant_types
        } else {
            split(grants)
        },
        auth_method: AuthMethod::parse(&auth_method)
            .ok_or_else(|| anyhow::anyhow!("unknown auth method {auth_method}"))?,
        jwks: jwks_file.map(std::fs::read_to_string).transpose()?,
        jwks_uri,
        id_token_alg: Alg::parse(&id_token_alg)
            .ok_or_else(|| anyhow::anyhow!("unknown alg {id_token_alg}"))?,
        public_subject,
        sector: None,
        backchannel_logout_uri,
        min_acr: 1,
        matters: Vec::new(),
        department: String::new(),
    };
    let (client, secret) = registry::add_client(&app, new).await?;
    println!("client_id:     {}", client.id);
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        println!("(the secret is shown only now; yunid keeps only its hash)");
    }
    // After the secret is shown: a failure to audit must not lose it.
    cli_audit(
        &app,
        "client.create",
        &client.id,
        &client.id,
        serde_json::json!({ "name": client.name, "scopes": client.scopes, "grant_types": client.grant_types }),
    )
    .await
}

async fn person(config: Config, command: PersonCommand) -> anyhow::Result<()> {
    let PersonCommand::Add {
        id_number,
        name,
        phone,
        password_stdin,
    } = command;
    let password = if password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        None
    };
    let app = App::new(config).await?;
    let with_phone = phone.is_some();
    let with_password = password.is_some();
    let id = registry::add_person(
        &app,
        NewPerson {
            id_number,
            name,
            phone_verified: phone.is_some(),
            phone,
            password,
        },
    )
    .await?;
    // Never the ID number in the trail: the person's id names them.
    cli_audit(
        &app,
        "person.create",
        &id,
        "",
        serde_json::json!({ "phone": with_phone, "password": with_password }),
    )
    .await?;
    println!("person_id: {id}");
    Ok(())
}

async fn org(config: Config, command: OrgCommand) -> anyhow::Result<()> {
    use yunid::services::identity::{self, NewRepresentation};
    use yunid::store::orgs::{Matters, Role};
    let app = App::new(config).await?;
    match command {
        OrgCommand::Add {
            credit_code,
            name,
            r#type,
        } => {
            let org = identity::add_org(&app, &credit_code, &name, &r#type).await?;
            cli_audit(
                &app,
                "organisation.create",
                &org.id,
                "",
                serde_json::json!({ "name": name, "type": r#type }),
            )
            .await?;
            println!("org_id: {}", org.id);
        }
        OrgCommand::AllowCode { credit_code } => {
            let code = credit_code.trim().to_ascii_uppercase();
            app.db.allow_credit_code(&code, &cli_actor(), app.now()).await?;
            cli_audit(&app, "credit_code.allow", &code, "", serde_json::json!({})).await?;
            println!("allowed {code}");
        }
        OrgCommand::Represent {
            id_number,
            credit_code,
            role,
            matters,
            days,
        } => {
            let person = yunid::services::login::find_person(&app, &id_number)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no person with that ID number"))?;
            let org = app
                .db
                .org_by_code(&credit_code.trim().to_ascii_uppercase())
                .await?
                .ok_or_else(|| anyhow::anyhow!("no organisation with that credit code"))?;
            let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role {role}"))?;
            let matters = split(matters);
            let now = app.now();
            let rep = identity::grant(
                &app,
                NewRepresentation {
                    person_id: person.id,
                    org_id: org.id,
                    role,
                    matters: if matters.is_empty() {
                        Matters::all()
                    } else {
                        Matters::Only(matters)
                    },
                    valid_from: now,
                    valid_until: days.map(|d| now + d * 86_400),
                },
                &cli_actor(),
            )
            .await?;
            cli_audit(
                &app,
                "representation.create",
                &rep.id,
                "",
                serde_json::json!({ "person_id": rep.person_id, "org_id": rep.org_id, "role": rep.role.as_str() }),
            )
            .await?;
            println!("representation_id: {}", rep.id);
        }
    }
    Ok(())
}

async fn licence(config: Config, command: LicenceCommand) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    match command {
        LicenceCommand::Type {
            code,
            name,
            authority,
            holder,
            fields,
        } => {
            anyhow::ensure!(
                matches!(holder.as_str(), "person" | "org"),
                "--holder is person or org"
            );
            let ty = yunid::store::licences::LicenceType {
                code: code.trim().to_ascii_uppercase(),
                name,
                authority,
                holder_kind: holder,
                released_fields: split(fields),
            };
            let created = app.db.licence_type(&ty.code).await?.is_none();
            app.db.upsert_licence_type(&ty, app.now()).await?;
            cli_audit(
                &app,
                "licence_type.put",
                &ty.code,
                "",
                serde_json::json!({
                    "created": created, "name": ty.name, "authority": ty.authority,
                    "holder_kind": ty.holder_kind, "released_fields": ty.released_fields,
                }),
            )
            .await?;
            println!("licence type {} saved", ty.code);
        }
        LicenceCommand::Import { file, atomic } => {
            let text = std::fs::read_to_string(&file)?;
            let report = yunid::services::licence::import(&app, &text, atomic, app.now()).await?;
            cli_audit(
                &app,
                "licence.import",
                "",
                "",
                serde_json::json!({
                    "atomic": atomic, "imported": report.imported, "ids": report.ids,
                    "bad_lines": report.errors.len(),
                }),
            )
            .await?;
            for (line, message) in &report.errors {
                eprintln!("{}:{line}: {message}", file.display());
            }
            println!(
                "imported {} licence(s), {} bad line(s)",
                report.imported,
                report.errors.len()
            );
            if !report.errors.is_empty() {
                std::process::exit(1);
            }
        }
        LicenceCommand::Allow { client, type_code } => {
            anyhow::ensure!(app.db.client(&client).await?.is_some(), "no such client");
            anyhow::ensure!(
                app.db.licence_type(&type_code).await?.is_some(),
                "no such licence type"
            );
            app.db.allow_licence_type(&client, &type_code).await?;
            cli_audit(
                &app,
                "client.licence_types.allow",
                &client,
                &client,
                serde_json::json!({ "licence_types": [type_code] }),
            )
            .await?;
            println!("client {client} may receive {type_code}");
        }
    }
    Ok(())
}

async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    let (id_number, role, department, bootstrap) = match command {
        AdminCommand::Bootstrap { id_number } => (id_number, "super_admin".to_owned(), String::new(), true),
        AdminCommand::Grant {
            id_number,
            role,
            department,
        } => (id_number, role, department, false),
        AdminCommand::Revoke {
            id_number,
            role,
            department,
        } => return revoke_admin(&app, &id_number, &role, &department).await,
    };
    anyhow::ensure!(
        yunid::services::admin::Role::parse(&role, &department).is_some(),
        "unknown role (or department_admin without --department)"
    );
    if bootstrap {
        anyhow::ensure!(
            app.db.super_admin_count().await? == 0,
            "a super admin exists already"
        );
    }
    let person = yunid::services::login::find_person(&app, &id_number)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no person with that ID number"))?;
    app.db
        .grant_admin_role(&person.id, &role, &department, &cli_actor(), app.now())
        .await?;
    cli_audit(
        &app,
        "admin.grant",
        &person.id,
        "",
        serde_json::json!({ "role": role, "department": department, "bootstrap": bootstrap }),
    )
    .await?;
    println!("{} is now {role}", person.id);
    Ok(())
}

async fn revoke_admin(app: &App, id_number: &str, role: &str, department: &str) -> anyhow::Result<()> {
    let person = yunid::services::login::find_person(app, id_number)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no person with that ID number"))?;
    anyhow::ensure!(
        app.db.revoke_admin_role(&person.id, role, department).await?,
        "the person does not hold that role"
    );
    cli_audit(
        app,
        "admin.revoke",
        &person.id,
        "",
        serde_json::json!({ "role": role, "department": department }),
    )
    .await?;
    println!("{} is no longer {role}", person.id);
    Ok(())
}

async fn audit(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    match command {
        AuditCommand::Verify => {
            let v = yunid::services::audit::verify(&app).await?;
            match v.broken {
                None => println!("audit trail intact: {} event(s) verified", v.checked),
                Some((seq, why)) => {
                    eprintln!(
                        "audit trail BROKEN at event {seq}: {why} ({} verified before it)",
                        v.checked
                    );
                    std::process::exit(1);
                }
            }
        }
        AuditCommand::Export { since } => {
            for e in app.db.audit_events(None, since, i64::MAX).await? {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}

async fn registration_token(config: Config, command: RegistrationTokenCommand) -> anyhow::Result<()> {
    use yunid::services::registration::{self, TokenRequest};
    let app = App::new(config).await?;
    let now = app.now();
    let (action, subject, detail) = match command {
        RegistrationTokenCommand::Issue {
            expires_in,
            max_uses,
            department,
            note,
        } => {
            let request = TokenRequest {
                expires_in,
                max_uses,
                department,
                note,
            };
            let (secret, row) = registration::new_token(request, &cli_actor(), now)
                .map_err(|(_, message)| anyhow::anyhow!(message))?;
            app.db.insert_registration_token(&row).await?;
            println!("id {}\ntoken {secret}", row.id);
            let detail = serde_json::json!({ "department": row.department, "max_uses": row.max_uses,
                "expires_at": row.expires_at });
            ("registration_token.issue", row.id, detail)
        }
        RegistrationTokenCommand::Revoke { id } => {
            anyhow::ensure!(
                app.db.revoke_registration_token(&id, now).await?,
                "no such unrevoked registration token"
            );
            println!("revoked {id}");
            ("registration_token.revoke", id, serde_json::json!({}))
        }
    };
    cli_audit(&app, action, &subject, "", detail).await
}
