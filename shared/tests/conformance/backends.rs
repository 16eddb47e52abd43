//! Builds each adapter for a test: embedded ones in a temp dir, AWS ones on fresh resources
//! in the moto server (a unique table / queue pair / key per test).

use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::adapters::dynamodb::DynamoTable;
use shared::adapters::embedded::{EmbeddedQueues, EmbeddedTable, LocalSecretBox, QueueSpec};
use shared::adapters::kms::KmsSecretBox;
use shared::adapters::sqs::SqsQueue;
use shared::ports::{Queue, SecretBox, SystemClock, Table};
use tempfile::TempDir;

/// Receives before a message moves to the DLQ, in every queue case.
pub const MAX_RECEIVES: u32 = 2;

/// An adapter plus whatever must live as long as it (temp dir).
pub struct Fixture<T> {
    pub port: T,
    _dir: Option<TempDir>,
}

impl<T> std::ops::Deref for Fixture<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.port
    }
}

pub struct QueuePair {
    pub queue: Arc<dyn Queue>,
    pub dlq: Arc<dyn Queue>,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "the AWS half of the conformance suite runs against the local moto server only: \
         run `infra/test.sh`, which starts it and sets AWS_ENDPOINT_URL (got {endpoint:?})"
    );
    aws_config::load_from_env().await
}

pub async fn embedded_table() -> Fixture<Arc<dyn Table>> {
    let dir = tempfile::tempdir().unwrap();
    let table = EmbeddedTable::open(&dir.path().join("table.redb")).unwrap();
    Fixture {
        port: Arc::new(table),
        _dir: Some(dir),
    }
}

pub async fn dynamodb_table() -> Fixture<Arc<dyn Table>> {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let name = unique("conformance");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr("pk"),
            attr("sk"),
            attr("gsi1pk"),
            attr("gsi1sk"),
        ]))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("gsi1")
                .key_schema(key("gsi1pk", KeyType::Hash))
                .key_schema(key("gsi1sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl"),
        "TTL is enabled on the `ttl` attribute"
    );
    Fixture {
        port: Arc::new(DynamoTable::new(client, name)),
        _dir: None,
    }
}

pub async fn embedded_queue() -> Fixture<QueuePair> {
    let dir = tempfile::tempdir().unwrap();
    let store =
        EmbeddedQueues::open(&dir.path().join("queues.redb"), Arc::new(SystemClock)).unwrap();
    let queue = store
        .queue(QueueSpec::new("work").with_dlq("work-dlq", MAX_RECEIVES))
        .unwrap();
    let dlq = store.queue(QueueSpec::new("work-dlq")).unwrap();
    Fixture {
        port: QueuePair {
            queue: Arc::new(queue),
            dlq: Arc::new(dlq),
        },
        _dir: Some(dir),
    }
}

pub async fn sqs_queue() -> Fixture<QueuePair> {
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    let name = unique("conformance");
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Fixture {
        port: QueuePair {
            queue: Arc::new(SqsQueue::new(client.clone(), url)),
            dlq: Arc::new(SqsQueue::new(client, dlq_url)),
        },
        _dir: None,
    }
}

pub async fn local_secretbox() -> Fixture<Arc<dyn SecretBox>> {
    let dir = tempfile::tempdir().unwrap();
    let boxed = LocalSecretBox::open_or_create(&dir.path().join("local.key")).unwrap();
    Fixture {
        port: Arc::new(boxed),
        _dir: Some(dir),
    }
}

pub async fn kms_secretbox() -> Fixture<Arc<dyn SecretBox>> {
    let client = aws_sdk_kms::Client::new(&sdk().await);
    let key = client.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    Fixture {
        port: Arc::new(KmsSecretBox::new(client, key_id)),
        _dir: None,
    }
}
