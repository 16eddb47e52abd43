//! Clients, their identities per channel, dialogs and messages of a tenant.
//!
//! Items (all in the tenant's partition `TENANT#{t}`):
//! * `CLIENT#{client}` — the client; `CLIENT#{client}#IDENTITY#{channel}#{external}` and
//!   `CLIENT#{client}#DIALOG#{dialog}` — its identities and dialogs (one query reads all);
//! * `IDENTITY#{channel}#{external}` and `PHONE#{e164}` — unique lookups → client id,
//!   created with conditions so concurrent first messages make one client;
//! * `DIALOG#{dialog}` — the dialog, in `gsi1` under `TENANT#{t}#DIALOGS` sorted by its
//!   last activity;
//! * `MSG#{dialog}#{message}` — messages in id (time) order;
//! * `PMSG#{integration}#{provider message id}` → dialog + message, for edits and
//!   delivery statuses that name the provider's id;
//! * `CLIENT#{client}#ROUTE#{channel}` — the [`RouteMemo`]: the integration the client was
//!   last reached through (an inbound message or a successful send), read with the client.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jiff::Timestamp;

use super::memo::TableMemo;
use super::{RepoError, from_item, to_item};
use crate::domain::inbox::{
    Attempt, Client, DeliveryStatus, Dialog, Identity, Message, RecipientKind, RouteMemo,
};
use crate::domain::{ClientId, DialogId, IntegrationId, MessageId, TenantId, phone};
use crate::ports::Clock;
use crate::ports::table::{
    AttrValue, CancelReason, Condition, Cursor, GSI1_PK, GSI1_SK, Item, Key, Query, SortKey, Table,
    TableError, TransactOp, Update,
};

/// Who wrote: what a provider tells about the sender of an inbound message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub channel: String,
    pub external_id: String,
    pub username: Option<String>,
    pub name: Option<String>,
    /// Any format; normalised to E.164 before use, dropped when it is not a phone.
    pub phone: Option<String>,
}

fn pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn client_key(tenant: &TenantId, id: &ClientId) -> Key {
    Key::new(pk(tenant), format!("CLIENT#{id}"))
}

fn identity_key(tenant: &TenantId, channel: &str, external: &str) -> Key {
    Key::new(pk(tenant), format!("IDENTITY#{channel}#{external}"))
}

fn phone_key(tenant: &TenantId, e164: &str) -> Key {
    Key::new(pk(tenant), format!("PHONE#{e164}"))
}

fn dialog_key(tenant: &TenantId, id: &DialogId) -> Key {
    Key::new(pk(tenant), format!("DIALOG#{id}"))
}

fn message_key(tenant: &TenantId, dialog: &DialogId, id: &MessageId) -> Key {
    Key::new(pk(tenant), format!("MSG#{dialog}#{id}"))
}

fn provider_message_key(tenant: &TenantId, integration: &IntegrationId, pmid: &str) -> Key {
    Key::new(pk(tenant), format!("PMSG#{integration}#{pmid}"))
}

fn route_key(tenant: &TenantId, client: &ClientId, channel: &str) -> Key {
    Key::new(pk(tenant), format!("CLIENT#{client}#ROUTE#{channel}"))
}

fn dialog_link_key(tenant: &TenantId, client: &ClientId, dialog: &DialogId) -> Key {
    Key::new(pk(tenant), format!("CLIENT#{client}#DIALOG#{dialog}"))
}

/// The dialog item (in `gsi1` by its last activity) and the client's link to it.
fn dialog_items(dialog: &Dialog) -> Result<(Item, Item), TableError> {
    let tenant = &dialog.tenant_id;
    let mut link = dialog_link_key(tenant, &dialog.client_id, &dialog.id).to_item();
    link.insert("dialog_id".into(), AttrValue::s(dialog.id.as_str()));
    let mut item = to_item(&dialog_key(tenant, &dialog.id), dialog)?;
    item.insert(
        GSI1_PK.into(),
        AttrValue::s(format!("TENANT#{tenant}#DIALOGS")),
    );
    item.insert(
        GSI1_SK.into(),
        AttrValue::s(activity_key(
            dialog.last_message_at.unwrap_or(dialog.created_at),
            &dialog.id,
        )),
    );
    Ok((item, link))
}

