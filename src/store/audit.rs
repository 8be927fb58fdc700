//! The audit trail: append-only events, each carrying the hash of its content and of the previous event,
//! so an edited or deleted row breaks the chain. Appends are serialised through the `audit_head` row, and
//! each node groups the events that arrive together into one transaction.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::Db;
use crate::crypto;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub client_id: String,
    pub address: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What a caller records; sequence and hashes are the store's.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub address: &'a str,
    pub outcome: &'a str,
    pub detail: String,
}

/// SHA-256 over the previous hash and every field, length-prefixed so fields cannot run into each other.
pub fn chain_hash(prev: &str, seq: i64, at: i64, fields: [&str; 7]) -> String {
    let mut buf = Vec::new();
    for part in [prev, &seq.to_string(), &at.to_string()]
        .into_iter()
        .chain(fields)
    {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    crypto::b64url(&crypto::sha256(&buf))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, sqlx::Error> {
    Ok(AuditEvent {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        subject: r.try_get("subject")?,
        client_id: r.try_get("client_id")?,
        address: r.try_get("address")?,
        outcome: r.try_get("outcome")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const COLUMNS: &str = "seq, at, actor, action, subject, client_id, address, outcome, detail, prev_hash, hash";

/// An event on its way to the writer, with the `now` it happened at and where to say how it went.
pub(super) struct Job {
    event: OwnedEvent,
    now: i64,
    /// A row of the person's sign-in history written with the event, in the same transaction.
    login: Option<LoginRow>,
    done: tokio::sync::oneshot::Sender<Result<i64, sqlx::Error>>,
}

/// A `login_events` row (the person's own sign-in history, shown on the account page).
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub id: String,
    pub person_id: String,
    pub at: i64,
    pub method: String,
    pub address: String,
    pub outcome: String,
}

struct OwnedEvent {
    fields: [String; 6],
    detail: String,
}

impl OwnedEvent {
    fn of(e: &NewEvent<'_>) -> OwnedEvent {
        OwnedEvent {
            fields: [e.actor, e.action, e.subject, e.client_id, e.address, e.outcome].map(str::to_owned),
            detail: e.detail.clone(),
        }
    }

    fn hashed(&self) -> [&str; 7] {
        let [actor, action, subject, client_id, address, outcome] = &self.fields;
        [actor, action, subject, client_id, address, outcome, &self.detail]
    }
}

/// Most events one transaction appends.
const BATCH: usize = 64;

/// The node's one audit writer (group commit): events that arrive while a transaction is under way go
/// into the next one together, so a busy node takes the `audit_head` lock once per batch rather than once
/// per event. Each caller still waits for its own event's commit.
pub(super) type AuditQueue = std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Job>>;

async fn writer(pool: sqlx::AnyPool, mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>) {
    // The head as this writer's last commit left it, while no other writer (node) has appended since.
    let mut known: Option<Head> = None;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<(&OwnedEvent, i64)> = batch.iter().map(|j| (&j.event, j.now)).collect();
        let logins: Vec<&LoginRow> = batch.iter().filter_map(|j| j.login.as_ref()).collect();
        match append_batch(&pool, &events, &logins, &mut known).await {
            Ok(first_seq) => {
                for (i, job) in batch.into_iter().enumerate() {
                    let _ = job.done.send(Ok(first_seq + i as i64));
                }
            }
            // One at a time, so each caller hears its own error (a lost database is a 503, not a 500).
            Err(_) => {
                for job in batch {
                    let logins: Vec<&LoginRow> = job.login.iter().collect();
                    let result = append_batch(&pool, &[(&job.event, job.now)], &logins, &mut known).await;
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

/// The chain's head: the last event's sequence number and hash.
struct Head {
    seq: i64,
    hash: String,
}

/// An event row to insert: (seq, at, event, prev_hash, hash).
type EventRow<'a> = (i64, i64, &'a OwnedEvent, String, String);

/// The events numbered from `first` on, each chained to the one before, the first to `prev`.
fn chained<'a>(events: &[(&'a OwnedEvent, i64)], first: i64, prev: &str) -> Vec<EventRow<'a>> {
    let mut prev = prev.to_owned();
    let mut rows = Vec::with_capacity(events.len());
    for (i, (event, now)) in events.iter().enumerate() {
        let seq = first + i as i64;
        let hash = chain_hash(&prev, seq, *now, event.hashed());
        rows.push((
            seq,
            *now,
            *event,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    rows
}

/// One transaction: the head row's write lock (which orders appends across nodes), the events with
/// their chained hashes in one INSERT, the new head, and the sign-in history rows that came with the
/// events in one INSERT more. Returns the first event's sequence number.
///
/// The head's hash stays what it always was (the last event's hash: `services::audit::verify` checks
/// it, and a node of the previous release chains from it). When the head is still as this writer left
/// it (`known`: no other node appended since, same number and same hash), the hashes are computed before the lock is taken and
/// the statement that takes it also writes the new head hash: three statements (lock, insert, commit).
/// Otherwise the head's hash is read under the lock and written after the insert, as before: four.
/// Both are decided by the one `UPDATE`, on the row as it is once locked (PostgreSQL re-reads a row
/// another transaction changed meanwhile), so two nodes appending at once still form one chain.
async fn append_batch(
    pool: &sqlx::AnyPool,
    events: &[(&OwnedEvent, i64)],
    logins: &[&LoginRow],
    known: &mut Option<Head>,
) -> Result<i64, sqlx::Error> {
    let n = events.len() as i64;
    let guess = known.take();
    let planned = guess.as_ref().map(|h| chained(events, h.seq + 1, &h.hash));
    let (expected_seq, expected_hash, new_hash) =
        match (&guess, planned.as_ref().and_then(|rows| rows.last())) {
            (Some(h), Some(last)) => (h.seq, h.hash.as_str(), last.4.as_str()),
            _ => (-1, "", ""),
        };
    let mut tx = pool.begin().await?;
    let head = sqlx::query(
        "UPDATE audit_head SET seq = seq + $1, hash = CASE WHEN seq = $2 AND hash = $4 THEN $3 ELSE hash END \
         WHERE id = 1 RETURNING seq, hash",
    )
    .bind(n)
    .bind(expected_seq)
    .bind(new_hash)
    .bind(expected_hash)
    .fetch_one(&mut *tx)
    .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let first = last_seq - n + 1;
    // The remembered head is taken only when both its number and its hash are still the head's: a
    // database failed over or restored to another chain with the same number is chained from as found.
    let returned: String = head.try_get("hash")?;
    let (rows, head_written) = match planned {
        Some(rows) if first - 1 == expected_seq && returned == new_hash => (rows, true),
        _ => (chained(events, first, &returned), false),
    };
    let placeholders: Vec<String> = (0..rows.len())
        .map(|r| {
            let p: Vec<String> = (1..=11).map(|c| format!("${}", r * 11 + c)).collect();
            format!("({})", p.join(","))
        })
        .collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_events (seq, at, actor, action, subject, client_id, address, outcome, detail, \
         prev_hash, hash) VALUES {}",
        placeholders.join(",")
    ));
    let mut insert = sqlx::query(sql);
    for (seq, at, event, prev_hash, hash) in &rows {
        insert = insert.bind(*seq).bind(*at);
        for f in &event.fields {
            insert = insert.bind(f.as_str());
        }
        insert = insert
            .bind(event.detail.as_str())
            .bind(prev_hash.as_str())
            .bind(hash.as_str());
    }
    insert.execute(&mut *tx).await?;
    if !logins.is_empty() {
        insert_logins(&mut tx, logins).await?;
    }
    let last_hash = rows.last().map(|r| r.4.clone()).unwrap_or_default();
    if !head_written {
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&last_hash)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    *known = Some(Head {
        seq: last_seq,
        hash: last_hash,
    });
    Ok(first)
}

/// The sign-in history rows of a batch, in one INSERT.
async fn insert_logins(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    logins: &[&LoginRow],
) -> Result<(), sqlx::Error> {
    let placeholders: Vec<String> = (0..logins.len())
        .map(|r| {
            let p: Vec<String> = (1..=6).map(|c| format!("${}", r * 6 + c)).collect();
            format!("({})", p.join(","))
        })
        .collect();
    let sql = sqlx::AssertSqlSafe(format!(
        // A batch retried after a commit whose outcome was unclear may find its rows written: they are the
        // same sign-ins (same ids), so that is not a failure (review L2).
        "INSERT INTO login_events (id, person_id, at, method, address, outcome) VALUES {} \
         ON CONFLICT (id) DO NOTHING",
        placeholders.join(",")
    ));
    let mut insert = sqlx::query(sql);
    for l in logins {
        insert = insert
            .bind(l.id.as_str())
            .bind(l.person_id.as_str())
            .bind(l.at)
            .bind(l.method.as_str())
            .bind(l.address.as_str())
            .bind(l.outcome.as_str());
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

impl Db {
    /// Appends an event to the chain; returns its sequence number once it is committed.
    pub async fn append_audit(&self, e: &NewEvent<'_>, now: i64) -> Result<i64, sqlx::Error> {
        self.append_audit_job(e, None, now).await
    }

    /// Appends an event to the chain and writes a row of the person's sign-in history with it, in the
    /// same transaction of the node's group commit (no statement of its own); returns the event's
    /// sequence number once both are committed.
    pub async fn append_audit_with_login(
        &self,
        e: &NewEvent<'_>,
        login: LoginRow,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        self.append_audit_job(e, Some(login), now).await
    }

    async fn append_audit_job(
        &self,
        e: &NewEvent<'_>,
        login: Option<LoginRow>,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        let queue = self.audit.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(writer(self.pool.clone(), rx));
            tx
        });
        let (done, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            event: OwnedEvent::of(e),
            now,
            login,
            done,
        };
        if queue.send(job).is_err() {
            return Err(sqlx::Error::WorkerCrashed);
        }
        answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
    }

    /// Events in order, optionally filtered by actor, action or subject, after `since` (seconds).
    pub async fn audit_events(
        &self,
        filter_field: Option<(&str, &str)>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        // The column name comes from this fixed list, never from the caller's text.
        let column = match filter_field {
            Some(("actor", _)) => Some("actor"),
            Some(("action", _)) => Some("action"),
            Some(("subject", _)) => Some("subject"),
            Some(("client_id", _)) => Some("client_id"),
            _ => None,
        };
        let rows = match (column, filter_field) {
            (Some(col), Some((_, value))) => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE at >= $1 AND {col} = $3 ORDER BY seq LIMIT $2"
                ));
                sqlx::query(sql)
                    .bind(since)
                    .bind(limit)
                    .bind(value)
                    .fetch_all(&self.pool)
                    .await?
            }
            _ => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE at >= $1 ORDER BY seq LIMIT $2"
                ));
                sqlx::query(sql)
                    .bind(since)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// The newest events before sequence number `before`, newest first (a page of the console's list).
    pub async fn audit_events_before(&self, before: i64, limit: i64) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
        ));
        let rows = sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// (anchor seq, anchor hash, head seq, head hash).
    pub async fn audit_head(&self) -> Result<(i64, String, i64, String), sqlx::Error> {
        let r = sqlx::query("SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            r.try_get("anchor_seq")?,
            r.try_get("anchor_hash")?,
            r.try_get("seq")?,
            r.try_get("hash")?,
        ))
    }

    pub async fn all_audit_events(&self) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM audit_events ORDER BY seq"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes events older than `before`, moving the anchor to the last deleted one so what remains
    /// still verifies.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let last = sqlx::query("SELECT seq, hash FROM audit_events WHERE at < $1 ORDER BY seq DESC LIMIT 1")
            .bind(before)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let seq: i64 = last.try_get("seq")?;
        let hash: String = last.try_get("hash")?;
        let gone = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}
