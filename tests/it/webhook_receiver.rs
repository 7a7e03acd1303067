//! A webhook receiver for the tests: an axum server on a loopback port that records every
//! request it is sent and can answer `503` to the first N, or take a while over each answer.
//! Signatures are checked here with `hmac` + `sha2`, independently of the server's code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) delivery: String,
    pub(crate) event: String,
    pub(crate) signature: String,
    pub(crate) body: Vec<u8>,
    /// What `503` or `204` the receiver answered.
    pub(crate) answered: u16,
}

impl Received {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a delivery's body is JSON")
    }

    /// Whether the signature header verifies with `secret` (and `t` is within 5 minutes).
    pub(crate) fn verifies_with(&self, secret: &str) -> bool {
        verify(secret, &self.signature, &self.body)
    }
}

/// Checks `t=<unix secs>,v1=<hex>` against HMAC-SHA256(secret, "<t>.<body>"), as docs/webhooks.md says.
pub(crate) fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.push(value.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    v1.iter().any(|hex| {
        let Some(tag) = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        mac.clone().verify_slice(&tag).is_ok()
    })
}

struct Shared {
    received: Mutex<Vec<Received>>,
    fail_first: AtomicUsize,
    delay: Duration,
}

/// A running receiver; it stops when dropped.
pub(crate) struct Receiver {
    pub(crate) url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers `503` to its first `fail_first` requests and `204` after, each
    /// after `delay`.
    pub(crate) async fn start(fail_first: usize, delay: Duration) -> Receiver {
        let shared =
            Arc::new(Shared { received: Mutex::new(Vec::new()), fail_first: AtomicUsize::new(fail_first), delay });
        let app = axum::Router::new().route("/hook", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, shared, task }
    }

    /// Everything received so far, in arrival order.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests answered `204`, in arrival order.
    pub(crate) fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.answered == 204).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    tokio::time::sleep(shared.delay).await;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let fail = shared.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let status = if fail { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::NO_CONTENT };
    shared.received.lock().unwrap().push(Received {
        delivery: header("x-keyledger-delivery"),
        event: header("x-keyledger-event"),
        signature: header("x-keyledger-signature"),
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    status
}
