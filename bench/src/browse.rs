//! A browser for the scenarios: a cookie jar, requests that never follow redirects, and the pages every
//! flow goes through (authorization URL, redirects, consent, the token endpoint). Shared by yunid's
//! flows (`flows`) and the peer's (`flows::peer`).

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::server::{Bench, Creds, REDIRECT_URI};

pub type Res<T> = Result<T, String>;

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
