//! Owns `POST /api/v1/events`: any JSON producer's events over HTTP (the `ingest` role),
//! validated with the Kafka path's own decoder and clock check, produced to the events
//! topic with the key convention, answered with per-record errors and counts.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Json;
use vigie_proto::{ErrorBody, IngestReport, RecordError};

use super::{ApiError, AppState, Principal};
use crate::config::KafkaSettings;
use crate::event::{decode_json, EventRecord, Format};
use crate::ingest::produce::{EventProducer, Pace};

/// Where posted events go.
#[derive(Debug)]
pub struct HttpIngest {
    producer: EventProducer,
    topic: String,
    format: Format,
    max_clock_skew_ms: i64,
}

impl HttpIngest {
    /// Produces to `kafka.topic` in `kafka.payload_format` (JSONL unless protobuf).
    pub fn new(kafka: &KafkaSettings) -> Result<Arc<HttpIngest>, rdkafka::error::KafkaError> {
        Ok(Arc::new(HttpIngest {
            producer: EventProducer::new(kafka)?,
            topic: kafka.topic.clone(),
            format: match kafka.payload_format {
                crate::config::PayloadFormat::Proto => Format::Proto,
                _ => Format::Jsonl,
            },
            max_clock_skew_ms: i64::try_from(kafka.max_clock_skew.as_millis()).unwrap_or(i64::MAX),
        }))
    }
}

/// At most this many refused records are described in the answer.
const MAX_ERRORS: usize = 100;

/// The records of a body: a JSON array, or JSON lines (blank lines are skipped but
/// counted in the indexes).
fn records(body: &[u8]) -> Result<Vec<(u64, &[u8])>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadBody(format!("a JSON array of events was expected: {e}")))?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| (i as u64, raw.get().as_bytes()))
            .collect());
    }
    Ok(body
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i as u64, line))
        .collect())
}

/// Posts events (ingest role): a JSON array or JSON lines of contract events. Valid
/// records are produced to the events topic; the answer counts them and says why each
/// other one was refused.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "kpis",
    request_body(content = String, description = "JSON lines, or a JSON array, of events", content_type = "application/x-ndjson"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "produced, with the refused records", body = IngestReport),
        (status = 400, description = "bad_body: not JSON lines nor an array, or too many records", body = ErrorBody),
        (status = 403, description = "not the ingest role", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "busy: retry in a second", body = ErrorBody),
        (status = 503, description = "Kafka unavailable", body = ErrorBody),
    )
)]
pub(super) async fn ingest(
    caller: Principal,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    caller.require_ingest()?;
    let ingest = state.ingest.clone().ok_or_else(|| {
        ApiError::Unavailable("event ingestion is not enabled on this instance".into())
    })?;
    let _slot = state.limits.ingest_slot()?;
    let settings = &state.limits.settings;
    let body = axum::body::to_bytes(body, settings.max_ingest_body)
        .await
        .map_err(|_| ApiError::TooLarge(settings.max_ingest_body))?;
    let records = records(&body)?;
    if records.len() > settings.max_ingest_records {
        return Err(ApiError::BadBody(format!(
            "{} records: at most {} per request (server.max_ingest_records); split the batch",
            records.len(),
            settings.max_ingest_records
        )));
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let mut events: Vec<EventRecord<'static>> = Vec::with_capacity(records.len());
    let mut report = IngestReport::default();
    for (index, raw) in records {
        let decoded = decode_json(raw)
            .and_then(|ev| ev.not_ahead_of(now, ingest.max_clock_skew_ms))
            .map(EventRecord::into_owned);
        match decoded {
            Ok(ev) => events.push(ev),
            Err(e) => {
                report.rejected += 1;
                if report.errors.len() < MAX_ERRORS {
                    report.errors.push(RecordError {
                        index,
                        field: e.field().map(str::to_string),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    let sent = events.len() as u64;
    let delivered = ingest
        .producer
        .send(
            &ingest.topic,
            events.into_iter(),
            ingest.format,
            Pace::Unbounded,
            &state.shutdown,
        )
        .await
        .map_err(|e| ApiError::Unavailable(format!("producing to Kafka failed: {e}; retry")))?;
    if delivered < sent {
        return Err(ApiError::Unavailable(
            "the server is shutting down: the batch was not all produced; retry".into(),
        ));
    }
    report.accepted = delivered;
    state
        .status
        .ingested_http
        .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
    state
        .status
        .refused_http
        .fetch_add(report.rejected, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(body: &str) -> Vec<(u64, String)> {
        records(body.as_bytes())
            .expect("records")
            .into_iter()
            .map(|(i, r)| (i, String::from_utf8_lossy(r).into_owned()))
            .collect()
    }

    #[test]
    fn json_lines_and_arrays_give_each_record_its_index() {
        assert_eq!(
            indexes("{\"a\":1}\n\n  \n{\"b\":2}\r\n"),
            [(0, "{\"a\":1}".into()), (3, "{\"b\":2}\r".into())],
            "blank lines count in the indexes"
        );
        assert_eq!(
            indexes("  [ {\"a\":1}, {\"b\": [2]} ]"),
            [(0, "{\"a\":1}".into()), (1, "{\"b\": [2]}".into())]
        );
        assert!(matches!(records(b"[{\"a\":1},"), Err(ApiError::BadBody(_))));
        assert!(indexes("").is_empty());
    }
}
