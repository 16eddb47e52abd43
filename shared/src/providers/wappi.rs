//! Wappi (wappi.pro) HTTP API for a personal Telegram account — pinned in SPEC §6 and
//! `docs/providers/wappi.md`: `POST {base}/tapi/sync/message/send?profile_id=…` with
//! `Authorization: <token>` and `{"recipient","body"}`; files by URL on
//! `POST {base}/tapi/sync/message/file/url/send?profile_id=…` with
//! `{"recipient","url","caption","file_name"}`. Success is HTTP 200 with `"status":"done"`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ProviderError, classify_status, retry_after_header, short, transport_error};
use crate::secret::Secret;

#[derive(Clone)]
pub struct WappiApi {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize, Default)]
struct Answer {
    status: Option<String>,
    detail: Option<String>,
    message: Option<String>,
    message_id: Option<Value>,
    id: Option<Value>,
}

/// Classifies a Wappi failure by its text, then by its HTTP status: a peer Telegram does
/// not know here is unreachable; 401/403 are a broken integration; 429/5xx are transient.
pub fn classify(
    status: u16,
    text: &str,
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let lower = text.to_ascii_lowercase();
    let reason = short(text);
    if (lower.contains("peer") && lower.contains("not found"))
        || lower.contains("peer_id_invalid")
        || lower.contains("import_failed")
    {
        return ProviderError::RecipientUnreachable(reason);
    }
    if status == 200 {
        // A 200 that is not "done": the request was refused for good.
        return ProviderError::Rejected(reason);
    }
    classify_status(status, reason, retry_after)
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl WappiApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    /// Sends a text, or a file by URL with the text as its caption. Returns Wappi's
    /// message id. `recipient` is a Telegram user id or a phone in digits.
    pub async fn send(
        &self,
        token: &Secret<String>,
        profile_id: &str,
        recipient: &str,
        text: Option<&str>,
        file: Option<(&str, Option<&str>)>,
    ) -> Result<String, ProviderError> {
        let (path, body) = match file {
            None => (
                "message/send",
                json!({"recipient": recipient, "body": text.unwrap_or_default()}),
            ),
            Some((url, name)) => {
                let mut body = json!({"recipient": recipient, "url": url});
                if let Some(caption) = text.filter(|t| !t.is_empty()) {
                    body["caption"] = json!(caption);
                }
                if let Some(name) = name {
                    body["file_name"] = json!(name);
                }
                ("message/file/url/send", body)
            }
        };
        let response = self
            .http
            .post(format!("{}/tapi/sync/{path}", self.base))
            .query(&[("profile_id", profile_id)])
            .header(reqwest::header::AUTHORIZATION, token.expose())
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        let text = response.text().await.unwrap_or_default();
        let answer: Answer = serde_json::from_str(&text).unwrap_or_default();
        if status == 200 && answer.status.as_deref() == Some("done") {
            return answer
                .message_id
                .as_ref()
                .or(answer.id.as_ref())
                .and_then(id_text)
                .ok_or_else(|| ProviderError::Rejected("the answer has no message id".into()));
        }
        let detail = answer
            .detail
            .or(answer.message)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(classify(status, &detail, retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_text_first() {
        assert!(matches!(
            classify(400, "Peer not found", None),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(500, "PEER_ID_INVALID", None),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(200, "IMPORT_FAILED", None),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(401, "wrong token", None),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            classify(429, "slow down", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(200, "unknown error", None),
            ProviderError::Rejected(_)
        ));
    }
}
