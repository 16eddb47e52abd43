//! Leads, their routing and their deliveries, in the tenant's partition:
//! * `LEAD#{lead}` — the lead; `LEAD#{lead}#DELIVERY#{integration}` — one delivery per
//!   integration (one query reads them all);
//! * `LEADROUTE#entity#{external id}` / `LEADROUTE#project#{external id}` — the integration
//!   ids attached to an entity or a project, one item each, so finding a lead's
//!   integrations takes two reads however many are attached.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{RepoError, from_item, get_document, put_document, query_all, to_item};
use crate::domain::lead::{DeliveryState, Lead, LeadDelivery};
use crate::domain::{IntegrationId, LeadId, TenantId};
use crate::ports::Clock;
use crate::ports::table::{AttrValue, Condition, Key, Query, SortKey, Table, TableError, Update};

/// Tries to record a delivery's outcome before the error is returned.
const RECORD_TRIES: u32 = 4;

/// What a set of integrations is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteScope {
    Entity,
    Project,
}

impl RouteScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Project => "project",
        }
    }
}

/// The integrations attached to one entity or project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub scope: RouteScope,
    pub external_id: String,
    pub integration_ids: Vec<IntegrationId>,
}

/// Whether an external entity/project id can be a key part: 1–128 of `A–Z a–z 0–9 _ . : -`.
pub fn valid_external_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn lead_key(tenant: &TenantId, id: &LeadId) -> Key {
    Key::new(pk(tenant), format!("LEAD#{id}"))
}

fn delivery_key(tenant: &TenantId, lead: &LeadId, integration: &IntegrationId) -> Key {
    Key::new(pk(tenant), format!("LEAD#{lead}#DELIVERY#{integration}"))
}

fn route_key(tenant: &TenantId, scope: RouteScope, external_id: &str) -> Key {
    Key::new(
        pk(tenant),
        format!("LEADROUTE#{}#{external_id}", scope.as_str()),
    )
}

#[derive(Clone)]
pub struct Leads {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl Leads {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    pub async fn insert(&self, lead: &Lead) -> Result<(), RepoError> {
        self.table
            .put(
                to_item(&lead_key(&lead.tenant_id, &lead.id), lead)?,
                Some(Condition::ItemNotExists),
            )
            .await?;
        Ok(())
    }

    pub async fn get(&self, tenant: &TenantId, id: &LeadId) -> Result<Option<Lead>, RepoError> {
        Ok(get_document(self.table.as_ref(), &lead_key(tenant, id)).await?)
    }

    /// The integration ids attached to an entity or a project (none when never set).
    pub async fn attachment(
        &self,
        tenant: &TenantId,
        scope: RouteScope,
        external_id: &str,
    ) -> Result<Option<Attachment>, RepoError> {
        if !valid_external_id(external_id) {
            return Ok(None);
        }
        Ok(get_document(self.table.as_ref(), &route_key(tenant, scope, external_id)).await?)
    }

    pub async fn set_attachment(
        &self,
        tenant: &TenantId,
        attachment: &Attachment,
    ) -> Result<(), RepoError> {
        put_document(
            self.table.as_ref(),
            &route_key(tenant, attachment.scope, &attachment.external_id),
            attachment,
        )
        .await?;
        Ok(())
    }

    pub async fn delete_attachment(
        &self,
        tenant: &TenantId,
        scope: RouteScope,
        external_id: &str,
    ) -> Result<bool, RepoError> {
        Ok(self
            .table
            .delete(&route_key(tenant, scope, external_id), None)
            .await?
            .is_some())
    }

