//! The websocket endpoint `/api/v1/ws`: owns one client connection.
//!
//! On connect the client gets the status, the snapshot of its subscription (15
//! minutes, no filter, until it sends `{"type":"subscribe",...}`), its last-hour trend,
//! the deflection switches and the alerts, then every change of any of them.
//! A client that stops reading is disconnected with a reason instead of being queued for.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use vigie_proto::{ClientMessage, ServerMessage, Subscription};

use super::limits::{Bucket, ConnectionLease, Limit};
use super::{ApiError, AppState, Principal};
use crate::publisher::{Feed, Frame, SubscribeError};
use axum::http::HeaderMap;

/// How long a frame may take to leave before the client is considered stalled.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence before a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Client messages are small; anything bigger is refused by the protocol layer.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// The live websocket: checks the caller (token in `Authorization` or `?access_token=`,
/// a configured token or an OIDC JWT) and, for browsers, the Origin, before upgrading.
/// Frames are `ServerMessage`s; the client sends `ClientMessage`s. A JWT's connection is
/// closed when the JWT expires (1008), for the client to reconnect with a fresh one.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "kpis",
    params(("access_token" = Option<String>, Query, description = "the token, for browsers (which cannot set headers on a websocket)")),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "switching to the websocket protocol"),
        (status = 401, body = vigie_proto::ErrorBody),
        (status = 403, description = "Origin not allowed", body = vigie_proto::ErrorBody),
    )
)]
pub(crate) async fn upgrade(
    caller: Principal,
    headers: HeaderMap,
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if !state.auth.origin_allowed(
        header(axum::http::header::ORIGIN),
        header(axum::http::header::HOST),
    ) {
        return Err(ApiError::Forbidden(
            "websocket Origin not allowed: add it to auth.allowed_origins".into(),
        ));
    }
    let lease = state.limits.connect(&caller.name)?;
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| client(socket, state, caller, lease)))
}

/// Why the server closed a connection (close code and reason sent to the client).
enum Closing {
    ShuttingDown,
    TooSlow,
    TokenExpired,
    ClientLeft,
}

async fn client(socket: WebSocket, state: AppState, caller: Principal, lease: ConnectionLease) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &state.publisher.clients;
    stats.connected.fetch_add(1, Relaxed);
    let closing = serve_client(socket, &state, &caller).await;
    stats.connected.fetch_sub(1, Relaxed);
    drop(lease);
    if matches!(closing, Closing::TooSlow) {
        stats.closed_too_slow.fetch_add(1, Relaxed);
        tracing::info!("websocket client closed: too slow, not reading");
    }
}

