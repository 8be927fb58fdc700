//! `yunid licence type|import|allow`.

use std::path::PathBuf;

use clap::Subcommand;
use yunid::{App, Config};

use super::{cli_audit, split};

#[derive(Subcommand)]
pub enum LicenceCommand {
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

pub async fn run(config: Config, command: LicenceCommand) -> anyhow::Result<()> {
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
            let report =
                yunid::services::licence::import(&app.db, &app.secrets, &text, atomic, app.now()).await?;
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
