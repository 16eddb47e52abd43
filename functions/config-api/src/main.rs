//! config-api Lambda: build config and adapters once, then serve the router — and answer
//! the HTTP API's Lambda authorizer events (the routes that take an API key or a dashboard
//! JWT), verifying dashboard tokens against `JWT_ISSUER`'s keys.

use std::sync::Arc;

use shared::http::OidcVerifier;
use shared::http::lambda::{RequestAuthorizer, serve_with_authorizer};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let deps = config_api::Deps::new(&ports, &config)?;
    let verifier = config
        .jwt_issuer
        .as_ref()
        .map(|issuer| OidcVerifier::new(deps.http.clone(), issuer, config.jwt_audiences.clone()));
    if verifier.is_none() {
        tracing::warn!("JWT_ISSUER is not set: the authorizer refuses every dashboard token");
    }
    serve_with_authorizer(
        Arc::new(config_api::router(deps)),
        Arc::new(RequestAuthorizer::new(verifier)),
    )
    .await
}
