//! Device authorization requests (RFC 8628) and the apps marked as kiosk/device clients.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::amr::Amr;
use crate::scope::ScopeSet;

/// Where a device authorization request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the person to enter the user code and answer.
    Pending,
    Approved,
    Denied,
    /// Approved and redeemed at the token endpoint (once).
    Used,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Used => "used",
        }
    }

    fn parse(s: &str) -> DeviceStatus {
        match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            _ => DeviceStatus::Used,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub device_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    /// The scopes asked for (stored space-separated).
    pub scope: ScopeSet,
    pub status: DeviceStatus,
    pub person_id: Option<String>,
    pub session_sid: Option<String>,
    pub acr: Option<i64>,
    pub amr: Option<Amr>,
    pub auth_time: Option<i64>,
    pub interval_secs: i64,
    pub last_poll_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The address the device asked from (its network is shown on the consent page).
    pub address: String,
}

/// Who approved a device request, with the session's authentication.
#[derive(Debug, Clone)]
pub struct DeviceApproval<'a> {
    pub person_id: &'a str,
    pub session_sid: &'a str,
    pub acr: i64,
    pub amr: &'a Amr,
    pub auth_time: i64,
}

const COLUMNS: &str = "device_hash, user_code_hash, client_id, scope, status, person_id, session_sid, acr, amr, \
     auth_time, interval_secs, last_poll_at, created_at, expires_at, address";

fn from_row(r: &AnyRow) -> Result<DeviceRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(DeviceRow {
        device_hash: r.try_get("device_hash")?,
        user_code_hash: r.try_get("user_code_hash")?,
        client_id: r.try_get("client_id")?,
        scope: ScopeSet::parse(&r.try_get::<String, _>("scope")?),
        status: DeviceStatus::parse(&status),
        person_id: r.try_get("person_id")?,
        session_sid: r.try_get("session_sid")?,
        acr: r.try_get("acr")?,
        amr: r.try_get::<Option<String>, _>("amr")?.as_deref().map(Amr::parse),
        auth_time: r.try_get("auth_time")?,
        interval_secs: r.try_get("interval_secs")?,
        last_poll_at: r.try_get("last_poll_at")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        address: r.try_get("address")?,
    })
}

/// What one poll of the token endpoint found, decided by one statement.
#[derive(Debug, Clone)]
pub enum Poll {
    /// No such device code.
    Unknown,
    /// The row, read after this poll was recorded; `too_fast` when it came within the interval (the
    /// interval has then grown by 5 seconds, RFC 8628 §3.5).
    Seen { row: Box<DeviceRow>, too_fast: bool },
}

