//! Owns dead-lettering: a refused record goes to `kafka.dlq_topic` with its key and
//! payload, the reason in the `vigie-error` header and its position in `vigie-origin`.
//!
//! The consumer never waits for it there: the record is handed to the producer (one
//! overall deadline, `kafka.dead_letter_timeout`, retries included) and its offset is
//! stored at once, so a dead-letter topic that cannot be written never stops healthy
//! records. A record not delivered within the deadline, or refused because
//! `kafka.dead_letter_max_in_flight` are already waiting, is counted in
//! `vigie_dead_letter_failures_total` (which the built-in `dead-letter-failing` alert
//! watches) and logged with its topic, partition and offset (at most once a minute, with
//! the count since): it stays in the source topic at that offset, for an operator to
//! fetch, and is not retried.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::KafkaSettings;
use crate::event::DecodeError;
use crate::kafka::client_config;
use crate::status::InstanceStatus;
use crate::telemetry::Occasional;

/// Header naming why a record was dead-lettered.
pub const ERROR_HEADER: &str = "vigie-error";
/// Header naming where the record came from: `topic/partition/offset`.
pub const ORIGIN_HEADER: &str = "vigie-origin";

/// The dead-letter producer and what it has in flight.
pub(super) struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    status: Arc<InstanceStatus>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    failed: Arc<Occasional>,
}

impl DeadLetters {
    pub(super) fn new(
        settings: &KafkaSettings,
        status: Arc<InstanceStatus>,
    ) -> Result<DeadLetters, KafkaError> {
        let timeout = settings.dead_letter_timeout.as_millis().to_string();
        Ok(DeadLetters {
            producer: client_config(settings)
                .set("message.timeout.ms", timeout)
                .create()?,
            topic: settings.dlq_topic.clone(),
            status,
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: settings.dead_letter_max_in_flight,
            failed: Arc::new(Occasional::new(Duration::from_secs(60))),
        })
    }

    /// Hands `message`, refused for `error`, to the dead-letter topic; returns at once.
    pub(super) fn send(&self, message: &BorrowedMessage<'_>, error: &DecodeError) {
        let reason = error.to_string();
        let origin = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        if self.in_flight.load(Relaxed) >= self.max_in_flight {
            self.fail(&origin, "kafka.dead_letter_max_in_flight records are already waiting for the dead-letter topic");
            return;
        }
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: ERROR_HEADER,
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: ORIGIN_HEADER,
                value: Some(origin.as_bytes()),
            });
        let mut record = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        match self.producer.send_result(record) {
            Ok(delivery) => {
                self.in_flight.fetch_add(1, Relaxed);
                let (status, in_flight, failed, topic) = (
                    self.status.clone(),
                    self.in_flight.clone(),
                    self.failed.clone(),
                    self.topic.clone(),
                );
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => {
                            status.dead_lettered.fetch_add(1, Relaxed);
                        }
                        Ok(Err((error, _))) => {
                            status.dead_letter_failures.fetch_add(1, Relaxed);
                            if let Some(times) = failed.due() {
                                tracing::error!(%origin, %error, %topic, times, "a refused record could not be dead-lettered: it stays in the source topic at its offset");
                            }
                        }
                        Err(_) => {
                            status.dead_letter_failures.fetch_add(1, Relaxed);
                        }
                    }
                    in_flight.fetch_sub(1, Relaxed);
                });
            }
            Err((error, _)) => self.fail(&origin, &error.to_string()),
        }
    }

    fn fail(&self, origin: &str, why: &str) {
        self.status.dead_letter_failures.fetch_add(1, Relaxed);
        if let Some(times) = self.failed.due() {
            tracing::error!(%origin, why, topic = %self.topic, times, "a refused record could not be dead-lettered: it stays in the source topic at its offset");
        }
    }
}