    /// Starts a delivery round of a lead to an integration: status `pending`, attempts 0,
    /// the round number one higher than before. Returns the delivery.
    pub async fn start_round(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        integration: &IntegrationId,
        kind: &str,
    ) -> Result<LeadDelivery, RepoError> {
        let item = self
            .table
            .update(
                &delivery_key(tenant, lead, integration),
                Update::new()
                    .add("round", 1)
                    .set("lead_id", AttrValue::s(lead.as_str()))
                    .set("integration_id", AttrValue::s(integration.as_str()))
                    .set("type", AttrValue::s(kind))
                    .set("status", AttrValue::s("pending"))
                    .set("attempts", AttrValue::n(0))
                    .set("updated_at", AttrValue::s(self.clock.now().to_string()))
                    .remove("last_error"),
                None,
            )
            .await?;
        Ok(from_item(&item)?)
    }

    /// Records a delivery that is never attempted (the type is not supported, the
    /// integration is disabled).
    pub async fn skip(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        integration: &IntegrationId,
        kind: &str,
        reason: &str,
    ) -> Result<(), RepoError> {
        self.table
            .update(
                &delivery_key(tenant, lead, integration),
                Update::new()
                    .set("lead_id", AttrValue::s(lead.as_str()))
                    .set("integration_id", AttrValue::s(integration.as_str()))
                    .set("type", AttrValue::s(kind))
                    .set("status", AttrValue::s("skipped"))
                    .set("last_error", AttrValue::s(reason))
                    .set("updated_at", AttrValue::s(self.clock.now().to_string()))
                    .add("round", 0)
                    .add("attempts", 0),
                None,
            )
            .await?;
        Ok(())
    }

    pub async fn delivery(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        integration: &IntegrationId,
    ) -> Result<Option<LeadDelivery>, RepoError> {
        Ok(get_document(
            self.table.as_ref(),
            &delivery_key(tenant, lead, integration),
        )
        .await?)
    }

    /// Records the outcome of one attempt of a round; a newer round (a resend meanwhile)
    /// is left alone. `false` when the round had moved on.
    pub async fn record(
        &self,
        tenant: &TenantId,
        delivery: &LeadDelivery,
        status: DeliveryState,
        error: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<bool, RepoError> {
        let status_name = match status {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        };
        let now = self.clock.now();
        let mut update = Update::new()
            .set("status", AttrValue::s(status_name))
            .set("updated_at", AttrValue::s(now.to_string()))
            .add("attempts", 1);
        update = match error {
            Some(e) => update.set("last_error", AttrValue::s(e)),
            None => update.remove("last_error"),
        };
        if let Some(id) = external_id {
            update = update.set("external_id", AttrValue::s(id));
        }
        let key = delivery_key(tenant, &delivery.lead_id, &delivery.integration_id);
        let round = Condition::Eq("round".into(), AttrValue::n(i128::from(delivery.round)));
        // The outcome of a delivery the target already has must not be lost (the retry of
        // the job would deliver it again): a retryable failure is retried in place, after
        // reading back whether the write happened and only its answer was lost (the
        // round's claim holder is its only writer; `updated_at` marks this write).
        let mut tries = 1;
        loop {
            match self
                .table
                .update(&key, update.clone(), Some(round.clone()))
                .await
            {
                Ok(_) => return Ok(true),
                Err(TableError::ConditionFailed) => return Ok(false),
                Err(e) if e.is_retryable() && tries < RECORD_TRIES => {
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(tries)))
                        .await;
                    tries += 1;
                    let current: Option<LeadDelivery> =
                        get_document(self.table.as_ref(), &key).await.ok().flatten();
                    if current.is_some_and(|c| {
                        c.round == delivery.round && c.status == status && c.updated_at == now
                    }) {
                        return Ok(true);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Every delivery of a lead.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
    ) -> Result<Vec<LeadDelivery>, RepoError> {
        let items = query_all(
            self.table.as_ref(),
            Query::partition(pk(tenant))
                .sort(SortKey::BeginsWith(format!("LEAD#{lead}#DELIVERY#"))),
        )
        .await?;
        Ok(items.iter().map(from_item).collect::<Result<_, _>>()?)
    }
}
