//! The `Idempotency-Key` header, modelled on Powertools' idempotency utility: the first
//! request with a key claims it (an in-progress record whose lease ends with the Lambda
//! invocation's remaining time), runs, and stores its response; a later request with the
//! same key and the same body gets that response without running again — a concurrent one
//! waits for it; the same key with another body is refused with 422
//! `IDEMPOTENCY_KEY_REUSED`.

use std::future::Future;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiRequest, ApiResponse};
use crate::domain::{MessageId, TenantId};
use crate::ports::Clock;
use crate::repo::idempotency::{Claim, IdempotencyStore};

pub const HEADER: &str = "idempotency-key";
/// How long a stored response answers repeated keys.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The lease off Lambda (the dev server), where no deadline is known.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long a concurrent request waits for the first one's response.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct Data {
    body_sha256: String,
    /// The id the first request chose for what it creates; a takeover reuses it.
    id: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    body: serde_json::Value,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body's fingerprint: its JSON with keys in order (so whitespace and key order do
/// not count), or the raw bytes when it is not JSON.
fn fingerprint(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => sha256_hex(value.to_string().as_bytes()),
        Err(_) => sha256_hex(body),
    }
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
        "this Idempotency-Key was used with a different request body",
    )
}

fn replay(result: Option<String>) -> Result<ApiResponse, ApiError> {
    let stored: Stored = result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .ok_or_else(ApiError::internal)?;
    let status = StatusCode::from_u16(stored.status).map_err(|_| ApiError::internal())?;
    let mut response = ApiResponse::json(status, &stored.body);
    response
        .headers
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// The lease of a claim: the invocation's remaining time (at least a second).
fn lease(req: &ApiRequest, clock: &dyn Clock) -> Duration {
    match req.deadline_ms {
        Some(deadline) => {
            let now = u64::try_from(clock.now().as_millisecond()).unwrap_or(0);
            Duration::from_millis(deadline.saturating_sub(now).max(1000))
        }
        None => DEFAULT_LEASE,
    }
}

/// Runs `run` once per `Idempotency-Key` of a tenant and scope. `run` gets the id of the
/// thing it creates: fresh, or the one the first (crashed) attempt chose. Responses of
/// 5xx are not kept (the key is released, a retry runs again).
pub async fn once<F, Fut>(
    store: &IdempotencyStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    scope: &str,
    req: &ApiRequest,
    run: F,
) -> Result<ApiResponse, ApiError>
where
    F: FnOnce(MessageId) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    let Some(value) = req.headers.get(HEADER) else {
        return run(MessageId::generate()).await;
    };
    // A key that is present but unreadable is refused, never taken for "no key" (which
    // would run the request again on every retry).
    let raw = value
        .to_str()
        .ok()
        .filter(|raw| !raw.is_empty() && raw.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    let key = sha256_hex(raw.as_bytes());
    let body_sha256 = fingerprint(&req.body);
    let fresh = serde_json::to_string(&Data {
        body_sha256: body_sha256.clone(),
        id: MessageId::generate().to_string(),
    })
    .map_err(|_| ApiError::internal())?;
    let lease = lease(req, clock);
    let started = std::time::Instant::now();
    loop {
        let claim = store.claim(tenant, scope, &key, &fresh, lease).await?;
        let (Claim::Acquired { data: raw_data }
        | Claim::InProgress { data: raw_data }
        | Claim::Completed { data: raw_data, .. }) = &claim;
        let raw_data = raw_data.clone();
        let data: Data = serde_json::from_str(&raw_data).map_err(|_| ApiError::internal())?;
        if data.body_sha256 != body_sha256 {
            if let Claim::Acquired { .. } = claim {
                store.release(tenant, scope, &key).await?;
            }
            return Err(reused());
        }
        match claim {
            Claim::Completed { result, .. } => return replay(result),
            Claim::InProgress { .. } if started.elapsed() < WAIT => {
                tokio::time::sleep(POLL).await;
            }
            Claim::InProgress { .. } => {
                let mut error = ApiError::new(
                    StatusCode::CONFLICT,
                    "IDEMPOTENCY_IN_PROGRESS",
                    "a request with this Idempotency-Key is still running; retry shortly",
                );
                error.details = serde_json::json!({"retry_after_seconds": 1});
                return Err(error);
            }
            Claim::Acquired { .. } => {
                let id = MessageId::parse(data.id).unwrap_or_else(|_| MessageId::generate());
                let outcome = run(id).await;
                let response = match &outcome {
                    Ok(response) => response.clone(),
                    Err(error) => ApiResponse::error(error),
                };
                if response.status.is_server_error() {
                    store.release(tenant, scope, &key).await?;
                    return outcome;
                }
                let stored = serde_json::to_string(&Stored {
                    status: response.status.as_u16(),
                    body: response.json_body(),
                })
                .map_err(|_| ApiError::internal())?;
                // The work is done: its answer goes out even if it cannot be kept. A 5xx
                // here would make the client retry and, once the lease is over, a takeover
                // would do the work again (send the message twice).
                if let Err(e) = store
                    .complete(tenant, scope, &key, &raw_data, Some(&stored), RETENTION)
                    .await
                {
                    tracing::warn!(error = %e, "response not kept for the Idempotency-Key; a retry waits for the lease");
                }
                return outcome;
            }
        }
    }
}
