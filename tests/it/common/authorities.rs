//! A test double of the four proofing authorities (docs/CONNECTORS.md): an in-process HTTP server on
//! 127.0.0.1:0 speaking the population, carrier, face verification and legal-person registry contracts.
//! Each connector answers as the test says: match, no match, slow, down, malformed (and, for the
//! population database, a cancelled or deceased record; for the registry, the record it is given).
//! It checks the bearer token, and keeps what it was asked so tests can see what yunid sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const TOKEN: &str = "authority-test-token";

/// How a connector answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Match,
    NoMatch,
    /// Answers after 3 seconds (yunid's timeout in tests is far shorter).
    Slow,
    /// 503.
    Down,
    /// 200 with a body that is not the contract (and quotes the ID number it was sent).
    Malformed,
    /// Population only: the record matches but is cancelled / the person deceased.
    Cancelled,
    Deceased,
    /// Registry: the record of another enterprise; face: a provider page that is not an http(s) URL.
    Foreign,
    /// Registry: a bare `404` such as a proxy or gateway gives (not the contract's body).
    Gateway,
    /// A transaction id (face: a session id) outside the contract's format (markup, too long).
    BadId,
}

/// The identifier an answer carries: a fresh one, or one outside the contract for `Answer::BadId`.
fn id_for(answer: Answer, prefix: &str) -> String {
    match answer {
        Answer::BadId => format!("{prefix}-<img src=x onerror=alert(1)>-{}", "x".repeat(200)),
        _ => txn(prefix),
    }
}

#[derive(Default)]
struct Shared {
    answers: Mutex<HashMap<&'static str, Answer>>,
    /// Registry records by credit code.
    enterprises: Mutex<HashMap<String, Value>>,
    /// Face sessions: id -> (return_url, used)
    faces: Mutex<HashMap<String, String>>,
    /// Every request body (or path) received, per connector.
    calls: Mutex<Vec<(String, Value)>>,
    /// This server's own base URL (for the face page it sends the browser to).
    base: Mutex<String>,
}

pub struct Authorities {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Authorities {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn answer(&self, connector: &'static str) -> Answer {
        *self
            .answers
            .lock()
            .unwrap()
            .get(connector)
            .unwrap_or(&Answer::Match)
    }