/// Runs one connection; says why it ended.
async fn serve_client(socket: WebSocket, state: &AppState, caller: &Principal) -> Closing {
    let expires_at = caller.expires_at;
    let expiry = async move {
        match expires_at {
            Some(at) => {
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                tokio::time::sleep(left).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let (mut sink, mut stream) = socket.split();
    let send = Message::Text;
    let mut status = state.publisher.status();
    let mut subscribes = Bucket::new(
        state.limits.settings.subscribe_burst,
        state.limits.settings.subscribe_per_second,
    );
    // The default subscription, unless the limits refuse even that (then the client
    // gets the error frame and may subscribe to a subscription others hold).
    let mut outbox: Vec<Frame> = vec![status.borrow_and_update().clone()];
    let mut feed = match subscribe(state, caller, &Subscription::default()) {
        Ok(feed) => Some(feed),
        Err(error) => {
            outbox.push(error);
            None
        }
    };
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    if let Some(feed) = feed.as_mut() {
        outbox.push(feed.snapshots.borrow_and_update().clone());
        outbox.push(feed.trend.borrow_and_update().clone());
    }
    let mut switches = state.publisher.switches();
    if let Some(rx) = switches.as_mut() {
        outbox.push(rx.borrow_and_update().clone());
    }
    let mut alerts = state.publisher.alerts();
    if let Some(rx) = alerts.as_mut() {
        outbox.push(rx.borrow_and_update().clone());
    }
    let closing = loop {
        let mut stalled = false;
        // An empty frame is a message not computed yet (a new subscription's trend).
        for frame in outbox.drain(..).filter(|f| !f.as_str().is_empty()) {
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(send(frame))).await {
                Ok(Ok(())) => heartbeat.reset(),
                Ok(Err(_)) => return Closing::ClientLeft, // connection gone
                Err(_) => {
                    stalled = true;
                    break;
                }
            }
        }
        if stalled {
            break Closing::TooSlow;
        }
        let (snapshots, trend) = match feed.as_mut() {
            Some(f) => (Some(&mut f.snapshots), Some(&mut f.trend)),
            None => (None, None),
        };
        tokio::select! {
            _ = state.shutdown.cancelled() => break Closing::ShuttingDown,
            _ = &mut expiry => break Closing::TokenExpired,
            changed = optional_changed(snapshots) => {
                if changed.is_err() { break Closing::ShuttingDown; }
                if let Some(feed) = feed.as_mut() {
                    outbox.push(feed.snapshots.borrow_and_update().clone());
                }
            }
            changed = optional_changed(trend) => {
                if changed.is_err() { break Closing::ShuttingDown; }
                if let Some(feed) = feed.as_mut() {
                    outbox.push(feed.trend.borrow_and_update().clone());
                }
            }
            changed = status.changed() => {
                if changed.is_err() { break Closing::ShuttingDown; }
                outbox.push(status.borrow_and_update().clone());
            }
            changed = optional_changed(switches.as_mut()) => {
                if changed.is_err() { break Closing::ShuttingDown; }
                if let Some(rx) = switches.as_mut() {
                    outbox.push(rx.borrow_and_update().clone());
                }
            }
            changed = optional_changed(alerts.as_mut()) => {
                if changed.is_err() { break Closing::ShuttingDown; }
                if let Some(rx) = alerts.as_mut() {
                    outbox.push(rx.borrow_and_update().clone());
                }
            }
            _ = heartbeat.tick() => {
                let beat = ServerMessage::Heartbeat { server_time: jiff::Timestamp::now().as_millisecond() };
                outbox.push(Frame::from(serde_json::to_string(&beat).unwrap_or_default()));
            }
            incoming = stream.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break Closing::ClientLeft,
                Some(Ok(Message::Text(text))) => {
                    match handle_client_message(state, &mut subscribes, &text) {
                        Ok(sub) => {
                            // The former subscription is let go of first, so that
                            // moving between two subscriptions never needs a third.
                            drop(feed.take());
                            match subscribe(state, caller, &sub) {
                                Ok(mut next) => {
                                    outbox.push(next.snapshots.borrow_and_update().clone());
                                    outbox.push(next.trend.borrow_and_update().clone());
                                    feed = Some(next);
                                }
                                Err(error) => outbox.push(error),
                            }
                        }
                        Err(error) => outbox.push(error),
                    }
                }
                Some(Ok(Message::Binary(_))) => outbox.push(error_frame("bad_message", "binary frames are not accepted: send JSON text")),
                Some(Ok(_)) => {} // ping/pong: answered by the protocol layer
            },
        }
    };
    let (code, reason) = match closing {
        Closing::ShuttingDown => (1001, "server shutting down"),
        Closing::TooSlow => (1008, "client too slow: not reading"),
        Closing::TokenExpired => (1008, "token expired: reconnect with a fresh token"),
        Closing::ClientLeft => return closing,
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    // A stalled client gets as long to take its close frame as any other frame.
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close)).await;
    closing
}

/// Waits for a message of an optional feed (switches, alerts, a subscription refused),
/// or forever without it.
async fn optional_changed(
    rx: Option<&mut tokio::sync::watch::Receiver<Frame>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

fn error_frame(code: &str, message: &str) -> Frame {
    let error = ServerMessage::Error {
        code: code.into(),
        message: message.into(),
    };
    Frame::from(serde_json::to_string(&error).unwrap_or_default())
}

/// The feed of `sub` for `caller`, or the error frame saying why not: the REST API's
/// codes for the same query errors, the limit's code and key for a limit.
fn subscribe(state: &AppState, caller: &Principal, sub: &Subscription) -> Result<Feed, Frame> {
    state.publisher.subscribe(&caller.name, sub).map_err(|e| {
        let e = match e {
            SubscribeError::Query(e) => ApiError::from(e),
            e @ SubscribeError::TooMany(_) => {
                state.limits.refuse(Limit::Subscriptions, e.to_string())
            }
            e @ SubscribeError::TooManyForCaller { .. } => state
                .limits
                .refuse(Limit::SubscriptionsPerCaller, e.to_string()),
        };
        error_frame(e.code(), &e.to_string())
    })
}

/// The subscription a client message asks for, checked (the current one stays if not).
fn handle_client_message(
    state: &AppState,
    subscribes: &mut Bucket,
    text: &str,
) -> Result<Subscription, Frame> {
    let message: ClientMessage = serde_json::from_str(text)
        .map_err(|e| error_frame("bad_message", &format!("not a client message: {e}")))?;
    match message {
        ClientMessage::Subscribe(sub) => {
            if !subscribes.take() {
                let s = &state.limits.settings;
                let e = state.limits.refuse(
                    Limit::SubscribeRate,
                    format!(
                        "too many subscribe messages: {} at once, then {} a second (server.subscribe_burst, server.subscribe_per_second); the current subscription stays",
                        s.subscribe_burst, s.subscribe_per_second
                    ),
                );
                return Err(error_frame(e.code(), &e.to_string()));
            }
            crate::publisher::query_of(&sub, &state.publisher.caps()).map_err(|e| {
                let e = ApiError::from(e);
                error_frame(e.code(), &e.to_string())
            })?;
            Ok(sub)
        }
    }
}
