//! A TCP proxy between yunid and PostgreSQL that the test can cut: what a network partition, a database
//! host going away or a failover looks like from a node. Cut, every open connection drops and new ones
//! are accepted but never answered (the worst case: nothing refuses, everything hangs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    conns: Mutex<Vec<AbortHandle>>,
}

impl State {
    fn drop_all(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let handle = if shared.cut.load(Ordering::SeqCst) {
                    // Hold the socket open and say nothing.
                    tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await
                    })
                } else {
                    let target = target.clone();
                    tokio::spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                        }
                    })
                };
                let mut conns = shared.conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(handle.abort_handle());
            }
        });
        Proxy { addr, state, task }
    }

    /// The database goes away: open connections drop, new ones hang.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.drop_all();
    }

    /// The database is back.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.drop_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.drop_all();
    }
}
