//! One module per provider behind [`WebhookProvider`]: verify the raw request, parse the
//! body into [`InboundEvent`]s. Adding a provider is its module plus one line in [`find`].

pub mod max;
mod meta;
pub mod telegram_bot;
pub mod telegram_crm;
pub mod viber;
pub mod vk;
pub mod wappi;
pub mod web_widget;
pub mod whatsapp;

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};
use serde_json::json;
use shared::http::{ApiError, ApiResponse};
use shared::repo::integrations::OpenConfig;
use shared::signing::constant_time_eq;

use crate::event::InboundEvent;

/// The raw request as the provider sent it.
pub struct WebhookRequest<'a> {
    pub headers: &'a HeaderMap,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a webhook is refused. Reasons are fixed texts: never a secret or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or wrong signature / secret → 401.
    Unauthorized(&'static str),
    /// A failed subscription handshake → 403.
    Forbidden(&'static str),
    /// Not the provider's format → 400.
    Malformed(String),
    /// This provider has no such method (a GET without handshake) → 405.
    MethodNotAllowed,
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unauthorized(why) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE", why)
            }
            Rejection::Forbidden(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "HANDSHAKE_FAILED", why)
            }
            Rejection::Malformed(why) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_WEBHOOK",
                "the body is not a webhook of this provider",
            )
            .with_details(json!({"reason": why})),
            Rejection::MethodNotAllowed => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "this provider's webhooks are POSTed",
            ),
        }
    }
}

pub fn malformed(e: impl std::fmt::Display) -> Rejection {
    Rejection::Malformed(e.to_string())
}

/// What a body holds.
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<InboundEvent>,
    /// Update types received but not handled (answered 200 and logged, so the provider
    /// does not retry them forever).
    pub ignored: Vec<String>,
    /// An answer the provider expects instead of the usual acknowledgement (VK's
    /// confirmation string).
    pub reply: Option<ApiResponse>,
}

impl Parsed {
    pub fn one(event: InboundEvent) -> Self {
        Self {
            events: vec![event],
            ..Self::default()
        }
    }

    pub fn ignored(kind: impl Into<String>) -> Self {
        Self {
            ignored: vec![kind.into()],
            ..Self::default()
        }
    }
}

pub trait WebhookProvider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Checks the request came from the provider, on the raw bytes, before any parsing.
    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection>;

    fn parse(&self, config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection>;

    /// The methods the provider's webhook URL answers (the `Allow` of a 405): `POST`, with
    /// `GET` where it has a handshake and `OPTIONS` where browsers call it.
    fn methods(&self) -> &'static str {
        "POST"
    }

    /// A GET on the webhook URL: the provider's subscription handshake, if it has one.
    fn handshake(
        &self,
        _config: &OpenConfig,
        _req: &WebhookRequest<'_>,
    ) -> Result<ApiResponse, Rejection> {
        Err(Rejection::MethodNotAllowed)
    }

    /// Messages one sender may post per minute, for providers anyone can call (the web
    /// widget); `None` for providers whose requests are signed.
    fn visitor_rate_limit(&self) -> Option<u32> {
        None
    }

    /// The answer to a handled webhook.
    fn acknowledge(&self) -> ApiResponse {
        ApiResponse::json(StatusCode::OK, &json!({"ok": true}))
    }
}

/// The provider registered under a name.
pub fn find(name: &str) -> Option<&'static dyn WebhookProvider> {
    Some(match name {
        "telegram_bot" => &telegram_bot::TelegramBot,
        "wappi" => &wappi::Wappi,
        "telegram_crm" => &telegram_crm::TelegramCrm,
        "max" => &max::Max,
        "whatsapp" => &whatsapp::WhatsApp,
        "viber" => &viber::Viber,
        "vk" => &vk::Vk,
        "instagram" => &meta::INSTAGRAM,
        "messenger" => &meta::MESSENGER,
        "web_widget" => &web_widget::WebWidget,
        _ => return None,
    })
}

/// Every registered provider name.
pub const NAMES: [&str; 10] = [
    "telegram_bot",
    "wappi",
    "telegram_crm",
    "max",
    "whatsapp",
    "viber",
    "vk",
    "instagram",
    "messenger",
    "web_widget",
];

/// The configured secret of a field; an integration without one accepts nothing.
pub fn configured<'a>(config: &'a OpenConfig, field: &str) -> Result<&'a str, Rejection> {
    config
        .get(field)
        .map(|s| s.expose().as_str())
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::Unauthorized(
            "the integration has no webhook secret configured",
        ))
}

/// Constant-time check of a shared-secret header or token.
pub fn check_secret(expected: &str, given: Option<&str>) -> Result<(), Rejection> {
    match given {
        Some(given) if constant_time_eq(expected.as_bytes(), given.as_bytes()) => Ok(()),
        Some(_) => Err(Rejection::Unauthorized("the webhook secret does not match")),
        None => Err(Rejection::Unauthorized("the webhook secret is missing")),
    }
}
