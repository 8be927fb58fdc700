//! The four authority connectors, each a small HTTP JSON client of the contract in docs/CONNECTORS.md:
//! population base database, carrier three-element check, face verification provider, legal-person
//! registry. Calls go through the operator's HTTP client (no redirects) with the proofing timeout and
//! the connector's bearer token.
//!
//! A failure is [`Upstream`]: down (no answer or an HTTP error), slow (timed out), or malformed (an
//! answer not of the contract). Its text never holds the request's ID number or any part of the
//! answer: reqwest errors are logged without their URL, serde errors by position only (serde's message
//! quotes the offending value, which may be an ID number).

use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Settings;
use crate::metrics::Metrics;

/// Which authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    Population,
    Carrier,
    Face,
    Registry,
}

impl Connector {
    pub fn as_str(self) -> &'static str {
        match self {
            Connector::Population => "population",
            Connector::Carrier => "carrier",
            Connector::Face => "face",
            Connector::Registry => "registry",
        }
    }
}

impl std::fmt::Display for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured connector: its base URL and bearer token.
#[derive(Clone)]
pub struct Endpoint {
    pub base: url::Url,
    pub token: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// A configured connector URL: absolute, https, or http only when the development switch for insecure
/// URLs (`allow_insecure_redirects`) is on; no query, fragment or credentials.
pub fn checked_url(setting: &str, url: &str, allow_http: bool) -> anyhow::Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
    anyhow::ensure!(
        parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http"),
        "{setting} must be an https URL (http only with allow_insecure_redirects, for development)"
    );
    anyhow::ensure!(
        parsed.host().is_some()
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && parsed.username().is_empty()
            && parsed.password().is_none(),
        "{setting} must be a plain URL: a host, no query, fragment or credentials"
    );
    Ok(parsed)
}

impl Endpoint {
    /// A configured base URL and token; `None` when the URL is unset. `setting` names it in errors.
    pub fn from_config(
        setting: &str,
        url: Option<&str>,
        token: Option<&str>,
        allow_http: bool,
    ) -> anyhow::Result<Option<Endpoint>> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let base = checked_url(setting, url, allow_http)?;
        Ok(Some(Endpoint {
            base,
            token: token.map(str::to_owned),
        }))
    }

    /// The face provider's page by default: `{base}/v1/face/page`.
    pub fn page_url(&self) -> url::Url {
        self.url(&["v1", "face", "page"])
    }

    /// The base URL with `segments` appended as path segments (each percent-encoded).
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// Whether an identifier an authority gave (a transaction id, a face session id) is one yunid stores
/// and puts in URLs: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`. Anything else makes the answer
/// malformed.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks the identifiers of an answer before anything is kept of it.
fn ids_ok<T>(answer: T, ids: &[&str]) -> Result<T, Upstream> {
    match ids.iter().all(|id| valid_id(id)) {
        true => Ok(answer),
        false => Err(Upstream::Malformed(
            "an identifier outside the contract's format".into(),
        )),
    }
}

/// Why a connector gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    NotConfigured,
    /// No answer, or an HTTP error status.
    Down(String),
    /// No answer within the timeout.
    Slow,
    /// An answer that is not of the contract.
    Malformed(String),
    /// The registry does not know this enterprise: a `404` with the contract's body (its
    /// `transaction_id`, and the `credit_code` asked about when given). A `404` without that body (a
    /// proxy, a gateway, a wrong path) is `Down`.
    NotFound {
        transaction_id: String,
        credit_code: Option<String>,
    },
}

impl Upstream {
    fn outcome(&self) -> &'static str {
        match self {
            Upstream::NotConfigured => "off",
            Upstream::Down(_) => "down",
            Upstream::Slow => "timeout",
            Upstream::Malformed(_) => "malformed",
            Upstream::NotFound { .. } => "not_found",
        }
    }
}

