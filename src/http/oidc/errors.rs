//! The OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1) the protocol services' refusals become on the wire.

use crate::error::{Error, OAuthError};
use crate::services::oidc::client_auth::ClientAuthError;
use crate::services::oidc::grants::GrantError;
use crate::services::oidc::introspection::IntrospectionError;
use crate::services::oidc::tokens::TokenError;
use crate::services::oidc::userinfo::UserinfoError;

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Error {
        let description = e.to_string();
        match e {
            GrantError::UnsupportedGrantType => OAuthError::unsupported_grant_type(description).into(),
            GrantError::UnauthorizedClient(_) => OAuthError::unauthorized_client(description).into(),
            GrantError::InvalidRequest(_) => OAuthError::invalid_request(description).into(),
            GrantError::ScopeExceedsGrant | GrantError::InvalidScope(_) => {
                OAuthError::invalid_scope(description).into()
            }
            GrantError::MalformedVerifier
            | GrantError::UnknownCode
            | GrantError::CodeRefused(_)
            | GrantError::GrantRevoked
            | GrantError::UnknownRefreshToken
            | GrantError::RefreshTokenOfAnotherClient
            | GrantError::SessionEnded
            | GrantError::RefreshTokenReused
            | GrantError::RefreshTokenExpired
            | GrantError::Subject(_)
            | GrantError::DeviceCodeRefused(_) => OAuthError::invalid_grant(description).into(),
            GrantError::AuthorizationPending => OAuthError::authorization_pending(description).into(),
            GrantError::SlowDown => OAuthError::slow_down(description).into(),
            GrantError::ExpiredToken => OAuthError::expired_token(description).into(),
            GrantError::AccessDenied => OAuthError::access_denied(description).into(),
            GrantError::Internal(e) => e.into(),
        }
    }
}

impl From<ClientAuthError> for Error {
    fn from(e: ClientAuthError) -> Error {
        match e {
            ClientAuthError::Request(m) => OAuthError::invalid_request(m).into(),
            ClientAuthError::Failed(m) => Error::ClientAuth(m),
            ClientAuthError::Internal(e) => e.into(),
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Error {
        match e {
            TokenError::Internal(e) => e.into(),
        }
    }
}

impl From<UserinfoError> for Error {
    fn from(e: UserinfoError) -> Error {
        match e {
            UserinfoError::InvalidToken(m) => Error::Bearer(m),
            UserinfoError::NoOpenid => Error::InsufficientScope(e.to_string()),
            UserinfoError::Internal(e) => e.into(),
        }
    }
}

impl From<IntrospectionError> for Error {
    fn from(e: IntrospectionError) -> Error {
        match e {
            IntrospectionError::Internal(e) => e.into(),
        }
    }
}
