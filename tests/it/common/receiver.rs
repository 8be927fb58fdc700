//! An app's back-channel logout endpoint: a small HTTP listener on 127.0.0.1:0 that records every POST
//! (path, status it answered, form fields). It can be told to fail the first attempts on each path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::post;

#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    /// What the listener answered.
    pub status: u16,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    failures_left: Mutex<HashMap<String, usize>>,
    fail_first: usize,
}

pub struct Receiver {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(shared): State<Arc<Shared>>, uri: Uri, body: String) -> StatusCode {
    let path = uri.path().to_owned();
    let fail = {
        let mut left = shared.failures_left.lock().unwrap();
        let n = left.entry(path.clone()).or_insert(shared.fail_first);
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    };
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let form = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    shared.hits.lock().unwrap().push(Hit {
        path,
        status: status.as_u16(),
        form,
    });
    status
}

impl Receiver {
    /// A listener that answers 500 to the first `fail_first` requests on each path, then 200.
    pub async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            fail_first,
            ..Shared::default()
        });
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Waits (polling) until `done` holds for the hits so far, or panics after `within`.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the listener did not get what was expected in {within:?}; got {hits:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
