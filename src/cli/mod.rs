//! The commands of `yunid`, one file each; `main.rs` parses the command line and calls one of them.
//! Every command that changes something records it in the audit trail as `cli:<operating-system user>`.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod client;
pub mod health;
pub mod keys;
pub mod licence;
pub mod migrate;
pub mod org;
pub mod person;
pub mod registration_token;
pub mod serve;

use yunid::App;

/// Logs to standard error; `YUNID_LOG_FORMAT=json`: one JSON object per line, with the request span
/// (and its request_id).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if std::env::var("YUNID_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

pub fn split(values: Vec<String>) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split([' ', ',']))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who ran a command, as the audit trail names them: `cli:<operating-system user>`, or `cli:operator`
/// when the user is unknown or the name is not a plain one. (Whoever runs the CLI holds the database
/// credentials: this attributes, it does not authenticate.)
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let plain = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        format!("cli:{user}")
    } else {
        "cli:operator".to_owned()
    }
}

/// Records a change made from the command line; a change that cannot be audited is reported as failed.
pub async fn cli_audit(
    app: &App,
    action: &str,
    subject: &str,
    client_id: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    yunid::services::audit::record(
        &app.db,
        app.now(),
        yunid::store::audit::NewEvent {
            actor: &cli_actor(),
            action,
            subject,
            client_id,
            address: "cli",
            outcome: "success",
            detail: detail.to_string(),
        },
    )
    .await
}
