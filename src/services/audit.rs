//! Recording and verifying the audit trail (GB/T 22239 level 3: security-relevant events, kept ≥ 6
//! months, tamper-evident). Events name people by internal id, never by ID number.

use serde::Serialize;

use crate::store::Db;
use crate::store::audit::{NewEvent, chain_hash};

/// Records an event. Failures are returned: an admin action that cannot be audited does not happen.
pub async fn record(db: &Db, now: i64, event: NewEvent<'_>) -> anyhow::Result<()> {
    db.append_audit(&event, now).await?;
    Ok(())
}

/// Records an event where the caller must not fail because of it (sign-ins): a failure is logged.
pub async fn record_quietly(db: &Db, now: i64, event: NewEvent<'_>) {
    if let Err(e) = db.append_audit(&event, now).await {
        tracing::error!(error = %e, action = event.action, "audit event could not be recorded");
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub checked: usize,
    /// The first sequence number where the chain breaks, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks the chain from its anchor: a changed field breaks that event's hash, a deleted event leaves a
/// gap (or a head that no longer matches), an inserted one breaks the next `prev_hash`.
pub async fn verify(db: &Db) -> anyhow::Result<Verification> {
    let (anchor_seq, anchor_hash, head_seq, head_hash) = db.audit_head().await?;
    let events = db.all_audit_events().await?;
    let mut expected_seq = anchor_seq + 1;
    let mut prev = anchor_hash;
    let mut checked = 0;
    for e in &events {
        let broken = |why: &str| {
            Ok(Verification {
                checked,
                broken: Some((e.seq, why.to_owned())),
            })
        };
        if e.seq != expected_seq {
            return Ok(Verification {
                checked,
                broken: Some((expected_seq, "event missing (deleted)".into())),
            });
        }
        if e.prev_hash != prev {
            return broken("previous-hash link broken");
        }
        let fields = [
            &*e.actor,
            &e.action,
            &e.subject,
            &e.client_id,
            &e.address,
            &e.outcome,
            &e.detail,
        ];
        if chain_hash(&e.prev_hash, e.seq, e.at, fields) != e.hash {
            return broken("content changed (hash mismatch)");
        }
        prev = e.hash.clone();
        expected_seq += 1;
        checked += 1;
    }
    if expected_seq - 1 != head_seq || prev != head_hash {
        return Ok(Verification {
            checked,
            broken: Some((expected_seq, "events missing at the end".into())),
        });
    }
    Ok(Verification {
        checked,
        broken: None,
    })
}
