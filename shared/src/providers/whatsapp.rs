//! WhatsApp Cloud API (Graph API). Live check: `GET /{phone_number_id}` with the access
//! token as a bearer. Errors answer `{"error":{"message","type","code","error_subcode"}}`;
//! code 190 is an invalid or expired token.

use serde::Deserialize;

use super::{ProviderError, classify_status, decode, retry_after_header, short, transport_error};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumber {
    pub id: String,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
}

#[derive(Clone)]
pub struct WhatsAppApi {
    http: reqwest::Client,
    base: String,
}

/// Graph API codes that mean the credentials are wrong, whatever the HTTP status.
const AUTH_CODES: &[i64] = &[190, 200, 10];
/// Graph API throttling codes.
const RATE_CODES: &[i64] = &[4, 80007, 130429, 131048, 131056];

impl WhatsAppApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    pub async fn phone_number(
        &self,
        token: &Secret<String>,
        phone_number_id: &str,
    ) -> Result<PhoneNumber, ProviderError> {
        let response = self
            .http
            .get(format!("{}/{phone_number_id}", self.base))
            .query(&[("fields", "id,display_phone_number,verified_name")])
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return decode(response).await;
        }
        let retry_after = retry_after_header(response.headers());
        let error = response.json::<ErrorEnvelope>().await.ok().map(|e| e.error);
        let code = error.as_ref().and_then(|e| e.code);
        let reason = short(
            &error
                .and_then(|e| e.message)
                .unwrap_or_else(|| format!("HTTP {status}")),
        );
        Err(match code {
            Some(c) if AUTH_CODES.contains(&c) => ProviderError::Auth(reason),
            Some(c) if RATE_CODES.contains(&c) => ProviderError::Transient {
                reason,
                retry_after,
            },
            _ => classify_status(status, reason, retry_after),
        })
    }
}
