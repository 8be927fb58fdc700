//! The `yunid` command line: parses the command and hands it to `cli` (serve is the default).

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use yunid::Config;

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
        command: cli::keys::KeysCommand,
    },
    /// Department applications (OIDC clients).
    Client {
        #[command(subcommand)]
        command: cli::client::ClientCommand,
    },
    /// Persons.
    Person {
        #[command(subcommand)]
        command: cli::person::PersonCommand,
    },
    /// Administrators: the first super admin, and role grants.
    Admin {
        #[command(subcommand)]
        command: cli::admin::AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// E-licences: the type catalogue, bulk import, which types an app may receive.
    Licence {
        #[command(subcommand)]
        command: cli::licence::LicenceCommand,
    },
    /// Organisations (legal persons) and who represents them.
    Org {
        #[command(subcommand)]
        command: cli::org::OrgCommand,
    },
    /// Initial access tokens for dynamic client registration (`dynamic_registration = true`).
    RegistrationToken {
        #[command(subcommand)]
        command: cli::registration_token::RegistrationTokenCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
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
        Command::Serve => cli::serve::run(config).await,
        Command::Migrate => cli::migrate::run(config).await,
        Command::Health => cli::health::run(&config).await,
        Command::Backup { to } => cli::backup::run(&config, &to).await,
        Command::Keys { command } => cli::keys::run(config, command).await,
        Command::Client { command } => cli::client::run(config, command).await,
        Command::Person { command } => cli::person::run(config, command).await,
        Command::Org { command } => cli::org::run(config, command).await,
        Command::Licence { command } => cli::licence::run(config, command).await,
        Command::Admin { command } => cli::admin::run(config, command).await,
        Command::Audit { command } => cli::audit::run(config, command).await,
        Command::RegistrationToken { command } => cli::registration_token::run(config, command).await,
    }
}
