//! Scan to sign in: the login page of one browser shows a QR code carrying a single-use, short-lived
//! login request; the province's mobile app (a native client of yunid, holding the person's tokens)
//! scans it, shows the person what is asking and a number-matching challenge, and approves or denies.
//! The browser that showed the code — and only that browser — then continues with a session of the
//! person, with the phone's own sign-in: its level (`acr`), its time (`auth_time`) and its methods, with
//! `mca` added (RFC 8176: more than one channel took part) — never more than the phone had. The
//! app-side API is docs/SCAN-API.md.

use crate::amr::{Amr, Method};
use crate::crypto::{self, Random};
use crate::services::new_codes::{self, Admit};
use crate::store::Db;
use crate::store::login::Limit;
use crate::store::scan::{ScanApproval, ScanRow, ScanStatus};

/// The `amr` value a scan adds to the phone's methods (RFC 8176 §2: multiple-channel authentication).
pub const AMR: Method = Method::Mca;
/// Wrong numbers one person may type (each refuses its request) before their answers wait.
pub const WRONG_NUMBERS: i64 = 5;

/// How long the person's wrong numbers hold their answers back, and how long they are remembered.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub window: i64,
    pub memory: i64,
}

/// The pieces the scan service works with.
pub struct Ctx<'a> {
    pub db: &'a Db,
    /// How long a QR code can be scanned and answered.
    pub ttl: i64,
    /// Client ids of the province's app: only their tokens answer a scan.
    pub apps: &'a [String],
    /// New codes per address and the live codes' cap (`new_code_*`, `scan_max_live`).
    pub limit: new_codes::Settings,
    pub rng: &'a dyn Random,
    pub throttle: Throttle,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("scan to sign in is not enabled")]
    Disabled,
    #[error("this app may not answer a scanned sign-in")]
    NotScanApp,
    #[error("unknown code")]
    Unknown,
    #[error("the code expired")]
    Expired,
    #[error("the code was scanned already")]
    AlreadyScanned,
    #[error("the code was scanned by someone else")]
    NotYours,
    #[error("the number typed is not the one the browser shows; the sign-in was refused")]
    NumberMismatch,
    #[error("too many wrong numbers; wait and try again")]
    TooManyWrongNumbers,
    #[error("too many QR codes were drawn from this network; wait and try again")]
    Throttled { retry_after: i64 },
    /// The deployment holds its cap of live codes (`scan_max_live`).
    #[error("too many QR codes are live; try again shortly")]
    Full { retry_after: i64 },

    /// The app asks for a new sign-in now (`prompt=login`): a phone's earlier sign-in is not one.
    #[error("the app asks for a new sign-in, which scanning cannot give")]
    FreshSignInRequired,
    /// The phone's sign-in is older than the app's `max_age` allows.
    #[error("the phone's sign-in is older than the app accepts; sign in again in the app")]
    TooOld,
    /// Finished for another authorization request than the one the code was shown (and the phone
    /// told) for.
    #[error("the code was shown for another sign-in")]
    OtherRequest,
    #[error("the sign-in was denied on the phone")]
    Denied,
    /// The phone's grant that approved has ended since (revoked, signed out everywhere, expired), or
    /// the person can no longer sign in.
    #[error("the phone's sign-in has ended; scan again")]
    GrantEnded,
    #[error("the sign-in was not approved yet")]
    NotApproved,
    #[error("the sign-in was used already")]
    Used,
    #[error("internal error")]
    Internal,
}

fn internal(e: impl std::fmt::Display) -> ScanError {
    tracing::error!(error = %e, "scan to sign in failed");
    ScanError::Internal
}

/// A request just shown in a browser.
#[derive(Debug)]
pub struct Started {
    /// What the QR code carries (with the issuer's `/scan?c=` in front of it).
    pub qr_token: String,
    /// The browser's own handle for polling and finishing (useless without its binding cookie).
    pub handle: String,
    pub expires_at: i64,
}

/// A number from 10 to 99, uniformly.
fn two_digits(rng: &dyn Random) -> i64 {
    loop {
        let mut b = [0u8; 1];
        rng.fill(&mut b);
        // 180 = 2 × 90: larger bytes would favour the low numbers.
        if b[0] < 180 {
            return 10 + i64::from(b[0] % 90);
        }
    }
}

/// The authorization request a code is shown for.
#[derive(Debug, Clone, Copy)]
pub struct ShownFor<'a> {
    /// The hash of the request's id (`req`) in this browser.
    pub request_hash: &'a str,
    pub client_id: &'a str,
    /// The request's `max_age`.
    pub max_age: Option<i64>,
    /// The request says `prompt=login`.
    pub prompt_login: bool,
}

