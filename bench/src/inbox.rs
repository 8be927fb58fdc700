//! The SMS provider's webhook as the benchmark runs it: a local server that keeps the latest code per
//! recipient, so the SMS scenarios can type it in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

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
