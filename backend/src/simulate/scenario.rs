//! Owns the simulated centre's description: its queues (channel, contact reasons,
//! handling, after-contact work, patience), its teams of agents (skills, site, size,
//! shifts and breaks), the arrival curve over the day and the surges; the defaults, and
//! the scenario file (TOML) that replaces them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Arrival rate factor for each hour of the day (24 values; `--rate` times the factor).
    #[serde(default = "default_curve")]
    pub curve: Vec<f64>,
    /// Share of arrivals per channel (default: the usual omnichannel mix).
    #[serde(default)]
    pub channel_shares: BTreeMap<String, f64>,
    pub queues: Vec<QueueSpec>,
    #[serde(default)]
    pub teams: Vec<TeamSpec>,
    #[serde(default)]
    pub surges: Vec<Surge>,
    /// Service level teams are sized for (with each queue's channel threshold).
    #[serde(default = "default_target")]
    pub target_service_level: f64,
    /// Share of agents away at any time (breaks, lunch, meetings): teams are sized up by it.
    #[serde(default = "default_shrinkage")]
    pub shrinkage: f64,
}

/// One queue: the contacts of a channel (and some of its reasons).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    pub channel: String,
    /// Contact reasons routed here (empty: every reason of the channel not routed elsewhere).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Mean handling time (exponential), from answer to end.
    #[serde(with = "humantime_serde")]
    pub mean_handle: Duration,
    /// Mean after-contact work (exponential; 0s: none).
    #[serde(default, with = "humantime_serde")]
    pub mean_after_contact_work: Duration,
    /// Mean customer patience (exponential); absent: nobody gives up (e-mail, web form).
    #[serde(default, with = "humantime_serde")]
    pub mean_patience: Option<Duration>,
    /// Share of contacts given up within 5 s (callers hanging up at once).
    #[serde(default)]
    pub hang_up_share: f64,
    /// Mean time in the IVR or routing before queueing (exponential; counts in the wait).
    #[serde(default, with = "humantime_serde")]
    pub mean_routing: Duration,
    /// Share of contacts the IVR deflects by itself (switches aside).
    #[serde(default)]
    pub deflect_share: f64,
    /// Answered by a bot (visual IVR, voicebot, chatbot): no agent, a wait of seconds.
    #[serde(default)]
    pub self_service: bool,
    /// Service-level threshold the teams serving it are sized for.
    #[serde(default = "default_threshold", with = "humantime_serde")]
    pub threshold: Duration,
}

/// Agents with the same skills and site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    pub name: String,
    /// The queues they serve; several: multi-skilled (each takes the longest waiting
    /// contact of its queues).
    pub queues: Vec<String>,
    pub site: String,
    /// A fixed number of agents, logged in all along; absent: sized hour by hour from
    /// the load (Erlang C for the target service level, plus shrinkage), in shifts.
    #[serde(default)]
    pub agents: Option<u32>,
    /// Breaks (15 min) and lunch (40 min) during shifts.
    #[serde(default = "yes")]
    pub breaks: bool,
}

/// Extra arrivals of one channel (and reason) for a while: an incident, a mailing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surge {
    pub channel: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Start, after the simulation's start.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Arrivals of the scope are multiplied by this while it lasts.
    pub factor: f64,
}

fn default_curve() -> Vec<f64> {
    // A morning peak, a lunch dip, a second smaller peak, quiet nights.
    vec![
        0.15, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.1, 1.35, 1.3, 1.15, 0.85, 0.9, 1.1, 1.15, 1.05,
        0.9, 0.7, 0.5, 0.35, 0.3, 0.25, 0.2,
    ]
}
fn default_target() -> f64 {
    0.8
}
fn default_shrinkage() -> f64 {
    0.12
}
fn default_threshold() -> Duration {
    Duration::from_secs(20)
}
fn yes() -> bool {
    true
}

/// Contact reasons and their shares.
pub(crate) const REASONS: [(&str, f64); 6] = [
    ("billing", 0.3),
    ("technical", 0.25),
    ("contract", 0.15),
    ("moving", 0.1),
    ("claim", 0.12),
    ("other", 0.08),
];