    fn record(&self, connector: &str, body: Value) {
        self.calls.lock().unwrap().push((connector.to_owned(), body));
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

/// The failure modes every connector shares; `None` means answer normally.
async fn failure(answer: Answer, body: &Value) -> Option<Response> {
    match answer {
        Answer::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Some(Json(json!({ "transaction_id": "slow", "match": true })).into_response())
        }
        Answer::Down => Some((StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response()),
        // A wrong type in a field, quoting what was sent: a parser that echoes values would leak it.
        Answer::Malformed => Some(
            Json(json!({ "transaction_id": 7, "match": body.get("id_number").cloned().unwrap_or(Value::Null) }))
                .into_response(),
        ),
        _ => None,
    }
}

fn txn(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn population(State(s): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.record("population", body.clone());
    let answer = s.answer("population");
    if let Some(res) = failure(answer, &body).await {
        return res;
    }
    let (matched, state) = match answer {
        Answer::NoMatch => (false, None),
        Answer::Cancelled => (true, Some("cancelled")),
        Answer::Deceased => (true, Some("deceased")),
        _ => (true, Some("normal")),
    };
    Json(json!({ "transaction_id": id_for(answer, "pop"), "match": matched, "state": state })).into_response()
}

async fn carrier(State(s): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.record("carrier", body.clone());
    let answer = s.answer("carrier");
    if let Some(res) = failure(answer, &body).await {
        return res;
    }
    Json(json!({ "transaction_id": id_for(answer, "mno"), "match": answer != Answer::NoMatch }))
        .into_response()
}

async fn face_open(State(s): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.record("face", body.clone());
    if let Some(res) = failure(s.answer("face_open"), &body).await {
        return res;
    }
    let id = id_for(s.answer("face_open"), "fs");
    let return_url = body["return_url"].as_str().unwrap_or_default().to_owned();
    s.faces.lock().unwrap().insert(id.clone(), return_url);
    let base = s.base.lock().unwrap().clone();
    let page = match s.answer("face_open") {
        // A page elsewhere: yunid sends the browser to the configured page, never here.
        Answer::Foreign => format!("https://phish.example/face?session={id}"),
        _ => format!("{base}/v1/face/page?session={id}"),
    };
    Json(json!({ "session_id": id, "redirect_url": page, "expires_in": 600 })).into_response()
}

/// The provider's page: the person "does" the verification and is sent back to the return URL.
async fn face_page(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let id = q.get("session").cloned().unwrap_or_default();
    match s.faces.lock().unwrap().get(&id) {
        Some(url) => Redirect::to(url).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn face_result(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.record("face_result", json!({ "session": id }));
    let answer = s.answer("face");
    if let Some(res) = failure(answer, &Value::Null).await {
        return res;
    }
    if !s.faces.lock().unwrap().contains_key(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let passed = answer != Answer::NoMatch;
    Json(json!({
        "transaction_id": id_for(answer, "face"),
        "status": "completed",
        "passed": passed,
        "liveness": passed,
        "score": if passed { 96.5 } else { 31.0 },
        "completed_at": 0,
    }))
    .into_response()
}

async fn enterprise(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(code): Path<String>) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.record("registry", json!({ "credit_code": code }));
    let answer = s.answer("registry");
    if let Some(res) = failure(answer, &Value::Null).await {
        return res;
    }
    if answer == Answer::Gateway {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let known = s.enterprises.lock().unwrap().get(&code).cloned();
    match known {
        Some(record) => {
            let mut record = record.clone();
            record["transaction_id"] = json!(id_for(answer, "reg"));
            if answer == Answer::Foreign {
                record["credit_code"] = json!("91110000100000000X");
            }
            Json(record).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "transaction_id": txn("reg"), "credit_code": code, "error": "not_found" })),
        )
            .into_response(),
    }
}

impl Authorities {
    pub async fn start() -> Authorities {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/population/verify", post(population))
            .route("/v1/carrier/verify", post(carrier))
            .route("/v1/face/sessions", post(face_open))
            .route("/v1/face/sessions/{id}/result", get(face_result))
            .route("/v1/face/page", get(face_page))
            .route("/v1/enterprises/{code}", get(enterprise))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.base.lock().unwrap() = format!("http://{addr}");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Authorities {
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// Points every proofing connector of a configuration at this double.
    pub fn configure(&self, c: &mut yunid::Config) {
        for (url, token) in [
            (&mut c.proofing_population_url, &mut c.proofing_population_token),
            (&mut c.proofing_carrier_url, &mut c.proofing_carrier_token),
            (&mut c.proofing_face_url, &mut c.proofing_face_token),
            (&mut c.proofing_registry_url, &mut c.proofing_registry_token),
        ] {
            *url = Some(self.base.clone());
            *token = Some(TOKEN.into());
        }
        c.proofing_timeout_ms = 500;
        // The double speaks plain http on loopback: the development switch for insecure URLs.
        c.allow_insecure_redirects = true;
        c.proofing_sweep_interval = 1;
    }

    /// How `connector` (`population`, `carrier`, `face_open`, `face`, `registry`) answers from now on.
    pub fn answer(&self, connector: &'static str, answer: Answer) {
        self.shared.answers.lock().unwrap().insert(connector, answer);
    }

    /// The registry's record of an enterprise.
    pub fn enterprise(&self, code: &str, name: &str, status: &str, lr_name: &str, lr_id: &str) {
        self.shared.enterprises.lock().unwrap().insert(
            code.to_owned(),
            json!({
                "credit_code": code,
                "name": name,
                "type": "有限责任公司",
                "status": status,
                "legal_representative": { "name": lr_name, "id_number": lr_id },
            }),
        );
    }

    /// The registry no longer knows `code` (answers the contract's `404`).
    pub fn forget_enterprise(&self, code: &str) {
        self.shared.enterprises.lock().unwrap().remove(code);
    }

    /// The bodies yunid sent to `connector`.
    pub fn calls(&self, connector: &str) -> Vec<Value> {
        self.shared
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == connector)
            .map(|(_, b)| b.clone())
            .collect()
    }
}
