//! Server-rendered pages. Every dynamic value goes through [`esc`]; no inline script except by nonce.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,'PingFang SC','Microsoft YaHei',sans-serif;background:#f4f6f9;margin:0}\
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:1rem 0 .3rem}\
input[type=text],input[type=password],input[type=tel]{width:100%;padding:.6rem;box-sizing:border-box;font-size:1rem}\
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;cursor:pointer}\
.error{color:#b00020;background:#fdecea;padding:.6rem;border-radius:4px}ul{padding-left:1.2rem}";

pub fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · 统一身份认证</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body><main>{body}</main></body></html>",
        title = esc(title),
    ))
}

pub fn stylesheet() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
}

pub fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>无法继续 / Cannot continue</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p>请返回您来自的应用重新开始。Please return to the application and start again.</p>",
        esc(message)
    );
    (status, layout("错误", &body)).into_response()
}

pub struct LoginForm<'a> {
    pub req: Option<&'a str>,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub client_name: Option<&'a str>,
}

pub fn login(f: &LoginForm<'_>) -> Html<String> {
    let error = f
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let for_app = f
        .client_name
        .map(|n| format!("<p>登录后将返回 <strong>{}</strong></p>", esc(n)))
        .unwrap_or_default();
    let req = f
        .req
        .map(|r| format!("<input type=\"hidden\" name=\"req\" value=\"{}\">", esc(r)))
        .unwrap_or_default();
    let body = format!(
        "<h1>登录</h1>{for_app}{error}\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{req}\
         <label for=\"username\">身份证号或手机号</label>\
         <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{username}\">\
         <label for=\"password\">密码</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">登录</button></form>",
        csrf = esc(f.csrf),
        username = esc(f.username),
    );
    layout("登录", &body)
}

pub struct ConsentForm<'a> {
    pub req: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub person_name: &'a str,
    pub scopes: &'a [String],
}

fn scope_text(scope: &str) -> &'static str {
    match scope {
        "openid" => "您的账号标识（每个应用各不相同）",
        "profile" => "姓名、出生日期、性别",
        "phone" => "手机号码",
        "offline_access" => "在您离开后继续访问上述信息",
        "identity" => "身份证号码和实名认证等级",
        "org" => "您代表的企业或组织（名称、统一社会信用代码、您的身份）",
        _ => "其他信息",
    }
}

pub fn consent(f: &ConsentForm<'_>) -> Html<String> {
    let items: String = f
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", esc(scope_text(s))))
        .collect();
    let body = format!(
        "<h1>授权确认</h1><p>{person}，<strong>{client}</strong> 请求获取以下信息：</p><ul>{items}</ul>\
         <form method=\"post\" action=\"/consent\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">同意</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">拒绝</button></form>",
        person = esc(f.person_name),
        client = esc(f.client_name),
        csrf = esc(f.csrf),
        req = esc(f.req),
    );
    layout("授权确认", &body)
}

pub struct ActChoice {
    pub value: String,
    pub org_name: String,
    pub credit_code: String,
    pub role: &'static str,
}

fn role_text(role: &str) -> &'static str {
    match role {
        "legal_representative" => "法定代表人",
        "manager" => "管理员",
        _ => "经办人",
    }
}

pub fn act_as(
    req: &str,
    csrf: &str,
    person_name: &str,
    client_name: &str,
    choices: &[ActChoice],
) -> Html<String> {
    let options: String = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "<p><input type=\"radio\" id=\"act{i}\" name=\"acting\" value=\"{value}\">\
                 <label for=\"act{i}\" style=\"display:inline\">{org}（{code}，{role}）</label></p>",
                value = esc(&c.value),
                org = esc(&c.org_name),
                code = esc(&c.credit_code),
                role = role_text(c.role),
            )
        })
        .collect();
    let body = format!(
        "<h1>选择办事身份</h1><p>{person}，您要以什么身份使用 <strong>{client}</strong>？</p>\
         <form method=\"post\" action=\"/act-as\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <p><input type=\"radio\" id=\"self\" name=\"acting\" value=\"\" checked>\
         <label for=\"self\" style=\"display:inline\">本人（个人办事）</label></p>{options}\
         <button type=\"submit\">继续</button></form>",
        person = esc(person_name),
        client = esc(client_name),
        csrf = esc(csrf),
        req = esc(req),
    );
    layout("选择办事身份", &body)
}

/// OAuth 2.0 Form Post Response Mode: an auto-submitting form to the client (script allowed by nonce).
pub fn form_post(action: &str, fields: &[(&str, String)], nonce: &str) -> Html<String> {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>正在返回应用</title></head>\
         <body><form method=\"post\" action=\"{action}\">{inputs}<noscript><button type=\"submit\">继续</button>\
         </noscript></form><script nonce=\"{nonce}\">document.forms[0].submit()</script></body></html>",
        action = esc(action),
        nonce = esc(nonce),
    ))
}

pub fn logout_confirm(csrf: &str, hidden: &[(&str, String)]) -> Html<String> {
    let inputs: String = hidden
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
        .collect();
    let body = format!(
        "<h1>退出登录</h1><p>确定要退出统一身份认证吗？您在所有应用的登录都将结束。</p>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{inputs}\
         <button type=\"submit\" name=\"confirm\" value=\"yes\">退出</button></form>",
        csrf = esc(csrf),
    );
    layout("退出登录", &body)
}

pub struct RegisterForm<'a> {
    pub csrf: &'a str,
    pub id_number: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub error: Option<&'a str>,
}

pub fn register(f: &RegisterForm<'_>) -> Html<String> {
    let error = f
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>注册</h1>{error}<form method=\"post\" action=\"/register\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"id_number\">居民身份证号码</label>\
         <input type=\"text\" id=\"id_number\" name=\"id_number\" autocomplete=\"off\" required maxlength=\"18\" value=\"{id}\">\
         <label for=\"name\">姓名</label>\
         <input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"name\" required value=\"{name}\">\
         <label for=\"phone\">手机号码</label>\
         <input type=\"tel\" id=\"phone\" name=\"phone\" autocomplete=\"tel\" required value=\"{phone}\">\
         <label for=\"password\">密码（至少 8 位）</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required minlength=\"8\">\
         <button type=\"submit\">注册</button></form>",
        csrf = esc(f.csrf),
        id = esc(f.id_number),
        name = esc(f.name),
        phone = esc(f.phone),
    );
    layout("注册", &body)
}

pub fn registered() -> Html<String> {
    layout(
        "注册成功",
        "<h1>注册成功</h1><p>您的账号已创建（实名等级 1）。<a href=\"/login\">登录</a></p>",
    )
}

pub fn logged_out() -> Html<String> {
    layout("已退出", "<h1>您已退出登录</h1><p>You have been logged out.</p>")
}

pub fn home(who: Option<&str>) -> Html<String> {
    let body = match who {
        Some(name) => format!(
            "<h1>统一身份认证</h1><p>您已登录：<strong>{}</strong></p><p><a href=\"/logout\">退出登录</a></p>",
            esc(name)
        ),
        None => "<h1>统一身份认证</h1><p><a href=\"/login\">登录</a></p>".to_owned(),
    };
    layout("统一身份认证", &body)
}
