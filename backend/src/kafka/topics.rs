//! Owns Vigie's own topics (switches, audit, partials): what each must be, creating
//! those missing with that configuration and a replication of `min(3, brokers)`, and
//! checking those that exist. A topic that exists is never changed: what is wrong with it
//! is said, by key, and what would lose data (a switches or partials topic without
//! compaction, an audit topic with it) stops the start.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use super::client_config;
use crate::config::KafkaSettings;

/// What one of Vigie's topics must be.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// The cleanup policies it must have: `compact`, `delete`, or both.
    pub cleanup: BTreeSet<&'static str>,
    /// How long records are kept at least (`delete` only).
    pub retention: Option<Duration>,
    /// What it holds, for the messages (`the switches topic`).
    pub role: &'static str,
}

impl TopicSpec {
    /// One partition, compacted: the latest record per key is kept (switch states,
    /// partials). `retention` also deletes records older than it.
    pub fn compacted(role: &'static str, name: &str, retention: Option<Duration>) -> TopicSpec {
        let mut cleanup = BTreeSet::from(["compact"]);
        if retention.is_some() {
            cleanup.insert("delete");
        }
        TopicSpec {
            name: name.into(),
            partitions: 1,
            cleanup,
            retention,
            role,
        }
    }

    /// One partition, every record kept for `retention` (an audit trail).
    pub(crate) fn retained(role: &'static str, name: &str, retention: Duration) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions: 1,
            cleanup: BTreeSet::from(["delete"]),
            retention: Some(retention),
            role,
        }
    }

    fn config(&self) -> Vec<(&'static str, String)> {
        let mut config = vec![(
            "cleanup.policy",
            self.cleanup.iter().copied().collect::<Vec<_>>().join(","),
        )];
        if let Some(r) = self.retention {
            config.push(("retention.ms", r.as_millis().to_string()));
        }
        config
    }

    /// What is wrong with this topic as it exists, given its configuration as the broker
    /// describes it (`None`: a broker that does not describe it, nothing to check).
    pub(crate) fn problems(
        &self,
        cleanup: Option<&str>,
        retention_ms: Option<i64>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let name = &self.name;
        if let Some(cleanup) = cleanup {
            let has: BTreeSet<&str> = cleanup.split(',').map(str::trim).collect();
            let wanted = self.cleanup.iter().copied().collect::<Vec<_>>().join(",");
            let fix = format!(
                "kafka-configs --alter --entity-type topics --entity-name {name} --add-config cleanup.policy=[{wanted}]"
            );
            if self.cleanup.contains("compact") && !has.contains("compact") {
                problems.push(Problem::fatal(format!(
                    "topic {name:?} ({}) has cleanup.policy={cleanup}: without compaction the latest record per key is lost once deleted by time; set it: {fix}",
                    self.role
                )));
            }
            if !self.cleanup.contains("compact") && has.contains("compact") {
                problems.push(Problem::fatal(format!(
                    "topic {name:?} ({}) has cleanup.policy={cleanup}: compaction keeps one record per key and would erase its history; set it: {fix}",
                    self.role
                )));
            }
            if self.cleanup.contains("delete")
                && !has.contains("delete")
                && self.cleanup.contains("compact")
            {
                problems.push(Problem::warning(format!(
                    "topic {name:?} ({}) has cleanup.policy={cleanup}: records of old keys are never deleted and it grows; set it: {fix}",
                    self.role
                )));
            }
        }
        if let (Some(wanted), Some(kept)) = (self.retention, retention_ms) {
            let wanted_ms = i64::try_from(wanted.as_millis()).unwrap_or(i64::MAX);
            if kept >= 0 && kept < wanted_ms {
                problems.push(Problem::warning(format!(
                    "topic {name:?} ({}) keeps records {}, less than the {} wanted; set it: kafka-configs --alter --entity-type topics --entity-name {name} --add-config retention.ms={wanted_ms}",
                    self.role,
                    humantime::format_duration(Duration::from_millis(kept as u64)),
                    humantime::format_duration(wanted),
                )));
            }
        }
        problems
    }
}

/// Something wrong with an existing topic: `fatal` stops the start.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    pub fatal: bool,
    pub message: String,
}

impl Problem {
    fn fatal(message: String) -> Problem {
        Problem {
            fatal: true,
            message,
        }
    }
    fn warning(message: String) -> Problem {
        Problem {
            fatal: false,
            message,
        }
    }
}

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("{what}: {source}")]
    Kafka {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic:?}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("{}", .0.join("; "))]
    Misconfigured(Vec<String>),
}

/// The replication of the topics Vigie creates: `kafka.replication_factor`, else
/// `min(3, brokers)`.
pub(crate) fn replication(settings: &KafkaSettings, brokers: usize) -> i32 {
    settings
        .replication_factor
        .map(i32::from)
        .unwrap_or_else(|| i32::try_from(brokers.clamp(1, 3)).unwrap_or(1))
}

