//! Publish before sign, across any number of nodes sharing one database.
//!
//! `rotate` adds the next key per algorithm, unactivated: every node that loads the keys publishes it
//! in its JWKS but does not sign with it. Each node, on every refresh, loads the keys and reports which
//! kids it publishes (`key_nodes`). A next key starts signing only when every live node (seen within
//! the liveness window) reports it, and it has been published for `publish_delay` seconds (JWKS caches
//! of relying parties); then the previous key of its algorithm retires and stays published for the
//! grace period. A node that has not reloaded yet goes on signing with the previous key, which every
//! node still publishes. So no relying party ever receives a token whose key some node does not serve.

use std::sync::Arc;

use super::{Alg, Kek, KeyEntry, KeySet, KeyStore, generate};
use crate::store::Db;
use crate::store::keys::StoredKey;

/// How one node takes part in rotations.
pub struct Node<'a> {
    pub id: &'a str,
    /// Seconds a retired key stays published.
    pub grace: i64,
    /// Seconds a retired key still verifies `id_token_hint`s (at least `grace`), unpublished.
    pub hint_grace: i64,
    /// Seconds a next key is published before it may sign.
    pub publish_delay: i64,
    /// Nodes seen within this many seconds must publish a next key before it signs.
    pub liveness: i64,
}

fn entry(k: &StoredKey) -> anyhow::Result<KeyEntry> {
    Ok(KeyEntry {
        kid: k.kid.clone(),
        alg: Alg::parse(&k.alg).ok_or_else(|| anyhow::anyhow!("unknown algorithm {}", k.alg))?,
        created_at: k.created_at,
        activated_at: k.activated_at,
        retired_at: k.retired_at,
    })
}

fn stored(kek: &Kek, entry: &KeyEntry, der: &[u8]) -> anyhow::Result<StoredKey> {
    Ok(StoredKey {
        kid: entry.kid.clone(),
        alg: entry.alg.as_str().to_owned(),
        sealed: kek.seal(der, &entry.kid, entry.alg)?,
        created_at: entry.created_at,
        activated_at: entry.activated_at,
        retired_at: entry.retired_at,
    })
}

/// On an empty database: imports the keys of the earlier file layout, or makes one signing key per
/// algorithm. Nodes starting together may both do it; each then signs with the same newest key.
pub async fn bootstrap(db: &Db, kek: &Kek, folder: &KeyStore, now: i64) -> anyhow::Result<()> {
    if db.signing_key_count().await? > 0 {
        return Ok(());
    }
    let mut keys = folder.legacy_keys()?;
    let imported = !keys.is_empty();
    if !imported {
        for alg in Alg::ALL {
            let (mut e, der) = generate(alg, now)?;
            e.activated_at = Some(now);
            keys.push((e, der));
        }
    }
    let rows = keys
        .iter()
        .map(|(e, der)| stored(kek, e, der))
        .collect::<anyhow::Result<Vec<_>>>()?;
    db.insert_signing_keys(&rows).await?;
    if imported {
        tracing::info!(
            count = rows.len(),
            "imported signing keys from the keys folder into the database; the *.pk8 files and keys.json are no longer read"
        );
    }
    Ok(())
}

/// Every key still published at `now` (entries only, nothing opened).
pub async fn list(db: &Db, now: i64, grace: i64) -> anyhow::Result<Vec<KeyEntry>> {
    db.signing_keys(now - grace).await?.iter().map(entry).collect()
}

/// Opens and parses every key still published at `now`, and those retired within `hint_grace` for
/// `id_token_hint`s only.
pub async fn load(db: &Db, kek: &Kek, now: i64, grace: i64, hint_grace: i64) -> anyhow::Result<KeySet> {
    let rows = db.signing_keys(now - grace.max(hint_grace)).await?;
    open(kek, &rows, now - grace)
}

fn open(kek: &Kek, rows: &[StoredKey], published_since: i64) -> anyhow::Result<KeySet> {
    let mut entries = Vec::new();
    for k in rows {
        let e = entry(k)?;
        let der = kek.open(&k.sealed, &e.kid, e.alg)?;
        entries.push((e, der));
    }
    KeySet::from_entries_at(&entries, published_since)
}

/// Adds the next key per algorithm (published at once, signing later). Returns them.
pub async fn rotate(db: &Db, kek: &Kek, now: i64) -> anyhow::Result<Vec<KeyEntry>> {
    let mut added = Vec::new();
    let mut rows = Vec::new();
    for alg in Alg::ALL {
        let (e, der) = generate(alg, now)?;
        rows.push(stored(kek, &e, &der)?);
        added.push(e);
    }
    db.insert_signing_keys(&rows).await?;
    Ok(added)
}

/// One node's refresh: read what is published, report it, promote the next keys every live node
/// publishes, and return the key set this node serves and signs with — `current` again when nothing
/// changed (keys are opened and parsed only when they did).
pub async fn refresh(
    db: &Db,
    kek: &Kek,
    node: &Node<'_>,
    now: i64,
    current: Option<Arc<KeySet>>,
) -> anyhow::Result<Arc<KeySet>> {
    let rows = db.signing_keys(now - node.grace.max(node.hint_grace)).await?;
    let entries = rows.iter().map(entry).collect::<anyhow::Result<Vec<_>>>()?;
    let published_since = now - node.grace;
    let set = match current {
        Some(set) if set.describes(&entries, published_since) => set,
        _ => Arc::new(open(kek, &rows, published_since)?),
    };
    db.report_key_node(node.id, now, &set.kids().join(" ")).await?;
    let live = db.live_key_nodes(now - node.liveness).await?;
    let mut promoted = false;
    for alg in Alg::ALL {
        let next = entries
            .iter()
            .filter(|e| e.alg == alg && e.is_next())
            .max_by_key(|e| (e.created_at, e.kid.clone()));
        let Some(next) = next else { continue };
        let everywhere = live
            .iter()
            .all(|(_, published)| published.split(' ').any(|k| k == next.kid));
        if everywhere
            && now >= next.created_at + node.publish_delay
            && db.activate_signing_key(&next.kid, alg.as_str(), now).await?
        {
            tracing::info!(kid = %next.kid, alg = alg.as_str(), "signing key activated: every node publishes it");
            promoted = true;
        }
    }
    if promoted {
        return Ok(Arc::new(load(db, kek, now, node.grace, node.hint_grace).await?));
    }
    Ok(set)
}
