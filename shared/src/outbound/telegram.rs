//! Telegram send with smart routing and cross-integration fallback (SPEC §6, seed 000).
//!
//! Route order: the integration the client was last reached through (its last inbound
//! message or the last send that worked), if still enabled → the tenant's primary
//! Telegram integration → any enabled one; then every other enabled Telegram integration,
//! primary first. Within each, the recipient by Telegram user id, then by phone. One
//! code path serves `telegram-send`, `telegram-crm-send` (pinned to one integration) and
//! the outbound worker (the remaining routes of a queued message).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::channel::{ChannelProviders, Outgoing, Recipient, RecipientKind};
use crate::domain::inbox::{
    Attachment, AttachmentKind, Attempt, AttemptOutcome, DeliveryStatus, Dialog, Direction,
    Message, RouteMemo,
};
use crate::domain::{ClientId, DialogId, IntegrationId, MessageId, TenantId};
use crate::ports::queue::{MAX_DELAY, OutgoingMessage};
use crate::ports::{Clock, Queue, QueueError};
use crate::providers::ProviderError;
use crate::repo::RepoError;
use crate::repo::inbox::{ClientProfile, Inbox, OutboundRecord};
use crate::repo::integrations::{Integration, IntegrationStatus, Integrations};
use crate::repo::rate_limit::RateLimiter;
use crate::telemetry::{Metrics, metric_names as metric};

pub const CHANNEL: &str = "telegram";
/// The text of the error when no route reached the client (seed 000).
pub const NOT_FOUND_MESSAGE: &str = "Клиент не найден в Telegram";

/// Transient failures retried inside a request before the message is queued.
const IN_REQUEST_TRIES: u32 = 3;
/// A `retry_after` longer than this is not waited for in a request: the message is queued.
const IN_REQUEST_WAIT_CAP: Duration = Duration::from_secs(2);
/// How long a request may spend on provider calls before the rest is left to the queue
/// (API Gateway gives up after 30 s; one call may take up to 15 s).
const REQUEST_BUDGET: Duration = Duration::from_secs(12);
/// The queue delay of a transient failure that names no `retry_after`.
const DEFAULT_REQUEUE: Duration = Duration::from_secs(10);
/// Tries to record a message the provider accepted before the error is returned.
const RECORD_TRIES: u32 = 4;

/// One step of a plan: an integration and how to address the client on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub integration_id: IntegrationId,
    pub recipient: Recipient,
}

/// A message waiting on the outbound queue: the routes left to try, from the one that
/// failed transiently. Its `queued` placeholder sits in `placeholder_dialog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    /// The network of the routes (`telegram`, `max`, `whatsapp`, …).
    #[serde(default = "telegram_channel")]
    pub channel: String,
    pub message_id: MessageId,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub content: Outgoing,
    pub routes: Vec<Route>,
    pub placeholder_dialog: DialogId,
}

fn telegram_channel() -> String {
    CHANNEL.to_owned()
}

/// Which integrations a send may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Smart routing with fallback across every enabled Telegram integration.
    Auto,
    /// Only this integration (id, then phone), optionally required to be of a provider.
    Pinned {
        integration_id: IntegrationId,
        provider: Option<&'static str>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub content: Outgoing,
    pub scope: Scope,
    /// The message's id (stable across idempotent retries).
    pub message_id: MessageId,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    Sent {
        message: Box<Message>,
        fallback_used: bool,
    },
    /// A transient failure: queued for the outbound worker; `message` is the placeholder.
    Queued { message: Box<Message> },
    /// No route reached the client.
    NotFound { attempts: Vec<Attempt> },
    /// The provider refused for good (blocked by the user, bad request).
    Rejected {
        reason: String,
        attempts: Vec<Attempt>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("client not found")]
    ClientNotFound,
    #[error("integration not found")]
    IntegrationNotFound,
    #[error("the integration is disabled")]
    IntegrationDisabled,
    #[error("the integration is not a {0} integration")]
    WrongProvider(&'static str),
    #[error("the tenant has no enabled Telegram integration")]
    NoIntegration,
    #[error("the client has neither a Telegram account nor a phone number")]
    NoContact,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("the outbound queue is unavailable: {0}")]
    Queue(#[from] QueueError),
}

/// What the worker should do with a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Done (sent, or ended as failed): delete it.
    Done,
    /// Try again after this long.
    Retry(Duration),
    /// Give up: to the dead-letter queue with this reason.
    Dead(String),
}

