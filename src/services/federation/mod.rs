//! Identity brokering: people sign in to yunid through an upstream OpenID Connect provider (the national
//! platform, another province's yunid). yunid is the upstream's relying party: code flow with PKCE S256,
//! `state` and `nonce`, the sign-in bound to the browser that started it and to its pending
//! authorization request; the ID token is verified fully (`verify`) and only its claims are used.
//!
//! An upstream subject is linked to one person: by a verified resident ID number at a sufficient level
//! (the person with that number, or a new one at the mapped real-name level), or else by the person
//! signing in to yunid once in the same browser (a link offer). Sessions started this way carry `amr`
//! `fed` and the upstream's `acr` mapped to yunid's; the upstream's back-channel logout ends them.

pub mod discovery;
pub mod flow;
pub mod settings;
pub mod verify;

use std::sync::Arc;

use crate::crypto::Secrets;
use crate::keys::KeySet;
use crate::services::oidc::remote_jwks::RemoteJwks;
use crate::services::outbound::ClientHttp;
use crate::store::Db;

pub use discovery::Discovered;
pub use flow::{Federated, Outcome};
pub use settings::{Mapping, NewUpstream, UpstreamConfig};
pub use verify::TokenError;

/// How long a sign-in at an upstream may take (from yunid's redirect to the callback), seconds.
pub const FLOW_TTL: i64 = 600;
/// How long a link offer waits for the person's yunid sign-in, seconds.
pub const OFFER_TTL: i64 = 600;

/// What a federation function needs, built by `App::federation`.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    /// Upstream discovery, JWKS and token requests: guarded like every request to a configured URL.
    pub http: &'a ClientHttp,
    pub jwks: &'a RemoteJwks,
    pub discovered: &'a Discovered,
    /// Signs `private_key_jwt` client assertions (the upstream reads yunid's `/jwks`).
    pub keys: Arc<KeySet>,
    /// yunid's issuer: an upstream's callback URL is `<issuer>/login/upstream/<id>/callback`.
    pub issuer: &'a url::Url,
    /// Lifetime of the sessions this starts (the absolute session lifetime).
    pub session_ttl: i64,
    /// `allow_insecure_redirects` (development): upstream URLs may be plain http.
    pub allow_http: bool,
}

impl Ctx<'_> {
    /// The callback registered at upstream `id`: one per upstream, so that an answer is taken only for
    /// a sign-in started at the upstream it arrives for (mix-up, RFC 9700 §4.4).
    pub fn redirect_uri(&self, id: &str) -> String {
        let mut url = self.issuer.clone();
        url.set_path(&format!(
            "{}/login/upstream/{id}/callback",
            self.issuer.path().trim_end_matches('/')
        ));
        url.to_string()
    }
}

/// Why a federated sign-in or an upstream's request failed. Messages never carry an ID number or a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("no such upstream")]
    Unknown,
    #[error("the upstream is switched off")]
    Disabled,
    /// The callback's `state` names no sign-in started in this browser (expired, used, or elsewhere).
    #[error("the sign-in at the upstream is unknown, expired, used, or was started in another browser")]
    State,
    /// The upstream answered the authorization request with an error (its code, from a fixed set).
    #[error("the upstream refused the sign-in: {0}")]
    Refused(&'static str),
    #[error("the upstream could not be reached: {0}")]
    Unavailable(String),
    #[error("the upstream's token was rejected: {0}")]
    Token(#[from] TokenError),
    /// The linked person is locked or disabled.
    #[error("the account is not available")]
    PersonUnavailable,
    #[error("invalid setting `{0}`: {1}")]
    Setting(&'static str, String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FederationError {
    fn from(e: sqlx::Error) -> Self {
        FederationError::Internal(e.into())
    }
}
