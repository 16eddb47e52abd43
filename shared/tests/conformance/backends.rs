//! Builds each adapter for a test: embedded ones in a temp dir, AWS ones on fresh resources
//! in the moto server (a unique table / queue pair / key per test).

use std::sync::Arc;

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
    shared::provision::table(&client, &name).await.unwrap();
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
    let (url, dlq_url) = shared::provision::queue(&client, &name, MAX_RECEIVES)
        .await
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
