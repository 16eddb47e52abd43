//! The cold-start baseline: the smallest `lambda_runtime` function, answering every event
//! with `{"statusCode":200,"body":"ok"}`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"statusCode": 200, "body": "ok"}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
