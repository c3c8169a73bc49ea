//! Measures the engine's memory per tracked customer (target: ≤ 100 bytes at 10 M customers).
//!
//! Run: `cargo run --release -p vigie --example customer_memory [-- CUSTOMERS [anonymous]]`
//! Feeds CUSTOMERS contacts (default 10 M), one contact per distinct customer (abandoned at once, so it is finished),
//! spread over 5 days of event time so finished interactions are evicted while every
//! customer stays within the 7-day repeat horizon; reports the resident memory growth.
//! With `anonymous`, the same contacts carry no customer id: the difference between the
//! two runs, divided by the customer count, is the cost of one tracked customer
//! (`scripts/bench-replay.sh` runs both).

use std::borrow::Cow;

use vigie::engine::{Engine, EngineConfig};
use vigie::event::{EventKind, EventRecord};

#[path = "support/resident.rs"]
mod resident;
use resident::resident_bytes;

fn main() {
    let customers: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let anonymous = std::env::args().nth(2).is_some_and(|a| a == "anonymous");
    let span_ms: i64 = 5 * 86_400_000;
    let step = (span_ms / customers as i64).max(1);
    let engine = Engine::new(EngineConfig::default());
    let before = resident_bytes();
    let start = 1_795_593_600_000i64;
    let mut ids = (String::new(), String::new(), String::new());
    let channels = ["phone", "chat", "email", "messaging", "visual_ivr"];
    for n in 0..customers {
        let ts = start + n as i64 * step;
        ids.0.clear();
        ids.1.clear();
        ids.2.clear();
        use std::fmt::Write;
        let _ = write!(ids.0, "i{n}");
        let _ = write!(ids.1, "c{n}");
        let _ = write!(ids.2, "e{n}a");
        let mut ev = EventRecord {
            customer_id: (!anonymous).then_some(Cow::Borrowed(&ids.1)),
            channel: Some(Cow::Borrowed(channels[(n % 5) as usize])),
            ..EventRecord::new(ids.2.as_str(), EventKind::Arrived, ts, ids.0.as_str())
        };
        engine.apply(&ev);
        let finished_id = format!("e{n}b");
        ev.event_id = Cow::Borrowed(&finished_id);
        ev.kind = EventKind::Abandoned;
        ev.ts_ms = ts + 500;
        engine.apply(&ev);
    }
    let after = resident_bytes();
    let tracked = engine.tracked_customers() as u64;
    println!(
        "contacts: {customers}\ncustomers tracked: {tracked}\ninteractions held: {}\nlogged effects and cells: {}\nresident growth bytes: {}",
        engine.tracked_interactions(),
        engine.stored_entries(),
        after - before
    );
}
