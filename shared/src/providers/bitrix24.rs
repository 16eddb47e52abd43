//! Bitrix24 REST through an inbound webhook URL (`https://<portal>/rest/<user>/<key>/`).
//! Live check: `profile.json`. Errors answer `{"error":"…","error_description":"…"}`;
//! `QUERY_LIMIT_EXCEEDED` is throttling.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{ProviderError, classify_status, retry_after_header, short, transport_error};
use crate::egress::TargetClient;
use crate::secret::Secret;

#[derive(Deserialize)]
struct Envelope {
    result: Option<Value>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Clone)]
pub struct Bitrix24Api {
    targets: TargetClient,
}

/// `{webhook_url}{method}.json`, whether or not the URL ends with a slash.
pub fn method_url(webhook_url: &str, method: &str) -> String {
    format!("{}/{method}.json", webhook_url.trim_end_matches('/'))
}

/// Classifies a Bitrix24 error code.
pub fn classify(status: u16, error: &str, description: &str) -> ProviderError {
    let reason = if error.is_empty() {
        short(description)
    } else {
        short(&format!("{error}: {description}"))
    };
    match error {
        "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" => ProviderError::Transient {
            reason,
            retry_after: None,
        },
        "INVALID_CREDENTIALS"
        | "expired_token"
        | "invalid_token"
        | "NO_AUTH_FOUND"
        | "insufficient_scope"
        | "ACCESS_DENIED" => ProviderError::Auth(reason),
        _ => classify_status(status, reason, None),
    }
}

/// Gives a transient error without a delay the answer's `Retry-After`, if any.
fn with_retry_after(error: ProviderError, retry_after: Option<Duration>) -> ProviderError {
    match error {
        ProviderError::Transient {
            reason,
            retry_after: None,
        } => ProviderError::Transient {
            reason,
            retry_after,
        },
        other => other,
    }
}

impl Bitrix24Api {
    /// The webhook URL is the tenant's: requests go through the SSRF guard.
    pub fn new(targets: TargetClient) -> Self {
        Self { targets }
    }

    /// Calls a REST method; the webhook URL is itself the credential, so it is a secret.
    pub async fn call(
        &self,
        webhook_url: &Secret<String>,
        method: &str,
        params: &Value,
    ) -> Result<Value, ProviderError> {
        let response = self
            .targets
            .post(&method_url(webhook_url.expose(), method))?
            .json(params)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        let envelope: Envelope = response.json().await.map_err(|e| {
            classify_status(
                status,
                format!("unreadable answer: {}", e.without_url()),
                retry_after,
            )
        })?;
        match (envelope.error, envelope.result) {
            (Some(error), _) => Err(with_retry_after(
                classify(
                    status,
                    &error,
                    envelope.error_description.as_deref().unwrap_or(""),
                ),
                retry_after,
            )),
            (None, Some(result)) if status < 400 => Ok(result),
            _ => Err(classify_status(
                status,
                format!("HTTP {status}"),
                retry_after,
            )),
        }
    }

    pub async fn profile(&self, webhook_url: &Secret<String>) -> Result<Value, ProviderError> {
        self.call(webhook_url, "profile", &Value::Object(Default::default()))
            .await
    }
}
