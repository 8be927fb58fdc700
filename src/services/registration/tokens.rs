//! Initial access tokens (RFC 7591 §1.2): what a super admin hands out so that an app may register.

use crate::crypto::{self, Random};
use crate::store::registration::RegistrationToken;

/// Lifetime of an initial access token when the admin gives none, seconds.
pub const DEFAULT_TOKEN_TTL: i64 = 7 * 24 * 3600;
/// Longest lifetime of an initial access token, seconds.
pub const MAX_TOKEN_TTL: i64 = 365 * 24 * 3600;
pub const MAX_TOKEN_USES: i64 = 1000;

/// What an admin asks for when issuing an initial access token.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub expires_in: Option<i64>,
    pub max_uses: Option<i64>,
    pub department: String,
    pub note: String,
}

/// A new initial access token, drawn from `rng`: the secret (shown once) and the stored row (hash only).
/// An invalid request names the field.
pub fn new_token(
    req: TokenRequest,
    created_by: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<(String, RegistrationToken), (&'static str, String)> {
    let ttl = req.expires_in.unwrap_or(DEFAULT_TOKEN_TTL);
    if !(60..=MAX_TOKEN_TTL).contains(&ttl) {
        return Err((
            "expires_in",
            format!("expires_in is 60 to {MAX_TOKEN_TTL} seconds"),
        ));
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if !(1..=MAX_TOKEN_USES).contains(&max_uses) {
        return Err(("max_uses", format!("max_uses is 1 to {MAX_TOKEN_USES}")));
    }
    if req.note.chars().count() > 200 {
        return Err(("note", "note is at most 200 characters".into()));
    }
    if req.department.chars().count() > 100 {
        return Err(("department", "department is at most 100 characters".into()));
    }
    let secret = rng.token();
    let row = RegistrationToken {
        id: crate::ids::new_id(now, rng).simple().to_string(),
        token_hash: crypto::token_hash(&secret),
        department: req.department,
        note: req.note,
        max_uses,
        uses: 0,
        expires_at: Some(now + ttl),
        revoked_at: None,
        created_by: created_by.to_owned(),
        created_at: now,
    };
    Ok((secret, row))
}

/// Why a known initial access token cannot be used now, if it cannot.
pub fn unusable(t: &RegistrationToken, now: i64) -> Option<&'static str> {
    if t.revoked_at.is_some() {
        Some("the initial access token was revoked")
    } else if t.expires_at.is_some_and(|e| e <= now) {
        Some("the initial access token has expired")
    } else if t.uses >= t.max_uses {
        Some("the initial access token is used up")
    } else {
        None
    }
}
