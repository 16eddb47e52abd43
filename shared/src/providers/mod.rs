//! Provider API clients, one module per messenger or CRM, on one HTTP client.
//!
//! Every provider error is classified once, in its module, into a [`ProviderError`]; the
//! reason text never contains a token (URLs are stripped from transport errors, because
//! the Telegram Bot API carries the token in its path).

pub mod amocrm;
pub mod bitrix24;
pub mod max;
pub mod telegram_bot;
pub mod telegram_crm;
pub mod viber;
pub mod vk;
pub mod wappi;
pub mod whatsapp;

use std::time::Duration;

/// A provider call's failure, classified for routing and retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Credentials or configuration are wrong: mark the integration `error`.
    #[error("the provider refused the credentials: {0}")]
    Auth(String),
    /// The recipient cannot be reached through this integration.
    #[error("the recipient is unreachable: {0}")]
    RecipientUnreachable(String),
    /// Try again later (429, 5xx, timeouts, connection failures).
    #[error("the provider is temporarily unavailable: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the request for good (bad request, blocked by the user).
    #[error("the provider refused the request: {0}")]
    Rejected(String),
}

impl ProviderError {
    pub fn reason(&self) -> String {
        match self {
            Self::Auth(r) | Self::RecipientUnreachable(r) | Self::Rejected(r) => r.clone(),
            Self::Transient { reason, .. } => reason.clone(),
        }
    }
}

/// Per-attempt limits of every provider call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A provider HTTP client without the SSRF guard (the processes use
/// [`crate::egress::http_client`]).
pub fn http_client() -> reqwest::Client {
    client_builder()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Every client's settings: the per-attempt limits, our user agent and the shared TLS
/// set-up ([`crate::tls`]: rustls, aws-lc-rs — the SDK's stack — one root store).
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!(
            "messenger-integrations/",
            env!("CARGO_PKG_VERSION")
        ));
    match crate::tls::client_config() {
        Some(config) => builder.tls_backend_preconfigured(config),
        None => builder,
    }
}

/// What kind of transport failure (no answer) `err` is, in words for a log or an error.
pub fn transport_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "transport error"
    }
}

/// A target the SSRF guard refused: final, whatever is retried.
impl From<crate::egress::Refused> for ProviderError {
    fn from(refused: crate::egress::Refused) -> Self {
        Self::Rejected(refused.to_string())
    }
}

/// A transport failure (no answer): transient, described without the URL — unless the
/// SSRF guard refused the address, which no retry changes.
pub fn transport_error(err: reqwest::Error) -> ProviderError {
    if let Some(refused) = crate::egress::refusal(&err) {
        return refused.into();
    }
    ProviderError::Transient {
        reason: format!("{}: {}", transport_kind(&err), err.without_url()),
        retry_after: None,
    }
}

/// Classifies a bare HTTP status the common way.
pub fn classify_status(
    status: u16,
    reason: String,
    retry_after: Option<Duration>,
) -> ProviderError {
    match status {
        401 | 403 => ProviderError::Auth(reason),
        429 | 500..=599 => ProviderError::Transient {
            reason,
            retry_after,
        },
        _ => ProviderError::Rejected(reason),
    }
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Reads a successful answer's JSON; an answer of another shape is a refusal.
pub async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ProviderError> {
    response
        .json()
        .await
        .map_err(|e| ProviderError::Rejected(format!("unexpected answer: {}", e.without_url())))
}

/// Keeps a provider's own message short and printable for logs and `last_error`.
pub fn short(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if clean.is_empty() {
        "no details".into()
    } else {
        clean
    }
}