/// What an outbound message changes on its dialog: last activity and preview.
fn outbound_activity(message: &Message) -> Update {
    Update::new()
        .set("last_message_at", AttrValue::s(message.sent_at.to_string()))
        .set("last_message_preview", AttrValue::s(message.preview()))
        .set(
            GSI1_SK,
            AttrValue::s(activity_key(message.sent_at, &message.dialog_id)),
        )
}

fn attempts_value(attempts: &[Attempt]) -> Result<AttrValue, TableError> {
    serde_json::to_value(attempts)
        .map(|v| AttrValue::from_json(&v))
        .map_err(|e| TableError::Validation(e.to_string()))
}

/// A client with what a send needs to know, read in one query: identities, the ids of
/// its dialogs and its last route per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientProfile {
    pub client: Client,
    pub dialog_ids: Vec<DialogId>,
    pub routes: Vec<RouteMemo>,
}

impl ClientProfile {
    pub fn route(&self, channel: &str) -> Option<&RouteMemo> {
        self.routes.iter().find(|r| r.channel == channel)
    }

    pub fn identity(&self, channel: &str) -> Option<&Identity> {
        self.client.identities.iter().find(|i| i.channel == channel)
    }

    pub fn has_dialog(&self, id: &DialogId) -> bool {
        self.dialog_ids.contains(id)
    }
}

/// Where an outbound message is recorded, and what else moves with it.
pub struct OutboundRecord<'a> {
    pub message: &'a Message,
    /// The dialog, when it does not exist yet (created in the same transaction).
    pub new_dialog: Option<&'a Dialog>,
    /// The client's route to remember (on success).
    pub route: Option<&'a RouteMemo>,
    /// The dialog holding this message's `queued` placeholder, if one was stored.
    pub placeholder: Option<&'a DialogId>,
}

fn client_id_in(item: &Item) -> Option<ClientId> {
    item.get("client_id")
        .and_then(AttrValue::as_s)
        .and_then(|s| ClientId::parse(s).ok())
}

fn pointer(key: Key, client: &ClientId) -> Item {
    let mut item = key.to_item();
    item.insert("client_id".into(), AttrValue::s(client.as_str()));
    item
}

fn identity_link(
    tenant: &TenantId,
    client: &ClientId,
    identity: &Identity,
) -> Result<Item, TableError> {
    to_item(
        &Key::new(
            pk(tenant),
            format!(
                "CLIENT#{client}#IDENTITY#{}#{}",
                identity.channel, identity.external_id
            ),
        ),
        identity,
    )
}

fn is_condition_failure(e: &TableError, index: usize) -> bool {
    match e {
        TableError::ConditionFailed => true,
        TableError::TransactionCanceled { reasons } => {
            matches!(reasons.get(index), Some(CancelReason::ConditionFailed))
        }
        _ => false,
    }
}

/// Activity order key of a dialog in `gsi1`.
fn activity_key(at: Timestamp, dialog: &DialogId) -> String {
    format!("{:015}#{dialog}", at.as_millisecond().max(0))
}

/// How long a process remembers which client a channel identity belongs to. The pointer
/// from an identity to its client is written once and never changed (only a tenant's
/// deletion removes it, see [`forget_tenant`]), so a warm process may skip reading it:
/// a known sender's next message costs no identity read.
pub const IDENTITY_TTL: Duration = Duration::from_secs(600);

/// Clients by (tenant, channel, external id), per process and table.
static IDENTITIES: LazyLock<TableMemo<(TenantId, String, String), ClientId>> =
    LazyLock::new(|| TableMemo::new(IDENTITY_TTL, 16_384));

