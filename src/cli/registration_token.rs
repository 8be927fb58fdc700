//! `yunid registration-token issue|revoke`: initial access tokens for dynamic client registration.

use clap::Subcommand;
use yunid::services::registration::{self, TokenRequest};
use yunid::{App, Config};

use super::{cli_actor, cli_audit};

#[derive(Subcommand)]
pub enum RegistrationTokenCommand {
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

pub async fn run(config: Config, command: RegistrationTokenCommand) -> anyhow::Result<()> {
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
            let (secret, row) = registration::new_token(request, &cli_actor(), now, app.random.as_ref())
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
