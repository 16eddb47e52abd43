//! MAX bot webhooks (<https://dev.max.ru/docs-api>): `X-Max-Bot-Api-Secret` carries the
//! `secret` given to `POST /subscriptions`; the body is one `Update` with `update_type`
//! and a millisecond `timestamp`. Messages are deduplicated on `body.mid`.

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind};
use shared::repo::integrations::OpenConfig;

use super::{
    Parsed, Rejection, WebhookProvider, WebhookRequest, check_secret, configured, malformed,
};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_millis, full_name};

pub struct Max;

#[derive(Deserialize)]
struct Update {
    update_type: String,
    timestamp: i64,
    message: Option<Message>,
    callback: Option<Callback>,
    user: Option<User>,
    chat_id: Option<i64>,
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct User {
    user_id: i64,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Recipient {
    chat_id: Option<i64>,
    user_id: Option<i64>,
}

#[derive(Deserialize)]
struct Body {
    mid: String,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<MaxAttachment>,
}

#[derive(Deserialize)]
struct MaxAttachment {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<AttachmentPayload>,
}

#[derive(Deserialize)]
struct AttachmentPayload {
    url: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Link {
    message: Option<LinkedMessage>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct LinkedMessage {
    mid: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    sender: Option<User>,
    recipient: Recipient,
    timestamp: i64,
    body: Body,
    link: Option<Link>,
}

#[derive(Deserialize)]
struct Callback {
    callback_id: String,
    timestamp: i64,
    user: User,
    payload: Option<String>,
}

fn sender(user: &User) -> Sender {
    Sender {
        external_id: user.user_id.to_string(),
        username: user.username.clone(),
        name: user
            .name
            .clone()
            .or_else(|| full_name(&[user.first_name.as_deref(), user.last_name.as_deref()])),
        phone: None,
    }
}

fn attachment(a: &MaxAttachment) -> Attachment {
    let kind = match a.kind.as_str() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::Document,
        "sticker" => AttachmentKind::Sticker,
        "location" => AttachmentKind::Location,
        "contact" => AttachmentKind::Contact,
        _ => AttachmentKind::Other,
    };
    Attachment {
        kind,
        file_id: a.payload.as_ref().and_then(|p| p.token.clone()),
        url: a.payload.as_ref().and_then(|p| p.url.clone()),
        mime_type: None,
        file_name: None,
    }
}

/// Where a reply goes: the chat, or the user of a dialog.
fn chat_of(recipient: &Recipient, sender: &User) -> String {
    recipient
        .chat_id
        .or(recipient.user_id)
        .unwrap_or(sender.user_id)
        .to_string()
}

impl WebhookProvider for Max {
    fn name(&self) -> &'static str {
        "max"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        check_secret(
            configured(config, "webhook_secret")?,
            req.header("x-max-bot-api-secret"),
        )
    }

    fn parse(&self, _config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let update: Update = serde_json::from_slice(body).map_err(malformed)?;
        let missing =
            |what: &str| Rejection::Malformed(format!("{} without {what}", update.update_type));
        match update.update_type.as_str() {
            "message_created" => {
                let m = update.message.as_ref().ok_or_else(|| missing("message"))?;
                let from = m.sender.as_ref().ok_or_else(|| missing("sender"))?;
                let reply_to = m
                    .link
                    .as_ref()
                    .filter(|l| l.kind.as_deref() == Some("reply"))
                    .and_then(|l| l.message.as_ref())
                    .and_then(|l| l.mid.clone());
                Ok(Parsed::one(InboundEvent {
                    event_id: m.body.mid.clone(),
                    occurred_at: from_millis(m.timestamp),
                    kind: EventKind::Message(IncomingMessage {
                        sender: sender(from),
                        chat_id: chat_of(&m.recipient, from),
                        provider_message_id: m.body.mid.clone(),
                        text: m.body.text.clone().filter(|t| !t.is_empty()),
                        attachments: m.body.attachments.iter().map(attachment).collect(),
                        reply_to,
                    }),
                }))
            }
            "message_edited" => {
                let m = update.message.as_ref().ok_or_else(|| missing("message"))?;
                Ok(Parsed::one(InboundEvent {
                    // An edit has the message's `mid`; each edit is its own event.
                    event_id: format!("edited:{}:{}", m.body.mid, update.timestamp),
                    occurred_at: from_millis(update.timestamp),
                    kind: EventKind::Edited {
                        provider_message_id: m.body.mid.clone(),
                        text: m.body.text.clone(),
                    },
                }))
            }
            "message_callback" => {
                let c = update
                    .callback
                    .as_ref()
                    .ok_or_else(|| missing("callback"))?;
                let chat = update.message.as_ref().map_or_else(
                    || c.user.user_id.to_string(),
                    |m| chat_of(&m.recipient, &c.user),
                );
                Ok(Parsed::one(InboundEvent {
                    event_id: format!("callback:{}", c.callback_id),
                    occurred_at: from_millis(c.timestamp),
                    kind: EventKind::Action {
                        sender: sender(&c.user),
                        chat_id: chat,
                        name: "callback".into(),
                        payload: c.payload.clone(),
                        provider_message_id: update.message.as_ref().map(|m| m.body.mid.clone()),
                    },
                }))
            }
            kind @ ("bot_started" | "bot_stopped") => {
                let user = update.user.as_ref().ok_or_else(|| missing("user"))?;
                let chat = update.chat_id.unwrap_or(user.user_id);
                Ok(Parsed::one(InboundEvent {
                    event_id: format!("{kind}:{chat}:{}:{}", user.user_id, update.timestamp),
                    occurred_at: from_millis(update.timestamp),
                    kind: EventKind::Action {
                        sender: sender(user),
                        chat_id: chat.to_string(),
                        name: kind.to_owned(),
                        payload: None,
                        provider_message_id: update.message_id.clone(),
                    },
                }))
            }
            other => Ok(Parsed::ignored(other)),
        }
    }
}
