//! Storage round trips per inbound message (issue 19: the cost that dominates in AWS,
//! where each table call is a DynamoDB request and each queue call an SQS request).
//! A count is not a timing: these are pinned exactly, so a change that adds a request to
//! the hot path fails here and one that removes a request updates the figures below and
//! in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde_json::Value;
use shared::config::QueueRole;
use shared::ports::SystemClock;
use shared::testing::{CountingQueue, CountingTable};
use support::{app_on, fixture};

/// (table reads, table writes, inbound-events queue calls) today; issue 19's goal is at
/// most 3 table requests + 1 SQS request for a new message, 1 table request for a duplicate.
/// The integration is looked up once per process and [`BY_ID_TTL`]: connecting it forgot
/// the process's copy, so the first message through each integration reads it.
///
/// [`BY_ID_TTL`]: shared::repo::integrations::BY_ID_TTL
const NEW_CLIENT: (u64, u64, u64) = (2, 5, 1);
/// The claim, the message transaction, the claim's completion (the integration and the
/// sender's identity are remembered by the process).
const KNOWN_CLIENT: (u64, u64, u64) = (0, 3, 1);
/// The same in a process that has seen neither (a cold container): the integration and
/// the identity are read.
const KNOWN_CLIENT_COLD: (u64, u64, u64) = (2, 3, 1);
/// The refused claim, which answers with the completed record.
const DUPLICATE: (u64, u64, u64) = (0, 1, 0);
/// A known client writing through a second integration: the optimistic store finds no
/// dialog, so the dialog is created and the message stored again.
const KNOWN_CLIENT_NEW_DIALOG: (u64, u64, u64) = (1, 5, 1);

/// Table reads, table writes and inbound-events queue calls since the last [`Counts::take`].
struct Counts {
    reads: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
}

impl Counts {
    fn take(&self) -> (u64, u64, u64) {
        (
            self.reads.swap(0, Ordering::SeqCst),
            self.writes.swap(0, Ordering::SeqCst),
            self.events.swap(0, Ordering::SeqCst),
        )
    }
}

fn counted_app() -> (support::App, Counts) {
    let dir = tempfile::tempdir().unwrap();
    let mut table_counts = None;
    let events = std::sync::OnceLock::new();
    let ports = shared::backend::embedded(dir.path(), Arc::new(SystemClock))
        .unwrap()
        .map_table(|inner| {
            let table = CountingTable::new(inner);
            table_counts = Some((table.reads.clone(), table.writes.clone()));
            Arc::new(table)
        })
        .map_queues(|role, inner| {
            if role != QueueRole::InboundEvents {
                return inner;
            }
            let queue = CountingQueue::new(inner);
            events.set(queue.calls.clone()).unwrap();
            Arc::new(queue)
        });
    let (reads, writes) = table_counts.unwrap();
    let counts = Counts {
        reads,
        writes,
        events: events.into_inner().unwrap(),
    };
    (app_on(ports, dir), counts)
}

/// A Telegram text update from the fixture's sender, with its own update and message id.
fn update(n: u64) -> Vec<u8> {
    let mut update: Value =
        serde_json::from_slice(&fixture("telegram/update-message-private-text.json")).unwrap();
    update["update_id"] = (900_000 + n).into();
    update["message"]["message_id"] = (500 + n).into();
    update["message"]["text"] = format!("message {n}").into();
    serde_json::to_vec(&update).unwrap()
}

#[tokio::test]
async fn requests_per_inbound_message_are_pinned() {
    let (app, counts) = counted_app();
    let id = app.connect_telegram_bot("acme", "tg1").await;
    counts.take();

    let first = app.post_telegram(&id, &update(1)).await;
    assert_eq!(first.status, StatusCode::OK);
    let new_client = counts.take();

    let second = app.post_telegram(&id, &update(2)).await;
    assert_eq!(second.status, StatusCode::OK);
    let known_client = counts.take();

    let again = app.post_telegram(&id, &update(2)).await;
    assert_eq!(again.status, StatusCode::OK);
    let duplicate = counts.take();

    // What a cold container knows: nothing.
    shared::repo::integrations::forget(&id);
    shared::repo::inbox::forget_tenant(&shared::domain::TenantId::parse("acme").unwrap());
    let cold = app.post_telegram(&id, &update(4)).await;
    assert_eq!(cold.status, StatusCode::OK);
    let known_client_cold = counts.take();

    let other = app.connect_telegram_bot("acme", "tg2").await;
    counts.take();
    let through_other = app.post_telegram(&other, &update(3)).await;
    assert_eq!(through_other.status, StatusCode::OK);
    let new_dialog = counts.take();

    println!("requests per inbound message (table reads, table writes, SQS calls):");
    println!("  first message of a new client: {new_client:?}");
    println!("  next message of a known client: {known_client:?}");
    println!("  duplicate delivery:            {duplicate:?}");
    println!("  known client, cold process:    {known_client_cold:?}");
    println!("  known client, new dialog:      {new_dialog:?}");
    let messages = app.messages("acme").await;
    assert_eq!(messages.len(), 4, "every message stored once");
    let dialogs: std::collections::BTreeSet<_> = messages
        .iter()
        .map(|m| m["dialog_id"].to_string())
        .collect();
    assert_eq!(dialogs.len(), 2, "one dialog per integration");
    assert_eq!(app.clients("acme").await.len(), 1);
    assert_eq!(app.published().await.len(), 4);

    assert_eq!(new_client, NEW_CLIENT, "first message of a new client");
    assert_eq!(known_client, KNOWN_CLIENT, "next message of a known client");
    assert_eq!(duplicate, DUPLICATE, "duplicate delivery");
    assert_eq!(
        known_client_cold, KNOWN_CLIENT_COLD,
        "known client, cold process"
    );
    assert_eq!(
        new_dialog, KNOWN_CLIENT_NEW_DIALOG,
        "known client, new dialog"
    );
}
