//! Telegram Bot API webhooks: `X-Telegram-Bot-Api-Secret-Token` carries the `secret_token`
//! given to `setWebhook`; the body is one `Update` (<https://core.telegram.org/bots/api#update>).

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind};
use shared::repo::integrations::OpenConfig;

use super::{
    Parsed, Rejection, WebhookProvider, WebhookRequest, check_secret, configured, malformed,
};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_seconds, full_name};

pub struct TelegramBot;

#[derive(Deserialize)]
struct Update {
    update_id: u64,
    message: Option<Message>,
    edited_message: Option<Message>,
    callback_query: Option<CallbackQuery>,
    my_chat_member: Option<ChatMemberUpdated>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct FileRef {
    file_id: String,
    mime_type: Option<String>,
    file_name: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: String,
    user_id: Option<i64>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    date: i64,
    edit_date: Option<i64>,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<FileRef>,
    document: Option<FileRef>,
    video: Option<FileRef>,
    audio: Option<FileRef>,
    voice: Option<FileRef>,
    sticker: Option<FileRef>,
    contact: Option<Contact>,
    location: Option<serde_json::Value>,
    reply_to_message: Option<Box<ReplyRef>>,
}

#[derive(Deserialize)]
struct ReplyRef {
    message_id: i64,
}

#[derive(Deserialize)]
struct CallbackQuery {
    from: User,
    message: Option<CallbackMessage>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct CallbackMessage {
    message_id: i64,
    chat: Chat,
    date: i64,
}

#[derive(Deserialize)]
struct ChatMemberUpdated {
    chat: Chat,
    from: User,
    date: i64,
    new_chat_member: ChatMember,
}

#[derive(Deserialize)]
struct ChatMember {
    status: String,
}

fn sender(user: &User) -> Sender {
    Sender {
        external_id: user.id.to_string(),
        username: user.username.clone(),
        name: full_name(&[user.first_name.as_deref(), user.last_name.as_deref()]),
        phone: None,
    }
}

/// Telegram message ids are unique per chat only.
fn message_ref(chat: i64, message: i64) -> String {
    format!("{chat}:{message}")
}

fn attachments(m: &Message) -> Vec<Attachment> {
    let file = |kind, f: &FileRef| Attachment {
        kind,
        file_id: Some(f.file_id.clone()),
        url: None,
        mime_type: f.mime_type.clone(),
        file_name: f.file_name.clone(),
    };
    let mut out = Vec::new();
    // Telegram sends every size of a photo; the last is the largest.
    if let Some(p) = m.photo.last() {
        out.push(file(AttachmentKind::Image, p));
    }
    for (kind, f) in [
        (AttachmentKind::Document, &m.document),
        (AttachmentKind::Video, &m.video),
        (AttachmentKind::Audio, &m.audio),
        (AttachmentKind::Voice, &m.voice),
        (AttachmentKind::Sticker, &m.sticker),
    ] {
        if let Some(f) = f {
            out.push(file(kind, f));
        }
    }
    if m.location.is_some() {
        out.push(Attachment {
            kind: AttachmentKind::Location,
            file_id: None,
            url: None,
            mime_type: None,
            file_name: None,
        });
    }
    if m.contact.is_some() {
        out.push(Attachment {
            kind: AttachmentKind::Contact,
            file_id: None,
            url: None,
            mime_type: None,
            file_name: None,
        });
    }
    out
}

impl WebhookProvider for TelegramBot {
    fn name(&self) -> &'static str {
        "telegram_bot"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        check_secret(
            configured(config, "webhook_secret")?,
            req.header("x-telegram-bot-api-secret-token"),
        )
    }

    fn parse(&self, _config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let update: Update = serde_json::from_slice(body).map_err(malformed)?;
        let event_id = update.update_id.to_string();
        if let Some(m) = update.message {
            let Some(from) = &m.from else {
                return Ok(Parsed::ignored("message_without_sender"));
            };
            let mut who = sender(from);
            // A contact the user shared about themselves carries their phone.
            if let Some(c) = m.contact.as_ref().filter(|c| c.user_id == Some(from.id)) {
                who.phone = Some(c.phone_number.clone());
            }
            return Ok(Parsed::one(InboundEvent {
                event_id,
                occurred_at: from_seconds(m.date),
                kind: EventKind::Message(IncomingMessage {
                    sender: who,
                    chat_id: m.chat.id.to_string(),
                    provider_message_id: message_ref(m.chat.id, m.message_id),
                    text: m.text.clone().or_else(|| m.caption.clone()),
                    attachments: attachments(&m),
                    reply_to: m
                        .reply_to_message
                        .as_ref()
                        .map(|r| message_ref(m.chat.id, r.message_id)),
                }),
            }));
        }
        if let Some(m) = update.edited_message {
            return Ok(Parsed::one(InboundEvent {
                event_id,
                occurred_at: from_seconds(m.edit_date.unwrap_or(m.date)),
                kind: EventKind::Edited {
                    provider_message_id: message_ref(m.chat.id, m.message_id),
                    text: m.text.or(m.caption),
                },
            }));
        }
        if let Some(q) = update.callback_query {
            let chat = q.message.as_ref().map_or(q.from.id, |m| m.chat.id);
            return Ok(Parsed::one(InboundEvent {
                event_id,
                occurred_at: q
                    .message
                    .as_ref()
                    .map_or_else(jiff::Timestamp::now, |m| from_seconds(m.date)),
                kind: EventKind::Action {
                    sender: sender(&q.from),
                    chat_id: chat.to_string(),
                    name: "callback".into(),
                    payload: q.data,
                    provider_message_id: q.message.map(|m| message_ref(m.chat.id, m.message_id)),
                },
            }));
        }
        if let Some(member) = update.my_chat_member {
            let name = match member.new_chat_member.status.as_str() {
                "kicked" | "left" => "bot_stopped",
                _ => "bot_started",
            };
            return Ok(Parsed::one(InboundEvent {
                event_id,
                occurred_at: from_seconds(member.date),
                kind: EventKind::Action {
                    sender: sender(&member.from),
                    chat_id: member.chat.id.to_string(),
                    name: name.into(),
                    payload: None,
                    provider_message_id: None,
                },
            }));
        }
        let kind = update
            .other
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "empty_update".into());
        Ok(Parsed::ignored(kind))
    }
}
