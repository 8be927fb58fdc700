//! Proofing: checks asked of the authorities, the evidence behind online real-name levels, population
//! re-checks, face verification sessions, enterprise bindings and appointments. No ID numbers here.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

/// One check asked of an authority.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    pub id: String,
    pub person_id: String,
    pub connector: String,
    pub outcome: String,
    pub transaction_id: Option<String>,
    pub address: String,
    pub at: i64,
}

/// One piece of evidence behind a person's level.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvidenceRow {
    pub check_type: String,
    pub transaction_id: String,
    pub at: i64,
}

/// A binding's status (`org_bindings.status`, stored as `active` or `suspended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingStatus {
    Active,
    /// Suspended by the registry's answer or by an admin (`suspended_by` says which).
    Suspended,
}

impl BindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingStatus::Active => "active",
            BindingStatus::Suspended => "suspended",
        }
    }

    /// A value yunid never writes reads as `Suspended`: the binding holds nothing until an admin
    /// looks at it (the representation it carries stops, as every check treated it before).
    fn read(stored: &str) -> BindingStatus {
        match stored {
            "active" => BindingStatus::Active,
            "suspended" => BindingStatus::Suspended,
            _ => {
                tracing::warn!(status = %stored, "a binding has a status yunid does not know; treated as suspended");
                BindingStatus::Suspended
            }
        }
    }
}

