//! Owns the `[kafka]` section: brokers, topics, the consumer group, scale-out partials and
//! the librdkafka properties passed through, with their defaults and checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Kafka ingestion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topic of interaction events (keyed by customer_id, else interaction_id).
    pub topic: String,
    /// Where undecodable records go, with the reason in the `vigie-error` header.
    pub dlq_topic: String,
    /// Compacted topic holding the deflection switches (key: switch id): the source of
    /// truth shared by every instance and the routing systems.
    pub switches_topic: String,
    /// Audit trail of every switch change.
    pub audit_topic: String,
    /// Consumer group; instances of one group share the partitions.
    pub group_id: String,
    /// Payload encoding: `auto` (the `content-type` header, else sniffed), `json` or `proto`.
    pub payload_format: PayloadFormat,
    /// How far back to replay on start and on assignment; default: the longest window
    /// (at least 25 h) plus the longer of the repeat horizon and `engine.baseline_weeks`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub rebuild_span: Option<Duration>,
    /// Replay each assigned partition from its earliest retained record instead of
    /// seeking back `rebuild_span` by time: for a broker without a time index (librdkafka's
    /// in-process mock cluster, which `vigie demo` runs on), or a topic that holds
    /// exactly the history to show. Records older than the windows and the horizon are
    /// read and aged out.
    pub rebuild_from_earliest: bool,
    /// Longest a refused record may take to reach the dead-letter topic (retries
    /// included); the consumer never waits for it. Past it, the record is counted in
    /// `vigie_dead_letter_failures_total` and stays in the source topic.
    #[serde(with = "humantime_serde")]
    pub dead_letter_timeout: Duration,
    /// Refused records waiting for the dead-letter topic at once; more are counted as
    /// failures at once (a dead-letter topic down must not grow memory).
    pub dead_letter_max_in_flight: usize,
    /// Events dated further ahead of this server's clock are dead-lettered: one
    /// producer with a wrong clock would otherwise make every other event "late". At
    /// most half of `engine.allowed_lateness` (a producer just under it still moves the
    /// watermark that far).
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// librdkafka properties (security.protocol, sasl.*, ssl.*, ...), applied last. In
    /// the environment, where a name cannot hold dots, write them as underscores:
    /// `VIGIE__KAFKA__PROPERTIES__SASL_PASSWORD` sets `sasl.password`. Numbers and
    /// booleans are taken as written (`"fetch.wait.max.ms" = 100`).
    #[serde(deserialize_with = "scalars_as_strings")]
    pub properties: BTreeMap<String, String>,
    /// Scale-out: publish this instance's partitions as mergeable partials to
    /// `partials_topic` and merge every instance's partials, so that several instances
    /// in one group each serve the whole cockpit. Off: this instance shows only the
    /// partitions it consumes (right for a single instance).
    pub partials: bool,
    /// Compacted topic of partials (key `<topic>/<partition>[/<chunk start>]`), created
    /// with one partition if missing: its offsets order every owner's claim.
    pub partials_topic: String,
    /// How often changed partials are published (freshness of the merged view).
    #[serde(with = "humantime_serde")]
    pub partials_every: Duration,
    /// Name of this instance in the partials (owner of its partitions) and, with static
    /// membership, in the consumer group; default: host name, process id and a random
    /// suffix (different at every start). Give each instance a stable one (the pod or
    /// container name) for a restarted instance to be the same member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Static group membership (KIP-345, librdkafka's `group.instance.id` =
    /// `instance_id`, which must then be set and stable): an instance restarted within
    /// the group's session timeout gets its partitions back at once, with no rebalance (a
    /// dynamic member waits for the dead one to expire, its partitions unconsumed
    /// meanwhile). An instance stopped for good keeps its partitions until the session
    /// timeout. Off by default: Apache Kafka does it well; Tansu 0.6.0 gives a single
    /// static member its partitions back (after two 3 s pauses) but, with several, has
    /// been seen to leave partitions unassigned.
    pub static_membership: bool,
    /// Replicas of the topics Vigie creates (switches, audit, partials); default: three,
    /// or as many brokers as the cluster has if fewer. Existing topics are not changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    /// How long the audit topic keeps every switch change and acknowledgement (its
    /// `retention.ms` when Vigie creates it; a shorter one on an existing topic is
    /// warned about at start).
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// Threads applying the consumed partitions' records: each partition by one thread
    /// at a time, in offset order, partitions in parallel (a rebuild of several
    /// partitions uses every core). Default: one per core; 1: the consumer's task alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_threads: Option<usize>,
    /// Kafka clients replaying assigned partitions' history in parallel (a client
    /// fetches from a broker one request at a time, which bounds a rebuild long before
    /// the cores do); the consumer goes live on each partition once its history is
    /// applied. 0: the consumer replays the history itself.
    pub rebuild_readers: usize,
    /// Whether existing topics' configuration is checked at start (not a config key:
    /// `vigie demo` turns it off, its in-process mock cluster does not answer
    /// DescribeConfigs).
    #[serde(skip, default = "yes")]
    pub check_existing_topics: bool,
}

