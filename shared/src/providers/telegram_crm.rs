//! The Telegram CRM user-bot gateway — its contract is pinned in SPEC §6 and
//! `docs/providers/telegram_crm.md`: `POST {api_base}/messages` with
//! `Authorization: Bearer <api_token>` and
//! `{"account_id","peer":{"user_id"|"username"|"phone"},"text","file_url","file_name","file_type"}`
//! → `200 {"message_id"}`, or `{"error":{"code","message"}}` with a 4xx/5xx status.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ProviderError, classify_status, retry_after_header, short, transport_error};
use crate::egress::TargetClient;
use crate::secret::Secret;

/// How the gateway should find the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer<'a> {
    UserId(&'a str),
    Username(&'a str),
    Phone(&'a str),
}

/// A file sent by URL.
#[derive(Debug, Clone, Copy)]
pub struct FileByUrl<'a> {
    pub url: &'a str,
    pub name: Option<&'a str>,
    pub mime_type: Option<&'a str>,
}

#[derive(Clone)]
pub struct TelegramCrmApi {
    targets: TargetClient,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Sent {
    message_id: Value,
}

/// Classifies a gateway error: its code first (`PEER_NOT_FOUND`, `PEER_ID_INVALID`,
/// `USERNAME_NOT_OCCUPIED`, `PHONE_NOT_FOUND` → unreachable; `USER_BLOCKED` → final;
/// `UNAUTHORIZED`, `ACCOUNT_NOT_FOUND`, `SESSION_REVOKED` → broken integration), then the
/// status.
pub fn classify(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let reason = short(&format!("{code}: {message}"));
    match code {
        "PEER_NOT_FOUND" | "PEER_ID_INVALID" | "USERNAME_NOT_OCCUPIED" | "PHONE_NOT_FOUND" => {
            ProviderError::RecipientUnreachable(reason)
        }
        "USER_BLOCKED" | "USER_IS_BLOCKED" => ProviderError::Rejected(reason),
        "UNAUTHORIZED" | "ACCOUNT_NOT_FOUND" | "SESSION_REVOKED" | "AUTH_KEY_UNREGISTERED" => {
            ProviderError::Auth(reason)
        }
        "FLOOD_WAIT" | "RATE_LIMITED" => ProviderError::Transient {
            reason,
            retry_after,
        },
        _ => classify_status(status, reason, retry_after),
    }
}

impl TelegramCrmApi {
    /// `api_base` is the tenant's: requests go through the SSRF guard.
    pub fn new(targets: TargetClient) -> Self {
        Self { targets }
    }

    /// Sends a text and/or a file; returns the gateway's message id.
    pub async fn send(
        &self,
        api_base: &str,
        token: &Secret<String>,
        account_id: &str,
        peer: Peer<'_>,
        text: Option<&str>,
        file: Option<FileByUrl<'_>>,
    ) -> Result<String, ProviderError> {
        let peer = match peer {
            Peer::UserId(id) => json!({"user_id": id}),
            Peer::Username(name) => json!({"username": name}),
            Peer::Phone(phone) => json!({"phone": phone}),
        };
        let body = json!({
            "account_id": account_id,
            "peer": peer,
            "text": text,
            "file_url": file.map(|f| f.url),
            "file_name": file.and_then(|f| f.name),
            "file_type": file.and_then(|f| f.mime_type),
        });
        let response = self
            .targets
            .post(&format!("{}/messages", api_base.trim_end_matches('/')))?
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let sent: Sent = serde_json::from_slice(&bytes).map_err(|_| {
                ProviderError::Rejected("the gateway's answer has no message_id".into())
            })?;
            return match sent.message_id {
                Value::String(s) if !s.is_empty() => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ProviderError::Rejected(
                    "the gateway's answer has no message_id".into(),
                )),
            };
        }
        match serde_json::from_slice::<ErrorAnswer>(&bytes) {
            Ok(answer) => Err(classify(
                status,
                &answer.error.code,
                &answer.error.message,
                retry_after,
            )),
            Err(_) => Err(classify_status(
                status,
                format!("HTTP {status}"),
                retry_after,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_statuses() {
        assert!(matches!(
            classify(404, "PEER_NOT_FOUND", "no peer", None),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(403, "USER_BLOCKED", "blocked", None),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            classify(400, "SESSION_REVOKED", "", None),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            classify(503, "INTERNAL", "", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(400, "BAD_REQUEST", "", None),
            ProviderError::Rejected(_)
        ));
    }
}
