//! `SecretBox` with a local AES-256-GCM key file; the encryption context is the AAD.
//!
//! Sealed format: `v1.` + base64(nonce ‖ ciphertext ‖ tag), 96-bit random nonce per seal.

use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;

use crate::ports::secretbox::{EncryptionContext, Sealed, SecretBox, SecretBoxError};
use crate::secret::Secret;

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

pub struct LocalSecretBox {
    cipher: Aes256Gcm,
}

impl LocalSecretBox {
    pub fn from_key(key: &Secret<[u8; 32]>) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.expose().into()),
        }
    }

    /// Loads the key file, creating it (mode 0600, 32 random bytes, hex) when absent.
    pub fn open_or_create(path: &Path) -> Result<Self, SecretBoxError> {
        let key_file = |e: std::io::Error| SecretBoxError::KeyFile(e.kind().to_string());
        if !path.exists() {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| SecretBoxError::KeyFile(e.to_string()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(key_file)?;
            file.write_all(hex::encode(key).as_bytes())
                .map_err(key_file)?;
        }
        let text = std::fs::read_to_string(path).map_err(key_file)?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| SecretBoxError::KeyFile("the key file is not hex".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretBoxError::KeyFile("the key must be 32 bytes".into()))?;
        Ok(Self::from_key(&Secret::new(key)))
    }
}

#[async_trait]
impl SecretBox for LocalSecretBox {
    async fn seal(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, SecretBoxError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretBoxError::SealFailed(e.to_string()))?;
        let aad = context.canonical_bytes();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretBoxError::SealFailed("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(Sealed(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )))
    }

    async fn open(
        &self,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Secret<Vec<u8>>, SecretBoxError> {
        let raw = sealed
            .0
            .strip_prefix(PREFIX)
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .filter(|raw| raw.len() > NONCE_LEN)
            .ok_or(SecretBoxError::OpenFailed)?;
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let aad = context.canonical_bytes();
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Secret::new)
            .map_err(|_| SecretBoxError::OpenFailed)
    }
}