fn yes() -> bool {
    true
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            topic: "vigie.interactions".into(),
            dlq_topic: "vigie.interactions.dlq".into(),
            switches_topic: "vigie.deflections".into(),
            audit_topic: "vigie.audit".into(),
            group_id: "vigie".into(),
            payload_format: PayloadFormat::Auto,
            rebuild_span: None,
            rebuild_from_earliest: false,
            dead_letter_timeout: Duration::from_secs(30),
            dead_letter_max_in_flight: 10_000,
            max_clock_skew: Duration::from_secs(120),
            properties: BTreeMap::new(),
            partials: false,
            partials_topic: "vigie.partials".into(),
            partials_every: Duration::from_millis(250),
            instance_id: None,
            static_membership: false,
            replication_factor: None,
            audit_retention: Duration::from_secs(400 * 86_400),
            apply_threads: None,
            rebuild_readers: 3,
            check_existing_topics: true,
        }
    }
}

/// Encoding of Kafka payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    Auto,
    Json,
    Proto,
}

/// A map of strings, numbers or booleans, each kept as its text (librdkafka takes text).
fn scalars_as_strings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error as _;
    BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(D::Error::custom(format!(
                "property {key:?}: expected a string, number or boolean, found {other}"
            ))),
        })
        .collect()
}

/// librdkafka property names from the environment: a name without a dot has its
/// underscores read as dots (`sasl_password` → `sasl.password`). No string property of
/// librdkafka has an underscore (only callbacks and pointers, set through its API).
fn librdkafka_keys(properties: BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .into_iter()
        .map(|(key, value)| match key.contains('.') {
            true => (key, value),
            false => (key.replace('_', "."), value),
        })
        .collect()
}

impl KafkaSettings {
    /// The `group.instance.id` of static membership, if on (see `static_membership`).
    pub fn static_member_id(&self) -> Option<&str> {
        self.instance_id
            .as_deref()
            .filter(|_| self.static_membership)
    }

    /// Property names read from the environment hold underscores for dots; called once
    /// after loading.
    pub(super) fn normalize_properties(&mut self) {
        self.properties = librdkafka_keys(std::mem::take(&mut self.properties));
    }

    /// Pushes one line per problem, each naming its key and the fix.
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let k = self;
        if k.apply_threads == Some(0) {
            errors
                .push("kafka.apply_threads: must be at least 1 (or left out: one per core)".into());
        }
        for (key, value) in [
            ("brokers", &k.brokers),
            ("topic", &k.topic),
            ("dlq_topic", &k.dlq_topic),
            ("group_id", &k.group_id),
        ] {
            if value.trim().is_empty() {
                errors.push(format!("kafka.{key}: must not be empty"));
            }
        }
        if k.partials {
            if k.partials_topic.trim().is_empty() {
                errors.push(
                    "kafka.partials_topic: must not be empty (e.g. \"vigie.partials\")".into(),
                );
            }
            for (key, other) in [
                ("topic", &k.topic),
                ("dlq_topic", &k.dlq_topic),
                ("switches_topic", &k.switches_topic),
                ("audit_topic", &k.audit_topic),
            ] {
                if k.partials_topic == *other {
                    errors.push(format!("kafka.partials_topic: must differ from kafka.{key} (e.g. \"vigie.partials\")"));
                }
            }
        }
        if k.partials_every < Duration::from_millis(10)
            || k.partials_every > Duration::from_secs(10)
        {
            errors
                .push("kafka.partials_every: must be between 10ms and 10s (e.g. \"250ms\")".into());
        }
        if k.instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.contains('/'))
        {
            errors.push("kafka.instance_id: must not be empty nor contain '/' (e.g. \"vigie-0\"); remove it for a generated one".into());
        }
        if k.dead_letter_timeout < Duration::from_secs(1)
            || k.dead_letter_timeout > Duration::from_secs(300)
        {
            errors.push("kafka.dead_letter_timeout: between 1s and 5m (e.g. \"30s\")".into());
        }
        if !(1..=1_000_000).contains(&k.dead_letter_max_in_flight) {
            errors
                .push("kafka.dead_letter_max_in_flight: between 1 and 1000000 (e.g. 10000)".into());
        }
        if k.static_membership && k.instance_id.is_none() {
            errors.push("kafka.static_membership: needs a stable kafka.instance_id (e.g. the pod name: VIGIE__KAFKA__INSTANCE_ID)".into());
        }
        if k.rebuild_from_earliest && k.rebuild_span.is_some() {
            errors.push("kafka.rebuild_span: not used with kafka.rebuild_from_earliest = true; remove one of them".into());
        }
        if k.replication_factor.is_some_and(|r| !(1..=32).contains(&r)) {
            errors.push("kafka.replication_factor: between 1 and 32 (e.g. 3); remove it for min(3, brokers)".into());
        }
        if k.audit_retention < Duration::from_secs(86_400) {
            errors.push("kafka.audit_retention: at least 1day (e.g. \"400days\"): the audit trail is evidence".into());
        }
        if k.topic == k.dlq_topic {
            errors.push(
                "kafka.dlq_topic: must differ from kafka.topic (e.g. \"vigie.interactions.dlq\")"
                    .into(),
            );
        }
    }
}
