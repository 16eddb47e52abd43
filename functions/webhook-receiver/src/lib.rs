//! webhook-receiver: every messenger's inbound webhooks (SPEC §5, §6 "Webhooks").
//!
//! `POST /v1/webhooks/{provider}/{integration_id}`: find the integration, verify the raw
//! request with its secrets, parse it into events, run each through the [`pipeline`]
//! (claim → client → dialog → message → publish), answer the provider. `GET` is the
//! provider's subscription handshake, `OPTIONS` the web widget's CORS preflight.
//! The [`push`] worker delivers published events to the tenant's `bot_webhook_url`.
#![forbid(unsafe_code)]

pub mod event;
pub mod pipeline;
pub mod providers;
pub mod push;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode, header};
use shared::backend::{BackendError, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::IntegrationId;
use shared::http::{Access, ApiError, ApiRequest, ApiResponse, Principal, Router};
use shared::ports::{Clock, Queue};
use shared::repo::bot_webhook::BotWebhookSecrets;
use shared::repo::idempotency::IdempotencyStore;
use shared::repo::inbox::Inbox;
use shared::repo::integrations::{Freshness, Integration, Integrations, OpenConfig};
use shared::repo::rate_limit::RateLimiter;
use shared::telemetry::{Metrics, metric_names as metric};
use tracing::Instrument;

use pipeline::Outcome;
use providers::{Rejection, WebhookProvider, WebhookRequest};

/// Webhook bodies above this are refused with 413 (real updates are a few KB).
pub const BODY_LIMIT: usize = 256 * 1024;
const ROUTE: &str = "/v1/webhooks/{provider}/{integration_id}";

pub struct Deps {
    pub integrations: Integrations,
    pub inbox: Inbox,
    pub idempotency: IdempotencyStore,
    pub rate_limiter: RateLimiter,
    /// The inbound-events queue.
    pub events: Arc<dyn Queue>,
    pub bot_webhooks: BotWebhookSecrets,
    pub clock: Arc<dyn Clock>,
    /// The push to the tenant's `bot_webhook_url` (the SSRF guard's client).
    pub targets: shared::egress::TargetClient,
}

impl Deps {
    pub fn new(ports: &Ports, config: &Config) -> Result<Arc<Self>, BackendError> {
        let secrets = ports.secrets()?;
        Ok(Arc::new(Self {
            integrations: Integrations::new(
                ports.table.clone(),
                secrets.clone(),
                ports.clock.clone(),
            ),
            inbox: Inbox::new(ports.table.clone(), ports.clock.clone()),
            idempotency: IdempotencyStore::new(ports.table.clone(), ports.clock.clone()),
            rate_limiter: RateLimiter::new(ports.table.clone(), ports.clock.clone()),
            events: ports.queue(QueueRole::InboundEvents)?,
            bot_webhooks: BotWebhookSecrets::new(ports.table.clone(), secrets),
            clock: ports.clock.clone(),
            targets: shared::egress::TargetClient::new(config.egress),
        }))
    }
}

pub fn router(deps: Arc<Deps>) -> Router {
    let mut router = Router::new(None).body_limit(BODY_LIMIT);
    for method in [Method::POST, Method::GET, Method::OPTIONS] {
        let deps = deps.clone();
        router = router.route(method, ROUTE, Access::Public, move |req, principal| {
            let deps = deps.clone();
            async move { handle(&deps, req, principal).await }
        });
    }
    router
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "INTEGRATION_NOT_FOUND",
        "no enabled integration of this provider has this id",
    )
}

/// The enabled integration of this provider with this id (anything else is one 404, so
/// the answer tells nothing about other tenants' integrations). The process's recent copy
/// serves unless `fresh`; a copy that would refuse the request is read again first, so an
/// enable is seen at once and only a disable waits for the copy to expire.
async fn find_integration(
    deps: &Deps,
    provider: &dyn WebhookProvider,
    raw_id: &str,
    fresh: bool,
) -> Result<(Integration, OpenConfig, Freshness), ApiError> {
    let id = IntegrationId::parse(raw_id).map_err(|_| not_found())?;
    let usable = |i: &Integration| i.provider == provider.name() && i.is_enabled;
    let found = if fresh {
        None
    } else {
        deps.integrations.find_by_id(&id).await?
    };
    let (integration, freshness) = match found {
        Some((integration, Freshness::Cached)) if !usable(&integration) => {
            (fresh_integration(deps, &id).await?, Freshness::Read)
        }
        Some(found) => found,
        None if fresh => (fresh_integration(deps, &id).await?, Freshness::Read),
        None => return Err(not_found()),
    };
    if !usable(&integration) {
        return Err(not_found());
    }
    // Decrypted configs are cached by the SecretBox adapter (KMS: bounded time in memory).
    let config = deps.integrations.open(&integration).await?;
    Ok((integration, config, freshness))
}

async fn fresh_integration(deps: &Deps, id: &IntegrationId) -> Result<Integration, ApiError> {
    deps.integrations
        .find_by_id_fresh(id)
        .await?
        .ok_or_else(not_found)
}

/// A refusal that a changed integration (a rotated secret) could explain.
fn refused_by_config(e: &ApiError) -> bool {
    matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}

