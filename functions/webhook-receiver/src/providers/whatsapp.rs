//! WhatsApp Cloud API webhooks: Meta's handshake and signature (see `meta`), bodies of
//! `whatsapp_business_account` with `entry[].changes[].value.{messages, statuses}`.
//! Messages are deduplicated on their `wamid`; statuses move our outbound messages.

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind, DeliveryStatus};
use shared::http::ApiResponse;
use shared::repo::integrations::OpenConfig;

use super::{Parsed, Rejection, WebhookProvider, WebhookRequest, malformed, meta};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_seconds};

pub struct WhatsApp;

#[derive(Deserialize)]
struct Body {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: Value,
}

#[derive(Deserialize)]
struct Value {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: String,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Media {
    id: Option<String>,
    mime_type: Option<String>,
    filename: Option<String>,
    caption: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Context {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Button {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
}

#[derive(Deserialize)]
struct Interactive {
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    id: String,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
    image: Option<Media>,
    video: Option<Media>,
    audio: Option<Media>,
    document: Option<Media>,
    sticker: Option<Media>,
    location: Option<serde_json::Value>,
    contacts: Option<serde_json::Value>,
    button: Option<Button>,
    interactive: Option<Interactive>,
    context: Option<Context>,
}

#[derive(Deserialize)]
struct StatusError {
    code: Option<i64>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    timestamp: String,
    #[serde(default)]
    errors: Vec<StatusError>,
}

fn seconds(raw: &str) -> Result<jiff::Timestamp, Rejection> {
    raw.parse::<i64>()
        .map(from_seconds)
        .map_err(|_| Rejection::Malformed(format!("timestamp {raw:?} is not a number")))
}

fn attachments(m: &Message) -> (Vec<Attachment>, Option<String>) {
    let mut caption = None;
    let mut out = Vec::new();
    for (kind, media) in [
        (AttachmentKind::Image, &m.image),
        (AttachmentKind::Video, &m.video),
        (AttachmentKind::Audio, &m.audio),
        (AttachmentKind::Document, &m.document),
        (AttachmentKind::Sticker, &m.sticker),
    ] {
        if let Some(media) = media {
            caption = caption.or_else(|| media.caption.clone());
            out.push(Attachment {
                kind,
                file_id: media.id.clone(),
                url: None,
                mime_type: media.mime_type.clone(),
                file_name: media.filename.clone(),
            });
        }
    }
    for (kind, present) in [
        (AttachmentKind::Location, m.location.is_some()),
        (AttachmentKind::Contact, m.contacts.is_some()),
    ] {
        if present {
            out.push(Attachment {
                kind,
                file_id: None,
                url: None,
                mime_type: None,
                file_name: None,
            });
        }
    }
    (out, caption)
}

impl WebhookProvider for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        meta::verify_signature(config, req)
    }

    fn methods(&self) -> &'static str {
        "GET, POST"
    }

    fn handshake(
        &self,
        config: &OpenConfig,
        req: &WebhookRequest<'_>,
    ) -> Result<ApiResponse, Rejection> {
        meta::handshake(config, req)
    }

    fn parse(&self, config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let body: Body = serde_json::from_slice(body).map_err(malformed)?;
        if body.object != "whatsapp_business_account" {
            return Err(Rejection::Malformed(format!(
                "object is {:?}, expected \"whatsapp_business_account\"",
                body.object
            )));
        }
        let own_number = config.get("phone_number_id").map(|s| s.expose().as_str());
        let mut parsed = Parsed::default();
        for change in body.entry.into_iter().flat_map(|e| e.changes) {
            if change.field != "messages" {
                parsed.ignored.push(change.field);
                continue;
            }
            let value = change.value;
            // One app may post every number's events to every URL: keep this number's.
            let number = value.metadata.as_ref().map(|m| m.phone_number_id.as_str());
            if own_number.is_some() && number.is_some() && number != own_number {
                parsed.ignored.push("other_phone_number".into());
                continue;
            }
            for m in &value.messages {
                let contact = value.contacts.iter().find(|c| c.wa_id == m.from);
                let sender = Sender {
                    external_id: m.from.clone(),
                    username: None,
                    name: contact
                        .and_then(|c| c.profile.as_ref())
                        .and_then(|p| p.name.clone()),
                    // A wa_id is the phone number in international digits.
                    phone: Some(m.from.clone()),
                };
                let occurred_at = seconds(&m.timestamp)?;
                let choice = m
                    .interactive
                    .as_ref()
                    .and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref()))
                    .map(|r| r.id.clone())
                    .or_else(|| {
                        m.button
                            .as_ref()
                            .and_then(|b| b.payload.clone().or(b.text.clone()))
                    });
                let kind = if let Some(payload) = choice {
                    EventKind::Action {
                        sender,
                        chat_id: m.from.clone(),
                        name: "callback".into(),
                        payload: Some(payload),
                        provider_message_id: m.context.as_ref().and_then(|c| c.id.clone()),
                    }
                } else {
                    let (attachments, caption) = attachments(m);
                    if attachments.is_empty() && m.text.is_none() {
                        parsed.ignored.push(format!("message.{}", m.kind));
                        continue;
                    }
                    EventKind::Message(IncomingMessage {
                        sender,
                        chat_id: m.from.clone(),
                        provider_message_id: m.id.clone(),
                        text: m.text.as_ref().map(|t| t.body.clone()).or(caption),
                        attachments,
                        reply_to: m.context.as_ref().and_then(|c| c.id.clone()),
                    })
                };
                parsed.events.push(InboundEvent {
                    event_id: m.id.clone(),
                    occurred_at,
                    kind,
                });
            }
            for s in &value.statuses {
                let status = match s.status.as_str() {
                    "sent" => DeliveryStatus::Sent,
                    "delivered" => DeliveryStatus::Delivered,
                    "read" => DeliveryStatus::Read,
                    "failed" => DeliveryStatus::Failed,
                    other => {
                        parsed.ignored.push(format!("status.{other}"));
                        continue;
                    }
                };
                let reason = s.errors.first().map(|e| {
                    format!(
                        "{} {}",
                        e.code.map(|c| c.to_string()).unwrap_or_default(),
                        e.title.clone().unwrap_or_default()
                    )
                    .trim()
                    .to_owned()
                });
                parsed.events.push(InboundEvent {
                    event_id: format!("status:{}:{}", s.id, s.status),
                    occurred_at: seconds(&s.timestamp)?,
                    kind: EventKind::Status {
                        provider_message_id: s.id.clone(),
                        status,
                        reason,
                    },
                });
            }
        }
        Ok(parsed)
    }
}
