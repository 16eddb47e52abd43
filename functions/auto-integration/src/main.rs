//! auto-integration Lambda: the leads HTTP API, and the lead-intake queue (delayed
//! fan-outs) — one function, two triggers.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let deps = auto_integration::Deps::new(&ports, &config)?;
    let intake = auto_integration::Intake::new(deps.clone(), &ports)?;
    shared::http::lambda::serve_with_consumer(
        Arc::new(auto_integration::router(deps)),
        Arc::new(intake),
    )
    .await
}
