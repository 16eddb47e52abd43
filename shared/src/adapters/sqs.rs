//! `Queue` on Amazon SQS (aws-sdk-sqs).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};

use crate::ports::queue::{self, OutgoingMessage, Queue, QueueError, ReceivedMessage};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    name: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        let url = url.into();
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        Self { client, url, name }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

fn map_err<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some(code)
            if code.contains("InvalidParameterValue")
                || code.contains("ReceiptHandleIsInvalid") =>
        {
            QueueError::Validation(err.message().unwrap_or("rejected").to_owned())
        }
        _ => QueueError::Unavailable(DisplayErrorContext(&err).to_string()),
    }
}

fn delay_seconds(delay: Option<Duration>) -> Option<i32> {
    delay.and_then(|d| i32::try_from(d.as_secs()).ok())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        message.validate()?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_delay_seconds(delay_seconds(message.delay))
            .send()
            .await
            .map_err(map_err)?;
        out.message_id
            .ok_or_else(|| QueueError::Unavailable("no message id in the answer".into()))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        queue::validate_batch(&messages)?;
        let count = messages.len();
        let entries = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body)
                    .set_delay_seconds(delay_seconds(m.delay))
                    .build()
                    .map_err(|e| QueueError::Validation(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(map_err)?;
        if !out.failed().is_empty() {
            let indexes = out
                .failed()
                .iter()
                .filter_map(|f| f.id().parse().ok())
                .collect();
            return Err(QueueError::PartialBatch {
                failed: out.failed().len(),
                indexes,
            });
        }
        let mut ids = vec![String::new(); count];
        for ok in out.successful() {
            if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| ids.get_mut(i)) {
                ok.message_id().clone_into(slot);
            }
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        queue::validate_receive(max, visibility)?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<i64>().ok())
                };
                ReceivedMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(1),
                    sent_at_ms: attr(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        queue::validate_visibility(visibility)?;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds(visibility))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
