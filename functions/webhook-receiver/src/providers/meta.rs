//! Meta's webhook conventions, shared by WhatsApp, Instagram and Messenger: the
//! `hub.challenge` GET handshake against the configured verify token, and
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`.
//! Instagram and Messenger bodies are `{"object", "entry": [{"messaging": [...]}]}`.

use http::StatusCode;
use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind, DeliveryStatus};
use shared::http::ApiResponse;
use shared::repo::integrations::OpenConfig;
use shared::signing::{constant_time_eq, verify_hmac_sha1_hex, verify_hmac_sha256_hex};

use super::{Parsed, Rejection, WebhookProvider, WebhookRequest, configured, malformed};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_millis};

/// `X-Hub-Signature-256`, or — only when a sender sets no SHA-256 header — Meta's older
/// `X-Hub-Signature: sha1=<hex>` (Messenger still sends both).
pub fn verify_signature(config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
    let secret = config
        .get("app_secret")
        .map(|s| s.expose().as_str())
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::Unauthorized(
            "the integration has no app secret configured",
        ))?;
    let valid = match (
        req.header("x-hub-signature-256"),
        req.header("x-hub-signature"),
    ) {
        (Some(header), _) => header
            .strip_prefix("sha256=")
            .is_some_and(|hex| verify_hmac_sha256_hex(secret.as_bytes(), req.body, hex)),
        (None, Some(header)) => header
            .strip_prefix("sha1=")
            .is_some_and(|hex| verify_hmac_sha1_hex(secret.as_bytes(), req.body, hex)),
        (None, None) => return Err(Rejection::Unauthorized("X-Hub-Signature-256 is missing")),
    };
    if valid {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(
            "X-Hub-Signature-256 does not match the body",
        ))
    }
}

/// `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` → the challenge.
pub fn handshake(config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<ApiResponse, Rejection> {
    let expected = configured(config, "verify_token")
        .map_err(|_| Rejection::Forbidden("the integration has no verify token configured"))?;
    let param = |name: &str| req.query.get(name).map(String::as_str);
    if param("hub.mode") != Some("subscribe") {
        return Err(Rejection::Forbidden("hub.mode must be subscribe"));
    }
    let token_ok = param("hub.verify_token")
        .is_some_and(|given| constant_time_eq(expected.as_bytes(), given.as_bytes()));
    if !token_ok {
        return Err(Rejection::Forbidden("hub.verify_token does not match"));
    }
    let challenge = param("hub.challenge")
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or(Rejection::Forbidden("hub.challenge is missing"))?;
    Ok(ApiResponse::raw(
        StatusCode::OK,
        "text/plain",
        challenge.to_owned(),
    ))
}

pub struct MetaMessaging {
    name: &'static str,
    /// The `object` of its bodies.
    object: &'static str,
}

pub const INSTAGRAM: MetaMessaging = MetaMessaging {
    name: "instagram",
    object: "instagram",
};

pub const MESSENGER: MetaMessaging = MetaMessaging {
    name: "messenger",
    object: "page",
};

#[derive(Deserialize)]
struct Body {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    time: Option<i64>,
    #[serde(default)]
    messaging: Vec<Messaging>,
}

/// Page-scoped ids are strings in Meta's payloads, numbers in some libraries' samples.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
struct Party {
    id: Id,
}

impl Party {
    fn id(&self) -> String {
        match &self.id {
            Id::Text(s) => s.clone(),
            Id::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Messaging {
    sender: Party,
    timestamp: Option<i64>,
    message: Option<MessagePart>,
    postback: Option<Postback>,
    delivery: Option<Delivery>,
    read: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MessagePart {
    mid: String,
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    attachments: Vec<MetaAttachment>,
    reply_to: Option<ReplyTo>,
    quick_reply: Option<QuickReply>,
}

#[derive(Deserialize)]
struct ReplyTo {
    mid: Option<String>,
}

#[derive(Deserialize)]
struct QuickReply {
    payload: String,
}

#[derive(Deserialize)]
struct MetaAttachment {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<AttachmentPayload>,
}

#[derive(Deserialize)]
struct AttachmentPayload {
    url: Option<String>,
}

#[derive(Deserialize)]
struct Postback {
    mid: Option<String>,
    payload: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    mids: Vec<String>,
}

fn attachment(a: &MetaAttachment) -> Attachment {
    let kind = match a.kind.as_str() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::Document,
        "location" => AttachmentKind::Location,
        _ => AttachmentKind::Other,
    };
    Attachment {
        kind,
        file_id: None,
        url: a.payload.as_ref().and_then(|p| p.url.clone()),
        mime_type: None,
        file_name: None,
    }
}

impl WebhookProvider for MetaMessaging {
    fn name(&self) -> &'static str {
        self.name
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        verify_signature(config, req)
    }

    fn methods(&self) -> &'static str {
        "GET, POST"
    }

    fn handshake(
        &self,
        config: &OpenConfig,
        req: &WebhookRequest<'_>,
    ) -> Result<ApiResponse, Rejection> {
        handshake(config, req)
    }

    fn parse(&self, _config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let body: Body = serde_json::from_slice(body).map_err(malformed)?;
        if body.object != self.object {
            return Err(Rejection::Malformed(format!(
                "object is {:?}, expected {:?}",
                body.object, self.object
            )));
        }
        let mut parsed = Parsed::default();
        for entry in body.entry {
            for m in entry.messaging {
                parse_one(m, entry.time, &mut parsed);
            }
        }
        Ok(parsed)
    }
}

fn parse_one(m: Messaging, entry_time: Option<i64>, parsed: &mut Parsed) {
    let sender_id = m.sender.id();
    let who = Sender {
        external_id: sender_id.clone(),
        ..Sender::default()
    };
    let timestamp = m.timestamp.or(entry_time);
    let at = timestamp.map_or_else(jiff::Timestamp::now, from_millis);
    if let Some(message) = m.message {
        if message.is_echo {
            // Our own outbound message, echoed back.
            parsed.ignored.push("message_echo".into());
            return;
        }
        let kind = match message.quick_reply {
            Some(q) => EventKind::Action {
                sender: who,
                chat_id: sender_id.clone(),
                name: "callback".into(),
                payload: Some(q.payload),
                provider_message_id: Some(message.mid.clone()),
            },
            None => EventKind::Message(IncomingMessage {
                sender: who,
                chat_id: sender_id.clone(),
                provider_message_id: message.mid.clone(),
                text: message.text,
                attachments: message.attachments.iter().map(attachment).collect(),
                reply_to: message.reply_to.and_then(|r| r.mid),
            }),
        };
        parsed.events.push(InboundEvent {
            event_id: message.mid,
            occurred_at: at,
            kind,
        });
    } else if let Some(postback) = m.postback {
        let id = postback
            .mid
            .clone()
            .unwrap_or_else(|| format!("{sender_id}:{}", timestamp.unwrap_or_default()));
        parsed.events.push(InboundEvent {
            event_id: format!("postback:{id}"),
            occurred_at: at,
            kind: EventKind::Action {
                sender: who,
                chat_id: sender_id.clone(),
                name: "callback".into(),
                payload: postback.payload,
                provider_message_id: postback.mid,
            },
        });
    } else if let Some(delivery) = m.delivery {
        for mid in delivery.mids {
            parsed.events.push(InboundEvent {
                event_id: format!("delivered:{mid}"),
                occurred_at: at,
                kind: EventKind::Status {
                    provider_message_id: mid,
                    status: DeliveryStatus::Delivered,
                    reason: None,
                },
            });
        }
    } else if m.read.is_some() {
        parsed.ignored.push("read".into());
    } else {
        parsed.ignored.push("messaging_event".into());
    }
}
