//! Per-node caches of what `/token`, `/introspect` and `/userinfo` would otherwise read from the database
//! on every call: client rows (to authenticate the app) and "this access token is not revoked".
//!
//! A change must take effect at once (a rotated secret, a disabled app or a revoked token is refused
//! immediately):
//! - on this node, every write evicts here before it returns ([`Db::forget_client`],
//!   [`Db::forget_live_tokens`]);
//! - on other nodes (PostgreSQL), the write sends a notification in its transaction (`NOTIFY yunid_clients,
//!   '<id>'`, or `NOTIFY yunid_revocations`), and each node LISTENs on a connection of its own
//!   ([`Db::watch_changes`]). The caches serve only while that connection is up; when it drops, they are
//!   forgotten and bypassed until it is back;
//! - a short time-to-live bounds what any missed notification could cost. It is counted on the node's
//!   injected clock ([`crate::clock::Clock`], the one tests advance), in whole seconds: a value is served
//!   while `now - stored_at` is 0 to [`TTL`] − 1, so between [`TTL`] − 1 and [`TTL`] seconds of real time.
//!
//! A read that raced with an eviction must not put the old answer back: evictions bump a generation, and
//! a value read before the bump is not stored.
//!
//! [`Db::forget_client`]: super::Db::forget_client
//! [`Db::forget_live_tokens`]: super::Db::forget_live_tokens
//! [`Db::watch_changes`]: super::Db::watch_changes

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a cached value is trusted without any notification, seconds.
pub const TTL: i64 = 5;
/// The PostgreSQL channel that carries the ids of changed clients.
pub const CHANNEL: &str = "yunid_clients";
/// The PostgreSQL channel that says "some token or grant was revoked" (no payload: every node forgets
/// all it knew to be live; revocations are rare next to the calls that check them).
pub const REVOCATIONS: &str = "yunid_revocations";
/// Wait before reconnecting a lost listener.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Access tokens (`jti` and family) known not to be revoked (PostgreSQL only, see `Db::open`).
pub type LiveTokens = NodeCache<()>;

struct State<V> {
    generation: u64,
    /// Each value with the time (epoch seconds) it was stored.
    rows: HashMap<String, (V, i64)>,
}

pub struct NodeCache<V> {
    state: Mutex<State<V>>,
    /// False on PostgreSQL until this node listens for changes (and while the listener is down).
    enabled: AtomicBool,
    /// At most this many values; a full cache drops what has expired, or else everything.
    capacity: usize,
}

