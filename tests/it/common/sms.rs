//! An SMS provider's webhook endpoint: a small HTTP listener on 127.0.0.1:0 that records every POST
//! (raw body, headers, what it answered). It can be told to fail the first calls with a 500, or to hold
//! every call until the test releases it.
//!
//! yunid sends through an outbox that a background worker drains, so what the inbox shows waits until
//! the outbox of every node sending to it is empty (the message was delivered or given up).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// One call the gateway made.
#[derive(Debug, Clone)]
pub struct Call {
    pub headers: HeaderMap,
    /// The body exactly as received (what the signature covers).
    pub body: Bytes,
    /// What the listener answered.
    pub status: u16,
}

impl Call {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
    }

    /// The recipient, as sent (E.164).
    pub fn to(&self) -> String {
        self.json()["to"].as_str().expect("a `to` string").to_owned()
    }

    /// The one-time code, as sent.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().expect("a `code` string").to_owned()
    }
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    failures_left: Mutex<usize>,
    url: String,
    /// While true, every call waits (unanswered) until [`SmsInbox::release`].
    held: Mutex<bool>,
    released: tokio::sync::Notify,
    /// Calls that arrived, answered or not.
    arrived: std::sync::atomic::AtomicUsize,
}

/// The nodes sending to each webhook URL (see [`watch_sender`]).
static SENDERS: Mutex<Vec<(String, yunid::App)>> = Mutex::new(Vec::new());

/// Remembers that `app` sends its SMS to `url`.
pub fn watch_sender(url: &str, app: &yunid::App) {
    SENDERS.lock().unwrap().push((url.to_owned(), app.clone()));
}

/// Forgets a node that stopped.
pub fn forget_sender(app: &yunid::App) {
    let mine = app.node_id.clone();
    SENDERS.lock().unwrap().retain(|(_, a)| a.node_id != mine);
}

/// Waits (at most ten seconds) until no node sending to `url` has a message left in its outbox.
async fn outboxes_drained(url: &str) {
    let apps: Vec<yunid::App> = SENDERS
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _)| u == url)
        .map(|(_, a)| a.clone())
        .collect();
    for _ in 0..1000 {
        let mut left = 0;
        for app in &apps {
            left += app.db.sms_outbox_len().await.unwrap_or(0);
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub struct SmsInbox {
    pub url: String,
    /// `GET` it for the latest accepted message (see [`latest`]).
    pub latest_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmsInbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    loop {
        let released = shared.released.notified();
        if !*shared.held.lock().unwrap() {
            break;
        }
        released.await;
    }
    let fail = {
        let mut left = shared.failures_left.lock().unwrap();
        let fail = *left > 0;
        *left = left.saturating_sub(1);
        fail
    };
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    shared.calls.lock().unwrap().push(Call {
        headers,
        body,
        status: status.as_u16(),
    });
    status
}

/// `GET /latest`: the latest accepted message as JSON (`count` of accepted messages, `to`, `code`), or
/// 404 when none arrived yet; for a browser test that reads the code a person would.
async fn latest(State(shared): State<Arc<Shared>>) -> (StatusCode, axum::Json<Value>) {
    outboxes_drained(&shared.url).await;
    let calls = shared.calls.lock().unwrap();
    let delivered: Vec<&Call> = calls.iter().filter(|c| c.status == 200).collect();
    match delivered.last() {
        Some(last) => {
            let body = last.json();
            (
                StatusCode::OK,
                axum::Json(json!({ "count": delivered.len(), "to": body["to"], "code": body["code"] })),
            )
        }
        None => (StatusCode::NOT_FOUND, axum::Json(json!({ "count": 0 }))),
    }
}

impl SmsInbox {
    /// A listener at `<base>/sms` that answers 500 to the first `fail_first` calls, then 200; it also
    /// shows the latest message at `<base>/latest`.
    pub async fn start(fail_first: usize) -> SmsInbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            failures_left: Mutex::new(fail_first),
            url: format!("http://{addr}/sms"),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/sms", post(record))
            .route("/latest", get(latest))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SmsInbox {
            url: format!("http://{addr}/sms"),
            latest_url: format!("http://{addr}/latest"),
            shared,
            task,
        }
    }

    /// A listener that holds every call, unanswered, until [`SmsInbox::release`].
    pub async fn start_held() -> SmsInbox {
        let inbox = SmsInbox::start(0).await;
        *inbox.shared.held.lock().unwrap() = true;
        inbox
    }

    /// Answers the held calls, and every later one at once.
    pub fn release(&self) {
        *self.shared.held.lock().unwrap() = false;
        self.shared.released.notify_waiters();
    }

    /// Calls that reached the listener so far, answered or still held (does not wait for the outbox).
    pub fn arrived(&self) -> usize {
        self.shared.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Calls answered so far (does not wait for the outbox).
    pub fn answered(&self) -> usize {
        self.shared.calls.lock().unwrap().len()
    }

    /// Every call, failed ones included, once the senders' outboxes are empty.
    pub fn calls(&self) -> Vec<Call> {
        let url = self.url.clone();
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(outboxes_drained(&url)));
        self.shared.calls.lock().unwrap().clone()
    }

    /// The messages the listener accepted (answered 200).
    pub fn delivered(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.status == 200).collect()
    }

    /// The code of the latest accepted message; panics when there is none.
    pub fn last_code(&self) -> String {
        self.delivered()
            .last()
            .expect("an SMS was delivered to the webhook")
            .code()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `X-Yunid-Signature: sha256=<hex>` of a call: HMAC-SHA256 with `secret` over
/// `<X-Yunid-Timestamp>.<raw body>`, computed here with ring (independently of the server's code).
pub fn signature_is_valid(call: &Call, secret: &str) -> Result<(), String> {
    use ring::hmac;
    let timestamp = call.header("x-yunid-timestamp").ok_or("no X-Yunid-Timestamp")?;
    let signature = call.header("x-yunid-signature").ok_or("no X-Yunid-Signature")?;
    let hex_tag = signature
        .strip_prefix("sha256=")
        .ok_or_else(|| format!("signature without sha256= prefix: {signature}"))?;
    let tag = unhex(hex_tag).ok_or_else(|| format!("signature is not hex: {hex_tag}"))?;
    let mut signed = timestamp.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(&call.body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, &signed, &tag).map_err(|_| "the signature does not match".to_owned())
}
