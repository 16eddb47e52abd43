//! Sending through a channel integration: one [`ChannelProvider`] per provider, found by
//! name in [`ChannelProviders`]. Each provider module classifies its own errors into a
//! [`ProviderError`]; routing and retries decide from that class only.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::ProviderUrls;
pub use crate::domain::inbox::RecipientKind;
use crate::egress::TargetClient;
use crate::providers::ProviderError;
use crate::providers::telegram_bot::TelegramBotApi;
use crate::providers::telegram_crm::{FileByUrl, Peer, TelegramCrmApi};
use crate::providers::wappi::WappiApi;
use crate::repo::integrations::OpenConfig;
use crate::secret::Secret;

/// A file sent by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// MIME type (`image/png`, `application/pdf`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// What to send: a text, a file, or a file with the text as its caption.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
    /// A pre-approved template instead of free text (WhatsApp, outside the 24-hour
    /// window); other providers never get one (the API refuses it before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// Our message's id: providers that deduplicate on a caller's key (VK `random_id`)
    /// derive it from this, so a retry of the message cannot be delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
}

/// A WhatsApp message template by name and language code (`en_US`, `ru`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub language: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub kind: RecipientKind,
    pub value: String,
}

#[async_trait]
pub trait ChannelProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether this provider can address a recipient of this kind at all (a bot cannot
    /// write to a phone number); the router never tries one it cannot.
    fn addresses(&self, kind: RecipientKind) -> bool;
    /// Sends; the provider's message id on success.
    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError>;
}

/// A required config field; its absence is a broken integration, not a bad request.
fn field<'a>(config: &'a OpenConfig, name: &str) -> Result<&'a Secret<String>, ProviderError> {
    config
        .get(name)
        .filter(|v| !v.expose().is_empty())
        .ok_or_else(|| ProviderError::Auth(format!("the integration's config lacks {name}")))
}

/// Wappi personal account: by user id or by phone (digits, no `+`).
pub struct Wappi(pub WappiApi);

#[async_trait]
impl ChannelProvider for Wappi {
    fn name(&self) -> &'static str {
        "wappi"
    }

    fn addresses(&self, _: RecipientKind) -> bool {
        true
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        let recipient = match to.kind {
            RecipientKind::UserId | RecipientKind::Chat => to.value.clone(),
            RecipientKind::Phone => to.value.trim_start_matches('+').to_owned(),
        };
        self.0
            .send(
                field(config, "api_token")?,
                field(config, "profile_id")?.expose(),
                &recipient,
                message.text.as_deref(),
                message
                    .file
                    .as_ref()
                    .map(|f| (f.url.as_str(), f.name.as_deref())),
            )
            .await
    }
}

/// The Telegram CRM user-bot gateway: by user id or by phone (E.164).
pub struct TelegramCrm(pub TelegramCrmApi);

#[async_trait]
impl ChannelProvider for TelegramCrm {
    fn name(&self) -> &'static str {
        "telegram_crm"
    }

    fn addresses(&self, _: RecipientKind) -> bool {
        true
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        let peer = match to.kind {
            RecipientKind::UserId | RecipientKind::Chat => Peer::UserId(&to.value),
            RecipientKind::Phone => Peer::Phone(&to.value),
        };
        self.0
            .send(
                field(config, "api_base")?.expose(),
                field(config, "api_token")?,
                field(config, "account_id")?.expose(),
                peer,
                message.text.as_deref(),
                message.file.as_ref().map(|f| FileByUrl {
                    url: &f.url,
                    name: f.name.as_deref(),
                    mime_type: f.mime_type.as_deref(),
                }),
            )
            .await
    }
}

/// A Telegram bot: only to users who started it (chat id = user id); never by phone.
pub struct TelegramBot(pub TelegramBotApi);

#[async_trait]
impl ChannelProvider for TelegramBot {
    fn name(&self) -> &'static str {
        "telegram_bot"
    }

    fn addresses(&self, kind: RecipientKind) -> bool {
        kind != RecipientKind::Phone
    }

    async fn send(
        &self,
        config: &OpenConfig,
        to: &Recipient,
        message: &Outgoing,
    ) -> Result<String, ProviderError> {
        self.0
            .send(
                field(config, "bot_token")?,
                &to.value,
                message.text.as_deref(),
                message
                    .file
                    .as_ref()
                    .map(|f| (f.url.as_str(), f.mime_type.as_deref())),
            )
            .await
    }
}

/// Every channel provider that can send, by name.
pub struct ChannelProviders {
    providers: BTreeMap<&'static str, Box<dyn ChannelProvider>>,
}

impl ChannelProviders {
    /// Provider APIs on the configured bases share `targets`' client; the Telegram CRM
    /// gateway's `api_base` is the tenant's and goes through the SSRF guard.
    pub fn new(targets: TargetClient, urls: &ProviderUrls) -> Self {
        use super::channels::{Max, Viber, Vk, WhatsApp};
        use crate::providers::{max::MaxApi, viber::ViberApi, vk::VkApi, whatsapp::WhatsAppApi};
        let http = targets.http().clone();
        let list: Vec<Box<dyn ChannelProvider>> = vec![
            Box::new(Wappi(WappiApi::new(http.clone(), &urls.wappi))),
            Box::new(TelegramCrm(TelegramCrmApi::new(targets))),
            Box::new(TelegramBot(TelegramBotApi::new(
                http.clone(),
                &urls.telegram,
            ))),
            Box::new(Max(MaxApi::new(http.clone(), &urls.max))),
            Box::new(WhatsApp(WhatsAppApi::new(http.clone(), &urls.whatsapp))),
            Box::new(Viber(ViberApi::new(http.clone(), &urls.viber))),
            Box::new(Vk(VkApi::new(http, &urls.vk))),
        ];
        Self {
            providers: list.into_iter().map(|p| (p.name(), p)).collect(),
        }
    }

    pub fn find(&self, name: &str) -> Option<&dyn ChannelProvider> {
        self.providers.get(name).map(Box::as_ref)
    }
}
