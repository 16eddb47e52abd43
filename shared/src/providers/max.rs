//! MAX Bot API: `GET /me` (live check), `POST|DELETE /subscriptions` (webhook),
//! `POST /messages` (send). <https://dev.max.ru/docs-api>. The token goes in the
//! `Authorization` header; errors answer `{"code":"…","message":"…"}`.

use serde::Deserialize;
use serde_json::json;

use super::{ProviderError, classify_status, decode, retry_after_header, short, transport_error};
use crate::secret::Secret;

/// Update types a subscription asks MAX for.
pub const UPDATE_TYPES: &[&str] = &[
    "message_created",
    "message_edited",
    "message_callback",
    "bot_started",
    "bot_stopped",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    pub user_id: i64,
    pub name: Option<String>,
    pub username: Option<String>,
}

/// The longest text of one message (`NewMessageBody.text`: up to 4000 characters).
pub const MAX_TEXT: usize = 4000;

/// Where `POST /messages` delivers: a chat (`?chat_id=`) or a user's dialog (`?user_id=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRecipient<'a> {
    Chat(&'a str),
    User(&'a str),
}

/// Classifies a MAX error answer (`{"code","message"}` with its HTTP status):
/// - `chat.not.found` or a 404 on a send: the chat or user does not exist for this bot;
/// - 403 `chat.denied` (`error.dialog.suspended`: the user stopped or blocked the bot):
///   the recipient is unreachable — the token itself is fine;
/// - `attachment.not.ready`: the documented "try again until it succeeds" case;
/// - otherwise by status: 401/403 a broken integration, 429/5xx transient, else refused.
pub fn classify(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let reason = short(&format!("{code}: {message}"));
    match code {
        "attachment.not.ready" => ProviderError::Transient {
            reason,
            retry_after,
        },
        "chat.not.found" | "chat.denied" => ProviderError::RecipientUnreachable(reason),
        _ if status == 404 => ProviderError::RecipientUnreachable(reason),
        _ => classify_status(status, reason, retry_after),
    }
}

#[derive(Deserialize)]
struct Sent {
    message: SentMessage,
}

#[derive(Deserialize)]
struct SentMessage {
    body: SentBody,
}

#[derive(Deserialize)]
struct SentBody {
    mid: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct SimpleResult {
    success: bool,
    message: Option<String>,
}

#[derive(Clone)]
pub struct MaxApi {
    http: reqwest::Client,
    base: String,
}

impl MaxApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret<String>,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let retry_after = retry_after_header(response.headers());
        let body: Option<ErrorBody> = response.json().await.ok();
        let reason = body
            .map(|b| {
                format!(
                    "{}: {}",
                    b.code.unwrap_or_default(),
                    b.message.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(classify_status(status, short(&reason), retry_after))
    }

    /// Sends a text and/or one image by its URL (`attachments: [{"type":"image",
    /// "payload":{"url":…}}]` — MAX fetches it; other files need `POST /uploads` first and
    /// cannot go by URL). Returns the sent message's `message.body.mid`. A text over
    /// [`MAX_TEXT`] characters is refused before any call.
    pub async fn send_message(
        &self,
        token: &Secret<String>,
        to: MaxRecipient<'_>,
        text: Option<&str>,
        image_url: Option<&str>,
    ) -> Result<String, ProviderError> {
        let text = text.filter(|t| !t.is_empty());
        if let Some(text) = text {
            let length = text.chars().count();
            if length > MAX_TEXT {
                return Err(ProviderError::Rejected(format!(
                    "the text is {length} characters; MAX takes at most {MAX_TEXT}"
                )));
            }
        }
        if text.is_none() && image_url.is_none() {
            return Err(ProviderError::Rejected(
                "nothing to send: no text and no file".into(),
            ));
        }
        let mut body = serde_json::Map::new();
        if let Some(text) = text {
            body.insert("text".into(), json!(text));
        }
        if let Some(url) = image_url {
            body.insert(
                "attachments".into(),
                json!([{"type": "image", "payload": {"url": url}}]),
            );
        }
        let (name, id) = match to {
            MaxRecipient::Chat(id) => ("chat_id", id),
            MaxRecipient::User(id) => ("user_id", id),
        };
        let response = self
            .http
            .post(format!("{}/messages", self.base))
            .query(&[(name, id)])
            .header(reqwest::header::AUTHORIZATION, token.expose())
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            let sent: Sent = decode(response).await?;
            return Ok(sent.message.body.mid);
        }
        let retry_after = retry_after_header(response.headers());
        let error: Option<ErrorBody> = response.json().await.ok();
        let (code, message) = error
            .map(|e| (e.code.unwrap_or_default(), e.message.unwrap_or_default()))
            .unwrap_or_else(|| (format!("HTTP {status}"), String::new()));
        Err(classify(status, &code, &message, retry_after))
    }

    async fn simple(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret<String>,
    ) -> Result<(), ProviderError> {
        let result: SimpleResult = decode(self.send(request, token).await?).await?;
        if result.success {
            Ok(())
        } else {
            Err(ProviderError::Rejected(short(
                result.message.as_deref().unwrap_or("refused"),
            )))
        }
    }

    pub async fn get_me(&self, token: &Secret<String>) -> Result<BotInfo, ProviderError> {
        decode(
            self.send(self.http.get(format!("{}/me", self.base)), token)
                .await?,
        )
        .await
    }

    pub async fn subscribe(
        &self,
        token: &Secret<String>,
        url: &str,
        secret: &Secret<String>,
    ) -> Result<(), ProviderError> {
        let body = json!({"url": url, "update_types": UPDATE_TYPES, "secret": secret.expose()});
        self.simple(
            self.http
                .post(format!("{}/subscriptions", self.base))
                .json(&body),
            token,
        )
        .await
    }

    pub async fn unsubscribe(
        &self,
        token: &Secret<String>,
        url: &str,
    ) -> Result<(), ProviderError> {
        let request = self
            .http
            .delete(format!("{}/subscriptions", self.base))
            .query(&[("url", url)]);
        self.simple(request, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_errors_are_classified_by_code_then_status() {
        assert!(matches!(
            classify(401, "verify.token", "Invalid access_token", None),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            classify(404, "chat.not.found", "Chat 990000015 not found", None),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(
                403,
                "chat.denied",
                "Key: error.dialog.suspended, args: [777,].",
                None
            ),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(403, "access.denied", "no rights", None),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            classify(400, "attachment.not.ready", "", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(429, "too.many.requests", "slow down", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(503, "service.unavailable", "", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(400, "proto.payload", "bad body", None),
            ProviderError::Rejected(_)
        ));
    }
}
