//! lead-delivery Lambda: SQS events of the lead-delivery queue (partial batch failures).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let worker = lead_delivery::LeadDelivery::new(&ports, &config)?;
    shared::http::lambda::serve_with_consumer(Arc::new(lead_delivery::router()), Arc::new(worker))
        .await
}
