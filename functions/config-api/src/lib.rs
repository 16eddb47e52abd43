//! config-api: the dashboard's management API (SPEC §5, seed 003).
#![forbid(unsafe_code)]

mod api_keys;
mod bot_config;
mod integrations;
pub mod profile;
mod prompt;
mod provider_calls;
mod tenant;

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;
use shared::backend::{BackendError, Ports};
use shared::config::Config;
use shared::domain::registry::REGISTRY;
use shared::egress::{EgressPolicy, TargetClient};
use shared::http::{Access, ApiResponse, Authenticator, Roles, Router, Scope};
use shared::ports::Table;
use shared::providers::amocrm::AmoCrmApi;
use shared::providers::bitrix24::Bitrix24Api;
use shared::providers::max::MaxApi;
use shared::providers::telegram_bot::TelegramBotApi;
use shared::providers::whatsapp::WhatsAppApi;
use shared::repo::api_keys::ApiKeys;
use shared::repo::bot_webhook::BotWebhookSecrets;
use shared::repo::integration_logs::IntegrationLogs;
use shared::repo::integrations::Integrations;

/// Bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 256 * 1024;

pub struct Deps {
    pub table: Arc<dyn Table>,
    pub integrations: Integrations,
    pub logs: IntegrationLogs,
    pub api_keys: ApiKeys,
    pub bot_webhooks: BotWebhookSecrets,
    pub telegram: TelegramBotApi,
    pub max: MaxApi,
    pub whatsapp: WhatsAppApi,
    pub bitrix24: Bitrix24Api,
    pub amocrm: AmoCrmApi,
    /// What URL fields may point at (the SSRF guard's policy, `ALLOW_PRIVATE_TARGETS`).
    pub egress: EgressPolicy,
    /// Base of webhook URLs (`PUBLIC_BASE_URL`); `None` hides `webhook_url`.
    pub public_base_url: Option<String>,
    /// The one HTTP client of the function (each built client reads the TLS root store at
    /// init), shared by the provider APIs above and the Lambda authorizer's key fetches.
    pub http: reqwest::Client,
}

impl Deps {
    pub fn new(ports: &Ports, config: &Config) -> Result<Arc<Self>, BackendError> {
        let targets = TargetClient::new(config.egress);
        let http = targets.http().clone();
        Ok(Arc::new(Self {
            table: ports.table.clone(),
            integrations: Integrations::new(
                ports.table.clone(),
                ports.secrets()?,
                ports.clock.clone(),
            ),
            logs: IntegrationLogs::new(ports.table.clone(), ports.clock.clone()),
            api_keys: ApiKeys::new(ports.table.clone(), ports.clock.clone()),
            bot_webhooks: BotWebhookSecrets::new(ports.table.clone(), ports.secrets()?),
            telegram: TelegramBotApi::new(http.clone(), &config.providers.telegram),
            max: MaxApi::new(http.clone(), &config.providers.max),
            whatsapp: WhatsAppApi::new(http.clone(), &config.providers.whatsapp),
            bitrix24: Bitrix24Api::new(targets),
            amocrm: AmoCrmApi::new(http.clone(), config.providers.amocrm.clone()),
            egress: config.egress,
            public_base_url: config.public_base_url.clone(),
            http,
        }))
    }
}

pub fn router(deps: Arc<Deps>) -> Router {
    let auth = Arc::new(Authenticator::new(deps.api_keys.clone()));
    Router::new(Some(auth))
        .body_limit(BODY_LIMIT)
        .route(
            Method::GET,
            "/v1/registry",
            Access::Dashboard(Roles::ANY),
            |_, _| async {
                Ok(ApiResponse::json(
                    StatusCode::OK,
                    &json!({"items": REGISTRY, "next_cursor": null}),
                ))
            },
        )
        .route(
            Method::GET,
            "/v1/integrations",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, integrations::list),
        )
        .route(
            Method::POST,
            "/v1/integrations",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, integrations::connect),
        )
        .route(
            Method::GET,
            "/v1/integrations/{id}",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, integrations::get),
        )
        .route(
            Method::PATCH,
            "/v1/integrations/{id}",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, integrations::patch),
        )
        .route(
            Method::DELETE,
            "/v1/integrations/{id}",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, integrations::disconnect),
        )
        .route(
            Method::POST,
            "/v1/integrations/{id}/test",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, integrations::test),
        )
        .route(
            Method::GET,
            "/v1/integrations/{id}/logs",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, integrations::logs),
        )
        .route(
            Method::GET,
            "/v1/api-keys",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, api_keys::list),
        )
        .route(
            Method::POST,
            "/v1/api-keys",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, api_keys::create),
        )
        .route(
            Method::DELETE,
            "/v1/api-keys/{id}",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, api_keys::revoke),
        )
        .route(
            Method::GET,
            "/v1/profile",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, profile::get_profile),
        )
        .route(
            Method::PUT,
            "/v1/profile",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, profile::put_profile),
        )
        .route(
            Method::GET,
            "/v1/catalog",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, profile::get_catalog),
        )
        .route(
            Method::PUT,
            "/v1/catalog",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, profile::put_catalog),
        )
        .route(
            Method::GET,
            "/v1/prompt",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, prompt::get),
        )
        .route(
            Method::PUT,
            "/v1/prompt",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, prompt::put),
        )
        .route(
            Method::GET,
            "/v1/prompt/history",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, prompt::history),
        )
        .route(
            Method::POST,
            "/v1/prompt/restore",
            Access::Dashboard(Roles::MANAGERS),
            shared::handler!(deps, prompt::restore),
        )
        .route(
            Method::POST,
            "/v1/prompt/validate",
            Access::Dashboard(Roles::ANY),
            shared::handler!(deps, prompt::validate),
        )
        .route(
            Method::GET,
            "/v1/bot/config",
            Access::ApiKey(Scope::ConfigRead),
            shared::handler!(deps, bot_config::get),
        )
        .route(
            Method::DELETE,
            "/v1/tenant",
            Access::Dashboard(Roles::OWNER),
            shared::handler!(deps, tenant::delete),
        )
}
