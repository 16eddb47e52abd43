//! inbox-api Lambda: build config and adapters once, then serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let deps = inbox_api::Deps::new(&ports, &config)?;
    shared::http::lambda::serve(std::sync::Arc::new(inbox_api::router(deps))).await
}