/// Forgets what this process remembers of a deleted tenant's identities.
pub fn forget_tenant(tenant: &TenantId) {
    IDENTITIES.retain(|(t, _, _), _| t != tenant);
}

#[derive(Clone)]
pub struct Inbox {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl Inbox {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// The client behind a contact: the one already known on this channel, else the one
    /// with the same phone (the identity is linked to it), else a new client. Safe under
    /// concurrency: the lookups are created with conditions, a loser re-reads.
    pub async fn identify(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<ClientId, RepoError> {
        Ok(self.identify_contact(tenant, contact).await?.0)
    }

    /// [`Inbox::identify`], and whether this call created the client (`true`: it has no
    /// dialog yet).
    pub async fn identify_contact(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<(ClientId, bool), RepoError> {
        let memo_key = (
            tenant.clone(),
            contact.channel.clone(),
            contact.external_id.clone(),
        );
        if let Some(client) = IDENTITIES.get(&self.table, &memo_key) {
            return Ok((client, false));
        }
        let found = self.identify_uncached(tenant, contact).await?;
        IDENTITIES.put(&self.table, memo_key, found.0.clone());
        Ok(found)
    }

    async fn identify_uncached(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<(ClientId, bool), RepoError> {
        let identity = Identity {
            channel: contact.channel.clone(),
            external_id: contact.external_id.clone(),
            username: contact.username.clone(),
        };
        let e164 = contact.phone.as_deref().and_then(phone::normalize);
        let id_key = identity_key(tenant, &identity.channel, &identity.external_id);
        for _ in 0..4 {
            if let Some(client) = self
                .table
                .get(&id_key)
                .await?
                .as_ref()
                .and_then(client_id_in)
            {
                return Ok((client, false));
            }
            let owner = match &e164 {
                Some(p) => self
                    .table
                    .get(&phone_key(tenant, p))
                    .await?
                    .as_ref()
                    .and_then(client_id_in),
                None => None,
            };
            let result = match owner {
                Some(client) => {
                    // Link this identity to the client who owns the phone.
                    let ops = vec![
                        TransactOp::Put {
                            item: pointer(id_key.clone(), &client),
                            condition: Some(Condition::ItemNotExists),
                        },
                        TransactOp::Put {
                            item: identity_link(tenant, &client, &identity)?,
                            condition: None,
                        },
                    ];
                    self.table
                        .transact_write(ops)
                        .await
                        .map(|()| (client, false))
                }
                None => {
                    let now = self.clock.now();
                    let client = Client {
                        id: ClientId::generate(),
                        tenant_id: tenant.clone(),
                        name: contact.name.clone(),
                        phone: e164.clone(),
                        identities: Vec::new(),
                        created_at: now,
                        updated_at: now,
                    };
                    let mut ops = vec![
                        TransactOp::Put {
                            item: pointer(id_key.clone(), &client.id),
                            condition: Some(Condition::ItemNotExists),
                        },
                        TransactOp::Put {
                            item: to_item(&client_key(tenant, &client.id), &client)?,
                            condition: Some(Condition::ItemNotExists),
                        },
                        TransactOp::Put {
                            item: identity_link(tenant, &client.id, &identity)?,
                            condition: None,
                        },
                    ];
                    if let Some(p) = &e164 {
                        ops.push(TransactOp::Put {
                            item: pointer(phone_key(tenant, p), &client.id),
                            condition: Some(Condition::ItemNotExists),
                        });
                    }
                    self.table
                        .transact_write(ops)
                        .await
                        .map(|()| (client.id, true))
                }
            };
            match result {
                Ok(found) => return Ok(found),
                // Someone created the identity or the phone meanwhile: read again.
                Err(TableError::TransactionCanceled { .. } | TableError::ConditionFailed) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TableError::ConditionFailed.into())
    }

    /// Stores a new client under its own id with its identities and phone (an import).
    /// `false`, and nothing written, when the id, an identity or the phone is taken.
    pub async fn insert_client(&self, client: &Client) -> Result<bool, RepoError> {
        let tenant = &client.tenant_id;
        let mut stored = client.clone();
        stored.identities = Vec::new();
        let mut ops = vec![TransactOp::Put {
            item: to_item(&client_key(tenant, &client.id), &stored)?,
            condition: Some(Condition::ItemNotExists),
        }];
        for identity in &client.identities {
            ops.push(TransactOp::Put {
                item: pointer(
                    identity_key(tenant, &identity.channel, &identity.external_id),
                    &client.id,
                ),
                condition: Some(Condition::ItemNotExists),
            });
            ops.push(TransactOp::Put {
                item: identity_link(tenant, &client.id, identity)?,
                condition: None,
            });
        }
        if let Some(phone) = &client.phone {
            ops.push(TransactOp::Put {
                item: pointer(phone_key(tenant, phone), &client.id),
                condition: Some(Condition::ItemNotExists),
            });
        }
        match self.table.transact_write(ops).await {
            Ok(()) => Ok(true),
            Err(TableError::TransactionCanceled { .. } | TableError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the dialog of a client through an integration unless it exists.
    pub async fn ensure_dialog(&self, dialog: &Dialog) -> Result<(), RepoError> {
        let (item, link) = dialog_items(dialog)?;
        let ops = vec![
            TransactOp::Put {
                item,
                condition: Some(Condition::ItemNotExists),
            },
            TransactOp::Put {
                item: link,
                condition: None,
            },
        ];
        match self.table.transact_write(ops).await {
            Ok(()) => Ok(()),
            Err(e) if is_condition_failure(&e, 0) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores an inbound message and moves its dialog (last message, unread count, activity
    /// order) in one transaction. `false` when the message was stored before (a redelivery
    /// repeats nothing).
    /// Events that are not messages (`kind` other than `message`, such as a button
    /// press) are stored in the dialog without counting as unread or moving its preview.
    pub async fn store_inbound(&self, message: &Message) -> Result<bool, RepoError> {
        let at = AttrValue::s(message.sent_at.to_string());
        let update = if message.kind == "message" {
            Update::new()
                .set("last_message_at", at.clone())
                .set("last_inbound_at", at)
                .set("last_message_preview", AttrValue::s(message.preview()))
                .set(
                    GSI1_SK,
                    AttrValue::s(activity_key(message.sent_at, &message.dialog_id)),
                )
                .add("unread_count", 1)
        } else {
            Update::new().set("last_event_at", at)
        };
        let route = (message.kind == "message").then(|| RouteMemo {
            channel: message.channel.clone(),
            integration_id: message.integration_id.clone(),
            recipient_kind: RecipientKind::UserId,
            at: message.sent_at,
        });
        self.store(message, update, route.as_ref()).await
    }

    /// [`Inbox::store_inbound`] into `dialog`, created unless it exists. With
    /// `dialog_likely`, the client was known before and its dialog through this
    /// integration most likely exists: the message is stored first (one transaction), and
    /// the dialog created and the message stored again only when that transaction finds
    /// the dialog missing. Otherwise the dialog is created first (two transactions).
    pub async fn store_inbound_in(
        &self,
        dialog: &Dialog,
        message: &Message,
        dialog_likely: bool,
    ) -> Result<bool, RepoError> {
        if dialog_likely {
            match self.store_inbound(message).await {
                Err(RepoError::Table(e)) if is_condition_failure(&e, 1) => {}
                done => return done,
            }
        }
        self.ensure_dialog(dialog).await?;
        self.store_inbound(message).await
    }

    /// Stores a message we send (status `queued`/`sent`) and moves its dialog's last
    /// activity. `false` when it was stored before.
    pub async fn store_outbound(&self, message: &Message) -> Result<bool, RepoError> {
        self.store(message, outbound_activity(message), None).await
    }

    async fn store(
        &self,
        message: &Message,
        dialog_update: Update,
        route: Option<&RouteMemo>,
    ) -> Result<bool, RepoError> {
        let tenant = &message.tenant_id;
        let mut ops = vec![
            TransactOp::Put {
                item: to_item(
                    &message_key(tenant, &message.dialog_id, &message.id),
                    message,
                )?,
                condition: Some(Condition::ItemNotExists),
            },
            TransactOp::Update {
                key: dialog_key(tenant, &message.dialog_id),
                update: dialog_update,
                condition: Some(Condition::ItemExists),
            },
        ];
        if let Some(pmid) = &message.provider_message_id {
            let mut item = provider_message_key(tenant, &message.integration_id, pmid).to_item();
            item.insert("dialog_id".into(), AttrValue::s(message.dialog_id.as_str()));
            item.insert("message_id".into(), AttrValue::s(message.id.as_str()));
            ops.push(TransactOp::Put {
                item,
                condition: None,
            });
        }
        if let Some(route) = route {
            ops.push(TransactOp::Put {
                item: to_item(
                    &route_key(tenant, &message.client_id, &route.channel),
                    route,
                )?,
                condition: None,
            });
        }
        match self.table.transact_write(ops).await {
            Ok(()) => Ok(true),
            Err(e) if is_condition_failure(&e, 0) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Records an outbound message in one transaction: the message (replacing its
    /// `queued` placeholder when that sits in the same dialog, else new), its dialog
    /// (created, or its last activity moved), the provider-id pointer, the client's
    /// route and the removal of a placeholder left in another dialog. `false` when the
    /// message was recorded before (a redelivery changes nothing) — unless that record is
    /// `queued` or `failed` outside a placeholder's dialog: a retry of the request that
    /// left it replaces it.
    pub async fn record_outbound(&self, record: &OutboundRecord<'_>) -> Result<bool, RepoError> {
        let message = record.message;
        let tenant = &message.tenant_id;
        let mut new_dialog = record.new_dialog.cloned();
        for _ in 0..2 {
            let same_dialog = record.placeholder == Some(&message.dialog_id);
            let condition = if same_dialog {
                Condition::Eq(
                    "status".into(),
                    AttrValue::s(DeliveryStatus::Queued.as_str()),
                )
            } else {
                // New, or what an earlier attempt of the same request (the same
                // Idempotency-Key, the same id) left before it answered 5xx: a `queued`
                // placeholder (whose job may never have been queued) or one it ended
                // `failed` (the queue refused its job). This attempt's outcome replaces
                // it; kept, it would leave a delivered message `queued` for ever, or a
                // queued one `failed` with a job that then delivers nothing.
                Condition::Or(vec![
                    Condition::ItemNotExists,
                    Condition::Eq(
                        "status".into(),
                        AttrValue::s(DeliveryStatus::Queued.as_str()),
                    ),
                    Condition::Eq(
                        "status".into(),
                        AttrValue::s(DeliveryStatus::Failed.as_str()),
                    ),
                ])
            };
            let mut ops = vec![TransactOp::Put {
                item: to_item(
                    &message_key(tenant, &message.dialog_id, &message.id),
                    message,
                )?,
                condition: Some(condition),
            }];
            match &mut new_dialog {
                Some(dialog) => {
                    dialog.last_message_at = Some(message.sent_at);
                    dialog.last_message_preview = Some(message.preview());
                    let (item, link) = dialog_items(dialog)?;
                    ops.push(TransactOp::Put {
                        item,
                        condition: Some(Condition::ItemNotExists),
                    });
                    ops.push(TransactOp::Put {
                        item: link,
                        condition: None,
                    });
                }
                None => ops.push(TransactOp::Update {
                    key: dialog_key(tenant, &message.dialog_id),
                    update: outbound_activity(message),
                    condition: Some(Condition::ItemExists),
                }),
            }
            if let Some(pmid) = &message.provider_message_id {
                let mut item =
                    provider_message_key(tenant, &message.integration_id, pmid).to_item();
                item.insert("dialog_id".into(), AttrValue::s(message.dialog_id.as_str()));
                item.insert("message_id".into(), AttrValue::s(message.id.as_str()));
                ops.push(TransactOp::Put {
                    item,
                    condition: None,
                });
            }
            if let Some(route) = record.route {
                ops.push(TransactOp::Put {
                    item: to_item(
                        &route_key(tenant, &message.client_id, &route.channel),
                        route,
                    )?,
                    condition: None,
                });
            }
            if let Some(old) = record.placeholder.filter(|_| !same_dialog) {
                ops.push(TransactOp::Delete {
                    key: message_key(tenant, old, &message.id),
                    condition: None,
                });
            }
            match self.table.transact_write(ops).await {
                Ok(()) => return Ok(true),
                Err(e) if is_condition_failure(&e, 0) => return Ok(false),
                // The dialog was created meanwhile: move it instead.
                Err(e) if new_dialog.is_some() && is_condition_failure(&e, 1) => {
                    new_dialog = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TableError::ConditionFailed.into())
    }

    pub async fn message(
        &self,
        tenant: &TenantId,
        dialog: &DialogId,
        id: &MessageId,
    ) -> Result<Option<Message>, RepoError> {
        let item = self.table.get(&message_key(tenant, dialog, id)).await?;
        Ok(item.as_ref().map(from_item).transpose()?)
    }

    /// Replaces the attempt log of a `queued` message (a later retry appends to it).
    pub async fn set_attempts(
        &self,
        tenant: &TenantId,
        dialog: &DialogId,
        id: &MessageId,
        attempts: &[Attempt],
    ) -> Result<(), RepoError> {
        self.queued_update(
            tenant,
            dialog,
            id,
            Update::new().set("attempts", attempts_value(attempts)?),
        )
        .await
    }

    /// Ends a `queued` message as `failed` with the reason and its attempt log.
    pub async fn fail(
        &self,
        tenant: &TenantId,
        dialog: &DialogId,
        id: &MessageId,
        reason: &str,
        attempts: &[Attempt],
    ) -> Result<(), RepoError> {
        self.queued_update(
            tenant,
            dialog,
            id,
            Update::new()
                .set("status", AttrValue::s(DeliveryStatus::Failed.as_str()))
                .set("status_reason", AttrValue::s(reason))
                .set("attempts", attempts_value(attempts)?),
        )
        .await
    }

    async fn queued_update(
        &self,
        tenant: &TenantId,
        dialog: &DialogId,
        id: &MessageId,
        update: Update,
    ) -> Result<(), RepoError> {
        let condition = Condition::Eq(
            "status".into(),
            AttrValue::s(DeliveryStatus::Queued.as_str()),
        );
        match self
            .table
            .update(&message_key(tenant, dialog, id), update, Some(condition))
            .await
        {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The message a provider's message id names, in an integration.
    pub async fn find_by_provider_id(
        &self,
        tenant: &TenantId,
        integration: &IntegrationId,
        provider_message_id: &str,
    ) -> Result<Option<Message>, RepoError> {
        let Some(pointer) = self
            .table
            .get(&provider_message_key(
                tenant,
                integration,
                provider_message_id,
            ))
            .await?
        else {
            return Ok(None);
        };
        let field = |name: &str| {
            pointer
                .get(name)
                .and_then(AttrValue::as_s)
                .map(str::to_owned)
        };
        let (Some(dialog), Some(message)) = (field("dialog_id"), field("message_id")) else {
            return Err(RepoError::Corrupt);
        };
        let dialog = DialogId::parse(dialog).map_err(|_| RepoError::Corrupt)?;
        let message = MessageId::parse(message).map_err(|_| RepoError::Corrupt)?;
        let item = self
            .table
            .get(&message_key(tenant, &dialog, &message))
            .await?;
        Ok(item.as_ref().map(from_item).transpose()?)
    }

    /// Applies an edit made on the provider. `None` when the message is unknown here.
    pub async fn edit(
        &self,
        tenant: &TenantId,
        integration: &IntegrationId,
        provider_message_id: &str,
        text: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<MessageId>, RepoError> {
        let Some(message) = self
            .find_by_provider_id(tenant, integration, provider_message_id)
            .await?
        else {
            return Ok(None);
        };
        let mut update = Update::new().set("edited_at", AttrValue::s(at.to_string()));
        update = match text {
            Some(text) => update.set("text", AttrValue::s(text)),
            None => update.remove("text"),
        };
        self.table
            .update(
                &message_key(tenant, &message.dialog_id, &message.id),
                update,
                Some(Condition::ItemExists),
            )
            .await?;
        Ok(Some(message.id))
    }

    /// Moves an outbound message's delivery status forward (a late `delivered` after
    /// `read` changes nothing). `None` when the message is unknown here; otherwise whether
    /// the status moved.
    pub async fn set_status(
        &self,
        tenant: &TenantId,
        integration: &IntegrationId,
        provider_message_id: &str,
        status: DeliveryStatus,
        reason: Option<&str>,
    ) -> Result<Option<bool>, RepoError> {
        for _ in 0..3 {
            let Some(message) = self
                .find_by_provider_id(tenant, integration, provider_message_id)
                .await?
            else {
                return Ok(None);
            };
            let current = message.status.unwrap_or(DeliveryStatus::Queued);
            if !current.advances_to(status) {
                return Ok(Some(false));
            }
            let mut update = Update::new().set("status", AttrValue::s(status.as_str()));
            if let Some(reason) = reason {
                update = update.set("status_reason", AttrValue::s(reason));
            }
            let condition = match message.status {
                Some(s) => Condition::Eq("status".into(), AttrValue::s(s.as_str())),
                None => Condition::Or(vec![
                    Condition::AttrNotExists("status".into()),
                    Condition::Eq("status".into(), AttrValue::Null),
                ]),
            };
            match self
                .table
                .update(
                    &message_key(tenant, &message.dialog_id, &message.id),
                    update,
                    Some(condition),
                )
                .await
            {
                Ok(_) => return Ok(Some(true)),
                Err(TableError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(false))
    }

    pub async fn client(
        &self,
        tenant: &TenantId,
        id: &ClientId,
    ) -> Result<Option<Client>, RepoError> {
        Ok(self.client_profile(tenant, id).await?.map(|p| p.client))
    }

    /// The client with its identities, dialog ids and routes, in one query.
    pub async fn client_profile(
        &self,
        tenant: &TenantId,
        id: &ClientId,
    ) -> Result<Option<ClientProfile>, RepoError> {
        let own = format!("CLIENT#{id}");
        let query = Query::partition(pk(tenant)).sort(SortKey::BeginsWith(own.clone()));
        let items = super::query_all(self.table.as_ref(), query).await?;
        let identity_prefix = format!("{own}#IDENTITY#");
        let dialog_prefix = format!("{own}#DIALOG#");
        let route_prefix = format!("{own}#ROUTE#");
        let mut client: Option<Client> = None;
        let mut identities = Vec::new();
        let mut dialog_ids = Vec::new();
        let mut routes = Vec::new();
        for item in &items {
            let sk = Key::of(item)?.sk;
            if sk == own {
                client = Some(from_item(item)?);
            } else if sk.starts_with(&identity_prefix) {
                identities.push(from_item::<Identity>(item)?);
            } else if let Some(dialog) = sk.strip_prefix(&dialog_prefix) {
                dialog_ids.push(DialogId::parse(dialog).map_err(|_| RepoError::Corrupt)?);
            } else if sk.starts_with(&route_prefix) {
                routes.push(from_item::<RouteMemo>(item)?);
            }
        }
        Ok(client.map(|mut client| {
            client.identities = identities;
            ClientProfile {
                client,
                dialog_ids,
                routes,
            }
        }))
    }

    pub async fn client_by_phone(
        &self,
        tenant: &TenantId,
        raw: &str,
    ) -> Result<Option<ClientId>, RepoError> {
        let Some(e164) = phone::normalize(raw) else {
            return Ok(None);
        };
        Ok(self
            .table
            .get(&phone_key(tenant, &e164))
            .await?
            .as_ref()
            .and_then(client_id_in))
    }

    /// The client who owns an identity on a channel.
    pub async fn client_by_identity(
        &self,
        tenant: &TenantId,
        channel: &str,
        external_id: &str,
    ) -> Result<Option<ClientId>, RepoError> {
        Ok(self
            .table
            .get(&identity_key(tenant, channel, external_id))
            .await?
            .as_ref()
            .and_then(client_id_in))
    }

    pub async fn dialog(
        &self,
        tenant: &TenantId,
        id: &DialogId,
    ) -> Result<Option<Dialog>, RepoError> {
        let item = self.table.get(&dialog_key(tenant, id)).await?;
        Ok(item.as_ref().map(from_item).transpose()?)
    }

    /// Dialogs of a client.
    pub async fn client_dialogs(
        &self,
        tenant: &TenantId,
        client: &ClientId,
    ) -> Result<Vec<Dialog>, RepoError> {
        let query = Query::partition(pk(tenant))
            .sort(SortKey::BeginsWith(format!("CLIENT#{client}#DIALOG#")));
        let mut out = Vec::new();
        for link in super::query_all(self.table.as_ref(), query).await? {
            let id = link
                .get("dialog_id")
                .and_then(AttrValue::as_s)
                .and_then(|s| DialogId::parse(s).ok())
                .ok_or(RepoError::Corrupt)?;
            if let Some(dialog) = self.dialog(tenant, &id).await? {
                out.push(dialog);
            }
        }
        Ok(out)
    }

    /// Messages of a dialog in id (time) order — newest first unless `oldest_first` —
    /// `limit` per page. A message stored while a client pages lands at the end it pages
    /// away from, so paging neither repeats nor misses one.
    pub async fn messages(
        &self,
        tenant: &TenantId,
        dialog: &DialogId,
        limit: u32,
        cursor: Option<Cursor>,
        oldest_first: bool,
    ) -> Result<(Vec<Message>, Option<Cursor>), RepoError> {
        let mut query = Query::partition(pk(tenant))
            .sort(SortKey::BeginsWith(format!("MSG#{dialog}#")))
            .limit(limit)
            .after(cursor);
        if !oldest_first {
            query = query.backward();
        }
        let page = self.table.query(query).await?;
        let messages = page.items.iter().map(from_item).collect::<Result<_, _>>()?;
        Ok((messages, page.next))
    }

    /// The tenant's dialogs, the most recent activity first, keeping those `keep` accepts:
    /// reads pages of up to `limit` until `limit` dialogs are kept or the list ends.
    pub async fn dialogs(
        &self,
        tenant: &TenantId,
        limit: u32,
        mut cursor: Option<Cursor>,
        keep: impl Fn(&Dialog) -> bool,
    ) -> Result<(Vec<Dialog>, Option<Cursor>), RepoError> {
        let mut out = Vec::new();
        // Bounded, so a filter that matches nothing cannot read the whole table at once.
        for _ in 0..20 {
            let want = limit.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
            let page = self
                .table
                .query(
                    Query::gsi1(format!("TENANT#{tenant}#DIALOGS"))
                        .backward()
                        .limit(want.max(1))
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                let dialog: Dialog = from_item(item)?;
                if keep(&dialog) {
                    out.push(dialog);
                }
            }
            cursor = page.next;
            if cursor.is_none() || out.len() >= limit as usize {
                break;
            }
        }
        Ok((out, cursor))
    }
}
