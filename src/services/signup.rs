//! Self-registration in two steps, phone first: (1) a code is sent to the phone, (2) the code and the
//! person's details come back; only then is the password hashed and the account created, with the
//! phone verified. Nothing the registrant sees depends on whether the phone or the ID number already
//! has an account: the owner of that account is told by SMS instead. Sending is throttled per phone and
//! per address, completing per address and per ID number, all in the database (across nodes).

use crate::crypto::{self, Random, Secrets};
use crate::identity::{Phone, PhoneError, ResidentId, ResidentIdError};
use crate::metrics::Metrics;
use crate::services::login::THROTTLE_MEMORY;
use crate::services::password::{self, Weakness};
use crate::services::registry::{NewPerson, PersonError, Registry};
use crate::services::sms::{self, Sms, SmsMessage};
use crate::store::Db;
use crate::store::audit::NewEvent;
use crate::store::login::SmsCode;

const PURPOSE: &str = "register";
/// Completions (right or wrong code) per address before it is held back for `HOLD`.
const PER_ADDRESS: i64 = 10;
/// Registrations of one ID number (each with a verified phone) before it is held back for `HOLD`.
const PER_ID_NUMBER: i64 = 3;
const HOLD: i64 = 3600;

/// What self-registration needs; app.rs builds it.
pub struct Signup<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub metrics: &'a Metrics,
    pub rng: &'a dyn Random,
    /// Codes, their limits and the outbox.
    pub sms: Sms<'a>,
    pub registry: Registry<'a>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    Phone(PhoneError),
    /// Cooldown or hourly cap reached, for this phone or this address.
    Throttled,
}

/// Step 1: sends a registration code to `phone`, or, when the phone already has an account, a message
/// saying so (and no code). Returns the attempt id for the next form either way. The attempt is bound
/// to `browser` (a value only that browser presents: its CSRF token), so it completes nowhere else.
pub async fn start(
    ctx: &Signup<'_>,
    phone: &str,
    browser: &str,
    address: &str,
    now: i64,
) -> anyhow::Result<Result<String, StartError>> {
    let phone = match Phone::parse(phone) {
        Ok(p) => p,
        Err(e) => return Ok(Err(StartError::Phone(e))),
    };
    let hash = sms::phone_hash(ctx.secrets, phone.as_str());
    if !ctx.sms.may_send(&hash, address, now).await? {
        return Ok(Err(StartError::Throttled));
    }
    let attempt = ctx.rng.token();
    let code = sms::six_digits(ctx.rng);
    let ttl = ctx.sms.settings.code_ttl;
    ctx.db
        .insert_sms_code(
            &crypto::token_hash(&attempt),
            &SmsCode {
                phone_hash: hash,
                person_id: None,
                purpose: PURPOSE.into(),
                // A registration has no session; the column holds the browser binding instead.
                session_sid: Some(crypto::token_hash(browser)),
                code_hash: sms::code_hash(&attempt, &code),
                expires_at: now + ttl,
                tries: 0,
                used: false,
            },
            now,
        )
        .await?;
    let registered = ctx.db.person_by_phone(phone.as_str()).await?.is_some();
    let message = if registered {
        SmsMessage {
            to: phone.as_str().into(),
            template: "register_existing".into(),
            code: String::new(),
            text: "【统一身份认证】有人正在用本手机号码注册账号。本号码已有账号，请直接登录；\
                   如非本人操作，请忽略本短信。"
                .into(),
        }
    } else {
        SmsMessage {
            to: phone.as_str().into(),
            template: "register_code".into(),
            text: format!(
                "【统一身份认证】您正在注册账号，验证码是{code}，{}分钟内有效。请勿告诉他人。",
                ttl / 60
            ),
            code,
        }
    };
    ctx.sms.outbox.enqueue(Some(&message), now, now + ttl).await?;
    Ok(Ok(attempt))
}

/// What step 2 brings back.
pub struct Details<'a> {
    pub attempt: &'a str,
    /// The same per-browser value as given to [`start`].
    pub browser: &'a str,
    pub phone: &'a str,
    pub code: &'a str,
    pub id_number: &'a str,
    pub name: &'a str,
    pub password: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CompleteError {
    IdNumber(ResidentIdError),
    Phone(PhoneError),
    Name,
    Password,
    CommonPassword,
    /// Too many attempts from this address, or for this ID number: try later.
    Throttled,
    /// Wrong code (tries left).
    WrongCode,
    /// Expired, used, unknown, out of tries, or for another phone: start again.
    Expired,
}

