//! The peer's (node oidc-provider's) own pages, from its development interactions: one form per
//! prompt, posted back to `/interaction/<uid>` with a hidden `prompt` field (`login`, then `consent`).
//! Everything else (authorization URL, redirects, token endpoint) is shared with yunid's flows.

use crate::browse::{Jar, Landed, Req, Res, authorize_url, exchange, field, navigate, page_error};
use crate::server::{Bench, PASSWORD};

/// Where a page's form posts to.
fn form_action(body: &str) -> Option<String> {
    let needle = "action=\"";
    let start = body.find(needle)? + needle.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].replace("&amp;", "&").replace("&#x2F;", "/"))
}

/// The prompt a page asks for (`login` or `consent`), if it is an interaction form.
fn prompt(body: &str) -> Option<String> {
    field(body, "prompt")
}

/// Posts an interaction form and follows the redirects back through `/auth`.
async fn submit(bench: &Bench, req: &mut Req<'_>, body: &str, form: &[(&str, &str)]) -> Res<Landed> {
    let action = form_action(body).ok_or("interaction page without a form")?;
    let action = if action.starts_with('/') {
        format!("{}{action}", bench.base)
    } else {
        action
    };
    let res = req.post(&action, form).await?;
    if res.status != 303 && res.status != 302 {
        return Err(page_error(&format!("POST {action}"), res.status, &res.body));
    }
    navigate(bench, req, res, action).await
}

/// Answers a consent page (the only decision the dev interactions offer is to allow); returns the code.
pub(super) async fn through_consent(
    bench: &Bench,
    req: &mut Req<'_>,
    landed: Landed,
    consents: &mut u64,
) -> Res<String> {
    match landed {
        Landed::Code(c) => Ok(c),
        Landed::Page { status, body, .. } if prompt(&body).as_deref() == Some("consent") => {
            *consents += 1;
            match submit(bench, req, &body, &[("prompt", "consent")]).await? {
                Landed::Code(c) => Ok(c),
                Landed::Page { status, body, .. } => Err(page_error("after consent", status, &body)),
            }
            .map_err(|e| format!("{e} (consent page was HTTP {status})"))
        }
        Landed::Page { status, body, .. } => Err(page_error("wanted a code or consent", status, &body)),
    }
}

/// A fresh browser signs in at the app: authorize → login page → POST (any password is accepted) →
/// consent (unless the peer remembers this person's grant) → code → token. Returns the tokens and
/// the browser's cookies.
pub async fn password_flow(
    bench: &Bench,
    http: &reqwest::Client,
    username: &str,
    consents: &mut u64,
) -> Res<((String, Option<String>), Jar)> {
    let mut jar = Jar::default();
    let (url, verifier) = authorize_url(bench);
    let code = {
        let mut req = Req {
            http,
            jar: Some(&mut jar),
            addr: None,
        };
        let first = req.get(&url).await?;
        let Landed::Page { status, body, .. } = navigate(bench, &mut req, first, url).await? else {
            return Err("code without login (fresh browser)".into());
        };
        if prompt(&body).as_deref() != Some("login") {
            return Err(page_error("wanted the login page", status, &body));
        }
        let form = [("prompt", "login"), ("login", username), ("password", PASSWORD)];
        let landed = submit(bench, &mut req, &body, &form).await?;
        through_consent(bench, &mut req, landed, consents).await?
    };
    let tokens = exchange(bench, http, &code, &verifier).await?;
    Ok((tokens, jar))
}

/// A client-credentials token the peer can introspect: it refuses to introspect its JWT access
/// tokens, so this one is asked for the resource whose tokens are opaque (see provider.mjs).
pub async fn introspectable_token(bench: &Bench, http: &reqwest::Client) -> Res<String> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let form = [
        ("grant_type", "client_credentials"),
        ("resource", OPAQUE_RESOURCE),
    ];
    let r = req
        .send(
            reqwest::Method::POST,
            &bench.endpoints.token,
            Some(&form),
            Some(&bench.cc),
            None,
        )
        .await?;
    if r.status != 200 {
        return Err(page_error(
            "client_credentials (opaque resource)",
            r.status,
            &r.body,
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&r.body).map_err(|e| format!("token: not JSON ({e}): {}", r.body))?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("token: no access_token: {}", r.body))
}

/// The peer's resource server whose access tokens are opaque (provider.mjs).
const OPAQUE_RESOURCE: &str = "urn:yunid:bench:opaque";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_page_names_its_prompt_and_where_it_posts() {
        let page = r#"<form autocomplete="off" action="http://127.0.0.1:3000/interaction/Ab-9_x" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login"></form>"#;
        assert_eq!(prompt(page).as_deref(), Some("login"));
        assert_eq!(
            form_action(page).as_deref(),
            Some("http://127.0.0.1:3000/interaction/Ab-9_x")
        );
    }

    #[test]
    fn a_page_without_a_form_is_no_interaction() {
        assert_eq!(prompt("<p>oops</p>"), None);
        assert_eq!(form_action("<p>oops</p>"), None);
    }
}
