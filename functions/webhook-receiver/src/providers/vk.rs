//! VK Callback API (<https://dev.vk.com/ru/api/callback/getting-started>): every body
//! carries the community's `secret`, checked against the integration's `webhook_secret`;
//! `confirmation` is answered with the configured string, every other event with `ok`.

use http::StatusCode;
use serde::Deserialize;
use shared::domain::inbox::{Attachment, AttachmentKind};
use shared::http::ApiResponse;
use shared::repo::integrations::OpenConfig;

use super::{
    Parsed, Rejection, WebhookProvider, WebhookRequest, check_secret, configured, malformed,
};
use crate::event::{EventKind, InboundEvent, IncomingMessage, Sender, from_seconds};

pub struct Vk;

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    group_id: Option<i64>,
    event_id: Option<String>,
    object: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct NewMessage {
    message: VkMessage,
}

#[derive(Deserialize)]
struct VkMessage {
    id: i64,
    date: i64,
    peer_id: i64,
    from_id: i64,
    #[serde(default)]
    text: String,
    #[serde(default)]
    attachments: Vec<VkAttachment>,
    reply_message: Option<Box<VkReply>>,
}

#[derive(Deserialize)]
struct VkReply {
    id: Option<i64>,
}

#[derive(Deserialize)]
struct VkAttachment {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct EditedMessage {
    id: i64,
    #[serde(default)]
    text: String,
    date: i64,
    update_time: Option<i64>,
}

#[derive(Deserialize)]
struct MessageEvent {
    user_id: i64,
    peer_id: i64,
    event_id: String,
    payload: Option<serde_json::Value>,
    conversation_message_id: Option<i64>,
}

fn read<T: serde::de::DeserializeOwned>(
    object: Option<serde_json::Value>,
    kind: &str,
) -> Result<T, Rejection> {
    serde_json::from_value(object.ok_or_else(|| malformed(format!("{kind} without object")))?)
        .map_err(malformed)
}

fn user(id: i64) -> Sender {
    Sender {
        external_id: id.to_string(),
        ..Sender::default()
    }
}

impl WebhookProvider for Vk {
    fn name(&self) -> &'static str {
        "vk"
    }

    fn verify(&self, config: &OpenConfig, req: &WebhookRequest<'_>) -> Result<(), Rejection> {
        #[derive(Deserialize)]
        struct SecretOnly {
            secret: Option<String>,
        }
        let expected = configured(config, "webhook_secret")?;
        let given: SecretOnly = serde_json::from_slice(req.body).map_err(malformed)?;
        check_secret(expected, given.secret.as_deref())
    }

    fn parse(&self, config: &OpenConfig, body: &[u8]) -> Result<Parsed, Rejection> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(malformed)?;
        let group = config
            .get("group_id")
            .map(|g| g.expose().trim_start_matches('-').to_owned());
        if let (Some(expected), Some(given)) = (&group, envelope.group_id)
            && *expected != given.to_string()
        {
            return Err(Rejection::Unauthorized(
                "the event is for another community",
            ));
        }
        let event_id = envelope.event_id.clone();
        match envelope.kind.as_str() {
            "confirmation" => {
                let code = config
                    .get("confirmation_code")
                    .map(|c| c.expose().clone())
                    .unwrap_or_default();
                Ok(Parsed {
                    reply: Some(ApiResponse::raw(StatusCode::OK, "text/plain", code)),
                    ..Parsed::default()
                })
            }
            "message_new" => {
                let m = read::<NewMessage>(envelope.object, "message_new")?.message;
                let attachments = m
                    .attachments
                    .iter()
                    .map(|a| Attachment {
                        kind: match a.kind.as_str() {
                            "photo" => AttachmentKind::Image,
                            "video" => AttachmentKind::Video,
                            "audio" => AttachmentKind::Audio,
                            "audio_message" => AttachmentKind::Voice,
                            "doc" => AttachmentKind::Document,
                            "sticker" => AttachmentKind::Sticker,
                            _ => AttachmentKind::Other,
                        },
                        file_id: None,
                        url: None,
                        mime_type: None,
                        file_name: None,
                    })
                    .collect();
                let provider_id = format!("{}:{}", m.peer_id, m.id);
                Ok(Parsed::one(InboundEvent {
                    event_id: event_id.unwrap_or_else(|| format!("message_new:{provider_id}")),
                    occurred_at: from_seconds(m.date),
                    kind: EventKind::Message(IncomingMessage {
                        sender: user(m.from_id),
                        chat_id: m.peer_id.to_string(),
                        provider_message_id: provider_id,
                        text: Some(m.text).filter(|t| !t.is_empty()),
                        attachments,
                        reply_to: m
                            .reply_message
                            .and_then(|r| r.id)
                            .map(|id| format!("{}:{id}", m.peer_id)),
                    }),
                }))
            }
            "message_edit" => {
                #[derive(Deserialize)]
                struct Edit {
                    peer_id: i64,
                    #[serde(flatten)]
                    message: EditedMessage,
                }
                let e: Edit = read(envelope.object, "message_edit")?;
                let at = e.message.update_time.unwrap_or(e.message.date);
                let provider_id = format!("{}:{}", e.peer_id, e.message.id);
                Ok(Parsed::one(InboundEvent {
                    event_id: event_id
                        .unwrap_or_else(|| format!("message_edit:{provider_id}:{at}")),
                    occurred_at: from_seconds(at),
                    kind: EventKind::Edited {
                        provider_message_id: provider_id,
                        text: Some(e.message.text),
                    },
                }))
            }
            "message_event" => {
                let e: MessageEvent = read(envelope.object, "message_event")?;
                Ok(Parsed::one(InboundEvent {
                    event_id: event_id.unwrap_or_else(|| format!("message_event:{}", e.event_id)),
                    occurred_at: jiff::Timestamp::now(),
                    kind: EventKind::Action {
                        sender: user(e.user_id),
                        chat_id: e.peer_id.to_string(),
                        name: "callback".into(),
                        payload: e.payload.map(|p| p.to_string()),
                        provider_message_id: e
                            .conversation_message_id
                            .map(|id| format!("{}:{id}", e.peer_id)),
                    },
                }))
            }
            other => Ok(Parsed::ignored(other)),
        }
    }

    fn acknowledge(&self) -> ApiResponse {
        ApiResponse::raw(StatusCode::OK, "text/plain", "ok")
    }
}
