//! `SecretBox`: seals secrets bound to an encryption context.
//!
//! The context (`{tenant_id, integration_id}` for integration credentials) is part of the
//! authenticated data: a ciphertext copied to another tenant or integration cannot be opened.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{IntegrationId, TenantId};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The context of an integration's credentials.
    pub fn integration(tenant: &TenantId, integration: &IntegrationId) -> Self {
        Self::from_pairs([
            ("tenant_id", tenant.as_str()),
            ("integration_id", integration.as_str()),
        ])
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// A canonical byte form (sorted keys), used as AES-GCM associated data.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// A sealed secret as stored: opaque base64 text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretBoxError {
    /// Wrong context, tampered or foreign ciphertext. Deliberately says nothing more.
    #[error("the secret could not be opened")]
    OpenFailed,
    #[error("the secret could not be sealed: {0}")]
    SealFailed(String),
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
    #[error("the local key file is unusable: {0}")]
    KeyFile(String),
}

#[async_trait]
pub trait SecretBox: Send + Sync {
    async fn seal(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, SecretBoxError>;
    async fn open(
        &self,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Secret<Vec<u8>>, SecretBoxError>;
}