/// A population base database answer.
#[derive(Debug, Clone, Deserialize)]
pub struct PopulationAnswer {
    pub transaction_id: String,
    #[serde(rename = "match")]
    pub matched: bool,
    /// `normal`, `cancelled` or `deceased` (present when the name and number match).
    #[serde(default)]
    pub state: Option<RecordState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Normal,
    Cancelled,
    Deceased,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Normal => "normal",
            RecordState::Cancelled => "cancelled",
            RecordState::Deceased => "deceased",
        }
    }
}

/// A carrier three-element answer.
#[derive(Debug, Clone, Deserialize)]
pub struct CarrierAnswer {
    pub transaction_id: String,
    #[serde(rename = "match")]
    pub matched: bool,
}

/// A face verification session opened at the provider.
#[derive(Debug, Clone, Deserialize)]
pub struct FaceSession {
    pub session_id: String,
    /// The provider's page, as the provider names it: not used (the browser goes to the configured
    /// `proofing_face_page_url`); optional in the contract.
    #[serde(default)]
    pub redirect_url: String,
}

/// A face verification result, fetched server to server.
#[derive(Debug, Clone, Deserialize)]
pub struct FaceResult {
    pub transaction_id: String,
    pub status: FaceState,
    #[serde(default)]
    pub passed: bool,
    #[serde(default)]
    pub liveness: bool,
    #[serde(default)]
    pub score: f64,
}

/// Where a face verification stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaceState {
    /// The person finished: the result carries a verdict.
    Completed,
    /// Anything else the provider says (not finished, abandoned, a state added later): no verdict, so
    /// never a match.
    #[serde(other)]
    Unfinished,
}

/// A legal-person registry record.
#[derive(Clone, Deserialize)]
pub struct Enterprise {
    pub transaction_id: String,
    pub credit_code: String,
    pub name: String,
    #[serde(rename = "type")]
    pub enterprise_type: String,
    /// `active`, `revoked` or `cancelled`.
    pub status: EnterpriseStatus,
    pub legal_representative: LegalRepresentative,
}

impl std::fmt::Debug for Enterprise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enterprise")
            .field("transaction_id", &self.transaction_id)
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnterpriseStatus {
    Active,
    Revoked,
    Cancelled,
}

impl EnterpriseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnterpriseStatus::Active => "active",
            EnterpriseStatus::Revoked => "revoked",
            EnterpriseStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Deserialize)]
pub struct LegalRepresentative {
    pub name: String,
    pub id_number: String,
}

/// The connectors, as configured.
pub struct Connectors<'a> {
    pub http: &'a reqwest::Client,
    pub settings: &'a Settings,
    pub metrics: &'a Metrics,
}

