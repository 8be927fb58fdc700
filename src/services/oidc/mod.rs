//! OpenID Connect: authorization requests, client authentication, claims, tokens.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod code;
pub mod grants;
pub mod remote_jwks;
pub mod tokens;
