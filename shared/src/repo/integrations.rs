//! Integrations of a tenant. The whole config is sealed through `SecretBox` with the
//! context `{tenant_id, integration_id}`; the stored item holds only ciphertext.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::memo::TableMemo;
use super::{RepoError, from_item, query_all, to_item};
use crate::domain::registry::{IntegrationKind, IntegrationMeta};
use crate::domain::{IntegrationId, TenantId};
use crate::ports::table::{
    AttrValue, Condition, GSI1_PK, GSI1_SK, Item, Key, Query, SortKey, Table, TableError,
    TransactOp, Update,
};
use crate::ports::{Clock, EncryptionContext, Sealed, SecretBox};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Active,
    Inactive,
    Error,
    Pending,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: IntegrationId,
    pub tenant_id: TenantId,
    pub kind: IntegrationKind,
    pub provider: String,
    /// The messaging network of a channel (`telegram`, `whatsapp`, `max`, …): one primary
    /// integration per tenant and channel.
    pub channel: Option<String>,
    pub name: String,
    pub status: IntegrationStatus,
    pub is_enabled: bool,
    pub is_primary: bool,
    pub config: Sealed,
    pub last_error: Option<String>,
    pub last_sync_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Incremented by every save; a save expecting another version is refused.
    pub version: u64,
}

/// A decrypted config: field → value. Never printed.
pub type OpenConfig = BTreeMap<String, Secret<String>>;

/// The network a channel provider talks on.
pub fn channel_of(meta: &IntegrationMeta, config: &BTreeMap<String, String>) -> Option<String> {
    if meta.kind != IntegrationKind::Channel {
        return None;
    }
    Some(match meta.provider {
        "telegram_bot" | "telegram_crm" => "telegram".to_owned(),
        "wappi" => config
            .get("platform")
            .cloned()
            .unwrap_or_else(|| "telegram".into()),
        other => other.to_owned(),
    })
}

fn key(tenant: &TenantId, id: &IntegrationId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("INTEGRATION#{id}"))
}

fn primary_key(tenant: &TenantId, channel: &str) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("PRIMARY#{channel}"))
}

/// How long an integration looked up by id for an inbound webhook is kept in memory.
/// Every write through [`Integrations`] in this process forgets it at once (the dev server
/// runs every function in one process); another process — another warm Lambda container —
/// sees a disable or a deletion within this time at the latest. An enable, a changed
/// config or a new integration is seen at once: the cache holds only integrations found,
/// and the webhook path looks again before refusing (see [`Integrations::find_by_id`]).
pub const BY_ID_TTL: Duration = Duration::from_secs(30);
/// At most this many integrations are kept (a full cache is emptied and refilled).
const BY_ID_CAPACITY: usize = 4096;

/// Integrations found by id, per process and table.
static BY_ID: LazyLock<TableMemo<IntegrationId, Integration>> =
    LazyLock::new(|| TableMemo::new(BY_ID_TTL, BY_ID_CAPACITY));

/// Drops the cached copy of an integration (after a write to it).
pub fn forget(id: &IntegrationId) {
    BY_ID.retain(|cached, _| cached != id);
}

/// Drops the cached copies of a tenant's integrations (after the tenant is deleted).
pub fn forget_tenant(tenant: &TenantId) {
    BY_ID.retain(|_, integration| integration.tenant_id != *tenant);
}

/// Where [`Integrations::find_by_id`] found an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Read from the table by this call.
    Read,
    /// The process's copy, at most [`BY_ID_TTL`] old: a caller about to refuse a request
    /// because of what it says (disabled, another provider, a signature its secrets do not
    /// verify) looks again with [`Integrations::find_by_id_fresh`] first.
    Cached,
}

#[derive(Clone)]
pub struct Integrations {
    table: Arc<dyn Table>,
    secrets: Arc<dyn SecretBox>,
    clock: Arc<dyn Clock>,
}

