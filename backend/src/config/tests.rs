//! Loading and validation of the whole tree: layering, errors by key, the shipped examples.

use super::*;
use figment::providers::Env;
use std::io::Write;
use std::time::Duration;

fn load_toml(toml: &str) -> Result<Settings, ConfigError> {
    // Removed when dropped, after the load.
    let mut file = tempfile::Builder::new()
        .prefix("vigie-config-")
        .suffix(".toml")
        .tempfile()
        .expect("create");
    file.write_all(toml.as_bytes()).expect("write");
    Settings::load_from(Some(file.path()), Env::prefixed("VIGIE_TEST_NONE__"))
}

/// The service-level threshold of `channel`, if it has a target.
fn sl_threshold(s: &Settings, channel: &str) -> Option<Duration> {
    s.engine.channels[channel]
        .service_level
        .as_ref()
        .map(|sl| sl.threshold)
}

#[test]
fn defaults_match_the_domain_norms() {
    let s = Settings::default();
    assert_eq!(sl_threshold(&s, "phone"), Some(Duration::from_secs(20)));
    assert_eq!(
        sl_threshold(&s, "email"),
        Some(Duration::from_secs(4 * 3_600))
    );
    assert!(
        !s.engine.channels.contains_key("visual_ivr"),
        "visual_ivr & unknown: no target"
    );
    assert_eq!(s.engine.allowed_lateness, Duration::from_secs(300));
    assert_eq!(s.engine.repeat_horizon, Duration::from_secs(7 * 86_400));
}

#[test]
fn nf345_is_expressible_and_merges_over_defaults() {
    let s = load_toml(
        "[engine.channels.phone.service_level]\nthreshold = \"90s\"\ntarget = 0.8\n[engine]\ntime_zone = \"Europe/Paris\"\n",
    )
    .expect("valid");
    assert_eq!(sl_threshold(&s, "phone"), Some(Duration::from_secs(90)));
    assert_eq!(
        sl_threshold(&s, "chat"),
        Some(Duration::from_secs(40)),
        "other defaults kept"
    );
}

#[test]
fn unknown_keys_and_bad_values_are_all_reported_by_key() {
    let err = load_toml("[engine]\nlateness = \"5m\"\n").expect_err("unknown key");
    assert!(err.to_string().contains("lateness"), "{err}");
    let err = load_toml(
        "[engine]\ntime_zone = \"Mars/Olympus\"\nrepeat_horizon = \"0s\"\n[engine.channels.chat.service_level]\nthreshold = \"40s\"\ntarget = 80\n",
    )
    .expect_err("invalid");
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(err.to_string().contains("engine.time_zone"), "{err}");
    assert!(
        err.to_string()
            .contains("engine.channels.chat.service_level.target"),
        "{err}"
    );
    let err =
        load_toml("[engine]\nallowed_lateness = \"five minutes\"\n").expect_err("bad duration");
    assert!(err.to_string().contains("engine.allowed_lateness"), "{err}");
}

#[test]
#[allow(clippy::result_large_err)] // figment's test harness returns its own error type
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("VIGIE__ENGINE__ALLOWED_LATENESS", "4m");
        jail.create_file("vigie.toml", "[engine]\nallowed_lateness = \"10m\"\n")?;
        let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(s.engine.allowed_lateness, Duration::from_secs(240));
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's test harness returns its own error type
fn librdkafka_properties_come_from_the_environment_with_underscores_for_dots() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("VIGIE__KAFKA__PROPERTIES__SASL_PASSWORD", "s3cr3t");
        jail.set_env("VIGIE__KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS", "100");
        jail.create_file(
            "vigie.toml",
            "[kafka.properties]\n\"sasl.username\" = \"vigie\"\n\"sasl.password\" = \"change-me\"\n",
        )?;
        let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
        let p = &s.kafka.properties;
        assert_eq!(p["sasl.username"], "vigie");
        assert_eq!(p["sasl.password"], "s3cr3t", "the environment wins");
        assert_eq!(p["fetch.wait.max.ms"], "100");
        assert_eq!(p.len(), 3, "{p:?}");
        Ok(())
    });
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.example.toml");
    let s = Settings::load_from(Some(&path), Env::prefixed("VIGIE_TEST_NONE__"))
        .expect("example is valid");
    assert_eq!(s.engine.time_zone, "Europe/Paris");
    assert_eq!(
        s.engine.channels["callback"].short_abandon,
        Some(Duration::ZERO)
    );
    assert_eq!(s.alerts.rules[0].name, "phone-nf345");
    assert_eq!(s.alerts.rules[0].for_, Duration::from_secs(120));
}

