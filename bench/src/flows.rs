//! The flows a person goes through at yunid (password, SMS code, SSO, client credentials, introspection,
//! userinfo), built on the browser in `browse`. The peer's own login and consent pages are in `peer`.

pub mod peer;

pub use crate::browse::{
    Jar, Landed, Req, Res, authorize_url, exchange, field, navigate, page_error, through_consent,
    token_request,
};
use crate::server::{Bench, PASSWORD};

/// A fresh browser signs in with a password at the app: authorize → login page → POST → (consent the
/// first time) → code → token. Returns the tokens and the browser's cookies.
pub async fn password_flow(
    bench: &Bench,
    http: &reqwest::Client,
    username: &str,
    addr: &str,
    consents: &mut u64,
) -> Res<((String, Option<String>), Jar)> {
    let mut jar = Jar::default();
    let (url, verifier) = authorize_url(bench);
    let code = {
        let mut req = Req {
            http,
            jar: Some(&mut jar),
            addr: Some(addr),
        };
        let first = req.get(&url).await?;
        let Landed::Page {
            url: page_url,
            body,
            status,
        } = navigate(bench, &mut req, first, url).await?
        else {
            return Err("code without login (fresh browser)".into());
        };
        if !body.contains("name=\"password\"") {
            return Err(page_error("wanted the login page", status, &body));
        }
        let csrf = field(&body, "csrf").ok_or("login page without csrf")?;
        let r = field(&body, "req").ok_or_else(|| format!("login page without req ({page_url})"))?;
        let login = format!("{}/login", bench.base);
        let res = req
            .post(
                &login,
                &[
                    ("csrf", &csrf),
                    ("req", &r),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await?;
        if res.status != 303 && res.status != 302 {
            return Err(page_error("login POST", res.status, &res.body));
        }
        let landed = navigate(bench, &mut req, res, login).await?;
        through_consent(bench, &mut req, landed, consents).await?
    };
    let tokens = exchange(bench, http, &code, &verifier).await?;
    Ok((tokens, jar))
}

/// A fresh browser signs in with an SMS code: authorize → login page (SMS) → send → code from the
/// webhook → verify → (consent the first time) → code → token.
pub async fn sms_flow(
    bench: &Bench,
    http: &reqwest::Client,
    phone_national: &str,
    addr: &str,
    consents: &mut u64,
) -> Res<(String, Option<String>)> {
    let mut jar = Jar::default();
    let (url, verifier) = authorize_url(bench);
    let code = {
        let mut req = Req {
            http,
            jar: Some(&mut jar),
            addr: Some(addr),
        };
        let first = req.get(&url).await?;
        let Landed::Page { url: page_url, .. } = navigate(bench, &mut req, first, url).await? else {
            return Err("code without login (fresh browser)".into());
        };
        let sms_page = format!("{page_url}&method=sms");
        let page = req.get(&sms_page).await?.expect(200, "SMS login page")?;
        let csrf = field(&page.body, "csrf").ok_or("SMS page without csrf")?;
        let r = field(&page.body, "req").ok_or("SMS page without req")?;
        let sent = req
            .post(
                &format!("{}/login/sms/send", bench.base),
                &[("csrf", &csrf), ("req", &r), ("phone", phone_national)],
            )
            .await?;
        if sent.status != 200 {
            return Err(page_error("SMS send", sent.status, &sent.body));
        }
        let attempt = field(&sent.body, "attempt").ok_or("no attempt after sending")?;
        let sms_code = bench
            .inbox
            .next(&format!("+86{phone_national}"))
            .await
            .ok_or("no SMS reached the webhook")?;
        let verify = format!("{}/login/sms/verify", bench.base);
        let res = req
            .post(
                &verify,
                &[
                    ("csrf", &csrf),
                    ("req", &r),
                    ("attempt", &attempt),
                    ("code", &sms_code),
                ],
            )
            .await?;
        if res.status != 303 && res.status != 302 {
            return Err(page_error("SMS verify", res.status, &res.body));
        }
        let landed = navigate(bench, &mut req, res, verify).await?;
        through_consent(bench, &mut req, landed, consents).await?
    };
    exchange(bench, http, &code, &verifier).await
}

/// A browser with a session signs in to the app again: authorize → code (no page) → token.
pub async fn sso_flow(bench: &Bench, http: &reqwest::Client, jar: &mut Jar) -> Res<(String, Option<String>)> {
    let (url, verifier) = authorize_url(bench);
    let code = {
        let mut req = Req {
            http,
            jar: Some(jar),
            addr: None,
        };
        let first = req.get(&url).await?;
        let mut consents = 0;
        let landed = navigate(bench, &mut req, first, url).await?;
        if bench.is_peer {
            peer::through_consent(bench, &mut req, landed, &mut consents).await?
        } else {
            through_consent(bench, &mut req, landed, &mut consents).await?
        }
    };
    exchange(bench, http, &code, &verifier).await
}

/// The login page alone (no app): GET /login, POST the password, expect the redirect to /account.
pub async fn login_only(bench: &Bench, http: &reqwest::Client, username: &str, addr: &str) -> Res<()> {
    let mut jar = Jar::default();
    let mut req = Req {
        http,
        jar: Some(&mut jar),
        addr: Some(addr),
    };
    let login = format!("{}/login", bench.base);
    let page = req.get(&login).await?.expect(200, "login page")?;
    let csrf = field(&page.body, "csrf").ok_or("login page without csrf")?;
    let res = req
        .post(
            &login,
            &[("csrf", &csrf), ("username", username), ("password", PASSWORD)],
        )
        .await?;
    match (res.status, res.location.as_deref()) {
        (302 | 303, Some("/account")) => {}
        (s, _) => return Err(page_error("login POST", s, &res.body)),
    }
    if !jar.has("yunid_session") {
        return Err("no session cookie after login".into());
    }
    Ok(())
}

/// Client credentials: one access token.
pub async fn client_credentials(bench: &Bench, http: &reqwest::Client, base: &str) -> Res<String> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let r = req
        .send(
            reqwest::Method::POST,
            &format!("{base}/token"),
            Some(&[("grant_type", "client_credentials")]),
            Some(&bench.cc),
            None,
        )
        .await?
        .expect(200, "client_credentials")?;
    let v = r.json()?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no access_token".into())
}

pub async fn introspect(bench: &Bench, http: &reqwest::Client, token: &str) -> Res<()> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let r = req
        .send(
            reqwest::Method::POST,
            &bench.endpoints.introspect,
            Some(&[("token", token)]),
            Some(&bench.cc),
            None,
        )
        .await?
        .expect(200, "introspect")?;
    match r.json()?["active"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(format!("token not active: {}", r.body)),
    }
}

pub async fn userinfo(bench: &Bench, http: &reqwest::Client, token: &str) -> Res<()> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let r = req
        .send(
            reqwest::Method::GET,
            &bench.endpoints.userinfo,
            None,
            None,
            Some(token),
        )
        .await?
        .expect(200, "userinfo")?;
    if r.json()?["sub"].is_string() {
        Ok(())
    } else {
        Err(format!("userinfo without sub: {}", r.body))
    }
}

pub async fn get_ok(http: &reqwest::Client, url: &str, must_contain: &str) -> Res<()> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let r = req.get(url).await?.expect(200, url)?;
    if r.body.contains(must_contain) {
        Ok(())
    } else {
        Err(format!("{url}: body lacks {must_contain}"))
    }
}
