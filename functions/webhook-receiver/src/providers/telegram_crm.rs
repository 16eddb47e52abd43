//! The Telegram CRM user-bot gateway's webhooks. Its contract is not public; it is pinned
//! here and in `docs/providers/telegram_crm.md`: the secret comes in `X-Webhook-Secret`
//! (or the URL's `token` query parameter), the body is
//! `{"event_id","type":"message"|"message_edited","account_id","message":{"id","date","peer":{…},"text",…}}`.

use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind};
use shared::repo::integrations::OpenConfig;

use super::{
    Parsed, Rejection, WebhookProvider, WebhookRequest, check_secret, configured, malformed,
};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_seconds, full_name};

pub struct TelegramCrm;

#[derive(Deserialize)]
struct Event {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    account_id: Option<String>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Peer {
    user_id: i64,
    username: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: i64,
    date: i64,
    edit_date: Option<i64>,
    peer: Option<Peer>,
    text: Option<String>,
    file_url: Option<String>,
    file_name: Option<String>,
    file_type: Option<String>,
    reply_to: Option<i64>,
}

/// The URL-registered token or the header: gateways set one or the other.
pub fn shared_secret<'a>(req: &'a WebhookRequest<'_>) -> Option<&'a str> {
    req.header("x-webhook-secret")
        .or_else(|| req.query.get("token").map(String::as_str))
}

impl WebhookProvider for TelegramCrm {
    fn name(&self) -> &'static str {
        "telegram_crm"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        check_secret(configured(config, "webhook_secret")?, shared_secret(req))
    }

    fn parse(&self, config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let event: Event = serde_json::from_slice(body).map_err(malformed)?;
        let account = config.get("account_id").map(|a| a.expose().as_str());
        if event.account_id.is_some() && account.is_some() && event.account_id.as_deref() != account
        {
            return Ok(Parsed::ignored("other_account"));
        }
        let m = match (&event.kind[..], event.message) {
            ("message" | "message_edited", Some(m)) => m,
            ("message" | "message_edited", None) => {
                return Err(malformed("an event without message"));
            }
            (other, _) => return Ok(Parsed::ignored(other)),
        };
        let provider_message_id = m.id.to_string();
        if event.kind == "message_edited" {
            return Ok(Parsed::one(InboundEvent {
                event_id: event.event_id,
                occurred_at: from_seconds(m.edit_date.unwrap_or(m.date)),
                kind: EventKind::Edited {
                    provider_message_id,
                    text: m.text,
                },
            }));
        }
        let peer = m.peer.ok_or_else(|| malformed("a message without peer"))?;
        let attachments = m
            .file_url
            .map(|url| Attachment {
                kind: match m.file_type.as_deref() {
                    Some("image" | "photo") => AttachmentKind::Image,
                    Some("video") => AttachmentKind::Video,
                    Some("audio") => AttachmentKind::Audio,
                    Some("voice") => AttachmentKind::Voice,
                    _ => AttachmentKind::Document,
                },
                file_id: None,
                url: Some(url),
                mime_type: None,
                file_name: m.file_name,
            })
            .into_iter()
            .collect();
        Ok(Parsed::one(InboundEvent {
            event_id: event.event_id,
            occurred_at: from_seconds(m.date),
            kind: EventKind::Message(IncomingMessage {
                sender: Sender {
                    external_id: peer.user_id.to_string(),
                    username: peer.username,
                    name: full_name(&[peer.first_name.as_deref(), peer.last_name.as_deref()]),
                    phone: peer.phone,
                },
                chat_id: peer.user_id.to_string(),
                provider_message_id,
                text: m.text,
                attachments,
                reply_to: m.reply_to.map(|r| r.to_string()),
            }),
        }))
    }
}
