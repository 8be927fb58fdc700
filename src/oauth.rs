//! The errors OAuth 2.0 and OpenID Connect name: a code from the specification and a description. Plain
//! data the domain returns; `crate::error` renders them (JSON at the token endpoint, a redirect or a
//! page at the authorization endpoint).

/// An error the protocol names (RFC 6749 §5.2, OIDC Core §3.1.2.6, RFC 6750 §3.1, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

macro_rules! oauth_errors {
    ($($name:ident),* $(,)?) => {
        impl OAuthError {
            $(pub fn $name(description: impl Into<String>) -> OAuthError {
                OAuthError { code: stringify!($name), description: description.into() }
            })*
        }
    };
}

oauth_errors!(
    invalid_request,
    invalid_client,
    invalid_grant,
    unauthorized_client,
    unsupported_grant_type,
    invalid_scope,
    access_denied,
    unsupported_response_type,
    server_error,
    login_required,
    consent_required,
    interaction_required,
    invalid_request_uri,
    request_not_supported,
    request_uri_not_supported,
    invalid_token,
    unsupported_token_type,
    // RFC 8628 §3.5 (device authorization grant).
    authorization_pending,
    slow_down,
    expired_token,
);

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}
