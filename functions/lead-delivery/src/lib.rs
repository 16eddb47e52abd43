//! lead-delivery: the SQS consumer of the lead-delivery queue — one message per (lead,
//! integration, round), delivered by that integration type's `LeadTarget`
//! (`shared::leads`). Partial batch failures; transient errors back off with jitter (at
//! least the target's Retry-After); permanent errors and the last transient one end the
//! delivery `failed` and move the message to the DLQ with the reason.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::backend::{BackendError, Ports};
use shared::config::{Config, QueueRole};
use shared::leads::service::{DeliveryJob, LeadService, Outcome};
use shared::ports::Queue;
use shared::worker::{SqsConsumer, backoff, dead_letter, receive_count};
use tracing::Instrument;

pub struct LeadDelivery {
    service: Arc<LeadService>,
    queue: Arc<dyn Queue>,
    dead_letters: Arc<dyn Queue>,
}

impl LeadDelivery {
    pub fn new(ports: &Ports, config: &Config) -> Result<Self, BackendError> {
        Ok(Self {
            service: Arc::new(LeadService::new(ports, config)?),
            queue: ports.queue(QueueRole::LeadDelivery)?,
            dead_letters: ports.dead_letter_queue(QueueRole::LeadDelivery)?,
        })
    }

    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let receives = receive_count(record);
        let job: DeliveryJob = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(e) => {
                return dead_letter(
                    self.dead_letters.as_ref(),
                    body,
                    &format!("not a lead delivery: {e}"),
                )
                .await;
            }
        };
        let span = tracing::info_span!(
            "lead_delivery",
            tenant_id = %job.tenant_id,
            lead_id = %job.lead_id,
            integration_id = %job.integration_id,
            receives,
        );
        let max = QueueRole::LeadDelivery.max_receives();
        let after = match self
            .service
            .deliver(&job, receives, max)
            .instrument(span)
            .await
        {
            Ok(Outcome::Done) => return true,
            Ok(Outcome::Dead(reason)) => {
                return dead_letter(self.dead_letters.as_ref(), body, &reason).await;
            }
            Ok(Outcome::Retry(after)) => after,
            Err(e) => {
                tracing::warn!(error = %e, "lead delivery could not run; retried later");
                backoff(receives)
            }
        };
        shared::worker::retry_later(self.queue.as_ref(), record, after).await;
        false
    }
}

#[async_trait]
impl SqsConsumer for LeadDelivery {
    /// Records run concurrently: one slow target does not hold the others up.
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        shared::worker::each_record(&event, |r| self.handle_record(r)).await
    }
}

/// Only `GET /v1/health`: the function has no routes of its own.
pub fn router() -> shared::http::Router {
    shared::http::Router::new(None)
}
