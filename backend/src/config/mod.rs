//! Owns the typed settings tree: defaults, layering (default → TOML file →
//! `VIGIE__SECTION__KEY` environment), and validation that reports every problem at once.
//!
//! Example (`deploy/vigie.example.toml` has the full, commented tree):
//! ```toml
//! [engine]
//! allowed_lateness = "5m"
//! repeat_horizon = "7d"
//! time_zone = "Europe/Paris"
//!
//! # NF345 reading: 80 % of calls answered within 1 min 30.
//! [engine.channels.phone.service_level]
//! threshold = "90s"
//! target = 0.8
//! ```

//!
//! Layout: one submodule per section ([`engine`], [`kafka`], [`auth`], [`alerts`],
//! [`cockpit`], [`server`]), each owning its types, defaults and checks, and [`window`], the window
//! vocabulary they share with the API; this module layers the sources and gathers every
//! section's problems into one [`ConfigError`]. A leaf: it uses nothing else of the crate.

mod alerts;
mod auth;
mod autopilot;
mod cockpit;
mod engine;
mod kafka;
mod server;
#[cfg(test)]
mod tests;
mod window;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use alerts::{
    builtin_rules, AlertRuleSettings, AlertSettings, RuleInForce, Secret, SinkKind, SinkSettings,
    Threshold,
};
pub use auth::{AuthSettings, JwtAlgorithm, OidcSettings, Role, TokenSettings};
pub use autopilot::{AutopilotRuleSettings, AutopilotSettings};
pub use cockpit::CockpitSettings;
pub use engine::{ChannelSettings, EngineSettings, ServiceLevelSettings};
pub use kafka::{KafkaSettings, PayloadFormat};
pub use server::ServerSettings;
pub use window::{WindowError, WindowSpec};

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub engine: EngineSettings,
    pub kafka: KafkaSettings,
    pub auth: AuthSettings,
    pub alerts: AlertSettings,
    pub autopilot: AutopilotSettings,
    pub log: LogSettings,
    pub cockpit: CockpitSettings,
    pub server: ServerSettings,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `tracing` filter directive (`RUST_LOG` overrides it), e.g. `info,vigie=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
        }
    }
}

/// Every problem found in the configuration, each naming its key and the fix.
#[derive(Debug, Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Loads defaults, then `file` (if given), then `VIGIE__SECTION__KEY` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, Env::prefixed("VIGIE__").split("__"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(vec![format!(
                    "config file {} does not exist; pass an existing TOML file or none",
                    path.display()
                )]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut settings: Settings = figment.merge(env).extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| {
                        let key = e.path.join(".");
                        let source = e
                            .metadata
                            .as_ref()
                            .map(|m| m.name.to_string())
                            .unwrap_or_default();
                        let kind = e.kind.to_string();
                        match (key.is_empty(), source.is_empty()) {
                            (true, _) => kind,
                            (false, true) => format!("{key}: {kind}"),
                            (false, false) => format!("{key}: {kind} (from {source})"),
                        }
                    })
                    .collect(),
            )
        })?;
        settings.kafka.normalize_properties();
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every rule and reports all violations together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        self.engine.validate(&mut errors);
        self.kafka.validate(&mut errors);
        self.auth.validate(&mut errors);
        self.cockpit.validate(&mut errors);
        self.server.validate(&mut errors);
        self.alerts.validate(&self.engine, &mut errors);
        let sinks: Vec<String> = self.alerts.sinks.keys().cloned().collect();
        self.autopilot.validate(&self.engine, &sinks, &mut errors);
        // One producer whose clock runs `max_clock_skew` ahead moves the watermark that
        // far: every event delayed by more than `allowed_lateness - max_clock_skew` is then
        // late. At most half the lateness keeps that margin for on-time events.
        if self.kafka.max_clock_skew > self.engine.allowed_lateness / 2 {
            errors.push(format!(
                "kafka.max_clock_skew: at most half of engine.allowed_lateness ({}), or one producer's fast clock makes on-time events late; lower it (e.g. \"2m\") or raise the lateness",
                humantime::format_duration(self.engine.allowed_lateness / 2)
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }
}
