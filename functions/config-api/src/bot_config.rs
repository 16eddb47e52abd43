//! `GET /v1/bot/config`: everything the bot engine needs, fetched with an API key
//! (`config:read`): profile, catalog, enabled channels with decrypted credentials, CRMs and
//! lead targets. A strong ETag lets the engine poll cheaply (`If-None-Match` → 304).

use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use shared::domain::registry::IntegrationKind;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal};

use crate::Deps;
use crate::profile::{load_catalog, load_profile};
use crate::prompt;

pub async fn get(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let profile = load_profile(deps, &tenant).await?;
    let catalog = load_catalog(deps, &tenant).await?;
    let active = prompt::load(deps, &tenant).await?;
    let prompt = (active.version > 0).then(|| {
        let values = prompt::values(&active, &profile, &catalog);
        json!({
            "content": shared::domain::prompt::substitute(&active.content, &values),
            "version": active.version,
        })
    });
    let mut channels = Vec::new();
    let mut crm = Vec::new();
    let mut lead_targets = Vec::new();
    for integration in deps.integrations.list(&tenant).await? {
        if !integration.is_enabled {
            continue;
        }
        let credentials: Map<String, Value> = deps
            .integrations
            .open(&integration)
            .await?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.into_inner())))
            .collect();
        let entry = json!({
            "id": integration.id,
            "provider": integration.provider,
            "channel": integration.channel,
            "name": integration.name,
            "status": integration.status,
            "is_primary": integration.is_primary,
            "credentials": credentials,
        });
        match integration.kind {
            IntegrationKind::Channel => channels.push(entry),
            IntegrationKind::Crm => crm.push(entry),
            IntegrationKind::LeadTarget => lead_targets.push(entry),
        }
    }
    let config = json!({
        "tenant_id": tenant,
        "business": profile,
        "prompt": prompt,
        "settings": {
            "language": profile.language,
            "timezone": profile.timezone,
            "working_hours": profile.working_hours,
        },
        "channels": channels,
        "crm": crm,
        "lead_targets": lead_targets,
        "catalog": catalog.items,
    });
    let body = serde_json::to_vec(&config).map_err(|_| ApiError::internal())?;
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(&body)));
    let matches = req.header("if-none-match").is_some_and(|v| {
        v.split(',')
            .any(|tag| tag.trim() == etag || tag.trim() == "*")
    });
    let mut response = if matches {
        ApiResponse::empty(StatusCode::NOT_MODIFIED)
    } else {
        ApiResponse::raw(StatusCode::OK, "application/json", body)
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers.insert(header::ETAG, value);
    }
    response
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
