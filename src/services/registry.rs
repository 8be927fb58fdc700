//! Creating department apps and persons (CLI today, admin API later).

use crate::crypto::{self, Random, Secrets};
use crate::identity::{Phone, ResidentId};
use crate::keys::Alg;
use crate::services::admin::persons::PersonStatus;
use crate::services::password::{self, Hasher};
use crate::store::Db;
use crate::store::clients::{AuthMethod, Client, SubjectType};
use crate::store::persons::PersonRow;

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub auth_method: AuthMethod,
    pub jwks: Option<String>,
    /// Where the client publishes its keys (private_key_jwt; instead of `jwks`).
    pub jwks_uri: Option<String>,
    pub id_token_alg: Alg,
    pub public_subject: bool,
    pub sector: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub min_acr: i64,
    /// Matter codes the app handles (agents must hold them to act for an organisation here).
    pub matters: Vec<String>,
    pub department: String,
}

impl Default for NewClient {
    fn default() -> Self {
        NewClient {
            name: String::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: ["openid", "profile", "phone", "offline_access"]
                .map(String::from)
                .to_vec(),
            grant_types: ["authorization_code", "refresh_token"].map(String::from).to_vec(),
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            id_token_alg: Alg::RS256,
            public_subject: false,
            sector: None,
            backchannel_logout_uri: None,
            min_acr: 1,
            matters: Vec::new(),
            department: String::new(),
        }
    }
}

/// A redirect URI must be absolute, without fragment, and https unless it is loopback (RFC 9700 §2.1)
/// or insecure redirects are allowed for development.
pub fn check_uri(uri: &str, allow_http: bool) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(uri).map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
    anyhow::ensure!(url.fragment().is_none(), "{uri}: a redirect URI has no fragment");
    let loopback = url.host_str().is_some_and(is_loopback_host);
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_http => {}
        s => anyhow::bail!("{uri}: scheme {s} is not allowed (use https)"),
    }
    Ok(url)
}

/// A JWKS URI: absolute, https (http only on loopback, or when insecure redirects are allowed for
/// development), no fragment and no credentials in it.
pub fn check_jwks_uri(uri: &str, allow_http: bool) -> anyhow::Result<url::Url> {
    let url = check_uri(uri, allow_http)?;
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "{uri}: a JWKS URI carries no credentials"
    );
    Ok(url)
}

/// Whether a redirect URI's host is the machine the app runs on (RFC 8252 §7.3), shared by every
/// native app.
pub fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// The pairwise sector (OIDC Core §8.1) a new client gets for `sector`: a loopback host is every
/// native app's, so such a client gets a sector of its own and two of them cannot join their users.
pub fn sector_for(sector: &str, client_id: &str) -> String {
    if is_loopback_host(sector) {
        format!("client:{client_id}")
    } else {
        sector.to_owned()
    }
}

/// What registering apps and persons needs; app.rs builds it.
pub struct Registry<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub hasher: &'a Hasher,
    pub rng: &'a dyn Random,
    /// `allow_insecure_redirects`: http URIs off loopback (development only).
    pub allow_http: bool,
}

impl Registry<'_> {
    /// Registers a client at `now`; returns it with its secret (shown once, stored only as a hash).
    pub async fn add_client(&self, new: NewClient, now: i64) -> anyhow::Result<(Client, Option<String>)> {
        add_client(self, new, now).await
    }

    /// Creates a person at real-name level 1 at `now`. The ID number is stored encrypted, indexed by
    /// its keyed hash.
    pub async fn add_person(&self, new: NewPerson, now: i64) -> Result<String, PersonError> {
        add_person(self, new, now).await
    }
}

