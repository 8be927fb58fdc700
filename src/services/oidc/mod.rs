//! OpenID Connect: authorization requests, client authentication, claims, tokens, and the grants of the
//! token endpoint.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod code;
pub mod grants;
pub mod introspection;
pub mod remote_jwks;
pub mod scope;
pub mod tokens;
pub mod userinfo;

/// A boxed future: what a port to another service returns (object-safe, unlike `async fn` in traits).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The licences a token or a userinfo answer may carry, as the licence service releases them.
pub trait Licences: Send + Sync {
    fn release<'a>(
        &'a self,
        client: &'a crate::store::clients::Client,
        asked: &'a crate::services::licence::Release<'a>,
        subject: &'a claims::GrantSubject,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<serde_json::Value>>>;
}
