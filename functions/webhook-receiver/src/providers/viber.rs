//! Viber REST bot webhooks (<https://developers.viber.com/docs/api/rest-bot-api/>):
//! `X-Viber-Content-Signature` is the hex HMAC-SHA256 of the raw body keyed with the bot's
//! auth token. `message_token` is a 64-bit integer above 2^53: read as `u64`, never a float.

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind, DeliveryStatus};
use shared::repo::integrations::OpenConfig;
use shared::signing::verify_hmac_sha256_hex;

use super::{Parsed, Rejection, WebhookProvider, WebhookRequest, configured, malformed};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_millis};

pub struct Viber;

#[derive(Deserialize)]
struct Callback {
    event: String,
    timestamp: i64,
    message_token: Option<u64>,
    sender: Option<User>,
    user: Option<User>,
    user_id: Option<String>,
    message: Option<Message>,
    desc: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    media: Option<String>,
    file_name: Option<String>,
    contact: Option<Contact>,
}

fn sender(user: &User) -> Sender {
    Sender {
        external_id: user.id.clone(),
        username: None,
        name: user.name.clone(),
        phone: None,
    }
}

impl WebhookProvider for Viber {
    fn name(&self) -> &'static str {
        "viber"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        let token = configured(config, "auth_token")?;
        let signature = req
            .header("x-viber-content-signature")
            .ok_or(Rejection::Unauthorized(
                "X-Viber-Content-Signature is missing",
            ))?;
        if verify_hmac_sha256_hex(token.as_bytes(), req.body, signature) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized(
                "X-Viber-Content-Signature does not match the body",
            ))
        }
    }

    fn parse(&self, _config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let c: Callback = serde_json::from_slice(body).map_err(malformed)?;
        let at = from_millis(c.timestamp);
        let token = || {
            c.message_token
                .map(|t| t.to_string())
                .ok_or_else(|| Rejection::Malformed(format!("{} without message_token", c.event)))
        };
        let event = |event_id: String, kind| {
            Ok(Parsed::one(InboundEvent {
                event_id,
                occurred_at: at,
                kind,
            }))
        };
        match c.event.as_str() {
            "message" => {
                let user = c
                    .sender
                    .as_ref()
                    .ok_or_else(|| malformed("message without sender"))?;
                let m = c
                    .message
                    .as_ref()
                    .ok_or_else(|| malformed("message without message"))?;
                let mut who = sender(user);
                if m.kind == "contact" {
                    // A shared contact is not necessarily the sender's own; keep it as content.
                    who.phone = None;
                }
                let kind = match m.kind.as_str() {
                    "text" | "url" => None,
                    "picture" => Some(AttachmentKind::Image),
                    "video" => Some(AttachmentKind::Video),
                    "file" => Some(AttachmentKind::Document),
                    "sticker" => Some(AttachmentKind::Sticker),
                    "location" => Some(AttachmentKind::Location),
                    "contact" => Some(AttachmentKind::Contact),
                    _ => Some(AttachmentKind::Other),
                };
                let attachments = kind
                    .map(|kind| Attachment {
                        kind,
                        file_id: None,
                        url: m.media.clone(),
                        mime_type: None,
                        file_name: m.file_name.clone(),
                    })
                    .into_iter()
                    .collect();
                let text = m
                    .text
                    .clone()
                    .or_else(|| m.contact.as_ref().and_then(|c| c.phone_number.clone()));
                let id = token()?;
                event(
                    id.clone(),
                    EventKind::Message(IncomingMessage {
                        sender: who,
                        chat_id: user.id.clone(),
                        provider_message_id: id,
                        text,
                        attachments,
                        reply_to: None,
                    }),
                )
            }
            status @ ("delivered" | "seen" | "failed") => {
                let id = token()?;
                event(
                    format!("{status}:{id}"),
                    EventKind::Status {
                        provider_message_id: id,
                        status: match status {
                            "delivered" => DeliveryStatus::Delivered,
                            "seen" => DeliveryStatus::Read,
                            _ => DeliveryStatus::Failed,
                        },
                        reason: c.desc.clone(),
                    },
                )
            }
            action @ ("conversation_started" | "subscribed" | "unsubscribed") => {
                let who = match (&c.user, &c.user_id) {
                    (Some(u), _) => sender(u),
                    (None, Some(id)) => Sender {
                        external_id: id.clone(),
                        ..Sender::default()
                    },
                    (None, None) => return Err(malformed(format!("{action} without user"))),
                };
                let id = c.message_token.map_or_else(
                    || format!("{action}:{}:{}", who.external_id, c.timestamp),
                    |t| format!("{action}:{t}"),
                );
                event(
                    id,
                    EventKind::Action {
                        chat_id: who.external_id.clone(),
                        sender: who,
                        name: action.to_owned(),
                        payload: None,
                        provider_message_id: None,
                    },
                )
            }
            other => Ok(Parsed::ignored(other)),
        }
    }
}
