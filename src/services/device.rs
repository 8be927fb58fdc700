//! The device authorization grant (RFC 8628), on the device's and the person's side: the device
//! authorization request (§3.1–3.2), and the user code a person types on `/device` (§3.3), looked up with
//! throttling and answered with approval or denial. The token endpoint's side is
//! `services::oidc::grants::device_code`.

use crate::crypto::{self, Random, Secrets};
use crate::scope::ScopeSet;
use crate::services::new_codes::{self, Admit};
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::device::{DeviceApproval, DeviceRow, DeviceStatus};
use crate::store::login::Limit;

/// The grant type an app must be registered for (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// User-code characters: consonants only, no vowels (no words spelled) and nothing that looks like
/// another character (RFC 8628 §6.1).
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (20^8 ≈ 2^34.6, shown as XXXX-XXXX).
pub const USER_CODE_LEN: usize = 8;
/// Wrong user codes an address may type before it waits (doubling, as for passwords).
const ADDRESS_MAX: i64 = 10;
/// Times one user code may be looked up before it waits.
const CODE_MAX: i64 = 5;
/// The longest a kiosk app's grant lives when it was marked without a limit of its own.
pub const DEFAULT_KIOSK_TTL: i64 = 15 * 60;

/// How long a grant of a kiosk app lives: its own `session_ttl`, else [`DEFAULT_KIOSK_TTL`]. A kiosk is
/// never left with the ordinary, long limits.
pub fn kiosk_ttl(session_ttl: Option<i64>) -> i64 {
    session_ttl.unwrap_or(DEFAULT_KIOSK_TTL)
}

/// What the device service needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a device code and its user code live.
    pub code_ttl: i64,
    /// The polling interval the device is told (seconds).
    pub interval: i64,
    /// `https://issuer/device`.
    pub verification_uri: url::Url,
    /// How long the throttle holds an address or a code back.
    pub throttle_window: i64,
    /// How long failures are remembered by the throttle.
    pub throttle_memory: i64,
    /// New codes per app and address and the live codes' cap (`new_code_*`, `device_max_live`).
    pub limit: new_codes::Settings,
}

/// The pieces the device service works with.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub settings: Settings,
    pub rng: &'a dyn Random,
    /// Keys the user-code hash and the consent token.
    pub secrets: &'a Secrets,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("this client may not use the device authorization grant")]
    NotRegistered,
    #[error("no scope this client may request was asked for")]
    NoScope,
    /// The user code is malformed, unknown, expired or answered already (one answer for all).
    #[error("this code is not valid")]
    UnknownCode,
    #[error("too many codes tried; wait and try again")]
    Throttled,
    /// Too many device authorization requests by this app from this address (or its network).
    #[error("too many device authorization requests from this network; wait and try again")]
    TooManyStarts { retry_after: i64 },
    /// The deployment holds its cap of live device codes (`device_max_live`).
    #[error("too many device codes are live; try again shortly")]
    Full { retry_after: i64 },
    /// The answer does not come with the consent token of a page shown to this session for this request
    /// (forged, or shown to another session, or to an earlier request under the same code).
    #[error("this answer was not given on the page shown for this request")]
    NotShown,
    /// The session is weaker than the app requires (it steps up first).
    #[error("this app requires a stronger sign-in")]
    TooWeak,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DeviceError {
    fn from(e: sqlx::Error) -> Self {
        DeviceError::Internal(e.into())
    }
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, serde::Serialize)]
pub struct Started {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Scopes as the authorization endpoint takes them: known ones this client may ask for, once each;
/// a kiosk client (short sessions) never gets `offline_access`.
fn scopes_for(client: &Client, asked: Option<&str>, kiosk: bool) -> ScopeSet {
    ScopeSet::parse(asked.unwrap_or("openid")).filter(|s| {
        crate::services::oidc::authorize::SCOPES.contains(&s)
            && client.allows_scope(s)
            && !(kiosk && s == "offline_access")
    })
}

/// A user code drawn uniformly from [`ALPHABET`] (rejection sampling: no character more likely).
fn user_code(rng: &dyn Random) -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        for b in bytes {
            // 240 = 12 × 20: bytes above would favour the first characters.
            if b < 240 && out.len() < USER_CODE_LEN {
                out.push(ALPHABET[usize::from(b % 20)] as char);
            }
        }
    }
    out
}

