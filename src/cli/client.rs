//! `yunid client add`: registers a department app.

use std::path::PathBuf;

use clap::Subcommand;
use yunid::keys::Alg;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;
use yunid::{App, Config};

use super::{cli_audit, split};

#[derive(Subcommand)]
pub enum ClientCommand {
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

pub async fn run(config: Config, command: ClientCommand) -> anyhow::Result<()> {
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
    let (client, secret) = app.registry().add_client(new, app.now()).await?;
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
