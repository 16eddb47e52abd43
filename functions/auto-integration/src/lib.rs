//! auto-integration (SPEC §5 leads routes, §6 "Lead fan-out", seed 001): lead intake,
//! the routing of entities and projects to integrations, delivery state, resend, and the
//! lead-intake queue that runs delayed fan-outs. The fan-out itself is
//! `shared::leads::service`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::backend::{BackendError, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::lead::{DeliveryState, Lead};
use shared::domain::registry::{self, IntegrationKind};
use shared::domain::{IntegrationId, LeadId, MessageId, TenantId, phone};
use shared::http::{
    Access, ApiError, ApiRequest, ApiResponse, Authenticator, Principal, Roles, Router, Scope,
    idempotency,
};
use shared::leads::service::{
    DeliveryJob, DispatchReport, Dispatched, IntakeJob, LeadError, LeadService, Outcome, Skipped,
};
use shared::ports::queue::OutgoingMessage;
use shared::ports::table::TableError;
use shared::ports::{Clock, Queue};
use shared::repo::RepoError;
use shared::repo::api_keys::ApiKeys;
use shared::repo::idempotency::IdempotencyStore;
use shared::repo::leads::{Attachment, RouteScope, valid_external_id};
use shared::worker::{SqsConsumer, backoff, dead_letter, receive_count};

pub const BODY_LIMIT: usize = 256 * 1024;
/// The longest `delay_sec` a lead may ask for (7 days).
pub const MAX_DELAY_SEC: u64 = 7 * 24 * 3600;
/// The most leads one bulk resend takes.
pub const MAX_BULK: usize = 500;

pub struct Deps {
    pub service: Arc<LeadService>,
    pub idempotency: IdempotencyStore,
    pub api_keys: ApiKeys,
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    pub fn new(ports: &Ports, config: &Config) -> Result<Arc<Self>, BackendError> {
        Ok(Arc::new(Self {
            service: Arc::new(LeadService::new(ports, config)?),
            idempotency: IdempotencyStore::new(ports.table.clone(), ports.clock.clone()),
            api_keys: ApiKeys::new(ports.table.clone(), ports.clock.clone()),
            clock: ports.clock.clone(),
        }))
    }
}

pub fn router(deps: Arc<Deps>) -> Router {
    let auth = Arc::new(Authenticator::new(deps.api_keys.clone()));
    let access = Access::DashboardOrApiKey(Roles::ANY, Scope::LeadsWrite);
    let mut router = Router::new(Some(auth))
        .body_limit(BODY_LIMIT)
        .route(
            Method::POST,
            "/v1/leads",
            access,
            shared::handler!(deps, create_lead),
        )
        .route(
            Method::POST,
            "/v1/leads/resend",
            access,
            shared::handler!(deps, resend_many),
        )
        .route(
            Method::GET,
            "/v1/leads/{id}",
            access,
            shared::handler!(deps, get_lead),
        )
        .route(
            Method::GET,
            "/v1/leads/{id}/deliveries",
            access,
            shared::handler!(deps, deliveries),
        )
        .route(
            Method::POST,
            "/v1/leads/{id}/resend",
            access,
            shared::handler!(deps, resend_one),
        );
    // Reading the routing is everyone's; changing it is configuration (owner, admin).
    let configure = Access::DashboardOrApiKey(Roles::MANAGERS, Scope::LeadsWrite);
    for (method, access) in [
        (Method::GET, access),
        (Method::PUT, configure),
        (Method::DELETE, configure),
    ] {
        router = router.route(
            method,
            "/v1/lead-routing/{scope}/{external_id}",
            access,
            shared::handler!(deps, routing),
        );
    }
    router
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::validation(
        format!("{field}: {reason}"),
        json!({"field": field, "reason": reason}),
    )
}

fn lead_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "LEAD_NOT_FOUND", "lead not found")
}

fn lead_error(e: LeadError) -> ApiError {
    match e {
        LeadError::Repo(e) => e.into(),
        LeadError::Queue(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    utm_source: Option<String>,
    #[serde(default)]
    utm_medium: Option<String>,
    #[serde(default)]
    utm_campaign: Option<String>,
    #[serde(default)]
    utm_content: Option<String>,
    #[serde(default)]
    utm_term: Option<String>,
    #[serde(default)]
    external_entity_id: Option<String>,
    #[serde(default)]
    external_project_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    #[serde(default)]
    delay_sec: u64,
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, &format!("longer than {max} characters")))
        }
        other => Ok(other),
    }
}

