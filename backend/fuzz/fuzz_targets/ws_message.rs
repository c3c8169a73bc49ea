//! A websocket text frame from a cockpit (`ClientMessage`), parsed as the server does,
//! checked into an engine query, and, if valid, answered (snapshot and trend) from an
//! engine holding simulated traffic: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie::engine::{EngineConfig, EngineSet, TrendShape};
use vigie::publisher::{query_of, SubscriptionCaps};
use vigie::simulate::{SimulationConfig, Simulator};
use vigie_proto::ClientMessage;

thread_local! {
    static ENGINES: EngineSet = {
        let engines = EngineSet::new(EngineConfig::default());
        let engine = engines.assign(0);
        for event in Simulator::new(SimulationConfig {
            contacts: Some(300),
            ..SimulationConfig::default()
        }) {
            engine.apply(&event);
        }
        engines
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(ClientMessage::Subscribe(subscription)) = serde_json::from_slice(data) else {
        return;
    };
    let Ok(query) = query_of(&subscription, &SubscriptionCaps::default()) else {
        return;
    };
    ENGINES.with(|engines| {
        let _ = engines.snapshot(&query);
        let _ = engines.trend(&query, TrendShape::default());
    });
});
