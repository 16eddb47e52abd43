//! EMF metrics of webhooks and of the bot push, in the vocabulary of
//! `shared::telemetry::metric_names`. Outside Lambda a record is a debug log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use shared::config::QueueRole;
use shared::ports::ManualClock;
use shared::ports::table::AttrValue;
use shared::telemetry::metric_names as metric;
use shared::testing::{FakeServer, LogCapture, metric_total};
use shared::worker::{WorkerOptions, poll_once};
use support::{app_on, fixture, tenant};
use webhook_receiver::push::BotPush;

#[tokio::test]
async fn webhooks_and_the_bot_push_count_under_their_provider() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let ports = shared::backend::embedded(dir.path(), clock.clone()).unwrap();
    let app = app_on(ports, dir);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let bot = FakeServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            (500, serde_json::json!({}))
        } else {
            (200, serde_json::json!({}))
        }
    })
    .await
    .unwrap();
    let mut item = shared::repo::bot_webhook::profile_key(&tenant("acme")).to_item();
    item.insert(
        "bot_webhook_url".into(),
        AttrValue::s(format!("{}/hook", bot.base)),
    );
    app.ports.table.put(item, None).await.unwrap();
    app.deps
        .bot_webhooks
        .store(
            &tenant("acme"),
            &shared::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
        )
        .await
        .unwrap();

    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    for _ in 0..2 {
        assert_eq!(app.post_telegram(&id, &body).await.status, StatusCode::OK);
    }
    let refused = app
        .post(
            "telegram_bot",
            &id,
            &[("x-telegram-bot-api-secret-token", "guess_0123456789abcdef")],
            &body,
        )
        .await;
    assert!(refused.status.is_client_error());

    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue.clone());
    let options = WorkerOptions {
        batch_size: 10,
        visibility: std::time::Duration::from_secs(30),
        idle: std::time::Duration::from_millis(10),
    };
    assert_eq!(poll_once(queue.as_ref(), &push, options).await.unwrap(), 1);
    clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(poll_once(queue.as_ref(), &push, options).await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let records = capture.metrics();
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::WEBHOOK_RECEIVED),
        1.0
    );
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::DUPLICATE_DROPPED),
        1.0
    );
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::WEBHOOK_REFUSED),
        1.0
    );
    assert_eq!(
        metric_total(&records, "telegram_bot", metric::WEBHOOK_FAILED),
        0.0
    );
    let webhook_latencies = records
        .iter()
        .filter(|r| r["provider"] == "telegram_bot" && r[metric::WEBHOOK_LATENCY].is_number())
        .count();
    assert_eq!(webhook_latencies, 3);

    assert_eq!(
        metric_total(&records, "bot_webhook", metric::PROVIDER_ERROR),
        1.0
    );
    assert_eq!(metric_total(&records, "bot_webhook", metric::QUEUED), 1.0);
    assert_eq!(metric_total(&records, "bot_webhook", metric::SENT), 1.0);
    assert_eq!(metric_total(&records, "bot_webhook", metric::DLQ), 0.0);
    let push_latencies = records
        .iter()
        .filter(|r| r["provider"] == "bot_webhook" && r[metric::LATENCY].is_number())
        .count();
    assert_eq!(push_latencies, 2);
}
