//! Limits on new pending codes that anyone may ask for without signing in: scan-to-sign-in QR codes
//! (`GET /login/scan`) and device codes (`POST /device_authorization`). Review F3/F4.
//!
//! Each key is a leaky bucket held in the database (one statement per key, so it holds across nodes):
//! `new_code_burst` (default [`BURST`]) new codes at once, then one every `new_code_interval_ms` (default
//! [`INTERVAL_MS`]) as the bucket drains. A refused request still counts (the bucket may fill to one
//! interval past its size): a party that keeps asking faster than the bucket drains keeps being refused,
//! and once it stops the key is free again within two intervals. Keys, narrowest first: the IPv4
//! address, or for IPv6 the /64 (one subscriber) then the /48 (one site, [`PER_48`] times the burst and
//! the rate). Device codes are counted per app and address, then per address for all apps together at
//! twice the per-app allowance: one app used at its full rate on a shared network leaves room for the
//! kiosks of others, but a party using two apps' client ids at their full rates fills the shared bucket
//! (the price of bounding what one address writes in all; see the threat model's known limits). Beside
//! the buckets, the live rows of each table are capped (`scan_max_live`, `device_max_live`): an emergency
//! stop against a flood from many addresses (it is global: such a flood then blocks everyone, see the
//! threat model's known limits).

use crate::store::Db;
use crate::store::login::Bucket;

/// The default burst per IPv4 address or IPv6 /64 (`new_code_burst`).
pub const BURST: i64 = 60;
/// The default drain: one new code per this many milliseconds (`new_code_interval_ms`: one a second).
pub const INTERVAL_MS: i64 = 1000;
/// An IPv6 /48 (a site) gets this many times the burst and the rate of one /64.
pub const PER_48: i64 = 4;

/// The limit per key: `burst` new codes at once, then one per `interval_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub burst: i64,
    pub interval_ms: i64,
    /// Most live rows (0: no cap).
    pub max_live: i64,
}

/// What `Retry-After` says when the live rows are at their cap: codes live minutes, so rows free up
/// well within this.
pub const FULL_RETRY_AFTER: i64 = 30;

/// Whether a new code may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// This address (or its network) asked too often: wait this many seconds.
    Throttled {
        retry_after: i64,
    },
    /// The table holds its cap of live rows: try again after this many seconds.
    Full {
        retry_after: i64,
    },
}

/// The bucket keys of an address: `[address]` for IPv4, `[/64, /48]` for IPv6, each with its bucket.
fn keys(address: &str, limit: Settings) -> Vec<(String, Bucket)> {
    let per_host = Bucket {
        burst: limit.burst,
        interval_ms: limit.interval_ms,
    };
    let mut out = vec![(crate::services::login::address_bucket(address), per_host)];
    if let Ok(std::net::IpAddr::V6(v6)) = address.parse::<std::net::IpAddr>()
        && v6.to_ipv4_mapped().is_none()
    {
        let s = v6.segments();
        out.push((
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]),
            Bucket {
                burst: limit.burst * PER_48,
                interval_ms: (limit.interval_ms / PER_48).max(1),
            },
        ));
    }
    out
}

/// Takes one new code for `scope` (e.g. `scan`, `device:{client_id}`) from `address`'s buckets, the
/// narrowest first, stopping at the first that refuses (it is charged all the same); then checks the
/// table's live rows (`live`, counted up to `limit.max_live`; 0: not checked).
pub async fn admit(
    db: &Db,
    scope: &str,
    address: &str,
    live: impl std::future::Future<Output = Result<i64, sqlx::Error>>,
    limit: Settings,
    now: i64,
) -> Result<Admit, sqlx::Error> {
    // Narrowest key first; a refusal stops there, so one /64 asking too often never charges (and
    // locks out) the rest of its /48.
    for (key, bucket) in keys(address, limit) {
        let key = format!("new:{scope}:{key}");
        if let Some(retry_after) = db.take_from_bucket(&key, bucket, now).await? {
            return Ok(Admit::Throttled { retry_after });
        }
    }
    if limit.max_live > 0 && live.await? >= limit.max_live {
        return Ok(Admit::Full {
            retry_after: FULL_RETRY_AFTER,
        });
    }
    Ok(Admit::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_counts_for_its_64_and_its_48() {
        let limit = Settings {
            burst: BURST,
            interval_ms: INTERVAL_MS,
            max_live: 0,
        };
        let k: Vec<String> = keys("2001:db8:1:2:aaaa::1", limit)
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(k, ["2001:db8:1:2::/64", "2001:db8:1::/48"]);
        let k: Vec<String> = keys("203.0.113.9", limit).into_iter().map(|k| k.0).collect();
        assert_eq!(k, ["203.0.113.9"]);
        let k: Vec<String> = keys("::ffff:203.0.113.9", limit)
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(k, ["203.0.113.9"]);
    }
}
