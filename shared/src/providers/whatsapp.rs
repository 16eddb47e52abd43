//! WhatsApp Cloud API (Graph API). Live check: `GET /{phone_number_id}`; send:
//! `POST /{phone_number_id}/messages` (text, media by link, template), the access token as
//! a bearer. Errors answer `{"error":{"message","type","code","error_subcode",
//! "error_data":{"details"}}}`; code 190 is an invalid or expired token, 131047 a
//! free-form message outside the 24-hour customer-service window.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ProviderError, decode, retry_after_header, short, transport_error};
use crate::secret::Secret;

/// The first word of the reason of a refusal for the closed 24-hour window (Graph code
/// 131047): callers detect it with `reason.starts_with(WINDOW_CLOSED)` and may send an
/// approved template ([`WhatsAppApi::send_template`]) instead.
pub const WINDOW_CLOSED: &str = "WHATSAPP_WINDOW_CLOSED";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumber {
    pub id: String,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

#[derive(Deserialize)]
struct Sent {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

/// A file sent by its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaByLink<'a> {
    pub url: &'a str,
    pub name: Option<&'a str>,
    pub mime_type: Option<&'a str>,
}

#[derive(Clone)]
pub struct WhatsAppApi {
    http: reqwest::Client,
    base: String,
}

/// Graph API codes that mean the credentials are wrong, whatever the HTTP status.
const AUTH_CODES: &[i64] = &[190, 200, 10];
/// Graph API throttling codes.
const RATE_CODES: &[i64] = &[4, 80007, 130429, 131048, 131056];
/// Re-engagement message: more than 24 hours since the user last wrote.
const REENGAGEMENT: i64 = 131047;
/// Message undeliverable (not a WhatsApp user, or cannot receive it).
const UNDELIVERABLE: i64 = 131026;

/// Classifies a Graph API error by its code first, then by the HTTP status:
/// 131047 is a refusal whose reason starts with [`WINDOW_CLOSED`]; 190 (and the
/// permission codes 10, 200) or HTTP 401/403 a broken integration; the throttling codes or
/// HTTP 429/5xx transient; 131026 an unreachable recipient; anything else refused.
/// A `Transient` carries no `retry_after` here (Graph sends none in the body); the caller
/// adds a `Retry-After` header's value.
pub fn classify(status: u16, code: Option<i64>, message: &str) -> ProviderError {
    let reason = short(message);
    match code {
        Some(REENGAGEMENT) => {
            ProviderError::Rejected(short(&format!("{WINDOW_CLOSED}: {message}")))
        }
        Some(c) if AUTH_CODES.contains(&c) => ProviderError::Auth(reason),
        Some(c) if RATE_CODES.contains(&c) => ProviderError::Transient {
            reason,
            retry_after: None,
        },
        Some(UNDELIVERABLE) => ProviderError::RecipientUnreachable(reason),
        _ => match status {
            401 | 403 => ProviderError::Auth(reason),
            429 | 500..=599 => ProviderError::Transient {
                reason,
                retry_after: None,
            },
            _ => ProviderError::Rejected(reason),
        },
    }
}

/// The message type and object for a file: JPEG/PNG go as `image`, MP4/3GPP as `video`,
/// AAC/AMR/MP3/MP4/OGG as `audio` (the types Cloud API plays inline); anything else — or
/// audio with a caption, which `audio` cannot carry — goes as a `document` with its name.
fn media_object(file: MediaByLink<'_>, caption: Option<&str>) -> (&'static str, Value) {
    const IMAGE: &[&str] = &["image/jpeg", "image/png"];
    const VIDEO: &[&str] = &["video/mp4", "video/3gpp"];
    const AUDIO: &[&str] = &[
        "audio/aac",
        "audio/amr",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
    ];
    let mime = file
        .mime_type
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let kind = if IMAGE.contains(&mime.as_str()) {
        "image"
    } else if VIDEO.contains(&mime.as_str()) {
        "video"
    } else if AUDIO.contains(&mime.as_str()) && caption.is_none() {
        "audio"
    } else {
        "document"
    };
    let mut object = json!({"link": file.url});
    if let Some(caption) = caption.filter(|_| kind != "audio") {
        object["caption"] = json!(caption);
    }
    if kind == "document"
        && let Some(name) = file.name.filter(|n| !n.is_empty())
    {
        object["filename"] = json!(name);
    }
    (kind, object)
}

impl WhatsAppApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    /// Reads a failed answer into a classified error (with `Retry-After` when transient).
    async fn failure(response: reqwest::Response) -> ProviderError {
        let status = response.status().as_u16();
        let retry_after: Option<Duration> = retry_after_header(response.headers());
        let error = response.json::<ErrorEnvelope>().await.ok().map(|e| e.error);
        let code = error.as_ref().and_then(|e| e.code);
        let message = match error {
            Some(e) => {
                let message = e.message.unwrap_or_else(|| format!("HTTP {status}"));
                match e
                    .error_data
                    .and_then(|d| d.details)
                    .filter(|d| !d.is_empty())
                {
                    Some(details) => format!("{message} ({details})"),
                    None => message,
                }
            }
            None => format!("HTTP {status}"),
        };
        match classify(status, code, &message) {
            ProviderError::Transient { reason, .. } => ProviderError::Transient {
                reason,
                retry_after,
            },
            other => other,
        }
    }

    pub async fn phone_number(
        &self,
        token: &Secret<String>,
        phone_number_id: &str,
    ) -> Result<PhoneNumber, ProviderError> {
        let response = self
            .http
            .get(format!("{}/{phone_number_id}", self.base))
            .query(&[("fields", "id,display_phone_number,verified_name")])
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().is_success() {
            return decode(response).await;
        }
        Err(Self::failure(response).await)
    }

    async fn post_message(
        &self,
        token: &Secret<String>,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<String, ProviderError> {
        let response = self
            .http
            .post(format!("{}/{phone_number_id}/messages", self.base))
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(Self::failure(response).await);
        }
        let sent: Sent = decode(response).await?;
        sent.messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| ProviderError::Rejected("the answer has no message id".into()))
    }

    /// Sends a text (`type: text`, no link preview), or a file by its link with the text
    /// as its caption. `to` is the user's WhatsApp id (the phone in digits). Returns the
    /// `wamid`.
    pub async fn send(
        &self,
        token: &Secret<String>,
        phone_number_id: &str,
        to: &str,
        text: Option<&str>,
        file: Option<MediaByLink<'_>>,
    ) -> Result<String, ProviderError> {
        let text = text.filter(|t| !t.is_empty());
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
        });
        match (file, text) {
            (Some(file), caption) => {
                let (kind, object) = media_object(file, caption);
                body["type"] = json!(kind);
                body[kind] = object;
            }
            (None, Some(text)) => {
                body["type"] = json!("text");
                body["text"] = json!({"preview_url": false, "body": text});
            }
            (None, None) => {
                return Err(ProviderError::Rejected(
                    "nothing to send: no text and no file".into(),
                ));
            }
        }
        self.post_message(token, phone_number_id, &body).await
    }

    /// Sends an approved template without parameters (the way to write outside the
    /// 24-hour window). Returns the `wamid`.
    pub async fn send_template(
        &self,
        phone_number_id: &str,
        token: &Secret<String>,
        to: &str,
        name: &str,
        language_code: &str,
    ) -> Result<String, ProviderError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to,
            "type": "template",
            "template": {"name": name, "language": {"code": language_code}},
        });
        self.post_message(token, phone_number_id, &body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_errors_are_classified_by_code_then_status() {
        let closed = classify(
            400,
            Some(131047),
            "(#131047) Re-engagement message (Message failed to send because more than 24 hours have passed since the customer last replied to this number.)",
        );
        assert!(
            matches!(closed, ProviderError::Rejected(ref r) if r.starts_with("WHATSAPP_WINDOW_CLOSED")),
            "{closed:?}"
        );
        assert!(matches!(
            classify(401, Some(190), "Error validating access token"),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            classify(401, None, "HTTP 401"),
            ProviderError::Auth(_)
        ));
        for code in [130429, 131048, 131056, 4, 80007] {
            assert!(
                matches!(
                    classify(400, Some(code), "(#130429) Rate limit hit"),
                    ProviderError::Transient { .. }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(429, None, "HTTP 429"),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(503, Some(1), "Service temporarily unavailable"),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(400, Some(131026), "Message undeliverable"),
            ProviderError::RecipientUnreachable(_)
        ));
        assert!(matches!(
            classify(400, Some(100), "(#100) Invalid parameter"),
            ProviderError::Rejected(_)
        ));
    }

    #[test]
    fn a_file_goes_as_the_type_its_mime_type_names() {
        let file = |mime: &'static str| MediaByLink {
            url: "https://cdn.example.com/f",
            name: Some("f.bin"),
            mime_type: Some(mime),
        };
        assert_eq!(media_object(file("image/jpeg"), Some("hi")).0, "image");
        assert_eq!(media_object(file("video/mp4"), None).0, "video");
        assert_eq!(
            media_object(file("audio/ogg; codecs=opus"), None).0,
            "audio"
        );
        let (kind, object) = media_object(file("audio/mpeg"), Some("listen"));
        assert_eq!(kind, "document", "audio cannot carry a caption");
        assert_eq!(object["caption"], "listen");
        let (kind, object) = media_object(file("application/pdf"), Some("invoice"));
        assert_eq!(kind, "document");
        assert_eq!(
            object,
            json!({"link": "https://cdn.example.com/f", "caption": "invoice", "filename": "f.bin"})
        );
        let (kind, object) = media_object(file("image/png"), None);
        assert_eq!(kind, "image");
        assert_eq!(
            object,
            json!({"link": "https://cdn.example.com/f"}),
            "no filename on an image"
        );
    }
}
