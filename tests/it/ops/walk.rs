//! A browser and an app that talk to several nodes of one cluster: cookies kept by hand so that the same
//! ones go to whichever node is next, and every failure (a node gone) returned rather than panicking, so
//! a stream of flows can count what a kill cut off.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;

use super::CALLBACK;
use crate::common::browser::field;
use crate::common::wire;
use crate::common::{ALICE_ID, PASSWORD, TestClient, pkce};

/// A browser that keeps its cookies by hand, so that the same cookies go to whichever node is next.
pub(super) struct Visitor {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) location: Option<String>,
    pub(super) body: String,
}

impl Visitor {
    pub(super) fn new() -> Visitor {
        Visitor {
            http: crate::common::http(),
            cookies: BTreeMap::new(),
        }
    }

    pub(super) async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<Reply, String> {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let res = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.map_err(|e| format!("cut off: {e}"))?;
        Ok(Reply {
            status,
            location,
            body,
        })
    }

    pub(super) async fn get(&mut self, base: &str, path: &str) -> Result<Reply, String> {
        let req = self.http.get(format!("{base}{path}"));
        self.send(req).await
    }

    pub(super) async fn post(
        &mut self,
        base: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let req = self.http.post(format!("{base}{path}")).form(form);
        self.send(req).await
    }

    /// Goes on from `reply` (log in, consent, follow the provider's redirects) until the provider sends
    /// the browser back to the app; each request goes to the next node in `hops`. Returns the code.
    pub(super) async fn walk(
        &mut self,
        mut reply: Reply,
        hops: &mut impl Iterator<Item = String>,
    ) -> Result<String, String> {
        for _ in 0..10 {
            let next = hops.next().unwrap();
            reply = match (&reply.location, reply.status) {
                (Some(loc), s) if s.is_redirection() && loc.starts_with(CALLBACK) => {
                    let url = url::Url::parse(loc).unwrap();
                    let code = url.query_pairs().find(|(k, _)| k == "code");
                    return code.map(|(_, c)| c.into_owned()).ok_or(format!("no code: {loc}"));
                }
                (Some(loc), s) if s.is_redirection() && loc.starts_with('/') => self.get(&next, loc).await?,
                (_, StatusCode::OK) if reply.body.contains("name=\"password\"") => {
                    let csrf = field(&reply.body, "csrf").unwrap();
                    let req = field(&reply.body, "req").unwrap();
                    let form = [
                        ("csrf", csrf.as_str()),
                        ("req", &req),
                        ("username", ALICE_ID),
                        ("password", PASSWORD),
                    ];
                    self.post(&next, "/login", &form).await?
                }
                (_, StatusCode::OK) if reply.body.contains("action=\"/consent\"") => {
                    let csrf = field(&reply.body, "csrf").unwrap();
                    let req = field(&reply.body, "req").unwrap();
                    let form = [("csrf", csrf.as_str()), ("req", &req), ("decision", "allow")];
                    self.post(&next, "/consent", &form).await?
                }
                (_, status) => return Err(format!("unexpected {status}: {}", reply.body)),
            };
        }
        Err("too many steps".into())
    }
}

/// What an app holds after a completed flow.
#[derive(Debug, Clone)]
pub(super) struct Tokens {
    pub(super) access: String,
    pub(super) refresh: String,
    pub(super) sub: String,
}

pub(super) fn authorize_path(client: &TestClient, challenge: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", "openid profile offline_access")
        .append_pair("state", &yunid::crypto::random_token())
        .append_pair("nonce", &yunid::crypto::random_token())
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("/authorize?{query}")
}

pub(super) async fn token(base: &str, client: &TestClient, form: &[(&str, &str)]) -> Result<Value, String> {
    let res = crate::common::http()
        .post(format!("{base}/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| format!("cut off: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("token endpoint said {status}: {body}"));
    }
    Ok(body)
}

pub(super) async fn userinfo(base: &str, access: &str) -> Result<Value, String> {
    let res = crate::common::http()
        .get(format!("{base}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    match res.status() {
        StatusCode::OK => res.json().await.map_err(|e| e.to_string()),
        other => Err(format!("userinfo said {other}")),
    }
}

/// Redeems `code` on `redeem`, refreshes on `refresh`, asks userinfo on `info`.
pub(super) async fn finish(
    client: &TestClient,
    code: &str,
    verifier: &str,
    [redeem, refresh, info]: [&str; 3],
) -> Result<Tokens, String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ];
    let issued = token(redeem, client, &form).await?;
    let id_token = issued["id_token"].as_str().ok_or("no ID token")?;
    let old_refresh = issued["refresh_token"].as_str().ok_or("no refresh token")?;
    let refreshed = token(
        refresh,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", old_refresh)],
    )
    .await?;
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let info = userinfo(info, &access).await?;
    let (_, claims) = wire::jwt_parts(id_token);
    if info["sub"] != claims["sub"] {
        return Err(format!(
            "userinfo sub {} is not the ID token's {}",
            info["sub"], claims["sub"]
        ));
    }
    Ok(Tokens {
        access,
        refresh: refreshed["refresh_token"].as_str().unwrap().to_owned(),
        sub: claims["sub"].as_str().unwrap().to_owned(),
    })
}

/// A whole flow: provider requests rotate through `nodes` starting at `first`; the app's calls too.
pub(super) async fn flow(client: &TestClient, nodes: &[String], first: usize) -> Result<Tokens, String> {
    let mut hops = nodes.iter().cycle().skip(first).cloned();
    let (verifier, challenge) = pkce();
    let mut v = Visitor::new();
    let reply = v
        .get(&hops.next().unwrap(), &authorize_path(client, &challenge))
        .await?;
    let code = v.walk(reply, &mut hops).await?;
    let (a, b, c) = (hops.next().unwrap(), hops.next().unwrap(), hops.next().unwrap());
    finish(client, &code, &verifier, [&a, &b, &c]).await
}