async fn handle(
    deps: &Deps,
    req: ApiRequest,
    _principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let started = Instant::now();
    let name = req.path_param("provider")?.to_owned();
    let provider = providers::find(&name).ok_or_else(not_found)?;
    let raw_id = req.path_param("integration_id")?;
    let (mut integration, mut config, freshness) =
        find_integration(deps, provider, raw_id, false).await?;
    let wreq = WebhookRequest {
        headers: &req.headers,
        query: &req.query,
        body: &req.body,
    };
    let mut span = span(&integration, &name, &req.request_id);
    let mut result = answer(deps, provider, &req.method, &integration, &config, &wreq)
        .instrument(span.clone())
        .await;
    if freshness == Freshness::Cached && result.as_ref().is_err_and(refused_by_config) {
        // The process's copy may predate a change of the integration's secrets.
        (integration, config, _) = find_integration(deps, provider, raw_id, true).await?;
        span = self::span(&integration, &name, &req.request_id);
        result = answer(deps, provider, &req.method, &integration, &config, &wreq)
            .instrument(span.clone())
            .await;
    }
    let cors = cors(&name, &config, &wreq);
    let metrics = Metrics::provider(name.as_str());
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(parent: &span, status = e.status.as_u16(), code = %e.code, "webhook refused");
            // 5xx: not stored, the provider redelivers; 4xx: refused (signature, body, …).
            let name = if e.status.is_server_error() {
                metric::WEBHOOK_FAILED
            } else {
                metric::WEBHOOK_REFUSED
            };
            metrics.clone().count(name, 1).emit();
            let mut response = ApiResponse::error(&e);
            if e.status == StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers
                    .insert(header::ALLOW, HeaderValue::from_static(provider.methods()));
            }
            response
        }
    };
    if let Some(origin) = cors.and_then(|o| HeaderValue::from_str(&o).ok()) {
        response
            .headers
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response
            .headers
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    metrics
        .millis(
            metric::WEBHOOK_LATENCY,
            started.elapsed().as_secs_f64() * 1000.0,
        )
        .emit();
    Ok(response)
}

fn span(integration: &Integration, provider: &str, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "webhook",
        tenant_id = %integration.tenant_id,
        integration_id = %integration.id,
        provider,
        request_id,
    )
}

/// The answer to a webhook request of a found integration.
async fn answer(
    deps: &Deps,
    provider: &dyn WebhookProvider,
    method: &Method,
    integration: &Integration,
    config: &OpenConfig,
    wreq: &WebhookRequest<'_>,
) -> Result<ApiResponse, ApiError> {
    let name = provider.name();
    match *method {
        Method::GET => provider.handshake(config, wreq).map_err(ApiError::from),
        Method::OPTIONS if name == "web_widget" => preflight(cors(name, config, wreq).as_deref()),
        Method::OPTIONS => Err(Rejection::MethodNotAllowed.into()),
        _ => receive(deps, provider, integration, config, wreq).await,
    }
}

/// The Origin the web widget allows for this request, if any.
fn cors(provider: &str, config: &OpenConfig, wreq: &WebhookRequest<'_>) -> Option<String> {
    if provider != "web_widget" {
        return None;
    }
    providers::web_widget::WebWidget::allowed_origin(config, wreq)
        .ok()
        .flatten()
}

/// The widget's CORS preflight: allowed only from one of its `allowed_domains`.
fn preflight(origin: Option<&str>) -> Result<ApiResponse, ApiError> {
    if origin.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ORIGIN_NOT_ALLOWED",
            "the Origin is not one of the widget's allowed domains",
        ));
    }
    let mut response = ApiResponse::empty(StatusCode::NO_CONTENT);
    response.headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    response.headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    response.headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Ok(response)
}

async fn receive(
    deps: &Deps,
    provider: &dyn WebhookProvider,
    integration: &Integration,
    config: &OpenConfig,
    wreq: &WebhookRequest<'_>,
) -> Result<ApiResponse, ApiError> {
    provider.verify(config, wreq)?;
    let parsed = provider.parse(config, wreq.body)?;
    if let Some(missing) = parsed.events.iter().find_map(|e| e.missing_id()) {
        return Err(providers::malformed(format!("an event without its {missing}")).into());
    }
    for kind in &parsed.ignored {
        tracing::info!(update_type = %kind, "update type not handled; acknowledged");
    }
    if let Some(reply) = parsed.reply {
        return Ok(reply);
    }
    if let Some(limit) = provider.visitor_rate_limit() {
        for event in &parsed.events {
            if let Some(visitor) = event.sender_id() {
                let key = format!("{}#{visitor}", integration.id);
                if let Some(wait) = deps
                    .rate_limiter
                    .hit(&integration.tenant_id, &key, limit, 60)
                    .await?
                {
                    let mut response = ApiResponse::error(&ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "RATE_LIMITED",
                        "too many messages; try again later",
                    ));
                    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                        response.headers.insert(header::RETRY_AFTER, value);
                    }
                    return Ok(response);
                }
            }
        }
    }
    let metrics = Metrics::provider(provider.name());
    let mut in_progress = false;
    let (mut processed, mut duplicates) = (0u64, 0u64);
    for event in &parsed.events {
        match pipeline::process(deps, integration, event).await {
            Ok(Outcome::Processed) => processed += 1,
            Ok(Outcome::Duplicate) => duplicates += 1,
            Ok(Outcome::InProgress) => in_progress = true,
            Err(e) => {
                tracing::error!(error = %e, event_id = %event.event_id, "webhook event not stored; the provider will redeliver");
                return Err(ApiError::unavailable());
            }
        }
    }
    metrics
        .count(metric::WEBHOOK_RECEIVED, processed)
        .count(metric::DUPLICATE_DROPPED, duplicates)
        .emit();
    if duplicates > 0 {
        tracing::info!(duplicates, "duplicate events dropped");
    }
    if in_progress {
        // Not 2xx: if the delivery being handled fails, this one must be redelivered too.
        let mut response = ApiResponse::error(&ApiError::new(
            StatusCode::CONFLICT,
            "EVENT_IN_PROGRESS",
            "this event is being handled by another delivery; retry later",
        ));
        response
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return Ok(response);
    }
    Ok(provider.acknowledge())
}
