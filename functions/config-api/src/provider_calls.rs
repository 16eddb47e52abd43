//! The provider calls config-api makes: live checks and webhook registration. Each returns
//! `None` when the provider has no such call (yet), so callers can say so plainly.

use serde_json::{Value, json};
use shared::Secret;
use shared::providers::ProviderError;
use shared::repo::integrations::{Integration, OpenConfig};

use crate::Deps;

fn field<'a>(config: &'a OpenConfig, key: &str) -> Result<&'a Secret<String>, ProviderError> {
    config
        .get(key)
        .ok_or_else(|| ProviderError::Auth(format!("{key} is missing from the config")))
}

/// The URL providers deliver this integration's webhooks to.
pub fn webhook_url(deps: &Deps, integration: &Integration) -> Option<String> {
    deps.public_base_url.as_ref().map(|base| {
        format!(
            "{base}/v1/webhooks/{}/{}",
            integration.provider, integration.id
        )
    })
}

/// Whether connecting this provider registers a webhook with it.
pub fn registers_webhook(provider: &str) -> bool {
    matches!(provider, "telegram_bot" | "max")
}

/// A real call that proves the credentials work: Telegram `getMe`, MAX `GET /me`,
/// WhatsApp phone-number lookup, Bitrix24 `profile`, amoCRM `GET /api/v4/account`.
pub async fn live_check(
    deps: &Deps,
    integration: &Integration,
    config: &OpenConfig,
) -> Option<Result<Value, ProviderError>> {
    Some(match integration.provider.as_str() {
        "telegram_bot" => match field(config, "bot_token") {
            Ok(token) => deps.telegram.get_me(token).await.map(|me| {
                json!({"bot_id": me.id, "username": me.username, "first_name": me.first_name})
            }),
            Err(e) => Err(e),
        },
        "max" => match field(config, "access_token") {
            Ok(token) => deps
                .max
                .get_me(token)
                .await
                .map(|me| json!({"bot_id": me.user_id.to_string(), "username": me.username, "name": me.name})),
            Err(e) => Err(e),
        },
        "whatsapp" => match (field(config, "access_token"), field(config, "phone_number_id")) {
            (Ok(token), Ok(phone)) => deps
                .whatsapp
                .phone_number(token, phone.expose())
                .await
                .map(|n| json!({"phone_number_id": n.id, "display_phone_number": n.display_phone_number, "verified_name": n.verified_name})),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "bitrix24" => match field(config, "webhook_url") {
            Ok(url) => deps
                .bitrix24
                .profile(url)
                .await
                .map(|p| json!({"user_id": p["ID"], "admin": p["ADMIN"]})),
            Err(e) => Err(e),
        },
        "amocrm" => match (field(config, "subdomain"), field(config, "access_token")) {
            (Ok(subdomain), Ok(token)) => deps
                .amocrm
                .account(subdomain.expose(), token)
                .await
                .map(|a| json!({"account_id": a.id, "name": a.name, "subdomain": a.subdomain})),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        _ => return None,
    })
}

/// Registers the webhook (`setWebhook` / `POST /subscriptions`) with the integration's
/// `webhook_secret`.
pub async fn register(
    deps: &Deps,
    integration: &Integration,
    config: &OpenConfig,
    url: &str,
) -> Result<(), ProviderError> {
    let secret = field(config, "webhook_secret")?;
    match integration.provider.as_str() {
        "telegram_bot" => {
            deps.telegram
                .set_webhook(field(config, "bot_token")?, url, secret)
                .await
        }
        "max" => {
            deps.max
                .subscribe(field(config, "access_token")?, url, secret)
                .await
        }
        _ => Ok(()),
    }
}

/// Removes the webhook (`deleteWebhook` / `DELETE /subscriptions`).
pub async fn unregister(
    deps: &Deps,
    integration: &Integration,
    config: &OpenConfig,
    url: &str,
) -> Result<(), ProviderError> {
    match integration.provider.as_str() {
        "telegram_bot" => {
            deps.telegram
                .delete_webhook(field(config, "bot_token")?)
                .await
        }
        "max" => {
            deps.max
                .unsubscribe(field(config, "access_token")?, url)
                .await
        }
        _ => Ok(()),
    }
}
