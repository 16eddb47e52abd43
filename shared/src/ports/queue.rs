//! `Queue`: SQS-shaped messaging.
//!
//! Producers `send`/`send_batch` with an optional delay. Consumers are `SqsEvent` →
//! `SqsBatchResponse` handlers (see [`crate::worker`]); in Lambda the event source mapping
//! receives for them, locally the worker loop does, through `receive`/`delete`.

use std::time::Duration;

use async_trait::async_trait;

/// SQS's limit on the number of entries in one batch call.
pub const MAX_BATCH: usize = 10;
/// SQS's longest delivery delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS's largest message body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: None,
        }
    }

    /// A message whose body is `value` as JSON.
    pub fn json<T: serde::Serialize>(value: &T) -> Result<Self, QueueError> {
        serde_json::to_string(value)
            .map(Self::new)
            .map_err(|e| QueueError::Validation(e.to_string()))
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Rejects what SQS rejects, before any call is made.
    pub fn validate(&self) -> Result<(), QueueError> {
        if self.body.is_empty() {
            return Err(QueueError::Validation("message body is empty".into()));
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(QueueError::Validation(format!(
                "message body is {} bytes, the limit is {MAX_BODY_BYTES}",
                self.body.len()
            )));
        }
        if self.delay.is_some_and(|d| d > MAX_DELAY) {
            return Err(QueueError::Validation(format!(
                "delay is longer than {} seconds",
                MAX_DELAY.as_secs()
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    pub sent_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("a batch holds 1..={MAX_BATCH} messages, got {0}")]
    BatchSize(usize),
    #[error("invalid message: {0}")]
    Validation(String),
    #[error("{failed} of the batch's messages were not sent")]
    PartialBatch {
        failed: usize,
        /// Indexes of the messages that were not sent.
        indexes: Vec<usize>,
    },
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored message is corrupt: {0}")]
    Corrupt(String),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::PartialBatch { .. })
    }
}

/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// Checks receive parameters the way SQS does: 1..=10 messages, visibility ≤ 12 hours.
pub fn validate_receive(max: usize, visibility: Duration) -> Result<(), QueueError> {
    if !(1..=MAX_BATCH).contains(&max) {
        return Err(QueueError::BatchSize(max));
    }
    validate_visibility(visibility)
}

pub fn validate_visibility(visibility: Duration) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY {
        return Err(QueueError::Validation(
            "visibility timeout is longer than 12 hours".into(),
        ));
    }
    Ok(())
}

/// Checks a batch the way SQS does: 1..=10 entries, each valid.
pub fn validate_batch(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(QueueError::BatchSize(messages.len()));
    }
    messages.iter().try_for_each(OutgoingMessage::validate)
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's name (for logs and metrics).
    fn name(&self) -> &str;
    /// Sends one message; returns its id.
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError>;
    /// Sends 1..=10 messages in one call; returns their ids in order.
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError>;
    /// Receives up to `max` (1..=10) visible messages and hides them for `visibility`.
    /// A message already received as often as the redrive policy allows moves to the DLQ
    /// instead.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Deletes a received message (it was processed).
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;
    /// Changes when a received message becomes visible again (backoff).
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;
}