/// How far a walk along the routes got.
enum Walk {
    Sent {
        index: usize,
        provider_message_id: String,
    },
    Transient {
        index: usize,
        retry_after: Option<Duration>,
    },
    Rejected(String),
    Exhausted,
}

/// Whether provider calls are retried in place (a request) or left to the queue (worker).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Request,
    Worker,
}

pub struct OutboundSender {
    pub integrations: Integrations,
    /// Per-dialog pacing where a provider demands it (MAX: 2 messages/s per dialog).
    pub rate_limiter: RateLimiter,
    pub inbox: Inbox,
    pub providers: Arc<ChannelProviders>,
    pub outbound: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
}

fn sends_on(integration: &Integration, channel: &str, providers: &ChannelProviders) -> bool {
    integration.channel.as_deref() == Some(channel)
        && providers.find(&integration.provider).is_some()
}

fn channel_of(integration: &Integration) -> String {
    integration
        .channel
        .clone()
        .unwrap_or_else(|| integration.provider.clone())
}

fn attachment(content: &Outgoing) -> Vec<Attachment> {
    content
        .file
        .iter()
        .map(|file| {
            let mime = file.mime_type.as_deref().unwrap_or_default();
            let kind = match mime.split('/').next() {
                Some("image") => AttachmentKind::Image,
                Some("video") => AttachmentKind::Video,
                Some("audio") => AttachmentKind::Audio,
                _ => AttachmentKind::Document,
            };
            Attachment {
                kind,
                file_id: None,
                url: Some(file.url.clone()),
                mime_type: file.mime_type.clone(),
                file_name: file.name.clone(),
            }
        })
        .collect()
}

/// The content with our message id as the providers' dedupe key.
fn keyed(content: &Outgoing, id: &MessageId) -> Outgoing {
    Outgoing {
        dedupe_key: Some(id.to_string()),
        ..content.clone()
    }
}

fn outcome_of(error: &ProviderError) -> AttemptOutcome {
    match error {
        ProviderError::Auth(_) => AttemptOutcome::IntegrationError,
        ProviderError::RecipientUnreachable(_) => AttemptOutcome::Unreachable,
        ProviderError::Transient { .. } => AttemptOutcome::Transient,
        ProviderError::Rejected(_) => AttemptOutcome::Rejected,
    }
}

/// Counts a send that ended without delivery, under its first route's provider (as a
/// queued message counts under its first route's, see [`OutboundSender::job_provider`]).
fn failed_metric(integrations: &BTreeMap<IntegrationId, Integration>, routes: &[Route]) {
    let provider = routes
        .first()
        .and_then(|r| integrations.get(&r.integration_id))
        .map_or(CHANNEL, |i| i.provider.as_str());
    Metrics::provider(provider).count(metric::FAILED, 1).emit();
}

fn retry_delay(tries: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << tries.min(4)))
}