fn lead_from(body: LeadBody, tenant: &TenantId, deps: &Deps) -> Result<(Lead, u64), ApiError> {
    let phone = match text("phone", body.phone, 64)? {
        Some(raw) => Some(
            phone::normalize(&raw).ok_or_else(|| invalid("phone", "not a valid phone number"))?,
        ),
        None => None,
    };
    let email = text("email", body.email, 254)?;
    if let Some(e) = &email {
        let valid = e.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !host.starts_with('.')
        }) && !e.contains(char::is_whitespace);
        if !valid {
            return Err(invalid("email", "not an e-mail address"));
        }
    }
    let name = shared::domain::text::optional_display_name(body.name.as_deref(), 200)
        .map_err(|e| invalid("name", &e.to_string()))?;
    if name.is_none() && phone.is_none() && email.is_none() {
        return Err(invalid("name", "a lead needs a name, a phone or an e-mail"));
    }
    let mut utm = BTreeMap::new();
    for (key, value) in [
        ("utm_source", body.utm_source),
        ("utm_medium", body.utm_medium),
        ("utm_campaign", body.utm_campaign),
        ("utm_content", body.utm_content),
        ("utm_term", body.utm_term),
    ] {
        if let Some(v) = text(key, value, 500)? {
            utm.insert(key.to_owned(), v);
        }
    }
    for (field, id) in [
        ("external_entity_id", &body.external_entity_id),
        ("external_project_id", &body.external_project_id),
    ] {
        if let Some(id) = id
            && !valid_external_id(id)
        {
            return Err(invalid(field, "1 to 128 of A-Z a-z 0-9 _ . : -"));
        }
    }
    if body.attributes.len() > 50 || body.attributes.keys().any(|k| k.is_empty() || k.len() > 64) {
        return Err(invalid(
            "attributes",
            "at most 50 keys of 1 to 64 characters",
        ));
    }
    if body.delay_sec > MAX_DELAY_SEC {
        return Err(invalid(
            "delay_sec",
            &format!("at most {MAX_DELAY_SEC} (7 days)"),
        ));
    }
    Ok((
        Lead {
            id: LeadId::generate(),
            tenant_id: tenant.clone(),
            name,
            phone,
            email,
            comment: text("comment", body.comment, 5000)?,
            source: text("source", body.source, 200)?,
            utm,
            external_entity_id: body.external_entity_id,
            external_project_id: body.external_project_id,
            attributes: body.attributes,
            created_at: deps.clock.now(),
        },
        body.delay_sec,
    ))
}

/// `POST /v1/leads`: stores the lead and fans it out now, or after `delay_sec`.
async fn create_lead(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let (mut lead, delay) = lead_from(req.json()?, &tenant, deps)?;
    idempotency::once(
        &deps.idempotency,
        deps.clock.as_ref(),
        &tenant,
        "lead-create",
        &req,
        |id: MessageId| async move {
            // The id the first attempt chose: a retry after a crash stores the same lead.
            lead.id = LeadId::parse(id.as_str()).unwrap_or_else(|_| LeadId::generate());
            let retried = match deps.service.leads.insert(&lead).await {
                Ok(()) => false,
                Err(RepoError::Table(TableError::ConditionFailed)) => {
                    tracing::info!(lead_id = %lead.id, "the lead was stored by an earlier attempt");
                    true
                }
                Err(e) => return Err(e.into()),
            };
            let dispatch = if delay == 0 {
                let report = if retried {
                    resume_dispatch(deps, &lead).await
                } else {
                    deps.service.dispatch(&lead, None).await
                }
                .map_err(lead_error)?;
                json!({"status": "dispatched", "report": report})
            } else {
                let at = deps
                    .service
                    .schedule(&lead, Duration::from_secs(delay), None)
                    .await
                    .map_err(lead_error)?;
                json!({"status": "scheduled", "not_before": at})
            };
            let mut body = serde_json::to_value(&lead).map_err(|_| ApiError::internal())?;
            body["dispatch"] = dispatch;
            Ok(ApiResponse::json(StatusCode::CREATED, &body))
        },
    )
    .await
}