/// An appointment's status (`org_appointments.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppointmentStatus {
    /// Made, waiting for the appointee (until it expires).
    Pending,
    /// Accepted: a representation holds it.
    Accepted,
    Declined,
    /// Ended by either side.
    Ended,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Pending => "pending",
            AppointmentStatus::Accepted => "accepted",
            AppointmentStatus::Declined => "declined",
            AppointmentStatus::Ended => "ended",
        }
    }

    /// A value yunid never writes reads as `Ended`: nobody can accept or end it, and it is shown as
    /// over (as every check treated it before).
    fn read(stored: &str) -> AppointmentStatus {
        match stored {
            "pending" => AppointmentStatus::Pending,
            "accepted" => AppointmentStatus::Accepted,
            "declined" => AppointmentStatus::Declined,
            "ended" => AppointmentStatus::Ended,
            _ => {
                tracing::warn!(status = %stored, "an appointment has a status yunid does not know; treated as ended");
                AppointmentStatus::Ended
            }
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BindingRow {
    pub id: String,
    pub org_id: String,
    pub person_id: String,
    pub rep_id: String,
    pub status: BindingStatus,
    pub reason: Option<String>,
    pub transaction_id: String,
    pub bound_at: i64,
    pub checked_at: i64,
    pub suspended_at: Option<i64>,
    pub suspended_by: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AppointmentRow {
    pub id: String,
    pub org_id: String,
    pub appointer_id: String,
    /// None when what the appointer typed belongs to nobody registered (such an appointment waits, is
    /// never accepted, and expires: the appointer is answered the same either way).
    pub appointee_id: Option<String>,
    /// What the appointer typed, masked (`138****5678`, `3501**********1234`): what they are shown.
    pub appointee_label: String,
    pub role: String,
    /// JSON, as representations store it.
    pub matters: String,
    pub valid_until: Option<i64>,
    pub status: AppointmentStatus,
    pub rep_id: Option<String>,
    pub created_at: i64,
    /// A pending appointment not accepted by then can no longer be.
    pub expires_at: i64,
}

impl AppointmentRow {
    /// Pending and past its expiry.
    pub fn expired(&self, now: i64) -> bool {
        self.status == AppointmentStatus::Pending && self.expires_at <= now
    }
}

fn check_from_row(r: &AnyRow) -> Result<CheckRow, sqlx::Error> {
    Ok(CheckRow {
        id: r.try_get("id")?,
        person_id: r.try_get("person_id")?,
        connector: r.try_get("connector")?,
        outcome: r.try_get("outcome")?,
        transaction_id: r.try_get("transaction_id")?,
        address: r.try_get("address")?,
        at: r.try_get("at")?,
    })
}

const BINDING_COLUMNS: &str = "id, org_id, person_id, rep_id, status, reason, transaction_id, bound_at, \
                               checked_at, suspended_at, suspended_by";

fn binding_from_row(r: &AnyRow) -> Result<BindingRow, sqlx::Error> {
    Ok(BindingRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        person_id: r.try_get("person_id")?,
        rep_id: r.try_get("rep_id")?,
        status: BindingStatus::read(&r.try_get::<String, _>("status")?),
        reason: r.try_get("reason")?,
        transaction_id: r.try_get("transaction_id")?,
        bound_at: r.try_get("bound_at")?,
        checked_at: r.try_get("checked_at")?,
        suspended_at: r.try_get("suspended_at")?,
        suspended_by: r.try_get("suspended_by")?,
    })
}

const APPOINTMENT_COLUMNS: &str = "id, org_id, appointer_id, appointee_id, appointee_label, role, matters, \
                                   valid_until, status, rep_id, created_at, expires_at";

fn appointment_from_row(r: &AnyRow) -> Result<AppointmentRow, sqlx::Error> {
    Ok(AppointmentRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        appointer_id: r.try_get("appointer_id")?,
        appointee_id: r.try_get("appointee_id")?,
        appointee_label: r.try_get("appointee_label")?,
        role: r.try_get("role")?,
        matters: r.try_get("matters")?,
        valid_until: r.try_get("valid_until")?,
        status: AppointmentStatus::read(&r.try_get::<String, _>("status")?),
        rep_id: r.try_get("rep_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

impl Db {
    pub async fn insert_proofing_check(&self, c: &CheckRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO proofing_checks (id, person_id, connector, outcome, transaction_id, address, at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(&c.id)
        .bind(&c.person_id)
        .bind(&c.connector)
        .bind(&c.outcome)
        .bind(&c.transaction_id)
        .bind(&c.address)
        .bind(c.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks, newest first, optionally of one person / connector / outcome.
    pub async fn proofing_checks(
        &self,
        person_id: Option<&str>,
        connector: Option<&str>,
        outcome: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CheckRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, person_id, connector, outcome, transaction_id, address, at FROM proofing_checks \
             WHERE ($1 = '' OR person_id = $1) AND ($2 = '' OR connector = $2) AND ($3 = '' OR outcome = $3) \
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(person_id.unwrap_or(""))
        .bind(connector.unwrap_or(""))
        .bind(outcome.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check_from_row).collect()
    }

    /// Replaces one kind of evidence of a person.
    pub async fn put_evidence(
        &self,
        person_id: &str,
        check_type: &str,
        transaction_id: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO proofing_evidence (person_id, check_type, transaction_id, at) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (person_id, check_type) DO UPDATE SET transaction_id = $3, at = $4",
        )
        .bind(person_id)
        .bind(check_type)
        .bind(transaction_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn evidence_of(&self, person_id: &str) -> Result<Vec<EvidenceRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT check_type, transaction_id, at FROM proofing_evidence WHERE person_id = $1 ORDER BY at, check_type",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EvidenceRow {
                    check_type: r.try_get("check_type")?,
                    transaction_id: r.try_get("transaction_id")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    pub async fn set_population_state(
        &self,
        person_id: &str,
        state: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO proofing_population (person_id, state, checked_at) VALUES ($1,$2,$3) \
             ON CONFLICT (person_id) DO UPDATE SET state = $2, checked_at = $3",
        )
        .bind(person_id)
        .bind(state)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets when the person's population record counts as last asked (to ask again later after an
    /// unusable answer), leaving its state.
    pub async fn population_checked(&self, person_id: &str, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE proofing_population SET checked_at = $1 WHERE person_id = $2")
            .bind(at)
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When the person's population record was last asked, if ever.
    pub async fn population_checked_at(&self, person_id: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT checked_at FROM proofing_population WHERE person_id = $1")
            .bind(person_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Active persons whose normal population record was last asked before `before`.
    pub async fn population_due(&self, before: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT pp.person_id FROM proofing_population pp JOIN persons p ON p.id = pp.person_id \
             WHERE pp.state = 'normal' AND pp.checked_at < $1 AND p.status = 'active' \
             ORDER BY pp.checked_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn insert_face_session(
        &self,
        state_hash: &str,
        person_id: &str,
        sid: &str,
        provider_session: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO proofing_face_sessions (state_hash, person_id, sid, provider_session, created_at, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(state_hash)
        .bind(person_id)
        .bind(sid)
        .bind(provider_session)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses a face session once: only for the person and SSO session that opened it, before it expires.
    /// One statement, so two returns racing on any nodes cannot both have it. The provider's session id.
    pub async fn take_face_session(
        &self,
        state_hash: &str,
        person_id: &str,
        sid: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE proofing_face_sessions SET used_at = $4 WHERE state_hash = $1 AND person_id = $2 \
             AND sid = $3 AND used_at IS NULL AND expires_at > $4 RETURNING provider_session",
        )
        .bind(state_hash)
        .bind(person_id)
        .bind(sid)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn insert_binding(&self, b: &BindingRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO org_bindings (id, org_id, person_id, rep_id, status, reason, transaction_id, bound_at, checked_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        )
        .bind(&b.id)
        .bind(&b.org_id)
        .bind(&b.person_id)
        .bind(&b.rep_id)
        .bind(b.status.as_str())
        .bind(&b.reason)
        .bind(&b.transaction_id)
        .bind(b.bound_at)
        .bind(b.checked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn binding(&self, id: &str) -> Result<Option<BindingRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM org_bindings WHERE id = $1"
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(binding_from_row).transpose()
    }

    /// Bindings, newest first, optionally of one person / organisation / status.
    pub async fn bindings(
        &self,
        person_id: Option<&str>,
        org_id: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BindingRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM org_bindings WHERE ($1 = '' OR person_id = $1) \
             AND ($2 = '' OR org_id = $2) AND ($3 = '' OR status = $3) ORDER BY bound_at DESC, id DESC LIMIT $4"
        ));
        let rows = sqlx::query(sql)
            .bind(person_id.unwrap_or(""))
            .bind(org_id.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Bindings last checked before `before`: active ones, and ones the registry's answer suspended
    /// (enterprise gone, revoked or cancelled), which a later `active` answer restores.
    pub async fn bindings_due(&self, before: i64, limit: i64) -> Result<Vec<BindingRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {BINDING_COLUMNS} FROM org_bindings WHERE checked_at < $1 AND (status = 'active' OR \
             (status = 'suspended' AND suspended_by = 'registry' AND reason IN ('gone', 'revoked', 'cancelled'))) \
             ORDER BY checked_at LIMIT $2"
        ));
        let rows = sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(binding_from_row).collect()
    }

    pub async fn binding_checked(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE org_bindings SET checked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Suspends an active binding; false when it was not active.
    pub async fn suspend_binding(
        &self,
        id: &str,
        reason: &str,
        by: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE org_bindings SET status = 'suspended', reason = $1, suspended_by = $2, suspended_at = $3, \
             checked_at = $3, registry_suspended_at = CASE WHEN $2 = 'registry' THEN $3 \
             ELSE registry_suspended_at END WHERE id = $4 AND status = 'active'",
        )
        .bind(reason)
        .bind(by)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Restores a binding the registry's answer suspended (enterprise gone, revoked, cancelled) when the
    /// registry answers `active` again with the same legal representative; false when it was not so
    /// suspended (an admin's suspension is never undone here).
    pub async fn restore_binding(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE org_bindings SET status = 'active', reason = NULL, suspended_by = NULL, suspended_at = NULL, \
             checked_at = $1, restored_at = $1 WHERE id = $2 AND status = 'suspended' AND suspended_by = 'registry' \
             AND reason IN ('gone', 'revoked', 'cancelled')",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A super admin lifts a suspension the registry's answer made: the binding and its organisation
    /// active again, in one transaction (both or neither). Not a restore the brake counts
    /// (`restored_at` untouched): only the sweep's automatic restores are held back by it. False, and
    /// nothing changed, when the binding was not so suspended.
    pub async fn lift_binding(
        &self,
        id: &str,
        org_id: &str,
        from: &[&str],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE org_bindings SET status = 'active', reason = NULL, suspended_by = NULL, suspended_at = NULL, \
             checked_at = $1 WHERE id = $2 AND status = 'suspended' AND suspended_by = 'registry' \
             AND reason IN ('gone', 'revoked', 'cancelled')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE organisations SET status = 'active', updated_at = $1, version = version + 1 WHERE id = $2 \
             AND status IN ($3, $4, $5)",
        )
        .bind(now)
        .bind(org_id)
        .bind(from.first().copied().unwrap_or(""))
        .bind(from.get(1).copied().unwrap_or(""))
        .bind(from.get(2).copied().unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A super admin pins a suspension the registry's answer made: it becomes the admin's (`by`), so no
    /// later registry answer restores it; false when the binding was not so suspended.
    pub async fn pin_binding(&self, id: &str, by: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE org_bindings SET reason = 'admin', suspended_by = $1, suspended_at = $2, checked_at = $2 \
             WHERE id = $3 AND status = 'suspended' AND suspended_by = 'registry'",
        )
        .bind(by)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes a suspended binding's suspension final (`reason`), so no later answer restores it.
    pub async fn end_binding(&self, id: &str, reason: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE org_bindings SET reason = $1, checked_at = $2 WHERE id = $3 AND status = 'suspended'",
        )
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets an organisation's status only when it is one of `from` (so the registry never reactivates
    /// an organisation an admin deactivated); false when it was not.
    pub async fn set_org_status_from(
        &self,
        org_id: &str,
        from: &[&str],
        status: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE organisations SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3 \
             AND status IN ($4, $5, $6)",
        )
        .bind(status)
        .bind(now)
        .bind(org_id)
        .bind(from.first().copied().unwrap_or(""))
        .bind(from.get(1).copied().unwrap_or(""))
        .bind(from.get(2).copied().unwrap_or(""))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes (or keeps) the lease `name` for `holder` until `until`, when it is free, expired at `now`
    /// or already this holder's. One statement, so two nodes asking at once cannot both have it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE leases.expires_at <= $4 OR leases.holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `holder` still holds the lease `name` at `now` (a sweep checks it before each write: one
    /// that outlived its lease, expired or taken over by another node, stops).
    pub async fn lease_held(&self, name: &str, holder: &str, now: i64) -> Result<bool, sqlx::Error> {
        let row =
            sqlx::query("SELECT 1 AS one FROM leases WHERE name = $1 AND holder = $2 AND expires_at > $3")
                .bind(name)
                .bind(holder)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Latches a proofing brake (`kind`: `population` or `registry`): a `leases` row named
    /// `proofing_brake:<kind>` that never expires, so every node sees it until a super admin clears
    /// it. True when this call tripped it (false: already tripped).
    pub async fn trip_brake(&self, kind: &str, by: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(format!("proofing_brake:{kind}"))
        .bind(by)
        .bind(i64::MAX)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The proofing brakes tripped (`population`, `registry`), each with what tripped it.
    pub async fn brakes_tripped(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT name, holder FROM leases WHERE name LIKE 'proofing_brake:%' ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                Ok((
                    name.trim_start_matches("proofing_brake:").to_owned(),
                    r.try_get("holder")?,
                ))
            })
            .collect()
    }

    /// Clears every tripped proofing brake and starts that brake's 24-hour count again from `now` (a
    /// row `proofing_brake_cleared:<kind>` whose `expires_at` is when), in one transaction: a kind whose
    /// latch was not there keeps its count, so a replayed clear changes nothing. How many were tripped.
    pub async fn clear_brakes(&self, by: &str, now: i64) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut cleared = 0;
        for kind in ["population", "registry", "restore"] {
            let done = sqlx::query("DELETE FROM leases WHERE name = $1")
                .bind(format!("proofing_brake:{kind}"))
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            cleared += done.rows_affected();
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3",
            )
            .bind(format!("proofing_brake_cleared:{kind}"))
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(cleared)
    }

    /// When a super admin last cleared the proofing brake of `kind` (a clear that found it latched).
    pub async fn brake_cleared_at(&self, kind: &str) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT expires_at FROM leases WHERE name = $1")
            .bind(format!("proofing_brake_cleared:{kind}"))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("expires_at")).transpose()
    }

    /// Automatic closures since `since`, across the cluster: accounts locked by a population re-check
    /// (`population`), bindings the registry's answer suspended (`registry`), or bindings restored
    /// (`restore`).
    pub async fn closures_since(&self, kind: &str, since: i64) -> Result<i64, sqlx::Error> {
        let sql = match kind {
            "population" => {
                "SELECT COUNT(*) AS n FROM proofing_checks WHERE connector = 'population' \
                 AND address = 'recheck' AND at >= $1 AND outcome NOT IN ('match', 'no_match')"
            }
            "restore" => "SELECT COUNT(*) AS n FROM org_bindings WHERE restored_at >= $1",
            _ => "SELECT COUNT(*) AS n FROM org_bindings WHERE registry_suspended_at >= $1",
        };
        let row = sqlx::query(sql).bind(since).fetch_one(&self.pool).await?;
        row.try_get("n")
    }

    /// Gives the lease back (if still this holder's).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_org_status(&self, org_id: &str, status: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE organisations SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        )
        .bind(status)
        .bind(now)
        .bind(org_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_appointment(&self, a: &AppointmentRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO org_appointments (id, org_id, appointer_id, appointee_id, appointee_label, role, matters, \
             valid_until, status, created_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
        )
        .bind(&a.id)
        .bind(&a.org_id)
        .bind(&a.appointer_id)
        .bind(&a.appointee_id)
        .bind(&a.appointee_label)
        .bind(&a.role)
        .bind(&a.matters)
        .bind(a.valid_until)
        .bind(a.status.as_str())
        .bind(a.created_at)
        .bind(a.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn appointment(&self, id: &str) -> Result<Option<AppointmentRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM org_appointments WHERE id = $1"
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(appointment_from_row).transpose()
    }

    /// Appointments a person made or received that are pending or accepted.
    pub async fn appointments_of(&self, person_id: &str) -> Result<Vec<AppointmentRow>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {APPOINTMENT_COLUMNS} FROM org_appointments WHERE (appointer_id = $1 OR appointee_id = $1) \
             AND status IN ('pending', 'accepted') ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql).bind(person_id).fetch_all(&self.pool).await?;
        rows.iter().map(appointment_from_row).collect()
    }

    /// Moves an appointment from `from` to `to` (one statement: the first decision wins).
    pub async fn decide_appointment(
        &self,
        id: &str,
        from: AppointmentStatus,
        to: AppointmentStatus,
        rep_id: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE org_appointments SET status = $1, rep_id = COALESCE($2, rep_id), decided_at = $3, ended_by = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(rep_id)
        .bind(now)
        .bind(by)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
