//! `yunid person add`.

use std::io::Read;

use clap::Subcommand;
use yunid::services::registry::NewPerson;
use yunid::{App, Config};

use super::cli_audit;

#[derive(Subcommand)]
pub enum PersonCommand {
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

pub async fn run(config: Config, command: PersonCommand) -> anyhow::Result<()> {
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
    let id = app
        .registry()
        .add_person(
            NewPerson {
                id_number,
                name,
                phone_verified: phone.is_some(),
                phone,
                password,
            },
            app.now(),
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
