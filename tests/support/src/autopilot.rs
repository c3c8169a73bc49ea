//! The autopilot's black-box tests' pieces: the surge rule, and the simulated centre
//! whose phone billing surge it answers, produced live to a broker while following the
//! switches (as `vigie simulate --brokers` does).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigie::config::{AutopilotRuleSettings, Settings, Threshold};
use vigie::event::Format;
use vigie::ingest::produce::{produce, Pace};
use vigie::simulate::{Scenario, SimulationConfig, Simulator};
use vigie_proto::{AutopilotMode, Comparison, DeflectionTarget, Kpi};

/// The rule under test: a flip when the phone's service level over 2 minutes is under
/// 60 % for 10 s, off once above 70 % for 20 s; a long cooldown, so a second flip would
/// be a bug.
pub fn surge_rule(mode: AutopilotMode) -> AutopilotRuleSettings {
    AutopilotRuleSettings {
        name: "billing-surge".into(),
        mode,
        channel: "phone".into(),
        reason: Some("billing".into()),
        segment: None,
        queue: None,
        target: DeflectionTarget::VisualIvr,
        kpi: Kpi::ServiceLevel,
        comparison: Comparison::Below,
        threshold: Threshold::Number(0.6),
        clear: Threshold::Number(0.7),
        window: "2m".into(),
        for_: Duration::from_secs(10),
        clear_for: Duration::from_secs(20),
        min_projected: Some(0.5),
        expires_in: Duration::from_secs(1_800),
        cooldown: Duration::from_secs(1_800),
        max_flips_per_hour: 2,
        min_volume: 20,
        sinks: None,
    }
}

/// The demo's centre on a flat day, its phone billing surge 15 minutes before now.
pub fn surge_scenario() -> Scenario {
    let mut scenario = Scenario {
        curve: vec![1.0; 24],
        ..Scenario::default()
    };
    for surge in &mut scenario.surges {
        surge.after = Duration::from_secs(30 * 60);
    }
    scenario
}

/// Produces the simulated centre to `settings.kafka` from 45 minutes ago (at once), then
/// live, its IVR following the switches, until `stop`.
pub async fn simulate_surge_live(settings: &Settings, stop: CancellationToken) {
    let store = vigie::deflection::SwitchStore::start(&settings.kafka, stop.clone())
        .await
        .expect("the simulator follows the switches");
    let changes = store.subscribe();
    let start_ms = jiff::Timestamp::now().as_millisecond() - 45 * 60_000;
    let cfg = SimulationConfig {
        seed: 5,
        contacts: None,
        start_ms,
        // The centre plans its shifts at the hours of its clock, so the same seed gives
        // another centre at another minute of the hour: in some (a start at minute 48),
        // the surge never degrades the phone and the rule never fires. Its clock starts
        // at minute 20 whatever the time of the run, where the rule's condition (and its
        // projection) holds at every evaluation from 45 to 55 minutes in.
        clock_shift_ms: 20 * 60_000 - start_ms.rem_euclid(3_600_000),
        contacts_per_second: 3.0,
        scenario: surge_scenario(),
        switches: Some(std::sync::Arc::new(move || changes.borrow().clone())),
        ..SimulationConfig::default()
    };
    let kafka = settings.kafka.clone();
    tokio::spawn(async move {
        // Seen in the failing test's output: a centre that stops producing explains a
        // rule that never fires.
        if let Err(error) = produce(
            &kafka,
            &kafka.topic,
            Simulator::new(cfg),
            Format::Jsonl,
            Pace::EventTime,
            stop,
        )
        .await
        {
            eprintln!("the simulated centre stopped producing: {error}");
        }
    });
}

/// Settings of `vigie serve` on `kafka` with the surge rule in `mode`: no built-in alert
/// rules, alert state in `state_dir`, every notice to the JSON sink `chat`.
pub fn surge_settings(
    kafka: vigie::config::KafkaSettings,
    state_dir: std::path::PathBuf,
    chat: vigie::config::Secret,
    mode: AutopilotMode,
) -> Settings {
    let mut settings = Settings {
        kafka,
        ..Settings::default()
    };
    settings.alerts.default_rules = false;
    settings.alerts.state_dir = Some(state_dir);
    settings.alerts.sinks.insert(
        "chat".into(),
        crate::receiver::sink(vigie::config::SinkKind::Json, chat),
    );
    settings.autopilot.rules = vec![surge_rule(mode)];
    settings
}
