//! An event handled in full whose claim cannot be completed (found by the fault-injection
//! soak, `tests/tests/soak.rs`): it is acknowledged, not answered 5xx, and a redelivery
//! after the lease stores nothing new.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use shared::ports::ManualClock;
use shared::ports::table::{
    AttrValue, Condition, Item, Key, Page, Query, Table, TableError, TransactOp, Update,
};
use support::{app_on, fixture};

/// Fails the writes that complete an idempotency claim while `left` lasts.
struct FailingCompletions {
    inner: Arc<dyn Table>,
    left: Arc<AtomicU32>,
}

#[async_trait]
impl Table for FailingCompletions {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let completes = item.get("status") == Some(&AttrValue::s("completed"));
        if completes && self.left.load(Ordering::SeqCst) > 0 {
            self.left.fetch_sub(1, Ordering::SeqCst);
            return Err(TableError::Unavailable("injected".into()));
        }
        self.inner.put(item, condition).await
    }
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.inner.update(key, update, condition).await
    }
    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.inner.query(query).await
    }
    async fn transact_write(&self, ops: Vec<TransactOp>) -> Result<(), TableError> {
        self.inner.transact_write(ops).await
    }
}

#[tokio::test]
async fn an_event_whose_claim_cannot_be_completed_is_acknowledged_and_stored_once() {
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicU32::new(u32::MAX));
    let left = failing.clone();
    let ports = shared::backend::embedded(dir.path(), clock.clone())
        .unwrap()
        .map_table(|inner| Arc::new(FailingCompletions { inner, left }));
    let app = app_on(ports, dir);
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    let first = app.post_telegram(&id, &body).await;
    assert_eq!(
        first.status,
        StatusCode::OK,
        "stored and published: a 5xx only brings a redelivery"
    );
    assert_eq!(app.messages("acme").await.len(), 1);
    // Within the lease a redelivery waits; after it, it takes over and adds nothing.
    assert_eq!(
        app.post_telegram(&id, &body).await.status,
        StatusCode::CONFLICT
    );
    failing.store(0, Ordering::SeqCst);
    clock.advance(SignedDuration::from_secs(61));
    assert_eq!(app.post_telegram(&id, &body).await.status, StatusCode::OK);
    assert_eq!(app.messages("acme").await.len(), 1);
    let published = app.published().await;
    assert!(published.iter().all(|e| e["id"] == published[0]["id"]));
}