/// Shows a new request in the browser whose binding cookie hashes to `browser_hash`, for the
/// authorization request `shown_for` (none: yunid's own account page). Each new code is counted against
/// the address asking and the live codes are capped (`services::new_codes`).
pub async fn start(
    ctx: &Ctx<'_>,
    browser_hash: &str,
    shown_for: Option<ShownFor<'_>>,
    address: &str,
    now: i64,
) -> Result<Started, ScanError> {
    if ctx.apps.is_empty() {
        return Err(ScanError::Disabled);
    }
    if shown_for.is_some_and(|f| f.prompt_login) {
        return Err(ScanError::FreshSignInRequired);
    }
    // A page shows one code every `scan_ttl` (two minutes): the limits are far above what the people
    // behind one service hall's address need, and far below what filling the table would take.
    let live = ctx.db.live_scans(now, ctx.limit.max_live);
    match new_codes::admit(ctx.db, "scan", address, live, ctx.limit, now)
        .await
        .map_err(internal)?
    {
        Admit::Yes => {}
        Admit::Throttled { retry_after } => return Err(ScanError::Throttled { retry_after }),
        Admit::Full { retry_after } => return Err(ScanError::Full { retry_after }),
    }
    let (qr_token, handle) = (ctx.rng.token(), ctx.rng.token());
    let row = ScanRow {
        qr_hash: crypto::token_hash(&qr_token),
        handle_hash: crypto::token_hash(&handle),
        browser_hash: browser_hash.to_owned(),
        client_id: shown_for.map(|f| f.client_id.to_owned()),
        address: address.to_owned(),
        number: two_digits(ctx.rng),
        status: ScanStatus::Waiting,
        person_id: None,
        amr: None,
        created_at: now,
        expires_at: now + ctx.ttl,
        request_hash: shown_for.map(|f| f.request_hash.to_owned()),
        max_age: shown_for.and_then(|f| f.max_age),
        acr: None,
        auth_time: None,
        family_id: None,
    };
    ctx.db.insert_scan(&row).await.map_err(internal)?;
    Ok(Started {
        qr_token,
        handle,
        expires_at: row.expires_at,
    })
}

/// What the browser that showed a request may know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserView {
    Waiting,
    /// Scanned: the browser shows the number the person must type on the phone.
    Scanned {
        number: i64,
    },
    Approved,
    Denied,
    Expired,
    Used,
}

impl BrowserView {
    pub fn as_str(&self) -> &'static str {
        match self {
            BrowserView::Waiting => "waiting",
            BrowserView::Scanned { .. } => "scanned",
            BrowserView::Approved => "approved",
            BrowserView::Denied => "denied",
            BrowserView::Expired => "expired",
            BrowserView::Used => "used",
        }
    }
}

/// The request `handle` names, when this browser showed it (constant-time comparison of the binding
/// hashes); any other browser learns nothing of it.
async fn own(ctx: &Ctx<'_>, handle: &str, browser_hash: &str) -> Result<ScanRow, ScanError> {
    let row = ctx
        .db
        .scan_by_handle(&crypto::token_hash(handle))
        .await
        .map_err(internal)?
        .ok_or(ScanError::Unknown)?;
    if !crypto::ct_eq(row.browser_hash.as_bytes(), browser_hash.as_bytes()) {
        return Err(ScanError::Unknown);
    }
    Ok(row)
}

/// Where the request stands, for the browser that showed it.
pub async fn view(
    ctx: &Ctx<'_>,
    handle: &str,
    browser_hash: &str,
    now: i64,
) -> Result<BrowserView, ScanError> {
    let row = own(ctx, handle, browser_hash).await?;
    Ok(match row.status {
        ScanStatus::Used => BrowserView::Used,
        _ if row.expires_at <= now => BrowserView::Expired,
        ScanStatus::Waiting => BrowserView::Waiting,
        ScanStatus::Scanned => BrowserView::Scanned { number: row.number },
        ScanStatus::Approved => BrowserView::Approved,
        ScanStatus::Denied => BrowserView::Denied,
    })
}

/// The app's caller, as its access token (verified and live) says.
#[derive(Debug, Clone)]
pub struct Phone {
    pub client_id: String,
    pub person_id: String,
    /// How the person signed in to the app: the grant's `amr`, `acr` and `auth_time`.
    pub amr: Amr,
    pub acr: i64,
    pub auth_time: i64,
    /// The address the phone's request came from.
    pub address: String,
    /// The phone's grant (family): an approval lasts only while it is live.
    pub family_id: String,
}

