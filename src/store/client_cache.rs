//! A per-node cache of client rows, so `/token` and `/introspect` do not read the database to
//! authenticate the app on every call.
//!
//! A change must take effect at once (a rotated secret or a disabled app is refused immediately):
//! - on this node, every write to `clients` evicts the row here before it returns ([`Db::client_changed`]);
//! - on other nodes (PostgreSQL), the write sends `NOTIFY yunid_clients, '<id>'` in its transaction, and
//!   each node LISTENs on a connection of its own ([`Db::watch_clients`]). The cache serves only while that
//!   connection is up; when it drops, the whole cache is forgotten and bypassed until it is back;
//! - a short time-to-live bounds what any missed notification could cost.
//!
//! A read that raced with an eviction must not put the old row back: evictions bump a generation, and a
//! row read before the bump is not stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::clients::Client;

/// How long a cached row is trusted without any notification.
pub const TTL: Duration = Duration::from_secs(5);
/// The PostgreSQL channel that carries the ids of changed clients.
pub const CHANNEL: &str = "yunid_clients";
/// Wait before reconnecting a lost listener.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    generation: u64,
    rows: HashMap<String, (Arc<Client>, Instant)>,
}

pub struct ClientCache {
    state: Mutex<State>,
    /// False on PostgreSQL until this node listens for changes (and while the listener is down).
    enabled: AtomicBool,
}

impl ClientCache {
    pub fn new(enabled: bool) -> ClientCache {
        ClientCache {
            state: Mutex::new(State::default()),
            enabled: AtomicBool::new(enabled),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A fresh cached row, and the generation to pass to [`ClientCache::put`] after a miss.
    pub fn get(&self, id: &str) -> Result<Arc<Client>, u64> {
        let state = self.state();
        if self.enabled.load(Ordering::Acquire)
            && let Some((client, at)) = state.rows.get(id)
            && at.elapsed() < TTL
        {
            return Ok(client.clone());
        }
        Err(state.generation)
    }

    /// Stores a row read from the database, unless something changed since `generation` was taken.
    pub fn put(&self, client: Arc<Client>, generation: u64) {
        let mut state = self.state();
        if state.generation == generation && self.enabled.load(Ordering::Acquire) {
            state.rows.insert(client.id.clone(), (client, Instant::now()));
        }
    }

    pub fn evict(&self, id: &str) {
        let mut state = self.state();
        state.generation += 1;
        state.rows.remove(id);
    }

    pub fn clear(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.rows.clear();
    }

    fn set_enabled(&self, on: bool) {
        // Forget before switching on or off: nothing read while notifications may have been missed stays.
        self.clear();
        self.enabled.store(on, Ordering::Release);
    }
}

/// Listens for client changes on PostgreSQL and evicts them here; runs until the cache is dropped.
pub async fn listen(url: String, cache: Weak<ClientCache>) {
    use sqlx::postgres::PgListener;
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "client cache: cannot connect the change listener");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "client cache: LISTEN failed");
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        }
        let Some(c) = cache.upgrade() else { return };
        c.set_enabled(true);
        drop(c);
        loop {
            let received = listener.try_recv().await;
            let Some(c) = cache.upgrade() else { return };
            match received {
                Ok(Some(note)) => c.evict(note.payload()),
                // The connection dropped and was re-established: notifications may have been missed.
                Ok(None) => c.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, "client cache: change listener lost; bypassing the cache");
                    c.set_enabled(false);
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;
    use crate::store::clients::{AuthMethod, SubjectType};

    fn client(id: &str) -> Arc<Client> {
        Arc::new(Client {
            id: id.into(),
            name: String::new(),
            secret_hash: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            scopes: vec![],
            grant_types: vec![],
            auth_method: AuthMethod::ClientSecretBasic,
            jwks: None,
            jwks_uri: None,
            id_token_alg: Alg::ES256,
            subject_type: SubjectType::Public,
            sector: String::new(),
            backchannel_logout_uri: None,
            min_acr: 1,
            disabled: false,
            matters: vec![],
            department: String::new(),
            version: 1,
        })
    }

    #[test]
    fn a_row_read_before_an_eviction_is_not_stored() {
        let cache = ClientCache::new(true);
        let generation = cache.get("a").unwrap_err();
        cache.evict("a");
        cache.put(client("a"), generation);
        assert!(cache.get("a").is_err());
        let generation = cache.get("a").unwrap_err();
        cache.put(client("a"), generation);
        assert!(cache.get("a").is_ok());
        cache.evict("a");
        assert!(cache.get("a").is_err());
    }

    #[test]
    fn a_disabled_cache_serves_nothing() {
        let cache = ClientCache::new(false);
        let generation = cache.get("a").unwrap_err();
        cache.put(client("a"), generation);
        assert!(cache.get("a").is_err());
    }
}
