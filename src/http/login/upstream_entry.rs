//! What the login page shows and does about upstream providers, apart from the upstream sign-in itself
//! (`login::upstream`): the links and their logos, and the link offer a sign-in here may answer.

use axum::response::Response;
use axum_extra::extract::CookieJar;

use crate::app::App;
use crate::http::{cookies, page};

/// The login page's links to the upstreams: (href, display name, logo URL).
pub fn links(
    upstreams: &[(String, String, Option<String>)],
    csrf: &str,
    req: Option<&str>,
) -> Vec<(String, String, Option<String>)> {
    upstreams
        .iter()
        .map(|(id, name, logo)| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("csrf", csrf);
            if let Some(r) = req {
                q.append_pair("req", r);
            }
            let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            (
                format!("/login/upstream/{id}?{}", q.finish()),
                name.clone(),
                logo.clone(),
            )
        })
        .collect()
}

/// Lets the login page show the upstreams' logos: their origins are added to the page's `img-src`
/// (the policy otherwise allows images from yunid only).
pub fn allow_logos(mut res: Response, upstreams: &[(String, String, Option<String>)]) -> Response {
    let origins: Vec<String> = upstreams
        .iter()
        .filter_map(|(_, _, logo)| logo.as_deref())
        .filter_map(|l| url::Url::parse(l).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .map(|u| u.origin().ascii_serialization())
        .collect();
    if origins.is_empty() {
        return res;
    }
    let header = axum::http::header::CONTENT_SECURITY_POLICY;
    let current = res
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(page::CSP)
        .to_owned();
    let csp = format!("{current}; img-src 'self' {}", origins.join(" "));
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header, v);
    }
    res
}

/// After any successful yunid sign-in by `method`: true when this browser holds a link offer that the
/// person is to be asked about (a credential entered here: password, SMS code, passkey). After any
/// other sign-in (a scan, an upstream) the offer is dropped, never accepted.
pub fn after_sign_in(app: &App, jar: CookieJar, method: &str) -> (CookieJar, bool) {
    if jar.get(&cookies::link_offer_name(app)).is_none() {
        return (jar, false);
    }
    if matches!(method, "pwd" | "sms" | "passkey") {
        return (jar, true);
    }
    (cookies::drop_offer(app, jar), false)
}

/// The confirmation page's path (the pending request, if any, goes along).
pub fn confirm_path(req: Option<&str>) -> String {
    match req {
        Some(r) => format!(
            "/login/upstream/link?req={}",
            form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ),
        None => "/login/upstream/link".into(),
    }
}
