//! `yunid audit verify|export`.

use clap::Subcommand;
use yunid::{App, Config};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exits non-zero and names the first broken event if anything was changed.
    Verify,
    /// Write events as JSON Lines to standard output.
    Export {
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
}

pub async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    match command {
        AuditCommand::Verify => {
            let v = yunid::services::audit::verify(&app.db).await?;
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
