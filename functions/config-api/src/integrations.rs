//! `/v1/integrations`: connect, list, read, change and disconnect integrations. Configs
//! are validated against the registry, sealed, and masked in every response.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::domain::IntegrationId;
use shared::domain::registry::{self, FieldError, IntegrationKind, IntegrationMeta};
use shared::domain::text;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal};
use shared::ports::TableError;
use shared::repo::RepoError;
use shared::repo::integrations::{self as repo, Integration, IntegrationStatus, OpenConfig};

use crate::Deps;
use crate::provider_calls::{self, registers_webhook, webhook_url};
use shared::ports::table::Cursor;
use shared::providers::ProviderError;

const MAX_NAME_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    provider: String,
    name: Option<String>,
    #[serde(default)]
    config: Map<String, Value>,
    is_enabled: Option<bool>,
    is_primary: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    config: Option<Map<String, Value>>,
    is_enabled: Option<bool>,
    is_primary: Option<bool>,
}

fn fields_error(errors: Vec<FieldError>) -> ApiError {
    ApiError::validation(
        "the integration config is not valid",
        json!({"fields": errors}),
    )
}

fn conflict(e: RepoError) -> ApiError {
    match e {
        RepoError::Table(TableError::ConditionFailed) => {
            ApiError::conflict("the integration was changed concurrently; reload and retry")
        }
        other => other.into(),
    }
}

fn meta_of(integration: &Integration) -> Result<&'static IntegrationMeta, ApiError> {
    registry::find(&integration.provider).ok_or_else(|| {
        tracing::error!(provider = %integration.provider, "stored integration of an unknown provider");
        ApiError::internal()
    })
}

fn clean_name(name: Option<String>, default: &str) -> Result<String, ApiError> {
    text::display_name(name.as_deref().unwrap_or(default), MAX_NAME_CHARS).map_err(|e| {
        ApiError::validation(
            format!("the name {e}"),
            json!({"fields": [{"field": "name", "code": e.code(), "message": e.to_string()}]}),
        )
    })
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| ApiError::internal())?;
    Ok(hex::encode(buf))
}

/// Fills the secrets the platform generates when the tenant gives none.
fn generate_secrets(
    meta: &IntegrationMeta,
    config: &mut BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if meta.field("webhook_secret").is_some() && !config.contains_key("webhook_secret") {
        config.insert("webhook_secret".into(), random_hex(32)?);
    }
    if meta.provider == "webhooks" && !config.contains_key("secret") {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| ApiError::internal())?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        config.insert("secret".into(), format!("whsec_{encoded}"));
    }
    Ok(())
}

/// What the dashboard shows next to an integration that needs attention (seed property 13).
pub fn warnings(integration: &Integration) -> Vec<String> {
    match integration.status {
        IntegrationStatus::Error => vec![format!(
            "Ошибка интеграции: {}",
            integration
                .last_error
                .as_deref()
                .unwrap_or("причина неизвестна")
        )],
        IntegrationStatus::Pending => vec!["Интеграция ожидает завершения подключения".to_owned()],
        IntegrationStatus::Active | IntegrationStatus::Inactive => Vec::new(),
    }
}

/// Secrets show only their last 4 characters; other fields as they are.
fn masked(meta: &IntegrationMeta, config: &OpenConfig) -> Map<String, Value> {
    config
        .iter()
        .map(|(key, value)| {
            let shown = match meta.field(key) {
                Some(field) if !field.is_secret() => value.expose().clone(),
                _ => value.masked(),
            };
            (key.clone(), Value::String(shown))
        })
        .collect()
}

