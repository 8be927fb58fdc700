//! Registering upstreams: from the admin API or the configuration file, checked the same way. The
//! client secret is sealed (`Secrets::encrypt`) before it is stored and never shown again.

use super::{Ctx, FederationError};
pub use crate::config::upstream::{Mapping, NewUpstream, SecretText, UpstreamConfig};
use crate::crypto::Secrets;
use crate::store::Db;
use crate::store::upstreams::UpstreamRow;

pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "private_key_jwt"];

fn bad(field: &'static str, why: &str) -> FederationError {
    FederationError::Setting(field, why.to_owned())
}

/// The associated data an upstream's sealed secret is bound to.
pub fn secret_aad(id: &str) -> Vec<u8> {
    format!("upstream:{id}").into_bytes()
}

pub fn check_id(id: &str) -> Result<(), FederationError> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(bad("id", "1–40 lower-case letters, digits or '-'"))
    }
}

fn checked_url(field: &'static str, s: &str, allow_http: bool) -> Result<url::Url, FederationError> {
    crate::config::upstream::check_url(field, s, allow_http)
        .map_err(|(f, why)| FederationError::Setting(f, why))
}

/// The row to store for `new` (replacing `existing`, whose secret stays when none is given). URLs must
/// be https; plain http only with `allow_http` (`allow_insecure_redirects`, development).
pub fn row(
    secrets: &Secrets,
    id: &str,
    new: NewUpstream,
    existing: Option<&UpstreamRow>,
    source: &str,
    allow_http: bool,
    now: i64,
) -> Result<UpstreamRow, FederationError> {
    check_id(id)?;
    let display_name = new.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(bad("display_name", "1–100 characters"));
    }
    if let Some(logo) = &new.logo_url {
        checked_url("logo_url", logo, allow_http)?;
    }
    let discovery = checked_url("discovery_url", &new.discovery_url, allow_http)?;
    if !discovery.path().ends_with("/.well-known/openid-configuration") || discovery.query().is_some() {
        return Err(bad(
            "discovery_url",
            "must end with /.well-known/openid-configuration",
        ));
    }
    let client_id = new.client_id.trim().to_owned();
    if client_id.is_empty() || client_id.len() > 255 {
        return Err(bad("client_id", "1–255 characters"));
    }
    if !AUTH_METHODS.contains(&new.auth_method.as_str()) {
        return Err(bad(
            "auth_method",
            "client_secret_basic, client_secret_post or private_key_jwt",
        ));
    }
    if !new.scopes.iter().any(|s| s == "openid")
        || new
            .scopes
            .iter()
            .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        return Err(bad("scopes", "scope names, including openid"));
    }
    let m = &new.mapping;
    if m.acr.values().any(|v| !(1..=2).contains(v)) {
        return Err(bad("mapping.acr", "yunid acr values are 1 or 2"));
    }
    if m.levels.values().any(|v| !(1..=3).contains(v)) {
        return Err(bad("mapping.levels", "real-name levels are 1, 2 or 3"));
    }
    // A number is trusted to name a person only when the upstream verified it (level 2 or above).
    if m.link_min_level.is_some_and(|v| !(2..=3).contains(&v)) {
        return Err(bad(
            "mapping.link_min_level",
            crate::config::upstream::LINK_MIN_LEVEL,
        ));
    }
    if m.link_min_level.is_some() && (m.id_number.is_none() || m.level.is_none()) {
        return Err(bad(
            "mapping.link_min_level",
            "needs the id_number and level claims",
        ));
    }
    let client_secret_enc = match (&new.client_secret, new.auth_method.as_str()) {
        (_, "private_key_jwt") => None,
        (Some(s), _) if !s.0.is_empty() => Some(secrets.encrypt(&s.0, &secret_aad(id))?),
        (_, _) => match existing.and_then(|e| e.client_secret_enc.clone()) {
            Some(kept) => Some(kept),
            None => return Err(bad("client_secret", "required for this auth_method")),
        },
    };
    Ok(UpstreamRow {
        id: id.to_owned(),
        display_name,
        logo_url: new.logo_url.clone(),
        discovery_url: discovery.to_string(),
        client_id,
        client_secret_enc,
        auth_method: new.auth_method.clone(),
        scopes: new.scopes.iter().map(String::as_str).collect(),
        mapping: serde_json::to_string(&new.mapping).map_err(anyhow::Error::from)?,
        enabled: new.enabled,
        source: source.to_owned(),
        version: existing.map_or(1, |e| e.version + 1),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    })
}

/// Creates an upstream; `Ok(false)` when the id is taken.
pub async fn create(
    ctx: &Ctx<'_>,
    id: &str,
    new: NewUpstream,
    now: i64,
) -> Result<UpstreamRow, FederationError> {
    let row = row(ctx.secrets, id, new, None, "api", ctx.allow_http, now)?;
    if !ctx.db.insert_upstream(&row).await? {
        return Err(bad("id", "taken"));
    }
    Ok(row)
}

/// Replaces an upstream's settings if it is still at `version` (`None`: the one just read).
/// `Ok(None)` when it changed meanwhile.
pub async fn update(
    ctx: &Ctx<'_>,
    existing: &UpstreamRow,
    new: NewUpstream,
    now: i64,
) -> Result<Option<UpstreamRow>, FederationError> {
    let row = row(
        ctx.secrets,
        &existing.id,
        new,
        Some(existing),
        "api",
        ctx.allow_http,
        now,
    )?;
    if !ctx.db.update_upstream(&row, existing.version).await? {
        return Ok(None);
    }
    ctx.discovered.forget(&existing.id);
    Ok(Some(row))
}

/// Writes the configuration file's upstreams into the database (at start): they replace rows of the
/// same id.
pub async fn sync_config(
    db: &Db,
    secrets: &Secrets,
    upstreams: &[UpstreamConfig],
    allow_http: bool,
    now: i64,
) -> Result<(), FederationError> {
    for u in upstreams {
        let id = u.id.clone().unwrap_or_default();
        let existing = db.upstream(&id).await?;
        let row = row(
            secrets,
            &id,
            u.clone(),
            existing.as_ref(),
            "config",
            allow_http,
            now,
        )
        .map_err(|e| FederationError::Setting("upstreams", format!("{id}: {e}")))?;
        match &existing {
            Some(e) => {
                db.update_upstream(&row, e.version).await?;
            }
            None => {
                db.insert_upstream(&row).await?;
            }
        }
    }
    Ok(())
}

/// The mapping stored with an upstream.
pub fn mapping(row: &UpstreamRow) -> Mapping {
    serde_json::from_str(&row.mapping).unwrap_or_default()
}
