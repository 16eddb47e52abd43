//! The dev server: every function's routes on one local port, every SQS consumer fed from
//! an embedded queue, data kept in `DATA_DIR` (SPEC §8).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode, header};
use shared::Secret;
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::TenantId;
use shared::http::auth::{self, JwtClaims, Role};
use shared::http::{Access, ApiError, ApiRequest, ApiResponse, Authenticator, Router};
use shared::repo::api_keys::ApiKeys;
use shared::repo::idempotency::IdempotencyStore;
use shared::worker::{self, SqsConsumer, WorkerOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The OpenAPI document, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../openapi.yaml");
/// Bodies above this are refused before routing (each route may set a lower limit).
const MAX_BODY: usize = 10 * 1024 * 1024;
const TTL_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The tenant of the printed dev token.
pub const DEMO_TENANT: &str = "demo";

/// Every HTTP route of every function, plus `/openapi.yaml`.
pub fn router(ports: &Ports, config: &Config) -> anyhow::Result<Router> {
    let auth = Arc::new(Authenticator::new(ApiKeys::new(
        ports.table.clone(),
        ports.clock.clone(),
    )));
    let config_api = config_api::router(config_api::Deps::new(ports, config)?);
    let webhooks = webhook_receiver::router(webhook_receiver::Deps::new(ports, config)?);
    let send = telegram_send::Deps::new(ports, config)?;
    let telegram = telegram_send::router(send.clone());
    let telegram_crm = telegram_crm_send::router(send.clone());
    let inbox = inbox_api::router(send);
    let leads = auto_integration::router(auto_integration::Deps::new(ports, config)?);
    Ok(Router::new(Some(auth))
        .route(Method::GET, "/openapi.yaml", Access::Public, |_, _| async {
            Ok(ApiResponse::raw(
                StatusCode::OK,
                "application/yaml",
                OPENAPI,
            ))
        })
        .merge(config_api)
        .merge(webhooks)
        .merge(telegram)
        .merge(telegram_crm)
        .merge(inbox)
        .merge(leads))
}

/// Every SQS consumer with the queue that feeds it (functions register theirs here).
pub fn consumers(
    ports: &Ports,
    config: &Config,
) -> anyhow::Result<Vec<(QueueRole, Arc<dyn SqsConsumer>)>> {
    let push = webhook_receiver::push::BotPush::new(
        webhook_receiver::Deps::new(ports, config)?,
        ports.queue(QueueRole::InboundEvents)?,
    );
    let outbound = outbound_worker::worker(ports, config)?;
    let intake = auto_integration::Intake::new(auto_integration::Deps::new(ports, config)?, ports)?;
    let leads = lead_delivery::LeadDelivery::new(ports, config)?;
    Ok(vec![
        (QueueRole::InboundEvents, Arc::new(push)),
        (QueueRole::Outbound, Arc::new(outbound)),
        (QueueRole::LeadIntake, Arc::new(intake)),
        (QueueRole::LeadDelivery, Arc::new(leads)),
    ])
}

/// The HS256 secret for dashboard tokens: `LOCAL_JWT_SECRET`, else one generated once and
/// kept in the data directory. Returns whether it was generated (then a dev token is printed).
pub fn jwt_secret(
    configured: Option<String>,
    data_dir: &Path,
) -> anyhow::Result<(Secret<Vec<u8>>, bool)> {
    if let Some(secret) = configured {
        return Ok((Secret::new(secret.into_bytes()), false));
    }
    let path = data_dir.join("dev-jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok((Secret::new(existing.trim().as_bytes().to_vec()), true));
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let secret = hex::encode(random);
    std::fs::create_dir_all(data_dir).context("creating the data directory")?;
    std::fs::write(&path, &secret).context("writing the dev JWT secret")?;
    Ok((Secret::new(secret.into_bytes()), true))
}

/// A token for the demo tenant, valid for 30 days.
pub fn dev_token(secret: &Secret<Vec<u8>>, now_secs: i64) -> anyhow::Result<String> {
    let claims = JwtClaims {
        tenant_id: TenantId::parse(DEMO_TENANT)?,
        sub: "dev-user".into(),
        role: Role::Owner,
    };
    Ok(auth::mint_hs256(&claims, now_secs + 30 * 24 * 3600, secret))
}

struct AppState {
    router: Router,
    jwt_secret: Secret<Vec<u8>>,
    ports: Ports,
}

/// Turns a local HTTP request into the shape Lambda would see: a valid HS256 bearer token
/// becomes verified claims, as the API Gateway JWT authorizer would pass them.
pub fn to_api_request(
    parts: http::request::Parts,
    body: bytes::Bytes,
    jwt_secret: &Secret<Vec<u8>>,
    now_secs: i64,
) -> ApiRequest {
    let claims = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| auth::verify_hs256(token.trim(), jwt_secret, now_secs).ok());
    ApiRequest::from_parts(parts, body, claims, ulid::Ulid::new().to_string())
}

fn to_response(api: ApiResponse) -> Response {
    let mut response = Response::new(Body::from(api.body));
    *response.status_mut() = api.status;
    *response.headers_mut() = api.headers;
    response
}

async fn serve_request(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return to_response(ApiError::payload_too_large(MAX_BODY).into());
    };
    let now = state.ports.clock.now_secs();
    let api = to_api_request(parts, body, &state.jwt_secret, now);
    to_response(state.router.handle(api).await)
}

