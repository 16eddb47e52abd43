//! Clients, dialogs and messages: the unified inbox every channel writes into.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ClientId, DialogId, IntegrationId, MessageId, TenantId};

/// A client's account on one messaging network (`telegram`, `max`, `whatsapp`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub channel: String,
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A customer of a tenant, one per person across channels (linked by E.164 phone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub id: ClientId,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub identities: Vec<Identity>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One client's conversation through one integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dialog {
    pub id: DialogId,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub integration_id: IntegrationId,
    pub channel: String,
    pub provider: String,
    /// Where a reply goes on the provider (chat id, user id, wa_id…).
    pub chat_id: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub last_message_at: Option<Timestamp>,
    #[serde(default)]
    pub last_message_preview: Option<String>,
    #[serde(default)]
    pub last_inbound_at: Option<Timestamp>,
    #[serde(default)]
    pub unread_count: u64,
}

impl Dialog {
    /// The dialog of a client through an integration has one id, derived from both, so
    /// concurrent first messages create it once.
    pub fn id_for(integration: &IntegrationId, client: &ClientId) -> DialogId {
        let digest = Sha256::digest(format!("{integration}|{client}"));
        DialogId::parse(format!("dlg_{}", &hex::encode(digest)[..32]))
            .unwrap_or_else(|_| DialogId::generate())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Delivery status of an outbound message. Statuses only move forward
/// (`queued → sent → delivered → read`); `failed` ends it from any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed => 4,
        }
    }

    /// Whether a report of `next` moves a message that is at `self` (late or repeated
    /// reports never move it back).
    pub fn advances_to(self, next: Self) -> bool {
        self != Self::Failed && next.rank() > self.rank()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The provider's file handle (Telegram `file_id`, WhatsApp media id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// How a recipient is addressed on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// The user's id on the network (Telegram user id, …).
    UserId,
    /// The E.164 phone number.
    Phone,
    /// The dialog's chat on the provider (`Dialog::chat_id`): where a reply goes.
    Chat,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::Phone => "phone",
            Self::Chat => "chat",
        }
    }
}

/// What one provider call of a send came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Sent,
    /// The recipient is not reachable through this integration: the next route is tried.
    Unreachable,
    /// The integration's credentials or config are broken: it is marked `error`.
    IntegrationError,
    /// Try again later (429, 5xx, timeouts).
    Transient,
    /// Refused for good (blocked by the user, bad request).
    Rejected,
}

/// One provider call of an outbound message, kept in its attempt log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub integration_id: IntegrationId,
    pub provider: String,
    pub recipient_kind: RecipientKind,
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub at: Timestamp,
}

/// The integration (and recipient kind) a client was last reached through on a channel:
/// written by every inbound message and every successful send, so the next send starts
/// from the most recent one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMemo {
    pub channel: String,
    pub integration_id: IntegrationId,
    pub recipient_kind: RecipientKind,
    pub at: Timestamp,
}

/// A stored message (or a non-message event of a dialog, such as a button press).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub tenant_id: TenantId,
    pub dialog_id: DialogId,
    pub client_id: ClientId,
    pub integration_id: IntegrationId,
    pub channel: String,
    pub provider: String,
    pub direction: Direction,
    /// `message`, or the event it records (`callback`, `bot_started`, `subscribed`, …).
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Button payload of a callback.
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub provider_message_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Outbound only.
    #[serde(default)]
    pub status: Option<DeliveryStatus>,
    #[serde(default)]
    pub status_reason: Option<String>,
    /// When it happened on the provider.
    pub sent_at: Timestamp,
    pub created_at: Timestamp,
    #[serde(default)]
    pub edited_at: Option<Timestamp>,
    /// Outbound only: every provider call made for it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

impl Message {
    /// The first characters of the text (or the attachment kind) for dialog lists.
    pub fn preview(&self) -> String {
        const MAX: usize = 100;
        match (&self.text, self.attachments.first()) {
            (Some(text), _) if !text.is_empty() => {
                let mut out: String = text.chars().take(MAX).collect();
                if text.chars().nth(MAX).is_some() {
                    out.push('…');
                }
                out
            }
            (_, Some(a)) => format!(
                "[{}]",
                serde_json::to_value(a.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            _ => format!("[{}]", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        use DeliveryStatus::*;
        assert!(Queued.advances_to(Sent));
        assert!(Sent.advances_to(Read));
        assert!(!Read.advances_to(Delivered));
        assert!(!Delivered.advances_to(Delivered));
        assert!(Read.advances_to(Failed));
        assert!(!Failed.advances_to(Read));
    }

    #[test]
    fn a_dialog_id_is_stable_and_a_valid_key_part() {
        let i = IntegrationId::parse("int1").unwrap();
        let c = ClientId::parse("c1").unwrap();
        assert_eq!(Dialog::id_for(&i, &c), Dialog::id_for(&i, &c));
        assert_ne!(
            Dialog::id_for(&i, &c),
            Dialog::id_for(&i, &ClientId::parse("c2").unwrap())
        );
    }
}