/// `BCDFGHJK` → `BCDF-GHJK`.
pub fn display(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// What a person typed, as a user code: case and separators ignored (RFC 8628 §6.1); `None` when it
/// cannot be one.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\u{3000}'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// How a user code is stored and looked up: keyed with the server's secret.
pub fn code_hash(secrets: &Secrets, normalized: &str) -> String {
    secrets.device_user_code(normalized)
}

/// RFC 8628 §3.1: a device at `address` asks to be authorized. Every request is counted against the
/// app and the address (and its IPv6 /48), and the live codes are capped, before a row is written
/// (`services::new_codes`). A kiosk asks for one code every `device_code_ttl` (ten minutes): a service
/// hall's kiosks behind one address stay far below the limits, and another app's requests there do not
/// count against them.
pub async fn start(
    ctx: &Ctx<'_>,
    client: &Client,
    scope: Option<&str>,
    address: &str,
    now: i64,
) -> Result<Started, DeviceError> {
    if !client.allows_grant(GRANT_TYPE) {
        return Err(DeviceError::NotRegistered);
    }
    let kiosk = ctx.db.device_client(&client.id).await?.is_some();
    let scopes = scopes_for(client, scope, kiosk);
    if scopes.is_empty() {
        return Err(DeviceError::NoScope);
    }
    let limit = ctx.settings.limit;
    // Per app first (a guest's app refused there charges nothing more), then per address for all apps
    // together at twice the allowance (what one address may write in all), then the live cap.
    let per_app = new_codes::Settings { max_live: 0, ..limit };
    let all_apps = new_codes::Settings {
        burst: limit.burst * 2,
        interval_ms: (limit.interval_ms / 2).max(1),
        ..limit
    };
    let scope = format!("device:{}", client.id);
    let no_count = async { Ok(0) };
    let first = new_codes::admit(ctx.db, &scope, address, no_count, per_app, now).await?;
    let admitted = match first {
        Admit::Yes => {
            let live = ctx.db.live_device_grants(now, limit.max_live);
            new_codes::admit(ctx.db, "device", address, live, all_apps, now).await?
        }
        refused => refused,
    };
    match admitted {
        Admit::Yes => {}
        Admit::Throttled { retry_after } => return Err(DeviceError::TooManyStarts { retry_after }),
        Admit::Full { retry_after } => return Err(DeviceError::Full { retry_after }),
    }
    let device_code = ctx.rng.token();
    let s = &ctx.settings;
    // A drawn user code that a live request holds already is drawn again.
    for _ in 0..8 {
        let code = user_code(ctx.rng);
        let row = DeviceRow {
            device_hash: crypto::token_hash(&device_code),
            user_code_hash: code_hash(ctx.secrets, &code),
            client_id: client.id.clone(),
            scope: scopes.clone(),
            status: DeviceStatus::Pending,
            person_id: None,
            session_sid: None,
            acr: None,
            amr: None,
            auth_time: None,
            interval_secs: s.interval,
            last_poll_at: None,
            created_at: now,
            expires_at: now + s.code_ttl,
            address: address.to_owned(),
        };
        if ctx.db.insert_device_grant(&row).await? {
            let shown = display(&code);
            let mut complete = s.verification_uri.clone();
            complete.query_pairs_mut().append_pair("user_code", &shown);
            return Ok(Started {
                device_code,
                user_code: shown,
                verification_uri: s.verification_uri.to_string(),
                verification_uri_complete: complete.to_string(),
                expires_in: s.code_ttl,
                interval: s.interval,
            });
        }
    }
    Err(DeviceError::Internal(anyhow::anyhow!(
        "no free user code after 8 draws"
    )))
}

/// A pending request found by its user code.
#[derive(Debug, Clone)]
pub struct Found {
    pub row: DeviceRow,
    /// The code as shown on the device (`XXXX-XXXX`).
    pub user_code: String,
}

/// Looks up what a person typed. Every lookup is reserved against the address (per /64 for IPv6) and
/// against the code itself, in the database, so guessing is slow across nodes; a lookup that finds a
/// pending request gives its reservations back.
pub async fn lookup(ctx: &Ctx<'_>, typed: &str, address: &str, now: i64) -> Result<Found, DeviceError> {
    let s = &ctx.settings;
    let limit = |max| Limit {
        max,
        window: s.throttle_window,
        forget_before: now - s.throttle_memory,
    };
    let address_key = format!("device:addr:{}", crate::services::login::address_bucket(address));
    if !ctx
        .db
        .reserve_attempt(&address_key, limit(ADDRESS_MAX), now)
        .await?
    {
        return Err(DeviceError::Throttled);
    }
    let Some(code) = normalize(typed) else {
        return Err(DeviceError::UnknownCode);
    };
    let hash = code_hash(ctx.secrets, &code);
    let code_key = format!("device:code:{hash}");
    if !ctx.db.reserve_attempt(&code_key, limit(CODE_MAX), now).await? {
        ctx.db.refund_attempt(&address_key).await?;
        return Err(DeviceError::Throttled);
    }
    let Some(row) = ctx.db.pending_device_grant(&hash, now).await? else {
        return Err(DeviceError::UnknownCode);
    };
    ctx.db.refund_attempt(&address_key).await?;
    Ok(Found {
        row,
        user_code: display(&code),
    })
}

/// The token the consent page for `found` carries when shown to session `sid`; [`answer`] requires it.
pub fn consent_token(ctx: &Ctx<'_>, found: &Found, sid: &str) -> String {
    ctx.secrets.device_consent(&found.row.device_hash, sid)
}

/// The signed-in person's answer to a pending request.
pub enum Answer<'a> {
    Approve(DeviceApproval<'a>),
    Deny,
}

/// Answers the pending request `user_code` names, from the consent page shown to session `sid` (its
/// `consent` token). Everything the page checked is checked again: the lookup is throttled as on the
/// page, the token binds the answer to that very request (its row, not just its code) and to that
/// session, the app must still be enabled and, for an approval, the session strong enough for it.
/// Returns the request answered; `UnknownCode` when it expired or was answered.
pub async fn answer(
    ctx: &Ctx<'_>,
    user_code: &str,
    consent: Option<&str>,
    sid: &str,
    answer: Answer<'_>,
    address: &str,
    now: i64,
) -> Result<DeviceRow, DeviceError> {
    let found = lookup(ctx, user_code, address, now).await?;
    let expected = consent_token(ctx, &found, sid);
    if !consent.is_some_and(|c| crypto::ct_eq(c.as_bytes(), expected.as_bytes())) {
        return Err(DeviceError::NotShown);
    }
    let Some(client) = ctx.db.client(&found.row.client_id).await?.filter(|c| !c.disabled) else {
        return Err(DeviceError::UnknownCode);
    };
    let device_hash = &found.row.device_hash;
    let done = match answer {
        Answer::Approve(by) => {
            if by.acr < client.min_acr {
                return Err(DeviceError::TooWeak);
            }
            ctx.db.approve_device_grant(device_hash, &by, now).await?
        }
        Answer::Deny => ctx.db.deny_device_grant(device_hash, now).await?,
    };
    if done {
        Ok(found.row)
    } else {
        Err(DeviceError::UnknownCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::sync::atomic::AtomicU8);

    impl Random for Counter {
        fn fill(&self, out: &mut [u8]) {
            for b in out {
                *b = self.0.fetch_add(37, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn user_codes_use_the_unambiguous_alphabet_and_read_back_in_any_case() {
        let rng = Counter(std::sync::atomic::AtomicU8::new(0));
        for _ in 0..50 {
            let code = user_code(&rng);
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            let shown = display(&code);
            assert_eq!(normalize(&shown.to_lowercase()), Some(code.clone()));
            assert_eq!(normalize(&format!(" {} ", code)), Some(code));
        }
        assert_eq!(normalize("BCDF-GHJ"), None, "too short");
        assert_eq!(normalize("BCDF-GHJA"), None, "a vowel is never part of a code");
        assert_eq!(normalize("BCDF-GHJ0"), None, "nor a digit");
    }
}