async fn view(deps: &Deps, integration: &Integration) -> Result<Value, ApiError> {
    let meta = meta_of(integration)?;
    let config = deps.integrations.open(integration).await?;
    let webhook_url = match (&deps.public_base_url, meta.kind) {
        (Some(base), IntegrationKind::Channel) => Some(format!(
            "{base}/v1/webhooks/{}/{}",
            integration.provider, integration.id
        )),
        _ => None,
    };
    Ok(json!({
        "id": integration.id,
        "provider": integration.provider,
        "kind": integration.kind,
        "channel": integration.channel,
        "name": integration.name,
        "status": integration.status,
        "is_enabled": integration.is_enabled,
        "is_primary": integration.is_primary,
        "config": masked(meta, &config),
        "webhook_url": webhook_url,
        "last_error": integration.last_error,
        "last_sync_at": integration.last_sync_at,
        "warnings": warnings(integration),
        "created_at": integration.created_at,
        "updated_at": integration.updated_at,
    }))
}

async fn load(
    deps: &Deps,
    req: &ApiRequest,
    principal: &Principal,
) -> Result<Integration, ApiError> {
    let id = IntegrationId::parse(req.path_param("id")?)?;
    deps.integrations
        .get(principal.tenant()?, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))
}

pub async fn list(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let mut items = Vec::new();
    for integration in deps.integrations.list(principal.tenant()?).await? {
        items.push(view(deps, &integration).await?);
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

pub async fn get(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let integration = load(deps, &req, &principal).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view(deps, &integration).await?,
    ))
}

pub async fn connect(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let body: ConnectBody = req.json()?;
    let meta = registry::find(&body.provider).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_PROVIDER",
            format!(
                "there is no provider `{}`; see GET /v1/registry",
                body.provider
            ),
        )
    })?;
    let mut config = meta
        .validate(&body.config, deps.egress)
        .map_err(fields_error)?;
    generate_secrets(meta, &mut config)?;
    let name = clean_name(body.name, meta.name)?;
    let enabled = body.is_enabled.unwrap_or(true);
    let id = IntegrationId::generate();
    let now = deps.integrations.now();
    let integration = Integration {
        config: deps.integrations.seal(&tenant, &id, &config).await?,
        channel: repo::channel_of(meta, &config),
        id,
        tenant_id: tenant.clone(),
        kind: meta.kind,
        provider: meta.provider.to_owned(),
        name,
        status: if enabled {
            IntegrationStatus::Active
        } else {
            IntegrationStatus::Inactive
        },
        is_enabled: enabled,
        is_primary: false,
        last_error: None,
        last_sync_at: None,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    deps.integrations.insert(&integration).await?;
    tracing::info!(tenant_id = %tenant, integration_id = %integration.id, provider = meta.provider, "integration connected");
    if let (true, Some(channel)) = (enabled, &integration.channel) {
        let wanted = body.is_primary == Some(true);
        if wanted || deps.integrations.primary(&tenant, channel).await?.is_none() {
            deps.integrations
                .make_primary(&integration)
                .await
                .map_err(conflict)?;
        }
    }
    deps.logs
        .record(&tenant, &integration.id, "connected", Ok(()))
        .await;
    let mut stored = reload(deps, &integration).await?;
    if stored.is_enabled {
        sync_webhook(deps, &mut stored).await?;
    }
    Ok(ApiResponse::json(
        StatusCode::CREATED,
        &view(deps, &stored).await?,
    ))
}

/// Merges a partial config into the stored one: `null` removes a field, a masked secret
/// sent back unchanged keeps the stored secret.
fn merge(
    meta: &IntegrationMeta,
    stored: &OpenConfig,
    patch: Map<String, Value>,
) -> Map<String, Value> {
    let mut merged: Map<String, Value> = stored
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.expose().clone())))
        .collect();
    for (key, value) in patch {
        let unchanged_mask = match (&value, stored.get(&key), meta.field(&key)) {
            (Value::String(sent), Some(current), Some(field)) => {
                field.is_secret() && *sent == current.masked()
            }
            _ => false,
        };
        if unchanged_mask {
            continue;
        }
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    merged
}