impl OutboundSender {
    /// The client's routes in the order of SPEC §6 (see the module docs).
    pub fn plan(
        profile: &ClientProfile,
        telegram: &[Integration],
        scope: &Scope,
        providers: &ChannelProviders,
    ) -> Result<Vec<Route>, SendError> {
        let user_id = profile
            .identity(CHANNEL)
            .map(|identity| identity.external_id.clone());
        let phone = profile.client.phone.clone();
        if user_id.is_none() && phone.is_none() {
            return Err(SendError::NoContact);
        }
        let enabled: Vec<&Integration> = telegram.iter().filter(|i| i.is_enabled).collect();
        let order: Vec<&Integration> = match scope {
            Scope::Pinned { integration_id, .. } => enabled
                .into_iter()
                .filter(|i| &i.id == integration_id)
                .collect(),
            Scope::Auto => {
                let mut rest = enabled;
                // Primary first, then the oldest: a stable order for the fallback chain.
                rest.sort_by_key(|i| (!i.is_primary, i.created_at, i.id.to_string()));
                let memo = profile.route(CHANNEL);
                let start = memo
                    .and_then(|m| rest.iter().position(|i| i.id == m.integration_id))
                    .unwrap_or(0);
                if start < rest.len() {
                    let first = rest.remove(start);
                    rest.insert(0, first);
                }
                rest
            }
        };
        if order.is_empty() {
            return Err(SendError::NoIntegration);
        }
        let memo = profile.route(CHANNEL);
        let mut routes = Vec::new();
        for integration in order {
            let Some(provider) = providers.find(&integration.provider) else {
                continue;
            };
            let mut kinds = vec![RecipientKind::UserId, RecipientKind::Phone];
            // The way that worked last time goes first on its integration.
            if memo.is_some_and(|m| {
                m.integration_id == integration.id && m.recipient_kind == RecipientKind::Phone
            }) {
                kinds.reverse();
            }
            for kind in kinds {
                let value = match kind {
                    RecipientKind::UserId => user_id.clone(),
                    RecipientKind::Phone => phone.clone(),
                    RecipientKind::Chat => None,
                };
                if let Some(value) = value
                    && provider.addresses(kind)
                {
                    routes.push(Route {
                        integration_id: integration.id.clone(),
                        recipient: Recipient { kind, value },
                    });
                }
            }
        }
        Ok(routes)
    }

    /// The tenant's integrations on a channel that a provider here can send through.
    async fn channel_integrations(
        &self,
        tenant: &TenantId,
        channel: &str,
    ) -> Result<BTreeMap<IntegrationId, Integration>, RepoError> {
        Ok(self
            .integrations
            .list(tenant)
            .await?
            .into_iter()
            .filter(|i| sends_on(i, channel, &self.providers))
            .map(|i| (i.id.clone(), i))
            .collect())
    }

    /// Sends `request` now, or queues it after a transient failure.
    pub async fn send(&self, request: &SendRequest) -> Result<SendOutcome, SendError> {
        let tenant = &request.tenant_id;
        let profile = self
            .inbox
            .client_profile(tenant, &request.client_id)
            .await?
            .ok_or(SendError::ClientNotFound)?;
        let integrations = self.channel_integrations(tenant, CHANNEL).await?;
        if let Scope::Pinned {
            integration_id,
            provider,
        } = &request.scope
        {
            let integration = integrations
                .get(integration_id)
                .ok_or(SendError::IntegrationNotFound)?;
            if let Some(provider) = provider
                && integration.provider != *provider
            {
                return Err(SendError::WrongProvider(provider));
            }
            if !integration.is_enabled {
                return Err(SendError::IntegrationDisabled);
            }
        }
        let list: Vec<Integration> = integrations.values().cloned().collect();
        let routes = Self::plan(&profile, &list, &request.scope, &self.providers)?;
        let mut attempts = Vec::new();
        let content = keyed(&request.content, &request.message_id);
        let walk = self
            .walk(
                &integrations,
                &routes,
                &content,
                Mode::Request,
                &mut attempts,
            )
            .await?;
        match walk {
            Walk::Sent {
                index,
                provider_message_id,
            } => {
                let route = &routes[index];
                let fallback_used = routes[..index]
                    .iter()
                    .any(|r| r.integration_id != route.integration_id);
                if fallback_used {
                    Metrics::provider(integrations[&route.integration_id].provider.as_str())
                        .count(metric::FALLBACK_USED, 1)
                        .emit();
                }
                let message = self
                    .record_sent(
                        &profile,
                        &integrations[&route.integration_id],
                        route,
                        &request.message_id,
                        &request.content,
                        provider_message_id,
                        attempts,
                        None,
                    )
                    .await?;
                Ok(SendOutcome::Sent {
                    message: Box::new(message),
                    fallback_used,
                })
            }
            Walk::Transient { index, retry_after } => {
                let message = self
                    .queue(
                        &profile,
                        &integrations,
                        &routes[index..],
                        request,
                        attempts,
                        retry_after,
                    )
                    .await?;
                Ok(SendOutcome::Queued {
                    message: Box::new(message),
                })
            }
            Walk::Rejected(reason) => {
                failed_metric(&integrations, &routes);
                Ok(SendOutcome::Rejected { reason, attempts })
            }
            Walk::Exhausted => {
                failed_metric(&integrations, &routes);
                Ok(SendOutcome::NotFound { attempts })
            }
        }
    }

