//! `yunid admin bootstrap|grant|revoke`: administrators' roles.

use clap::Subcommand;
use yunid::{App, Config};

use super::{cli_actor, cli_audit};

#[derive(Subcommand)]
pub enum AdminCommand {
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

pub async fn run(config: Config, command: AdminCommand) -> anyhow::Result<()> {
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
