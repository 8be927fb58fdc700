//! OpenID Connect: authorization requests, client authentication, claims, tokens, and the grants of the
//! token endpoint.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod code;
pub mod grants;
pub mod remote_jwks;
pub mod scope;
pub mod tokens;

/// A boxed future: what a port to another service returns (object-safe, unlike `async fn` in traits).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
