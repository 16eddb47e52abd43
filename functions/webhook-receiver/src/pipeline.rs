//! From a verified, parsed event to stored state and one published inbound event.
//!
//! Exactly once: each provider event id is *claimed* in the idempotency store before any
//! write. The claim chooses the id of the message it will store, so a redelivery after a
//! failure (the claim released, or its lease expired) writes the same items again — each
//! write is conditional and repeats nothing — and a duplicate of a completed event stops
//! at the claim. A failure anywhere answers 5xx, and the provider's redelivery finishes
//! the work.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::domain::MessageId;
use shared::domain::inbox::{Dialog, Direction, Message};
use shared::ports::OutgoingMessage;
use shared::repo::idempotency::Claim;
use shared::repo::inbox::Contact;
use shared::repo::integrations::Integration;

use crate::Deps;
use crate::event::{EventKind, InboundEvent, Sender};

/// How long a claim holds before a redelivery may take the work over (longer than a
/// request may take: API Gateway stops waiting after 30 s).
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// How long a handled event id is remembered (Meta retries for up to 7 days).
pub const DEDUPE_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (or applied) and published now.
    Processed,
    /// Handled before; nothing was done.
    Duplicate,
    /// Another delivery of the same event is being handled right now.
    InProgress,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Repo(#[from] shared::repo::RepoError),
    #[error(transparent)]
    Queue(#[from] shared::ports::QueueError),
}

/// Event ids become part of a sort key: long or odd ones are hashed.
fn dedupe_key(event_id: &str) -> String {
    if event_id.len() <= 200 && !event_id.contains('#') {
        event_id.to_owned()
    } else {
        format!("sha256:{}", hex_digest(event_id))
    }
}

fn hex_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub async fn process(
    deps: &Deps,
    integration: &Integration,
    event: &InboundEvent,
) -> Result<Outcome, PipelineError> {
    let tenant = &integration.tenant_id;
    let scope = format!("webhook#{}", integration.id);
    let key = dedupe_key(&event.event_id);
    let fresh = MessageId::generate();
    let claim = deps
        .idempotency
        .claim(tenant, &scope, &key, fresh.as_str(), CLAIM_LEASE)
        .await?;
    let data = match claim {
        Claim::Completed { .. } => return Ok(Outcome::Duplicate),
        Claim::InProgress { .. } => return Ok(Outcome::InProgress),
        Claim::Acquired { data } => data,
    };
    let message_id = MessageId::parse(data).unwrap_or(fresh);
    match apply_and_publish(deps, integration, event, &message_id).await {
        Ok(()) => {
            // Stored and published: acknowledged even if the claim cannot be completed. A
            // 5xx would only make the provider redeliver an event that is handled.
            if let Err(e) = deps
                .idempotency
                .complete(
                    tenant,
                    &scope,
                    &key,
                    message_id.as_str(),
                    None,
                    DEDUPE_RETENTION,
                )
                .await
            {
                tracing::warn!(error = %e, "claim not completed; a redelivery is stopped by its lease, then stores nothing new");
            }
            Ok(Outcome::Processed)
        }
        Err(e) => {
            if let Err(release) = deps.idempotency.release(tenant, &scope, &key).await {
                tracing::warn!(error = %release, "claim not released; it expires by its lease");
            }
            Err(e)
        }
    }
}

fn contact(integration: &Integration, sender: &Sender) -> Contact {
    Contact {
        channel: channel(integration),
        external_id: sender.external_id.clone(),
        username: sender.username.clone(),
        name: sender.name.clone(),
        phone: sender.phone.clone(),
    }
}

fn channel(integration: &Integration) -> String {
    integration
        .channel
        .clone()
        .unwrap_or_else(|| integration.provider.clone())
}

/// The dialog of the sender (stored with its first message, see
/// [`Inbox::store_inbound_in`](shared::repo::inbox::Inbox::store_inbound_in)), and
/// whether it likely exists already (the client was known before).
async fn dialog_of(
    deps: &Deps,
    integration: &Integration,
    sender: &Sender,
    chat_id: &str,
) -> Result<(Dialog, bool), PipelineError> {
    let (client, created) = deps
        .inbox
        .identify_contact(&integration.tenant_id, &contact(integration, sender))
        .await?;
    let dialog = Dialog {
        id: Dialog::id_for(&integration.id, &client),
        tenant_id: integration.tenant_id.clone(),
        client_id: client,
        integration_id: integration.id.clone(),
        channel: channel(integration),
        provider: integration.provider.clone(),
        chat_id: chat_id.to_owned(),
        created_at: deps.clock.now(),
        last_message_at: None,
        last_message_preview: None,
        last_inbound_at: None,
        unread_count: 0,
    };
    Ok((dialog, !created))
}

/// An inbound message of a dialog with nothing but its identity filled in.
pub fn inbound_message(
    integration: &Integration,
    dialog: &Dialog,
    id: &MessageId,
    kind: &str,
    at: Timestamp,
    now: Timestamp,
) -> Message {
    Message {
        id: id.clone(),
        tenant_id: integration.tenant_id.clone(),
        dialog_id: dialog.id.clone(),
        client_id: dialog.client_id.clone(),
        integration_id: integration.id.clone(),
        channel: dialog.channel.clone(),
        provider: integration.provider.clone(),
        direction: Direction::Inbound,
        kind: kind.to_owned(),
        text: None,
        attachments: Vec::new(),
        payload: None,
        provider_message_id: None,
        reply_to: None,
        status: None,
        status_reason: None,
        sent_at: at,
        created_at: now,
        edited_at: None,
        attempts: Vec::new(),
    }
}

async fn apply_and_publish(
    deps: &Deps,
    integration: &Integration,
    event: &InboundEvent,
    message_id: &MessageId,
) -> Result<(), PipelineError> {
    let now = deps.clock.now();
    let data: Option<Value> = match &event.kind {
        EventKind::Message(m) => {
            let (dialog, likely) = dialog_of(deps, integration, &m.sender, &m.chat_id).await?;
            let mut message = inbound_message(
                integration,
                &dialog,
                message_id,
                "message",
                event.occurred_at,
                now,
            );
            message.text = m.text.clone();
            message.attachments = m.attachments.clone();
            message.provider_message_id = Some(m.provider_message_id.clone());
            message.reply_to = m.reply_to.clone();
            deps.inbox
                .store_inbound_in(&dialog, &message, likely)
                .await?;
            Some(json!({"message": message}))
        }
        EventKind::Action {
            sender,
            chat_id,
            name,
            payload,
            provider_message_id,
        } => {
            let (dialog, likely) = dialog_of(deps, integration, sender, chat_id).await?;
            let mut message = inbound_message(
                integration,
                &dialog,
                message_id,
                name,
                event.occurred_at,
                now,
            );
            message.payload = payload.clone();
            message.reply_to = provider_message_id.clone();
            deps.inbox
                .store_inbound_in(&dialog, &message, likely)
                .await?;
            Some(json!({"message": message}))
        }
        EventKind::Edited {
            provider_message_id,
            text,
        } => {
            let edited = deps
                .inbox
                .edit(
                    &integration.tenant_id,
                    &integration.id,
                    provider_message_id,
                    text.as_deref(),
                    event.occurred_at,
                )
                .await?;
            match edited {
                Some(id) => {
                    Some(json!({"message_id": id, "text": text, "edited_at": event.occurred_at}))
                }
                None => {
                    tracing::info!(integration_id = %integration.id, "edit of a message never received; ignored");
                    None
                }
            }
        }
        EventKind::Status {
            provider_message_id,
            status,
            reason,
        } => {
            let moved = deps
                .inbox
                .set_status(
                    &integration.tenant_id,
                    &integration.id,
                    provider_message_id,
                    *status,
                    reason.as_deref(),
                )
                .await?;
            match moved {
                Some(true) => {
                    let message = deps
                        .inbox
                        .find_by_provider_id(
                            &integration.tenant_id,
                            &integration.id,
                            provider_message_id,
                        )
                        .await?;
                    Some(json!({
                        "message_id": message.map(|m| m.id),
                        "status": status,
                        "reason": reason,
                    }))
                }
                Some(false) => None,
                None => {
                    tracing::info!(integration_id = %integration.id, "status of a message not sent through us; ignored");
                    None
                }
            }
        }
    };
    let Some(data) = data else {
        return Ok(());
    };
    let body = json!({
        "id": format!("evt_{message_id}"),
        "type": event.type_name(),
        "tenant_id": integration.tenant_id,
        "integration_id": integration.id,
        "provider": integration.provider,
        "channel": channel(integration),
        "occurred_at": event.occurred_at,
        "data": data,
    });
    deps.events
        .send(OutgoingMessage::new(body.to_string()))
        .await?;
    Ok(())
}
