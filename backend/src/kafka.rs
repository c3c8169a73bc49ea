//! Owns the Kafka client plumbing every part of Vigie shares: the client configuration
//! (brokers, then the configured librdkafka properties), this instance's id, creating
//! topics that are missing, and waiting on a delivery from a librdkafka callback.
//! Depends only on the settings.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use crate::config::KafkaSettings;

/// librdkafka settings shared by every Vigie client; `properties` from the config come last.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    config
}

/// `settings` with `instance_id` set (generated once if absent): every part of this
/// process that names the instance (scale-out claims, shared alerts) must use one id.
pub fn with_instance_id(mut settings: KafkaSettings) -> KafkaSettings {
    settings.instance_id = Some(instance_id(&settings));
    settings
}

/// This instance's name: configured, or host, pid and a random suffix.
pub fn instance_id(settings: &KafkaSettings) -> String {
    settings.instance_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "vigie".into());
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

/// A topic Vigie creates when it is missing.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic configuration (`cleanup.policy`, `retention.ms`...).
    pub config: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// One partition, compacted: the latest record per key is kept (switch states,
    /// partials). `retention` also deletes records older than it.
    pub fn compacted(name: &str, retention: Option<Duration>) -> TopicSpec {
        let mut config = Vec::new();
        match retention {
            None => config.push(("cleanup.policy", "compact".to_string())),
            Some(r) => {
                config.push(("cleanup.policy", "compact,delete".to_string()));
                config.push(("retention.ms", r.as_millis().to_string()));
            }
        }
        TopicSpec {
            name: name.into(),
            partitions: 1,
            config,
        }
    }

    /// One partition, the broker's default cleanup.
    pub(crate) fn plain(name: &str) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions: 1,
            config: Vec::new(),
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
}

/// Creates those of `topics` that do not exist (one that exists is left as it is).
pub(crate) async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), TopicError> {
    let kafka = |what| move |source| TopicError::Kafka { what, source };
    let admin: AdminClient<DefaultClientContext> = client_config(settings)
        .create()
        .map_err(kafka("creating the admin client"))?;
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
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !exists(&t.name))
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)),
                |new, (key, value)| new.set(key, value),
            )
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let results = admin
        .create_topics(
            &missing,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    Ok(())
}

/// Runs `future` to completion on this thread, for a librdkafka callback that must wait
/// for a delivery (the producer's own thread completes it).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
