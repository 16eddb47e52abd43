//! The local SQS consumer loop keeps Lambda's contract: partial batch failures stay on the
//! queue, come back, and end in the DLQ after max receives; successes are deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::backend;
use shared::config::QueueRole;
use shared::ports::{OutgoingMessage, SystemClock};
use shared::worker::{self, SqsConsumer, WorkerOptions};

/// Fails every record whose body starts with "bad"; remembers what it saw.
#[derive(Default)]
struct Picky {
    seen: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl SqsConsumer for Picky {
    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed = Vec::new();
        for record in event.records {
            let body = record.body.unwrap_or_default();
            let count = record
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default();
            self.seen.lock().unwrap().push((body.clone(), count));
            if body.starts_with("bad") {
                failed.push(record.message_id.unwrap_or_default());
            }
        }
        worker::batch_response(failed)
    }
}

#[tokio::test]
async fn failed_records_are_redelivered_until_the_dlq_and_successes_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let queue = ports.queue(QueueRole::LeadDelivery).unwrap();
    let dlq = ports.dead_letter_queue(QueueRole::LeadDelivery).unwrap();
    queue
        .send_batch(vec![
            OutgoingMessage::new("good"),
            OutgoingMessage::new("bad"),
        ])
        .await
        .unwrap();
    let consumer = Picky::default();
    let options = WorkerOptions {
        visibility: Duration::ZERO,
        ..WorkerOptions::default()
    };
    for _ in 0..10 {
        worker::poll_once(queue.as_ref(), &consumer, options)
            .await
            .unwrap();
    }
    let seen = consumer.seen.lock().unwrap().clone();
    let good: Vec<_> = seen.iter().filter(|(b, _)| b == "good").collect();
    let bad: Vec<_> = seen
        .iter()
        .filter(|(b, _)| b == "bad")
        .map(|(_, c)| c.as_str())
        .collect();
    assert_eq!(good.len(), 1, "a processed message is deleted: {seen:?}");
    let max = QueueRole::LeadDelivery.max_receives();
    let expected: Vec<String> = (1..=max).map(|i| i.to_string()).collect();
    assert_eq!(
        bad, expected,
        "a failed message comes back with a growing receive count"
    );
    let dead = dlq.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "bad");
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
}

#[tokio::test]
async fn run_consumer_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let queue = ports.queue(QueueRole::Outbound).unwrap();
    queue.send(OutgoingMessage::new("good")).await.unwrap();
    let consumer = Arc::new(Picky::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run_consumer(
        queue.clone(),
        consumer.clone(),
        WorkerOptions::default(),
        stopped,
    ));
    for _ in 0..50 {
        if !consumer.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumer.seen.lock().unwrap().len(), 1);
}
