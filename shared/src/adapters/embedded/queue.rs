//! `Queue` on a redb file, with SQS's semantics: delay, visibility timeout, receive count,
//! redrive to a dead-letter queue after `max_receives`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::ports::Clock;
use crate::ports::queue::{self, OutgoingMessage, Queue, QueueError, ReceivedMessage};

const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    body: String,
    sent_at_ms: i64,
    visible_at_ms: i64,
    receive_count: u32,
    receipt: Option<String>,
}

/// Where messages go after too many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receives: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub redrive: Option<Redrive>,
}

impl QueueSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            redrive: None,
        }
    }

    pub fn with_dlq(mut self, dead_letter_queue: impl Into<String>, max_receives: u32) -> Self {
        self.redrive = Some(Redrive {
            dead_letter_queue: dead_letter_queue.into(),
            max_receives,
        });
        self
    }
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The store every embedded queue of one data directory shares.
#[derive(Clone)]
pub struct EmbeddedQueues {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedQueues {
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, QueueError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(MESSAGES).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(Self {
            db: Arc::new(db),
            clock,
        })
    }

    pub fn queue(&self, spec: QueueSpec) -> Result<EmbeddedQueue, QueueError> {
        if spec.name.is_empty() || spec.name.contains(['\0', '/']) {
            return Err(QueueError::Validation(format!(
                "invalid queue name {:?}",
                spec.name
            )));
        }
        Ok(EmbeddedQueue {
            store: self.clone(),
            spec,
        })
    }
}

#[derive(Clone)]
pub struct EmbeddedQueue {
    store: EmbeddedQueues,
    spec: QueueSpec,
}

fn key(queue: &str, id: &str) -> String {
    format!("{queue}\0{id}")
}

fn read_stored(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Stored>, QueueError> {
    table
        .get(key)
        .map_err(unavailable)?
        .map(|v| serde_json::from_slice::<Stored>(v.value()))
        .transpose()
        .map_err(|e| QueueError::Corrupt(e.to_string()))
}

fn encode(m: &Stored) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(m).map_err(|e| QueueError::Corrupt(e.to_string()))
}

impl EmbeddedQueue {
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction, i64) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let db = self.store.db.clone();
        let now = self.store.clock.now_ms();
        blocking(
            move || {
                let txn = db.begin_write().map_err(unavailable)?;
                let out = f(&txn, now)?;
                txn.commit().map_err(unavailable)?;
                Ok(out)
            },
            QueueError::Unavailable,
        )
        .await
    }

    fn stored(message: &OutgoingMessage, now: i64) -> Stored {
        Stored {
            body: message.body.clone(),
            sent_at_ms: now,
            visible_at_ms: now + message.delay.map_or(0, millis),
            receive_count: 0,
            receipt: None,
        }
    }

    async fn insert(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        let name = self.spec.name.clone();
        self.write(move |txn, now| {
            let mut table = txn.open_table(MESSAGES).map_err(unavailable)?;
            let mut ids = Vec::with_capacity(messages.len());
            for m in &messages {
                let id = ulid::Ulid::new().to_string();
                table
                    .insert(
                        key(&name, &id).as_str(),
                        encode(&Self::stored(m, now))?.as_slice(),
                    )
                    .map_err(unavailable)?;
                ids.push(id);
            }
            Ok(ids)
        })
        .await
    }

    /// Finds the in-flight message a receipt handle belongs to.
    fn parse_receipt(receipt: &str) -> Result<String, QueueError> {
        receipt
            .split_once('.')
            .map(|(id, _)| id.to_owned())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| QueueError::Validation("the receipt handle is not valid".into()))
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        message.validate()?;
        let mut ids = self.insert(vec![message]).await?;
        ids.pop()
            .ok_or_else(|| QueueError::Unavailable("no message id".into()))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        queue::validate_batch(&messages)?;
        self.insert(messages).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        queue::validate_receive(max, visibility)?;
        let name = self.spec.name.clone();
        let redrive = self.spec.redrive.clone();
        self.write(move |txn, now| {
            let mut table = txn.open_table(MESSAGES).map_err(unavailable)?;
            let start = format!("{name}\0");
            let end = format!("{name}\u{1}");
            let visible: Vec<(String, Stored)> = {
                let mut found = Vec::new();
                for entry in table
                    .range::<&str>(start.as_str()..end.as_str())
                    .map_err(unavailable)?
                {
                    let (k, v) = entry.map_err(unavailable)?;
                    let stored: Stored = serde_json::from_slice(v.value())
                        .map_err(|e| QueueError::Corrupt(e.to_string()))?;
                    if stored.visible_at_ms <= now {
                        found.push((k.value()[start.len()..].to_owned(), stored));
                    }
                }
                found
            };
            let mut received = Vec::new();
            for (id, mut stored) in visible {
                if received.len() == max {
                    break;
                }
                let own_key = key(&name, &id);
                if let Some(r) = &redrive
                    && stored.receive_count >= r.max_receives
                {
                    table.remove(own_key.as_str()).map_err(unavailable)?;
                    stored.receive_count = 0;
                    stored.receipt = None;
                    stored.visible_at_ms = now;
                    table
                        .insert(
                            key(&r.dead_letter_queue, &id).as_str(),
                            encode(&stored)?.as_slice(),
                        )
                        .map_err(unavailable)?;
                    continue;
                }
                stored.receive_count += 1;
                stored.visible_at_ms = now + millis(visibility);
                let receipt = format!("{id}.{}", ulid::Ulid::new());
                stored.receipt = Some(receipt.clone());
                table
                    .insert(own_key.as_str(), encode(&stored)?.as_slice())
                    .map_err(unavailable)?;
                received.push(ReceivedMessage {
                    message_id: id,
                    receipt_handle: receipt,
                    body: stored.body,
                    receive_count: stored.receive_count,
                    sent_at_ms: stored.sent_at_ms,
                });
            }
            Ok(received)
        })
        .await
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let id = Self::parse_receipt(receipt_handle)?;
        let own_key = key(&self.spec.name, &id);
        let receipt = receipt_handle.to_owned();
        self.write(move |txn, _| {
            let mut table = txn.open_table(MESSAGES).map_err(unavailable)?;
            let current = read_stored(&table, &own_key)?;
            // Like SQS: only the latest receipt deletes; an outdated one is a no-op.
            if current.is_some_and(|m| m.receipt.as_deref() == Some(receipt.as_str())) {
                table.remove(own_key.as_str()).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        queue::validate_visibility(visibility)?;
        let id = Self::parse_receipt(receipt_handle)?;
        let own_key = key(&self.spec.name, &id);
        let receipt = receipt_handle.to_owned();
        self.write(move |txn, now| {
            let mut table = txn.open_table(MESSAGES).map_err(unavailable)?;
            let current = read_stored(&table, &own_key)?;
            match current {
                Some(mut m) if m.receipt.as_deref() == Some(receipt.as_str()) => {
                    m.visible_at_ms = now + millis(visibility);
                    table
                        .insert(own_key.as_str(), encode(&m)?.as_slice())
                        .map_err(unavailable)?;
                    Ok(())
                }
                _ => Err(QueueError::Validation(
                    "the message is not in flight".into(),
                )),
            }
        })
        .await
    }
}