/// The usual mix of channels.
const CHANNEL_SHARES: [(&str, f64); 10] = [
    ("phone", 0.42),
    ("chat", 0.14),
    ("email", 0.11),
    ("messaging", 0.10),
    ("callback", 0.06),
    ("social", 0.04),
    ("visual_ivr", 0.05),
    ("voicebot", 0.04),
    ("chatbot", 0.02),
    ("webform", 0.02),
];

impl Default for Scenario {
    /// A mid-size omnichannel centre on four sites: phone split by reason with a
    /// multi-skilled team, chat and messaging together, a back office for written
    /// channels and callbacks, bots for self-service; a billing surge on the phone half
    /// an hour in.
    fn default() -> Self {
        let s = Duration::from_secs;
        let queue =
            |name: &str, channel: &str, reasons: &[&str], handle: u64, acw: u64| QueueSpec {
                name: name.into(),
                channel: channel.into(),
                reasons: reasons.iter().map(|r| r.to_string()).collect(),
                mean_handle: s(handle),
                mean_after_contact_work: s(acw),
                mean_patience: None,
                hang_up_share: 0.0,
                mean_routing: Duration::ZERO,
                deflect_share: 0.0,
                self_service: false,
                threshold: s(20),
            };
        let live = |mut q: QueueSpec, patience: u64, threshold: u64, deflect: f64| {
            q.mean_patience = Some(s(patience));
            q.hang_up_share = 0.04;
            q.mean_routing = s(8);
            q.deflect_share = deflect;
            q.threshold = s(threshold);
            q
        };
        let written = |mut q: QueueSpec, threshold: u64| {
            q.threshold = s(threshold);
            q.mean_routing = s(2);
            q
        };
        let bot = |mut q: QueueSpec| {
            q.self_service = true;
            q.mean_patience = Some(s(120));
            q.hang_up_share = 0.04;
            q.mean_routing = s(2);
            q
        };
        let team = |name: &str, queues: &[&str], site: &str| TeamSpec {
            name: name.into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            site: site.into(),
            agents: None,
            breaks: true,
        };
        Scenario {
            curve: default_curve(),
            channel_shares: CHANNEL_SHARES
                .iter()
                .map(|(c, share)| (c.to_string(), *share))
                .collect(),
            queues: vec![
                live(
                    queue("phone_billing", "phone", &["billing"], 330, 30),
                    150,
                    20,
                    0.05,
                ),
                live(
                    queue("phone_technical", "phone", &["technical"], 420, 45),
                    150,
                    20,
                    0.05,
                ),
                live(queue("phone_general", "phone", &[], 300, 30), 150, 20, 0.08),
                live(queue("chat", "chat", &[], 540, 30), 180, 40, 0.02),
                live(queue("messaging", "messaging", &[], 480, 30), 900, 60, 0.01),
                live(
                    queue("callback", "callback", &[], 300, 30),
                    7_200,
                    1_800,
                    0.0,
                ),
                written(queue("email", "email", &[], 420, 0), 4 * 3_600),
                written(queue("webform", "webform", &[], 300, 0), 4 * 3_600),
                written(queue("social", "social", &[], 300, 0), 3_600),
                bot(queue("visual_ivr", "visual_ivr", &[], 200, 0)),
                bot(queue("voicebot", "voicebot", &[], 240, 0)),
                bot(queue("chatbot", "chatbot", &[], 300, 0)),
            ],
            teams: vec![
                team("billing", &["phone_billing"], "paris"),
                team("technical", &["phone_technical"], "lyon"),
                team("general", &["phone_general", "phone_billing"], "lille"),
                team("digital", &["chat", "messaging"], "rabat"),
                team(
                    "back-office",
                    &["email", "webform", "social", "callback"],
                    "paris",
                ),
            ],
            surges: vec![Surge {
                channel: "phone".into(),
                reason: Some("billing".into()),
                after: s(30 * 60),
                duration: s(90 * 60),
                factor: 2.5,
            }],
            target_service_level: default_target(),
            shrinkage: default_shrinkage(),
        }
    }
}

