//! `vigie ingest connect` against a real broker (Tansu): Amazon Connect's contact and
//! agent events arrive on a raw topic (as an EventBridge or Kinesis connector would put
//! them), the bridge converts and produces them, and `vigie serve` on the events topic
//! shows exactly what `vigie replay --format connect` gives for the same records.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use vigie::config::Settings;
use vigie_testkit::broker::create_topics;
use vigie_testkit::serve::{replay_kpis, vigie, KillOnDrop};
use vigie_testkit::{unique, Broker, VigieServe};

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("time")
        .to_string()
}

/// An hour of contacts ending now, with the events EventBridge delivers for each
/// (answered, abandoned in queue, or abandoned then answered after a queue transfer),
/// and three agents logging in and taking calls.
fn records() -> Vec<Value> {
    let now = jiff::Timestamp::now().as_millisecond();
    let start = now - 3_600_000;
    let queue = "arn:aws:connect:eu-west-3:1:instance/i/queue/billing-id";
    let mut out = Vec::new();
    for (i, agent) in ["ann", "bob", "eve"].iter().enumerate() {
        out.push(json!({
            "AgentARN": format!("arn:aws:connect:eu-west-3:1:instance/i/agent/{agent}-id"),
            "EventId": format!("login-{agent}"), "EventType": "LOGIN",
            "EventTimestamp": iso(start - 1_000 + i as i64),
            "CurrentAgentSnapshot": {
                "AgentStatus": {"Name": "Available", "Type": "ROUTABLE"},
                "Configuration": {"Username": agent, "RoutingProfile": {"InboundQueues": [{"ARN": queue, "Name": "Billing"}]}},
                "Contacts": []
            }
        }));
    }
    let event = |t: &str, id: &str, extra: Value| {
        let mut detail = json!({"eventType": t, "contactId": id, "channel": "VOICE", "initiationMethod": "INBOUND"});
        for (k, v) in extra.as_object().expect("object") {
            detail[k] = v.clone();
        }
        json!({"version": "0", "detail-type": "Amazon Connect Contact Event", "source": "aws.connect", "detail": detail})
    };
    let mut t = start;
    let mut n = 0;
    while t < now - 600_000 {
        n += 1;
        let id = format!("contact-{n}");
        let init = json!({"initiationTimestamp": iso(t)});
        let q = json!({"queueArn": queue, "enqueueTimestamp": iso(t + 20_000)});
        let with = |extra: Value| {
            let mut e = init.clone();
            for (k, v) in extra.as_object().expect("object") {
                e[k] = v.clone();
            }
            e
        };
        out.push(event("INITIATED", &id, with(json!({}))));
        out.push(event("QUEUED", &id, with(json!({"queueInfo": q}))));
        let agent = json!({"agentArn": "arn:aws:connect:eu-west-3:1:instance/i/agent/ann-id",
                           "connectedToAgentTimestamp": iso(t + 20_000 + (n % 7) * 9_000)});
        match n % 5 {
            0 => out.push(event(
                "DISCONNECTED",
                &id,
                with(json!({"queueInfo": q, "disconnectTimestamp": iso(t + 95_000)})),
            )),
            1 => {
                out.push(event(
                    "DISCONNECTED",
                    &id,
                    with(json!({"queueInfo": q, "disconnectTimestamp": iso(t + 60_000)})),
                ));
                let leg = format!("{id}-t");
                let leg_agent = json!({"agentArn": "arn:aws:connect:eu-west-3:1:instance/i/agent/bob-id",
                                       "connectedToAgentTimestamp": iso(t + 90_000)});
                out.push(json!({"detail": {"eventType": "CONNECTED_TO_AGENT", "contactId": leg, "initialContactId": id,
                    "previousContactId": id, "channel": "VOICE", "initiationMethod": "QUEUE_TRANSFER",
                    "initiationTimestamp": iso(t + 60_000), "agentInfo": leg_agent}}));
            }
            _ => {
                out.push(event(
                    "CONNECTED_TO_AGENT",
                    &id,
                    with(json!({"queueInfo": q, "agentInfo": agent})),
                ));
                out.push(event("DISCONNECTED", &id, with(json!({"queueInfo": q, "agentInfo": agent, "disconnectTimestamp": iso(t + 300_000)}))));
            }
        }
        t += 25_000;
    }
    out
}

async fn produce_raw(kafka: &vigie::config::KafkaSettings, topic: &str, records: &[Value]) {
    let producer: FutureProducer = vigie::kafka::client_config(kafka)
        .create()
        .expect("producer");
    for r in records {
        let payload = r.to_string();
        let key = r["detail"]["contactId"]
            .as_str()
            .unwrap_or("agent")
            .to_string();
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_bridge_produces_what_replay_counts() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        kafka: broker.kafka(),
        ..Settings::default()
    };
    create_topics(&settings.kafka, 2).await;
    let raw = unique("connect-raw");
    let mut raw_kafka = settings.kafka.clone();
    raw_kafka.topic = raw.clone();
    raw_kafka.dlq_topic = format!("{raw}.dlq");
    // One partition: the backlog below is an hour produced at once, read in its order
    // (spread over partitions, one partition's hour would come before the other's and
    // fall beyond the allowed lateness; live, records arrive within seconds).
    create_topics(&raw_kafka, 1).await;
    let records = records();
    assert!(records.len() > 400, "{}", records.len());
    let (first, second) = records.split_at(records.len() / 2);
    produce_raw(&settings.kafka, &raw, first).await;
    let _bridge = KillOnDrop(
        vigie()
            .args(["ingest", "connect", "--from-topic", &raw])
            .args([
                "--brokers",
                &settings.kafka.brokers,
                "--topic",
                &settings.kafka.topic,
            ])
            .args(["--group", &unique("bridge")])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the bridge starts"),
    );
    let serve = VigieServe::start(dir.path(), "vigie", &settings);
    produce_raw(&settings.kafka, &raw, second).await;

    let file = dir.path().join("connect.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    let expected = replay_kpis(&["--format", "connect", "--window", "1h"], &file);
    let t = &expected["total"];
    assert!(
        t["answered"].as_u64() > Some(50) && t["abandoned"].as_u64() > Some(10),
        "{t}"
    );
    assert_eq!(t["staffing"]["staffed"].as_u64(), Some(3), "{t}");
    assert!(
        expected["queues"].get("Billing").is_some(),
        "named by the routing profiles: {expected}"
    );
    serve
        .shows("1h", None, &expected, Duration::from_secs(90))
        .await;
}
