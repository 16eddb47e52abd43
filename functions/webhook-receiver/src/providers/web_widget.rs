//! The chat widget on a business's site: the visitor's browser POSTs
//! `{"visitor_id","message_id","text","name"?,"phone"?}`. A browser cannot keep a secret,
//! so the request is accepted from the integration's allowed domains only (the `Origin`
//! header, which browsers set and page scripts cannot), CORS answers name that origin, and
//! each visitor is rate-limited.

use serde::Deserialize;
use shared::repo::integrations::OpenConfig;

use super::{Parsed, Rejection, WebhookProvider, WebhookRequest, malformed};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender};

pub struct WebWidget;

/// Messages a visitor may send per minute.
pub const VISITOR_MESSAGES_PER_MINUTE: u32 = 20;
const MAX_TEXT_CHARS: usize = 4000;

#[derive(Deserialize)]
struct Body {
    visitor_id: String,
    message_id: String,
    text: String,
    name: Option<String>,
    phone: Option<String>,
}

fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host of an `Origin` (`https://shop.example.com:8443` → `shop.example.com`).
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then_some(host)
}

impl WebWidget {
    /// The request's origin if the integration accepts it.
    pub fn allowed_origin(
        config: &OpenConfig,
        req: &WebhookRequest<'_>,
    ) -> Result<Option<String>, Rejection> {
        let origin = req.header("origin");
        let allowed: Vec<String> = config
            .get("allowed_domains")
            .map(|d| {
                d.expose()
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if allowed.is_empty() {
            return Ok(origin.map(str::to_owned));
        }
        let origin = origin.ok_or(Rejection::Unauthorized("the Origin header is missing"))?;
        let host = origin_host(origin)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if allowed.contains(&host) {
            Ok(Some(origin.to_owned()))
        } else {
            Err(Rejection::Unauthorized(
                "this site is not an allowed domain of the widget",
            ))
        }
    }
}

impl WebhookProvider for WebWidget {
    fn name(&self) -> &'static str {
        "web_widget"
    }

    fn methods(&self) -> &'static str {
        "OPTIONS, POST"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        Self::allowed_origin(config, req).map(|_| ())
    }

    fn parse(&self, _config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let b: Body = serde_json::from_slice(body).map_err(malformed)?;
        if !is_token(&b.visitor_id) || !is_token(&b.message_id) {
            return Err(malformed(
                "visitor_id and message_id are 1-64 of A-Z a-z 0-9 _ -",
            ));
        }
        let text = b.text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(malformed(format!(
                "text must be 1-{MAX_TEXT_CHARS} characters"
            )));
        }
        Ok(Parsed::one(InboundEvent {
            event_id: format!("{}:{}", b.visitor_id, b.message_id),
            occurred_at: jiff::Timestamp::now(),
            kind: EventKind::Message(IncomingMessage {
                sender: Sender {
                    external_id: b.visitor_id.clone(),
                    username: None,
                    name: b.name.map(|n| n.chars().take(100).collect()),
                    phone: b.phone,
                },
                chat_id: b.visitor_id,
                provider_message_id: b.message_id,
                text: Some(text.to_owned()),
                attachments: Vec::new(),
                reply_to: None,
            }),
        }))
    }

    fn visitor_rate_limit(&self) -> Option<u32> {
        Some(VISITOR_MESSAGES_PER_MINUTE)
    }
}
