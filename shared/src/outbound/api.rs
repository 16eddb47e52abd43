//! The HTTP side of Telegram send (`POST /v1/messages/telegram`, `POST
//! /v1/messages/telegram-crm`) and the outbound worker, shared by the `telegram-send`,
//! `telegram-crm-send` and `outbound-worker` functions and the dev server.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::channel::{ChannelProviders, FileRef, Outgoing};
use super::telegram::{
    JobResult, NOT_FOUND_MESSAGE, OutboundJob, OutboundSender, Scope as RouteScope, SendError,
    SendOutcome, SendRequest,
};
use crate::backend::{BackendError, Ports};
use crate::config::{Config, QueueRole};
use crate::domain::inbox::Message;
use crate::domain::{ClientId, IntegrationId, MessageId};
use crate::http::idempotency;
use crate::http::{
    Access, ApiError, ApiRequest, ApiResponse, Authenticator, Principal, Roles, Router, Scope,
};
use crate::ports::{Clock, Queue};
use crate::repo::api_keys::ApiKeys;
use crate::repo::idempotency::{Claim, IdempotencyStore};
use crate::repo::inbox::Inbox;
use crate::repo::integrations::Integrations;
use crate::telemetry::{Metrics, metric_names as metric};
use crate::worker::{SqsConsumer, backoff, receive_count};

pub const TELEGRAM_ROUTE: &str = "/v1/messages/telegram";
pub const TELEGRAM_CRM_ROUTE: &str = "/v1/messages/telegram-crm";
/// Send requests are small; files go by URL.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Telegram's limits: a message text, and a caption of a file.
pub const MAX_TEXT: usize = 4096;
pub const MAX_CAPTION: usize = 1024;
/// How long a worker's claim on a queued message lasts.
const WORKER_LEASE: std::time::Duration = std::time::Duration::from_secs(120);

pub struct Deps {
    pub sender: OutboundSender,
    pub idempotency: IdempotencyStore,
    pub api_keys: ApiKeys,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub fn new(ports: &Ports, config: &Config) -> Result<Arc<Self>, BackendError> {
        let providers = ChannelProviders::new(
            crate::egress::TargetClient::new(config.egress),
            &config.providers,
        );
        Ok(Arc::new(Self {
            sender: OutboundSender {
                integrations: Integrations::new(
                    ports.table.clone(),
                    ports.secrets()?,
                    ports.clock.clone(),
                ),
                inbox: Inbox::new(ports.table.clone(), ports.clock.clone()),
                rate_limiter: crate::repo::rate_limit::RateLimiter::new(
                    ports.table.clone(),
                    ports.clock.clone(),
                ),
                providers: Arc::new(providers),
                outbound: ports.queue(QueueRole::Outbound)?,
                clock: ports.clock.clone(),
            },
            idempotency: IdempotencyStore::new(ports.table.clone(), ports.clock.clone()),
            api_keys: ApiKeys::new(ports.table.clone(), ports.clock.clone()),
            clock: ports.clock.clone(),
        }))
    }
}

/// Which of the two send routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Telegram,
    TelegramCrm,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Telegram => TELEGRAM_ROUTE,
            Self::TelegramCrm => TELEGRAM_CRM_ROUTE,
        }
    }

    fn scope_name(self) -> &'static str {
        match self {
            Self::Telegram => "telegram-send",
            Self::TelegramCrm => "telegram-crm-send",
        }
    }
}

