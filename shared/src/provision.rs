//! The stack's stateful resources in the local AWS emulator, shaped as in `template.yaml`:
//! the table (pk/sk, sparse gsi1, TTL on `ttl`), each queue with its DLQ and redrive
//! policy, and the KMS key integration secrets are sealed with. For tests and local runs
//! (feature `testing`): `lambda-local`, the conformance suite, the soak.

use std::collections::BTreeMap;

use crate::config::{AwsConfig, QueueRole};
use anyhow::Context as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// Creates every resource under names starting with `prefix` and returns the functions'
/// view of them (the variables `template.yaml` sets).
pub async fn stack(sdk: &aws_config::SdkConfig, prefix: &str) -> anyhow::Result<AwsConfig> {
    let table_name = format!("{prefix}-table");
    table(&aws_sdk_dynamodb::Client::new(sdk), &table_name).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queue_urls = BTreeMap::new();
    let mut dlq_urls = BTreeMap::new();
    for role in QueueRole::ALL {
        let (url, dlq) = queue(
            &sqs,
            &format!("{prefix}-{}", role.name()),
            role.max_receives(),
        )
        .await
        .with_context(|| format!("queue {}", role.name()))?;
        queue_urls.insert(role, url);
        dlq_urls.insert(role, dlq);
    }
    let key = aws_sdk_kms::Client::new(sdk)
        .create_key()
        .description(format!("{prefix} integration secrets"))
        .send()
        .await
        .context("KMS CreateKey")?;
    let kms_key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .context("CreateKey answered without a key id")?;
    Ok(AwsConfig {
        table_name,
        kms_key_id: Some(kms_key_id),
        queue_urls,
        dlq_urls,
    })
}

/// The table `name` as the template declares it.
pub async fn table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr("pk")?,
            attr("sk")?,
            attr("gsi1pk")?,
            attr("gsi1sk")?,
        ]))
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("gsi1")
                .key_schema(key("gsi1pk", KeyType::Hash)?)
                .key_schema(key("gsi1sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await
        .context("DynamoDB CreateTable")?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .context("DynamoDB UpdateTimeToLive")?;
    Ok(())
}

/// A queue whose messages move to its `-dlq` after `max_receives` receives: its URL and
/// its DLQ's.
pub async fn queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: u32,
) -> anyhow::Result<(String, String)> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await?
        .queue_url
        .context("CreateQueue answered without a URL")?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("the DLQ has no ARN")?;
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
                .to_string(),
        )
        .send()
        .await?
        .queue_url
        .context("CreateQueue answered without a URL")?;
    Ok((url, dlq_url))
}
