//! Viber REST bot API: `POST /send_message` with the `X-Viber-Auth-Token` header.
//! <https://developers.viber.com/docs/api/rest-bot-api/>. Every answer is HTTP 200 with
//! `{"status":0,"status_message":"ok","message_token":N}` on success, or a non-zero
//! `status` and its name in `status_message` on failure. `message_token` is a 64-bit
//! integer, larger than a double holds exactly: it is read as a JSON number's digits.

use serde::Deserialize;
use serde_json::json;

use super::{ProviderError, classify_status, retry_after_header, short, transport_error};
use crate::secret::Secret;

/// Longest text of a `text` message.
pub const TEXT_MAX: usize = 7000;
/// Longest description of a `picture` message.
pub const PICTURE_TEXT_MAX: usize = 768;
/// Longest sender name.
pub const SENDER_NAME_MAX: usize = 28;

#[derive(Deserialize)]
struct Answer {
    status: Option<i64>,
    status_message: Option<String>,
    message_token: Option<serde_json::Number>,
}

/// Classifies a non-zero Viber `status`: 2 `invalidAuthToken` is a broken integration;
/// 5 `receiverNotRegistered`, 6 `receiverNotSubscribed` and 11 `receiverNoSuitableDevice`
/// an unreachable recipient; 12 `tooManyRequests` transient; anything else refused.
pub fn classify(status: i64, status_message: &str) -> ProviderError {
    let reason = short(&format!("{status} {status_message}"));
    match status {
        2 => ProviderError::Auth(reason),
        5 | 6 | 11 => ProviderError::RecipientUnreachable(reason),
        12 => ProviderError::Transient {
            reason,
            retry_after: None,
        },
        _ => ProviderError::Rejected(reason),
    }
}

#[derive(Clone)]
pub struct ViberApi {
    http: reqwest::Client,
    base: String,
}

impl ViberApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    /// Sends a text, or an image by its URL (`type: picture`, the text as its
    /// description). Other files cannot be sent: a Viber `file` message requires the
    /// file's size in bytes, which a link does not give. Returns the `message_token` as
    /// its exact digits.
    pub async fn send(
        &self,
        token: &Secret<String>,
        receiver: &str,
        sender_name: &str,
        text: Option<&str>,
        image_url: Option<&str>,
    ) -> Result<String, ProviderError> {
        let text = text.filter(|t| !t.is_empty());
        let sender: String = sender_name.chars().take(SENDER_NAME_MAX).collect();
        let mut body = json!({
            "receiver": receiver,
            "min_api_version": 1,
            "sender": {"name": sender},
        });
        match (image_url, text) {
            (Some(url), caption) => {
                let caption = caption.unwrap_or_default();
                let length = caption.chars().count();
                if length > PICTURE_TEXT_MAX {
                    return Err(ProviderError::Rejected(format!(
                        "the caption is {length} characters; Viber takes at most {PICTURE_TEXT_MAX} with a picture"
                    )));
                }
                body["type"] = json!("picture");
                body["text"] = json!(caption);
                body["media"] = json!(url);
            }
            (None, Some(text)) => {
                let length = text.chars().count();
                if length > TEXT_MAX {
                    return Err(ProviderError::Rejected(format!(
                        "the text is {length} characters; Viber takes at most {TEXT_MAX}"
                    )));
                }
                body["type"] = json!("text");
                body["text"] = json!(text);
            }
            (None, None) => {
                return Err(ProviderError::Rejected(
                    "nothing to send: no text and no file".into(),
                ));
            }
        }
        let response = self
            .http
            .post(format!("{}/send_message", self.base))
            .header("X-Viber-Auth-Token", token.expose())
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        if !response.status().is_success() {
            return Err(classify_status(
                status,
                format!("HTTP {status}"),
                retry_after,
            ));
        }
        let answer: Answer = response.json().await.map_err(|e| {
            ProviderError::Rejected(format!("unexpected answer: {}", e.without_url()))
        })?;
        match answer.status {
            Some(0) => answer
                .message_token
                .map(|n| n.to_string())
                .ok_or_else(|| ProviderError::Rejected("the answer has no message_token".into())),
            Some(code) => Err(classify(
                code,
                answer.status_message.as_deref().unwrap_or("failure"),
            )),
            None => Err(ProviderError::Rejected("the answer has no status".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(
            classify(2, "invalidAuthToken"),
            ProviderError::Auth(_)
        ));
        for code in [5, 6, 11] {
            assert!(
                matches!(
                    classify(code, "receiverNotRegistered"),
                    ProviderError::RecipientUnreachable(_)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(12, "tooManyRequests"),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(classify(3, "badData"), ProviderError::Rejected(_)));
        assert!(matches!(
            classify(10, "webhookNotSet"),
            ProviderError::Rejected(_)
        ));
    }

    #[test]
    fn a_64_bit_token_keeps_every_digit() {
        let answer: Answer = serde_json::from_str(
            r#"{"status":0,"status_message":"ok","message_token":5741311803571721087,"chat_hostname":"SN-CHAT-05_","billing_status":1}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            answer.message_token.map(|n| n.to_string()).as_deref(),
            Some("5741311803571721087")
        );
    }
}
