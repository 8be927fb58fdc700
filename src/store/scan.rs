//! Scan-to-sign-in requests: a QR code on one browser's login page, answered by the provincial app.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::amr::Amr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Shown, not scanned yet.
    Waiting,
    /// Scanned by one person's app (no other scan counts); waiting for their answer.
    Scanned,
    Approved,
    Denied,
    /// Approved and turned into a session in the browser that showed it (once).
    Used,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Waiting => "waiting",
            ScanStatus::Scanned => "scanned",
            ScanStatus::Approved => "approved",
            ScanStatus::Denied => "denied",
            ScanStatus::Used => "used",
        }
    }

    fn parse(s: &str) -> ScanStatus {
        match s {
            "waiting" => ScanStatus::Waiting,
            "scanned" => ScanStatus::Scanned,
            "approved" => ScanStatus::Approved,
            "denied" => ScanStatus::Denied,
            _ => ScanStatus::Used,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScanRow {
    pub qr_hash: String,
    pub handle_hash: String,
    pub browser_hash: String,
    pub client_id: Option<String>,
    pub address: String,
    pub number: i64,
    pub status: ScanStatus,
    pub person_id: Option<String>,
    pub amr: Option<Amr>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The hash of the id of the authorization request the code was shown for (`None`: yunid's own
    /// account page); only that request continues with it.
    pub request_hash: Option<String>,
    /// That request's `max_age`: a phone sign-in older than this does not answer it.
    pub max_age: Option<i64>,
    /// The level and the time of the phone's own sign-in, once approved.
    pub acr: Option<i64>,
    pub auth_time: Option<i64>,
    /// The phone grant (family) that approved: Continue finishes only while it is live.
    pub family_id: Option<String>,
}

/// The phone's authentication an approval hands on to the browser.
#[derive(Debug, Clone, Copy)]
pub struct ScanApproval<'a> {
    pub amr: &'a Amr,
    pub acr: i64,
    pub auth_time: i64,
    pub family_id: &'a str,
}

const COLUMNS: &str = "qr_hash, handle_hash, browser_hash, client_id, address, number, status, person_id, amr, \
     created_at, expires_at, request_hash, max_age, acr, auth_time, family_id";

fn from_row(r: &AnyRow) -> Result<ScanRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(ScanRow {
        qr_hash: r.try_get("qr_hash")?,
        handle_hash: r.try_get("handle_hash")?,
        browser_hash: r.try_get("browser_hash")?,
        client_id: r.try_get("client_id")?,
        address: r.try_get("address")?,
        number: r.try_get("number")?,
        status: ScanStatus::parse(&status),
        person_id: r.try_get("person_id")?,
        amr: r.try_get::<Option<String>, _>("amr")?.as_deref().map(Amr::parse),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        request_hash: r.try_get("request_hash")?,
        max_age: r.try_get("max_age")?,
        acr: r.try_get("acr")?,
        auth_time: r.try_get("auth_time")?,
        family_id: r.try_get("family_id")?,
    })
}

impl Db {
    pub async fn insert_scan(&self, r: &ScanRow) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO scan_requests ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
        ));
        sqlx::query(sql)
            .bind(&r.qr_hash)
            .bind(&r.handle_hash)
            .bind(&r.browser_hash)
            .bind(&r.client_id)
            .bind(&r.address)
            .bind(r.number)
            .bind(r.status.as_str())
            .bind(&r.person_id)
            .bind(r.amr.as_ref().map(Amr::to_string))
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(&r.request_hash)
            .bind(r.max_age)
            .bind(r.acr)
            .bind(r.auth_time)
            .bind(&r.family_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Requests not expired yet, counted up to `cap` (the count stops there: it is only compared with it).
    pub async fn live_scans(&self, now: i64, cap: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM scan_requests WHERE expires_at > $1 LIMIT $2) AS live",
        )
        .bind(now)
        .bind(cap)
        .fetch_one(&self.pool)
        .await
    }

    /// A request by the browser's handle (expired or not: the caller tells the browser which).
    pub async fn scan_by_handle(&self, handle_hash: &str) -> Result<Option<ScanRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM scan_requests WHERE handle_hash = $1"
        ));
        let row = sqlx::query(sql)
            .bind(handle_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A request by its QR token's hash.
    pub async fn scan_by_qr(&self, qr_hash: &str) -> Result<Option<ScanRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM scan_requests WHERE qr_hash = $1"));
        let row = sqlx::query(sql).bind(qr_hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The first scan claims the request for `person_id`; true for the one scan that did.
    pub async fn claim_scan(&self, qr_hash: &str, person_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE scan_requests SET status = 'scanned', person_id = $1 WHERE qr_hash = $2 \
             AND status = 'waiting' AND expires_at > $3",
        )
        .bind(person_id)
        .bind(qr_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The claiming person's answer: `Some` approves (with the phone's authentication), `None` denies;
    /// true for the one answer that counted.
    pub async fn answer_scan(
        &self,
        qr_hash: &str,
        person_id: &str,
        approve_with: Option<ScanApproval<'_>>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let status = if approve_with.is_some() {
            ScanStatus::Approved
        } else {
            ScanStatus::Denied
        };
        let done = sqlx::query(
            "UPDATE scan_requests SET status = $1, amr = $2, acr = $3, auth_time = $4, family_id = $5 \
             WHERE qr_hash = $6 AND person_id = $7 AND status = 'scanned' AND expires_at > $8",
        )
        .bind(status.as_str())
        .bind(approve_with.map(|a| a.amr.to_string()))
        .bind(approve_with.map(|a| a.acr))
        .bind(approve_with.map(|a| a.auth_time))
        .bind(approve_with.map(|a| a.family_id))
        .bind(qr_hash)
        .bind(person_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns an approved request into a sign-in, once, in the browser that showed it; the row as
    /// approved.
    pub async fn use_scan(
        &self,
        handle_hash: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<ScanRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE scan_requests SET status = 'used' WHERE handle_hash = $1 AND browser_hash = $2 \
             AND status = 'approved' AND expires_at > $3 RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(sql)
            .bind(handle_hash)
            .bind(browser_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Refuses every request of the person that was scanned or approved but not finished yet ("sign
    /// out everywhere", a password reset, a lock).
    pub async fn deny_person_scans(&self, person_id: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE scan_requests SET status = 'denied' WHERE person_id = $1 \
             AND status IN ('scanned', 'approved')",
        )
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
