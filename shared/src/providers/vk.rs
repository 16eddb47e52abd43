//! VK API for a community: `POST /messages.send` with form-encoded parameters
//! (`access_token`, `v`, `peer_id`, `random_id`, `message`, `attachment`) — the token goes
//! in the body, never in the URL. <https://dev.vk.com/ru/method/messages.send>. Every
//! answer is HTTP 200 with `{"response":…}` or `{"error":{"error_code","error_msg"}}`.
//!
//! `random_id` is VK's idempotency key: a second call with the same `random_id` to the
//! same peer does not send again, so it must be derived from a stable key
//! ([`random_id_for`]), never drawn at random per attempt.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ProviderError, classify_status, retry_after_header, short, transport_error};
use crate::secret::Secret;

/// The API version every call asks for.
pub const API_VERSION: &str = "5.199";

#[derive(Deserialize)]
struct Answer {
    response: Option<Value>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    error_code: Option<i64>,
    error_msg: Option<String>,
}

/// The `random_id` for a send identified by `key`: the first four bytes of the key's
/// SHA-256 as a big-endian `i32`, never 0 (clients pass 0 to send without a duplicate
/// check, so 0 is kept out: a 0 becomes 1).
pub fn random_id_for(key: &str) -> i32 {
    let digest = Sha256::digest(key.as_bytes());
    let id = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    if id == 0 { 1 } else { id }
}

/// Classifies a VK API error: 5 (user authorization failed) and 27 (group authorization
/// failed) a broken integration; 6 (too many requests per second), 9 (flood control) and
/// 10 (internal server error) transient; 901 (no permission to write to the user), 902
/// (the user's privacy settings) and 7 (permission denied) an unreachable recipient; 900
/// (the user put the community on the blacklist) and anything else refused.
pub fn classify(code: i64, message: &str) -> ProviderError {
    let reason = short(&format!("{code}: {message}"));
    match code {
        5 | 27 => ProviderError::Auth(reason),
        6 | 9 | 10 => ProviderError::Transient {
            reason,
            retry_after: None,
        },
        7 | 901 | 902 => ProviderError::RecipientUnreachable(reason),
        _ => ProviderError::Rejected(reason),
    }
}

/// `application/x-www-form-urlencoded` (WHATWG): ASCII alphanumerics and `*-._` as they
/// are, space as `+`, every other byte of the UTF-8 as `%XX`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn push(out: &mut String, value: &str) {
        for byte in value.bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(byte));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, name);
        out.push('=');
        push(&mut out, value);
    }
    out
}

/// The message id from `{"response": N}` or, when sent with `peer_ids`,
/// `{"response": [{"peer_id", "message_id", …}]}`.
fn message_id(response: &Value) -> Option<String> {
    match response {
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => items
            .first()
            .and_then(|item| item.get("message_id"))
            .and_then(Value::as_number)
            .map(ToString::to_string),
        _ => None,
    }
}

#[derive(Clone)]
pub struct VkApi {
    http: reqwest::Client,
    base: String,
}

impl VkApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    /// `messages.send` to one peer (a user id, `2000000000 + chat id` for a chat). The
    /// `attachment` is VK's `<type><owner_id>_<media_id>` of media already uploaded to VK.
    /// Returns the message id.
    pub async fn send(
        &self,
        token: &Secret<String>,
        peer_id: &str,
        random_id: i32,
        text: Option<&str>,
        attachment: Option<&str>,
    ) -> Result<String, ProviderError> {
        let text = text.filter(|t| !t.is_empty());
        if text.is_none() && attachment.is_none() {
            return Err(ProviderError::Rejected(
                "nothing to send: no text and no file".into(),
            ));
        }
        let random_id = random_id.to_string();
        let mut params = vec![
            ("access_token", token.expose().as_str()),
            ("v", API_VERSION),
            ("peer_id", peer_id),
            ("random_id", random_id.as_str()),
        ];
        if let Some(text) = text {
            params.push(("message", text));
        }
        if let Some(attachment) = attachment {
            params.push(("attachment", attachment));
        }
        let response = self
            .http
            .post(format!("{}/messages.send", self.base))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_encode(&params))
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
        if let Some(error) = answer.error {
            return Err(classify(
                error.error_code.unwrap_or_default(),
                error.error_msg.as_deref().unwrap_or("no description"),
            ));
        }
        answer
            .response
            .as_ref()
            .and_then(message_id)
            .ok_or_else(|| ProviderError::Rejected("the answer has no message id".into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn random_id_is_stable_per_key_and_never_zero() {
        let a = random_id_for("msg-01J9ZK5Q");
        assert_eq!(a, random_id_for("msg-01J9ZK5Q"));
        assert_ne!(a, random_id_for("msg-01J9ZK5R"));
        assert_ne!(a, 0);
        // SHA-256("abc") starts ba 78 16 bf.
        assert_eq!(
            random_id_for("abc"),
            i32::from_be_bytes([0xba, 0x78, 0x16, 0xbf])
        );
    }

    #[test]
    fn errors_are_classified_by_code() {
        for code in [5, 27] {
            assert!(
                matches!(classify(code, "auth failed"), ProviderError::Auth(_)),
                "{code}"
            );
        }
        for code in [6, 9, 10] {
            assert!(
                matches!(classify(code, "slow down"), ProviderError::Transient { .. }),
                "{code}"
            );
        }
        for code in [7, 901, 902] {
            assert!(
                matches!(
                    classify(code, "cannot write"),
                    ProviderError::RecipientUnreachable(_)
                ),
                "{code}"
            );
        }
        for code in [900, 100, 914] {
            assert!(
                matches!(classify(code, "no"), ProviderError::Rejected(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn form_encoding_and_message_ids() {
        assert_eq!(
            form_encode(&[("message", "Привет, a+b & c"), ("v", "5.199")]),
            "message=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%2C+a%2Bb+%26+c&v=5.199"
        );
        assert_eq!(message_id(&json!(45)).as_deref(), Some("45"));
        assert_eq!(
            message_id(&json!([{"peer_id": 1, "message_id": 46, "conversation_message_id": 3}]))
                .as_deref(),
            Some("46")
        );
        assert_eq!(message_id(&json!({"x": 1})), None);
    }
}
