//! The grants of the token endpoint (RFC 6749 §4, §6), one file each: a grant is a domain function that
//! takes its parsed input, the authenticated client, the pieces it needs ([`Ctx`]) and `now`, and returns
//! the token response or a [`GrantError`]. The HTTP layer parses the form, calls [`exchange`] and
//! renders; the admin console calls the same functions in-process.
//!
//! A new grant adds a file here, a variant to [`GrantType`] and [`GrantRequest`], and an arm to
//! [`exchange`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh_token;

mod issue;

use std::fmt;

use crate::crypto::Random;
pub use crate::services::oidc::Licences;
use crate::services::oidc::claims::{self, Representations, SubjectError};
use crate::services::oidc::code::Refusal;
use crate::services::oidc::tokens::{Minting, TokenError, TokenResponse};
use crate::store::Db;
use crate::store::clients::Client;

/// The settings the grants read (from `Config`), besides those of token issuance.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long an SSO session lives without being used: a grant without `offline_access` ends with it.
    pub session_idle_ttl: i64,
    /// The longest a grant lives (`refresh_absolute_ttl`): what the device grant's family gets.
    pub grant_ttl: i64,
}

/// What the grants need: the store, token issuance (keys, secrets, settings), the services that decide
/// representations and licences, and randomness.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub minting: Minting<'a>,
    pub settings: Settings,
    pub representations: &'a dyn Representations,
    pub licences: &'a dyn Licences,
    pub rng: &'a dyn Random,
}

impl Ctx<'_> {
    fn subjects(&self) -> claims::Subjects<'_> {
        claims::Subjects {
            db: self.db,
            secrets: self.minting.secrets,
            representations: self.representations,
        }
    }
}

/// The grant types yunid serves (`grant_type`, RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628 §3.4.
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];

    /// The `grant_type` value (exact, case-sensitive); `None` for grants yunid does not serve.
    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => crate::services::device::GRANT_TYPE,
        }
    }

    /// Whether `client` registered this grant (RFC 6749 §5.2 `unauthorized_client` otherwise).
    pub fn allowed_for(self, client: &Client) -> Result<(), GrantError> {
        if client.allows_grant(self.as_str()) {
            Ok(())
        } else if self == GrantType::DeviceCode {
            // For an app not registered for it, the device grant stays unsupported (as before yunid
            // served it): no app learns of a grant its registration does not name.
            Err(GrantError::UnsupportedGrantType)
        } else {
            Err(GrantError::UnauthorizedClient(self))
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token request, parsed.
#[derive(Debug, Clone)]
pub enum GrantRequest<'a> {
    AuthorizationCode(authorization_code::Input<'a>),
    RefreshToken(refresh_token::Input<'a>),
    ClientCredentials(client_credentials::Input),
    DeviceCode(device_code::Input<'a>),
}

impl GrantRequest<'_> {
    pub fn grant_type(&self) -> GrantType {
        match self {
            GrantRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            GrantRequest::RefreshToken(_) => GrantType::RefreshToken,
            GrantRequest::ClientCredentials(_) => GrantType::ClientCredentials,
            GrantRequest::DeviceCode(_) => GrantType::DeviceCode,
        }
    }
}

/// Runs a token request for an authenticated client.
pub async fn exchange(
    ctx: &Ctx<'_>,
    client: &Client,
    request: GrantRequest<'_>,
    now: i64,
) -> Result<TokenResponse, GrantError> {
    request.grant_type().allowed_for(client)?;
    match request {
        GrantRequest::AuthorizationCode(input) => authorization_code::redeem(ctx, client, input, now).await,
        GrantRequest::RefreshToken(input) => refresh_token::refresh(ctx, client, input, now).await,
        GrantRequest::ClientCredentials(input) => client_credentials::issue(ctx, client, input, now),
        GrantRequest::DeviceCode(input) => device_code::redeem(ctx, client, input, now).await,
    }
}

/// Why a token request was refused. `Display` is the description the client sees.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    /// `unauthorized_client`: the client did not register this grant.
    #[error("this client may not use {0}")]
    UnauthorizedClient(GrantType),
    /// `invalid_request`: a parameter the grant reads late is unusable.
    #[error("{0}")]
    InvalidRequest(String),
    /// The rest are `invalid_grant`, but for [`GrantError::InvalidScope`] and [`GrantError::ScopeExceedsGrant`].
    #[error("code_verifier is malformed")]
    MalformedVerifier,
    #[error("unknown authorization code")]
    UnknownCode,
    #[error("{}", .0.description())]
    CodeRefused(Refusal),
    #[error("the grant was revoked")]
    GrantRevoked,
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    #[error("refresh token was issued to another client")]
    RefreshTokenOfAnotherClient,
    #[error("the session this grant belongs to has ended")]
    SessionEnded,
    #[error("refresh token already used")]
    RefreshTokenReused,
    #[error("refresh token expired")]
    RefreshTokenExpired,
    /// The subject can no longer be spoken for (person locked, representation ended, app disabled).
    #[error(transparent)]
    Subject(SubjectError),
    /// `invalid_scope` (RFC 6749 §6): a refresh asks for more than was granted.
    #[error("scope exceeds what was granted")]
    ScopeExceedsGrant,
    /// `invalid_scope`: a scope the client may not have.
    #[error("scope {0} is not allowed for this client")]
    InvalidScope(String),
    /// RFC 8628 §3.5: the person has not answered yet (`authorization_pending`).
    #[error("the person has not answered yet")]
    AuthorizationPending,
    /// `slow_down`: polled within the interval, which has grown by 5 seconds.
    #[error("polling too fast: wait 5 seconds more between polls")]
    SlowDown,
    /// `expired_token`: the device code expired unanswered.
    #[error("the device code expired; start again")]
    ExpiredToken,
    /// `access_denied`: the person denied the device.
    #[error("the person denied the request")]
    AccessDenied,
    /// `invalid_grant`: an unknown, used or another client's device code.
    #[error("{0}")]
    DeviceCodeRefused(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<SubjectError> for GrantError {
    fn from(e: SubjectError) -> Self {
        match e {
            SubjectError::Internal(e) => GrantError::Internal(e),
            e => GrantError::Subject(e),
        }
    }
}

impl From<TokenError> for GrantError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Internal(e) => GrantError::Internal(e),
        }
    }
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        GrantError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests;
