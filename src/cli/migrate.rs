//! `yunid migrate`: applies the database migrations and exits.

use yunid::{App, Config};

pub async fn run(config: Config) -> anyhow::Result<()> {
    App::new(config).await?;
    println!("migrations applied");
    Ok(())
}
