//! Transient failures: bounded retries in the request, then 202 and the outbound worker —
//! `retry_after` honoured, delivered exactly once after recovery, DLQ with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use serde_json::json;
use shared::config::QueueRole;
use shared::ports::queue::OutgoingMessage;
use support::{BOT_TOKEN, USER_ID, app};

#[tokio::test]
async fn a_429_with_retry_after_is_queued_and_not_retried_earlier() {
    let app = app().await;
    app.bot("acme", "bot1", BOT_TOKEN, true).await;
    let client = app.client("acme").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    app.world.down(BOT_TOKEN, 429, Some(30));
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json_body());
    let body = r.json_body();
    assert_eq!(body["status"], "queued");
    // 30 s is longer than a request may wait: one call, then the queue.
    assert_eq!(app.sends().len(), 1);
    assert_eq!(body["attempts"][0]["outcome"], "transient");
    let queued = app.messages("acme").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["status"], "queued");

    app.world.up(BOT_TOKEN);
    app.advance(29);
    assert_eq!(app.work().await, 0, "delivered before retry_after");
    assert_eq!(app.sends().len(), 1);
    app.advance(2);
    assert_eq!(app.work().await, 1);
    assert_eq!(app.sends().len(), 2);
    let stored = app.messages("acme").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], body["id"]);
    assert_eq!(stored[0]["status"], "sent");
    assert_eq!(stored[0]["attempts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_provider_that_is_down_gets_the_message_once_after_it_recovers() {
    let app = app().await;
    let crm = app.telegram_crm("acme", "crm1", "acc-1", true).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &crm, "telegram_crm").await;
    app.world.knows("acc-1", USER_ID);
    app.world.down("acc-1", 503, None);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Three tries in the request (bounded), then queued.
    assert_eq!(app.sends().len(), 3);
    let id = r.json_body()["id"].as_str().unwrap().to_owned();

    // Still down at the first delivery: backoff, the message stays queued.
    app.advance(11);
    assert_eq!(app.work().await, 1);
    assert_eq!(app.sends().len(), 4);
    assert_eq!(
        app.messages("acme")
            .await
            .iter()
            .filter(|m| m["id"] == id.as_str())
            .count(),
        1
    );

    app.world.up("acc-1");
    for _ in 0..6 {
        app.advance(1000);
        app.work().await;
    }
    let delivered: Vec<_> = app
        .sends()
        .into_iter()
        .filter(|c| c.path == "/crm/messages")
        .collect();
    assert_eq!(
        delivered.len(),
        5,
        "4 failed calls and exactly one delivery"
    );
    let stored: Vec<_> = app
        .messages("acme")
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "sent");
    assert_eq!(stored[0]["attempts"].as_array().unwrap().len(), 5);

    // SQS delivers at least once: the same job again sends nothing.
    let job = json!({
        "message_id": id, "tenant_id": "acme", "client_id": client,
        "content": {"text": "hi"},
        "routes": [{"integration_id": "crm1", "recipient": {"kind": "user_id", "value": USER_ID}}],
        "placeholder_dialog": stored[0]["dialog_id"],
    });
    let queue = app.ports.queue(QueueRole::Outbound).unwrap();
    queue
        .send(OutgoingMessage::new(job.to_string()))
        .await
        .unwrap();
    assert_eq!(app.work().await, 1);
    assert_eq!(app.sends().len(), 5);
    assert!(app.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_provider_that_never_recovers_ends_failed_in_the_dlq_with_the_reason() {
    let app = app().await;
    app.bot("acme", "bot1", BOT_TOKEN, true).await;
    let client = app.client("acme").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    app.world.down(BOT_TOKEN, 429, Some(60));
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    for _ in 0..10 {
        app.advance(1000);
        app.work().await;
    }
    let max = QueueRole::Outbound.max_receives() as usize;
    assert_eq!(app.sends().len(), 1 + max);
    let dead = app.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 5 deliveries")
    );
    assert_eq!(dead[0]["job"]["message_id"], r.json_body()["id"]);
    let stored = app.messages("acme").await;
    assert_eq!(stored[0]["status"], "failed");
    assert!(
        stored[0]["status_reason"]
            .as_str()
            .unwrap()
            .contains("Too Many Requests")
    );
    assert_eq!(stored[0]["attempts"].as_array().unwrap().len(), 1 + max);
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_at_once() {
    let app = app().await;
    let queue = app.ports.queue(QueueRole::Outbound).unwrap();
    queue.send(OutgoingMessage::new("not json")).await.unwrap();
    assert_eq!(app.work().await, 1);
    let dead = app.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["job"], "not json");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not an outbound job")
    );
    assert_eq!(app.work().await, 0);
}

/// A queued message the worker delivers through another integration than its
/// placeholder's moves to that integration's dialog; a second copy of the job (SQS
/// delivers at least once) finds it there and sends nothing.
#[tokio::test]
async fn a_job_delivered_through_a_fallback_is_not_sent_again_by_its_copy() {
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &wappi, "wappi").await;
    app.world.knows("profile-a", USER_ID);
    app.world.knows("acc-1", USER_ID);
    app.world.down("profile-a", 503, None);
    app.world.down("acc-1", 503, None);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json_body());
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    let placeholder_dialog = r.json_body()["dialog_id"].as_str().unwrap().to_owned();
    app.advance(11);
    let job = app
        .ports
        .queue(QueueRole::Outbound)
        .unwrap()
        .receive(1, std::time::Duration::ZERO)
        .await
        .unwrap()
        .pop()
        .unwrap()
        .body;

    // The wappi token is revoked meanwhile, the CRM account recovers: the worker falls
    // back to the CRM integration, whose dialog is not the placeholder's.
    let crm_calls = |app: &support::App| {
        app.sends()
            .into_iter()
            .filter(|c| c.path == "/crm/messages")
            .count()
    };
    let failed = crm_calls(&app);
    app.world.down("profile-a", 401, None);
    app.world.up("acc-1");
    app.advance(1000);
    assert_eq!(app.work().await, 1);
    let delivered = |app: &support::App| crm_calls(app) - failed;
    assert_eq!(delivered(&app), 1);
    let outbound: Vec<_> = app
        .messages("acme")
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(outbound.len(), 1, "{outbound:?}");
    assert_eq!(outbound[0]["status"], "sent");
    assert_eq!(outbound[0]["integration_id"], "crm1");
    assert_ne!(outbound[0]["dialog_id"], placeholder_dialog.as_str());

    // The copy of the job.
    app.ports
        .queue(QueueRole::Outbound)
        .unwrap()
        .send(OutgoingMessage::new(job))
        .await
        .unwrap();
    app.advance(1000);
    assert_eq!(app.work().await, 1);
    assert_eq!(delivered(&app), 1, "message {id} reached the chat twice");
    assert!(app.dead_letters().await.is_empty());
}
