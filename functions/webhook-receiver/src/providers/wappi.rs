//! Wappi (wappi.pro), the gateway for personal Telegram and WhatsApp accounts. Wappi
//! signs nothing, so the integration's `webhook_secret` must come back with every call,
//! in `X-Webhook-Secret` or the registered URL's `token` parameter. Bodies are
//! `{"messages":[{"wh_type": …}]}`: incoming messages and delivery statuses are handled.

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind, DeliveryStatus};
use shared::repo::integrations::OpenConfig;

use super::telegram_crm::shared_secret;
use super::{
    Parsed, Rejection, WebhookProvider, WebhookRequest, check_secret, configured, malformed,
};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_seconds};

pub struct Wappi;

#[derive(Deserialize)]
struct Envelope {
    messages: Vec<Item>,
}

/// Wappi sends ids and times as strings or numbers depending on the platform.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Item {
    wh_type: String,
    profile_id: Option<String>,
    id: Option<Scalar>,
    body: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<Scalar>,
    #[serde(rename = "chatId")]
    chat_id: Option<Scalar>,
    #[serde(rename = "senderName")]
    sender_name: Option<String>,
    #[serde(alias = "contact_username")]
    username: Option<String>,
    #[serde(alias = "contact_phone")]
    phone: Option<String>,
    #[serde(default)]
    is_me: bool,
    file_link: Option<String>,
    time: Option<i64>,
    caption: Option<String>,
    file_name: Option<String>,
    mimetype: Option<String>,
    status: Option<String>,
}

/// `79991234567@c.us` → `79991234567`.
fn bare(id: &str) -> &str {
    id.split('@').next().unwrap_or(id)
}

impl WebhookProvider for Wappi {
    fn name(&self) -> &'static str {
        "wappi"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        check_secret(configured(config, "webhook_secret")?, shared_secret(req))
    }

    fn parse(&self, config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(malformed)?;
        let profile = config.get("profile_id").map(|p| p.expose().as_str());
        let whatsapp = config.get("platform").map(|p| p.expose().as_str()) == Some("whatsapp");
        let mut parsed = Parsed::default();
        for item in envelope.messages {
            if profile.is_some()
                && item.profile_id.is_some()
                && item.profile_id.as_deref() != profile
            {
                parsed.ignored.push("other_profile".into());
                continue;
            }
            let Some(id) = item.id.as_ref().map(Scalar::text) else {
                return Err(malformed(format!("{} without id", item.wh_type)));
            };
            let at = item.time.map_or_else(jiff::Timestamp::now, from_seconds);
            match item.wh_type.as_str() {
                "incoming_message" if item.is_me => parsed.ignored.push("own_message".into()),
                "incoming_message" => {
                    let from = item
                        .from
                        .as_ref()
                        .map(Scalar::text)
                        .ok_or_else(|| malformed("incoming_message without from"))?;
                    let external = bare(&from).to_owned();
                    let chat = item
                        .chat_id
                        .as_ref()
                        .map_or_else(|| from.clone(), Scalar::text);
                    let kind = match item.kind.as_deref() {
                        Some("chat" | "text") | None => None,
                        Some("image") => Some(AttachmentKind::Image),
                        Some("video") => Some(AttachmentKind::Video),
                        Some("audio") => Some(AttachmentKind::Audio),
                        Some("ptt" | "voice") => Some(AttachmentKind::Voice),
                        Some("document") => Some(AttachmentKind::Document),
                        Some("sticker") => Some(AttachmentKind::Sticker),
                        Some("location") => Some(AttachmentKind::Location),
                        Some("vcard") => Some(AttachmentKind::Contact),
                        Some(_) => Some(AttachmentKind::Other),
                    };
                    let attachments = kind
                        .map(|kind| Attachment {
                            kind,
                            file_id: None,
                            url: item.file_link.clone(),
                            mime_type: item.mimetype.clone(),
                            file_name: item.file_name.clone(),
                        })
                        .into_iter()
                        .collect::<Vec<_>>();
                    // Media bodies carry the file (base64 or a link), not text.
                    let text = if attachments.is_empty() {
                        item.body.clone()
                    } else {
                        item.caption.clone()
                    };
                    parsed.events.push(InboundEvent {
                        event_id: id.clone(),
                        occurred_at: at,
                        kind: EventKind::Message(IncomingMessage {
                            sender: Sender {
                                // A WhatsApp id is the phone in international digits.
                                phone: item
                                    .phone
                                    .clone()
                                    .or_else(|| whatsapp.then(|| external.clone())),
                                external_id: external,
                                username: item.username.clone(),
                                name: item.sender_name.clone(),
                            },
                            chat_id: chat,
                            provider_message_id: id,
                            text,
                            attachments,
                            reply_to: None,
                        }),
                    });
                }
                "delivery_status" => {
                    let status = match item.status.as_deref() {
                        Some("sent") => DeliveryStatus::Sent,
                        Some("delivered") => DeliveryStatus::Delivered,
                        Some("read") => DeliveryStatus::Read,
                        Some("failed" | "error") => DeliveryStatus::Failed,
                        other => {
                            parsed
                                .ignored
                                .push(format!("delivery_status.{}", other.unwrap_or("none")));
                            continue;
                        }
                    };
                    parsed.events.push(InboundEvent {
                        event_id: format!("status:{id}:{}", status.as_str()),
                        occurred_at: at,
                        kind: EventKind::Status {
                            provider_message_id: id,
                            status,
                            reason: None,
                        },
                    });
                }
                other => parsed.ignored.push(other.to_owned()),
            }
        }
        Ok(parsed)
    }
}
