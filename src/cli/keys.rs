//! `yunid keys list|rotate`.

use clap::Subcommand;
use yunid::Config;
use yunid::keys::{KeyStore, rotation};

use super::cli_actor;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List keys and their state.
    List,
    /// Add the next key per algorithm: published by every node at once, signing once every node
    /// publishes it (and `key_publish_delay` has passed); the old ones stay published until their
    /// tokens have expired.
    Rotate,
}

pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<()> {
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
