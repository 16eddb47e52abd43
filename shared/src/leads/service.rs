//! Lead fan-out and delivery (seed 001: AutoIntegrationJob, SendLeadToMultipleIntegrationsJob,
//! LeadResendService), shared by the `auto-integration` and `lead-delivery` functions.
//!
//! * [`LeadService::dispatch`]: the lead's integrations = the enabled integrations
//!   attached to its entity ∪ its project, deduplicated (two reads + one query, however
//!   many are attached); supported types become one queue message per (lead, integration),
//!   sent in batches of 10; unsupported ones are recorded `skipped` and reported.
//! * [`LeadService::schedule`]: a fan-out after `delay_sec`. SQS delays at most 900 s, so a
//!   longer delay travels as a chain: the intake message carries `not_before` and is sent
//!   again (≤ 900 s each time) until it is due.
//! * [`LeadService::deliver`]: one (lead, integration, round), idempotent: a retry after a
//!   recorded success sends nothing; transient errors back off; permanent ones and the
//!   last transient one end `failed` and go to the DLQ with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{LeadContext, LeadTargets, NOT_YET_SUPPORTED};
use crate::domain::lead::{DeliveryState, Lead, LeadDelivery};
use crate::domain::{IntegrationId, LeadId, TenantId};
use crate::ports::queue::{MAX_DELAY, OutgoingMessage};
use crate::ports::{Clock, Queue, QueueError};
use crate::providers::ProviderError;
use crate::repo::RepoError;
use crate::repo::idempotency::{Claim, IdempotencyStore};
use crate::repo::integrations::{Integration, Integrations};
use crate::repo::leads::{Leads, RouteScope};
use crate::telemetry::{Metrics, metric_names as metric};

/// A delivery attempt's claim lasts this long (a crashed attempt is taken over after).
const CLAIM_LEASE: Duration = Duration::from_secs(300);
const CLAIM_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// One (lead, integration, round) on the lead-delivery queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub tenant_id: TenantId,
    pub lead_id: LeadId,
    pub integration_id: IntegrationId,
    pub round: u32,
}

/// A fan-out waiting on the lead-intake queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeJob {
    pub tenant_id: TenantId,
    pub lead_id: LeadId,
    pub not_before: Timestamp,
    /// Only these types (a resend naming them); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispatched {
    pub integration_id: IntegrationId,
    #[serde(rename = "type")]
    pub kind: String,
    pub round: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub integration_id: IntegrationId,
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

/// What a fan-out did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    pub dispatched: Vec<Dispatched>,
    pub skipped: Vec<Skipped>,
    /// Set when the lead has no enabled integration at all (reported, not an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What the worker should do with a queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Retry(Duration),
    Dead(String),
}

pub struct LeadService {
    pub leads: Leads,
    pub integrations: Integrations,
    pub targets: Arc<LeadTargets>,
    pub idempotency: IdempotencyStore,
    pub deliveries: Arc<dyn Queue>,
    pub intake: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
}

impl LeadService {
    pub fn new(
        ports: &crate::backend::Ports,
        config: &crate::config::Config,
    ) -> Result<Self, crate::backend::BackendError> {
        use crate::config::QueueRole;
        Ok(Self {
            leads: Leads::new(ports.table.clone(), ports.clock.clone()),
            integrations: Integrations::new(
                ports.table.clone(),
                ports.secrets()?,
                ports.clock.clone(),
            ),
            targets: Arc::new(LeadTargets::new(
                crate::egress::TargetClient::new(config.egress),
                &config.providers,
            )),
            idempotency: IdempotencyStore::new(ports.table.clone(), ports.clock.clone()),
            deliveries: ports.queue(QueueRole::LeadDelivery)?,
            intake: ports.queue(QueueRole::LeadIntake)?,
            clock: ports.clock.clone(),
        })
    }
}

/// Seals rotated credentials into the integration as soon as a target gets them.
struct Reseal<'a> {
    service: &'a LeadService,
    integration: &'a Integration,
    config: &'a crate::repo::integrations::OpenConfig,
}

#[async_trait::async_trait]
impl super::CredentialStore for Reseal<'_> {
    async fn save(&self, update: BTreeMap<String, String>) {
        if let Err(e) = self
            .service
            .seal_back(self.integration, self.config, update)
            .await
        {
            tracing::warn!(integration_id = %self.integration.id, error = %e, "rotated credentials not saved");
        }
    }
}