async fn add_client(r: &Registry<'_>, new: NewClient, now: i64) -> anyhow::Result<(Client, Option<String>)> {
    anyhow::ensure!(!new.name.trim().is_empty(), "a client needs a name");
    let allow_http = r.allow_http;
    let mut hosts = Vec::new();
    for uri in new.redirect_uris.iter().chain(&new.post_logout_redirect_uris) {
        let url = check_uri(uri, allow_http)?;
        hosts.push(url.host_str().unwrap_or_default().to_owned());
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_uri(uri, allow_http)?;
    }
    if let Some(uri) = &new.jwks_uri {
        check_jwks_uri(uri, allow_http)?;
        anyhow::ensure!(new.jwks.is_none(), "a client has jwks or jwks_uri, not both");
    }
    if new.grant_types.iter().any(|g| g == "authorization_code") {
        anyhow::ensure!(
            !new.redirect_uris.is_empty(),
            "a code-flow client needs a redirect URI"
        );
    }
    for g in &new.grant_types {
        anyhow::ensure!(
            matches!(
                g.as_str(),
                "authorization_code"
                    | "refresh_token"
                    | "client_credentials"
                    | crate::services::device::GRANT_TYPE
            ),
            "unsupported grant type {g}"
        );
    }
    // OIDC Core §8.1: the sector is the redirect URIs' host, which must then be unique.
    let sector = match new.sector {
        Some(s) => s,
        None => {
            hosts.sort();
            hosts.dedup();
            // 127.0.0.1 and [::1] of one native app: one sector, the client's own (`sector_for`).
            if hosts.iter().all(|h| is_loopback_host(h)) {
                hosts.truncate(1);
            }
            anyhow::ensure!(
                hosts.len() <= 1,
                "redirect URIs on several hosts need an explicit sector identifier"
            );
            hosts.pop().unwrap_or_else(|| "default".into())
        }
    };
    let (secret, secret_hash) = match new.auth_method {
        AuthMethod::PrivateKeyJwt => {
            if let Some(jwks) = new.jwks.as_deref() {
                let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks)?;
                anyhow::ensure!(!parsed.keys.is_empty(), "the JWKS has no keys");
            } else {
                anyhow::ensure!(
                    new.jwks_uri.is_some(),
                    "private_key_jwt needs a JWKS or a JWKS URI"
                );
            }
            (None, None)
        }
        _ => {
            let secret = r.rng.token();
            let hash = crypto::token_hash(&secret);
            (Some(secret), Some(hash))
        }
    };
    let id = crate::ids::new_id(now, r.rng).simple().to_string();
    let sector = sector_for(&sector, &id);
    let client = Client {
        id,
        name: new.name,
        secret_hash,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        scopes: new.scopes,
        grant_types: new.grant_types,
        auth_method: new.auth_method,
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        id_token_alg: new.id_token_alg,
        subject_type: if new.public_subject {
            SubjectType::Public
        } else {
            SubjectType::Pairwise
        },
        sector,
        backchannel_logout_uri: new.backchannel_logout_uri,
        min_acr: new.min_acr,
        disabled: false,
        matters: new.matters,
        department: new.department,
        version: 1,
    };
    r.db.insert_client(&client, now).await?;
    Ok((client, secret))
}

