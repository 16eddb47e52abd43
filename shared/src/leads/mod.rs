//! Lead delivery targets (SPEC §6 "Lead fan-out", seed 001): one [`LeadTarget`] module per
//! integration type, found by name in [`LeadTargets`]. Each module classifies its own
//! errors into a [`ProviderError`]: *transient* (429 with Retry-After, Bitrix24
//! `QUERY_LIMIT_EXCEEDED`, 5xx, timeouts) is retried with backoff; *auth* and *rejected*
//! (401, validation) fail at once with the reason.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::config::ProviderUrls;
use crate::domain::lead::Lead;
use crate::egress::TargetClient;
use crate::providers::ProviderError;
use crate::repo::integrations::{Integration, OpenConfig};

pub mod amocrm;
pub mod bitrix24;
pub mod email;
pub mod telegram;
pub mod webhooks;

/// Integration types that leads may name but that are not delivered yet (seed 001):
/// skipped and reported.
pub const NOT_YET_SUPPORTED: [&str; 5] = [
    "getresponse",
    "sendpulse",
    "unisender",
    "lptracker",
    "uontravel",
];

/// Where a target puts credentials the provider rotated (amoCRM's refresh tokens) the
/// moment it gets them, before its next call: if that call fails, the new pair is
/// already sealed into the integration and the next attempt — in any process — uses it.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Seals these config fields into the integration (best effort; a failure is logged).
    async fn save(&self, update: BTreeMap<String, String>);
}

/// A store that keeps nothing (tests, and callers that seal `LeadSent::config_update`).
pub struct Discard;

#[async_trait]
impl CredentialStore for Discard {
    async fn save(&self, _: BTreeMap<String, String>) {}
}

/// What a target is given for one delivery.
pub struct LeadContext<'a> {
    pub lead: &'a Lead,
    pub integration: &'a Integration,
    /// Stable across the retries of one delivery round (`lead × integration × round`):
    /// the `webhook-id` of a signed webhook, a dedupe key wherever a target takes one.
    pub delivery_id: &'a str,
    pub credentials: &'a dyn CredentialStore,
}

/// A delivered lead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadSent {
    /// The id the target gave the lead (a CRM lead id), if any.
    pub external_id: Option<String>,
    /// Config fields to seal back into the integration (amoCRM's refreshed tokens).
    pub config_update: BTreeMap<String, String>,
}

#[async_trait]
pub trait LeadTarget: Send + Sync {
    /// The integration type (= registry provider name) it delivers to.
    fn name(&self) -> &'static str;
    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError>;
}

/// A required config field; its absence is a broken integration.
pub fn field<'a>(config: &'a OpenConfig, name: &str) -> Result<&'a str, ProviderError> {
    config
        .get(name)
        .map(|v| v.expose().as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ProviderError::Auth(format!("the integration's config lacks {name}")))
}

/// Every supported lead target, by integration type.
pub struct LeadTargets {
    targets: BTreeMap<&'static str, Box<dyn LeadTarget>>,
}

impl LeadTargets {
    /// Provider APIs on the configured bases share `targets`' client; URLs the tenant
    /// chose (Bitrix24 `webhook_url`, `webhooks` endpoints) go through the SSRF guard.
    pub fn new(targets: TargetClient, urls: &ProviderUrls) -> Self {
        let list: Vec<Box<dyn LeadTarget>> = target_list(targets, urls);
        Self {
            targets: list.into_iter().map(|t| (t.name(), t)).collect(),
        }
    }

    pub fn find(&self, kind: &str) -> Option<&dyn LeadTarget> {
        self.targets.get(kind).map(Box::as_ref)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.targets.keys().copied().collect()
    }
}

/// The target list: one line per target module.
fn target_list(targets: TargetClient, urls: &ProviderUrls) -> Vec<Box<dyn LeadTarget>> {
    let http = targets.http().clone();
    vec![
        Box::new(amocrm::AmoCrmTarget::new(http.clone(), urls.amocrm.clone())),
        Box::new(webhooks::WebhooksTarget::new(targets.policy())),
        Box::new(bitrix24::Bitrix24Target::new(targets)),
        Box::new(email::Email::new(urls)),
        Box::new(telegram::TelegramTarget::new(http, &urls.telegram)),
    ]
}
pub mod service;
