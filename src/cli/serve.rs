//! `yunid serve` (the default): runs the provider until SIGTERM or Ctrl-C, then drains requests.

use yunid::{App, Config};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let app = App::new(config).await?;
    // Publish every key (and report it) before serving a request.
    app.reload_keys().await?;
    app.spawn_background();
    tracing::info!(addr = %listener.local_addr()?, issuer = %app.config.issuer, "yunid listening");
    let result = yunid::http::serve(app.clone(), listener, shutdown_signal()).await;
    // A node that has stopped no longer holds back key rotations.
    if let Err(e) = app.db.forget_key_node(&app.node_id).await {
        tracing::warn!(error = %e, "could not withdraw this node from key rotation");
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining requests");
}