/// Checks an edited app's settings; on failure, the field at fault and why.
pub fn check_settings(c: &Client, allow_http: bool) -> Result<(), (&'static str, String)> {
    if c.name.trim().is_empty() || c.name.chars().count() > 200 {
        return Err(("name", "a name of 1 to 200 characters is required".into()));
    }
    for uri in &c.redirect_uris {
        check_uri(uri, allow_http).map_err(|e| ("redirect_uris", e.to_string()))?;
    }
    for uri in &c.post_logout_redirect_uris {
        check_uri(uri, allow_http).map_err(|e| ("post_logout_redirect_uris", e.to_string()))?;
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        check_uri(uri, allow_http).map_err(|e| ("backchannel_logout_uri", e.to_string()))?;
    }
    if let Some(g) = c.grant_types.iter().find(|g| {
        !matches!(
            g.as_str(),
            "authorization_code"
                | "refresh_token"
                | "client_credentials"
                | crate::services::device::GRANT_TYPE
        )
    }) {
        return Err(("grant_types", format!("unsupported grant type {g}")));
    }
    if c.allows_grant("authorization_code") && c.redirect_uris.is_empty() {
        return Err(("redirect_uris", "a code-flow client needs a redirect URI".into()));
    }
    if !(1..=2).contains(&c.min_acr) {
        return Err(("min_acr", "min_acr is 1 or 2".into()));
    }
    if let Some(bad) = c.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
        return Err(("scopes", format!("{bad:?} is not a scope")));
    }
    if let Some(bad) = c.matters.iter().find(|m| m.trim().is_empty() || m.len() > 64) {
        return Err(("matters", format!("{bad:?} is not a matter code")));
    }
    if let Some(uri) = &c.jwks_uri {
        check_jwks_uri(uri, allow_http).map_err(|e| ("jwks_uri", e.to_string()))?;
        if c.jwks.is_some() {
            return Err((
                "jwks_uri",
                "an app has jwks or jwks_uri, never both (set the other to null)".into(),
            ));
        }
    }
    match (&c.jwks, c.auth_method) {
        (Some(jwks), _) => {
            let parsed: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(jwks).map_err(|e| ("jwks", format!("not a JWK set: {e}")))?;
            if parsed.keys.is_empty() {
                return Err(("jwks", "the JWKS has no keys".into()));
            }
            // An app registers its public keys; a private part here means its key has leaked.
            let raw: serde_json::Value = serde_json::from_str(jwks).unwrap_or_default();
            let private = raw["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()));
            if private {
                return Err((
                    "jwks",
                    "the JWKS holds a private key; register public keys only".into(),
                ));
            }
        }
        (None, AuthMethod::PrivateKeyJwt) if c.jwks_uri.is_none() => {
            return Err(("jwks", "private_key_jwt needs a JWKS or a JWKS URI".into()));
        }
        (None, _) => {}
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PersonError {
    #[error("invalid resident ID number: {0}")]
    IdNumber(crate::identity::ResidentIdError),
    #[error("invalid phone number: {0}")]
    Phone(crate::identity::PhoneError),
    #[error("the password must have at least {min} and at most {max} characters", min = password::MIN_LENGTH, max = password::MAX_LENGTH)]
    Password,
    #[error("a name of 1 to 100 characters is required")]
    Name,
    #[error("this password is too common (it appears in lists of breached passwords); choose another")]
    CommonPassword,
    #[error("a person with this resident ID number or phone already exists")]
    Conflict,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub struct NewPerson {
    pub id_number: String,
    pub name: String,
    pub phone: Option<String>,
    /// Whether the phone number was verified (by an admin or an SMS code) when the person was created.
    pub phone_verified: bool,
    pub password: Option<String>,
}

async fn add_person(r: &Registry<'_>, new: NewPerson, now: i64) -> Result<String, PersonError> {
    let id_number = ResidentId::parse(&new.id_number).map_err(PersonError::IdNumber)?;
    let phone = new
        .phone
        .as_deref()
        .map(Phone::parse)
        .transpose()
        .map_err(PersonError::Phone)?;
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(PersonError::Name);
    }
    let password_hash = match new.password {
        Some(p) => {
            match password::check_new(&p) {
                Ok(()) => {}
                Err(password::Weakness::Length) => return Err(PersonError::Password),
                Err(password::Weakness::Common) => return Err(PersonError::CommonPassword),
            }
            Some(r.hasher.hash(p, r.rng).await?)
        }
        None => None,
    };
    let id = crate::ids::new_id(now, r.rng).to_string();
    let row = PersonRow {
        id_number_hash: r.secrets.id_hash(id_number.as_str()),
        id_number_enc: r.secrets.encrypt(id_number.as_str(), id.as_bytes())?,
        id: id.clone(),
        name,
        phone: phone.map(|p| p.as_str().to_owned()),
        password_hash,
        real_name_level: 1,
        status: PersonStatus::Active,
        phone_verified: new.phone_verified,
        real_name_verified_at: None,
        real_name_method: None,
        real_name_verified_by: None,
        version: 1,
        password_expires_at: None,
        password_must_change: false,
    };
    match r.db.insert_person(&row, now).await {
        Ok(()) => Ok(id),
        Err(e) if crate::store::is_unique_violation(&e) => Err(PersonError::Conflict),
        Err(e) => Err(PersonError::Internal(e.into())),
    }
}