#[test]
#[allow(clippy::result_large_err)] // figment's test harness returns its own error type
fn alert_sinks_load_from_file_and_environment_and_secrets_stay_hidden() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "VIGIE__ALERTS__SINKS__OPS__URL",
            "https://hooks.slack.com/services/T0/B0/s3cr3t",
        );
        jail.create_file(
            "vigie.toml",
            "[alerts]\nstate_dir = \"state\"\n[alerts.sinks.ops]\nkind = \"slack\"\n\
             [alerts.sinks.hook]\nkind = \"json\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"k3y-k3y-k3y-k3y-k3y\"\n\
             [[alerts.rules]]\nname = \"stuck\"\nkpi = \"oldest_wait\"\nqueue = \"billing\"\n\
             comparison = \"above\"\nthreshold = \"10m\"\nclear = \"5m\"\nsinks = [\"ops\"]\n",
        )?;
        let s = Settings::load(Some(Path::new("vigie.toml"))).map_err(|e| e.to_string())?;
        let ops = &s.alerts.sinks["ops"];
        assert_eq!(
            ops.url.expose(),
            "https://hooks.slack.com/services/T0/B0/s3cr3t"
        );
        assert_eq!(ops.retry_max, Duration::from_secs(300), "defaults");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("k3y"),
            "{shown}"
        );
        let stuck = s
            .alerts
            .rules
            .iter()
            .find(|r| r.name == "stuck")
            .expect("rule");
        let clear = stuck.clear.expect("clear").value(stuck.kpi);
        assert_eq!(
            (stuck.threshold.value(stuck.kpi), clear),
            (Ok(600_000.0), Ok(300_000.0))
        );
        Ok(())
    });
    let err = load_toml("[[alerts.rules]]\nname = \"x\"\nkpi = \"happiness\"\n")
        .expect_err("unknown kpi");
    assert!(err.to_string().contains("kpi"), "{err}");
}

#[test]
fn the_managed_kafka_example_passes_properties_through() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.managed-kafka.toml");
    let s = Settings::load_from(Some(&path), Env::prefixed("VIGIE_TEST_NONE__"))
        .expect("example is valid");
    assert_eq!(s.kafka.properties["security.protocol"], "SASL_SSL");
    assert_eq!(s.kafka.group_id, "vigie-hypervision");
}

/// The configuration shipped in the Kubernetes ConfigMap is valid as it stands.
#[test]
fn the_kubernetes_configmap_holds_a_valid_scale_out_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/configmap.yaml");
    let yaml = std::fs::read_to_string(&path).expect("configmap");
    // The block scalar under `vigie.toml: |`, indented by four spaces.
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("vigie.toml: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    assert!(
        toml.contains("[kafka]"),
        "no vigie.toml block found in {}",
        path.display()
    );
    let s = load_toml(&toml).expect("the ConfigMap's vigie.toml is valid");
    assert!(s.kafka.partials, "replicas merge their partials");
    assert_eq!(s.kafka.properties["heartbeat.interval.ms"], "3000");
}

#[test]
fn tokens_are_checked_and_roles_parsed() {
    let s = load_toml(&format!(
        "[[auth.tokens]]\nname = \"wall\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        "a".repeat(64)
    ))
    .expect("valid");
    assert_eq!(s.auth.tokens[0].role, Role::Viewer);
    assert!(s.auth.enabled());
    let err = load_toml("[[auth.tokens]]\nname = \"\"\nrole = \"admin\"\nsha256 = \"secret\"\n")
        .expect_err("invalid");
    assert_eq!(err.0.len(), 2, "{err}");
    let err = load_toml(&format!(
        "[[auth.tokens]]\nname = \"x\"\nrole = \"god\"\nsha256 = \"{}\"\n",
        "a".repeat(64)
    ))
    .expect_err("unknown role");
    assert!(err.to_string().contains("role"), "{err}");
}

#[test]
fn open_mode_excludes_tokens_and_allowed_hosts_are_host_names() {
    let token = format!(
        "[[auth.tokens]]\nname = \"wall\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        "a".repeat(64)
    );
    let err = load_toml(&format!("[auth]\nopen = true\n{token}")).expect_err("both");
    assert!(err.to_string().contains("auth.open"), "{err}");
    let s = load_toml("[auth]\nopen = true\nallowed_hosts = [\"wall.localhost\"]\n").expect("open");
    assert!(s.auth.open && !s.auth.enabled());
    let err = load_toml(
        "[auth]\nopen = true\nallowed_hosts = [\"https://vigie.example.com/\", \"ok.example\", \"\"]\n",
    )
    .expect_err("a URL is not a host");
    assert_eq!(err.0.len(), 2, "{err}");
    assert!(err.to_string().contains("auth.allowed_hosts[0]"), "{err}");
    assert!(err.to_string().contains("auth.allowed_hosts[2]"), "{err}");
}

#[test]
fn the_commented_autopilot_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.example.toml");
    let text = std::fs::read_to_string(path).expect("example");
    let block: String = text
        .lines()
        .skip_while(|l| *l != "# [[autopilot.rules]]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let s = load_toml(&block).expect("valid");
    let rule = &s.autopilot.rules[0];
    assert_eq!(rule.expires_in, Duration::from_secs(45 * 60));
    assert_eq!(rule.min_projected(&s.engine), 0.8);
}

