//! `yunid org add|allow-code|represent`.

use clap::Subcommand;
use yunid::services::identity::{self, NewRepresentation};
use yunid::store::orgs::{Matters, Role};
use yunid::{App, Config};

use super::{cli_actor, cli_audit, split};

#[derive(Subcommand)]
pub enum OrgCommand {
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

pub async fn run(config: Config, command: OrgCommand) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    match command {
        OrgCommand::Add {
            credit_code,
            name,
            r#type,
        } => {
            let org = identity::add_org(
                &app.db,
                &credit_code,
                &name,
                &r#type,
                app.now(),
                app.random.as_ref(),
            )
            .await?;
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
                &app.db,
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
                now,
                app.random.as_ref(),
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
