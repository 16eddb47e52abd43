//! HMAC signatures: the schemes providers sign their webhooks with, and the Standard
//! Webhooks scheme we sign ours with. Every comparison is constant-time.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks a hex HMAC-SHA1 (Meta's older `X-Hub-Signature`).
pub fn verify_hmac_sha1_hex(key: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex.trim().to_ascii_lowercase()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    constant_time_eq(&mac.finalize().into_bytes(), &given)
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks a hex HMAC-SHA256 of `body` (case-insensitive hex, as Meta and Viber send it).
pub fn verify_hmac_sha256_hex(key: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex.trim().to_ascii_lowercase()) else {
        return false;
    };
    constant_time_eq(&hmac_sha256(key, body), &given)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the signing secret is not a whsec_ base64 key")]
    BadSecret,
}

/// Standard Webhooks (<https://www.standardwebhooks.com/>): the key is the base64 after
/// `whsec_`, the signed content `{id}.{timestamp}.{body}`, the header value `v1,<base64>`.
pub struct StandardWebhooks {
    key: Vec<u8>,
}

impl StandardWebhooks {
    pub fn new(secret: &str) -> Result<Self, SigningError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SigningError::BadSecret)?;
        if key.is_empty() {
            return Err(SigningError::BadSecret);
        }
        Ok(Self { key })
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut content = Vec::with_capacity(id.len() + body.len() + 24);
        content.extend_from_slice(id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(timestamp.to_string().as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        hmac_sha256(&self.key, &content)
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(self.mac(id, timestamp, body))
        )
    }

    /// Whether any `v1,` signature of a (space-separated) header value matches.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.mac(id, timestamp, body);
        header.split_whitespace().any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|given| constant_time_eq(&expected, &given))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of standard-webhooks/standard-webhooks `libraries/go/webhook_test.go`.
    #[test]
    fn standard_webhooks_test_vector() {
        let signer = StandardWebhooks::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(signer.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bad {sig}")
        ));
        assert!(!signer.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &sig));
        assert!(StandardWebhooks::new("whsec_!!").is_err());
    }

    #[test]
    fn hex_hmac_checks_case_insensitively_and_rejects_garbage() {
        let sig = hex::encode(hmac_sha256(b"k", b"body"));
        assert!(verify_hmac_sha256_hex(b"k", b"body", &sig.to_uppercase()));
        assert!(!verify_hmac_sha256_hex(b"k", b"body!", &sig));
        assert!(!verify_hmac_sha256_hex(b"k", b"body", "zz"));
    }
}