/// The fan-out of a lead that an earlier attempt of the same request stored. If that
/// attempt started a round for every integration of the lead, it got as far as queueing
/// their jobs (all, some or none of them): the jobs of the rounds still pending are queued
/// again — a round is delivered once however many jobs name it — instead of new rounds,
/// which would deliver the lead a second time to every target that already has it.
/// Otherwise that attempt queued nothing and the lead is fanned out as new.
async fn resume_dispatch(deps: &Deps, lead: &Lead) -> Result<DispatchReport, LeadError> {
    let service = &deps.service;
    let deliveries = service.leads.deliveries(&lead.tenant_id, &lead.id).await?;
    let integrations = service.integrations_of(lead).await?;
    let started = integrations
        .iter()
        .all(|i| deliveries.iter().any(|d| d.integration_id == i.id));
    if deliveries.is_empty() || !started {
        return service.dispatch(lead, None).await;
    }
    let mut report = DispatchReport::default();
    let mut jobs = Vec::new();
    for delivery in deliveries {
        if delivery.status == DeliveryState::Skipped {
            report.skipped.push(Skipped {
                integration_id: delivery.integration_id,
                kind: delivery.kind,
                reason: delivery.last_error.unwrap_or_default(),
            });
            continue;
        }
        if delivery.status == DeliveryState::Pending {
            jobs.push(DeliveryJob {
                tenant_id: lead.tenant_id.clone(),
                lead_id: lead.id.clone(),
                integration_id: delivery.integration_id.clone(),
                round: delivery.round,
            });
        }
        report.dispatched.push(Dispatched {
            integration_id: delivery.integration_id,
            kind: delivery.kind,
            round: delivery.round,
        });
    }
    for batch in jobs.chunks(shared::ports::MAX_BATCH) {
        let messages = batch
            .iter()
            .map(OutgoingMessage::json)
            .collect::<Result<Vec<_>, _>>()?;
        service.deliveries.send_batch(messages).await?;
    }
    tracing::info!(lead_id = %lead.id, requeued = jobs.len(), "fan-out of an earlier attempt resumed");
    Ok(report)
}

async fn load_lead(deps: &Deps, principal: &Principal, raw: &str) -> Result<Lead, ApiError> {
    let id = LeadId::parse(raw).map_err(|_| lead_not_found())?;
    deps.service
        .leads
        .get(principal.tenant()?, &id)
        .await?
        .ok_or_else(lead_not_found)
}

async fn get_lead(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let lead = load_lead(deps, &principal, req.path_param("id")?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &lead))
}