/// The router of one send endpoint (a dashboard JWT or an API key with `messages:send`).
pub fn router(deps: Arc<Deps>, endpoint: Endpoint) -> Router {
    let auth = Arc::new(Authenticator::new(deps.api_keys.clone()));
    Router::new(Some(auth)).body_limit(BODY_LIMIT).route(
        Method::POST,
        endpoint.path(),
        Access::DashboardOrApiKey(Roles::ANY, Scope::MessagesSend),
        move |req, principal| {
            let deps = deps.clone();
            async move { handle(&deps, endpoint, req, principal).await }
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    client_id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    file_url: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    file_type: Option<String>,
    #[serde(default)]
    integration_id: Option<String>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(
        format!("{field}: {message}"),
        json!({"field": field, "reason": message}),
    )
}

/// Checks a send body; every refusal names the field.
fn validate(
    body: Body,
    endpoint: Endpoint,
) -> Result<(ClientId, Outgoing, Option<IntegrationId>), ApiError> {
    let client_id =
        ClientId::parse(&body.client_id).map_err(|_| invalid("client_id", "not a client id"))?;
    let integration_id = body
        .integration_id
        .as_deref()
        .map(|id| {
            IntegrationId::parse(id).map_err(|_| invalid("integration_id", "not an integration id"))
        })
        .transpose()?;
    if endpoint == Endpoint::TelegramCrm && integration_id.is_none() {
        return Err(invalid("integration_id", "is required"));
    }
    let text = body.text.filter(|t| !t.trim().is_empty());
    let file = match body.file_url {
        None => {
            if body.file_name.is_some() || body.file_type.is_some() {
                return Err(invalid(
                    "file_url",
                    "is required with file_name or file_type",
                ));
            }
            None
        }
        Some(raw) => {
            let url = reqwest::Url::parse(raw.trim())
                .map_err(|_| invalid("file_url", "not a valid URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid("file_url", "must be an http or https URL"));
            }
            if let Some(mime) = &body.file_type
                && (mime.len() > 127 || mime.split('/').filter(|p| !p.is_empty()).count() != 2)
            {
                return Err(invalid(
                    "file_type",
                    "must be a MIME type such as image/png",
                ));
            }
            if body
                .file_name
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.len() > 255)
            {
                return Err(invalid("file_name", "must be 1 to 255 characters"));
            }
            Some(FileRef {
                url: url.to_string(),
                name: body.file_name,
                mime_type: body.file_type,
            })
        }
    };
    let limit = if file.is_some() {
        MAX_CAPTION
    } else {
        MAX_TEXT
    };
    match &text {
        None if file.is_none() => return Err(invalid("text", "text or file_url is required")),
        Some(t) if t.chars().count() > limit => {
            return Err(invalid(
                "text",
                &format!(
                    "longer than {limit} characters (Telegram's limit{})",
                    if file.is_some() { " for a caption" } else { "" }
                ),
            ));
        }
        _ => {}
    }
    Ok((
        client_id,
        Outgoing {
            text,
            file,
            ..Default::default()
        },
        integration_id,
    ))
}

fn send_error(e: SendError) -> ApiError {
    match e {
        SendError::ClientNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "CLIENT_NOT_FOUND",
            "client not found",
        ),
        SendError::IntegrationNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "INTEGRATION_NOT_FOUND",
            "no Telegram integration of this tenant has this id",
        ),
        SendError::IntegrationDisabled => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INTEGRATION_DISABLED",
            "the integration is disabled",
        ),
        SendError::WrongProvider(provider) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "WRONG_INTEGRATION_PROVIDER",
            format!("the integration is not a {provider} integration"),
        ),
        SendError::NoIntegration => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NO_TELEGRAM_INTEGRATION",
            "the tenant has no enabled Telegram integration",
        ),
        SendError::NoContact => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NO_TELEGRAM_CONTACT",
            "У клиента нет Telegram и номера телефона",
        ),
        SendError::Repo(e) => e.into(),
        SendError::Queue(e) => e.into(),
    }
}

fn message_json(message: &Message) -> Value {
    json!({
        "id": message.id,
        "status": message.status,
        "client_id": message.client_id,
        "dialog_id": message.dialog_id,
        "integration_id": message.integration_id,
        "provider": message.provider,
        "provider_message_id": message.provider_message_id,
        "attempts": message.attempts,
    })
}

async fn handle(
    deps: &Deps,
    endpoint: Endpoint,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let body: Body = req.json()?;
    let (client_id, content, integration_id) = validate(body, endpoint)?;
    let scope = match (endpoint, integration_id) {
        (Endpoint::TelegramCrm, Some(integration_id)) => RouteScope::Pinned {
            integration_id,
            provider: Some("telegram_crm"),
        },
        (_, Some(integration_id)) => RouteScope::Pinned {
            integration_id,
            provider: None,
        },
        (_, None) => RouteScope::Auto,
    };
    // `integration_id`/`provider`: the route being tried, recorded by the sender.
    let span = tracing::info_span!(
        "send",
        tenant_id = %tenant,
        request_id = req.request_id,
        integration_id = tracing::field::Empty,
        provider = tracing::field::Empty,
    );
    let owner = tenant.clone();
    let result = idempotency::once(
        &deps.idempotency,
        deps.clock.as_ref(),
        &tenant,
        endpoint.scope_name(),
        &req,
        |message_id: MessageId| async move {
            let request = SendRequest {
                tenant_id: owner,
                client_id,
                content,
                scope,
                message_id,
            };
            match deps.sender.send(&request).await.map_err(send_error)? {
                SendOutcome::Sent {
                    message,
                    fallback_used,
                } => {
                    let mut body = message_json(&message);
                    body["fallback_used"] = json!(fallback_used);
                    Ok(ApiResponse::json(StatusCode::OK, &body))
                }
                SendOutcome::Queued { message } => Ok(ApiResponse::json(
                    StatusCode::ACCEPTED,
                    &message_json(&message),
                )),
                SendOutcome::NotFound { attempts } => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "CLIENT_NOT_FOUND_IN_TELEGRAM",
                    NOT_FOUND_MESSAGE,
                )
                .with_details(json!({"attempts": attempts}))),
                SendOutcome::Rejected { reason, attempts } => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "MESSAGE_REJECTED",
                    "the provider refused the message",
                )
                .with_details(json!({"reason": reason, "attempts": attempts}))),
            }
        },
    )
    .instrument(span)
    .await;
    if let Ok(response) = &result
        && response.headers.contains_key("idempotent-replayed")
    {
        // A repeated Idempotency-Key: counted under the provider the first request used.
        let body = response.json_body();
        let provider = body["provider"]
            .as_str()
            .unwrap_or(super::telegram::CHANNEL);
        Metrics::provider(provider)
            .count(metric::DUPLICATE_DROPPED, 1)
            .emit();
    }
    result
}

