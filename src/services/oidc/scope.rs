//! What scopes an app may still be given: the part of scope handling that reads the client's registration.
//! The type itself is the crate's domain vocabulary ([`crate::scope`]), re-exported here.

pub use crate::scope::ScopeSet;
use crate::store::clients::Client;

/// [`ScopeSet`] against a client's registration.
pub trait AllowedFor {
    /// The scopes the app is still allowed: an admin who takes a scope from an app stops the release at
    /// once, without waiting for its grants to expire.
    fn allowed_for(&self, client: &Client) -> ScopeSet;
}

impl AllowedFor for ScopeSet {
    fn allowed_for(&self, client: &Client) -> ScopeSet {
        self.filter(|s| client.allows_scope(s))
    }
}
