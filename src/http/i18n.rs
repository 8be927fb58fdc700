//! Page languages: Simplified Chinese by default, English on request (a `yunid_lang` cookie set by the
//! language switch, the authorization request's `ui_locales`, or `Accept-Language`).

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

pub const COOKIE: &str = "yunid_lang";

/// The language switch's cookie: a year, the whole site, `Secure` when the issuer is https.
pub fn cookie(lang: Lang, secure: bool) -> axum_extra::extract::cookie::Cookie<'static> {
    use axum_extra::extract::cookie::Cookie;
    let text = format!("{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code());
    let mut cookie = Cookie::parse(text).unwrap_or_else(|_| Cookie::new(COOKIE, lang.code()));
    cookie.set_secure(secure);
    cookie
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    /// The first supported language in a list such as `ui_locales` ("en zh-CN") or
    /// `Accept-Language` ("en-US,en;q=0.9,zh;q=0.8"), in the order given.
    pub fn from_list(list: &str) -> Option<Lang> {
        list.split([',', ' '])
            .map(|item| item.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .find_map(|tag| {
                if tag.starts_with("zh") {
                    Some(Lang::Zh)
                } else if tag.starts_with("en") {
                    Some(Lang::En)
                } else {
                    None
                }
            })
    }

    pub fn parse(code: &str) -> Option<Lang> {
        Lang::from_list(code)
    }

    /// The supported language an `Accept-Language` header prefers most (RFC 9110 §12.5.4): the highest
    /// `q` wins, the earlier of equals; `q=0` means "not this one"; `*` stands for the default, Chinese.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(qvalue)
                .next()
                .unwrap_or(Some(1000));
            let lang = match tag.as_str() {
                "*" => Lang::Zh,
                t if t == "zh" || t.starts_with("zh-") => Lang::Zh,
                t if t == "en" || t.starts_with("en-") => Lang::En,
                _ => continue,
            };
            match q {
                Some(q) if q > 0 && best.is_none_or(|(b, _)| q > b) => best = Some((q, lang)),
                _ => {}
            }
        }
        best.map(|(_, lang)| lang)
    }
}

/// A `qvalue` ("0", "0.8", "1.000") in thousandths; `None` when malformed.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The page language for a request: cookie, then `Accept-Language`, then Chinese.
impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .and_then(|(_, v)| Lang::parse(v));
        let accept = || {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        };
        Ok(cookie.or_else(accept).unwrap_or_default())
    }
}

/// Every string a page shows, per language.
pub struct Texts {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_label: &'static str,
    pub site: &'static str,
    pub login_title: &'static str,
    pub returning_to: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub temporary_password: &'static str,
    pub choose_password: &'static str,
    pub must_change_password: &'static str,
    pub err_new_password: &'static str,
    pub sign_in: &'static str,
    pub method_password: &'static str,
    pub method_sms: &'static str,
    pub method_passkey: &'static str,
    pub method_scan: &'static str,
    pub phone: &'static str,
    pub send_code: &'static str,
    pub sms_code: &'static str,
    pub sms_sent: &'static str,
    pub verify: &'static str,
    pub passkey_hint: &'static str,
    pub passkey_button: &'static str,
    pub passkey_needs_js: &'static str,
    pub register_link: &'static str,
    /// Heading of the upstream providers' buttons on the login page.
    pub login_upstream: &'static str,
    /// Shown after an upstream sign-in that no yunid account could be found for (followed by the name).
    pub upstream_link_notice: &'static str,
    pub linked_accounts: &'static str,
    pub linked_none: &'static str,
    pub unlink: &'static str,
    pub upstream_continue: &'static str,
    pub upstream_continue_link: &'static str,
    pub err_credentials: &'static str,
    pub err_throttled: &'static str,
    pub err_busy: &'static str,
    pub err_unavailable: &'static str,
    pub err_code: &'static str,
    pub err_code_expired: &'static str,
    pub err_sms_throttled: &'static str,
    pub err_passkey: &'static str,
    pub stepup_title: &'static str,
    pub stepup_text: &'static str,
    pub consent_title: &'static str,
    pub consent_asks: &'static str,
    pub consent_remember: &'static str,
    pub consent_self_registered: &'static str,
    pub consent_acting_for: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub scope_openid: &'static str,
    pub scope_profile: &'static str,
    pub scope_phone: &'static str,
    pub scope_identity: &'static str,
    pub scope_org: &'static str,
    pub scope_offline: &'static str,
    pub scope_scan: &'static str,
    pub scope_licences: &'static str,
    pub scope_licences_item: &'static str,
    pub act_title: &'static str,
    pub act_question: &'static str,
    pub act_myself: &'static str,
    pub role_legal: &'static str,
    pub role_manager: &'static str,
    pub role_agent: &'static str,
    pub continue_: &'static str,
    pub register_title: &'static str,
    pub id_number: &'static str,
    pub name: &'static str,
    pub new_password: &'static str,
    pub register_button: &'static str,
    pub registered: &'static str,
    pub register_code_sent: &'static str,
    pub error_title: &'static str,
    pub error_back: &'static str,
    pub logout_title: &'static str,
    pub logout_question: &'static str,
    pub logout_button: &'static str,
    pub logged_out: &'static str,
    pub home_signed_in: &'static str,
    pub home_about: &'static str,
    pub home_sso: &'static str,
    pub home_sign_in: &'static str,
    pub home_console: &'static str,
    pub account_title: &'static str,
    pub account_profile: &'static str,
    pub real_name_level: &'static str,
    pub passkeys: &'static str,
    pub passkey_add: &'static str,
    pub passkey_name: &'static str,
    pub passkey_none: &'static str,
    /// Why the account page asks for one more factor before a passkey can be added, and the link.
    pub passkey_step_up_text: &'static str,
    pub passkey_step_up_link: &'static str,
    /// The step-up page's text when the account page sent the person there.
    pub stepup_account_text: &'static str,
    pub remove: &'static str,
    pub sessions: &'static str,
    pub this_session: &'static str,
    pub end_session: &'static str,
    pub logout_everywhere: &'static str,
    pub apps: &'static str,
    pub apps_none: &'static str,
    pub revoke: &'static str,
    pub recent_signins: &'static str,
    pub signed_in_at: &'static str,
    pub redirecting: &'static str,
}

