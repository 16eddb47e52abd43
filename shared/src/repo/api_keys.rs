//! Tenant API keys: only the SHA-256 hash of a key is stored; lookup is by that hash.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{from_item, query_all, to_item};
use crate::domain::TenantId;
use crate::http::Scope;
use crate::ports::Clock;
use crate::ports::table::{
    AttrValue, Condition, GSI1_PK, GSI1_SK, Key, Query, SortKey, Table, TableError, Update,
};
use crate::secret::Secret;

/// `last_used_at` is written at most this often per key, to keep auth off the write path.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The first characters of the key, to recognise it in the dashboard.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

pub fn hash_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

fn key_of(hash: &str) -> Key {
    Key::new(format!("APIKEY#{hash}"), "APIKEY")
}

#[derive(Clone)]
pub struct ApiKeys {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl ApiKeys {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Creates a key (256 random bits); the raw key is returned once and never stored.
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        scopes: Vec<Scope>,
    ) -> Result<(ApiKeyRecord, Secret<String>), TableError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| TableError::Unavailable(e.to_string()))?;
        let raw = format!("ak_{}", hex::encode(random));
        let record = ApiKeyRecord {
            id: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            tenant_id: tenant.clone(),
            name: name.to_owned(),
            scopes,
            prefix: raw.chars().take(8).collect(),
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        let mut item = to_item(&key_of(&hash_key(&raw)), &record)?;
        item.insert(
            GSI1_PK.into(),
            AttrValue::s(format!("TENANT#{tenant}#APIKEYS")),
        );
        item.insert(GSI1_SK.into(), AttrValue::s(&record.id));
        self.table.put(item, Some(Condition::ItemNotExists)).await?;
        Ok((record, Secret::new(raw)))
    }

    fn tenant_index(tenant: &TenantId) -> String {
        format!("TENANT#{tenant}#APIKEYS")
    }

    /// Every key of a tenant (revoked ones included), oldest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, TableError> {
        let items = query_all(self.table.as_ref(), Query::gsi1(Self::tenant_index(tenant))).await?;
        items.iter().map(from_item).collect()
    }

    /// Revokes a key of this tenant; `None` when the tenant has no such key. Revoking twice
    /// keeps the first revocation time.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ApiKeyRecord>, TableError> {
        let page = self
            .table
            .query(Query::gsi1(Self::tenant_index(tenant)).sort(SortKey::Eq(id.to_owned())))
            .await?;
        let Some(item) = page.items.first() else {
            return Ok(None);
        };
        let record: ApiKeyRecord = from_item(item)?;
        if record.revoked_at.is_some() {
            return Ok(Some(record));
        }
        let key = Key::of(item)?;
        let now = self.clock.now();
        let update = Update::new().set("revoked_at", AttrValue::from_json(&serde_json::json!(now)));
        let condition = Condition::Eq("tenant_id".into(), AttrValue::s(tenant.as_str()));
        let updated = self.table.update(&key, update, Some(condition)).await?;
        Ok(Some(from_item(&updated)?))
    }

    /// The active (not revoked) key with this raw value, if any.
    pub async fn find_active(
        &self,
        raw: &Secret<String>,
    ) -> Result<Option<ApiKeyRecord>, TableError> {
        let key = key_of(&hash_key(raw.expose()));
        let Some(item) = self.table.get(&key).await? else {
            return Ok(None);
        };
        let record: ApiKeyRecord = from_item(&item)?;
        if record.revoked_at.is_some() {
            return Ok(None);
        }
        let now = self.clock.now();
        let stale = record
            .last_used_at
            .is_none_or(|t| now.as_second() - t.as_second() >= TOUCH_EVERY_SECS);
        if stale {
            let update = Update::new().set(
                "last_used_at",
                AttrValue::from_json(&serde_json::json!(now)),
            );
            if let Err(e) = self
                .table
                .update(&key, update, Some(Condition::ItemExists))
                .await
            {
                tracing::warn!(error = %e, key_id = %record.id, "could not record API key use");
            }
        }
        Ok(Some(record))
    }
}