async fn reload(deps: &Deps, integration: &Integration) -> Result<Integration, ApiError> {
    deps.integrations
        .get(&integration.tenant_id, &integration.id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))
}

/// Registers the webhook of an enabled integration whose provider needs one, and records
/// the outcome in its status: `active`, `error` with the provider's reason, or `pending`
/// when there is no public URL to register. A failed registration never loses the
/// integration and never answers 5xx.
async fn sync_webhook(deps: &Deps, integration: &mut Integration) -> Result<(), ApiError> {
    if !registers_webhook(&integration.provider) {
        return Ok(());
    }
    let (status, last_error) = match webhook_url(deps, integration) {
        None => (
            IntegrationStatus::Pending,
            Some("PUBLIC_BASE_URL is not configured, so the webhook is not registered".to_owned()),
        ),
        Some(url) => {
            let config = deps.integrations.open(integration).await?;
            let result = provider_calls::register(deps, integration, &config, &url).await;
            let outcome = result.as_ref().map(drop).map_err(ToString::to_string);
            deps.logs
                .record(
                    &integration.tenant_id,
                    &integration.id,
                    "webhook_registration",
                    outcome,
                )
                .await;
            match result {
                Ok(()) => (IntegrationStatus::Active, None),
                Err(e) => (
                    IntegrationStatus::Error,
                    Some(format!("webhook registration failed: {e}")),
                ),
            }
        }
    };
    if status == IntegrationStatus::Active {
        integration.last_sync_at = Some(deps.integrations.now());
    }
    integration.status = status;
    integration.last_error = last_error;
    deps.integrations.save(integration).await.map_err(conflict)
}

/// Removes the webhook of an integration that stops receiving; a failure is logged only.
async fn remove_webhook(deps: &Deps, integration: &Integration) {
    let Some(url) =
        webhook_url(deps, integration).filter(|_| registers_webhook(&integration.provider))
    else {
        return;
    };
    let outcome = match deps.integrations.open(integration).await {
        Ok(config) => provider_calls::unregister(deps, integration, &config, &url)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    deps.logs
        .record(
            &integration.tenant_id,
            &integration.id,
            "webhook_removal",
            outcome,
        )
        .await;
}

async fn apply_patch(
    deps: &Deps,
    mut integration: Integration,
    body: PatchBody,
) -> Result<Integration, ApiError> {
    let meta = meta_of(&integration)?;
    let was_enabled = integration.is_enabled;
    let config_changed = body.config.is_some();
    let tenant = integration.tenant_id.clone();
    if let Some(name) = body.name {
        integration.name = clean_name(Some(name), meta.name)?;
    }
    let mut released = false;
    if let Some(patch) = body.config {
        let stored = deps.integrations.open(&integration).await?;
        let mut config = meta
            .validate(&merge(meta, &stored, patch), deps.egress)
            .map_err(fields_error)?;
        generate_secrets(meta, &mut config)?;
        let channel = repo::channel_of(meta, &config);
        if channel != integration.channel && integration.is_primary {
            deps.integrations.release_primary(&integration).await?;
            integration.is_primary = false;
            released = true;
        }
        integration.channel = channel;
        integration.config = deps
            .integrations
            .seal(&tenant, &integration.id, &config)
            .await?;
    }
    match body.is_enabled {
        Some(false) => {
            integration.is_enabled = false;
            integration.status = IntegrationStatus::Inactive;
            integration.is_primary = false;
        }
        Some(true) if !integration.is_enabled => {
            integration.is_enabled = true;
            integration.status = IntegrationStatus::Active;
        }
        _ => {}
    }
    if body.is_primary == Some(false) {
        integration.is_primary = false;
    }
    if body.is_primary == Some(true) && !integration.is_enabled {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "PRIMARY_REQUIRES_ENABLED",
            "only an enabled integration can be primary",
        ));
    }
    deps.integrations
        .save(&mut integration)
        .await
        .map_err(conflict)?;
    if !integration.is_primary && !released {
        deps.integrations.release_primary(&integration).await?;
    }
    if body.is_primary == Some(true) {
        deps.integrations
            .make_primary(&integration)
            .await
            .map_err(conflict)?;
    }
    let mut updated = reload(deps, &integration).await?;
    if was_enabled && !updated.is_enabled {
        remove_webhook(deps, &updated).await;
    }
    if updated.is_enabled && (!was_enabled || config_changed) {
        sync_webhook(deps, &mut updated).await?;
    }
    let event = if was_enabled && !updated.is_enabled {
        "disconnected"
    } else {
        "updated"
    };
    deps.logs.record(&tenant, &updated.id, event, Ok(())).await;
    Ok(updated)
}