pub static ZH: Texts = Texts {
    lang: "zh-CN",
    other_lang: "en",
    other_lang_label: "English",
    site: "统一身份认证",
    login_title: "登录",
    returning_to: "登录后将返回",
    username: "身份证号或手机号",
    password: "密码",
    temporary_password: "临时密码",
    choose_password: "新密码",
    must_change_password: "您使用的是服务窗口发放的临时密码，请再次输入临时密码并设置新密码。",
    err_new_password: "新密码至少 8 个字符，不能是常见密码，也不能与临时密码相同。",
    sign_in: "登录",
    method_password: "密码登录",
    method_sms: "短信验证码登录",
    method_passkey: "通行密钥登录",
    method_scan: "扫码登录",
    phone: "手机号码",
    send_code: "发送验证码",
    sms_code: "短信验证码",
    sms_sent: "如果该号码已注册，验证码已发送，请尽快输入。",
    verify: "验证",
    passkey_hint: "使用本设备上保存的通行密钥（指纹、面容或 PIN）登录。",
    passkey_button: "使用通行密钥",
    passkey_needs_js: "通行密钥登录需要启用 JavaScript。",
    register_link: "没有账号？注册",
    login_upstream: "使用其他平台账号登录",
    upstream_link_notice: "请登录您的云身份账号一次，以关联您在此平台的账号：",
    linked_accounts: "已关联的平台账号",
    linked_none: "没有关联的平台账号。",
    unlink: "取消关联",
    upstream_continue: "已登录",
    upstream_continue_link: "继续",
    err_credentials: "账号或密码不正确。",
    err_throttled: "尝试次数过多，请稍后再试。",
    err_busy: "系统繁忙，请稍后再试。",
    err_unavailable: "该账号已被锁定或停用，请联系服务窗口。",
    err_code: "验证码不正确或已失效。",
    err_code_expired: "验证码已失效，请重新获取。",
    err_sms_throttled: "发送过于频繁，请稍后再试。",
    err_passkey: "通行密钥验证未通过。",
    stepup_title: "需要进一步验证",
    stepup_text: "该应用要求更高等级的身份验证，请再完成一项验证。",
    consent_title: "授权确认",
    consent_asks: "请求获取以下信息：",
    consent_remember: "您的选择将被记住，可随时在账号页面撤销。",
    consent_self_registered: "此应用为自助注册，未经管理员审核。同意前请核实它将把您带往的网址：",
    consent_acting_for: "您将以下列单位的名义授权，应用将获得该单位的信息：",
    allow: "同意",
    deny: "拒绝",
    scope_openid: "您的账号标识（每个应用各不相同）",
    scope_profile: "姓名、出生日期、性别",
    scope_phone: "手机号码",
    scope_identity: "身份证号码和实名认证等级",
    scope_org: "您代表的企业或组织（名称、统一社会信用代码、您的身份）",
    scope_offline: "在您离开后继续访问上述信息",
    scope_scan: "扫码登录：在其他设备上确认您的登录",
    scope_licences: "您的电子证照",
    scope_licences_item: "电子证照：",
    act_title: "选择办事身份",
    act_question: "您要以什么身份使用",
    act_myself: "本人（个人办事）",
    role_legal: "法定代表人",
    role_manager: "管理员",
    role_agent: "经办人",
    continue_: "继续",
    register_title: "注册",
    id_number: "居民身份证号码",
    name: "姓名",
    new_password: "密码（至少 8 位）",
    register_button: "注册",
    registered: "注册申请已处理。如果该身份证号码此前没有账号，您的账号已创建（实名等级 1），可以登录；如果已有账号，我们已通过短信通知该账号的手机号码。",
    register_code_sent: "我们已向该号码发送短信。如果它可以注册，短信中有验证码；如果它已有账号，短信会告诉您。",
    error_title: "无法继续",
    error_back: "请返回您来自的应用重新开始。",
    logout_title: "退出登录",
    logout_question: "确定要退出统一身份认证吗？您在所有应用的登录都将结束。",
    logout_button: "退出",
    logged_out: "您已退出登录。",
    home_signed_in: "您已登录：",
    home_about: "本平台是全省政务服务的统一身份认证：一个账号、一次登录，即可办理各部门的网上业务。",
    home_sso: "在“我的账号”中可以查看个人信息和实名等级，管理通行密钥，查看已授权的应用并随时撤销。",
    home_sign_in: "登录，进入我的账号",
    home_console: "管理控制台",
    account_title: "我的账号",
    account_profile: "个人信息",
    real_name_level: "实名等级",
    passkeys: "通行密钥",
    passkey_add: "添加通行密钥",
    passkey_name: "名称",
    passkey_none: "尚未添加通行密钥。",
    passkey_step_up_text: "添加通行密钥前，需要再验证一次您的身份（短信验证码或已有的通行密钥）。",
    passkey_step_up_link: "验证身份后添加通行密钥",
    stepup_account_text: "更改登录方式前，请再完成一项验证：向您登记的手机发送验证码，或使用已有的通行密钥。",
    remove: "删除",
    sessions: "登录设备",
    this_session: "（当前）",
    end_session: "结束",
    logout_everywhere: "退出所有设备和应用",
    apps: "已授权的应用",
    apps_none: "没有已授权的应用。",
    revoke: "撤销授权",
    recent_signins: "最近登录",
    signed_in_at: "登录时间",
    redirecting: "正在返回应用",
};

