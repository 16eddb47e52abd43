//! `DELETE /v1/tenant`: removes every item of the tenant — integrations with their sealed
//! credentials, logs, profile, catalog, prompts, API keys, and (all in the tenant's
//! partition too) clients, dialogs, messages, leads with their deliveries and routing,
//! idempotency and rate-limit records. Owner only. Queue messages still in flight for the
//! tenant find nothing and end without sending.

use http::StatusCode;
use serde_json::json;
use shared::http::{ApiError, ApiRequest, ApiResponse, Principal};
use shared::ports::table::{Key, Query};
use shared::repo::query_all;

use crate::Deps;

pub async fn delete(
    deps: &Deps,
    _req: ApiRequest,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let tenant = principal.tenant()?.clone();
    let mut deleted = 0usize;
    // All keys are read before deleting: deleting while paging would move the cursor.
    for query in [
        Query::partition(format!("TENANT#{tenant}")),
        Query::gsi1(format!("TENANT#{tenant}#APIKEYS")),
    ] {
        for item in query_all(deps.table.as_ref(), query).await? {
            deps.table.delete(&Key::of(&item)?, None).await?;
            deleted += 1;
        }
    }
    shared::repo::integrations::forget_tenant(&tenant);
    shared::repo::inbox::forget_tenant(&tenant);
    tracing::info!(tenant_id = %tenant, deleted, "tenant deleted");
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"deleted_items": deleted}),
    ))
}
