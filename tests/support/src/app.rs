//! The API server in this process, built the way `vigie serve` builds it (the library's
//! `AppState` and `serve`, on port 0), with the engines, status, auth, switches, alerts
//! and cockpit a test gives it; and the HTTP and websocket clients tests talk to it with.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use vigie::alert::AlertService;
use vigie::config::ServerSettings;
use vigie::deflection::SwitchStore;
use vigie::engine::{EngineConfig, EngineSet};
use vigie::server::cockpit::Cockpit;
use vigie::server::limits::Limits;
use vigie::server::{serve, AppState, Auth};
use vigie::status::InstanceStatus;

/// A websocket client of the API.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The API server running in this process; stopped on drop.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub engines: Arc<EngineSet>,
    pub status: Arc<InstanceStatus>,
    pub stop: CancellationToken,
    pub client: reqwest::Client,
    /// The limits in force (a test may hold what they count).
    pub limits: Arc<Limits>,
}

/// What a [`TestApp`] is built from; anything not given is what `AppState::new` has.
#[derive(Debug, Default)]
pub struct TestAppBuilder {
    engines: Option<Arc<EngineSet>>,
    status: Option<Arc<InstanceStatus>>,
    auth: Option<Auth>,
    switches: Option<Arc<SwitchStore>>,
    alerts: Option<Arc<AlertService>>,
    cockpit: Option<Cockpit>,
    limits: Option<ServerSettings>,
    stop: Option<CancellationToken>,
}

impl TestAppBuilder {
    pub fn engines(mut self, engines: Arc<EngineSet>) -> Self {
        self.engines = Some(engines);
        self
    }

    pub fn status(mut self, status: Arc<InstanceStatus>) -> Self {
        self.status = Some(status);
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    pub fn switches(mut self, store: Arc<SwitchStore>) -> Self {
        self.switches = Some(store);
        self
    }

    pub fn alerts(mut self, service: Arc<AlertService>) -> Self {
        self.alerts = Some(service);
        self
    }

    pub fn cockpit(mut self, cockpit: Cockpit) -> Self {
        self.cockpit = Some(cockpit);
        self
    }

    /// The `[server]` limits (their defaults otherwise).
    pub fn limits(mut self, settings: ServerSettings) -> Self {
        self.limits = Some(settings);
        self
    }

    /// The shutdown token (one of the app's own otherwise), for a test that also stops
    /// other tasks with it.
    pub fn shutdown(mut self, stop: CancellationToken) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Binds port 0 and serves until the app is dropped.
    pub async fn spawn(self) -> TestApp {
        let engines = self
            .engines
            .unwrap_or_else(|| Arc::new(EngineSet::new(EngineConfig::default())));
        let status = self.status.unwrap_or_default();
        let stop = self.stop.unwrap_or_default();
        let mut state = AppState::new(engines.clone(), status.clone(), stop.clone());
        if let Some(auth) = self.auth {
            state = state.with_auth(auth);
        }
        if let Some(store) = self.switches {
            state = state.with_switches(store);
        }
        if let Some(service) = self.alerts {
            state = state.with_alerts(service);
        }
        if let Some(cockpit) = self.cockpit {
            state = state.with_cockpit(cockpit);
        }
        if let Some(limits) = &self.limits {
            state = state.with_limits(limits);
        }
        let limits = state.limits.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(serve(listener, state));
        TestApp {
            base,
            engines,
            status,
            stop,
            client: reqwest::Client::new(),
            limits,
        }
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The API on empty engines, without auth, switches nor alerts.
    pub async fn spawn() -> TestApp {
        TestApp::builder().spawn().await
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The websocket URL (`ws://.../api/v1/ws`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/ws", self.addr())
    }

    /// `method path` with an optional bearer token and JSON body: status and body text.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Like [`TestApp::call`], the body parsed as JSON (panics naming the path if not).
    pub async fn call_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self.call(method, path, token, body).await;
        (status, parse_json(path, &text))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.call("GET", path, None, None).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.call_json("GET", path, None, None).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call_json("PUT", path, None, Some(body)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call_json("POST", path, None, Some(body)).await
    }

    /// A websocket connected to the API.
    pub async fn ws(&self) -> WsClient {
        ws_connect(&self.ws_url()).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// A websocket connected to `url`.
pub async fn ws_connect(url: &str) -> WsClient {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// Sends `message` as a JSON text frame.
pub async fn ws_send(client: &mut WsClient, message: &Value) {
    client
        .send(Message::text(message.to_string()))
        .await
        .expect("sent");
}

/// The next JSON message whose `type` is `kind`, within `deadline` (others, heartbeats
/// for one, are skipped); panics if the connection closes first.
pub async fn ws_next_of(client: &mut WsClient, kind: &str, deadline: Duration) -> Value {
    tokio::time::timeout(deadline, async {
        loop {
            match client.next().await.expect("open").expect("frame") {
                Message::Text(text) => {
                    let v: Value = serde_json::from_str(&text).expect("JSON message");
                    assert!(v["type"].is_string(), "every message has a type: {v}");
                    if v["type"] == kind {
                        return v;
                    }
                }
                Message::Close(frame) => panic!("closed while waiting for {kind}: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} message within {deadline:?}"))
}