/// What the phone shows the person after a scan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Asking {
    /// The app the browser is signing in to (`None`: the yunid account page).
    pub client_id: Option<String>,
    /// The browser's network (IPv4 /24, IPv6 /48), never its full address.
    pub browser_network: String,
    /// Whether the phone's request came from that network too.
    pub same_network: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The token in what the QR code carries: the whole URL (`…/scan?c=TOKEN`) or the token alone.
pub fn token_of(scanned: &str) -> &str {
    let scanned = scanned.trim();
    match scanned.split_once("?c=") {
        Some((_, token)) => token.split('&').next().unwrap_or(token),
        None => scanned,
    }
}

/// The network an address is shown as: IPv4 by its /24, IPv6 by its /48.
pub fn network(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => network(&v4.to_string()),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
        Err(_) => String::new(),
    }
}

fn check_app(ctx: &Ctx<'_>, phone: &Phone) -> Result<(), ScanError> {
    if ctx.apps.is_empty() {
        return Err(ScanError::Disabled);
    }
    if !ctx.apps.contains(&phone.client_id) {
        return Err(ScanError::NotScanApp);
    }
    Ok(())
}

/// Whether the phone's sign-in is too old for the request's `max_age`.
fn too_old(max_age: Option<i64>, auth_time: i64, now: i64) -> bool {
    max_age.is_some_and(|max| now - auth_time > max)
}

