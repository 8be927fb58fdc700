//! Notices to a person about changes to their sign-in credentials, by SMS to the registered phone (for
//! a phone change: to the old one, which is the one the rightful owner still holds). A notice carries
//! no code and no link, and never text a user typed (a passkey's name could smuggle a phishing link
//! into a message sent under the provider's name). A failed send never undoes the change: the audit
//! trail has it, the operator sees the error.

use crate::identity::Phone;
use crate::services::sms::SmsMessage;
use crate::services::sms_outbox::Outbox;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    PasskeyAdded,
    PasskeyRemoved,
    /// A counter reset of the password; `passkeys_removed` when the passkeys went with it.
    PasswordReset {
        passkeys_removed: bool,
    },
    /// The phone was changed (the notice goes to the old number).
    PhoneChanged,
    /// Someone signed in at an upstream with a verified ID number this account (real-name level 1)
    /// holds unverified: nothing was linked; the number is to be settled at a counter.
    NumberClaimedUpstream,
}

impl Change {
    /// The SMS template name (what the provider's approved templates are keyed on).
    pub fn template(self) -> &'static str {
        match self {
            Change::PasskeyAdded => "passkey_added",
            Change::PasskeyRemoved => "passkey_removed",
            Change::PasswordReset { .. } => "password_reset",
            Change::PhoneChanged => "phone_changed",
            Change::NumberClaimedUpstream => "number_claimed_upstream",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Change::PasskeyAdded => {
                "【统一身份认证】您的账号刚刚添加了一个通行密钥。如非本人操作，请立即到政务服务窗口办理。"
            }
            Change::PasskeyRemoved => {
                "【统一身份认证】您的账号刚刚移除了一个通行密钥。如非本人操作，请立即到政务服务窗口办理。"
            }
            Change::PasswordReset {
                passkeys_removed: true,
            } => {
                "【统一身份认证】您的账号密码已在政务服务窗口重置，已登记的通行密钥已全部移除。如非本人办理，请立即联系窗口。"
            }
            Change::PasswordReset {
                passkeys_removed: false,
            } => "【统一身份认证】您的账号密码已在政务服务窗口重置。如非本人办理，请立即联系窗口。",
            Change::NumberClaimedUpstream => {
                "【统一身份认证】有人通过其他平台以经核验的身份使用了您账号登记的身份证号，未作关联。您的账号尚未实名核验，请到政务服务窗口办理。"
            }
            Change::PhoneChanged => {
                "【统一身份认证】您账号绑定的手机号已在政务服务窗口更换，本号码不再接收验证码。如非本人办理，请立即联系窗口。"
            }
        }
    }
}

/// Queues the notice for `change` to `phone` (stored E.164) in the SMS outbox at `now`; nothing when
/// there is no usable phone. A notice that cannot be queued is logged, never fails the change it reports.
pub async fn credential_changed(outbox: &Outbox<'_>, phone: Option<&str>, change: Change, now: i64) {
    let Some(phone) = phone.and_then(|p| Phone::parse(p).ok()) else {
        return;
    };
    let message = SmsMessage {
        to: phone.as_str().to_owned(),
        template: change.template().to_owned(),
        code: String::new(),
        text: change.text().to_owned(),
    };
    // Worth delivering for a day; after that a notice tells the person nothing new.
    if let Err(e) = outbox.enqueue(Some(&message), now, now + 24 * 3600).await {
        outbox.metrics.sms("failed");
        tracing::error!(error = %e, template = change.template(), "credential notice could not be queued");
    }
}
