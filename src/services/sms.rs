//! SMS one-time codes: six digits, five minutes, single use, bound to one login attempt, stored hashed,
//! at most five wrong tries; sending throttled per phone (cooldown and hourly cap) and per address,
//! in the database so the limits hold across nodes. Unknown numbers get the same answer and no SMS.
//! Messages go through an outbox (sealed with the data-protection secret, deleted once delivered) that
//! any node's worker drains, so no answer waits for the provider, and a registered number's answer
//! takes as long as an unknown one's.

use crate::crypto::{self, Random, Secrets};
use crate::identity::{Phone, PhoneError};
use crate::metrics::Metrics;
use crate::services::sms_outbox::Outbox;
use crate::store::Db;
use crate::store::login::{SendLimits, SmsCode, SmsSend};
use crate::store::persons::PersonRow;

pub use crate::services::sms_gateway::{ConsoleGateway, SendFuture, SmsGateway, SmsMessage, WebhookGateway};

#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Phone(PhoneError),
    /// Cooldown or hourly cap reached (for this phone or this address).
    Throttled,
    /// The session has no verified phone to step up with.
    NoPhone,
}

pub enum Purpose<'a> {
    Login,
    /// A second factor for the person of this session.
    StepUp {
        sid: &'a str,
        person: &'a PersonRow,
    },
}

pub(crate) fn phone_hash(secrets: &Secrets, e164: &str) -> String {
    secrets.id_hash(&format!("phone:{e164}"))
}

pub(crate) fn code_hash(attempt: &str, code: &str) -> String {
    crypto::token_hash(&format!("{attempt}:{code}"))
}

/// A uniformly random six-digit code.
pub(crate) fn six_digits(rng: &dyn Random) -> String {
    loop {
        let mut bytes = [0u8; 4];
        rng.fill(&mut bytes);
        let n = u32::from_be_bytes(bytes);
        // Reject the top sliver so every code is equally likely.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// Wrong code (tries left).
    Wrong,
    /// Expired, used, unknown, or out of tries: start again.
    Expired,
    /// The pending request the code was posted for was answered already (review M1): the code is
    /// neither used nor counted as a wrong try.
    Answered,
}

/// A verified code: who it proves, and for which purpose (and session, for step-up).
#[derive(Debug)]
pub struct Verified {
    pub person_id: String,
    pub purpose: String,
    pub session_sid: Option<String>,
}

/// The sending limits and code lifetime, from the configuration (`sms_*`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub code_ttl: i64,
    pub max_tries: i64,
    pub resend_cooldown: i64,
    pub per_phone_hour: i64,
    pub per_address_hour: i64,
}

/// What sending and checking codes needs; app.rs builds it.
pub struct Sms<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub metrics: &'a Metrics,
    pub outbox: Outbox<'a>,
    pub rng: &'a dyn Random,
    pub settings: Settings,
}

