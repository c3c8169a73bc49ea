//! An HTTP receiver on loopback standing for a chat-ops webhook: records every request,
//! and can fail the first ones; and the sinks tests point at it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigie::config::{Secret, SinkKind, SinkSettings};

/// The HMAC key of the test sinks of kind `json`.
pub const SINK_KEY: &str = "test-hmac-key-0123456789";

/// A sink of `kind` posting to `url`, retrying fast (from 50 ms, at most 400 ms); a `json`
/// one signs with [`SINK_KEY`].
pub fn sink(kind: SinkKind, url: Secret) -> SinkSettings {
    SinkSettings {
        secret: (kind == SinkKind::Json).then(|| Secret::new(SINK_KEY)),
        // Long enough that a stalled test machine never turns one delivery into two.
        timeout: std::time::Duration::from_secs(10),
        retry_initial: std::time::Duration::from_millis(50),
        retry_max: std::time::Duration::from_millis(400),
        ..SinkSettings::new(kind, url)
    }
}

/// One request as a receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status answered: 200 when accepted.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Asserts `X-Vigie-Signature` is the HMAC-SHA256 of the body with [`SINK_KEY`],
    /// computed here the way the README tells a receiver to.
    pub fn assert_signed(&self) {
        use hmac::{Hmac, Mac};
        let header = self
            .headers
            .get("x-vigie-signature")
            .and_then(|v| v.to_str().ok())
            .expect("X-Vigie-Signature");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SINK_KEY.as_bytes()).expect("key");
        mac.update(&self.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(header, format!("sha256={hex}"));
    }
}

/// An HTTP receiver on loopback: records every request; answers 500 to the first
/// `failures` ones, then 200; 503 to every one while set down.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    down: Arc<AtomicBool>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Receiver {
        Self::start_on(([127, 0, 0, 1], 0).into(), failures).await
    }

    pub async fn start_on(addr: SocketAddr, failures: usize) -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let state = ReceiverState {
            seen: seen.clone(),
            failures: Arc::new(AtomicUsize::new(failures)),
            down: down.clone(),
        };
        let app = axum::Router::new()
            .fallback(
                |State(s): State<ReceiverState>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                    let status = if s.down.load(Relaxed) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else if s
                        .failures
                        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    s.seen.lock().push(Received {
                        path: uri.path().to_string(),
                        headers,
                        body,
                        status: status.as_u16(),
                    });
                    status
                },
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
        });
        Receiver {
            addr,
            seen,
            down,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> Secret {
        Secret::new(format!("http://{}{path}", self.addr))
    }

    /// While down, every request is answered 503 (a sink outage), and recorded.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Relaxed);
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().clone()
    }

    /// Requests received (failed ones included).
    pub fn count(&self) -> usize {
        self.seen.lock().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
