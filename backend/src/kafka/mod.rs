//! Owns the Kafka client plumbing every part of Vigie shares: the client configuration
//! (brokers, then the configured librdkafka properties), this instance's id, Vigie's own
//! topics ([`topics`]: created when missing, checked when present), and waiting on a
//! delivery from a librdkafka callback. Depends only on the settings.

mod topics;

pub(crate) use topics::{ensure_topics, TopicError, TopicSpec};

use std::sync::Arc;

use rdkafka::config::ClientConfig;

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

/// The configuration of a client of Vigie's own topics (switches, audit, partials): it
/// never has the broker create one of them (it would lack their cleanup policy).
pub(crate) fn internal_client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config.set("allow.auto.create.topics", "false");
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