impl Scenario {
    /// The default centre under a steady load: a flat curve and no surge, so that
    /// arrivals come at exactly the configured rate at any hour (tests, benchmarks).
    pub fn steady() -> Scenario {
        Scenario {
            curve: vec![1.0; 24],
            surges: Vec::new(),
            ..Scenario::default()
        }
    }
}

/// Why a scenario cannot be simulated: every problem, each naming its field.
#[derive(Debug, thiserror::Error)]
#[error("scenario: {}", .0.join("; "))]
pub struct ScenarioError(pub Vec<String>);

impl Scenario {
    /// Reads a scenario file (TOML).
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        use figment::providers::{Format, Toml};
        let scenario: Scenario = figment::Figment::from(Toml::file_exact(path))
            .extract()
            .map_err(|e| ScenarioError(e.into_iter().map(|e| e.to_string()).collect()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks what serde cannot: every problem at once.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut errors = Vec::new();
        if self.curve.len() != 24 || self.curve.iter().any(|f| !(0.0..=100.0).contains(f)) {
            errors.push("curve: 24 factors (one per hour), each between 0 and 100".to_string());
        }
        if self.queues.is_empty() {
            errors.push("queues: at least one".into());
        }
        for (i, q) in self.queues.iter().enumerate() {
            if q.name.is_empty() || self.queues[..i].iter().any(|o| o.name == q.name) {
                errors.push(format!("queues[{i}].name: non-empty and unique"));
            }
            if q.mean_handle.is_zero() {
                errors.push(format!("queues[{i}].mean_handle: longer than 0s"));
            }
            for (field, share) in [
                ("hang_up_share", q.hang_up_share),
                ("deflect_share", q.deflect_share),
            ] {
                if !(0.0..=1.0).contains(&share) {
                    errors.push(format!("queues[{i}].{field}: between 0 and 1"));
                }
            }
            let served = self.teams.iter().any(|t| t.queues.contains(&q.name));
            if !q.self_service && !served {
                errors.push(format!(
                    "queues[{i}]: no team serves {:?} (add it to a team's queues, or set self_service)",
                    q.name
                ));
            }
        }
        for (i, t) in self.teams.iter().enumerate() {
            for q in &t.queues {
                if !self.queues.iter().any(|s| &s.name == q && !s.self_service) {
                    errors.push(format!(
                        "teams[{i}].queues: {q:?} is not a queue with agents"
                    ));
                }
            }
            if t.queues.is_empty() {
                errors.push(format!("teams[{i}].queues: at least one"));
            }
        }
        for (i, s) in self.surges.iter().enumerate() {
            if !(0.0..=100.0).contains(&s.factor) {
                errors.push(format!("surges[{i}].factor: between 0 and 100"));
            }
        }
        if !(0.0..1.0).contains(&self.target_service_level) {
            errors.push("target_service_level: between 0 and 1 (excluded)".into());
        }
        if !(0.0..0.9).contains(&self.shrinkage) {
            errors.push("shrinkage: between 0 and 0.9".into());
        }
        if self
            .channel_shares
            .values()
            .any(|s| !(*s >= 0.0 && s.is_finite()))
        {
            errors.push("channel_shares: each at least 0".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_valid_and_a_file_replaces_it() {
        Scenario::default().validate().expect("valid");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("centre.toml");
        std::fs::write(
            &path,
            r#"
channel_shares = { phone = 1.0 }
[[queues]]
name = "support"
channel = "phone"
mean_handle = "1m"
[[teams]]
name = "all"
queues = ["support"]
site = "paris"
agents = 12
"#,
        )
        .expect("write");
        let s = Scenario::from_file(&path).expect("valid file");
        assert_eq!(s.queues[0].mean_patience, None);
        assert_eq!(s.teams[0].agents, Some(12));
        assert_eq!(s.curve.len(), 24, "default curve");
        std::fs::write(
            &path,
            r#"
[[queues]]
name = "support"
channel = "phone"
mean_handle = "0s"
"#,
        )
        .expect("write");
        let err = Scenario::from_file(&path).expect_err("invalid").to_string();
        assert!(err.contains("queues[0].mean_handle"), "{err}");
        assert!(err.contains("no team serves"), "{err}");
    }
}
