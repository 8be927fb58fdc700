//! The admin API's problem details in the console's page language.
//!
//! The API answers integrators in English (like OAuth's `error_description`), and its JSON stays so. A
//! console page is one language: a Chinese page shows the detail in Chinese. The API's sentences are a
//! closed set (the test below finds them in the source and fails on one without a translation); the ones
//! that carry a value (a code, a number) are matched by their template. A sentence that is not known
//! still never shows English on a Chinese page: the page says what kind of refusal it was.

use axum::http::StatusCode;

use crate::http::i18n::Lang;

/// `detail` (an admin API problem detail, English) as a page in `lang` shows it.
pub fn detail(lang: Lang, status: StatusCode, detail: &str) -> String {
    // Words of the console's own (already in the page language) pass through.
    let localised = detail.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    match lang {
        Lang::En => detail.to_owned(),
        Lang::Zh if localised => detail.to_owned(),
        Lang::Zh => zh(detail).unwrap_or_else(|| by_status(status).to_owned()),
    }
}

/// The Chinese for a known sentence or template; `None` when it is not known.
fn zh(en: &str) -> Option<String> {
    if let Some((_, zh)) = SENTENCES.iter().find(|(e, _)| *e == en) {
        return Some((*zh).to_owned());
    }
    TEMPLATES.iter().find_map(|(template, zh)| fill(template, zh, en))
}

/// Matches `en` against a template whose holes are `{}` (a value shown as it is) or `{t}` (a sentence,
/// itself translated), and writes the Chinese template with the same holes filled.
fn fill(template: &str, zh_template: &str, en: &str) -> Option<String> {
    let (literals, holes) = split(template);
    let mut values = Vec::new();
    let mut rest = en.strip_prefix(literals[0])?;
    for (i, hole) in holes.iter().enumerate() {
        let next = literals[i + 1];
        let end = if next.is_empty() && i + 1 == holes.len() {
            rest.len()
        } else if i + 1 == holes.len() {
            // The last literal ends the sentence.
            rest.len()
                .checked_sub(next.len())
                .filter(|&at| rest[at..] == *next)?
        } else {
            rest.find(next)?
        };
        let value = &rest[..end];
        if value.is_empty() {
            return None;
        }
        values.push(match hole {
            Hole::Value => value.to_owned(),
            Hole::Sentence => zh(value).or_else(|| is_code(value).then(|| value.to_owned()))?,
        });
        rest = &rest[end + next.len()..];
    }
    if !rest.is_empty() {
        return None;
    }
    let (zh_literals, _) = split(zh_template);
    let mut out = zh_literals[0].to_owned();
    for (value, literal) in values.iter().zip(&zh_literals[1..]) {
        out.push_str(value);
        out.push_str(literal);
    }
    Some(out)
}

enum Hole {
    Value,
    Sentence,
}

fn split(template: &str) -> (Vec<&str>, Vec<Hole>) {
    let mut literals = Vec::new();
    let mut holes = Vec::new();
    let mut rest = template;
    loop {
        let value = rest.find("{}");
        let sentence = rest.find("{t}");
        let (at, hole, len) = match (value, sentence) {
            (Some(v), Some(s)) if s < v => (s, Hole::Sentence, 3),
            (Some(v), _) => (v, Hole::Value, 2),
            (None, Some(s)) => (s, Hole::Sentence, 3),
            (None, None) => break,
        };
        literals.push(&rest[..at]);
        holes.push(hole);
        rest = &rest[at + len..];
    }
    literals.push(rest);
    (literals, holes)
}

/// An action or field code (`client.list`, `valid_until`): shown as it is.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
}

fn by_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::FORBIDDEN => "无权执行此操作。",
        StatusCode::NOT_FOUND => "未找到要操作的记录。",
        StatusCode::CONFLICT => "与已有记录冲突，请刷新后重试。",
        StatusCode::PRECONDITION_FAILED | StatusCode::PRECONDITION_REQUIRED => {
            "记录已被他人修改，请刷新后重新操作。"
        }
        StatusCode::SERVICE_UNAVAILABLE => "服务暂时不可用，请稍后再试。",
        s if s.is_server_error() => "内部错误，请稍后再试。",
        _ => "输入有误，请检查后重试。",
    }
}

