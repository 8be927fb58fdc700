//! `yunid backup --to FILE`: copies the SQLite database while the provider runs.

use std::path::Path;

use yunid::Config;

pub async fn run(config: &Config, to: &Path) -> anyhow::Result<()> {
    let db = yunid::store::Db::open(&config.database_url, 1).await?;
    db.backup_to(to).await?;
    println!("backed up to {}", to.display());
    Ok(())
}
