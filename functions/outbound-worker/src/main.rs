//! outbound-worker Lambda: SQS events of the outbound queue (partial batch failures).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let worker = outbound_worker::worker(&ports, &config)?;
    shared::http::lambda::serve_with_consumer(
        Arc::new(outbound_worker::router()),
        outbound_worker::consumer(worker),
    )
    .await
}