/// A running dev server.
pub struct DevServer {
    pub addr: SocketAddr,
    pub ports: Ports,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DevServer {
    /// Stops accepting, lets in-flight requests and worker batches finish, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// One process owns the embedded store, so a claim still in progress when it opens was left
/// by the previous run (killed mid-request): it is released, and the provider's redelivery
/// is handled at once instead of answering `409 EVENT_IN_PROGRESS` until the lease ends.
async fn release_abandoned_claims(ports: &Ports) -> anyhow::Result<()> {
    let Some(table) = &ports.embedded_table else {
        return Ok(());
    };
    let items = table
        .scan_all()
        .await
        .context("reading the embedded table")?;
    let released = IdempotencyStore::new(ports.table.clone(), ports.clock.clone())
        .release_abandoned(&items)
        .await
        .context("releasing the previous run's claims")?;
    if released > 0 {
        tracing::info!(released, "claims left by the previous run released");
    }
    Ok(())
}

/// Opens the backend, binds `127.0.0.1:port` (0 = any free port) and starts serving.
pub async fn start(
    config: &Config,
    port: u16,
    jwt_secret: Secret<Vec<u8>>,
) -> anyhow::Result<DevServer> {
    let ports = backend::connect(&config.backend)
        .await
        .context("opening the backend")?;
    start_with_ports(ports, config, port, jwt_secret).await
}

/// Starts serving on `ports` as given (wrapped by a fault injector, or on a backend that
/// `config` does not name); `config.backend` is not opened.
pub async fn start_with_ports(
    ports: Ports,
    config: &Config,
    port: u16,
    jwt_secret: Secret<Vec<u8>>,
) -> anyhow::Result<DevServer> {
    release_abandoned_claims(&ports).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, stop) = watch::channel(false);
    let state = Arc::new(AppState {
        router: router(&ports, config)?,
        jwt_secret,
        ports: ports.clone(),
    });
    let app = axum::Router::new()
        .fallback(serve_request)
        .with_state(state);
    let mut tasks = Vec::new();
    let mut http_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|stopped| *stopped).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server failed");
        }
    }));
    for (role, consumer) in consumers(&ports, config)? {
        let queue = ports.queue(role)?;
        tasks.push(tokio::spawn(worker::run_consumer(
            queue,
            consumer,
            WorkerOptions::default(),
            stop.clone(),
        )));
    }
    if let Some(table) = ports.embedded_table.clone() {
        let clock = ports.clock.clone();
        let mut sweep_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match table.purge_expired(clock.now_secs()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "expired items swept"),
                    Err(e) => tracing::warn!(error = %e, "TTL sweep failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(TTL_SWEEP_EVERY) => {}
                    _ = sweep_stop.wait_for(|stopped| *stopped) => break,
                }
            }
        }));
    }
    Ok(DevServer {
        addr,
        ports,
        shutdown,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The operations of one path in the OpenAPI document (its `get:`, `post:` … keys).
    fn documented_methods(path: &str) -> Vec<String> {
        let header = format!("\n  {path}:\n");
        let Some(start) = OPENAPI.find(&header) else {
            return Vec::new();
        };
        OPENAPI[start + header.len()..]
            .lines()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .filter_map(|l| l.strip_prefix("    "))
            .filter(|l| !l.starts_with(' '))
            .filter_map(|l| l.strip_suffix(':'))
            .map(str::to_ascii_uppercase)
            .collect()
    }

    /// The `x-roles` of one operation (`None` when the operation lists none).
    fn documented_roles(path: &str, method: &str) -> Option<Vec<String>> {
        let header = format!("\n  {path}:\n");
        let start = OPENAPI.find(&header)? + header.len();
        let operation = format!("    {}:", method.to_ascii_lowercase());
        OPENAPI[start..]
            .lines()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .skip_while(|l| *l != operation)
            .skip(1)
            .take_while(|l| l.starts_with("      ") || l.is_empty())
            .find_map(|l| l.trim().strip_prefix("x-roles: "))
            .map(|list| {
                list.trim_matches(['[', ']'])
                    .split(',')
                    .map(|r| r.trim().to_owned())
                    .collect()
            })
    }

    #[tokio::test]
    async fn every_route_documents_the_roles_the_router_admits() {
        let dir = tempfile::tempdir().unwrap();
        let ports =
            shared::backend::embedded(dir.path(), Arc::new(shared::ports::SystemClock)).unwrap();
        assert_eq!(
            documented_roles("/v1/tenant", "DELETE"),
            Some(vec!["owner".to_owned()])
        );
        let mut checked = 0;
        for (method, path, access) in router(&ports, &Config::from_lookup(|_| None).unwrap())
            .unwrap()
            .access_table()
        {
            let admitted = access
                .roles()
                .map(|r| r.as_slice().iter().map(|r| r.as_str().to_owned()).collect());
            assert_eq!(
                documented_roles(path, method.as_str()),
                admitted,
                "x-roles of {method} {path} in openapi.yaml"
            );
            checked += usize::from(admitted.is_some());
        }
        assert!(checked > 30, "{checked} routes take a dashboard token");
    }

    #[tokio::test]
    async fn every_route_is_documented_in_openapi() {
        let dir = tempfile::tempdir().unwrap();
        let ports =
            shared::backend::embedded(dir.path(), Arc::new(shared::ports::SystemClock)).unwrap();
        assert!(documented_methods("/v1/integrations/{id}").contains(&"PATCH".to_owned()));
        assert!(documented_methods("/v1/nowhere").is_empty());
        for route in router(&ports, &Config::from_lookup(|_| None).unwrap())
            .unwrap()
            .describe()
        {
            let (method, path) = route.split_once(' ').unwrap();
            assert!(
                documented_methods(path).iter().any(|m| m == method),
                "{route} is missing from openapi.yaml"
            );
        }
    }

    #[test]
    fn a_valid_bearer_token_becomes_claims_and_a_forged_one_does_not() {
        let secret = Secret::new(b"local".to_vec());
        let token = dev_token(&secret, 1_000).unwrap();
        let request = |auth: &str| {
            let (parts, _) = http::Request::builder()
                .uri("/v1/profile?x=1")
                .header("authorization", auth)
                .body(())
                .unwrap()
                .into_parts();
            to_api_request(parts, bytes::Bytes::new(), &secret, 2_000)
        };
        let ok = request(&format!("Bearer {token}"));
        assert_eq!(
            ok.claims.map(|c| c.tenant_id.to_string()),
            Some("demo".into())
        );
        assert_eq!(ok.query.get("x").map(String::as_str), Some("1"));
        let forged = dev_token(&Secret::new(b"other".to_vec()), 1_000).unwrap();
        assert_eq!(request(&format!("Bearer {forged}")).claims, None);
    }
}
