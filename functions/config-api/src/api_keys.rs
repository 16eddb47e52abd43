//! `/v1/api-keys`: keys for the bot engine and back-office systems. The raw key is shown
//! once, at creation; only its SHA-256 hash is stored.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use shared::domain::text;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal, Scope};

use crate::Deps;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    scopes: Vec<Scope>,
}

pub async fn list(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let items = deps.api_keys.list(tenant).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

pub async fn create(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let body: CreateBody = req.json()?;
    let mut problems = Vec::new();
    let name = text::display_name(&body.name, 100).unwrap_or_else(|e| {
        problems.push(json!({"field": "name", "code": e.code(), "message": e.to_string()}));
        String::new()
    });
    if body.scopes.is_empty() {
        problems
            .push(json!({"field": "scopes", "code": "required", "message": "at least one scope"}));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(
            "the API key is not valid",
            json!({"fields": problems}),
        ));
    }
    let mut scopes = body.scopes;
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let (record, raw) = deps.api_keys.create(tenant, &name, scopes).await?;
    let mut answer = serde_json::to_value(&record).map_err(|_| ApiError::internal())?;
    answer["key"] = json!(raw.expose());
    Ok(ApiResponse::json(StatusCode::CREATED, &answer))
}

pub async fn revoke(
    deps: &Deps,
    req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?;
    let id = req.path_param("id")?;
    let record = deps
        .api_keys
        .revoke(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(ApiResponse::json(StatusCode::OK, &record))
}
