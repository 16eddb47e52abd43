//! The signing secret (`whsec_…`) of a tenant's `bot_webhook_url`, sealed like integration
//! credentials. Its encryption context uses the reserved integration id `bot-webhook`, so
//! the KMS policy's context condition (`tenant_id` + `integration_id`) covers it too.

use std::sync::Arc;

use base64::Engine as _;

use super::RepoError;
use crate::domain::{IntegrationId, TenantId};
use crate::ports::table::{AttrValue, Key, Table};
use crate::ports::{EncryptionContext, Sealed, SecretBox};
use crate::secret::Secret;

const PSEUDO_INTEGRATION: &str = "bot-webhook";

fn key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "BOT_WEBHOOK_SECRET")
}

/// The tenant's business profile document (written by config-api).
pub fn profile_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "PROFILE")
}

fn context(tenant: &TenantId) -> Result<EncryptionContext, RepoError> {
    let id = IntegrationId::parse(PSEUDO_INTEGRATION).map_err(|_| RepoError::Corrupt)?;
    Ok(EncryptionContext::integration(tenant, &id))
}

/// A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn generate() -> Result<Secret<String>, RepoError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| RepoError::Corrupt)?;
    Ok(Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )))
}

#[derive(Clone)]
pub struct BotWebhookSecrets {
    table: Arc<dyn Table>,
    secrets: Arc<dyn SecretBox>,
}

impl BotWebhookSecrets {
    pub fn new(table: Arc<dyn Table>, secrets: Arc<dyn SecretBox>) -> Self {
        Self { table, secrets }
    }

    pub async fn store(&self, tenant: &TenantId, secret: &Secret<String>) -> Result<(), RepoError> {
        let sealed = self
            .secrets
            .seal(secret.expose().as_bytes(), &context(tenant)?)
            .await?;
        let mut item = key(tenant).to_item();
        item.insert("sealed".into(), AttrValue::s(sealed.0));
        self.table.put(item, None).await?;
        Ok(())
    }

    pub async fn open(&self, tenant: &TenantId) -> Result<Option<Secret<String>>, RepoError> {
        let Some(item) = self.table.get(&key(tenant)).await? else {
            return Ok(None);
        };
        let sealed = item
            .get("sealed")
            .and_then(AttrValue::as_s)
            .ok_or(RepoError::Corrupt)?;
        let plain = self
            .secrets
            .open(&Sealed(sealed.to_owned()), &context(tenant)?)
            .await?;
        let text = String::from_utf8(plain.into_inner()).map_err(|_| RepoError::Corrupt)?;
        Ok(Some(Secret::new(text)))
    }

    /// Where a tenant's inbound events are pushed: `bot_webhook_url` of the profile and the
    /// signing secret. `None` when the tenant has not set a URL.
    pub async fn target(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<(String, Secret<String>)>, RepoError> {
        let profile = self.table.get(&profile_key(tenant)).await?;
        let Some(url) = profile
            .as_ref()
            .and_then(|p| p.get("bot_webhook_url"))
            .and_then(AttrValue::as_s)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let secret = self.open(tenant).await?.ok_or(RepoError::Corrupt)?;
        Ok(Some((url.to_owned(), secret)))
    }

    pub async fn remove(&self, tenant: &TenantId) -> Result<(), RepoError> {
        self.table.delete(&key(tenant), None).await?;
        Ok(())
    }
}
