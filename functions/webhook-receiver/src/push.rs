//! The signed push of inbound events to a tenant's `bot_webhook_url`, from the
//! inbound-events queue (never on the webhook's request path).
//!
//! Standard Webhooks: `webhook-id` is the event's id (stable across retries, so the
//! receiver can dedupe), `webhook-timestamp` the attempt's time, `webhook-signature`
//! `v1,<base64 HMAC-SHA256>` with the tenant's `whsec_` secret. A failed push stays on the
//! queue, hidden for an exponentially growing, jittered time; after the queue's max
//! receives SQS moves it to the DLQ.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::config::QueueRole;
use shared::domain::TenantId;
use shared::ports::Queue;
use shared::signing::StandardWebhooks;
use shared::telemetry::{Metrics, metric_names as metric};
use shared::worker::{SqsConsumer, backoff, batch_response, receive_count, retry_later};
use tracing::Instrument as _;

use crate::Deps;

/// The `provider` dimension of the push to a tenant's bot.
const PROVIDER: &str = "bot_webhook";

pub struct BotPush {
    deps: Arc<Deps>,
    /// The queue the events come from, to stretch a failed message's visibility.
    queue: Arc<dyn Queue>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    tenant_id: TenantId,
}

#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("the queued event is not an inbound event: {0}")]
    Malformed(String),
    #[error("tenant config unavailable: {0}")]
    Config(#[from] shared::repo::RepoError),
    #[error("the signing secret is unusable")]
    Secret,
    #[error("the bot webhook answered {0}")]
    Status(u16),
    #[error("the bot webhook is unreachable: {0}")]
    Transport(String),
    #[error("{0}")]
    Refused(shared::egress::Refused),
}

impl BotPush {
    pub fn new(deps: Arc<Deps>, queue: Arc<dyn Queue>) -> Self {
        Self { deps, queue }
    }

    async fn deliver(&self, body: &str) -> Result<(), PushError> {
        let envelope: Envelope =
            serde_json::from_str(body).map_err(|e| PushError::Malformed(e.to_string()))?;
        let Some((url, secret)) = self.deps.bot_webhooks.target(&envelope.tenant_id).await? else {
            return Ok(());
        };
        let signer = StandardWebhooks::new(secret.expose()).map_err(|_| PushError::Secret)?;
        let timestamp = self.deps.clock.now().as_second();
        let signature = signer.sign(&envelope.id, timestamp, body.as_bytes());
        let request = self.deps.targets.post(&url).map_err(PushError::Refused)?;
        let started = std::time::Instant::now();
        let response = request
            .header("content-type", "application/json")
            .header("webhook-id", &envelope.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let delivered = response.as_ref().is_ok_and(|r| r.status().is_success());
        Metrics::provider(PROVIDER)
            .count(
                if delivered {
                    metric::SENT
                } else {
                    metric::PROVIDER_ERROR
                },
                1,
            )
            .millis(metric::LATENCY, started.elapsed().as_secs_f64() * 1000.0)
            .emit();
        let response = response
            .map_err(|e| PushError::Transport(shared::providers::transport_error(e).to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(PushError::Status(response.status().as_u16()))
        }
    }

    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let tenant = serde_json::from_str::<Envelope>(body)
            .map(|e| e.tenant_id.to_string())
            .unwrap_or_default();
        let receives = receive_count(record);
        let span = tracing::info_span!("push", tenant_id = %tenant, provider = PROVIDER, receives);
        match self.deliver(body).instrument(span.clone()).await {
            Ok(()) => true,
            Err(e) => {
                span.in_scope(
                    || tracing::warn!(error = %e, "bot webhook push failed; retried later"),
                );
                // After the last receive SQS moves the event to the DLQ.
                let metrics = Metrics::provider(PROVIDER);
                if receives >= QueueRole::InboundEvents.max_receives() {
                    metrics
                        .count(metric::FAILED, 1)
                        .count(metric::DLQ, 1)
                        .emit();
                } else {
                    metrics.count(metric::QUEUED, 1).emit();
                }
                retry_later(self.queue.as_ref(), record, backoff(receives)).await;
                false
            }
        }
    }
}

#[async_trait]
impl SqsConsumer for BotPush {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed = Vec::new();
        for record in &event.records {
            if !self.handle_record(record).await {
                failed.extend(record.message_id.clone());
            }
        }
        batch_response(failed)
    }
}