/// The phone scanned `scanned`: the first scan claims the request for its person; any later scan (by
/// anyone) is refused. A phone whose sign-in is older than the request's `max_age` claims nothing (the
/// person can sign in again in the app and scan the same code).
pub async fn scan(ctx: &Ctx<'_>, phone: &Phone, scanned: &str, now: i64) -> Result<Asking, ScanError> {
    check_app(ctx, phone)?;
    let qr_hash = crypto::token_hash(token_of(scanned));
    let row = ctx
        .db
        .scan_by_qr(&qr_hash)
        .await
        .map_err(internal)?
        .ok_or(ScanError::Unknown)?;
    if row.expires_at <= now {
        return Err(ScanError::Expired);
    }
    if row.status == ScanStatus::Waiting && too_old(row.max_age, phone.auth_time, now) {
        return Err(ScanError::TooOld);
    }
    if row.status != ScanStatus::Waiting
        || !ctx
            .db
            .claim_scan(&qr_hash, &phone.person_id, now)
            .await
            .map_err(internal)?
    {
        return Err(ScanError::AlreadyScanned);
    }
    let browser_network = network(&row.address);
    Ok(Asking {
        client_id: row.client_id,
        same_network: !browser_network.is_empty() && network(&phone.address) == browser_network,
        browser_network,
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

/// The person's answer on the phone.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    /// Approve, with the number the person typed (read from the browser's screen).
    Approve {
        number: i64,
    },
    Deny,
}

/// Answers the request the phone's person scanned. A wrong number refuses the request for good (a
/// guess is not given a second try) and counts against the person: after [`WRONG_NUMBERS`] of them
/// (remembered for `throttle.memory`) their approvals wait `throttle.window`, doubling, answering
/// nothing meanwhile. An approval hands on the phone's `acr`, `auth_time` and `amr` (with [`AMR`]).
pub async fn answer(
    ctx: &Ctx<'_>,
    phone: &Phone,
    scanned: &str,
    decision: Decision,
    now: i64,
) -> Result<(), ScanError> {
    check_app(ctx, phone)?;
    let qr_hash = crypto::token_hash(token_of(scanned));
    let row = ctx
        .db
        .scan_by_qr(&qr_hash)
        .await
        .map_err(internal)?
        .ok_or(ScanError::Unknown)?;
    if row.expires_at <= now {
        return Err(ScanError::Expired);
    }
    if row.person_id.as_deref() != Some(phone.person_id.as_str()) {
        return Err(if row.status == ScanStatus::Waiting {
            ScanError::NotApproved
        } else {
            ScanError::NotYours
        });
    }
    let amr = phone.amr.clone().with(AMR);
    let approval = ScanApproval {
        amr: &amr,
        acr: phone.acr,
        auth_time: phone.auth_time,
        family_id: &phone.family_id,
    };
    let wrong_key = format!("scan:number:{}", phone.person_id);
    let (approve_with, refusal) = match decision {
        Decision::Approve { number } => {
            let limit = Limit {
                max: WRONG_NUMBERS,
                window: ctx.throttle.window,
                forget_before: now - ctx.throttle.memory,
            };
            if !ctx
                .db
                .reserve_attempt(&wrong_key, limit, now)
                .await
                .map_err(internal)?
            {
                return Err(ScanError::TooManyWrongNumbers);
            }
            if number == row.number {
                ctx.db.refund_attempt(&wrong_key).await.map_err(internal)?;
                if too_old(row.max_age, phone.auth_time, now) {
                    return Err(ScanError::TooOld);
                }
                (Some(approval), None)
            } else {
                // The reservation stays: it is the record of the wrong number.
                (None, Some(ScanError::NumberMismatch))
            }
        }
        Decision::Deny => (None, None),
    };
    if !ctx
        .db
        .answer_scan(&qr_hash, &phone.person_id, approve_with, now)
        .await
        .map_err(internal)?
    {
        return Err(ScanError::AlreadyScanned);
    }
    match refusal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An approved request turned into a sign-in: the phone's own authentication, which the browser's
/// session takes over as it is (level, time and methods, with [`AMR`]).
#[derive(Debug, Clone)]
pub struct Approved {
    pub person_id: String,
    pub amr: Amr,
    pub acr: i64,
    pub auth_time: i64,
    /// The phone grant that approved; checked again once the browser's session exists.
    pub family_id: String,
}

/// Whether the phone grant `family_id` of `person_id` is still live (not revoked, not expired) and the
/// person may still sign in.
pub async fn grant_live(
    ctx: &Ctx<'_>,
    family_id: &str,
    person_id: &str,
    now: i64,
) -> Result<bool, ScanError> {
    let live = ctx
        .db
        .family(family_id)
        .await
        .map_err(internal)?
        .is_some_and(|f| {
            f.revoked_at.is_none() && f.expires_at > now && f.person_id.as_deref() == Some(person_id)
        });
    if !live {
        return Ok(false);
    }
    Ok(ctx
        .db
        .person(person_id)
        .await
        .map_err(internal)?
        .is_some_and(|p| p.status.is_active()))
}

/// The browser that showed the request continues with it, once, for the authorization request it was
/// shown for (`request_hash`, `None` for the account page); any other browser, or another request, is
/// refused. A phone sign-in that has grown older than the request's `max_age` meanwhile is refused too.
pub async fn finish(
    ctx: &Ctx<'_>,
    handle: &str,
    browser_hash: &str,
    request_hash: Option<&str>,
    now: i64,
) -> Result<Approved, ScanError> {
    let shown = own(ctx, handle, browser_hash).await?;
    let answerable = shown.status == ScanStatus::Approved && shown.expires_at > now;
    if answerable && shown.request_hash.as_deref() != request_hash {
        return Err(ScanError::OtherRequest);
    }
    let handle_hash = crypto::token_hash(handle);
    if let Some(row) = ctx
        .db
        .use_scan(&handle_hash, browser_hash, now)
        .await
        .map_err(internal)?
    {
        let (Some(person_id), Some(acr), Some(auth_time)) = (row.person_id, row.acr, row.auth_time) else {
            return Err(ScanError::NotApproved);
        };
        if too_old(row.max_age, auth_time, now) {
            return Err(ScanError::TooOld);
        }
        let Some(family_id) = row.family_id else {
            return Err(ScanError::GrantEnded);
        };
        if !grant_live(ctx, &family_id, &person_id, now).await? {
            return Err(ScanError::GrantEnded);
        }
        return Ok(Approved {
            person_id,
            amr: row.amr.unwrap_or_default(),
            acr,
            auth_time,
            family_id,
        });
    }
    // Why not: said only to the browser that showed it.
    Err(match view(ctx, handle, browser_hash, now).await? {
        BrowserView::Expired => ScanError::Expired,
        BrowserView::Denied => ScanError::Denied,
        BrowserView::Used => ScanError::Used,
        _ => ScanError::NotApproved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_url_or_alone() {
        assert_eq!(token_of("https://id.example/scan?c=abc_-1"), "abc_-1");
        assert_eq!(token_of(" abc "), "abc");
        assert_eq!(token_of("https://id.example/scan?c=abc&x=1"), "abc");
    }

    #[test]
    fn networks_hide_the_host() {
        assert_eq!(network("203.0.113.9"), "203.0.113.0/24");
        assert_eq!(network("2001:db8:1:2::9"), "2001:db8:1::/48");
        assert_eq!(network("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(network("nonsense"), "");
    }
}
