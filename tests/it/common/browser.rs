//! A browser stand-in: keeps cookies, follows redirects on the provider's origin, fills in the login
//! and consent forms the way a person would, and stops when the provider sends it back to an app.

use std::collections::HashMap;

use reqwest::StatusCode;
use url::Url;

pub struct Browser {
    pub http: reqwest::Client,
    pub origin: String,
}

/// Where a navigation ended.
#[derive(Debug)]
pub enum Page {
    /// An HTML page on the provider (login, consent, error, logged out, …).
    Html {
        url: String,
        status: StatusCode,
        body: String,
    },
    /// Sent back to an app: a redirect to another origin.
    Left(Url),
    /// A form_post response: the fields the page would post to the app.
    FormPost {
        action: String,
        fields: HashMap<String, String>,
    },
}

impl Page {
    pub fn left(&self) -> &Url {
        match self {
            Page::Left(u) => u,
            other => panic!("expected a redirect to the app, got {other:?}"),
        }
    }

    /// Query parameters of the redirect back to the app.
    pub fn params(&self) -> HashMap<String, String> {
        self.left().query_pairs().into_owned().collect()
    }

    pub fn html(&self) -> (&str, StatusCode, &str) {
        match self {
            Page::Html { url, status, body } => (url, *status, body),
            other => panic!("expected an HTML page, got {other:?}"),
        }
    }

    pub fn is_login(&self) -> bool {
        matches!(self, Page::Html { body, .. } if body.contains("name=\"password\""))
    }

    pub fn is_consent(&self) -> bool {
        matches!(self, Page::Html { body, .. } if body.contains("action=\"/consent\""))
    }
}

/// The value of a hidden field in a page.
pub fn field(body: &str, name: &str) -> Option<String> {
    let re = regex_lite::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(body)
        .map(|c| c[1].replace("&amp;", "&").replace("&#38;", "&"))
}

impl Browser {
    pub fn new(origin: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: origin.trim_end_matches('/').to_owned(),
        }
    }

    /// A browser that sends `headers` with every request (`Sec-Fetch-Site`, `X-Forwarded-For`, …).
    pub fn with_headers(origin: &str, headers: &[(&'static str, &str)]) -> Browser {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .default_headers(map)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: origin.trim_end_matches('/').to_owned(),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{}", self.origin, location)
        } else {
            location.to_owned()
        }
    }

    async fn land(&self, mut res: reqwest::Response) -> Page {
        for _ in 0..20 {
            let status = res.status();
            let url = res.url().to_string();
            if status.is_redirection() {
                let location = res.headers()["location"].to_str().unwrap().to_owned();
                let next = self.absolute(&location);
                if !next.starts_with(&self.origin) {
                    return Page::Left(Url::parse(&next).unwrap());
                }
                res = self.http.get(&next).send().await.unwrap();
                continue;
            }
            let body = res.text().await.unwrap();
            if body.contains("document.forms[0].submit()") {
                let action = regex_lite::Regex::new(r#"<form method="post" action="([^"]*)""#)
                    .unwrap()
                    .captures(&body)
                    .map(|c| c[1].replace("&amp;", "&").replace("&#38;", "&"))
                    .unwrap();
                let re = regex_lite::Regex::new(r#"name="([^"]*)" value="([^"]*)""#).unwrap();
                let fields = re
                    .captures_iter(&body)
                    .map(|c| (c[1].to_owned(), c[2].replace("&amp;", "&")))
                    .collect();
                return Page::FormPost { action, fields };
            }
            return Page::Html { url, status, body };
        }
        panic!("redirect loop");
    }

    pub async fn get(&self, url: &str) -> Page {
        let res = self.http.get(self.absolute(url)).send().await.unwrap();
        self.land(res).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(self.absolute(url))
            .form(form)
            .send()
            .await
            .unwrap();
        self.land(res).await
    }

    /// Submits the login form on `page`.
    pub async fn login(&self, page: &Page, username: &str, password: &str) -> Page {
        let (_, _, body) = page.html();
        assert!(page.is_login(), "not a login page: {body}");
        let csrf = field(body, "csrf").expect("csrf field");
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ];
        let req = field(body, "req");
        if let Some(r) = &req {
            form.push(("req", r.as_str()));
        }
        self.post("/login", &form).await
    }

    /// Answers the consent page on `page`.
    pub async fn consent(&self, page: &Page, allow: bool) -> Page {
        let (_, _, body) = page.html();
        assert!(page.is_consent(), "not a consent page: {body}");
        let csrf = field(body, "csrf").unwrap();
        let req = field(body, "req").unwrap();
        let decision = if allow { "allow" } else { "deny" };
        let who = field(body, "who").unwrap_or_default();
        self.post(
            "/consent",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("who", &who),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Goes through an authorization URL as a person: logs in and consents when asked.
    pub async fn sign_in(&self, authorize_url: &str, username: &str, password: &str) -> Page {
        let mut page = self.get(authorize_url).await;
        if page.is_login() {
            page = self.login(&page, username, password).await;
        }
        if page.is_consent() {
            page = self.consent(&page, true).await;
        }
        page
    }
}