/// Whole sentences.
const SENTENCES: &[(&str, &str)] = &[
    // Upstream providers (services::federation::settings, config::upstream).
    (
        "must be an https URL (http only with allow_insecure_redirects, for development)",
        "必须是 https 地址（仅在开发用的 allow_insecure_redirects 开启时可用 http）",
    ),
    (
        "2 or 3: a number asserted at level 1 is not verified",
        "只能是 2 或 3：一级断言的身份号码未经核验",
    ),
    // Enterprise bindings (services::proofing::orgs).
    ("the binding is not active", "该企业绑定不处于有效状态"),
    ("no such binding", "未找到该企业绑定"),
    (
        "only a suspension the registry's answer made can be lifted",
        "只能解除因登记机关答复而暂停的绑定",
    ),
    (
        "the registry reported this organisation gone, revoked or cancelled: only a super admin changes its status",
        "登记机关已答复该企业不存在、被吊销或已注销：只有超级管理员可以更改其状态",
    ),
    (
        "another binding of this organisation is active",
        "该企业已有其他有效绑定",
    ),
    // Kiosk (device grant) apps.
    (
        "session_ttl is 60 to 86400 seconds, or null",
        "session_ttl 为 60 到 86400 秒，或 null",
    ),
    // Persons, phones, identity numbers.
    (
        "a mainland China mobile number must have 11 digits",
        "中国大陆手机号码应为 11 位数字",
    ),
    (
        "a phone number may contain only digits, spaces, hyphens and a leading +",
        "手机号码只能包含数字、空格、连字符和开头的 +",
    ),
    (
        "a resident identity number must be 17 digits followed by a digit or the letter X",
        "居民身份号码应为 17 位数字加 1 位数字或字母 X",
    ),
    (
        "the birth date in the resident identity number is not a valid date",
        "居民身份号码中的出生日期不是有效日期",
    ),
    (
        "a unified social credit code must have 18 characters",
        "统一社会信用代码应为 18 位",
    ),
    (
        "not a mainland China mobile number: expected 11 digits starting with 13 to 19, optionally preceded by +86",
        "不是中国大陆手机号码：应为以 13 至 19 开头的 11 位数字，可带前缀 +86",
    ),
    (
        "15-digit resident identity numbers are no longer accepted; please enter your 18-digit resident identity number",
        "15 位居民身份号码已停止使用，请填写 18 位居民身份号码",
    ),
    (
        "an e-licence identifier has type code, issuer code, serial, version and check, separated by dots",
        "电子证照标识由类型代码、签发机构代码、顺序号、版本号和校验位组成，以点分隔",
    ),
    (
        "holder.code_type must be 111 (resident ID number) or 001 (credit code) and match the licence type",
        "holder.code_type 应为 111（居民身份号码）或 001（统一社会信用代码），并与证照类型相符",
    ),
    ("a name of 1 to 100 characters", "姓名应为 1 到 100 个字符"),
    (
        "a name of 1 to 100 characters is required",
        "请填写 1 到 100 个字符的姓名",
    ),
    (
        "a name of 1 to 200 characters is required",
        "请填写 1 到 200 个字符的名称",
    ),
    ("a new phone number", "请填写新的手机号码"),
    ("a person with this phone", "使用该手机号码的人员"),
    (
        "a person with this resident ID number or phone already exists",
        "已有使用该居民身份号码或手机号码的人员",
    ),
    (
        "this password is too common (it appears in lists of breached passwords); choose another",
        "该密码过于常见（出现在已泄露密码列表中），请换一个",
    ),
    (
        "give exactly one of id_number, phone or name",
        "请只填写身份号码、手机号码或姓名中的一项",
    ),
    ("only for verify", "仅用于实名核验"),
    ("only for reset-password", "仅用于重置密码"),
    ("unknown action", "未知的操作"),
    ("not allowed", "无权执行此操作"),
    ("cannot change", "不能修改"),
    (
        "the counter verifies with the resident identity card (idcard)",
        "柜台核验须使用居民身份证（idcard）",
    ),
    ("min_acr is 1 or 2", "min_acr 只能是 1 或 2"),
    (
        "too many password checks are waiting; try again shortly",
        "等待校验的密码过多，请稍后再试",
    ),
    // Organisations and representation.
    (
        "an organisation name of 1 to 200 characters is required",
        "请填写 1 到 200 个字符的组织名称",
    ),
    (
        "an organisation with this credit code already exists",
        "已有使用该统一社会信用代码的组织",
    ),
    ("at most 64 characters", "最多 64 个字符"),
    (
        "status is active or inactive",
        "状态只能是 active（有效）或 inactive（无效）",
    ),
    (
        "this code is valid as it is; only codes failing the check character are allow-listed",
        "该代码本身有效；只有校验码不符的代码才需要加入允许名单",
    ),
    (
        "role is legal_representative, manager or agent",
        "角色只能是法定代表人、管理员或经办人",
    ),
    (
        "matters is \"all\" or a list of matter codes",
        "事项只能是“all”（全部）或事项代码列表",
    ),
    (
        "matters must be 'all' or a non-empty list of matter codes",
        "事项只能是“all”（全部）或非空的事项代码列表",
    ),
    ("valid_until must be after valid_from", "有效期止必须晚于有效期起"),
    ("dates are written YYYY-MM-DD", "日期格式为 YYYY-MM-DD"),
    ("unknown role", "未知的角色"),
    (
        "a revoked representation cannot be changed",
        "已撤销的代表关系不能修改",
    ),
    ("already revoked", "已撤销"),
    ("only agents can be appointed this way", "此方式只能指定经办人"),
    ("only managers can be appointed this way", "此方式只能指定管理员"),
    (
        "only the legal representative appoints managers, within their own authority",
        "只有法定代表人可以在其权限范围内指定管理员",
    ),
    ("an appointer does not appoint themself", "指定人不能指定自己"),
    ("an agent may not appoint anyone", "经办人不能指定他人"),
    (
        "nobody records a representation for themself",
        "任何人都不能为自己登记代表关系",
    ),
    (
        "a counter clerk records only an agent appointed by a legal representative or manager (appointed_by)",
        "柜台人员只能登记由法定代表人或管理员指定的经办人（须填写指定人）",
    ),
    (
        "the appointer does not represent this organisation",
        "指定人不代表该组织",
    ),
    (
        "an agent cannot get matters the appointer does not hold",
        "经办人不能获得指定人没有的事项",
    ),
    (
        "an agent's appointment cannot outlast the appointer's",
        "经办人的授权期限不能超过指定人的期限",
    ),
    (
        "an appointed agent stays an agent; the registry's record makes a manager",
        "被指定的经办人仍是经办人；管理员须由登记机关的记录产生",
    ),
    (
        "an agent cannot get matters or time the appointer does not hold",
        "经办人不能获得指定人没有的事项或期限",
    ),
    ("representation.create", "登记代表关系"),
    // Apps.
    (
        "client_secret_basic, client_secret_post or private_key_jwt",
        "只能是 client_secret_basic、client_secret_post 或 private_key_jwt",
    ),
    (
        "subject_type is pairwise or public",
        "subject_type 只能是 pairwise 或 public",
    ),
    ("only a super admin may change this", "只有超级管理员可以修改此项"),
    (
        "this app has no secret: rotate one first, or keep private_key_jwt",
        "该应用没有密钥：请先生成密钥，或继续使用 private_key_jwt",
    ),
    (
        "a code-flow client needs a redirect URI",
        "授权码模式的应用需要回调地址",
    ),
    (
        "an app has jwks or jwks_uri, never both (set the other to null)",
        "应用只能有 jwks 或 jwks_uri 之一（请把另一项设为 null）",
    ),
    (
        "private_key_jwt needs a JWKS or a JWKS URI",
        "private_key_jwt 需要 JWKS 或 JWKS 地址",
    ),
    ("the JWKS has no keys", "JWKS 中没有密钥"),
    (
        "the JWKS holds a private key; register public keys only",
        "JWKS 中含有私钥；只能登记公钥",
    ),
    (
        "the admin console's own client is kept by yunid and cannot be changed here",
        "管理控制台自身的应用由 yunid 维护，不能在此修改",
    ),
    ("note is at most 200 characters", "备注最多 200 个字符"),
    ("department is at most 100 characters", "部门最多 100 个字符"),
    // E-licences.
    (
        "a type code is the defining authority's credit code plus 3 digits",
        "类型代码为定义机构的统一社会信用代码加 3 位数字",
    ),
    (
        "holder_kind is person or org",
        "持证主体类型只能是 person（个人）或 org（组织）",
    ),
    ("name must not be empty", "名称不能为空"),
    (
        "status must be one of 01, 02, 03, 04, 05, 07, 99",
        "状态只能是 01、02、03、04、05、07、99 之一",
    ),
    ("no licence with this identifier", "没有该标识的电子证照"),
    ("no such client", "没有该应用"),
    (
        "no person or organisation with this holder code is registered",
        "没有以该持证主体代码登记的个人或组织",
    ),
    (
        "type_code does not match the identifier's type code",
        "type_code 与证照标识中的类型代码不一致",
    ),
    (
        "area_code must be a 6-digit GB/T 2260 code",
        "area_code 应为 6 位 GB/T 2260 行政区划代码",
    ),
    (
        "an e-licence identifier starts with 1.2.156.3005.2.",
        "电子证照标识以 1.2.156.3005.2. 开头",
    ),
    (
        "the type code must be the defining authority's credit code followed by 3 digits",
        "类型代码应为定义机构的统一社会信用代码加 3 位数字",
    ),
    (
        "the issuer code must be the issuing authority's unified social credit code",
        "签发机构代码应为签发机构的统一社会信用代码",
    ),
    (
        "the serial must be 1 to 32 letters or digits",
        "顺序号应为 1 到 32 位字母或数字",
    ),
    ("the version must be 3 digits", "版本号应为 3 位数字"),
    // What a refusal names.
    ("person", "人员"),
    ("organisation", "组织"),
    ("representation", "代表关系"),
    ("client", "应用"),
    ("app", "应用"),
    ("licence", "电子证照"),
    ("licence type", "电子证照类型"),
    ("registration token", "注册令牌"),
    // The API itself.
    (
        "send If-Match with the ETag of the version this edit is based on",
        "请随请求发送所修改版本的 ETag（If-Match）",
    ),
    (
        "the resource changed since it was read; read it again and reapply the edit",
        "记录在读取后已被修改，请重新读取后再修改",
    ),
    ("the request body is too large", "请求内容过大"),
    (
        "the database cannot be reached; try again shortly",
        "数据库暂时无法访问，请稍后再试",
    ),
    ("internal error", "内部错误，请稍后再试"),
];

