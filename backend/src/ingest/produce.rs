//! Owns producing interaction events to Kafka, with the key convention (customer_id,
//! else interaction_id) and a `content-type` header; used by `vigie simulate --brokers`
//! and the demo.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaSettings;
use crate::event::{encode, event_key, EventRecord, Format};
use crate::kafka::client_config;

/// Deliveries awaited at most this far behind the sends.
const MAX_IN_FLIGHT: usize = 20_000;

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the broker takes them.
    Unbounded,
    /// Each event when the wall clock reaches its event time (live simulation; events
    /// dated before now go at once).
    EventTime,
}

/// Produces `events` to `topic` at `pace` until the events run out or `shutdown`.
/// Returns how many were delivered.
pub async fn produce(
    settings: &KafkaSettings,
    topic: &str,
    events: impl Iterator<Item = EventRecord<'static>>,
    format: Format,
    pace: Pace,
    shutdown: CancellationToken,
) -> Result<u64, KafkaError> {
    EventProducer::new(settings)?
        .send(topic, events, format, pace, &shutdown)
        .await
}

/// A producer of contract events with the key convention, for many batches (a bridge
/// following its source).
pub struct EventProducer {
    producer: FutureProducer,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").finish_non_exhaustive()
    }
}

impl EventProducer {
    pub fn new(settings: &KafkaSettings) -> Result<EventProducer, KafkaError> {
        Ok(EventProducer {
            producer: client_config(settings)
                .set("linger.ms", "5")
                .set("message.timeout.ms", "60000")
                .create()?,
        })
    }

    /// Sends `events` to `topic` at `pace` and waits for every delivery (or `shutdown`):
    /// how many were delivered.
    pub async fn send(
        &self,
        topic: &str,
        events: impl Iterator<Item = EventRecord<'static>>,
        format: Format,
        pace: Pace,
        shutdown: &CancellationToken,
    ) -> Result<u64, KafkaError> {
        let producer = &self.producer;
        let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
        let mut delivered = 0u64;
        for event in events {
            if shutdown.is_cancelled() {
                break;
            }
            if pace == Pace::EventTime {
                let wait_ms = event.ts_ms - jiff::Timestamp::now().as_millisecond();
                if wait_ms > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
            let payload = encode(&event, format);
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some(format.content_type()),
            });
            let record = FutureRecord::to(topic)
                .key(event_key(&event))
                .payload(&payload)
                .headers(headers);
            loop {
                match producer.send_result(record_clone(&record)) {
                    Ok(delivery) => {
                        in_flight.push_back(delivery);
                        break;
                    }
                    // Local queue full: wait for the oldest delivery, then retry.
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        _,
                    )) => {
                        delivered += await_delivery(in_flight.pop_front()).await?;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
            while in_flight.len() > MAX_IN_FLIGHT {
                delivered += await_delivery(in_flight.pop_front()).await?;
            }
        }
        while let Some(delivery) = in_flight.pop_front() {
            delivered += await_delivery(Some(delivery)).await?;
        }
        Ok(delivered)
    }
}

fn record_clone<'a>(record: &FutureRecord<'a, str, Vec<u8>>) -> FutureRecord<'a, str, Vec<u8>> {
    FutureRecord {
        topic: record.topic,
        partition: record.partition,
        payload: record.payload,
        key: record.key,
        timestamp: record.timestamp,
        headers: record.headers.clone(),
    }
}

async fn await_delivery(delivery: Option<DeliveryFuture>) -> Result<u64, KafkaError> {
    match delivery {
        None => Ok(0),
        Some(delivery) => match delivery.await {
            Ok(Ok(_)) => Ok(1),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        },
    }
}
