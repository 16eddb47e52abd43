//! SQS consumers: handlers of `SqsEvent` returning `SqsBatchResponse` (partial batch
//! failures). In Lambda the event source mapping feeds them; locally [`run_consumer`] does,
//! from an embedded queue, with the same semantics: a failed message stays on the queue,
//! comes back after its visibility timeout, and moves to the DLQ after too many receives.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::sync::watch;

use crate::ports::{Queue, QueueError, ReceivedMessage};

#[async_trait]
pub trait SqsConsumer: Send + Sync {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse;
}

/// Builds the event Lambda would deliver for these messages.
pub fn sqs_event(queue_name: &str, messages: &[ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue_name}"));
            record.attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string(),
            );
            record
                .attributes
                .insert("SentTimestamp".into(), m.sent_at_ms.to_string());
            record
        })
        .collect();
    event
}

/// A batch response that reports these message ids as failed.
pub fn batch_response(failed: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    pub batch_size: usize,
    pub visibility: Duration,
    /// Pause between polls of an empty queue.
    pub idle: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(200),
        }
    }
}

/// Receives one batch, hands it to the consumer, deletes what succeeded. Returns how many
/// messages were received.
pub async fn poll_once(
    queue: &dyn Queue,
    consumer: &dyn SqsConsumer,
    options: WorkerOptions,
) -> Result<usize, QueueError> {
    let messages = queue
        .receive(options.batch_size, options.visibility)
        .await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let response = consumer.handle(sqs_event(queue.name(), &messages)).await;
    for message in &messages {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == message.message_id);
        if !failed {
            queue.delete(&message.receipt_handle).await?;
        }
    }
    Ok(messages.len())
}

/// Feeds a queue to a consumer until `shutdown` turns true.
pub async fn run_consumer(
    queue: Arc<dyn Queue>,
    consumer: Arc<dyn SqsConsumer>,
    options: WorkerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let pause = match poll_once(queue.as_ref(), consumer.as_ref(), options).await {
            Ok(0) => options.idle,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::error!(queue = queue.name(), error = %e, "queue poll failed");
                options.idle * 5
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// How long a failed message waits before its next delivery: 10 s doubling per receive up
/// to 15 minutes (SQS's longest visibility change that is also a valid delay), plus up to
/// half of it again as jitter so a burst of failures does not come back at once.
pub fn backoff(receive_count: u32) -> Duration {
    let base = 10u64
        .saturating_mul(1 << receive_count.saturating_sub(1).min(10))
        .min(900);
    let mut random = [0u8; 8];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % (base / 2 + 1),
        Err(_) => 0,
    };
    Duration::from_secs((base + jitter).min(900))
}

/// How many times SQS has delivered this record (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Puts a message that will not be retried on a dead-letter queue as
/// `{"reason", "job"}` (the job as JSON when it parses, else as text), so the reason stays
/// with it. `true` once it is there; `false` leaves the message on its queue.
pub async fn dead_letter(dlq: &dyn Queue, body: &str, reason: &str) -> bool {
    let job = serde_json::from_str::<serde_json::Value>(body)
        .unwrap_or_else(|_| serde_json::Value::String(body.to_owned()));
    let letter = serde_json::json!({"reason": reason, "job": job});
    tracing::error!(reason, "message moved to the dead-letter queue");
    match dlq
        .send(crate::ports::queue::OutgoingMessage::new(
            letter.to_string(),
        ))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "dead-letter queue unavailable; the message stays");
            false
        }
    }
}

/// Handles a batch's records concurrently with `handle` (`true` = done, delete it) and
/// reports the others as partial batch failures.
pub async fn each_record<'a, F, Fut>(event: &'a SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = futures::future::join_all(event.records.iter().map(handle)).await;
    batch_response(
        event
            .records
            .iter()
            .zip(done)
            .filter(|(_, ok)| !ok)
            .filter_map(|(record, _)| record.message_id.clone()),
    )
}

/// Leaves a failed record on its queue and makes it visible again after `after` (the
/// backoff). If the visibility cannot be changed the queue's own timeout applies.
pub async fn retry_later(queue: &dyn Queue, record: &SqsMessage, after: Duration) {
    if let Some(handle) = &record.receipt_handle
        && let Err(e) = queue.change_visibility(handle, after).await
    {
        tracing::warn!(error = %e, "visibility not changed; the queue's default applies");
    }
}
