//! webhook-receiver Lambda: API Gateway webhooks, and the inbound-events queue whose
//! records it pushes to tenants' bot webhooks (one function, two triggers).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::config::Config::from_env()?;
    let ports = shared::backend::connect(&config.backend).await?;
    let deps = webhook_receiver::Deps::new(&ports, &config)?;
    let queue = ports.queue(shared::config::QueueRole::InboundEvents)?;
    let router = Arc::new(webhook_receiver::router(deps.clone()));
    let consumer = Arc::new(webhook_receiver::push::BotPush::new(deps, queue));
    shared::http::lambda::serve_with_consumer(router, consumer).await
}
