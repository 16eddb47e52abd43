//! `SecretBox` on AWS KMS (aws-sdk-kms): the encryption context is enforced by KMS, and
//! opened secrets are cached in memory for a bounded time to keep hot paths off KMS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::ports::secretbox::{EncryptionContext, Sealed, SecretBox, SecretBoxError};
use crate::secret::Secret;

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 512;

type CacheKey = [u8; 32];
type Cache = HashMap<CacheKey, (Instant, Secret<Vec<u8>>)>;

pub struct KmsSecretBox {
    client: Client,
    key_id: String,
    cache: Mutex<Cache>,
}

impl KmsSecretBox {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The cache key covers the ciphertext *and* the context, so a cached plaintext is never
    /// handed out for a context KMS would refuse.
    fn cache_key(sealed: &Sealed, context: &EncryptionContext) -> CacheKey {
        let mut h = Sha256::new();
        h.update(sealed.0.as_bytes());
        h.update([0]);
        h.update(context.canonical_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &CacheKey) -> Option<Secret<Vec<u8>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, s)| s.clone())
    }

    fn remember(&self, key: CacheKey, secret: &Secret<Vec<u8>>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), secret.clone()));
    }
}

fn unavailable<E, R>(err: &SdkError<E, R>) -> SecretBoxError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    SecretBoxError::Unavailable(DisplayErrorContext(err).to_string())
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[async_trait]
impl SecretBox for KmsSecretBox {
    async fn seal(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, SecretBoxError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| SecretBoxError::SealFailed("no ciphertext in the answer".into()))?;
        Ok(Sealed(
            base64::engine::general_purpose::STANDARD.encode(blob.as_ref()),
        ))
    }

    async fn open(
        &self,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Secret<Vec<u8>>, SecretBoxError> {
        let cache_key = Self::cache_key(sealed, context);
        if let Some(hit) = self.cached(&cache_key) {
            return Ok(hit);
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&sealed.0)
            .map_err(|_| SecretBoxError::OpenFailed)?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some(
                    "InvalidCiphertextException"
                    | "IncorrectKeyException"
                    | "AccessDeniedException",
                ) => SecretBoxError::OpenFailed,
                _ => unavailable(&e),
            })?;
        let plaintext = Secret::new(
            out.plaintext()
                .map(|p| p.as_ref().to_vec())
                .ok_or(SecretBoxError::OpenFailed)?,
        );
        self.remember(cache_key, &plaintext);
        Ok(plaintext)
    }
}
