//! `DELETE /v1/tenant`: removes every item of the tenant — integrations with their sealed
//! credentials, logs, profile, catalog, prompts, API keys. Owner only.

use http::StatusCode;
use serde_json::json;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal, Role};
use shared::ports::table::{Key, Query};

use crate::Deps;

pub async fn delete(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.require_role(&[Role::Owner])?.clone();
    let mut deleted = 0usize;
    for key in [
        Query::partition(format!("TENANT#{tenant}")),
        Query::gsi1(format!("TENANT#{tenant}#APIKEYS")),
    ]
    .into_iter()
    .map(|q| collect_keys(deps, q))
    {
        for key in key.await? {
            deps.table.delete(&key, None).await?;
            deleted += 1;
        }
    }
    tracing::info!(tenant_id = %tenant, deleted, "tenant deleted");
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"deleted_items": deleted}),
    ))
}

/// Every key a query finds, all pages (collected first: deleting while paging would move
/// the cursor under our feet).
async fn collect_keys(deps: &Deps, query: Query) -> Result<Vec<Key>, ApiError> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = deps.table.query(query.clone().after(cursor)).await?;
        for item in &page.items {
            keys.push(Key::of(item)?);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}
