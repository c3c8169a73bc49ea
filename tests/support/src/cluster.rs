//! Scale-out: `vigie serve` instances sharing one consumer group with partials on, or a
//! single reference instance consuming everything in a group of its own, all launched
//! from `Settings` through [`VigieServe`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use vigie::config::{KafkaSettings, Settings};

use crate::serve::VigieServe;
use crate::unique;

/// Deadline of every wait of the scale-out suites (rebalances on Tansu are slow).
pub const DEADLINE: Duration = Duration::from_secs(90);
/// Partitions of the events topic.
pub const PARTITIONS: i32 = 6;

/// The settings of one instance named `name` on `kafka`: with partials in `kafka`'s
/// group, or (`partials = false`) the reference instance alone in a group of its own.
/// A short session timeout, so that a killed instance's partitions move soon.
pub fn instance_settings(
    base: &Settings,
    kafka: &KafkaSettings,
    name: &str,
    partials: bool,
) -> Settings {
    let mut settings = base.clone();
    settings.kafka = KafkaSettings {
        group_id: if partials {
            kafka.group_id.clone()
        } else {
            unique("vigie-single")
        },
        partials,
        instance_id: Some(name.to_string()),
        ..kafka.clone()
    };
    settings
        .kafka
        .properties
        .insert("session.timeout.ms".into(), "6000".into());
    settings.auth.mutations_per_minute = 0;
    settings
}

/// One instance of a scale-out test.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub vigie: VigieServe,
}

impl std::ops::Deref for Instance {
    type Target = VigieServe;
    fn deref(&self) -> &VigieServe {
        &self.vigie
    }
}

impl Instance {
    /// Starts instance `name` with default settings but `kafka` (see [`instance_settings`]).
    pub fn start(dir: &Path, name: &str, kafka: &KafkaSettings, partials: bool) -> Instance {
        Instance::start_with(dir, name, kafka, partials, &Settings::default())
    }

    /// Starts instance `name` from `base` settings with `kafka`'s.
    pub fn start_with(
        dir: &Path,
        name: &str,
        kafka: &KafkaSettings,
        partials: bool,
        base: &Settings,
    ) -> Instance {
        let settings = instance_settings(base, kafka, name, partials);
        Instance {
            name: name.to_string(),
            vigie: VigieServe::start(dir, name, &settings),
        }
    }
}

/// A fresh directory for configs, logs and state (kept after the test, for a failing run).
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("vigie-scaleout"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