#[test]
fn the_commented_oidc_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vigie.example.toml");
    let text = std::fs::read_to_string(path).expect("example");
    let block: String = text
        .lines()
        .skip_while(|l| *l != "# [auth.oidc]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let s = load_toml(&block).expect("valid");
    assert!(s.auth.enabled(), "OIDC alone counts as authentication");
    let oidc = s.auth.oidc.expect("oidc");
    assert_eq!(oidc.role_claim, "realm_access.roles");
    assert_eq!(oidc.roles["vigie-supervisors"], Role::Supervisor);
    assert_eq!(oidc.leeway, Duration::from_secs(60));
}

#[test]
fn oidc_settings_take_defaults_and_every_problem_is_named() {
    let s = load_toml(
        "[auth.oidc]\nissuer = \"https://sso.example.com/\"\naudience = \"vigie\"\n[auth.oidc.roles]\nwall = \"viewer\"\n",
    )
    .expect("valid");
    let oidc = s.auth.oidc.expect("oidc");
    assert_eq!(oidc.name_claim, "preferred_username");
    assert_eq!(oidc.algorithms, [JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
    assert_eq!(
        oidc.discovery_url(),
        "https://sso.example.com/.well-known/openid-configuration"
    );
    let err = load_toml(
        "[auth.oidc]\nissuer = \"sso.example.com\"\naudience = \"\"\nrole_claim = \"a..b\"\nalgorithms = []\nleeway = \"1h\"\nroles = {}\n",
    )
    .expect_err("invalid");
    for key in [
        "auth.oidc.issuer",
        "auth.oidc.audience",
        "auth.oidc.role_claim",
        "auth.oidc.algorithms",
        "auth.oidc.leeway",
        "auth.oidc.roles",
    ] {
        assert!(err.to_string().contains(key), "{key} in {err}");
    }
    assert_eq!(err.0.len(), 6, "{err}");
    let err =
        load_toml("[auth.oidc]\naudience = \"vigie\"\nroles = {}\n").expect_err("missing issuer");
    assert!(err.to_string().contains("issuer"), "{err}");
    let err = load_toml(
        "[auth.oidc]\nissuer = \"https://sso.example.com\"\naudience = \"vigie\"\nroles = {}\nalgorithms = [\"HS256\"]\n",
    )
    .expect_err("a shared-secret algorithm");
    assert!(
        err.to_string().contains("auth.oidc.algorithms") && err.to_string().contains("HS256"),
        "{err}"
    );
}

#[test]
fn kafka_settings_are_checked() {
    let err = load_toml("[kafka]\ntopic = \"t\"\ndlq_topic = \"t\"\nbrokers = \" \"\n")
        .expect_err("invalid");
    assert!(err.to_string().contains("kafka.dlq_topic"), "{err}");
    assert!(err.to_string().contains("kafka.brokers"), "{err}");
    let err = load_toml("[kafka]\npartials = true\npartials_topic = \"vigie.interactions\"\npartials_every = \"1ms\"\ninstance_id = \"a/b\"\n")
        .expect_err("invalid");
    for key in [
        "kafka.partials_topic",
        "kafka.partials_every",
        "kafka.instance_id",
    ] {
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    let err = load_toml("[kafka]\nrebuild_from_earliest = true\nrebuild_span = \"1d\"\n")
        .expect_err("both");
    assert!(err.to_string().contains("kafka.rebuild_span"), "{err}");
    let err = load_toml("[kafka]\npayload_format = \"xml\"\n").expect_err("invalid");
    assert!(err.to_string().contains("payload_format"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Settings::load(Some(Path::new("/nonexistent/vigie.toml"))).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/vigie.toml"), "{err}");
}

#[test]
fn the_clock_skew_is_at_most_half_the_lateness_and_durations_are_bounded() {
    let err = load_toml("[kafka]\nmax_clock_skew = \"3m\"\n").expect_err("3m > 5m / 2");
    assert!(
        err.to_string().contains("kafka.max_clock_skew") && err.to_string().contains("2m 30s"),
        "{err}"
    );
    load_toml("[kafka]\nmax_clock_skew = \"3m\"\n[engine]\nallowed_lateness = \"10m\"\n")
        .expect("with more lateness");
    let err = load_toml(
        "[engine]\nallowed_lateness = \"100000days\"\nrepeat_horizon = \"1000days\"\nshort_abandon = \"2h\"\n\
         [engine.channels.phone.service_level]\nthreshold = \"30days\"\ntarget = 0.8\n",
    )
    .expect_err("absurd durations");
    for key in [
        "engine.allowed_lateness",
        "engine.repeat_horizon",
        "engine.short_abandon",
        "engine.channels.phone.service_level.threshold",
    ] {
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn the_rebuild_and_apply_threads_are_read_and_zero_apply_threads_is_refused() {
    let s = load_toml("[kafka]\napply_threads = 4\nrebuild_readers = 0\n").expect("valid");
    assert_eq!(
        (s.kafka.apply_threads, s.kafka.rebuild_readers),
        (Some(4), 0)
    );
    let defaults = Settings::default();
    assert_eq!(
        (defaults.kafka.apply_threads, defaults.kafka.rebuild_readers),
        (None, 3)
    );
    let err = load_toml("[kafka]\napply_threads = 0\n").expect_err("zero threads");
    assert!(
        err.to_string()
            .contains("kafka.apply_threads: must be at least 1"),
        "{err}"
    );
}
