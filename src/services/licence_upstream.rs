//! Pulling a holder's licences from an upstream e-licence library over HTTP.
//!
//! Contract: `GET {licence_upstream_url}/holders/{code_type}/{code}/licences` with
//! `Authorization: Bearer {licence_upstream_token}` answers `200 {"licences": [<licence record>…]}`
//! (records as in the admin API). Results are cached for `licence_upstream_ttl` seconds per holder. An
//! unreachable or slow library never blocks a login: the local records are used and the failure is logged.
//!
//! The library is the authority on what it lists: after a successful answer, a licence of that holder
//! which was learnt from it (source `upstream`) and is still valid or suspended here, but which the
//! answer no longer lists, is marked withdrawn (`03`) and is never released again unless the library
//! lists it again. A failed or slow fetch withdraws nothing. Licences pushed or imported through the
//! admin API are the pushing library's to change and are left as they are.

use std::time::Duration;

use serde::Deserialize;

use crate::crypto::Secrets;
use crate::metrics::Metrics;
use crate::services::licence_record::{self as licence, LicenceInput};
use crate::services::outbound::error_text;
use crate::store::Db;
use crate::store::licences::{LicenceStatus, upsert_licence};

#[derive(Deserialize)]
struct Answer {
    licences: Vec<LicenceInput>,
}

/// The upstream library as configured (`licence_upstream_*`).
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The library's base URL; `None`: no upstream, local records only.
    pub url: Option<&'a str>,
    pub token: Option<&'a str>,
    /// How long a holder's answer is reused, in seconds.
    pub ttl: i64,
    /// How long the library may take before a login goes on without it.
    pub timeout: Duration,
}

/// What pulling licences needs; app.rs builds it.
pub struct Upstream<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    /// Requests to services the operator configured.
    pub http: &'a reqwest::Client,
    pub metrics: &'a Metrics,
    pub settings: Settings<'a>,
}

/// Refreshes a holder's licences from upstream when configured and stale. Never fails: problems are logged.
pub async fn refresh(up: &Upstream<'_>, code_type: &str, code: &str, holder_hash: &str, now: i64) {
    let Some(base) = up.settings.url else {
        return;
    };
    match up.db.licence_fetched_at(holder_hash).await {
        Ok(Some(at)) if now - at < up.settings.ttl => return,
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
    let mut req = up.http.get(url).timeout(up.settings.timeout);
    if let Some(token) = up.settings.token {
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
            up.metrics.licence_upstream("ok");
            a
        }
        Err(error) => {
            up.metrics
                .licence_upstream(if error == "timed out" { "timeout" } else { "error" });
            // Logged without the holder code: it may be an ID number. The configured base URL is not
            // personal and says which library failed.
            tracing::warn!(%error, upstream = base, "e-licence library unavailable; releasing local licences only");
            return;
        }
    };
    let mut stored = 0;
    for input in &answer.licences {
        match licence::validate(up.db, up.secrets, input, "upstream").await {
            Ok(row) if row.holder_code_hash == holder_hash => {
                if let Err(e) = upsert_licence(&up.db.pool, &row, now).await {
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
    let listed = |id: &str| {
        answer
            .licences
            .iter()
            .any(|l| l.id.trim().eq_ignore_ascii_case(id))
    };
    match up.db.licences_of_holder(holder_hash).await {
        Ok(known) => {
            for l in known {
                let live = matches!(l.status, LicenceStatus::Valid | LicenceStatus::Suspended);
                if l.source == "upstream" && live && !listed(&l.id) {
                    match up
                        .db
                        .set_licence_status(&l.id, LicenceStatus::Withdrawn, now)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(licence = %l.id, "no longer listed by the e-licence library; withdrawn")
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot withdraw an unlisted licence"),
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the holder's licences"),
    }
    if let Err(e) = up.db.set_licence_fetched(holder_hash, now).await {
        tracing::warn!(error = %e, "cannot record the licence fetch");
    }
}
