//! The agent list and staffing through the API: `GET /api/v1/agents` equal to the
//! engine's list with its filters and pages, JSON errors for bad queries, staffing in
//! the REST snapshot, and the websocket's `agents` subscription.

use std::time::Duration;

use serde_json::{json, Value};
use vigie::event::{AgentState, EventKind, EventRecord};
use vigie_testkit::app::{ws_next_of, ws_send};
use vigie_testkit::TestApp;

const BASE: i64 = 1_795_597_200_000;

/// Six agents: billing and sales, two sites, one away at lunch, one logged out; one
/// phone contact in billing so that the queue has a channel.
fn feed(app: &TestApp) {
    let engine = app.engines.assign(0);
    let agents = [
        ("ann", AgentState::Available, "billing", "lyon"),
        ("bob", AgentState::OnContact, "billing", "lyon"),
        ("cid", AgentState::AfterContactWork, "sales", "lille"),
        ("dan", AgentState::Away, "billing", "lille"),
        ("eve", AgentState::Available, "sales", "lyon"),
        ("fay", AgentState::LoggedOut, "billing", "lyon"),
    ];
    for (i, (agent, state, queue, site)) in agents.into_iter().enumerate() {
        let mut login = EventRecord::agent(
            format!("{agent}-1"),
            BASE + i as i64 * 1_000,
            agent,
            AgentState::Available,
        );
        login.queues = Some(vec![queue.into()]);
        login.site = Some(site.into());
        engine.apply(&login);
        let mut now = EventRecord::agent(format!("{agent}-2"), BASE + 60_000, agent, state);
        if state == AgentState::Away {
            now.away_reason = Some("lunch".into());
        }
        if state == AgentState::OnContact {
            now.interaction_id = "call-9".into();
        }
        engine.apply(&now);
    }
    let mut arrived = EventRecord::new("k-a", EventKind::Arrived, BASE + 90_000, "k");
    arrived.channel = Some("phone".into());
    let mut queued = EventRecord::new("k-q", EventKind::Queued, BASE + 90_000, "k");
    queued.queue = Some("billing".into());
    engine.apply(&arrived);
    engine.apply(&queued);
}

fn ids(list: &Value) -> Vec<&str> {
    list["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["agent_id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn the_agent_list_filters_pages_and_refuses_bad_queries_in_json() {
    let app = TestApp::spawn().await;
    feed(&app);
    let (status, all) = app.get_json("/api/v1/agents").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all["total"], 5,
        "logged-out agents are not listed by default"
    );
    assert_eq!(
        ids(&all),
        ["ann", "eve", "bob", "cid", "dan"],
        "by state, longest first"
    );
    let bob = &all["agents"][2];
    assert_eq!(bob["state"], "on_contact");
    assert_eq!(bob["interaction_id"], "call-9");
    assert_eq!(bob["queues"], json!(["billing"]));
    assert_eq!(all["agents"][4]["away_reason"], "lunch");

    let (_, billing) = app.get_json("/api/v1/agents?queue=billing&site=lyon").await;
    assert_eq!(ids(&billing), ["ann", "bob"]);
    let (_, away) = app.get_json("/api/v1/agents?state=away").await;
    assert_eq!(ids(&away), ["dan"]);
    let (_, out) = app.get_json("/api/v1/agents?state=logged_out").await;
    assert_eq!(ids(&out), ["fay"]);
    let (_, page) = app.get_json("/api/v1/agents?limit=2&offset=2").await;
    assert_eq!(
        (ids(&page), &page["next_offset"]),
        (vec!["bob", "cid"], &json!(4))
    );

    for (path, code, says) in [
        ("/api/v1/agents?state=napping", "bad_query", "napping"),
        ("/api/v1/agents?limit=0", "bad_query", "limit"),
        (
            "/api/v1/agents?limit=100000",
            "bad_query",
            "server.max_agent_rows",
        ),
        (
            "/api/v1/agents?window=3y",
            "bad_window",
            "engine.max_window",
        ),
        ("/api/v1/agents?colour=red", "bad_query", "colour"),
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }

    let (_, snapshot) = app.get_json("/api/v1/snapshot").await;
    let staffing = &snapshot["total"]["staffing"];
    assert_eq!(
        (
            &staffing["staffed"],
            &staffing["available"],
            &staffing["on_contact"],
            &staffing["after_contact_work"],
            &staffing["away"]
        ),
        (&json!(5), &json!(2), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(staffing["away_reasons"]["lunch"], 1);
    assert_eq!(snapshot["queues"]["billing"]["staffing"]["staffed"], 3);
    assert_eq!(
        snapshot["queues"]["sales"]["staffing"]["staffed"], 2,
        "a queue with agents and no contact is listed"
    );
    assert_eq!(
        snapshot["by_channel"]["phone"]["staffing"]["staffed"], 3,
        "billing's agents count in phone, billing's channel"
    );
}

#[tokio::test]
async fn a_websocket_subscription_may_ask_for_the_agent_list() {
    let app = TestApp::spawn().await;
    feed(&app);
    let mut ws = app.ws().await;
    ws_send(
        &mut ws,
        &json!({"type": "subscribe", "window": "15m", "queue": "billing", "agents": true}),
    )
    .await;
    let deadline = Duration::from_secs(10);
    let frame = loop {
        let frame = ws_next_of(&mut ws, "snapshot", deadline).await;
        if frame["subscription"]["agents"] == true {
            break frame;
        }
    };
    assert_eq!(ids(&frame["agents"]), ["ann", "bob", "dan"]);
    assert_eq!(frame["snapshot"]["total"]["staffing"]["staffed"], 3);
}
