//! The signed push of inbound events to the tenant's bot webhook, from the queue, and the
//! log capture of a whole flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use shared::config::QueueRole;
use shared::ports::ManualClock;
use shared::ports::table::AttrValue;
use shared::signing::StandardWebhooks;
use shared::testing::{FakeServer, LogCapture};
use shared::worker::{WorkerOptions, poll_once};
use support::{App, TG_SECRET, app_on, fixture, tenant};
use webhook_receiver::push::BotPush;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn app_with_clock() -> (App, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let ports = shared::backend::embedded(dir.path(), clock.clone()).unwrap();
    (app_on(ports, dir), clock)
}

async fn set_bot_webhook(app: &App, tenant_id: &str, url: &str) {
    let mut item = shared::repo::bot_webhook::profile_key(&tenant(tenant_id)).to_item();
    item.insert("bot_webhook_url".into(), AttrValue::s(url));
    app.ports.table.put(item, None).await.unwrap();
    app.deps
        .bot_webhooks
        .store(&tenant(tenant_id), &shared::Secret::new(WHSEC.to_owned()))
        .await
        .unwrap();
}

fn options() -> WorkerOptions {
    WorkerOptions {
        batch_size: 10,
        visibility: std::time::Duration::from_secs(30),
        idle: std::time::Duration::from_millis(10),
    }
}

#[tokio::test]
async fn events_are_pushed_signed_retried_with_backoff_and_keep_their_webhook_id() {
    let (app, clock) = app_with_clock();
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
    set_bot_webhook(&app, "acme", &format!("{}/hook", bot.base)).await;
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    let r = app.post_telegram(&id, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        bot.requests().is_empty(),
        "never pushed on the request path"
    );

    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue.clone());
    assert_eq!(
        poll_once(queue.as_ref(), &push, options()).await.unwrap(),
        1
    );
    // Failed: hidden for the backoff (≥ 10 s), not redelivered at once.
    assert_eq!(
        poll_once(queue.as_ref(), &push, options()).await.unwrap(),
        0
    );
    clock.advance(SignedDuration::from_secs(16));
    assert_eq!(
        poll_once(queue.as_ref(), &push, options()).await.unwrap(),
        1
    );
    clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(
        poll_once(queue.as_ref(), &push, options()).await.unwrap(),
        0,
        "delivered, deleted"
    );

    let requests = bot.requests();
    assert_eq!(requests.len(), 2);
    let signer = StandardWebhooks::new(WHSEC).unwrap();
    for r in &requests {
        let id = r.header("webhook-id").unwrap();
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!(signer.verify(id, ts, &r.raw, r.header("webhook-signature").unwrap()));
        assert_eq!(r.body["type"], "message.received");
        assert_eq!(r.body["data"]["message"]["text"], "hello there");
    }
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    assert!(
        requests[0]
            .header("webhook-id")
            .unwrap()
            .starts_with("evt_")
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_2xx_ends_in_the_dlq() {
    let (app, clock) = app_with_clock();
    let bot = FakeServer::start(|_| (503, serde_json::json!({})))
        .await
        .unwrap();
    set_bot_webhook(&app, "acme", &format!("{}/hook", bot.base)).await;
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    app.post_telegram(&id, &body).await;
    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue.clone());
    for _ in 0..10 {
        poll_once(queue.as_ref(), &push, options()).await.unwrap();
        clock.advance(SignedDuration::from_secs(3600));
    }
    assert_eq!(
        bot.requests().len(),
        QueueRole::InboundEvents.max_receives() as usize
    );
    let dlq = app
        .ports
        .dead_letter_queue(QueueRole::InboundEvents)
        .unwrap();
    let dead = support::drain(dlq.as_ref()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["tenant_id"], "acme");
}

#[tokio::test]
async fn a_tenant_without_a_bot_webhook_consumes_its_events_quietly() {
    let (app, _clock) = app_with_clock();
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    app.post_telegram(&id, &body).await;
    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue.clone());
    assert_eq!(
        poll_once(queue.as_ref(), &push, options()).await.unwrap(),
        1
    );
    assert!(app.published().await.is_empty());
}

#[tokio::test]
async fn no_secret_reaches_a_log_line() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let (app, clock) = app_with_clock();
    let bot = FakeServer::start(|_| (500, serde_json::json!({})))
        .await
        .unwrap();
    set_bot_webhook(&app, "acme", &format!("{}/hook", bot.base)).await;
    let app_secret = "meta_app_secret_value_123456";
    let verify = "verify_token_value_123456";
    let wa = app
        .connect(
            "acme",
            "wa1",
            "whatsapp",
            &[
                ("phone_number_id", "277321005464405"),
                ("access_token", "EAAG_access_token_value"),
                ("app_secret", app_secret),
                ("verify_token", verify),
            ],
        )
        .await;
    let tg = app
        .connect(
            "acme",
            "tg1",
            "telegram_bot",
            &[
                ("bot_token", "4242:bot_token_value"),
                ("webhook_secret", TG_SECRET),
            ],
        )
        .await;
    let body = fixture("whatsapp/signature-pywa/body.json");
    let sig = support::hub_signature(app_secret, &body);
    assert_eq!(
        app.post("whatsapp", &wa, &[("x-hub-signature-256", &sig)], &body)
            .await
            .status,
        StatusCode::OK
    );
    app.post(
        "whatsapp",
        &wa,
        &[("x-hub-signature-256", "sha256=00")],
        &body,
    )
    .await;
    app.send(http::Method::GET, &format!("/v1/webhooks/whatsapp/{wa}?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=7"), &[], b"").await;
    let tg_body = fixture("telegram/update-message-private-text.json");
    app.post_telegram(&tg, &tg_body).await;
    app.post(
        "telegram_bot",
        &tg,
        &[("x-telegram-bot-api-secret-token", "guess_0123456789abcdef")],
        &tg_body,
    )
    .await;
    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue.clone());
    poll_once(queue.as_ref(), &push, options()).await.unwrap();
    clock.advance(SignedDuration::from_secs(60));
    let logs = capture.text();
    assert!(logs.contains("webhook refused"), "the capture works");
    for secret in [
        app_secret,
        verify,
        TG_SECRET,
        "EAAG_access_token_value",
        "bot_token_value",
        WHSEC,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "Hey there! I am using PyWa.",
        "hello there",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
