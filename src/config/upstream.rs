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

fn default_auth_method() -> String {
    "client_secret_basic".into()
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}

fn default_enabled() -> bool {
    true
}
