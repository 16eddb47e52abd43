//! The size and memory baseline: `hello-lambda` plus the AWS SDK crates every function links
//! (aws-config, DynamoDB, SQS, KMS, with the workspace's features). Like the functions it
//! builds the clients once at init from the environment; it calls one operation of a
//! client only when the event names it (`{"call": "dynamodb" | "sqs" | "kms"}`), so the
//! code is linked while the benchmark's event makes no network call.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    kms: aws_sdk_kms::Client,
}

async fn handler(clients: &Clients, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let body = match event.payload.get("call").and_then(Value::as_str) {
        Some("dynamodb") => {
            let out = clients
                .dynamodb
                .get_item()
                .table_name("hello")
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("hello".into()),
                )
                .send()
                .await?;
            format!("item: {}", out.item.is_some())
        }
        Some("sqs") => {
            let out = clients
                .sqs
                .send_message()
                .queue_url("https://sqs.invalid/hello")
                .message_body("hello")
                .send()
                .await?;
            format!("message: {}", out.message_id.unwrap_or_default())
        }
        Some("kms") => {
            let out = clients
                .kms
                .decrypt()
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(b"hello".to_vec()))
                .send()
                .await?;
            format!("plaintext: {}", out.plaintext.is_some())
        }
        _ => "ok".to_owned(),
    };
    Ok(json!({"statusCode": 200, "body": body}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_from_env().await;
    let clients = Arc::new(Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        kms: aws_sdk_kms::Client::new(&sdk),
    });
    lambda_runtime::run(service_fn(move |event| {
        let clients = clients.clone();
        async move { handler(&clients, event).await }
    }))
    .await
}
