//! outbound-worker: the SQS consumer of the outbound queue. Delivers messages that a send
//! queued after a transient failure, from the route that failed, with exponential backoff
//! and jitter (at least the provider's `retry_after`), idempotent on the message id; after
//! the last attempt the message is `failed` and moves to the DLQ with the reason.
#![forbid(unsafe_code)]

use std::sync::Arc;

use shared::backend::{BackendError, Ports};
use shared::config::{Config, QueueRole};
pub use shared::outbound::api::{Deps, OutboundWorker};

pub fn worker(ports: &Ports, config: &Config) -> Result<OutboundWorker, BackendError> {
    Ok(OutboundWorker::new(
        Deps::new(ports, config)?,
        ports.queue(QueueRole::Outbound)?,
        ports.dead_letter_queue(QueueRole::Outbound)?,
    ))
}

/// Only `GET /v1/health`: the function has no routes of its own.
pub fn router() -> shared::http::Router {
    shared::http::Router::new(None)
}

pub fn consumer(worker: OutboundWorker) -> Arc<dyn shared::worker::SqsConsumer> {
    Arc::new(worker)
}
