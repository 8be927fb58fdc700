//! The words of the real-name verification and "my enterprises" pages, per language, and what each
//! proofing outcome tells the person. A page shows a message by its code (`?m=…`), never by text the
//! request carried.

use crate::http::i18n::Lang;
use crate::services::proofing::{Connector, ProofingError};

pub struct ProofingTexts {
    pub verify_title: &'static str,
    pub level_now: &'static str,
    pub level_names: [&'static str; 3],
    pub step2_title: &'static str,
    pub step2_text: &'static str,
    pub step2_button: &'static str,
    pub step3_title: &'static str,
    pub step3_text: &'static str,
    pub step3_button: &'static str,
    pub needs_phone: &'static str,
    pub offline: &'static str,
    pub counter: &'static str,
    pub done_all: &'static str,
    pub orgs_title: &'static str,
    pub orgs_needs_level: &'static str,
    pub orgs_verify_link: &'static str,
    pub bind_title: &'static str,
    pub credit_code: &'static str,
    pub bind_button: &'static str,
    pub bound: &'static str,
    pub none_bound: &'static str,
    pub status: &'static str,
    pub status_active: &'static str,
    pub status_suspended: &'static str,
    pub appoint_title: &'static str,
    pub organisation: &'static str,
    pub appointee: &'static str,
    pub appointee_hint: &'static str,
    pub matters: &'static str,
    pub matters_hint: &'static str,
    pub valid_days: &'static str,
    pub appoint_button: &'static str,
    pub appointments: &'static str,
    pub appointed_by_you: &'static str,
    pub appointed_you: &'static str,
    pub accept: &'static str,
    pub end: &'static str,
    pub pending: &'static str,
    pub accepted: &'static str,
    pub expired: &'static str,
    pub continue_request: &'static str,
    pub role: &'static str,
    pub role_agent: &'static str,
    pub role_manager: &'static str,
    pub status_suspended_admin: &'static str,
    pub act_for: &'static str,
    pub act_for_text: &'static str,
    pub none_represented: &'static str,
    pub back: &'static str,
}

static ZH: ProofingTexts = ProofingTexts {
    verify_title: "实名认证",
    level_now: "当前实名等级",
    level_names: [
        "一级（本人声明，手机号已验证）",
        "二级（人口库与运营商核验）",
        "三级（人脸核验或窗口核验）",
    ],
    step2_title: "升级到二级：人口库与运营商核验",
    step2_text: "以您登记的姓名、身份证号码和已验证的手机号，向人口基础信息库和手机运营商核验。",
    step2_button: "开始核验",
    step3_title: "升级到三级：人脸核验",
    step3_text: "将跳转到人脸核验服务，完成后自动返回。",
    step3_button: "开始人脸核验",
    needs_phone: "请先验证手机号（短信验证码登录一次即可），或到政务服务窗口办理。",
    offline: "本站暂未开通在线核验，请携带居民身份证到政务服务窗口办理。",
    counter: "也可以携带居民身份证到任一政务服务窗口办理实名认证。",
    done_all: "您已达到最高实名等级。",
    orgs_title: "我的企业",
    orgs_needs_level: "绑定企业需要实名等级二级及以上。",
    orgs_verify_link: "去实名认证",
    bind_title: "绑定我担任法定代表人的企业",
    credit_code: "统一社会信用代码",
    bind_button: "查询并绑定",
    bound: "已绑定的企业",
    none_bound: "尚未绑定企业。",
    status: "状态",
    status_active: "有效",
    status_suspended: "已暂停（登记库信息变更或管理员暂停）",
    appoint_title: "授权经办人",
    organisation: "企业",
    appointee: "被授权人",
    appointee_hint: "已注册用户的身份证号码或手机号",
    matters: "授权事项",
    matters_hint: "all 表示全部事项，或填写事项编码，以逗号分隔",
    valid_days: "有效天数（留空为不限，以您本人授权为限）",
    appoint_button: "发出授权",
    appointments: "授权记录",
    appointed_by_you: "您授权",
    appointed_you: "授权您",
    accept: "接受",
    end: "终止",
    pending: "待接受",
    expired: "已过期",
    continue_request: "返回应用继续办理",
    role: "授权类型",
    role_agent: "经办人（代理人）",
    role_manager: "管理人",
    status_suspended_admin: "已暂停（管理员暂停，请到政务服务窗口办理）",
    accepted: "生效中",
    act_for: "以企业身份办事",
    act_for_text: "以下是您可以代表的企业。进入各办事系统时，选择以哪家企业的身份办理。",
    none_represented: "您还没有可以代表的企业：如果您是企业的法定代表人，请在下方绑定；经办人请由法定代表人授权。",
    back: "返回账号",
};

static EN: ProofingTexts = ProofingTexts {
    verify_title: "Real-name verification",
    level_now: "Current real-name level",
    level_names: [
        "1 (self-declared, verified phone)",
        "2 (population database and carrier checks)",
        "3 (face verification or at a counter)",
    ],
    step2_title: "Level 2: population database and carrier checks",
    step2_text: "Your registered name, resident ID number and verified phone are checked with the population base database and your mobile carrier.",
    step2_button: "Start the checks",
    step3_title: "Level 3: face verification",
    step3_text: "You will go to the face verification service and come back here when it is done.",
    step3_button: "Start face verification",
    needs_phone: "Verify your phone first (sign in once with an SMS code), or visit a government service counter.",
    offline: "Online verification is not available here; please visit a government service counter with your resident identity card.",
    counter: "You can also have your identity verified at any government service counter with your resident identity card.",
    done_all: "You have the highest real-name level.",
    orgs_title: "My enterprises",
    orgs_needs_level: "Binding an enterprise needs real-name level 2 or above.",
    orgs_verify_link: "Verify your identity",
    bind_title: "Bind an enterprise I am the legal representative of",
    credit_code: "Unified social credit code",
    bind_button: "Look up and bind",
    bound: "Bound enterprises",
    none_bound: "No enterprise bound yet.",
    status: "Status",
    status_active: "active",
    status_suspended: "suspended (the registry changed, or an administrator suspended it)",
    appoint_title: "Appoint an agent",
    organisation: "Enterprise",
    appointee: "Appointee",
    appointee_hint: "resident ID number or phone number of a registered user",
    matters: "Matters",
    matters_hint: "all for every matter, or matter codes separated by commas",
    valid_days: "Valid for days (empty: no end of its own, within your own authority)",
    appoint_button: "Appoint",
    appointments: "Appointments",
    appointed_by_you: "You appointed",
    appointed_you: "Appointed you",
    accept: "Accept",
    end: "End",
    pending: "waiting for acceptance",
    expired: "expired",
    continue_request: "Back to the app",
    role: "Role",
    role_agent: "agent",
    role_manager: "manager",
    status_suspended_admin: "suspended by an administrator (please visit a government service counter)",
    accepted: "in effect",
    act_for: "Act for an enterprise",
    act_for_text: "These are the enterprises you may act for. When you enter a service, you choose which one you act for.",
    none_represented: "You represent no enterprise yet: if you are an enterprise's legal representative, bind it below; an agent is appointed by the legal representative.",
    back: "Back to my account",
};

pub fn texts(lang: Lang) -> &'static ProofingTexts {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

/// The message code a proofing error is shown by (`?m=`), and whether it is an error.
pub fn code_of(e: &ProofingError) -> &'static str {
    match e {
        ProofingError::NotConfigured(_) => "offline",
        ProofingError::Unavailable(_) => "try_later",
        ProofingError::Mismatch(Connector::Population) => "mismatch_population",
        ProofingError::Mismatch(Connector::Carrier) => "mismatch_carrier",
        ProofingError::Mismatch(_) => "mismatch_face",
        ProofingError::Throttled => "throttled",
        ProofingError::NeedsLevel(_) => "needs_level",
        ProofingError::NeedsPhone => "needs_phone",
        ProofingError::RecordClosed => "record_closed",
        ProofingError::FaceSession => "face_session",
        ProofingError::FaceFailed => "mismatch_face",
        ProofingError::Invalid(_) => "invalid",
        ProofingError::UnknownEnterprise => "unknown_enterprise",
        ProofingError::EnterpriseInactive(_) => "enterprise_inactive",
        ProofingError::NotLegalRepresentative => "not_legal_representative",
        ProofingError::AlreadyBound => "already_bound",
        ProofingError::SuspendedByAdmin => "admin_suspended",
        ProofingError::OrgDeactivated => "org_deactivated",
        ProofingError::Expired => "expired",
        ProofingError::NotFound => "not_found",
        ProofingError::Forbidden(_) => "forbidden",
        ProofingError::Internal(_) => "internal",
    }
}

