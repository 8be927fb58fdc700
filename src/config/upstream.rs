//! Upstream OpenID Connect providers as configured (`[[upstreams]]` in the file, or the admin API body):
//! the types only; `services::federation::settings` checks and stores them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an upstream's claims are read. Every name is a claim of the upstream's ID token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The claim carrying the resident ID number (e.g. `id_number`); none: never linked by number.
    #[serde(default)]
    pub id_number: Option<String>,
    /// The claim carrying the person's name (default `name`).
    #[serde(default)]
    pub name: Option<String>,
    /// The claim carrying the phone number (default `phone_number`; used only with
    /// `phone_number_verified` true).
    #[serde(default)]
    pub phone: Option<String>,
    /// The claim carrying how sure the upstream is of the identity (e.g. `real_name_level`).
    #[serde(default)]
    pub level: Option<String>,
    /// Upstream level values (as text) and the yunid real-name level each counts as.
    #[serde(default)]
    pub levels: BTreeMap<String, i64>,
    /// The lowest mapped real-name level at which the ID number links (or creates) a person; none: an
    /// upstream whose numbers are never trusted (people link by signing in once).
    #[serde(default)]
    pub link_min_level: Option<i64>,
    /// Whether a verified number nobody holds yet creates a person (at the mapped level).
    #[serde(default)]
    pub create_persons: bool,
    /// Upstream `acr` values and the yunid `acr` each counts as (1 or 2); anything else is 1.
    #[serde(default)]
    pub acr: BTreeMap<String, i64>,
}

/// A secret that never shows in `Debug` output (configuration dumps, logs).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// An upstream as an operator writes it in the configuration file (`[[upstreams]]`, with its `id`).
pub type UpstreamConfig = NewUpstream;

/// An upstream's settings (admin API body; the configuration file's entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpstream {
    /// Short name used in URLs (`/login/upstream/<id>`): lower-case letters, digits and `-`. In the
    /// configuration file and at creation; an update takes it from the path.
    #[serde(default)]
    pub id: Option<String>,
    pub display_name: String,
    #[serde(default)]
    pub logo_url: Option<String>,
    /// `<issuer>/.well-known/openid-configuration`.
    pub discovery_url: String,
    pub client_id: String,
    /// Required for `client_secret_basic`/`client_secret_post`; on an update, absent keeps the stored one.
    #[serde(default)]
    pub client_secret: Option<SecretText>,
    #[serde(default = "default_auth_method")]
    pub auth_method: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub mapping: Mapping,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

/// Why an upstream's URL is refused: `(field, reason)`.
pub type UrlRefusal = (&'static str, String);

/// A URL yunid fetches from an upstream or shows for it (discovery, logo; the endpoints and `jwks_uri`
/// its metadata names): absolute, with a host, no fragment, no credentials, and https — plain http only
/// with `allow_http` (the development switch `allow_insecure_redirects`), loopback included.
pub fn check_url(field: &'static str, s: &str, allow_http: bool) -> Result<url::Url, UrlRefusal> {
    let url = url::Url::parse(s).map_err(|_| (field, "not an absolute URL".to_owned()))?;
    if url.host().is_none()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err((
            field,
            "a URL with a host, without a fragment or credentials".to_owned(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http => Ok(url),
        _ => Err((field, HTTPS_ONLY.to_owned())),
    }
}

/// The refusal of a plain-http upstream URL.
pub const HTTPS_ONLY: &str =
    "must be an https URL (http only with allow_insecure_redirects, for development)";

impl NewUpstream {
    /// The checks the configuration file's entries get when it is loaded (the admin API's bodies get
    /// the same through `services::federation::settings`): https URLs, and numbers trusted only at real-name
    /// level 2 or above.
    pub fn check(&self, allow_http: bool) -> Result<(), UrlRefusal> {
        check_url("discovery_url", &self.discovery_url, allow_http)?;
        if let Some(logo) = &self.logo_url {
            check_url("logo_url", logo, allow_http)?;
        }
        if self.mapping.link_min_level.is_some_and(|l| !(2..=3).contains(&l)) {
            return Err(("mapping.link_min_level", LINK_MIN_LEVEL.to_owned()));
        }
        Ok(())
    }
}

/// The refusal of a `link_min_level` below 2.
pub const LINK_MIN_LEVEL: &str = "2 or 3: a number asserted at level 1 is not verified";

fn default_auth_method() -> String {
    "client_secret_basic".into()
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}

fn default_enabled() -> bool {
    true
}