impl Connectors<'_> {
    fn endpoint(&self, which: Connector) -> Option<&Endpoint> {
        match which {
            Connector::Population => self.settings.population.as_ref(),
            Connector::Carrier => self.settings.carrier.as_ref(),
            Connector::Face => self.settings.face.as_ref(),
            Connector::Registry => self.settings.registry.as_ref(),
        }
    }

    pub fn configured(&self, which: Connector) -> bool {
        self.endpoint(which).is_some()
    }

    /// One call: `body` POSTed as JSON, or a GET when `None`. Measured and counted per connector.
    async fn call<T: DeserializeOwned>(
        &self,
        which: Connector,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<T, Upstream> {
        let Some(endpoint) = self.endpoint(which) else {
            return Err(Upstream::NotConfigured);
        };
        // A duration for the latency metric only, never a decision: the one clock read the domain keeps.
        let started = Instant::now();
        let result = self.send(endpoint, segments, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics
            .proofing_call(which.as_str(), outcome, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            // The base URL says which authority failed; the path may hold a credit code but never an
            // ID number, and is not logged anyway.
            tracing::warn!(connector = which.as_str(), upstream = endpoint.base.as_str(), error = ?e,
                "proofing connector gave no usable answer");
        }
        result
    }

    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<T, Upstream> {
        let url = endpoint.url(segments);
        let mut req = match &body {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url),
        };
        req = req
            .timeout(self.settings.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &endpoint.token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.map_err(|e| match e.is_timeout() {
            true => Upstream::Slow,
            false => Upstream::Down(crate::services::outbound::error_text(e)),
        })?;
        let status = res.status();
        if status == reqwest::StatusCode::NOT_FOUND && body.is_none() {
            #[derive(Deserialize)]
            struct Gone {
                transaction_id: String,
                credit_code: Option<String>,
            }
            let bytes = res.bytes().await.unwrap_or_default();
            return match serde_json::from_slice::<Gone>(&bytes) {
                Ok(g) if valid_id(&g.transaction_id) => Err(Upstream::NotFound {
                    transaction_id: g.transaction_id,
                    credit_code: g.credit_code,
                }),
                _ => Err(Upstream::Down("HTTP 404 without the contract's body".into())),
            };
        }
        if !status.is_success() {
            return Err(Upstream::Down(format!("HTTP {status}")));
        }
        let bytes = res.bytes().await.map_err(|e| match e.is_timeout() {
            true => Upstream::Slow,
            false => Upstream::Down(crate::services::outbound::error_text(e)),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            // Position and category only: serde's message quotes the value it choked on.
            Upstream::Malformed(format!(
                "{:?} at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Population base database: does this name go with this resident ID number, and in what state is
    /// the record.
    pub async fn population(&self, name: &str, id_number: &str) -> Result<PopulationAnswer, Upstream> {
        self.call(
            Connector::Population,
            &["v1", "population", "verify"],
            Some(json!({ "name": name, "id_number": id_number })),
        )
        .await
        .and_then(|a: PopulationAnswer| {
            let id = a.transaction_id.clone();
            ids_ok(a, &[&id])
        })
        .inspect_err(|e| self.malformed(Connector::Population, e))
    }

    /// Carrier three-element check: is this phone number registered to this name and ID number.
    pub async fn carrier(&self, name: &str, id_number: &str, phone: &str) -> Result<CarrierAnswer, Upstream> {
        self.call(
            Connector::Carrier,
            &["v1", "carrier", "verify"],
            Some(json!({ "name": name, "id_number": id_number, "phone": phone })),
        )
        .await
        .and_then(|a: CarrierAnswer| {
            let id = a.transaction_id.clone();
            ids_ok(a, &[&id])
        })
        .inspect_err(|e| self.malformed(Connector::Carrier, e))
    }

    /// Opens a face verification session for this person, coming back to `return_url`.
    pub async fn face_open(
        &self,
        name: &str,
        id_number: &str,
        return_url: &str,
    ) -> Result<FaceSession, Upstream> {
        self.call(
            Connector::Face,
            &["v1", "face", "sessions"],
            Some(json!({ "name": name, "id_number": id_number, "return_url": return_url })),
        )
        .await
        .and_then(|a: FaceSession| {
            let id = a.session_id.clone();
            ids_ok(a, &[&id])
        })
        .inspect_err(|e| self.malformed(Connector::Face, e))
    }

    /// The result of a face verification session.
    pub async fn face_result(&self, session_id: &str) -> Result<FaceResult, Upstream> {
        self.call(
            Connector::Face,
            &["v1", "face", "sessions", session_id, "result"],
            None,
        )
        .await
        .and_then(|a: FaceResult| {
            let id = a.transaction_id.clone();
            ids_ok(a, &[&id])
        })
        .inspect_err(|e| self.malformed(Connector::Face, e))
    }

    /// The registry's record of an enterprise.
    pub async fn enterprise(&self, credit_code: &str) -> Result<Enterprise, Upstream> {
        self.call(Connector::Registry, &["v1", "enterprises", credit_code], None)
            .await
            .and_then(|a: Enterprise| {
                let id = a.transaction_id.clone();
                ids_ok(a, &[&id])
            })
            .inspect_err(|e| self.malformed(Connector::Registry, e))
    }

    /// Counts and logs an answer refused after it was read (an identifier outside the contract): the
    /// call itself was counted `ok`.
    fn malformed(&self, which: Connector, e: &Upstream) {
        if let Upstream::Malformed(why) = e
            && why.starts_with("an identifier")
        {
            self.metrics.proofing_call(which.as_str(), "malformed", 0.0);
            tracing::warn!(
                connector = which.as_str(),
                "proofing connector answered an identifier outside the contract"
            );
        }
    }
}
