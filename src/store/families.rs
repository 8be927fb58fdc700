//! Grant families: one authorization and everything issued from it (access and refresh tokens).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use super::persons::PersonRow;
use crate::amr::Amr;
use crate::scope::ScopeSet;

#[derive(Debug, Clone)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub person_id: Option<String>,
    pub session_sid: Option<String>,
    /// What the grant covers (stored space-separated, in the order it was granted).
    pub scope: ScopeSet,
    /// The `claims` request parameter (JSON) the authorization carried.
    pub claims: Option<String>,
    pub acr: i64,
    /// How the sign-in behind the grant was made (stored space-separated).
    pub amr: Amr,
    pub auth_time: i64,
    pub nonce: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The representation the person acted under (the subject is then the organisation).
    pub acting_rep_id: Option<String>,
    /// Licence types the person consented to release to this app (space-separated type codes).
    pub licence_types: String,
}

fn from_row(row: &AnyRow) -> Result<Family, sqlx::Error> {
    Ok(Family {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        person_id: row.try_get("person_id")?,
        session_sid: row.try_get("session_sid")?,
        scope: ScopeSet::parse(&row.try_get::<String, _>("scope")?),
        claims: row.try_get("claims")?,
        acr: row.try_get("acr")?,
        amr: Amr::parse(&row.try_get::<String, _>("amr")?),
        auth_time: row.try_get("auth_time")?,
        nonce: row.try_get("nonce")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        acting_rep_id: row.try_get("acting_rep_id")?,
        licence_types: row.try_get("licence_types")?,
    })
}

pub enum Redeemed<T> {
    /// First use: the row.
    Fresh(T),
    /// Already used: the family it belonged to (to be revoked).
    Reused(String),
    Unknown,
}

/// A refresh token as stored: when it expires, and whether it was already used (rotated).
#[derive(Debug, Clone, Copy)]
pub struct RefreshState {
    pub expires_at: i64,
    pub used: bool,
}

/// What a token request presents with an authorization code.
#[derive(Debug, Clone, Copy)]
pub struct PresentedCode<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// BASE64URL(SHA256(code_verifier)) (RFC 7636 §4.6).
    pub code_challenge: &'a str,
}

/// The outcome of [`Db::redeem_code`].
#[derive(Debug, Clone)]
pub enum CodeRedemption {
    /// This call consumed the code: its family.
    Redeemed(String),
    /// Not consumed by this call: the code as stored, and whether it was used already.
    Refused(CodeRow, bool),
    Unknown,
}

/// A new code of a grant family ([`Db::insert_code_grant`]): its client and family are the family's.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub redirect_uri: &'a str,
    /// BASE64URL(SHA256(code_verifier)) of the authorization request (RFC 7636 §4.2, S256 only).
    pub code_challenge: &'a str,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct CodeRow {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub family_id: String,
    pub expires_at: i64,
}

/// Binds a family's fourteen columns as `$1`–`$14`, in the order both family inserts name them.
fn bind_family<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    f: &'q Family,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&f.id)
        .bind(&f.client_id)
        .bind(&f.person_id)
        .bind(&f.session_sid)
        .bind(f.scope.to_string())
        .bind(&f.claims)
        .bind(f.acr)
        .bind(f.amr.to_string())
        .bind(f.auth_time)
        .bind(&f.nonce)
        .bind(f.created_at)
        .bind(f.expires_at)
        .bind(&f.acting_rep_id)
        .bind(&f.licence_types)
}