/// The sentence for a message code; `None` for an unknown code (shown as nothing). The second value is
/// true for a success.
pub fn message(lang: Lang, code: &str) -> Option<(&'static str, bool)> {
    let zh = lang == Lang::Zh;
    let pick = |z: &'static str, e: &'static str| if zh { z } else { e };
    let (text, ok) = match code {
        "raised2" => (
            pick(
                "核验通过，您的实名等级已升为二级。",
                "Verified: your real-name level is now 2.",
            ),
            true,
        ),
        "raised3" => (
            pick(
                "人脸核验通过，您的实名等级已升为三级。",
                "Face verification passed: your real-name level is now 3.",
            ),
            true,
        ),
        "bound" => (
            pick(
                "企业已绑定，您已是其法定代表人。",
                "The enterprise is bound; you are its legal representative.",
            ),
            true,
        ),
        "appointed" => (
            pick(
                "授权已发出。如该人员已注册，将在其账号“我的企业”页面看到此授权，达到实名二级后方可接受；14天内未接受即过期。",
                "Appointment sent. If this person is registered they will see it on their account page and can accept it at real-name level 2; it expires if not accepted within 14 days.",
            ),
            true,
        ),
        "accepted" => (
            pick(
                "您已接受授权，可以企业身份办事。",
                "Accepted: you can now act for the enterprise.",
            ),
            true,
        ),
        "ended" => (pick("授权已终止。", "The appointment has ended."), true),
        "admin_suspended" => (
            pick(
                "管理员已暂停您对该企业的绑定，重新绑定不能解除暂停。请到政务服务窗口办理。",
                "An administrator suspended your binding of this enterprise; binding again does not lift it. Please visit a government service counter.",
            ),
            false,
        ),
        "org_deactivated" => (
            pick(
                "管理员已停用该企业，重新绑定不能恢复。请到政务服务窗口办理。",
                "An administrator deactivated this enterprise; binding does not reactivate it. Please visit a government service counter.",
            ),
            false,
        ),
        "expired" => (
            pick(
                "该授权已过期，不能再接受。请联系授权人重新发出。",
                "This appointment has expired and can no longer be accepted; ask the appointer to send a new one.",
            ),
            false,
        ),
        "offline" => (
            pick(
                "本站暂未开通此项在线核验，请携带居民身份证到政务服务窗口办理。",
                "This online check is not available here; please visit a government service counter.",
            ),
            false,
        ),
        "try_later" => (
            pick(
                "核验服务暂时无法连接，请稍后再试（不影响您登录和使用其他服务）。",
                "The verification service cannot be reached right now; please try later (signing in and other services are not affected).",
            ),
            false,
        ),
        "mismatch_population" => (
            pick(
                "人口基础信息库核验未通过：姓名与身份证号码不一致。请携带居民身份证到政务服务窗口办理。",
                "The population database check failed: the name and ID number do not match. Please visit a government service counter with your identity card.",
            ),
            false,
        ),
        "mismatch_carrier" => (
            pick(
                "运营商三要素核验未通过：手机号不是以您本人身份登记的。请更换本人手机号，或到政务服务窗口办理。",
                "The carrier check failed: the phone is not registered in your name. Use a phone registered to you, or visit a government service counter.",
            ),
            false,
        ),
        "mismatch_face" => (
            pick(
                "人脸核验未通过。可以稍后重试，或携带居民身份证到政务服务窗口办理。",
                "Face verification did not pass. Try again later, or visit a government service counter with your identity card.",
            ),
            false,
        ),
        "throttled" => (
            pick(
                "尝试次数过多，请明天再试，或到政务服务窗口办理。",
                "Too many attempts; please try again tomorrow or visit a government service counter.",
            ),
            false,
        ),
        "needs_level" => (
            pick(
                "请先完成上一级实名认证。",
                "Please complete the previous level first.",
            ),
            false,
        ),
        "needs_phone" => (ZH.needs_phone, false),
        "face_session" => (
            pick(
                "这次人脸核验已失效或不属于当前登录，请重新开始。",
                "This face verification is no longer valid for this sign-in; please start again.",
            ),
            false,
        ),
        "invalid" => (
            pick(
                "填写的内容不正确，请检查后重试。",
                "Something you entered is not valid; please check it.",
            ),
            false,
        ),
        "unknown_enterprise" => (
            pick(
                "市场主体登记库中没有这个统一社会信用代码。",
                "The registry has no enterprise with this credit code.",
            ),
            false,
        ),
        "enterprise_inactive" => (
            pick(
                "该企业在市场主体登记库中已吊销或注销，不能绑定。",
                "The enterprise is revoked or cancelled in the registry and cannot be bound.",
            ),
            false,
        ),
        "not_legal_representative" => (
            pick(
                "登记库记载的法定代表人不是您本人，不能绑定。如有变更，请先办理变更登记，或到政务服务窗口办理。",
                "The registry names someone else as the legal representative. Register the change first, or visit a government service counter.",
            ),
            false,
        ),
        "already_bound" => (
            pick("您已绑定该企业。", "You have already bound this enterprise."),
            false,
        ),
        "not_found" => (
            pick("没有找到对应的记录或用户。", "No such record or user."),
            false,
        ),
        "forbidden" => (
            pick(
                "您没有这项权限（授权不能超出您本人的授权范围和期限）。",
                "You may not do this (an appointment cannot exceed your own authority or time).",
            ),
            false,
        ),
        "internal" => (
            pick(
                "系统繁忙，请稍后再试。",
                "Something went wrong; please try later.",
            ),
            false,
        ),
        _ => return None,
    };
    let text = if code == "needs_phone" && !zh {
        EN.needs_phone
    } else {
        text
    };
    Some((text, ok))
}
