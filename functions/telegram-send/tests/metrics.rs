//! EMF metrics of sends and of the outbound worker: the vocabulary of
//! `shared::telemetry::metric_names`, each under the provider it concerns. Outside Lambda
//! a record is a debug log line (`emf = …`), captured here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use shared::config::QueueRole;
use shared::ports::queue::OutgoingMessage;
use shared::telemetry::metric_names as metric;
use shared::testing::{LogCapture, metric_total};
use support::{BOT_TOKEN, USER_ID, app};

#[tokio::test]
async fn a_message_that_never_gets_through_counts_failed_and_dlq_under_its_provider() {
    let capture = LogCapture::default();
    let _guard = capture.install();
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
    assert_eq!(app.dead_letters().await.len(), 1);

    let records = capture.metrics();
    let max = f64::from(QueueRole::Outbound.max_receives());
    assert_eq!(metric_total(&records, "telegram_bot", metric::DLQ), 1.0);
    assert_eq!(metric_total(&records, "telegram_bot", metric::FAILED), 1.0);
    // Queued by the request, then backed off by every delivery but the last.
    assert_eq!(metric_total(&records, "telegram_bot", metric::QUEUED), max);
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::PROVIDER_ERROR),
        1.0 + max
    );
    assert_eq!(metric_total(&records, "telegram_bot", metric::SENT), 0.0);
    let latencies = records
        .iter()
        .filter(|r| r["provider"] == "telegram_bot" && r[metric::LATENCY].is_number())
        .count();
    assert_eq!(latencies as f64, 1.0 + max, "one latency per provider call");
    assert!(
        records.iter().all(|r| r["provider"] != "telegram"),
        "nothing counted under the channel: {records:?}"
    );
    for record in &records {
        let cw = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], metric::NAMESPACE);
        assert_eq!(cw["Dimensions"], json!([[metric::PROVIDER]]));
    }

    // The worker's lines carry the route being tried, recorded on its span.
    let logs: Vec<Value> = capture
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        logs.iter().any(|l| l["span"]["name"] == "outbound"
            && l["span"]["provider"] == "telegram_bot"
            && l["span"]["integration_id"] == "bot1"
            && l["span"]["tenant_id"] == "acme"),
        "no worker line with the span's provider"
    );
}

#[tokio::test]
async fn a_poison_message_counts_as_dlq_of_an_unknown_provider() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let app = app().await;
    let queue = app.ports.queue(QueueRole::Outbound).unwrap();
    queue.send(OutgoingMessage::new("not json")).await.unwrap();
    assert_eq!(app.work().await, 1);
    let records = capture.metrics();
    assert_eq!(
        metric_total(&records, metric::UNKNOWN_PROVIDER, metric::DLQ),
        1.0
    );
}

#[tokio::test]
async fn a_fallback_counts_under_the_integration_that_delivered() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &wappi, "wappi").await;
    app.world.knows("acc-1", USER_ID);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    assert_eq!(r.json_body()["fallback_used"], true);

    let records = capture.metrics();
    assert_eq!(
        metric_total(&records, "telegram_crm", metric::FALLBACK_USED),
        1.0
    );
    assert_eq!(metric_total(&records, "telegram_crm", metric::SENT), 1.0);
    assert_eq!(metric_total(&records, "wappi", metric::PROVIDER_ERROR), 2.0);
    assert_eq!(metric_total(&records, "wappi", metric::FALLBACK_USED), 0.0);
    assert_eq!(metric_total(&records, "wappi", metric::FAILED), 0.0);
}

#[tokio::test]
async fn nobody_reachable_counts_one_failed_send() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let app = app().await;
    app.bot("acme", "bot1", BOT_TOKEN, true).await;
    let client = app.client("acme").await;
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let records = capture.metrics();
    assert_eq!(metric_total(&records, "telegram_bot", metric::FAILED), 1.0);
    assert_eq!(metric_total(&records, "telegram_bot", metric::SENT), 0.0);
}

#[tokio::test]
async fn an_idempotency_replay_counts_as_a_duplicate_dropped() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let app = app().await;
    app.bot("acme", "bot1", BOT_TOKEN, true).await;
    let client = app.client("acme").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    let body = json!({"client_id": client, "text": "hi"});
    for _ in 0..2 {
        let r = app.post("acme", &body, &[("idempotency-key", "k1")]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    }
    assert_eq!(app.sends().len(), 1);
    let records = capture.metrics();
    assert_eq!(metric_total(&records, "telegram_bot", metric::SENT), 1.0);
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::DUPLICATE_DROPPED),
        1.0
    );
}