    /// Tries the routes in order until one sends, one refuses for good, or one fails
    /// transiently (after in-place retries in a request).
    async fn walk(
        &self,
        integrations: &BTreeMap<IntegrationId, Integration>,
        routes: &[Route],
        content: &Outgoing,
        mode: Mode,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Walk, RepoError> {
        let mut broken: BTreeSet<IntegrationId> = BTreeSet::new();
        let mut configs = BTreeMap::new();
        let started = Instant::now();
        for (index, route) in routes.iter().enumerate() {
            if broken.contains(&route.integration_id) {
                continue;
            }
            if mode == Mode::Request && started.elapsed() >= REQUEST_BUDGET {
                return Ok(Walk::Transient {
                    index,
                    retry_after: None,
                });
            }
            let Some(integration) = integrations
                .get(&route.integration_id)
                .filter(|i| i.is_enabled)
            else {
                continue;
            };
            let Some(provider) = self
                .providers
                .find(&integration.provider)
                .filter(|p| p.addresses(route.recipient.kind))
            else {
                continue;
            };
            if !configs.contains_key(&integration.id) {
                let config = self.integrations.open(integration).await?;
                configs.insert(integration.id.clone(), config);
            }
            let config = &configs[&integration.id];
            if let Some(wait) = self.pace(integration, &route.recipient).await? {
                return Ok(Walk::Transient {
                    index,
                    retry_after: Some(wait),
                });
            }
            // The route being tried, on the caller's `send`/`outbound` span.
            let span = tracing::Span::current();
            span.record("integration_id", integration.id.as_str());
            span.record("provider", integration.provider.as_str());
            let mut tries = 0;
            let result = loop {
                let started = Instant::now();
                let result = provider.send(config, &route.recipient, content).await;
                let elapsed = started.elapsed();
                tries += 1;
                let (outcome, reason) = match &result {
                    Ok(_) => (AttemptOutcome::Sent, None),
                    Err(e) => (outcome_of(e), Some(e.reason())),
                };
                attempts.push(Attempt {
                    integration_id: integration.id.clone(),
                    provider: integration.provider.clone(),
                    recipient_kind: route.recipient.kind,
                    outcome,
                    reason,
                    duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    at: self.clock.now(),
                });
                Metrics::provider(integration.provider.as_str())
                    .count(
                        match outcome {
                            AttemptOutcome::Sent => metric::SENT,
                            _ => metric::PROVIDER_ERROR,
                        },
                        1,
                    )
                    .millis(metric::LATENCY, elapsed.as_secs_f64() * 1000.0)
                    .emit();
                tracing::info!(
                    tenant_id = %integration.tenant_id,
                    integration_id = %integration.id,
                    provider = integration.provider,
                    recipient_kind = route.recipient.kind.as_str(),
                    outcome = ?outcome,
                    "outbound send attempt"
                );
                match &result {
                    Err(ProviderError::Transient { retry_after, .. })
                        if mode == Mode::Request && tries < IN_REQUEST_TRIES =>
                    {
                        let wait = retry_after.unwrap_or_else(|| retry_delay(tries));
                        if wait > IN_REQUEST_WAIT_CAP {
                            break result;
                        }
                        tokio::time::sleep(wait).await;
                    }
                    _ => break result,
                }
            };
            match result {
                Ok(provider_message_id) => {
                    return Ok(Walk::Sent {
                        index,
                        provider_message_id,
                    });
                }
                Err(ProviderError::RecipientUnreachable(_)) => {}
                Err(ProviderError::Auth(reason)) => {
                    broken.insert(integration.id.clone());
                    self.mark_broken(integration, &reason).await;
                }
                Err(ProviderError::Transient { retry_after, .. }) => {
                    return Ok(Walk::Transient { index, retry_after });
                }
                Err(ProviderError::Rejected(reason)) => return Ok(Walk::Rejected(reason)),
            }
        }
        Ok(Walk::Exhausted)
    }

    /// Waits for a provider's per-dialog rate (MAX: 2 messages per second per chat); the
    /// wait still needed after a few tries when the chat stays busy.
    async fn pace(
        &self,
        integration: &Integration,
        to: &Recipient,
    ) -> Result<Option<Duration>, RepoError> {
        const PER_SECOND: &[(&str, u32)] = &[("max", 2)];
        let Some((_, limit)) = PER_SECOND.iter().find(|(p, _)| *p == integration.provider) else {
            return Ok(None);
        };
        let key = format!("send:{}:{}", integration.id, to.value);
        for _ in 0..3 {
            match self
                .rate_limiter
                .hit(&integration.tenant_id, &key, *limit, 1)
                .await?
            {
                None => return Ok(None),
                Some(_) => tokio::time::sleep(Duration::from_millis(400)).await,
            }
        }
        Ok(Some(Duration::from_secs(1)))
    }

    /// Marks an integration `error` with the reason; a concurrent change wins (logged).
    async fn mark_broken(&self, integration: &Integration, reason: &str) {
        let mut changed = integration.clone();
        changed.status = IntegrationStatus::Error;
        changed.last_error = Some(reason.to_owned());
        if let Err(e) = self.integrations.save(&mut changed).await {
            tracing::warn!(integration_id = %integration.id, error = %e, "integration not marked as error");
        } else {
            tracing::warn!(integration_id = %integration.id, provider = integration.provider, "integration marked as error: the provider refused its credentials");
        }
    }

    fn dialog_for(
        &self,
        profile: &ClientProfile,
        integration: &Integration,
        recipient: &Recipient,
    ) -> (DialogId, Option<Dialog>) {
        let id = Dialog::id_for(&integration.id, &profile.client.id);
        let new = (!profile.has_dialog(&id)).then(|| Dialog {
            id: id.clone(),
            tenant_id: integration.tenant_id.clone(),
            client_id: profile.client.id.clone(),
            integration_id: integration.id.clone(),
            channel: channel_of(integration),
            provider: integration.provider.clone(),
            chat_id: recipient.value.clone(),
            created_at: self.clock.now(),
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: None,
            unread_count: 0,
        });
        (id, new)
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        id: &MessageId,
        dialog: DialogId,
        client: &ClientId,
        integration: &Integration,
        content: &Outgoing,
        status: DeliveryStatus,
        provider_message_id: Option<String>,
        attempts: Vec<Attempt>,
        now: Timestamp,
    ) -> Message {
        Message {
            id: id.clone(),
            tenant_id: integration.tenant_id.clone(),
            dialog_id: dialog,
            client_id: client.clone(),
            integration_id: integration.id.clone(),
            channel: channel_of(integration),
            provider: integration.provider.clone(),
            direction: Direction::Outbound,
            kind: if content.template.is_some() {
                "template".into()
            } else {
                "message".into()
            },
            text: content.text.clone(),
            attachments: attachment(content),
            payload: content.template.as_ref().map(|t| t.name.clone()),
            provider_message_id,
            reply_to: None,
            status: Some(status),
            status_reason: None,
            sent_at: now,
            created_at: now,
            edited_at: None,
            attempts,
        }
    }

    /// Stores a sent message in the dialog of the integration actually used, with the
    /// attempt log, and remembers the route for the client's next send.
    #[allow(clippy::too_many_arguments)]
    async fn record_sent(
        &self,
        profile: &ClientProfile,
        integration: &Integration,
        route: &Route,
        id: &MessageId,
        content: &Outgoing,
        provider_message_id: String,
        attempts: Vec<Attempt>,
        placeholder: Option<&DialogId>,
    ) -> Result<Message, RepoError> {
        let now = self.clock.now();
        let (dialog, new_dialog) = self.dialog_for(profile, integration, &route.recipient);
        let message = self.message(
            id,
            dialog,
            &profile.client.id,
            integration,
            content,
            DeliveryStatus::Sent,
            Some(provider_message_id),
            attempts,
            now,
        );
        let memo = RouteMemo {
            channel: channel_of(integration),
            integration_id: integration.id.clone(),
            recipient_kind: route.recipient.kind,
            at: now,
        };
        let record = OutboundRecord {
            message: &message,
            new_dialog: new_dialog.as_ref(),
            route: Some(&memo),
            placeholder,
        };
        // The provider has the message: a failure to record it makes the caller's retry
        // (the client's, or the queue's) send it again, so a retryable one is retried here.
        // Repeating the record changes nothing (its writes are conditional).
        let mut tries = 1;
        loop {
            match self.inbox.record_outbound(&record).await {
                Err(RepoError::Table(e)) if e.is_retryable() && tries < RECORD_TRIES => {
                    tracing::warn!(error = %e, tries, "sent message not recorded yet; retried");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
                    tries += 1;
                }
                other => {
                    other?;
                    return Ok(message);
                }
            }
        }
    }

    /// Stores a `queued` placeholder in the dialog of the route that failed transiently
    /// and puts the remaining routes on the outbound queue, delayed by `retry_after`.
    async fn queue(
        &self,
        profile: &ClientProfile,
        integrations: &BTreeMap<IntegrationId, Integration>,
        routes: &[Route],
        request: &SendRequest,
        attempts: Vec<Attempt>,
        retry_after: Option<Duration>,
    ) -> Result<Message, SendError> {
        let first = &routes[0];
        let integration = &integrations[&first.integration_id];
        let (dialog, new_dialog) = self.dialog_for(profile, integration, &first.recipient);
        let message = self.message(
            &request.message_id,
            dialog.clone(),
            &profile.client.id,
            integration,
            &request.content,
            DeliveryStatus::Queued,
            None,
            attempts,
            self.clock.now(),
        );
        self.inbox
            .record_outbound(&OutboundRecord {
                message: &message,
                new_dialog: new_dialog.as_ref(),
                route: None,
                placeholder: None,
            })
            .await?;
        let job = OutboundJob {
            channel: CHANNEL.into(),
            message_id: request.message_id.clone(),
            tenant_id: request.tenant_id.clone(),
            client_id: request.client_id.clone(),
            content: keyed(&request.content, &request.message_id),
            routes: routes.to_vec(),
            placeholder_dialog: dialog.clone(),
        };
        let delay = retry_after.unwrap_or(DEFAULT_REQUEUE).min(MAX_DELAY);
        self.enqueue(&job, Some(delay), &message.attempts).await?;
        Metrics::provider(integration.provider.as_str())
            .count(metric::QUEUED, 1)
            .emit();
        Ok(message)
    }

    /// Puts a job on the outbound queue; if the queue refuses it, its `queued`
    /// placeholder ends `failed` (nothing would ever deliver it) and the error is returned.
    async fn enqueue(
        &self,
        job: &OutboundJob,
        delay: Option<Duration>,
        attempts: &[Attempt],
    ) -> Result<(), SendError> {
        let mut message = OutgoingMessage::json(job)?;
        if let Some(delay) = delay {
            message = message.delayed(delay);
        }
        if let Err(e) = self.outbound.send(message).await {
            self.inbox
                .fail(
                    &job.tenant_id,
                    &job.placeholder_dialog,
                    &job.message_id,
                    "the outbound queue was unavailable",
                    attempts,
                )
                .await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// Whether the message of a job whose placeholder is gone sits in the dialog of one of
    /// its routes: a delivery through another integration than the placeholder's moved it
    /// there. The worker keeps no completed claim, so this is what stops a second copy of
    /// the job from sending it again.
    async fn delivered_elsewhere(&self, job: &OutboundJob) -> Result<bool, RepoError> {
        for route in &job.routes {
            let dialog = Dialog::id_for(&route.integration_id, &job.client_id);
            if dialog != job.placeholder_dialog
                && self
                    .inbox
                    .message(&job.tenant_id, &dialog, &job.message_id)
                    .await?
                    .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Delivers a queued message: the worker's side of a transient failure. Idempotent:
    /// a message whose placeholder is no longer `queued` was handled before.
    pub async fn deliver(
        &self,
        job: &OutboundJob,
        receive_count: u32,
        max_receives: u32,
    ) -> Result<JobResult, RepoError> {
        let tenant = &job.tenant_id;
        let placeholder = self
            .inbox
            .message(tenant, &job.placeholder_dialog, &job.message_id)
            .await?;
        let mut attempts = match &placeholder {
            Some(p) if p.status != Some(DeliveryStatus::Queued) => return Ok(JobResult::Done),
            Some(p) => p.attempts.clone(),
            None => {
                if self.delivered_elsewhere(job).await? {
                    return Ok(JobResult::Done);
                }
                Vec::new()
            }
        };
        let Some(profile) = self.inbox.client_profile(tenant, &job.client_id).await? else {
            return Ok(JobResult::Dead("the client no longer exists".into()));
        };
        let integrations = self.channel_integrations(tenant, &job.channel).await?;
        let content = keyed(&job.content, &job.message_id);
        let walk = self
            .walk(
                &integrations,
                &job.routes,
                &content,
                Mode::Worker,
                &mut attempts,
            )
            .await?;
        match walk {
            Walk::Sent {
                index,
                provider_message_id,
            } => {
                let route = &job.routes[index];
                // Delivered through another integration than the first one tried (by the
                // request that queued it, or by an earlier delivery).
                if attempts
                    .first()
                    .is_some_and(|a| a.integration_id != route.integration_id)
                {
                    Metrics::provider(integrations[&route.integration_id].provider.as_str())
                        .count(metric::FALLBACK_USED, 1)
                        .emit();
                }
                self.record_sent(
                    &profile,
                    &integrations[&route.integration_id],
                    route,
                    &job.message_id,
                    &job.content,
                    provider_message_id,
                    attempts,
                    placeholder.as_ref().map(|p| &p.dialog_id),
                )
                .await?;
                Ok(JobResult::Done)
            }
            Walk::Transient { retry_after, .. } if receive_count < max_receives => {
                self.inbox
                    .set_attempts(tenant, &job.placeholder_dialog, &job.message_id, &attempts)
                    .await?;
                let backoff = crate::worker::backoff(receive_count);
                Metrics::provider(self.job_provider(job).await)
                    .count(metric::QUEUED, 1)
                    .emit();
                Ok(JobResult::Retry(
                    retry_after
                        .map_or(backoff, |r| r.max(backoff))
                        .min(MAX_DELAY),
                ))
            }
            Walk::Transient { .. } => {
                let reason = attempts
                    .last()
                    .and_then(|a| a.reason.clone())
                    .unwrap_or_else(|| "the provider stayed unavailable".into());
                let reason = format!("gave up after {receive_count} deliveries: {reason}");
                self.give_up(job, &reason, &attempts).await?;
                Ok(JobResult::Dead(reason))
            }
            Walk::Rejected(reason) => {
                self.give_up(job, &reason, &attempts).await?;
                Ok(JobResult::Done)
            }
            Walk::Exhausted => {
                let reason = if job.channel == CHANNEL {
                    NOT_FOUND_MESSAGE.to_owned()
                } else {
                    attempts
                        .last()
                        .and_then(|a| a.reason.clone())
                        .unwrap_or_else(|| "the dialog's integration is disabled or gone".into())
                };
                self.give_up(job, &reason, &attempts).await?;
                Ok(JobResult::Done)
            }
        }
    }

    /// The provider a queued message counts under in metrics: that of its first route's
    /// integration (the one it was queued on; a reply's dialog integration), else its
    /// channel when that integration is gone.
    pub async fn job_provider(&self, job: &OutboundJob) -> String {
        let Some(route) = job.routes.first() else {
            return job.channel.clone();
        };
        match self
            .integrations
            .get(&job.tenant_id, &route.integration_id)
            .await
        {
            Ok(Some(integration)) => integration.provider,
            _ => job.channel.clone(),
        }
    }

    /// Ends a queued message as `failed` with the reason.
    pub async fn give_up(
        &self,
        job: &OutboundJob,
        reason: &str,
        attempts: &[Attempt],
    ) -> Result<(), RepoError> {
        Metrics::provider(self.job_provider(job).await)
            .count(metric::FAILED, 1)
            .emit();
        self.inbox
            .fail(
                &job.tenant_id,
                &job.placeholder_dialog,
                &job.message_id,
                reason,
                attempts,
            )
            .await
    }

    /// Queues a reply in a dialog: it leaves only through the dialog's own integration, to
    /// the dialog's chat, delivered by the outbound worker. The `queued` message is stored
    /// in the dialog first (so it shows at once), then the job is sent.
    pub async fn queue_reply(
        &self,
        dialog: &Dialog,
        integration: &Integration,
        message_id: &MessageId,
        content: &Outgoing,
    ) -> Result<Message, SendError> {
        let mut message = self.message(
            message_id,
            dialog.id.clone(),
            &dialog.client_id,
            integration,
            content,
            DeliveryStatus::Queued,
            None,
            Vec::new(),
            self.clock.now(),
        );
        // The dialog's own network, as its inbound messages name it.
        message.channel = dialog.channel.clone();
        let fresh = self
            .inbox
            .record_outbound(&OutboundRecord {
                message: &message,
                new_dialog: None,
                route: None,
                placeholder: None,
            })
            .await?;
        if !fresh {
            // Stored by an earlier attempt of the same request: answer what it stored.
            if let Some(stored) = self
                .inbox
                .message(&dialog.tenant_id, &dialog.id, message_id)
                .await?
            {
                message = stored;
            }
        }
        let job = OutboundJob {
            channel: dialog.channel.clone(),
            message_id: message_id.clone(),
            tenant_id: dialog.tenant_id.clone(),
            client_id: dialog.client_id.clone(),
            content: keyed(content, message_id),
            routes: vec![Route {
                integration_id: integration.id.clone(),
                recipient: Recipient {
                    kind: RecipientKind::Chat,
                    value: dialog.chat_id.clone(),
                },
            }],
            placeholder_dialog: dialog.id.clone(),
        };
        self.enqueue(&job, None, &[]).await?;
        Ok(message)
    }
}