/// Sentences that carry a value: `{}` is shown as it is, `{t}` is a sentence translated in turn (or a
/// code, shown as it is).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "not allowed: {} ({}: super admins only)",
        "无权执行此操作（{}，{}）：仅限超级管理员",
    ),
    (
        "not allowed ({}: super admins only)",
        "无权执行此操作（{}）：仅限超级管理员",
    ),
    ("not allowed: {t}", "不允许：{t}"),
    ("not allowed to {}", "无权执行此操作（{}）"),
    ("invalid: {t}", "无效：{t}"),
    (
        "invalid unified social credit code: {t}",
        "统一社会信用代码无效：{t}",
    ),
    ("invalid resident ID number: {t}", "居民身份号码无效：{t}"),
    ("invalid phone number: {t}", "手机号码无效：{t}"),
    ("invalid token: {t}", "令牌无效：{t}"),
    ("no such {t}", "未找到该{t}"),
    ("{t} already exists", "该{t}已存在"),
    ("{} cannot be granted here", "{} 不能在此授予"),
    (
        "{} is not in the licence type catalogue",
        "{} 不在电子证照类型目录中",
    ),
    (
        "type_code {} is not in the licence type catalogue",
        "type_code {} 不在电子证照类型目录中",
    ),
    ("identifier: {t}", "证照标识：{t}"),
    ("holder.code: {t}", "持证主体代码：{t}"),
    ("issuer.code: {t}", "签发机构代码：{t}"),
    ("{} must not be empty", "{} 不能为空"),
    ("max_uses is 1 to {}", "max_uses 取值为 1 到 {}"),
    (
        "NUL characters are not accepted in the {}",
        "请求中不能含有 NUL 字符（{}）",
    ),
    (
        "a resident identity number must have 18 characters, found {}",
        "居民身份号码应为 18 位，实际为 {} 位",
    ),
    (
        "invalid character {} at position {} of the unified social credit code",
        "统一社会信用代码第 {} 位的字符 {} 无效",
    ),
    (
        "the check character of the unified social credit code is {} but should be {}; please check the code for typing mistakes",
        "统一社会信用代码的校验码为 {}，应为 {}；请检查是否输入有误",
    ),
    (
        "the check character of the resident identity number is {} but should be {}; please check the number for typing mistakes",
        "居民身份号码的校验码为 {}，应为 {}；请检查是否输入有误",
    ),
    ("expires_in is 60 to {} seconds", "expires_in 取值为 60 到 {} 秒"),
    ("unsupported grant type {}", "不支持的授权类型 {}"),
    ("{} is not a scope", "{} 不是有效的授权范围"),
    ("{} is not a matter code", "{} 不是有效的事项代码"),
    (
        "the check character is {} but should be {}",
        "校验码为 {}，应为 {}",
    ),
    (
        "the password must have at least {} and at most {} characters",
        "密码应为 {} 到 {} 个字符",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sentences_and_templates_read_in_chinese_and_english_stays_as_it_is() {
        let s = StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            detail(Lang::Zh, s, "valid_until must be after valid_from"),
            "有效期止必须晚于有效期起"
        );
        assert_eq!(
            detail(
                Lang::Zh,
                StatusCode::FORBIDDEN,
                "not allowed: an agent may not appoint anyone"
            ),
            "不允许：经办人不能指定他人"
        );
        assert_eq!(
            detail(Lang::Zh, StatusCode::FORBIDDEN, "not allowed: client.list"),
            "不允许：client.list"
        );
        assert_eq!(
            detail(
                Lang::Zh,
                s,
                "a resident identity number must have 18 characters, found 17"
            ),
            "居民身份号码应为 18 位，实际为 17 位"
        );
        assert_eq!(
            detail(
                Lang::Zh,
                s,
                "invalid unified social credit code: a unified social credit code must have 18 characters"
            ),
            "统一社会信用代码无效：统一社会信用代码应为 18 位"
        );
        assert_eq!(detail(Lang::En, s, "already revoked"), "already revoked");
    }

    #[test]
    fn an_unknown_sentence_shows_no_english_on_a_chinese_page() {
        let shown = detail(Lang::Zh, StatusCode::CONFLICT, "something nobody wrote yet");
        assert_eq!(shown, "与已有记录冲突，请刷新后重试。");
        // A template whose inner sentence is unknown is not half translated.
        let shown = detail(Lang::Zh, StatusCode::FORBIDDEN, "not allowed: some new rule here");
        assert_eq!(shown, "无权执行此操作。");
    }

    /// Every fixed sentence the admin API and the rules it calls can answer with, found in the source
    /// where they are written, has its Chinese: a new one without fails here.
    #[test]
    fn every_sentence_the_admin_api_writes_has_its_chinese() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for dir in [
            "http/admin",
            "identity",
            "services/registration",
            "services/admin",
        ] {
            collect(&root.join(dir), &mut files);
        }
        for file in [
            "services/admin.rs",
            "services/identity.rs",
            "services/registry.rs",
            "services/licence.rs",
        ] {
            if root.join(file).exists() {
                files.push(root.join(file));
            }
        }
        assert!(
            files.len() > 10,
            "the admin sources moved: update this test ({files:?})"
        );
        let mut missing = Vec::new();
        let mut seen = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for sentence in sentences_in(&text) {
                seen += 1;
                let known = zh(&sentence).is_some()
                    || TEMPLATES
                        .iter()
                        .any(|(t, _)| normalise(t) == normalise(&sentence));
                if !known {
                    missing.push(format!("{}: {sentence}", file.display()));
                }
            }
        }
        assert!(
            seen > 60,
            "found only {seen} sentences: the scanner no longer sees them"
        );
        assert!(
            missing.is_empty(),
            "admin API sentences without Chinese:\n{}",
            missing.join("\n")
        );
    }

    fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("problem_text.rs") {
                out.push(path);
            }
        }
    }

    /// Placeholders of any spelling (`{0}`, `{code}`, `{found:?}`, `{t}`) as one `{}`.
    fn normalise(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '{' {
                let inner: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let _ = inner;
                out.push_str("{}");
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The string literals that are problem details or domain error sentences: the last literal of a
    /// `Problem::field(` / `Problem::new(` call, `#[error("…")]`, `Forbidden(` / `Invalid(` rules and
    /// `Err(("field", "…"` refusals.
    fn sentences_in(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for opener in [
            "Problem::field(",
            "Problem::new(",
            "#[error(",
            "Forbidden(",
            "Invalid(",
            "Err((",
        ] {
            let mut from = 0;
            while let Some(at) = text[from..].find(opener) {
                let start = from + at + opener.len();
                from = start;
                let literals = literals_of_call(&text[start..]);
                let pick = match opener {
                    "Err((" => literals.get(1),
                    // A title and a detail: the detail (a detail that is not a literal is found where
                    // it is written).
                    "Problem::new(" if literals.len() < 2 => None,
                    _ => literals.last(),
                };
                if let Some(s) = pick.filter(|s| s.contains(' ') && !s.starts_with("{}:")) {
                    out.push(s.replace("\\\"", "\""));
                }
            }
        }
        out
    }

    /// The plain string literals directly inside the call that starts here (up to its closing paren);
    /// a literal inside `format!(…)` counts too.
    fn literals_of_call(text: &str) -> Vec<String> {
        let bytes = text.as_bytes();
        let (mut depth, mut i, mut out) = (1, 0, Vec::new());
        while i < bytes.len() && depth > 0 {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'"' => {
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j] != b'"' {
                        j += if bytes[j] == b'\\' { 2 } else { 1 };
                    }
                    out.push(text[i + 1..j].to_owned());
                    i = j;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }
}