/// Creates those of `topics` that do not exist; checks the others (see the module).
pub(crate) async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), TopicError> {
    let kafka = |what| move |source| TopicError::Kafka { what, source };
    let admin: AdminClient<DefaultClientContext> = client_config(settings)
        .create()
        .map_err(kafka("creating the admin client"))?;
    // All topics' metadata (no topic named: nothing is auto-created by asking).
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(kafka("listing topics"))?;
    let exists = |name: &str| {
        metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && !t.partitions().is_empty())
    };
    let (present, missing): (Vec<&TopicSpec>, Vec<&TopicSpec>) =
        topics.iter().partition(|t| exists(&t.name));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    if !present.is_empty() && settings.check_existing_topics {
        check(&admin, &present).await?;
    }
    if missing.is_empty() {
        return Ok(());
    }
    let replicas = replication(settings, metadata.brokers().len());
    let configs: Vec<Vec<(&str, String)>> = missing.iter().map(|t| t.config()).collect();
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .zip(&configs)
        .map(|(t, config)| {
            config.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replicas)),
                |new, (key, value)| new.set(key, value),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, replicas, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(())
}

/// Describes the existing `topics` and says what is wrong with them.
async fn check(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&TopicSpec],
) -> Result<(), TopicError> {
    let resources: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(&t.name))
        .collect();
    // A broker answers in milliseconds; one that does not answer at all (some
    // Kafka-protocol brokers) must not hold the start for long.
    let wait = Duration::from_secs(5);
    let options = AdminOptions::new().request_timeout(Some(wait));
    let described = tokio::time::timeout(wait, admin.describe_configs(&resources, &options))
        .await
        .unwrap_or(Err(KafkaError::AdminOp(
            RDKafkaErrorCode::OperationTimedOut,
        )));
    let described = match described {
        Ok(described) => described,
        Err(error) => {
            tracing::warn!(%error, "the broker did not describe Vigie's topics: their configuration is not checked");
            return Ok(());
        }
    };
    let mut fatal = Vec::new();
    for (spec, result) in topics.iter().zip(described) {
        let Ok(resource) = result else { continue };
        let (cleanup, retention) = described_config(&resource);
        if cleanup.is_none() && retention.is_none() {
            tracing::debug!(topic = %spec.name, "the broker describes no configuration of this topic: not checked");
        }
        for problem in spec.problems(cleanup.as_deref(), retention) {
            if problem.fatal {
                fatal.push(problem.message);
            } else {
                tracing::warn!("{}", problem.message);
            }
        }
    }
    if fatal.is_empty() {
        Ok(())
    } else {
        Err(TopicError::Misconfigured(fatal))
    }
}

/// `cleanup.policy` and `retention.ms` of a described topic.
fn described_config(resource: &ConfigResource) -> (Option<String>, Option<i64>) {
    let value = |name| resource.get(name).and_then(|e| e.value.clone());
    (
        value("cleanup.policy"),
        value("retention.ms").and_then(|v| v.parse().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_topic_without_compaction_stops_the_start() {
        let switches = TopicSpec::compacted("the switches topic", "vigie.deflections", None);
        assert_eq!(
            switches.problems(Some("compact"), Some(604_800_000)),
            vec![]
        );
        assert_eq!(switches.problems(None, None), vec![], "nothing described");
        let problems = switches.problems(Some("delete"), Some(604_800_000));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].fatal);
        assert!(
            problems[0].message.contains("vigie.deflections")
                && problems[0].message.contains("cleanup.policy=[compact]"),
            "names the topic and the fix: {}",
            problems[0].message
        );
    }

    #[test]
    fn partials_want_compaction_and_deletion() {
        let day = Duration::from_secs(86_400);
        let partials = TopicSpec::compacted("the partials topic", "p", Some(day));
        assert_eq!(
            partials.config()[0],
            ("cleanup.policy", "compact,delete".into())
        );
        assert_eq!(
            partials.problems(Some("compact,delete"), Some(86_400_000)),
            vec![]
        );
        let only_compact = partials.problems(Some("compact"), Some(86_400_000));
        assert_eq!(only_compact.len(), 1);
        assert!(!only_compact[0].fatal, "it grows, nothing is lost");
        assert!(partials.problems(Some("delete"), None)[0].fatal);
    }

    #[test]
    fn an_audit_topic_must_not_be_compacted_and_keep_long_enough() {
        let year = Duration::from_secs(365 * 86_400);
        let audit = TopicSpec::retained("the audit topic", "vigie.audit", year);
        assert_eq!(audit.config()[1], ("retention.ms", "31536000000".into()));
        assert_eq!(
            audit.problems(Some("delete"), Some(-1)),
            vec![],
            "kept forever"
        );
        let compacted = audit.problems(Some("compact"), Some(-1));
        assert!(compacted[0].fatal && compacted[0].message.contains("history"));
        let short = audit.problems(Some("delete"), Some(604_800_000));
        assert_eq!(short.len(), 1);
        assert!(!short[0].fatal);
        assert!(short[0].message.contains("7days"), "{}", short[0].message);
    }

    #[test]
    fn replication_is_three_at_most_unless_configured() {
        let mut settings = KafkaSettings::default();
        assert_eq!(replication(&settings, 1), 1);
        assert_eq!(replication(&settings, 2), 2);
        assert_eq!(replication(&settings, 5), 3);
        assert_eq!(replication(&settings, 0), 1);
        settings.replication_factor = Some(5);
        assert_eq!(replication(&settings, 5), 5);
    }
}
