//! The one place that turns configuration into adapters (`Backend::{Embedded, Aws}`).

use std::collections::BTreeMap;
#[cfg(feature = "embedded")]
use std::path::Path;
use std::sync::Arc;

use crate::adapters::dynamodb::DynamoTable;
#[cfg(feature = "embedded")]
use crate::adapters::embedded::{EmbeddedQueues, EmbeddedTable, LocalSecretBox, QueueSpec};
use crate::adapters::kms::KmsSecretBox;
use crate::adapters::sqs::SqsQueue;
use crate::config::{AwsConfig, Backend, QueueRole};
use crate::ports::{
    Clock, Queue, QueueError, SecretBox, SecretBoxError, SystemClock, Table, TableError,
};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0} is not configured for this function")]
    NotConfigured(&'static str),
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    SecretBox(#[from] SecretBoxError),
    #[error(
        "BACKEND=embedded: this binary is built without the embedded backend (the `embedded` feature of `shared`; the dev server and the tests have it, the Lambda functions do not — run them with BACKEND=aws)"
    )]
    EmbeddedNotBuilt,
}

/// The adapters a function or the dev server runs on.
#[derive(Clone)]
pub struct Ports {
    pub table: Arc<dyn Table>,
    pub clock: Arc<dyn Clock>,
    secrets: Option<Arc<dyn SecretBox>>,
    queues: BTreeMap<QueueRole, Arc<dyn Queue>>,
    dead_letters: BTreeMap<QueueRole, Arc<dyn Queue>>,
    /// Set on the embedded backend: the dev server sweeps TTL-expired items through it.
    #[cfg(feature = "embedded")]
    pub embedded_table: Option<EmbeddedTable>,
}

impl Ports {
    pub fn secrets(&self) -> Result<Arc<dyn SecretBox>, BackendError> {
        self.secrets
            .clone()
            .ok_or(BackendError::NotConfigured("KMS_KEY_ID"))
    }

    pub fn queue(&self, role: QueueRole) -> Result<Arc<dyn Queue>, BackendError> {
        self.queues
            .get(&role)
            .cloned()
            .ok_or(BackendError::NotConfigured(role.url_var()))
    }

    /// The dead-letter queue of an embedded queue (in AWS, the DLQ is read with the console
    /// or redriven with `aws sqs start-message-move-task`).
    pub fn dead_letter_queue(&self, role: QueueRole) -> Result<Arc<dyn Queue>, BackendError> {
        self.dead_letters
            .get(&role)
            .cloned()
            .ok_or(BackendError::NotConfigured(role.url_var()))
    }

    /// The same ports on a wrapped table (a fault injector, a call counter).
    pub fn map_table(mut self, wrap: impl FnOnce(Arc<dyn Table>) -> Arc<dyn Table>) -> Self {
        self.table = wrap(self.table);
        self
    }

    /// The same ports with every queue wrapped (their dead-letter queues stay as they are).
    pub fn map_queues(
        mut self,
        wrap: impl Fn(QueueRole, Arc<dyn Queue>) -> Arc<dyn Queue>,
    ) -> Self {
        self.queues = std::mem::take(&mut self.queues)
            .into_iter()
            .map(|(role, queue)| (role, wrap(role, queue)))
            .collect();
        self
    }

    /// The same ports with every dead-letter queue wrapped (by the role of its queue).
    pub fn map_dead_letter_queues(
        mut self,
        wrap: impl Fn(QueueRole, Arc<dyn Queue>) -> Arc<dyn Queue>,
    ) -> Self {
        self.dead_letters = std::mem::take(&mut self.dead_letters)
            .into_iter()
            .map(|(role, queue)| (role, wrap(role, queue)))
            .collect();
        self
    }
}

pub async fn connect(backend: &Backend) -> Result<Ports, BackendError> {
    match backend {
        #[cfg(feature = "embedded")]
        Backend::Embedded { data_dir } => embedded(data_dir, Arc::new(SystemClock)),
        #[cfg(not(feature = "embedded"))]
        Backend::Embedded { .. } => Err(BackendError::EmbeddedNotBuilt),
        Backend::Aws(aws) => Ok(connect_aws(aws).await),
    }
}

/// Opens (or creates) the embedded backend in `data_dir`.
#[cfg(feature = "embedded")]
pub fn embedded(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Ports, BackendError> {
    std::fs::create_dir_all(data_dir).map_err(|e| BackendError::DataDir {
        path: data_dir.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let table = EmbeddedTable::open(&data_dir.join("table.redb"))?;
    let store = EmbeddedQueues::open(&data_dir.join("queues.redb"), clock.clone())?;
    let mut queues: BTreeMap<QueueRole, Arc<dyn Queue>> = BTreeMap::new();
    let mut dead_letters: BTreeMap<QueueRole, Arc<dyn Queue>> = BTreeMap::new();
    for role in QueueRole::ALL {
        let dlq = format!("{}-dlq", role.name());
        queues.insert(
            role,
            Arc::new(store.queue(QueueSpec::new(role.name()).with_dlq(&dlq, role.max_receives()))?),
        );
        dead_letters.insert(role, Arc::new(store.queue(QueueSpec::new(dlq))?));
    }
    let secrets = LocalSecretBox::open_or_create(&data_dir.join("local.key"))?;
    Ok(Ports {
        table: Arc::new(table.clone()),
        clock,
        secrets: Some(Arc::new(secrets)),
        queues,
        dead_letters,
        embedded_table: Some(table),
    })
}

/// Builds SDK clients once from the default credential chain (and `AWS_ENDPOINT_URL`, which
/// the tests point at the local emulator).
pub async fn connect_aws(aws: &AwsConfig) -> Ports {
    let sdk = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let open = |urls: &BTreeMap<QueueRole, String>| {
        urls.iter()
            .map(|(role, url)| {
                (
                    *role,
                    Arc::new(SqsQueue::new(sqs.clone(), url)) as Arc<dyn Queue>,
                )
            })
            .collect()
    };
    let queues = open(&aws.queue_urls);
    let dead_letters = open(&aws.dlq_urls);
    Ports {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &aws.table_name,
        )),
        clock: Arc::new(SystemClock),
        secrets: aws.kms_key_id.as_ref().map(|key| {
            Arc::new(KmsSecretBox::new(aws_sdk_kms::Client::new(&sdk), key)) as Arc<dyn SecretBox>
        }),
        queues,
        dead_letters,
        #[cfg(feature = "embedded")]
        embedded_table: None,
    }
}