impl Db {
    /// Stores a new request; false when the user code's hash is taken (the caller draws another).
    pub async fn insert_device_grant(&self, r: &DeviceRow) -> Result<bool, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO device_grants ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
        ));
        let done = sqlx::query(sql)
            .bind(&r.device_hash)
            .bind(&r.user_code_hash)
            .bind(&r.client_id)
            .bind(r.scope.to_string())
            .bind(r.status.as_str())
            .bind(&r.person_id)
            .bind(&r.session_sid)
            .bind(r.acr)
            .bind(r.amr.as_ref().map(Amr::to_string))
            .bind(r.auth_time)
            .bind(r.interval_secs)
            .bind(r.last_poll_at)
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(&r.address)
            .execute(&self.pool)
            .await;
        match done {
            Ok(_) => Ok(true),
            Err(e) if super::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Requests not expired yet, counted up to `cap` (the count stops there: it is only compared with it).
    pub async fn live_device_grants(&self, now: i64, cap: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM device_grants WHERE expires_at > $1 LIMIT $2) AS live",
        )
        .bind(now)
        .bind(cap)
        .fetch_one(&self.pool)
        .await
    }

    /// A request by its user code's hash, while it waits for an answer and has not expired.
    pub async fn pending_device_grant(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> Result<Option<DeviceRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM device_grants WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2"
        ));
        let row = sqlx::query(sql)
            .bind(user_code_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Approves a pending, unexpired request; true for the one answer that did.
    pub async fn approve_device_grant(
        &self,
        device_hash: &str,
        by: &DeviceApproval<'_>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE device_grants SET status = 'approved', person_id = $1, session_sid = $2, acr = $3, amr = $4, \
             auth_time = $5 WHERE device_hash = $6 AND status = 'pending' AND expires_at > $7",
        )
        .bind(by.person_id)
        .bind(by.session_sid)
        .bind(by.acr)
        .bind(by.amr.to_string())
        .bind(by.auth_time)
        .bind(device_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Denies a pending, unexpired request; true for the one answer that did.
    pub async fn deny_device_grant(&self, device_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE device_grants SET status = 'denied' WHERE device_hash = $1 AND status = 'pending' \
             AND expires_at > $2",
        )
        .bind(device_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a poll by `client_id` (another client's poll records nothing): the interval grows by 5 s
    /// when the previous poll was less than an interval ago (RFC 8628 §3.5 `slow_down`).
    pub async fn poll_device_grant(
        &self,
        device_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Poll, sqlx::Error> {
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT interval_secs FROM device_grants WHERE device_hash = $1 AND client_id = $2",
        )
        .bind(device_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(before) = before else {
            return Ok(Poll::Unknown);
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE device_grants SET \
               interval_secs = CASE WHEN last_poll_at IS NOT NULL AND $1 - last_poll_at < interval_secs \
                 THEN interval_secs + 5 ELSE interval_secs END, \
               last_poll_at = $1 \
             WHERE device_hash = $2 AND client_id = $3 RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(sql)
            .bind(now)
            .bind(device_hash)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row.as_ref().map(from_row).transpose()? else {
            return Ok(Poll::Unknown);
        };
        // The interval grew only when this poll came too early (a concurrent poll may have grown it too).
        let too_fast = row.interval_secs > before;
        Ok(Poll::Seen {
            row: Box::new(row),
            too_fast,
        })
    }

    /// Redeems an approved request once, for the client it was made for; the row as approved.
    pub async fn use_device_grant(
        &self,
        device_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<DeviceRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE device_grants SET status = 'used' WHERE device_hash = $1 AND client_id = $2 \
             AND status = 'approved' AND expires_at > $3 RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(sql)
            .bind(device_hash)
            .bind(client_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Ends, as expired, the requests session `sid` approved that no device redeemed yet (the session
    /// ended: its approval goes with it). A later poll hears `expired_token`.
    pub async fn expire_session_device_grants(&self, sid: &str, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE device_grants SET expires_at = $1 WHERE session_sid = $2 AND status = 'approved' \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends, as expired, every request the person approved that no device redeemed yet, whichever of
    /// their sessions approved it ("sign out everywhere", a lock, a reset).
    pub async fn expire_person_device_grants(&self, person_id: &str, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE device_grants SET expires_at = $1 WHERE person_id = $2 AND status = 'approved' \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends a denied request once it was reported (a later poll finds it gone: `invalid_grant`).
    pub async fn close_device_grant(&self, device_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE device_grants SET status = 'used' WHERE device_hash = $1 AND status = 'denied'")
            .bind(device_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The kiosk settings of an app: `Some(session_ttl)` when it is marked as a device client (a `None`
    /// limit means the default one, `services::device::kiosk_ttl`).
    pub async fn device_client(&self, client_id: &str) -> Result<Option<Option<i64>>, sqlx::Error> {
        let row = sqlx::query("SELECT session_ttl FROM device_clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<Option<i64>, _>("session_ttl"))
            .transpose()
    }

    /// Marks (or unmarks, `None`) an app as a kiosk/device client with an optional session limit.
    pub async fn set_device_client(
        &self,
        client_id: &str,
        setting: Option<Option<i64>>,
    ) -> Result<(), sqlx::Error> {
        match setting {
            Some(ttl) => {
                sqlx::query(
                    "INSERT INTO device_clients (client_id, session_ttl) VALUES ($1, $2) \
                     ON CONFLICT (client_id) DO UPDATE SET session_ttl = excluded.session_ttl",
                )
                .bind(client_id)
                .bind(ttl)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM device_clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
