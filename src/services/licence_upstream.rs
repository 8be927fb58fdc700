//! Pulling a holder's licences from an upstream e-licence library over HTTP.
//!
//! Contract: `GET {licence_upstream_url}/holders/{code_type}/{code}/licences` with
//! `Authorization: Bearer {licence_upstream_token}` answers `200 {"licences": [<licence record>…]}`
//! (records as in the admin API). Results are cached for `licence_upstream_ttl` seconds per holder. An
//! unreachable or slow library never blocks a login: the local records are used and the failure is logged.

use serde::Deserialize;

use crate::app::App;
use crate::services::licence::{self, LicenceInput};
use crate::services::outbound::error_text;
use crate::store::licences::upsert_licence;

#[derive(Deserialize)]
struct Answer {
    licences: Vec<LicenceInput>,
}

/// Refreshes a holder's licences from upstream when configured and stale. Never fails: problems are logged.
pub async fn refresh(app: &App, code_type: &str, code: &str, holder_hash: &str, now: i64) {
    let Some(base) = app.config.licence_upstream_url.as_deref() else {
        return;
    };
    match app.db.licence_fetched_at(holder_hash).await {
        Ok(Some(at)) if now - at < app.config.licence_upstream_ttl => return,
        Err(e) => {
            tracing::warn!(error = %e, "licence cache unreadable");
            return;
        }
        _ => {}
    }
    let Ok(mut url) = url::Url::parse(base) else {
        tracing::warn!("licence_upstream_url is not a URL");
        return;
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["holders", code_type, code, "licences"]);
    }
    let mut req = app.http.get(url).timeout(licence::upstream_timeout(app));
    if let Some(token) = &app.config.licence_upstream_token {
        req = req.bearer_auth(token);
    }
    // A reqwest error names the URL, whose path holds the holder's code (an ID number): never logged.
    let answer = match req.send().await {
        Ok(res) if res.status().is_success() => res.json::<Answer>().await.map_err(error_text),
        Ok(res) => Err(format!("HTTP {}", res.status())),
        Err(e) => Err(error_text(e)),
    };
    let answer = match answer {
        Ok(a) => {
            app.metrics.licence_upstream("ok");
            a
        }
        Err(error) => {
            app.metrics
                .licence_upstream(if error == "timed out" { "timeout" } else { "error" });
            // Logged without the holder code: it may be an ID number. The configured base URL is not
            // personal and says which library failed.
            tracing::warn!(%error, upstream = base, "e-licence library unavailable; releasing local licences only");
            return;
        }
    };
    let mut stored = 0;
    for input in &answer.licences {
        match licence::validate(app, input, "upstream").await {
            Ok(row) if row.holder_code_hash == holder_hash => {
                if let Err(e) = upsert_licence(&app.db.pool, &row, now).await {
                    tracing::warn!(error = %e, "cannot store an upstream licence");
                } else {
                    stored += 1;
                }
            }
            Ok(_) => {
                tracing::warn!(licence = %input.id, "upstream sent a licence of another holder; ignored")
            }
            Err(e) => {
                tracing::warn!(licence = %input.id, error = %e, "upstream sent an invalid licence; ignored")
            }
        }
    }
    tracing::debug!(stored, "licences pulled from the e-licence library");
    if let Err(e) = app.db.set_licence_fetched(holder_hash, now).await {
        tracing::warn!(error = %e, "cannot record the licence fetch");
    }
}