/// The outbound worker: delivers queued messages (SQS consumer of the outbound queue).
pub struct OutboundWorker {
    deps: Arc<Deps>,
    queue: Arc<dyn Queue>,
    dead_letters: Arc<dyn Queue>,
}

const WORKER_SCOPE: &str = "outbound";

impl OutboundWorker {
    pub fn new(deps: Arc<Deps>, queue: Arc<dyn Queue>, dead_letters: Arc<dyn Queue>) -> Self {
        Self {
            deps,
            queue,
            dead_letters,
        }
    }

    /// One record: `Ok(true)` when it can be deleted.
    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let receives = receive_count(record);
        let job: OutboundJob = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(e) => {
                return self
                    .dead_letter(
                        body,
                        &format!("not an outbound job: {e}"),
                        metric::UNKNOWN_PROVIDER,
                    )
                    .await;
            }
        };
        // `integration_id`/`provider`: the route being tried, recorded by the sender.
        let span = tracing::info_span!(
            "outbound",
            tenant_id = %job.tenant_id,
            message_id = %job.message_id,
            channel = job.channel,
            receives,
            integration_id = tracing::field::Empty,
            provider = tracing::field::Empty,
        );
        let result = self.deliver(&job, receives).instrument(span.clone()).await;
        match result {
            Ok(JobResult::Done) => true,
            Ok(JobResult::Dead(reason)) => {
                let provider = self.deps.sender.job_provider(&job).await;
                self.dead_letter(body, &reason, &provider)
                    .instrument(span)
                    .await
            }
            Ok(JobResult::Retry(after)) => {
                crate::worker::retry_later(self.queue.as_ref(), record, after).await;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbound delivery failed; retried later");
                crate::worker::retry_later(self.queue.as_ref(), record, backoff(receives)).await;
                false
            }
        }
    }

    /// Claims the message so a duplicate delivery running at the same time does not send
    /// it twice, then delivers it.
    async fn deliver(
        &self,
        job: &OutboundJob,
        receives: u32,
    ) -> Result<JobResult, crate::repo::RepoError> {
        let store = &self.deps.idempotency;
        let id = job.message_id.as_str();
        match store
            .claim(&job.tenant_id, WORKER_SCOPE, id, "", WORKER_LEASE)
            .await?
        {
            Claim::Completed { .. } => return Ok(JobResult::Done),
            Claim::InProgress { .. } => return Ok(JobResult::Retry(backoff(1))),
            Claim::Acquired { .. } => {}
        }
        let max = QueueRole::Outbound.max_receives();
        let result = self.deps.sender.deliver(job, receives, max).await;
        // Released, never completed: the claim only keeps two deliveries of the message
        // from running at once. Whether it was handled is its status (a job for a message
        // no longer `queued` sends nothing), and a retried request may queue a message
        // again after a job found it `failed`; a completed claim would drop that job.
        store.release(&job.tenant_id, WORKER_SCOPE, id).await?;
        result
    }

    /// Moves a message to the dead-letter queue with the reason; `true` once it is there.
    /// Counted under the job's provider ([`OutboundSender::job_provider`]).
    async fn dead_letter(&self, body: &str, reason: &str, provider: &str) -> bool {
        let stored = crate::worker::dead_letter(self.dead_letters.as_ref(), body, reason).await;
        if stored {
            Metrics::provider(provider).count(metric::DLQ, 1).emit();
        }
        stored
    }
}

#[async_trait]
impl SqsConsumer for OutboundWorker {
    /// The records of a batch are delivered concurrently: one slow provider does not hold
    /// the others up past the function's timeout.
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        crate::worker::each_record(&event, |r| self.handle_record(r)).await
    }
}