impl<V: Clone> NodeCache<V> {
    pub fn new(enabled: bool, capacity: usize) -> NodeCache<V> {
        NodeCache {
            state: Mutex::new(State {
                generation: 0,
                rows: HashMap::new(),
            }),
            enabled: AtomicBool::new(enabled),
            capacity: capacity.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<V>> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A value cached and still fresh at `now`, or the generation to pass to [`NodeCache::put`] after a
    /// miss.
    pub fn get(&self, key: &str, now: i64) -> Result<V, u64> {
        let state = self.state();
        if self.enabled.load(Ordering::Acquire)
            && let Some((value, at)) = state.rows.get(key)
            && fresh(*at, now)
        {
            return Ok(value.clone());
        }
        Err(state.generation)
    }

    /// Stores a value read from the database at `now`, unless something changed since `generation` was
    /// taken.
    pub fn put(&self, key: String, value: V, generation: u64, now: i64) {
        let mut state = self.state();
        if state.generation != generation || !self.enabled.load(Ordering::Acquire) {
            return;
        }
        if state.rows.len() >= self.capacity && !state.rows.contains_key(&key) {
            state.rows.retain(|_, (_, at)| fresh(*at, now));
            if state.rows.len() >= self.capacity {
                state.rows.clear();
            }
        }
        state.rows.insert(key, (value, now));
    }

    /// How many evictions and clears this cache has seen: it moves whenever something cached here may
    /// have become wrong (for the live tokens: whenever this node hears of a revocation).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    pub fn evict(&self, key: &str) {
        let mut state = self.state();
        state.generation += 1;
        state.rows.remove(key);
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

/// Whether a value stored at `at` is still trusted at `now`; one stored "later" than `now` (a clock set
/// back) is not.
fn fresh(at: i64, now: i64) -> bool {
    (0..TTL).contains(&(now - at))
}

/// The caches one listener keeps up to date: rows by id (`C`, the client rows) and live tokens.
pub struct Watched<C> {
    pub clients: Weak<NodeCache<C>>,
    pub live_tokens: Weak<LiveTokens>,
}

impl<C> Watched<C> {
    /// Both caches, or none once the `Db` that owns them is gone.
    fn upgrade(&self) -> Option<(Arc<NodeCache<C>>, Arc<LiveTokens>)> {
        Some((self.clients.upgrade()?, self.live_tokens.upgrade()?))
    }
}

/// Listens for client changes and revocations on PostgreSQL and applies them here; runs until the caches
/// are dropped.
pub async fn listen<C: Clone + Send + Sync + 'static>(url: String, watched: Watched<C>) {
    use sqlx::postgres::PgListener;
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "node caches: cannot connect the change listener");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CHANNEL, REVOCATIONS]).await {
            tracing::warn!(error = %e, "node caches: LISTEN failed");
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        }
        let Some((clients, live)) = watched.upgrade() else {
            return;
        };
        clients.set_enabled(true);
        live.set_enabled(true);
        drop((clients, live));
        loop {
            let received = listener.try_recv().await;
            let Some((clients, live)) = watched.upgrade() else {
                return;
            };
            match received {
                Ok(Some(note)) if note.channel() == REVOCATIONS => live.clear(),
                Ok(Some(note)) => clients.evict(note.payload()),
                // The connection dropped and was re-established: notifications may have been missed.
                Ok(None) => {
                    clients.clear();
                    live.clear();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "node caches: change listener lost; bypassing the caches");
                    clients.set_enabled(false);
                    live.set_enabled(false);
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
    use crate::clock::Clock;

    const NOW: i64 = 1_900_000_000;

    /// Rows by id, as the client cache holds them.
    type ClientCache = NodeCache<Arc<String>>;

    fn client(id: &str) -> Arc<String> {
        Arc::new(id.to_owned())
    }

    #[test]
    fn a_row_read_before_an_eviction_is_not_stored() {
        let cache = ClientCache::new(true, 16);
        let generation = cache.get("a", NOW).unwrap_err();
        cache.evict("a");
        cache.put("a".into(), client("a"), generation, NOW);
        assert!(cache.get("a", NOW).is_err());
        let generation = cache.get("a", NOW).unwrap_err();
        cache.put("a".into(), client("a"), generation, NOW);
        assert!(cache.get("a", NOW).is_ok());
        cache.evict("a");
        assert!(cache.get("a", NOW).is_err());
    }

    #[test]
    fn a_disabled_cache_serves_nothing() {
        let cache = ClientCache::new(false, 16);
        let generation = cache.get("a", NOW).unwrap_err();
        cache.put("a".into(), client("a"), generation, NOW);
        assert!(cache.get("a", NOW).is_err());
    }

    #[test]
    fn a_full_cache_stays_within_its_capacity() {
        let cache = LiveTokens::new(true, 2);
        for key in ["a", "b", "c"] {
            let generation = cache.get(key, NOW).unwrap_err();
            cache.put(key.into(), (), generation, NOW);
        }
        assert!(cache.get("c", NOW).is_ok(), "the newest value is kept");
        assert!(cache.state().rows.len() <= 2);
    }

    #[test]
    fn a_cached_row_expires_when_the_clock_is_advanced_past_its_ttl() {
        let clock = Clock::default();
        let cache = ClientCache::new(true, 16);
        let generation = cache.get("a", clock.now()).unwrap_err();
        cache.put("a".into(), client("a"), generation, clock.now());
        assert!(cache.get("a", clock.now()).is_ok());
        clock.advance(TTL);
        assert!(cache.get("a", clock.now()).is_err(), "stale after TTL seconds");
        // A value stored at a time the clock has not reached (a clock set back) is not trusted either.
        let generation = cache.get("b", clock.now()).unwrap_err();
        cache.put("b".into(), client("b"), generation, clock.now() + 60);
        assert!(cache.get("b", clock.now()).is_err());
    }
}