impl Sms<'_> {
    /// Checks the sending limits for a phone (cooldown, hourly cap) and an address (hourly cap), and
    /// counts this send when they allow it, atomically (concurrent requests cannot all pass).
    pub(crate) async fn may_send(&self, phone_hash: &str, address: &str, now: i64) -> anyhow::Result<bool> {
        if !self
            .db
            .try_record_sms_send(
                phone_hash,
                &crate::services::login::address_bucket(address),
                self.limits(),
                now,
            )
            .await?
        {
            self.refused();
            return Ok(false);
        }
        Ok(true)
    }

    fn limits(&self) -> SendLimits {
        let c = &self.settings;
        SendLimits {
            per_phone_hour: c.per_phone_hour,
            per_address_hour: c.per_address_hour,
            cooldown: c.resend_cooldown,
        }
    }

    /// Counts a send the limits refused.
    fn refused(&self) {
        self.metrics.throttled("sms_send");
        self.metrics.sms("refused");
    }

    /// Starts an SMS attempt; returns its id (for the next form). Sends only to a registered, verified phone.
    /// The limits, the code and its message are one statement (`Db::send_sms_code`), which also finds a
    /// login's person: the same work, and the same answer, whether or not the number is registered.
    pub async fn send_code(
        &self,
        phone: Option<&str>,
        purpose: Purpose<'_>,
        address: &str,
        now: i64,
    ) -> anyhow::Result<Result<String, SendError>> {
        // A login's person is found by the statement that writes the code (`None`: known only then).
        let (e164, person_id, kind, sid) = match purpose {
            Purpose::Login => {
                let phone = match Phone::parse(phone.unwrap_or("")) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(SendError::Phone(e))),
                };
                (phone.as_str().to_owned(), None, "login", None)
            }
            Purpose::StepUp { sid, person } => match (&person.phone, person.phone_verified) {
                (Some(p), true) => (p.clone(), Some(person.id.clone()), "stepup", Some(sid.to_owned())),
                _ => return Ok(Err(SendError::NoPhone)),
            },
        };
        let hash = phone_hash(self.secrets, &e164);
        let c = &self.settings;
        let attempt = self.rng.token();
        let code = six_digits(self.rng);
        let row = SmsCode {
            phone_hash: hash,
            person_id,
            purpose: kind.to_owned(),
            session_sid: sid,
            code_hash: code_hash(&attempt, &code),
            expires_at: now + c.code_ttl,
            tries: 0,
            used: false,
        };
        // The message is sealed before the statement knows whether the number has a person, so a
        // registered number's answer costs what an unknown one's does; the statement keeps it only
        // for a person.
        let lookup_phone = row.person_id.is_none().then(|| e164.clone());
        let message = SmsMessage {
            to: e164,
            template: "login_code".into(),
            text: format!(
                "【统一身份认证】您的验证码是{code}，{}分钟内有效。请勿告诉他人。",
                c.code_ttl / 60
            ),
            code,
        };
        let queued = self.outbox.prepare(&message, now, row.expires_at)?;
        let attempt_hash = crypto::token_hash(&attempt);
        let outcome = self
            .db
            .send_sms_code(
                &SmsSend {
                    attempt_hash: &attempt_hash,
                    code: &row,
                    lookup_phone: lookup_phone.as_deref(),
                    address: &crate::services::login::address_bucket(address),
                    limits: self.limits(),
                    outbox_id: &queued.id,
                    sealed: &queued.sealed,
                    claimed_until: queued.claimed_until,
                },
                now,
            )
            .await?;
        if !outcome.allowed {
            self.refused();
            return Ok(Err(SendError::Throttled));
        }
        self.outbox.hand_over(queued, outcome.person_id.is_some());
        Ok(Ok(attempt))
    }

    /// Checks a code posted for `attempt`; `request` is the hash of the id of the pending request it
    /// is posted for, if any: a code is used only while that request is unanswered (its marker is
    /// checked by the statement that uses the code, and read only when that statement used nothing).
    pub async fn verify_code(
        &self,
        attempt: &str,
        code: &str,
        request: Option<&str>,
        now: i64,
    ) -> anyhow::Result<Result<Verified, VerifyError>> {
        let attempt_hash = crypto::token_hash(attempt);
        let max = self.settings.max_tries;
        let presented = code_hash(attempt, code.trim());
        // The right code is used by the statement that finds it (one write, nothing read before).
        if let Some((person_id, purpose, session_sid)) = self
            .db
            .sms_use_matching(&attempt_hash, &presented, max, request, now)
            .await?
        {
            return Ok(Ok(Verified {
                person_id,
                purpose,
                session_sid,
            }));
        }
        // An answered request: nothing more is done for it, whatever the code (no try counted).
        if let Some(r) = request
            && self.db.auth_request_answered(r).await?
        {
            return Ok(Err(VerifyError::Answered));
        }
        // Not used: unknown, used, expired, out of tries, or a wrong code (a right code for a phone
        // of no account counts as wrong).
        let Some(row) = self.db.sms_code(&attempt_hash).await? else {
            return Ok(Err(VerifyError::Expired));
        };
        if row.used || row.expires_at <= now || row.tries >= max {
            return Ok(Err(VerifyError::Expired));
        }
        if self.db.sms_wrong_try(&attempt_hash, max).await? && row.tries + 1 < max {
            Ok(Err(VerifyError::Wrong))
        } else {
            Ok(Err(VerifyError::Expired))
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::hmac;

    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let c = six_digits(&crypto::OsRandom);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn webhook_signature_covers_timestamp_and_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let a = WebhookGateway::signature(&key, 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, WebhookGateway::signature(&key, 2, b"{}"));
        assert_ne!(a, WebhookGateway::signature(&key, 1, b"{ }"));
    }
}