pub static EN: Texts = Texts {
    lang: "en",
    other_lang: "zh-CN",
    other_lang_label: "中文",
    site: "Unified Identity",
    login_title: "Sign in",
    returning_to: "After signing in you return to",
    username: "ID number or phone number",
    password: "Password",
    temporary_password: "Temporary password",
    choose_password: "New password",
    must_change_password: "You signed in with a temporary password from a service counter: enter it again and choose a new password.",
    err_new_password: "The new password needs at least 8 characters, must not be a common one, and must differ from the temporary password.",
    sign_in: "Sign in",
    method_password: "Password",
    method_sms: "SMS code",
    method_passkey: "Passkey",
    method_scan: "Scan with the app",
    phone: "Phone number",
    send_code: "Send code",
    sms_code: "SMS code",
    sms_sent: "If this number is registered, a code has been sent; please enter it soon.",
    verify: "Verify",
    passkey_hint: "Sign in with a passkey saved on this device (fingerprint, face or PIN).",
    passkey_button: "Use a passkey",
    passkey_needs_js: "Signing in with a passkey needs JavaScript.",
    register_link: "No account? Register",
    login_upstream: "Sign in with another platform",
    upstream_link_notice: "Sign in to your yunid account once to link your account at",
    linked_accounts: "Linked accounts",
    linked_none: "No linked accounts.",
    unlink: "Unlink",
    upstream_continue: "Signed in",
    upstream_continue_link: "Continue",
    err_credentials: "The account or password is incorrect.",
    err_throttled: "Too many attempts; please try again later.",
    err_busy: "The service is busy; please try again in a few seconds.",
    err_unavailable: "This account is locked or disabled; please contact a service counter.",
    err_code: "The code is wrong or no longer valid.",
    err_code_expired: "The code has expired; please request a new one.",
    err_sms_throttled: "Too many codes requested; please try again later.",
    err_passkey: "The passkey could not be verified.",
    stepup_title: "Further verification needed",
    stepup_text: "This application requires a stronger sign-in; please complete one more step.",
    consent_title: "Allow access",
    consent_asks: "asks for:",
    consent_remember: "Your choice is remembered; you can revoke it on your account page at any time.",
    consent_self_registered: "This app registered itself; no administrator has reviewed it. Check where it will take you before you allow:",
    consent_acting_for: "You consent on behalf of this organisation; the app will receive its information:",
    allow: "Allow",
    deny: "Deny",
    scope_openid: "An identifier for your account (different for each application)",
    scope_profile: "Name, date of birth, gender",
    scope_phone: "Phone number",
    scope_identity: "Resident ID number and real-name verification level",
    scope_org: "The organisation you represent (name, credit code, your role)",
    scope_offline: "Access to the above after you leave",
    scope_scan: "Scan to sign in: approve your sign-ins on other devices",
    scope_licences: "Your electronic licences",
    scope_licences_item: "E-licence: ",
    act_title: "Act as",
    act_question: "Who are you acting as at",
    act_myself: "Myself",
    role_legal: "legal representative",
    role_manager: "manager",
    role_agent: "agent",
    continue_: "Continue",
    register_title: "Register",
    id_number: "Resident ID number",
    name: "Name",
    new_password: "Password (at least 8 characters)",
    register_button: "Register",
    registered: "Your registration was processed. If this ID number had no account, yours is now created (real-name level 1) and you can sign in; if it had one, its owner has been told by SMS.",
    register_code_sent: "We sent an SMS to this number: with a code if it can be registered, or saying it already has an account.",
    error_title: "Cannot continue",
    error_back: "Please return to the application and start again.",
    logout_title: "Sign out",
    logout_question: "Sign out of Unified Identity? You will be signed out of every application.",
    logout_button: "Sign out",
    logged_out: "You have been signed out.",
    home_signed_in: "Signed in as",
    home_about: "The province's single sign-on for government services: one account, one sign-in, and every department's online services.",
    home_sso: "On your account page you see your details and verification level, manage your passkeys, and see and withdraw the applications you have allowed.",
    home_sign_in: "Sign in to your account",
    home_console: "Administration console",
    account_title: "My account",
    account_profile: "Profile",
    real_name_level: "Real-name level",
    passkeys: "Passkeys",
    passkey_add: "Add a passkey",
    passkey_name: "Name",
    passkey_none: "No passkeys yet.",
    passkey_step_up_text: "Before adding a passkey, confirm it is you once more (an SMS code or an existing passkey).",
    passkey_step_up_link: "Verify it is you, then add a passkey",
    stepup_account_text: "Before changing how you sign in, complete one more step: a code sent to your registered phone, or an existing passkey.",
    remove: "Remove",
    sessions: "Signed-in devices",
    this_session: "(this one)",
    end_session: "End",
    logout_everywhere: "Sign out everywhere",
    apps: "Connected applications",
    apps_none: "No connected applications.",
    revoke: "Revoke",
    recent_signins: "Recent sign-ins",
    signed_in_at: "Signed in at",
    redirecting: "Returning to the application",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_lists_pick_the_first_supported() {
        assert_eq!(Lang::from_list("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Lang::En));
        assert_eq!(Lang::from_list("fr, zh-TW;q=0.5, en"), Some(Lang::Zh));
        assert_eq!(Lang::from_list("fr de"), None);
    }

    #[test]
    fn accept_language_follows_q_values() {
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8"),
            Some(Lang::En)
        );
        // The order alone no longer decides: English is preferred here.
        assert_eq!(
            Lang::from_accept_language("zh-CN;q=0.5, en;q=0.9"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("fr, zh-TW;q=0.5, en"), Some(Lang::En));
        // Equal weights: the first.
        assert_eq!(Lang::from_accept_language("zh, en"), Some(Lang::Zh));
        // q=0 refuses a language; * is the default.
        assert_eq!(Lang::from_accept_language("en;q=0, zh;q=0.1"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("en;q=0"), None);
        assert_eq!(Lang::from_accept_language("fr, *;q=0.1"), Some(Lang::Zh));
        // Not a language tag of ours, or a malformed weight.
        assert_eq!(Lang::from_accept_language("enx, zhx"), None);
        assert_eq!(Lang::from_accept_language("en;q=2"), None);
        assert_eq!(
            Lang::from_accept_language("en;q=0.8888, zh;q=0.3"),
            Some(Lang::Zh)
        );
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
    }
}