impl Db {
    pub async fn insert_family(&self, f: &Family) -> Result<(), sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO families (id, client_id, person_id, session_sid, scope, claims, acr, amr, auth_time, nonce, \
             created_at, expires_at, acting_rep_id, licence_types) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
        );
        bind_family(insert, f).execute(&self.pool).await?;
        Ok(())
    }

    /// A family and its person (when it has one and the person still exists), in one read.
    pub async fn family_with_person(
        &self,
        id: &str,
    ) -> Result<Option<(Family, Option<PersonRow>)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT f.id, f.client_id, f.person_id, f.session_sid, f.scope, f.claims, f.acr, f.amr, f.auth_time, \
             f.nonce, f.created_at, f.expires_at, f.revoked_at, f.acting_rep_id, f.licence_types, {} \
             FROM families f LEFT JOIN persons p ON p.id = f.person_id WHERE f.id = $1",
            super::persons::JOINED_AS_P_ID
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref()
            .map(|r| Ok((from_row(r)?, super::persons::joined(r)?)))
            .transpose()
    }

    /// The grant family a code belongs to, with the family's person, in one read (before the code is
    /// used: see `grants::authorization_code::redeem`).
    pub async fn code_family_with_person(
        &self,
        code_hash: &str,
    ) -> Result<Option<(Family, Option<PersonRow>)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT f.id, f.client_id, f.person_id, f.session_sid, f.scope, f.claims, f.acr, f.amr, f.auth_time, \
             f.nonce, f.created_at, f.expires_at, f.revoked_at, f.acting_rep_id, f.licence_types, {} \
             FROM codes c JOIN families f ON f.id = c.family_id LEFT JOIN persons p ON p.id = f.person_id \
             WHERE c.code_hash = $1",
            super::persons::JOINED_AS_P_ID
        ));
        let row = sqlx::query(sql)
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| Ok((from_row(r)?, super::persons::joined(r)?)))
            .transpose()
    }

    pub async fn family(&self, id: &str) -> Result<Option<Family>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, client_id, person_id, session_sid, scope, claims, acr, amr, auth_time, nonce, created_at, \
             expires_at, revoked_at, acting_rep_id, licence_types FROM families WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn revoke_family(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        self.revoking(
            sqlx::query("UPDATE families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id),
        )
        .await?;
        Ok(())
    }

    /// Logout ends the grants a session made, except those the person gave for offline access.
    pub async fn revoke_session_families(&self, sid: &str, now: i64) -> Result<(), sqlx::Error> {
        self.revoking(
            sqlx::query(
                "UPDATE families SET revoked_at = $1 WHERE session_sid = $2 AND revoked_at IS NULL \
                 AND ' ' || scope || ' ' NOT LIKE '% offline_access %'",
            )
            .bind(now)
            .bind(sid),
        )
        .await?;
        Ok(())
    }

    /// Ends every grant a session made, offline ones included (the way in that session came through is
    /// gone: an unlinked upstream account, the upstream's own logout).
    pub async fn revoke_all_session_families(&self, sid: &str, now: i64) -> Result<(), sqlx::Error> {
        self.revoking(
            sqlx::query("UPDATE families SET revoked_at = $1 WHERE session_sid = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(sid),
        )
        .await?;
        Ok(())
    }

    /// Revokes every grant a person gave, offline ones included (a reset, a lock, "sign out everywhere").
    pub async fn revoke_person_families(&self, person_id: &str, now: i64) -> Result<(), sqlx::Error> {
        self.revoking(
            sqlx::query("UPDATE families SET revoked_at = $1 WHERE person_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(person_id),
        )
        .await?;
        Ok(())
    }

    /// Revokes every grant given to an app (it was disabled): its refresh and access tokens stop at once,
    /// and enabling it again brings none of them back.
    pub async fn revoke_client_families(&self, client_id: &str, now: i64) -> Result<u64, sqlx::Error> {
        self.revoking(
            sqlx::query("UPDATE families SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(client_id),
        )
        .await
    }

    /// Drops a person's SMS codes not used yet (sent to a phone that may no longer be theirs).
    pub async fn drop_sms_codes_of(&self, person_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sms_codes WHERE person_id = $1 AND used_at IS NULL")
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_code(&self, code_hash: &str, c: &CodeRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO codes (code_hash, client_id, redirect_uri, code_challenge, family_id, expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(code_hash)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.family_id)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a grant family and its single-use code in one statement (one round trip, one commit): the
    /// view `code_grants` writes both rows (migration 0026), where a node of the previous release reads
    /// them. The code belongs to the family and its client.
    pub async fn insert_code_grant(&self, f: &Family, code: &NewCode<'_>) -> Result<(), sqlx::Error> {
        let insert = sqlx::query(
            "INSERT INTO code_grants (family_id, client_id, person_id, session_sid, scope, claims, acr, amr, \
             auth_time, nonce, created_at, expires_at, acting_rep_id, licence_types, code_hash, redirect_uri, \
             code_challenge, code_expires_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
        );
        bind_family(insert, f)
            .bind(code.code_hash)
            .bind(code.redirect_uri)
            .bind(code.code_challenge)
            .bind(code.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops a refresh token that was stored but never handed out (a redemption refused after the code's
    /// use stored the grant's first one).
    pub async fn drop_unsent_refresh(&self, token_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a code used if, and only if, everything presented matches it: the client it was issued to,
    /// the redirect URI of the authorization request, the PKCE challenge of the presented verifier, and
    /// an expiry still ahead. All of it is checked by the one statement that consumes the code, so a
    /// request that fails any check (another client holding a leaked code) leaves the code usable by the
    /// rightful client. Of any number of concurrent matching callers exactly one gets `Redeemed`; a caller
    /// the statement refused gets the code as stored, to tell why.
    ///
    /// `first_refresh` (the hash of the grant's first refresh token and its expiry) is stored by the same
    /// statement, and only when it consumes the code (the trigger of migration 0026), so a refused or
    /// raced request leaves no refresh token behind.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        presented: &PresentedCode<'_>,
        first_refresh: Option<(&str, i64)>,
        now: i64,
    ) -> Result<CodeRedemption, sqlx::Error> {
        let family: Option<String> = sqlx::query_scalar(
            "UPDATE codes SET used_at = $1, refresh_hash = $6, refresh_expires_at = $7 \
             WHERE code_hash = $2 AND used_at IS NULL AND client_id = $3 \
             AND redirect_uri = $4 AND code_challenge = $5 AND expires_at > $1 RETURNING family_id",
        )
        .bind(now)
        .bind(code_hash)
        .bind(presented.client_id)
        .bind(presented.redirect_uri)
        .bind(presented.code_challenge)
        .bind(first_refresh.map(|(hash, _)| hash))
        .bind(first_refresh.map(|(_, expires_at)| expires_at))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(family_id) = family {
            return Ok(CodeRedemption::Redeemed(family_id));
        }
        let row = sqlx::query(
            "SELECT client_id, redirect_uri, code_challenge, family_id, expires_at, used_at FROM codes \
             WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(CodeRedemption::Unknown);
        };
        let used_at: Option<i64> = r.try_get("used_at")?;
        Ok(CodeRedemption::Refused(
            CodeRow {
                client_id: r.try_get("client_id")?,
                redirect_uri: r.try_get("redirect_uri")?,
                code_challenge: r.try_get("code_challenge")?,
                family_id: r.try_get("family_id")?,
                expires_at: r.try_get("expires_at")?,
            },
            used_at.is_some(),
        ))
    }

    /// The family a code belongs to, used or not (reads only).
    pub async fn insert_refresh(
        &self,
        token_hash: &str,
        family_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES ($1,$2,$3,$4)",
        )
        .bind(token_hash)
        .bind(family_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A refresh token's expiry and whether it was used, with its family and the family's person, in one
    /// read.
    pub async fn refresh_with_family(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshState, Family, Option<PersonRow>)>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT r.expires_at AS token_expires_at, r.used_at AS token_used_at, f.id, f.client_id, \
             f.person_id, f.session_sid, f.scope, f.claims, f.acr, f.amr, f.auth_time, f.nonce, f.created_at, \
             f.expires_at, f.revoked_at, f.acting_rep_id, f.licence_types, {} \
             FROM refresh_tokens r JOIN families f ON f.id = r.family_id LEFT JOIN persons p ON p.id = f.person_id \
             WHERE r.token_hash = $1",
            super::persons::JOINED_AS_P_ID
        ));
        let row = sqlx::query(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let used: Option<i64> = r.try_get("token_used_at")?;
            let state = RefreshState {
                expires_at: r.try_get("token_expires_at")?,
                used: used.is_some(),
            };
            Ok((state, from_row(&r)?, super::persons::joined(&r)?))
        })
        .transpose()
    }

    /// Rotation of a refresh token the caller has just read (with its family): marks it used and, when
    /// `next` is given (hash, expiry), stores its successor, in one statement (one commit, one round trip).
    /// Of any number of concurrent callers exactly one gets `Fresh`; the others get `Reused`, and a
    /// successor they stored belongs to the family they must then revoke.
    pub async fn rotate_refresh(
        &self,
        token_hash: &str,
        family_id: &str,
        next: Option<(&str, i64)>,
        now: i64,
    ) -> Result<Redeemed<()>, sqlx::Error> {
        let won = match next {
            // The used token's row conflicts and is marked used only if it was not (the row's other values
            // are never stored: it exists); the successor is a new row. RETURNING names the rows written.
            Some((next_hash, next_expires_at)) => {
                let written: Vec<String> = sqlx::query_scalar(
                    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at) \
                     VALUES ($1, $2, $3, $3, $3), ($4, $2, $3, $5, NULL) \
                     ON CONFLICT (token_hash) DO UPDATE SET used_at = excluded.used_at \
                     WHERE refresh_tokens.used_at IS NULL RETURNING token_hash",
                )
                .bind(token_hash)
                .bind(family_id)
                .bind(now)
                .bind(next_hash)
                .bind(next_expires_at)
                .fetch_all(&self.pool)
                .await?;
                written.iter().any(|h| h == token_hash)
            }
            None => {
                sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
                )
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1
            }
        };
        Ok(if won {
            Redeemed::Fresh(())
        } else {
            Redeemed::Reused(family_id.to_owned())
        })
    }
}