impl Integrations {
    pub fn new(table: Arc<dyn Table>, secrets: Arc<dyn SecretBox>, clock: Arc<dyn Clock>) -> Self {
        Self {
            table,
            secrets,
            clock,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn seal(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
        config: &BTreeMap<String, String>,
    ) -> Result<Sealed, RepoError> {
        let plaintext = Secret::new(serde_json::to_vec(config).map_err(|_| RepoError::Corrupt)?);
        Ok(self
            .secrets
            .seal(
                plaintext.expose(),
                &EncryptionContext::integration(tenant, id),
            )
            .await?)
    }

    pub async fn open(&self, integration: &Integration) -> Result<OpenConfig, RepoError> {
        let plaintext = self
            .secrets
            .open(
                &integration.config,
                &EncryptionContext::integration(&integration.tenant_id, &integration.id),
            )
            .await?;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(plaintext.expose()).map_err(|_| RepoError::Corrupt)?;
        Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }

    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
    ) -> Result<Option<Integration>, RepoError> {
        let item = self.table.get(&key(tenant, id)).await?;
        Ok(item.as_ref().map(from_item).transpose()?)
    }

    /// The integration with this id, whatever its tenant (for inbound webhooks, whose URL
    /// carries only the id; the caller must still verify the request's signature): the
    /// process's copy when it has a recent one (see [`BY_ID_TTL`]), else read and kept.
    pub async fn find_by_id(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<(Integration, Freshness)>, RepoError> {
        if let Some(integration) = BY_ID.get(&self.table, id) {
            return Ok(Some((integration, Freshness::Cached)));
        }
        Ok(self
            .find_by_id_fresh(id)
            .await?
            .map(|integration| (integration, Freshness::Read)))
    }

    /// [`Self::find_by_id`] read from the table, never from the cache (and then kept).
    pub async fn find_by_id_fresh(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<Integration>, RepoError> {
        let found = self.read_by_id(id).await?;
        match &found {
            Some(integration) => BY_ID.put(&self.table, id.clone(), integration.clone()),
            None => forget(id),
        }
        Ok(found)
    }

    async fn read_by_id(&self, id: &IntegrationId) -> Result<Option<Integration>, RepoError> {
        let page = self
            .table
            .query(Query::gsi1(format!("INTEGRATION#{id}")).limit(2))
            .await?;
        match page.items.as_slice() {
            [item] => Ok(Some(from_item(item)?)),
            [] => Ok(None),
            _ => {
                tracing::error!(integration_id = %id, "integration id indexed twice");
                Err(RepoError::Corrupt)
            }
        }
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Integration>, RepoError> {
        let query = Query::partition(format!("TENANT#{tenant}"))
            .sort(SortKey::BeginsWith("INTEGRATION#".into()));
        let items = query_all(self.table.as_ref(), query).await?;
        Ok(items.iter().map(from_item).collect::<Result<_, _>>()?)
    }

    /// The stored item: keyed by tenant, and indexed by id alone in `gsi1` so an inbound
    /// webhook (whose URL names only the integration) finds its integration.
    fn item(integration: &Integration) -> Result<Item, RepoError> {
        let mut item = to_item(&key(&integration.tenant_id, &integration.id), integration)?;
        item.insert(
            GSI1_PK.into(),
            AttrValue::s(format!("INTEGRATION#{}", integration.id)),
        );
        item.insert(
            GSI1_SK.into(),
            AttrValue::s(format!("TENANT#{}", integration.tenant_id)),
        );
        Ok(item)
    }

    /// Stores a new integration (the id must be fresh).
    pub async fn insert(&self, integration: &Integration) -> Result<(), RepoError> {
        let result = self
            .table
            .put(Self::item(integration)?, Some(Condition::ItemNotExists))
            .await;
        forget(&integration.id);
        Ok(result?)
    }

    /// Saves a changed integration if nobody saved it since it was read (`version`), and
    /// bumps the version. A concurrent change is `TableError::ConditionFailed`.
    pub async fn save(&self, integration: &mut Integration) -> Result<(), RepoError> {
        let expected = integration.version;
        integration.version += 1;
        integration.updated_at = self.clock.now();
        let result = self
            .table
            .put(
                Self::item(integration)?,
                Some(Condition::Eq("version".into(), AttrValue::n(expected))),
            )
            .await;
        // After the write, whatever its outcome: a lost answer may hide a done write.
        forget(&integration.id);
        if result.is_err() {
            integration.version = expected;
        }
        Ok(result?)
    }

    /// The id of the primary integration of a channel, if any.
    pub async fn primary(
        &self,
        tenant: &TenantId,
        channel: &str,
    ) -> Result<Option<IntegrationId>, RepoError> {
        let marker = self.table.get(&primary_key(tenant, channel)).await?;
        Ok(marker
            .as_ref()
            .and_then(|m| m.get("integration_id"))
            .and_then(AttrValue::as_s)
            .and_then(|id| IntegrationId::parse(id).ok()))
    }

    /// Makes `integration` the primary of its channel, atomically: the previous primary
    /// loses the flag in the same transaction, and a concurrent switch makes this one fail.
    pub async fn make_primary(&self, integration: &Integration) -> Result<(), RepoError> {
        let Some(channel) = &integration.channel else {
            return Ok(());
        };
        let tenant = &integration.tenant_id;
        let previous = self.primary(tenant, channel).await?;
        let marker_condition = match &previous {
            Some(id) => Condition::Eq("integration_id".into(), AttrValue::s(id.as_str())),
            None => Condition::ItemNotExists,
        };
        let mut marker = primary_key(tenant, channel).to_item();
        marker.insert(
            "integration_id".into(),
            AttrValue::s(integration.id.as_str()),
        );
        let mut ops = vec![
            TransactOp::Put {
                item: marker,
                condition: Some(marker_condition),
            },
            TransactOp::Update {
                key: key(tenant, &integration.id),
                update: Update::new()
                    .set("is_primary", AttrValue::Bool(true))
                    .add("version", 1),
                condition: Some(Condition::Eq("is_enabled".into(), AttrValue::Bool(true))),
            },
        ];
        if let Some(old) = previous.clone().filter(|old| *old != integration.id) {
            ops.push(TransactOp::Update {
                key: key(tenant, &old),
                update: Update::new()
                    .set("is_primary", AttrValue::Bool(false))
                    .add("version", 1),
                condition: Some(Condition::ItemExists),
            });
        }
        let result = self.table.transact_write(ops).await;
        forget(&integration.id);
        if let Some(old) = &previous {
            forget(old);
        }
        result.map_err(|e| match e {
            TableError::TransactionCanceled { .. } => TableError::ConditionFailed.into(),
            other => other.into(),
        })
    }

    /// Clears the primary marker of a channel if it points at this integration.
    pub async fn release_primary(&self, integration: &Integration) -> Result<(), RepoError> {
        let Some(channel) = &integration.channel else {
            return Ok(());
        };
        let result = self
            .table
            .delete(
                &primary_key(&integration.tenant_id, channel),
                Some(Condition::Eq(
                    "integration_id".into(),
                    AttrValue::s(integration.id.as_str()),
                )),
            )
            .await;
        match result {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
