//! Owns the link to the server's websocket: connects, keeps the view's subscription,
//! reconnects with exponential backoff and jitter, and turns every server message into
//! signal updates. Numbers are never shown as live unless the link is up and the server
//! says its data is live (see [`Live::freshness`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use vigie_proto::{
    Alert, DeflectionSwitch, Snapshot, StatusReport, Subscription, SwitchEffect, Trend,
};

use crate::format::Freshness;

/// The state of the link to the server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Connecting,
    Open,
    /// Down since `since` (epoch ms); next attempt at `retry_at`.
    Down {
        since: f64,
        retry_at: f64,
    },
}

/// Everything the server pushes, as signals.
#[derive(Clone, Copy, Debug)]
pub struct Live {
    pub snapshot: RwSignal<Option<Snapshot>>,
    pub trend: RwSignal<Option<Trend>>,
    pub status: RwSignal<Option<StatusReport>>,
    pub switches: RwSignal<Vec<DeflectionSwitch>>,
    pub effects: RwSignal<BTreeMap<String, SwitchEffect>>,
    pub alerts: RwSignal<Vec<Alert>>,
    pub link: RwSignal<Link>,
    /// When the last message arrived (epoch ms).
    pub last_message: RwSignal<f64>,
    /// Wall clock, ticking every second, for ages and badges.
    pub now: RwSignal<f64>,
}

/// Longest silence before the link is considered dead (the server beats every 10 s).
const SILENCE_MS: u32 = 25_000;
const FIRST_RETRY_MS: f64 = 500.0;
const LONGEST_RETRY_MS: f64 = 30_000.0;

impl Live {
    pub fn new() -> Live {
        Live {
            snapshot: RwSignal::new(None),
            trend: RwSignal::new(None),
            status: RwSignal::new(None),
            switches: RwSignal::new(Vec::new()),
            effects: RwSignal::new(BTreeMap::new()),
            alerts: RwSignal::new(Vec::new()),
            link: RwSignal::new(Link::Connecting),
            last_message: RwSignal::new(0.0),
            now: RwSignal::new(js_sys::Date::now()),
        }
    }

    /// What the badge says, and whether numbers may be shown as live.
    pub fn freshness(&self, quiet_after_ms: u64) -> Freshness {
        let now = self.now.get();
        match self.link.get() {
            Link::Connecting => Freshness::Connecting,
            Link::Down { since, retry_at } => Freshness::Offline {
                age_ms: (now - since) as i64,
                retry_in_ms: (retry_at - now).max(0.0) as i64,
            },
            Link::Open => self.status.get().map_or(Freshness::Connecting, |s| {
                Freshness::of_status(&s, now, quiet_after_ms)
            }),
        }
    }

    /// Applies one server message; unknown message types are ignored (newer server).
    pub fn apply(&self, text: &str, current: &Subscription) {
        self.last_message.set(js_sys::Date::now());
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let field = |name: &str| value.get(name).cloned().unwrap_or_default();
        let mine = || {
            serde_json::from_value::<Subscription>(field("subscription"))
                .ok()
                .as_ref()
                == Some(current)
        };
        match value.get("type").and_then(|t| t.as_str()) {
            Some("snapshot") if mine() => {
                if let Ok(s) = serde_json::from_value(field("snapshot")) {
                    self.snapshot.set(Some(s));
                }
            }
            Some("trend") if mine() => {
                if let Ok(t) = serde_json::from_value(field("trend")) {
                    self.trend.set(Some(t));
                }
            }
            Some("status") => {
                if let Ok(s) = serde_json::from_value(value.clone()) {
                    self.status.set(Some(s));
                }
            }
            Some("switches") => {
                if let Ok(s) = serde_json::from_value(field("switches")) {
                    self.switches.set(s);
                }
                self.effects
                    .set(serde_json::from_value(field("effects")).unwrap_or_default());
            }
            Some("alerts") => {
                if let Ok(a) = serde_json::from_value(field("alerts")) {
                    self.alerts.set(a);
                }
            }
            _ => {}
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

/// A future resolving after `ms` milliseconds.
pub fn sleep(ms: u32) -> impl std::future::Future<Output = ()> {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = tx.send(());
        },
        Duration::from_millis(u64::from(ms)),
    );
    rx.map(|_| ())
}

/// The websocket address of this page's server, with the token if any.
fn ws_url(token: Option<&str>) -> String {
    let location = web_sys::window().map(|w| w.location());
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let secure = location
        .as_ref()
        .and_then(|l| l.protocol().ok())
        .is_some_and(|p| p == "https:");
    let scheme = if secure { "wss" } else { "ws" };
    match token {
        Some(t) => format!(
            "{scheme}://{host}/api/v1/ws?access_token={}",
            crate::route::encode(t)
        ),
        None => format!("{scheme}://{host}/api/v1/ws"),
    }
}

/// Keeps a websocket open for as long as the page lives, following the subscriptions
/// sent on `subscriptions`.
pub fn connect(
    live: Live,
    token: Option<String>,
    mut subscription: Subscription,
    mut subscriptions: UnboundedReceiver<Subscription>,
) {
    leptos::task::spawn_local(async move {
        let mut retry_ms = FIRST_RETRY_MS;
        loop {
            live.link.set(Link::Connecting);
            if let Ok(socket) = WebSocket::open(&ws_url(token.as_deref())) {
                let (mut write, mut read) = socket.split();
                let subscribe = |s: &Subscription| {
                    let mut message = serde_json::to_value(s).unwrap_or_default();
                    message["type"] = "subscribe".into();
                    Message::Text(message.to_string())
                };
                let mut opened = write.send(subscribe(&subscription)).await.is_ok();
                while opened {
                    futures::select! {
                        message = read.next().fuse() => match message {
                            Some(Ok(Message::Text(text))) => {
                                if live.link.get_untracked() != Link::Open {
                                    live.link.set(Link::Open);
                                }
                                retry_ms = FIRST_RETRY_MS;
                                live.apply(&text, &subscription);
                            }
                            Some(Ok(Message::Bytes(_))) => {}
                            _ => opened = false,
                        },
                        next = subscriptions.next() => match next {
                            Some(s) => {
                                subscription = s;
                                live.snapshot.set(None);
                                live.trend.set(None);
                                opened = write.send(subscribe(&subscription)).await.is_ok();
                            }
                            None => return,
                        },
                        _ = sleep(SILENCE_MS).fuse() => opened = false,
                    }
                }
            }
            let now = js_sys::Date::now();
            let since = match live.last_message.get_untracked() {
                t if t > 0.0 => t,
                _ => now,
            };
            // Jitter spreads the reconnections of a whole wall of screens after an outage.
            let wait = retry_ms * (0.75 + 0.5 * js_sys::Math::random());
            live.link.set(Link::Down {
                since,
                retry_at: now + wait,
            });
            sleep(wait as u32).await;
            retry_ms = (retry_ms * 2.0).min(LONGEST_RETRY_MS);
        }
    });
}
