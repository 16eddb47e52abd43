//! What every provider's webhook becomes: one [`InboundEvent`] per update.

use jiff::Timestamp;
use shared::domain::inbox::{Attachment, DeliveryStatus};

/// The sender as the provider describes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    pub external_id: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub sender: Sender,
    /// Where a reply goes on the provider.
    pub chat_id: String,
    pub provider_message_id: String,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new message from a client.
    Message(IncomingMessage),
    /// The client edited a message.
    Edited {
        provider_message_id: String,
        text: Option<String>,
    },
    /// A delivery report about a message we sent.
    Status {
        provider_message_id: String,
        status: DeliveryStatus,
        reason: Option<String>,
    },
    /// Something the client did that is not a message: a button press, (un)subscribing,
    /// starting or stopping the bot. Stored as an event of the dialog.
    Action {
        sender: Sender,
        chat_id: String,
        name: String,
        payload: Option<String>,
        provider_message_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// The provider's id of this event, unique within the integration: the dedupe key.
    pub event_id: String,
    pub occurred_at: Timestamp,
    pub kind: EventKind,
}

impl InboundEvent {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Message(_) => "message.received",
            EventKind::Edited { .. } => "message.edited",
            EventKind::Status { .. } => "message.status",
            EventKind::Action { .. } => "dialog.action",
        }
    }
}

/// A timestamp from provider seconds / milliseconds; out-of-range values become `now`.
pub fn from_seconds(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or_else(|_| Timestamp::now())
}

pub fn from_millis(millis: i64) -> Timestamp {
    Timestamp::from_millisecond(millis).unwrap_or_else(|_| Timestamp::now())
}

/// Joins non-empty name parts (`first_name`, `last_name`).
pub fn full_name(parts: &[Option<&str>]) -> Option<String> {
    let joined = parts
        .iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

impl InboundEvent {
    /// The first id the event lacks (an empty string), by name. Every id is a key: an
    /// empty event id would dedupe every such event as one, an empty sender or chat id
    /// would make every such sender one client.
    pub fn missing_id(&self) -> Option<&'static str> {
        let mut ids: Vec<(&'static str, &str)> = vec![("event id", &self.event_id)];
        match &self.kind {
            EventKind::Message(m) => ids.extend([
                ("sender id", m.sender.external_id.as_str()),
                ("chat id", &m.chat_id),
                ("message id", &m.provider_message_id),
            ]),
            EventKind::Edited {
                provider_message_id,
                ..
            }
            | EventKind::Status {
                provider_message_id,
                ..
            } => ids.push(("message id", provider_message_id)),
            EventKind::Action {
                sender, chat_id, ..
            } => ids.extend([
                ("sender id", sender.external_id.as_str()),
                ("chat id", chat_id),
            ]),
        }
        ids.into_iter()
            .find(|(_, id)| id.trim().is_empty())
            .map(|(name, _)| name)
    }

    /// The sender's provider id, for events that have one.
    pub fn sender_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Message(m) => Some(&m.sender.external_id),
            EventKind::Action { sender, .. } => Some(&sender.external_id),
            EventKind::Edited { .. } | EventKind::Status { .. } => None,
        }
    }
}
