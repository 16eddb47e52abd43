//! The `Queue` contract.

use std::time::Duration;

use shared::ports::{MAX_BODY_BYTES, OutgoingMessage, QueueError};

use crate::backends::{Fixture, MAX_RECEIVES, QueuePair};

type Q = Fixture<QueuePair>;

const HIDE: Duration = Duration::from_secs(30);

/// Receives until something arrives (at most 10 s): for delays and visibility timeouts.
async fn receive_eventually(q: &Q) -> Vec<shared::ports::ReceivedMessage> {
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let got = q.queue.receive(10, HIDE).await.unwrap();
        if !got.is_empty() {
            return got;
        }
    }
    Vec::new()
}

pub async fn sent_message_is_received_and_deleted(q: Q) {
    let id = q
        .queue
        .send(OutgoingMessage::new(r#"{"n":1}"#))
        .await
        .unwrap();
    let got = q.queue.receive(10, HIDE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].body, r#"{"n":1}"#);
    assert_eq!(got[0].receive_count, 1);
    q.queue.delete(&got[0].receipt_handle).await.unwrap();
    q.queue
        .change_visibility(&got[0].receipt_handle, Duration::ZERO)
        .await
        .ok();
    assert!(
        q.queue
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn delay_hides_a_message_until_it_elapses(q: Q) {
    q.queue
        .send(OutgoingMessage::new("later").delayed(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(
        q.queue.receive(10, HIDE).await.unwrap().is_empty(),
        "a delayed message is hidden"
    );
    let got = receive_eventually(&q).await;
    assert_eq!(
        got.len(),
        1,
        "the message appears once the delay has elapsed"
    );
    assert_eq!(got[0].body, "later");
}

pub async fn received_message_stays_hidden_for_its_visibility_timeout(q: Q) {
    q.queue.send(OutgoingMessage::new("job")).await.unwrap();
    let first = q.queue.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(q.queue.receive(10, HIDE).await.unwrap().is_empty());
    let again = receive_eventually(&q).await;
    assert_eq!(
        again.len(),
        1,
        "the message comes back after its visibility timeout"
    );
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
}

pub async fn message_received_max_receives_times_lands_in_the_dlq(q: Q) {
    let id = q.queue.send(OutgoingMessage::new("poison")).await.unwrap();
    for attempt in 1..=MAX_RECEIVES {
        let got = q.queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1, "receive #{attempt}");
        assert_eq!(got[0].receive_count, attempt);
    }
    assert!(
        q.queue
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "after max receives the message has left the queue"
    );
    let dead = q.dlq.receive(10, HIDE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].message_id, id);
}

pub async fn batch_of_ten_is_sent_and_eleven_are_rejected(q: Q) {
    let batch = |n: usize| {
        (0..n)
            .map(|i| OutgoingMessage::new(format!("m{i}")))
            .collect::<Vec<_>>()
    };
    let ids = q.queue.send_batch(batch(10)).await.unwrap();
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|id| !id.is_empty()));
    assert_eq!(
        q.queue.send_batch(batch(11)).await,
        Err(QueueError::BatchSize(11))
    );
    assert_eq!(
        q.queue.send_batch(Vec::new()).await,
        Err(QueueError::BatchSize(0))
    );
    let mut bodies = Vec::new();
    for _ in 0..5 {
        for m in q.queue.receive(10, HIDE).await.unwrap() {
            bodies.push(m.body);
        }
        if bodies.len() == 10 {
            break;
        }
    }
    bodies.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

pub async fn oversized_body_and_long_delay_are_rejected(q: Q) {
    let big = OutgoingMessage::new("x".repeat(MAX_BODY_BYTES + 1));
    assert!(matches!(
        q.queue.send(big).await,
        Err(QueueError::Validation(_))
    ));
    let late = OutgoingMessage::new("x").delayed(Duration::from_secs(901));
    assert!(matches!(
        q.queue.send(late).await,
        Err(QueueError::Validation(_))
    ));
    assert!(
        q.queue
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}
