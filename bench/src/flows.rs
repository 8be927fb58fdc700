//! HTTP building blocks of the scenarios: a cookie jar, requests that never follow redirects, the
//! pages a person goes through (login, SMS code, consent), and the SMS webhook inbox. The peer's own
//! login and consent pages are in `peer`.

pub mod peer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::server::{Bench, Creds, PASSWORD, REDIRECT_URI};

pub type Res<T> = Result<T, String>;

/// The SMS provider's webhook: remembers the latest code per recipient (E.164).
pub struct Inbox {
    pub url: String,
    codes: Mutex<HashMap<String, String>>,
    /// Woken when a code arrives (yunid sends SMS from its outbox, after the page has answered).
    arrived: tokio::sync::Notify,
}

async fn receive(State(inbox): State<Arc<Inbox>>, body: axum::body::Bytes) -> StatusCode {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    match (v["to"].as_str(), v["code"].as_str()) {
        // A notice (no code) leaves the last code where it is.
        (Some(_), Some("")) => StatusCode::OK,
        (Some(to), Some(code)) => {
            if let Ok(mut m) = inbox.codes.lock() {
                m.insert(to.to_owned(), code.to_owned());
            }
            inbox.arrived.notify_waiters();
            StatusCode::OK
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

impl Inbox {
    pub async fn start() -> anyhow::Result<Arc<Inbox>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inbox = Arc::new(Inbox {
            url: format!("http://{addr}/sms"),
            codes: Mutex::new(HashMap::new()),
            arrived: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/sms", post(receive))
            .with_state(inbox.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(inbox)
    }

    /// The code last sent to `e164`, taken out of the inbox.
    pub fn take(&self, e164: &str) -> Option<String> {
        self.codes.lock().ok()?.remove(e164)
    }

    /// The next code sent to `e164`: waits (up to 10 s) for it, since yunid's outbox delivers it after
    /// the page that asked for it has answered.
    pub async fn next(&self, e164: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(code) = self.take(e164) {
                return Some(code);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.take(e164);
            }
        }
    }
}

/// A browser's cookies for one origin (name → value).
#[derive(Default, Clone)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn store(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let removal = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
            self.0.retain(|(k, _)| k != name);
            if !removal {
                self.0.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

pub struct Resp {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Resp {
    pub fn expect(self, status: u16, what: &str) -> Res<Resp> {
        if self.status == status {
            Ok(self)
        } else {
            let snippet: String = self.body.chars().take(200).collect();
            Err(format!(
                "{what}: HTTP {} (wanted {status}): {snippet}",
                self.status
            ))
        }
    }

    pub fn json(&self) -> Res<serde_json::Value> {
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.body))
    }
}

/// One request: optional cookies, form body and basic auth; never follows redirects.
pub struct Req<'a> {
    pub http: &'a reqwest::Client,
    pub jar: Option<&'a mut Jar>,
    /// `X-Forwarded-For` (the server trusts loopback as a proxy): a distinct client address per
    /// person, as in production, so per-address counters stay realistic.
    pub addr: Option<&'a str>,
}

impl Req<'_> {
    /// A request builder with the browser's cookies and client address.
    fn builder(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut b = self.http.request(method, url);
        if let Some(jar) = &self.jar
            && let Some(c) = jar.header()
        {
            b = b.header(COOKIE, c);
        }
        if let Some(a) = self.addr {
            b = b.header("x-forwarded-for", a);
        }
        b
    }

    /// Sends, keeps the cookies the answer sets, and reads the whole body.
    async fn execute(&mut self, b: reqwest::RequestBuilder, url: &str) -> Res<Resp> {
        let r = b.send().await.map_err(|e| format!("{url}: {e}"))?;
        if let Some(jar) = self.jar.as_deref_mut() {
            jar.store(r.headers());
        }
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = r.text().await.map_err(|e| format!("{url}: body: {e}"))?;
        Ok(Resp {
            status,
            location,
            body,
        })
    }

    pub async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        basic: Option<&Creds>,
        bearer: Option<&str>,
    ) -> Res<Resp> {
        let mut b = self.builder(method, url);
        if let Some(f) = form {
            b = b.form(f);
        }
        if let Some(c) = basic {
            b = b.basic_auth(&c.id, Some(&c.secret));
        }
        if let Some(t) = bearer {
            b = b.bearer_auth(t);
        }
        self.execute(b, url).await
    }

    /// A JSON POST as static/passkey.js sends it: the page's CSRF token in `X-CSRF-Token`.
    pub async fn post_json(&mut self, url: &str, csrf: &str, body: &serde_json::Value) -> Res<Resp> {
        let b = self
            .builder(reqwest::Method::POST, url)
            .header("x-csrf-token", csrf)
            .json(body);
        self.execute(b, url).await
    }

    pub async fn get(&mut self, url: &str) -> Res<Resp> {
        self.send(reqwest::Method::GET, url, None, None, None).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Res<Resp> {
        self.send(reqwest::Method::POST, url, Some(form), None, None)
            .await
    }
}

/// The value of a hidden field in a page.
pub fn field(body: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = body.find(&needle)? + needle.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Where a navigation ended.
pub enum Landed {
    /// A page of the provider.
    Page { url: String, status: u16, body: String },
    /// Sent back to the app with this authorization code.
    Code(String),
}

/// Follows redirects on the provider's origin until a page, or the app's redirect URI.
pub async fn navigate(bench: &Bench, req: &mut Req<'_>, first: Resp, mut url: String) -> Res<Landed> {
    let mut res = first;
    for _ in 0..10 {
        if !(300..400).contains(&res.status) {
            return Ok(Landed::Page {
                url,
                status: res.status,
                body: res.body,
            });
        }
        let loc = res.location.clone().ok_or("redirect without Location")?;
        let next = if loc.starts_with('/') {
            format!("{}{loc}", bench.base)
        } else {
            loc
        };
        if next.starts_with(REDIRECT_URI) {
            return match query_param(&next, "code") {
                Some(code) => Ok(Landed::Code(code)),
                None => Err(format!("back at the app without a code: {next}")),
            };
        }
        if !next.starts_with(&bench.base) {
            return Err(format!("redirected off the provider: {next}"));
        }
        res = req.get(&next).await?;
        url = next;
    }
    Err("redirect loop".into())
}

/// A PKCE pair and the authorization URL of the bench code-flow client.
pub fn authorize_url(bench: &Bench) -> (String, String) {
    let verifier = yunid::crypto::random_token();
    let challenge = yunid::crypto::b64url(&yunid::crypto::sha256(verifier.as_bytes()));
    let state = yunid::crypto::random_token();
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &bench.code.id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", &state[..16])
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    (format!("{}?{q}", bench.endpoints.authorize), verifier)
}

/// The token endpoint's answer to an authorization code (or a refresh): (access token, refresh token).
pub async fn token_request(
    bench: &Bench,
    http: &reqwest::Client,
    form: &[(&str, &str)],
) -> Res<(String, Option<String>)> {
    let mut req = Req {
        http,
        jar: None,
        addr: None,
    };
    let r = req
        .send(
            reqwest::Method::POST,
            &bench.endpoints.token,
            Some(form),
            Some(&bench.code),
            None,
        )
        .await?
        .expect(200, "token")?;
    let v = r.json()?;
    let at = v["access_token"].as_str().ok_or("no access_token")?.to_owned();
    Ok((at, v["refresh_token"].as_str().map(str::to_owned)))
}

pub async fn exchange(
    bench: &Bench,
    http: &reqwest::Client,
    code: &str,
    verifier: &str,
) -> Res<(String, Option<String>)> {
    token_request(
        bench,
        http,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Answers a consent page (allow) when the navigation ended on one; returns the code.
pub async fn through_consent(
    bench: &Bench,
    req: &mut Req<'_>,
    landed: Landed,
    consents: &mut u64,
) -> Res<String> {
    match landed {
        Landed::Code(c) => Ok(c),
        Landed::Page { url, status, body } if body.contains("action=\"/consent\"") => {
            *consents += 1;
            let csrf = field(&body, "csrf").ok_or("consent page without csrf")?;
            let r = field(&body, "req").ok_or("consent page without req")?;
            let url2 = format!("{}/consent", bench.base);
            let res = req
                .post(&url2, &[("csrf", &csrf), ("req", &r), ("decision", "allow")])
                .await?;
            match navigate(bench, req, res, url2).await? {
                Landed::Code(c) => Ok(c),
                Landed::Page { status, body, .. } => Err(page_error("after consent", status, &body)),
            }
            .map_err(|e| format!("{e} (consent at {url}, {status})"))
        }
        Landed::Page { status, body, .. } => Err(page_error("wanted a code or consent", status, &body)),
    }
}

pub fn page_error(what: &str, status: u16, body: &str) -> String {
    let err = body
        .find("class=\"error\"")
        .map(|i| body[i..].chars().take(160).collect::<String>())
        .unwrap_or_else(|| body.chars().take(160).collect());
    format!("{what}: HTTP {status}: {err}")
}

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