/// Step 2: checks the details, then the code, then creates the account. `Ok` means "done" whether the
/// account was created or the ID number already had one (its owner is told by SMS): the registrant
/// cannot tell which, and both cost one hash.
pub async fn complete(
    ctx: &Signup<'_>,
    d: Details<'_>,
    address: &str,
    now: i64,
) -> anyhow::Result<Result<(), CompleteError>> {
    // Typing mistakes first: they say nothing about who exists and use up nothing.
    let id = match ResidentId::parse(d.id_number) {
        Ok(id) => id,
        Err(e) => return Ok(Err(CompleteError::IdNumber(e))),
    };
    let phone = match Phone::parse(d.phone) {
        Ok(p) => p,
        Err(e) => return Ok(Err(CompleteError::Phone(e))),
    };
    let name = d.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Ok(Err(CompleteError::Name));
    }
    match password::check_new(d.password) {
        Ok(()) => {}
        Err(Weakness::Length) => return Ok(Err(CompleteError::Password)),
        Err(Weakness::Common) => return Ok(Err(CompleteError::CommonPassword)),
    }
    if !reserve(
        ctx.db,
        &format!("reg-addr:{}", crate::services::login::address_bucket(address)),
        PER_ADDRESS,
        HOLD,
        now,
    )
    .await?
    {
        ctx.metrics.throttled("register_address");
        return Ok(Err(CompleteError::Throttled));
    }
    if let Err(e) = check_code(ctx, &d, &phone, now).await? {
        return Ok(Err(e));
    }
    // The phone is proven. Held back per ID number (the same key whether or not it is registered), so
    // nobody floods an account's owner with notices.
    let id_hash = ctx.secrets.id_hash(id.as_str());
    if !reserve(ctx.db, &format!("reg-id:{id_hash}"), PER_ID_NUMBER, HOLD, now).await? {
        ctx.metrics.throttled("register_id_number");
        return Ok(Err(CompleteError::Throttled));
    }
    let existing = ctx.db.person_by_id_hash(&id_hash).await?;
    let created = match existing {
        Some(_) => None,
        None => {
            let new = NewPerson {
                id_number: id.as_str().into(),
                name: name.into(),
                phone: Some(phone.as_str().into()),
                phone_verified: true,
                password: Some(d.password.into()),
            };
            match ctx.registry.add_person(new, now).await {
                Ok(person_id) => Some(person_id),
                // Registered meanwhile (ID number or phone): like an existing one.
                Err(PersonError::Conflict) => None,
                Err(PersonError::Internal(e)) => return Err(e),
                Err(e) => return Err(anyhow::anyhow!("registration refused late: {e}")),
            }
        }
    };
    match created {
        Some(person_id) => {
            audit(ctx, &person_id, address, "success", now).await;
            // The same outbox write as the notice below.
            ctx.sms
                .outbox
                .enqueue(None, now, now + ctx.sms.settings.code_ttl)
                .await?;
        }
        None => {
            // The same hash as a new account costs.
            ctx.registry.hasher.verify(None, d.password.to_owned()).await?;
            let owner = ctx.db.person_by_id_hash(&id_hash).await?;
            if let Some(owner) = &owner {
                audit(ctx, &owner.id, address, "conflict", now).await;
            }
            let to = owner.filter(|o| o.phone_verified).and_then(|o| o.phone);
            let notice = to.map(|to| SmsMessage {
                to,
                template: "register_id_taken".into(),
                code: String::new(),
                text: "【统一身份认证】有人尝试用您的身份证号码注册新账号，未成功。您的账号未受影响；\
                       如非本人操作，请留意账号安全。"
                    .into(),
            });
            ctx.sms
                .outbox
                .enqueue(notice.as_ref(), now, now + ctx.sms.settings.code_ttl)
                .await?;
        }
    }
    Ok(Ok(()))
}

/// Uses the registration code of the attempt once, for its phone and its browser only.
async fn check_code(
    ctx: &Signup<'_>,
    d: &Details<'_>,
    phone: &Phone,
    now: i64,
) -> anyhow::Result<Result<(), CompleteError>> {
    let (attempt, code) = (d.attempt, d.code);
    let attempt_hash = crypto::token_hash(attempt);
    let max = ctx.sms.settings.max_tries;
    let Some(row) = ctx.db.sms_code(&attempt_hash).await? else {
        return Ok(Err(CompleteError::Expired));
    };
    let same_phone = crypto::ct_eq(
        row.phone_hash.as_bytes(),
        sms::phone_hash(ctx.secrets, phone.as_str()).as_bytes(),
    );
    let browser = crypto::token_hash(d.browser);
    let same_browser = row
        .session_sid
        .as_deref()
        .is_some_and(|b| crypto::ct_eq(b.as_bytes(), browser.as_bytes()));
    if row.purpose != PURPOSE
        || !same_phone
        || !same_browser
        || row.used
        || row.expires_at <= now
        || row.tries >= max
    {
        return Ok(Err(CompleteError::Expired));
    }
    let presented = sms::code_hash(attempt, code.trim());
    if crypto::ct_eq(presented.as_bytes(), row.code_hash.as_bytes()) {
        if ctx.db.sms_use(&attempt_hash, max, now).await? {
            return Ok(Ok(()));
        }
        return Ok(Err(CompleteError::Expired));
    }
    if ctx.db.sms_wrong_try(&attempt_hash, max).await? && row.tries + 1 < max {
        Ok(Err(CompleteError::WrongCode))
    } else {
        Ok(Err(CompleteError::Expired))
    }
}

async fn audit(ctx: &Signup<'_>, subject: &str, address: &str, outcome: &str, now: i64) {
    crate::services::audit::record_quietly(
        ctx.db,
        now,
        NewEvent {
            actor: "self-registration",
            action: "person.register",
            subject,
            address,
            outcome,
            detail: r#"{"phone_verified":true}"#.into(),
            ..Default::default()
        },
    )
    .await;
}

/// Counts one attempt against `key` (at most `max` in `window` seconds); false when the limit is
/// reached. In the database, one statement, so it holds across nodes.
async fn reserve(db: &Db, key: &str, max: i64, window: i64, now: i64) -> anyhow::Result<bool> {
    let limit = crate::store::login::Limit {
        max,
        window,
        forget_before: now - THROTTLE_MEMORY,
    };
    Ok(db.reserve_attempt(key, limit, now).await?)
}