impl LeadService {
    /// The enabled integrations attached to the lead's entity or project, deduplicated.
    pub async fn integrations_of(&self, lead: &Lead) -> Result<Vec<Integration>, RepoError> {
        let mut ids = BTreeSet::new();
        for (scope, external) in [
            (RouteScope::Entity, &lead.external_entity_id),
            (RouteScope::Project, &lead.external_project_id),
        ] {
            if let Some(external) = external
                && let Some(attachment) = self
                    .leads
                    .attachment(&lead.tenant_id, scope, external)
                    .await?
            {
                ids.extend(attachment.integration_ids);
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .integrations
            .list(&lead.tenant_id)
            .await?
            .into_iter()
            .filter(|i| ids.contains(&i.id) && i.is_enabled)
            .collect())
    }

    /// Fans a lead out now (see the module docs). `types` keeps only those types.
    pub async fn dispatch(
        &self,
        lead: &Lead,
        types: Option<&[String]>,
    ) -> Result<DispatchReport, LeadError> {
        let tenant = &lead.tenant_id;
        let integrations = self.integrations_of(lead).await?;
        let mut report = DispatchReport::default();
        let mut jobs = Vec::new();
        for integration in integrations
            .iter()
            .filter(|i| types.is_none_or(|t| t.iter().any(|k| k == &i.provider)))
        {
            let kind = integration.provider.as_str();
            if self.targets.find(kind).is_none() {
                let reason = if NOT_YET_SUPPORTED.contains(&kind) {
                    format!("{kind} is not supported yet")
                } else {
                    format!("{kind} does not take leads")
                };
                self.leads
                    .skip(tenant, &lead.id, &integration.id, kind, &reason)
                    .await?;
                report.skipped.push(Skipped {
                    integration_id: integration.id.clone(),
                    kind: kind.to_owned(),
                    reason,
                });
                continue;
            }
            let delivery = self
                .leads
                .start_round(tenant, &lead.id, &integration.id, kind)
                .await?;
            jobs.push(DeliveryJob {
                tenant_id: tenant.clone(),
                lead_id: lead.id.clone(),
                integration_id: integration.id.clone(),
                round: delivery.round,
            });
            report.dispatched.push(Dispatched {
                integration_id: integration.id.clone(),
                kind: kind.to_owned(),
                round: delivery.round,
            });
        }
        for batch in jobs.chunks(10) {
            let messages = batch
                .iter()
                .map(OutgoingMessage::json)
                .collect::<Result<Vec<_>, _>>()?;
            self.deliveries.send_batch(messages).await?;
        }
        if report.dispatched.is_empty() && report.skipped.is_empty() {
            report.note = Some("the lead has no enabled integration".into());
        }
        tracing::info!(
            tenant_id = %tenant,
            lead_id = %lead.id,
            dispatched = report.dispatched.len(),
            skipped = ?report.skipped.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            "lead fanned out"
        );
        Ok(report)
    }

    /// Fans a lead out after `delay` (any length; see the module docs).
    pub async fn schedule(
        &self,
        lead: &Lead,
        delay: Duration,
        types: Option<Vec<String>>,
    ) -> Result<Timestamp, LeadError> {
        let not_before = self
            .clock
            .now()
            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
            .unwrap_or_else(|_| self.clock.now());
        let job = IntakeJob {
            tenant_id: lead.tenant_id.clone(),
            lead_id: lead.id.clone(),
            not_before,
            integration_types: types,
        };
        self.intake
            .send(OutgoingMessage::json(&job)?.delayed(delay.min(MAX_DELAY)))
            .await?;
        Ok(not_before)
    }

    /// The intake worker's side: a due lead is fanned out; one not due yet goes back on
    /// the queue for at most 900 s more.
    pub async fn intake(&self, job: &IntakeJob) -> Result<Outcome, LeadError> {
        let now = self.clock.now();
        if now < job.not_before {
            let left = Duration::try_from(job.not_before.duration_since(now)).unwrap_or_default();
            self.intake
                .send(OutgoingMessage::json(job)?.delayed(left.min(MAX_DELAY)))
                .await?;
            return Ok(Outcome::Done);
        }
        let Some(lead) = self.leads.get(&job.tenant_id, &job.lead_id).await? else {
            return Ok(Outcome::Dead("the lead no longer exists".into()));
        };
        self.dispatch(&lead, job.integration_types.as_deref())
            .await?;
        Ok(Outcome::Done)
    }

    /// Delivers one (lead, integration, round); see the module docs.
    pub async fn deliver(
        &self,
        job: &DeliveryJob,
        receive_count: u32,
        max_receives: u32,
    ) -> Result<Outcome, RepoError> {
        let tenant = &job.tenant_id;
        let Some(delivery) = self
            .leads
            .delivery(tenant, &job.lead_id, &job.integration_id)
            .await?
        else {
            return Ok(Outcome::Done);
        };
        if delivery.round != job.round || delivery.status != DeliveryState::Pending {
            // A resend started a newer round, or this round is settled.
            return Ok(Outcome::Done);
        }
        let claim_id = format!("{}:{}:{}", job.lead_id, job.integration_id, job.round);
        match self
            .idempotency
            .claim(tenant, "lead-delivery", &claim_id, "", CLAIM_LEASE)
            .await?
        {
            Claim::Completed { .. } => return Ok(Outcome::Done),
            Claim::InProgress { .. } => return Ok(Outcome::Retry(crate::worker::backoff(1))),
            Claim::Acquired { .. } => {}
        }
        let result = self
            .attempt(job, &delivery, receive_count, max_receives)
            .await;
        match &result {
            Ok(Outcome::Retry(_)) | Err(_) => {
                self.idempotency
                    .release(tenant, "lead-delivery", &claim_id)
                    .await?;
            }
            Ok(_) => {
                self.idempotency
                    .complete(
                        tenant,
                        "lead-delivery",
                        &claim_id,
                        "",
                        None,
                        CLAIM_RETENTION,
                    )
                    .await?;
            }
        }
        result
    }

    async fn attempt(
        &self,
        job: &DeliveryJob,
        delivery: &LeadDelivery,
        receive_count: u32,
        max_receives: u32,
    ) -> Result<Outcome, RepoError> {
        let tenant = &job.tenant_id;
        let Some(lead) = self.leads.get(tenant, &job.lead_id).await? else {
            return Ok(Outcome::Done);
        };
        let integration = self
            .integrations
            .get(tenant, &job.integration_id)
            .await?
            .filter(|i| i.is_enabled);
        let Some(integration) = integration else {
            self.leads
                .record(
                    tenant,
                    delivery,
                    DeliveryState::Skipped,
                    Some("the integration is disabled or gone"),
                    None,
                )
                .await?;
            return Ok(Outcome::Done);
        };
        let Some(target) = self.targets.find(&integration.provider) else {
            self.leads
                .record(
                    tenant,
                    delivery,
                    DeliveryState::Skipped,
                    Some("the type does not take leads"),
                    None,
                )
                .await?;
            return Ok(Outcome::Done);
        };
        let config = self.integrations.open(&integration).await?;
        let delivery_id = format!("ld_{}_{}_{}", job.lead_id, job.integration_id, job.round);
        let started = std::time::Instant::now();
        let result = target
            .deliver(
                &LeadContext {
                    lead: &lead,
                    integration: &integration,
                    delivery_id: &delivery_id,
                    credentials: &Reseal {
                        service: self,
                        integration: &integration,
                        config: &config,
                    },
                },
                &config,
            )
            .await;
        let metrics = Metrics::provider(integration.provider.as_str());
        metrics
            .clone()
            .millis(metric::LATENCY, started.elapsed().as_secs_f64() * 1000.0)
            .count(
                if result.is_ok() {
                    metric::SENT
                } else {
                    metric::PROVIDER_ERROR
                },
                1,
            )
            .emit();
        match result {
            Ok(sent) => {
                if !sent.config_update.is_empty() {
                    self.seal_back(&integration, &config, sent.config_update)
                        .await?;
                }
                self.leads
                    .record(
                        tenant,
                        delivery,
                        DeliveryState::Delivered,
                        None,
                        sent.external_id.as_deref(),
                    )
                    .await?;
                tracing::info!(tenant_id = %tenant, lead_id = %job.lead_id, integration_id = %job.integration_id, provider = integration.provider, "lead delivered");
                Ok(Outcome::Done)
            }
            Err(ProviderError::Transient {
                reason,
                retry_after,
            }) if receive_count < max_receives => {
                self.leads
                    .record(
                        tenant,
                        delivery,
                        DeliveryState::Pending,
                        Some(&reason),
                        None,
                    )
                    .await?;
                let backoff = crate::worker::backoff(receive_count);
                metrics.count(metric::QUEUED, 1).emit();
                tracing::warn!(tenant_id = %tenant, lead_id = %job.lead_id, integration_id = %job.integration_id, provider = integration.provider, receive_count, "lead delivery failed transiently; retried later");
                Ok(Outcome::Retry(
                    retry_after
                        .map_or(backoff, |r| r.max(backoff))
                        .min(MAX_DELAY),
                ))
            }
            Err(error) => {
                let reason = match &error {
                    ProviderError::Transient { reason, .. } => {
                        format!("gave up after {receive_count} attempts: {reason}")
                    }
                    other => other.to_string(),
                };
                self.leads
                    .record(tenant, delivery, DeliveryState::Failed, Some(&reason), None)
                    .await?;
                // `Dead`: the lead-delivery function writes the job to its DLQ.
                metrics
                    .count(metric::FAILED, 1)
                    .count(metric::DLQ, 1)
                    .emit();
                tracing::warn!(tenant_id = %tenant, lead_id = %job.lead_id, integration_id = %job.integration_id, provider = integration.provider, "lead delivery failed for good");
                Ok(Outcome::Dead(reason))
            }
        }
    }

    /// Seals refreshed credentials (amoCRM tokens) back into the integration.
    async fn seal_back(
        &self,
        integration: &Integration,
        config: &crate::repo::integrations::OpenConfig,
        update: BTreeMap<String, String>,
    ) -> Result<(), RepoError> {
        let mut plain: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().clone()))
            .collect();
        plain.extend(update);
        for _ in 0..3 {
            let Some(mut current) = self
                .integrations
                .get(&integration.tenant_id, &integration.id)
                .await?
            else {
                return Ok(());
            };
            current.config = self
                .integrations
                .seal(&integration.tenant_id, &integration.id, &plain)
                .await?;
            match self.integrations.save(&mut current).await {
                Ok(()) => return Ok(()),
                Err(RepoError::Table(crate::ports::table::TableError::ConditionFailed)) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(integration_id = %integration.id, "refreshed credentials not saved: the integration kept changing");
        Ok(())
    }
}
