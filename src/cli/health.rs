//! `yunid health`: exits 0 when the local node answers `/healthz` (container health checks).

use yunid::Config;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let res = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(format!("http://{addr}/healthz"))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "/healthz answered {}", res.status());
    println!("ok");
    Ok(())
}
