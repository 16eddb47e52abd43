//! Webhooks: each lead POSTed as JSON to the tenant's endpoint, signed with the Standard
//! Webhooks scheme (<https://www.standardwebhooks.com/>): `webhook-id` (the delivery id,
//! the same on every retry), `webhook-timestamp`, `webhook-signature`.
//!
//! Answers as the specification suggests: 2xx delivered; 410 Gone final; 429 and 5xx
//! (with `Retry-After`) and transport failures retried; redirects are not followed and,
//! like the other 4xx, refused.

use async_trait::async_trait;
use serde_json::json;

use super::{LeadContext, LeadSent, LeadTarget, field};
use crate::egress::{self, EgressPolicy};
use crate::providers::{ProviderError, retry_after_header, short, transport_error};
use crate::repo::integrations::OpenConfig;
use crate::signing::StandardWebhooks;

/// The event type of a delivered lead.
pub const EVENT_TYPE: &str = "lead.created";

pub struct WebhooksTarget {
    http: reqwest::Client,
    policy: EgressPolicy,
}

impl WebhooksTarget {
    /// Uses its own client, under `policy` (the SSRF guard), that follows no redirect.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            http: egress::http_client_without_redirects(policy),
            policy,
        }
    }
}

/// Classifies the endpoint's answer to a delivery.
pub fn classify(
    status: u16,
    body: &str,
    retry_after: Option<std::time::Duration>,
) -> Result<(), ProviderError> {
    let detail = |what: &str| {
        let body = body.trim();
        if body.is_empty() {
            format!("{what} (HTTP {status})")
        } else {
            short(&format!("{what} (HTTP {status}): {body}"))
        }
    };
    match status {
        200..=299 => Ok(()),
        410 => Err(ProviderError::Rejected(detail("the endpoint is gone"))),
        429 | 500..=599 => Err(ProviderError::Transient {
            reason: detail("the endpoint is unavailable"),
            retry_after,
        }),
        300..=399 => Err(ProviderError::Rejected(detail(
            "the endpoint redirects; redirects are not followed, set the final URL",
        ))),
        _ => Err(ProviderError::Rejected(detail(
            "the endpoint refused the webhook",
        ))),
    }
}

#[async_trait]
impl LeadTarget for WebhooksTarget {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError> {
        let url = reqwest::Url::parse(field(config, "url")?)
            .map_err(|e| ProviderError::Auth(format!("the endpoint URL is invalid: {e}")))?;
        let secret = field(config, "secret")?;
        let signer = secret
            .starts_with("whsec_")
            .then(|| StandardWebhooks::new(secret).ok())
            .flatten()
            .ok_or_else(|| {
                ProviderError::Auth("the signing secret is not a whsec_ base64 key".into())
            })?;
        // The event's own time: the body, like the id, is the same on every retry.
        let payload = json!({
            "type": EVENT_TYPE,
            "timestamp": ctx.lead.created_at.to_string(),
            "data": ctx.lead,
        });
        let body = serde_json::to_vec(&payload)
            .map_err(|e| ProviderError::Rejected(format!("the lead cannot be serialized: {e}")))?;
        let timestamp = jiff::Timestamp::now().as_second();
        let signature = signer.sign(ctx.delivery_id, timestamp, &body);
        self.policy.check_url(url.as_str())?;
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", ctx.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        let text = if response.status().is_success() {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        classify(status, &text, retry_after)?;
        Ok(LeadSent::default())
    }
}