pub async fn patch(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let integration = load(deps, &req, &principal).await?;
    let body: PatchBody = req.json()?;
    let updated = apply_patch(deps, integration, body).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view(deps, &updated).await?,
    ))
}

/// Disconnect: the integration stays (with its history) but is disabled and no longer
/// primary, so neither routing nor the bot config uses it.
pub async fn disconnect(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let integration = load(deps, &req, &principal).await?;
    let body = PatchBody {
        name: None,
        config: None,
        is_enabled: Some(false),
        is_primary: None,
    };
    let updated = apply_patch(deps, integration, body).await?;
    tracing::info!(tenant_id = %updated.tenant_id, integration_id = %updated.id, "integration disconnected");
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view(deps, &updated).await?,
    ))
}

/// `POST /v1/integrations/{id}/test`: a real provider call with the stored credentials.
/// The check's outcome is the answer (200 with `ok`); credentials the provider refuses put
/// the integration in `error` with the provider's reason.
pub async fn test(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let mut integration = load(deps, &req, &principal).await?;
    let config = deps.integrations.open(&integration).await?;
    let Some(result) = provider_calls::live_check(deps, &integration, &config).await else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "LIVE_CHECK_UNAVAILABLE",
            format!("there is no live check for {} yet", integration.provider),
        ));
    };
    let outcome = result.as_ref().map(drop).map_err(ToString::to_string);
    deps.logs
        .record(
            &integration.tenant_id,
            &integration.id,
            "live_check",
            outcome,
        )
        .await;
    let answer = match result {
        Ok(details) => {
            if integration.is_enabled && registers_webhook(&integration.provider) {
                sync_webhook(deps, &mut integration).await?;
            } else if integration.is_enabled {
                integration.status = IntegrationStatus::Active;
                integration.last_error = None;
                integration.last_sync_at = Some(deps.integrations.now());
                deps.integrations
                    .save(&mut integration)
                    .await
                    .map_err(conflict)?;
            }
            json!({"ok": true, "details": details})
        }
        Err(error) => {
            let class = match &error {
                ProviderError::Auth(_) => "auth",
                ProviderError::Transient { .. } => "transient",
                ProviderError::RecipientUnreachable(_) | ProviderError::Rejected(_) => "rejected",
            };
            if !matches!(error, ProviderError::Transient { .. }) {
                integration.status = IntegrationStatus::Error;
                integration.last_error = Some(error.to_string());
                deps.integrations
                    .save(&mut integration)
                    .await
                    .map_err(conflict)?;
            }
            json!({"ok": false, "error": {"class": class, "reason": error.reason()}})
        }
    };
    let mut answer = answer;
    answer["integration"] = view(deps, &integration).await?;
    Ok(ApiResponse::json(StatusCode::OK, &answer))
}

/// `GET /v1/integrations/{id}/logs?limit=&cursor=`: newest first.
pub async fn logs(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let integration = load(deps, &req, &principal).await?;
    let limit = match req.query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 100"))?,
    };
    let cursor = req.query.get("cursor").map(|c| Cursor::parse(c.as_str()));
    let (items, next) = deps
        .logs
        .list(&integration.tenant_id, &integration.id, limit, cursor)
        .await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}
