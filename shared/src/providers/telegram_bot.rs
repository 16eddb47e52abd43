//! Telegram Bot API: `getMe` (live check), `setWebhook` / `deleteWebhook` (registration).
//! <https://core.telegram.org/bots/api>. Every call answers
//! `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":"…","parameters":{"retry_after":N}}`.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ProviderError, classify_status, short, transport_error};
use crate::secret::Secret;

/// Updates a registered webhook asks Telegram for.
pub const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    pub username: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    result: Option<Value>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

#[derive(Clone)]
pub struct TelegramBotApi {
    http: reqwest::Client,
    base: String,
}

/// Classifies a Bot API error: 401/404 on a bot method mean the token is wrong (Telegram
/// answers 404 for an unknown token), 429 carries `retry_after`, "chat not found" and
/// "user not found" mean the recipient is unreachable through this bot.
pub fn classify(status: u16, description: &str, retry_after: Option<u64>) -> ProviderError {
    let reason = short(description);
    let lower = description.to_ascii_lowercase();
    if lower.contains("chat not found")
        || lower.contains("user not found")
        || lower.contains("peer_id_invalid")
    {
        return ProviderError::RecipientUnreachable(reason);
    }
    match status {
        401 | 404 => ProviderError::Auth(reason),
        403 => ProviderError::Rejected(reason),
        _ => classify_status(status, reason, retry_after.map(Duration::from_secs)),
    }
}

impl TelegramBotApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &Secret<String>,
        method: &str,
        params: Value,
    ) -> Result<T, ProviderError> {
        let url = format!("{}/bot{}/{method}", self.base, token.expose());
        let response = self
            .http
            .post(url)
            .json(&params)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let envelope: Envelope = response.json().await.map_err(|e| {
            classify_status(
                status,
                format!("unreadable answer: {}", e.without_url()),
                None,
            )
        })?;
        if !envelope.ok {
            return Err(classify(
                envelope.error_code.unwrap_or(status),
                envelope.description.as_deref().unwrap_or("no description"),
                envelope.parameters.and_then(|p| p.retry_after),
            ));
        }
        serde_json::from_value(envelope.result.unwrap_or(Value::Null))
            .map_err(|e| ProviderError::Rejected(format!("unexpected result: {e}")))
    }

    pub async fn get_me(&self, token: &Secret<String>) -> Result<BotInfo, ProviderError> {
        self.call(token, "getMe", json!({})).await
    }

    pub async fn set_webhook(
        &self,
        token: &Secret<String>,
        url: &str,
        secret_token: &Secret<String>,
    ) -> Result<(), ProviderError> {
        let params = json!({
            "url": url,
            "secret_token": secret_token.expose(),
            "allowed_updates": ALLOWED_UPDATES,
        });
        self.call::<bool>(token, "setWebhook", params)
            .await
            .map(drop)
    }

    /// Sends a text (`sendMessage`), or a file by URL with the text as caption
    /// (`sendPhoto` for images, `sendDocument` for anything else). Returns the message id.
    pub async fn send(
        &self,
        token: &Secret<String>,
        chat_id: &str,
        text: Option<&str>,
        file: Option<(&str, Option<&str>)>,
    ) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct Sent {
            message_id: i64,
        }
        let (method, params) = match file {
            None => ("sendMessage", json!({"chat_id": chat_id, "text": text})),
            Some((url, mime)) => {
                let (method, field) = if mime.is_some_and(|m| m.starts_with("image/")) {
                    ("sendPhoto", "photo")
                } else {
                    ("sendDocument", "document")
                };
                let mut params = json!({"chat_id": chat_id, field: url});
                if let Some(caption) = text.filter(|t| !t.is_empty()) {
                    params["caption"] = json!(caption);
                }
                (method, params)
            }
        };
        let sent: Sent = self.call(token, method, params).await?;
        Ok(sent.message_id.to_string())
    }

    /// Sends a text formatted with the Bot API's HTML style (`sendMessage`,
    /// `parse_mode: "HTML"`); the caller escapes `<`, `>` and `&` in every value.
    /// Returns the message id.
    pub async fn send_html(
        &self,
        token: &Secret<String>,
        chat_id: &str,
        html: &str,
    ) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct Sent {
            message_id: i64,
        }
        let params = json!({"chat_id": chat_id, "text": html, "parse_mode": "HTML"});
        let sent: Sent = self.call(token, "sendMessage", params).await?;
        Ok(sent.message_id.to_string())
    }

    pub async fn delete_webhook(&self, token: &Secret<String>) -> Result<(), ProviderError> {
        self.call::<bool>(token, "deleteWebhook", json!({}))
            .await
            .map(drop)
    }
}
