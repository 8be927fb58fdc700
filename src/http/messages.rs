//! The sentences of yunid's error pages, in the page language (a page is all Chinese or all English).
//! The OAuth `error_description` an app receives stays English: it is written for developers.

use std::borrow::Cow;

use crate::http::i18n::Lang;
use crate::services::oidc::authorize::Untrusted;

/// Why a page shows an error instead of going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg<'a> {
    UnknownClient,
    RequestExpired,
    RequestAnswered,
    SignInAgain,
    InvalidRedirectUri,
    ClientIdRequired,
    RequestUriUnknown,
    Untrusted(Untrusted),
    RepeatedParameter,
    BadIdTokenHint,
    ClientMismatch,
    PostLogoutUnregistered,
    NoOrgAsked,
    CannotActFor,
    RegistrationOff,
    FormToken,
    /// The admin lacks this permission (named as the API names it).
    NotAllowed(&'a str),
    /// The console's sign-in came back with this OAuth error code.
    SignInRefused(&'a str),
    SignInStateMismatch,
    SignInWrongIssuer,
    SignInIncomplete,
    /// The console needs two factors; the sign-in had fewer.
    SignInWeak,
    /// The database is unreachable (worth trying again shortly).
    Unavailable,
    /// The password hashing queue is full.
    Busy,
    Internal,
}

impl Msg<'_> {
    pub fn text(self, lang: Lang) -> Cow<'static, str> {
        let zh = lang == Lang::Zh;
        let pick = |z: &'static str, e: &'static str| Cow::Borrowed(if zh { z } else { e });
        match self {
            Msg::UnknownClient => pick("未知的应用。", "Unknown application."),
            Msg::RequestExpired => pick(
                "此登录请求已过期，请回到应用重新登录。",
                "This sign-in request has expired; go back to the application and sign in again.",
            ),
            Msg::RequestAnswered => pick(
                "此登录请求已经处理过了。",
                "This sign-in request was already answered.",
            ),
            Msg::SignInAgain => pick("请重新登录。", "Please sign in again."),
            Msg::InvalidRedirectUri => pick(
                "应用的回调地址无效。",
                "The application's redirect URI is invalid.",
            ),
            Msg::ClientIdRequired => pick(
                "使用 request_uri 时必须提供 client_id。",
                "client_id is required with request_uri.",
            ),
            Msg::RequestUriUnknown => pick(
                "request_uri 无效：未知、已过期、已使用或属于其他应用。",
                "request_uri is unknown, expired, already used, or for another client.",
            ),
            Msg::Untrusted(u) => match u {
                Untrusted::Repeated => pick(
                    "请求中的 client_id 或 redirect_uri 重复。",
                    "client_id or redirect_uri is repeated.",
                ),
                Untrusted::UnknownClient => {
                    pick("未知的应用，或缺少 client_id。", "Unknown or missing client_id.")
                }
                Untrusted::Disabled => pick("此应用已停用。", "This application is disabled."),
                Untrusted::MissingRedirectUri => pick(
                    "请求缺少回调地址（redirect_uri）。",
                    "The request has no redirect_uri.",
                ),
                Untrusted::UnregisteredRedirectUri => pick(
                    "此应用未登记该回调地址（redirect_uri）。",
                    "redirect_uri is not registered for this application.",
                ),
            },
            Msg::RepeatedParameter => pick("请求中有重复的参数。", "A parameter is repeated."),
            Msg::BadIdTokenHint => pick(
                "id_token_hint 不是本平台签发的有效 ID 令牌。",
                "id_token_hint is not a valid ID token from this provider.",
            ),
            Msg::ClientMismatch => pick(
                "client_id 与 id_token_hint 不一致。",
                "client_id does not match id_token_hint.",
            ),
            Msg::PostLogoutUnregistered => pick(
                "此应用未登记该退出后跳转地址（post_logout_redirect_uri）。",
                "post_logout_redirect_uri is not registered for this application.",
            ),
            Msg::NoOrgAsked => pick(
                "此应用没有请求了解您代表哪个组织。",
                "This application did not ask to know whom you act for.",
            ),
            Msg::CannotActFor => pick(
                "您不能在此应用中代表该组织。",
                "You cannot act for this organisation at this application.",
            ),
            Msg::RegistrationOff => pick("本平台不提供自助注册。", "Self-registration is not offered here."),
            Msg::FormToken => pick(
                "表单已过期或并非来自本站，请刷新页面后重试。",
                "The form expired or did not come from this site; reload the page.",
            ),
            Msg::SignInRefused(code) => Cow::Owned(if zh {
                format!("登录未完成（{code}）。")
            } else {
                format!("The sign-in was not completed ({code}).")
            }),
            Msg::SignInStateMismatch => pick(
                "此登录结果不属于您发起的登录（state 不符），请重新登录。",
                "This response is not for the sign-in you started (state mismatch); sign in again.",
            ),
            Msg::SignInWrongIssuer => pick(
                "此登录结果并非来自本平台。",
                "The response does not come from this provider.",
            ),
            Msg::SignInIncomplete => pick(
                "登录未能完成，请重新登录。",
                "The sign-in could not be completed; sign in again.",
            ),
            Msg::SignInWeak => pick(
                "管理控制台需要两种方式验证身份（如密码加短信验证码或通行密钥）。",
                "The administration console needs two factors (a password and an SMS code, or a passkey).",
            ),
            Msg::Unavailable => pick(
                "服务暂时不可用，请稍后再试。",
                "The service is temporarily unavailable; please try again shortly.",
            ),
            Msg::Busy => pick(
                "系统繁忙，请稍后再试。",
                "The service is busy; please try again shortly.",
            ),
            Msg::Internal => pick("系统内部错误。", "Internal error."),
            Msg::NotAllowed(permission) => Cow::Owned(if zh {
                format!("无权执行此操作（{permission}）。")
            } else {
                format!("Not allowed: {permission}.")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_sentences_are_not_english() {
        let all = [
            Msg::UnknownClient,
            Msg::RequestExpired,
            Msg::RequestAnswered,
            Msg::SignInAgain,
            Msg::InvalidRedirectUri,
            Msg::ClientIdRequired,
            Msg::RequestUriUnknown,
            Msg::Untrusted(Untrusted::Repeated),
            Msg::Untrusted(Untrusted::UnknownClient),
            Msg::Untrusted(Untrusted::Disabled),
            Msg::Untrusted(Untrusted::MissingRedirectUri),
            Msg::Untrusted(Untrusted::UnregisteredRedirectUri),
            Msg::RepeatedParameter,
            Msg::BadIdTokenHint,
            Msg::ClientMismatch,
            Msg::PostLogoutUnregistered,
            Msg::NoOrgAsked,
            Msg::CannotActFor,
            Msg::RegistrationOff,
            Msg::FormToken,
            Msg::NotAllowed("client.create"),
            Msg::SignInRefused("access_denied"),
            Msg::SignInStateMismatch,
            Msg::SignInWrongIssuer,
            Msg::SignInIncomplete,
            Msg::SignInWeak,
            Msg::Unavailable,
            Msg::Busy,
            Msg::Internal,
        ];
        for m in all {
            let zh = m.text(Lang::Zh);
            let en = m.text(Lang::En);
            assert!(!zh.is_ascii(), "{m:?}: {zh}");
            assert!(en.is_ascii(), "{m:?}: {en}");
        }
    }
}