/// `GET /v1/leads/{id}/deliveries`: the state per integration.
async fn deliveries(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let lead = load_lead(deps, &principal, req.path_param("id")?).await?;
    let items = deps
        .service
        .leads
        .deliveries(&lead.tenant_id, &lead.id)
        .await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResendBody {
    #[serde(default)]
    integration_types: Option<Vec<String>>,
}

/// Types a resend may name: the registry's lead targets and CRMs.
fn check_types(types: &Option<Vec<String>>) -> Result<(), ApiError> {
    if let Some(types) = types {
        if types.is_empty() {
            return Err(invalid(
                "integration_types",
                "empty; omit it to resend to all",
            ));
        }
        for t in types {
            let known = registry::find(t).is_some_and(|m| {
                matches!(m.kind, IntegrationKind::LeadTarget | IntegrationKind::Crm)
            });
            if !known {
                return Err(invalid(
                    "integration_types",
                    &format!("{t} is not an integration type that takes leads"),
                ));
            }
        }
    }
    Ok(())
}

/// `POST /v1/leads/{id}/resend` `{integration_types?}`: a new delivery round.
async fn resend_one(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let lead = load_lead(deps, &principal, req.path_param("id")?).await?;
    let body: ResendBody = if req.body.is_empty() {
        ResendBody::default()
    } else {
        req.json()?
    };
    check_types(&body.integration_types)?;
    let report = deps
        .service
        .dispatch(&lead, body.integration_types.as_deref())
        .await
        .map_err(lead_error)?;
    Ok(ApiResponse::json(StatusCode::OK, &report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    lead_ids: Vec<String>,
    #[serde(default)]
    integration_types: Option<Vec<String>>,
}

/// `POST /v1/leads/resend` `{lead_ids, integration_types?}` →
/// `{dispatched_count, total_count, errors_count, errors}`; an unknown lead or one of
/// another tenant is an entry in `errors`, not a failure of the batch.
async fn resend_many(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let body: BulkBody = req.json()?;
    check_types(&body.integration_types)?;
    if body.lead_ids.is_empty() || body.lead_ids.len() > MAX_BULK {
        return Err(invalid("lead_ids", &format!("1 to {MAX_BULK} lead ids")));
    }
    let mut dispatched = 0;
    let mut errors = Vec::new();
    for raw in &body.lead_ids {
        let lead = match LeadId::parse(raw.as_str()) {
            Ok(id) => deps.service.leads.get(&tenant, &id).await?,
            Err(_) => None,
        };
        let Some(lead) = lead else {
            errors.push(
                json!({"lead_id": raw, "code": "LEAD_NOT_FOUND", "message": "lead not found"}),
            );
            continue;
        };
        match deps
            .service
            .dispatch(&lead, body.integration_types.as_deref())
            .await
        {
            Ok(_) => dispatched += 1,
            Err(e) => {
                tracing::warn!(lead_id = %lead.id, error = %e, "resend failed");
                errors.push(json!({"lead_id": raw, "code": "DISPATCH_FAILED", "message": "the lead could not be dispatched; retry"}));
            }
        }
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({
            "dispatched_count": dispatched,
            "total_count": body.lead_ids.len(),
            "errors_count": errors.len(),
            "errors": errors,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingBody {
    integration_ids: Vec<String>,
}

/// `GET|PUT|DELETE /v1/lead-routing/{entities|projects}/{external_id}`: the integrations
/// a lead of this entity or project goes to.
async fn routing(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let scope = match req.path_param("scope")? {
        "entities" => RouteScope::Entity,
        "projects" => RouteScope::Project,
        _ => return Err(ApiError::not_found("routing scope")),
    };
    let external_id = req.path_param("external_id")?.to_owned();
    if !valid_external_id(&external_id) {
        return Err(invalid("external_id", "1 to 128 of A-Z a-z 0-9 _ . : -"));
    }
    let leads = &deps.service.leads;
    let empty = || Attachment {
        scope,
        external_id: external_id.clone(),
        integration_ids: Vec::new(),
    };
    match req.method {
        Method::GET => {
            let found = leads.attachment(&tenant, scope, &external_id).await?;
            Ok(ApiResponse::json(
                StatusCode::OK,
                &found.unwrap_or_else(empty),
            ))
        }
        Method::DELETE => {
            leads
                .delete_attachment(&tenant, scope, &external_id)
                .await?;
            Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
        }
        _ => {
            let body: RoutingBody = req.json()?;
            if body.integration_ids.len() > 100 {
                return Err(invalid("integration_ids", "at most 100"));
            }
            let known = deps.service.integrations.list(&tenant).await?;
            let mut ids = Vec::new();
            for (i, raw) in body.integration_ids.iter().enumerate() {
                let id = IntegrationId::parse(raw.as_str())
                    .ok()
                    .filter(|id| known.iter().any(|k| &k.id == id))
                    .ok_or_else(|| {
                        invalid(
                            &format!("integration_ids[{i}]"),
                            "no integration of this tenant has this id",
                        )
                    })?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            let attachment = Attachment {
                scope,
                external_id: external_id.clone(),
                integration_ids: ids,
            };
            leads.set_attachment(&tenant, &attachment).await?;
            Ok(ApiResponse::json(StatusCode::OK, &attachment))
        }
    }
}

/// The lead-intake queue's consumer: runs fan-outs that were delayed.
pub struct Intake {
    deps: Arc<Deps>,
    queue: Arc<dyn Queue>,
    dead_letters: Arc<dyn Queue>,
}

impl Intake {
    pub fn new(deps: Arc<Deps>, ports: &Ports) -> Result<Self, BackendError> {
        Ok(Self {
            deps,
            queue: ports.queue(QueueRole::LeadIntake)?,
            dead_letters: ports.dead_letter_queue(QueueRole::LeadIntake)?,
        })
    }

    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let receives = receive_count(record);
        let job: IntakeJob = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(e) => {
                return dead_letter(
                    self.dead_letters.as_ref(),
                    body,
                    &format!("not a lead intake: {e}"),
                )
                .await;
            }
        };
        match self.deps.service.intake(&job).await {
            Ok(Outcome::Done) => true,
            Ok(Outcome::Dead(reason)) => {
                dead_letter(self.dead_letters.as_ref(), body, &reason).await
            }
            Ok(Outcome::Retry(after)) => {
                shared::worker::retry_later(self.queue.as_ref(), record, after).await;
                false
            }
            Err(e) if receives >= QueueRole::LeadIntake.max_receives() => {
                dead_letter(self.dead_letters.as_ref(), body, &format!("gave up: {e}")).await
            }
            Err(e) => {
                tracing::warn!(tenant_id = %job.tenant_id, lead_id = %job.lead_id, error = %e, "fan-out failed; retried later");
                shared::worker::retry_later(self.queue.as_ref(), record, backoff(receives)).await;
                false
            }
        }
    }
}

#[async_trait]
impl SqsConsumer for Intake {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        shared::worker::each_record(&event, |r| self.handle_record(r)).await
    }
}
