//! The events in `events/webhook-receiver/` (used by `sam local invoke -e` and
//! `cargo lambda invoke --data-file`) through the function's Lambda entry point, which
//! sends API Gateway events to the router and SQS events to the push worker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use shared::config::QueueRole;
use shared::http::lambda::dispatch;
use shared::ports::table::AttrValue;
use shared::testing::FakeServer;
use support::{App, app, fixture_text};
use webhook_receiver::push::BotPush;

async fn setup() -> App {
    let app = app();
    let wa_secret = fixture_text("whatsapp/signature-pywa/app_secret.txt");
    app.connect(
        "acme",
        "evt-whatsapp",
        "whatsapp",
        &[
            ("phone_number_id", "277321005464405"),
            ("access_token", "t"),
            ("app_secret", &wa_secret),
            ("verify_token", "verify_evt_0123456789"),
        ],
    )
    .await;
    app.connect(
        "acme",
        "evt-telegram",
        "telegram_bot",
        &[
            ("bot_token", "1:A"),
            ("webhook_secret", "tg_evt_secret_0123456789"),
        ],
    )
    .await;
    app.connect(
        "acme",
        "evt-max",
        "max",
        &[
            ("access_token", "t"),
            ("webhook_secret", "max_evt_secret_0123456789"),
        ],
    )
    .await;
    app.connect(
        "acme",
        "evt-viber",
        "viber",
        &[(
            "auth_token",
            &fixture_text("viber/signature_sdk_webhook.token.txt"),
        )],
    )
    .await;
    app.connect(
        "acme",
        "evt-vk",
        "vk",
        &[
            ("group_id", "123456"),
            ("access_token", "t"),
            ("confirmation_code", "confirmation_123456"),
            ("webhook_secret", "vk_evt_secret_0123456789"),
        ],
    )
    .await;
    app
}

fn event(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../events/webhook-receiver/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn every_api_gateway_event_gets_its_answer() {
    let app = setup().await;
    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue);
    for (name, status, body) in [
        ("whatsapp-message-signed", 200, None),
        ("whatsapp-message-tampered", 401, None),
        ("whatsapp-handshake", 200, Some("1158201444")),
        ("telegram-bot-message", 200, None),
        ("telegram-bot-wrong-secret", 401, None),
        ("telegram-bot-malformed", 400, None),
        ("max-message-created", 200, None),
        ("viber-message", 200, None),
        ("vk-confirmation", 200, Some("confirmation_123456")),
        ("unknown-integration", 404, None),
    ] {
        let response = dispatch(&app.router, &push, event(name)).await.unwrap();
        assert_eq!(response["statusCode"], status, "{name}: {response}");
        if let Some(body) = body {
            assert_eq!(response["body"], body, "{name}");
        }
    }
    // Four messages stored (WhatsApp, Telegram, MAX, Viber), each published once.
    assert_eq!(app.messages("acme").await.len(), 4);
    assert_eq!(app.published().await.len(), 4);
}

#[tokio::test]
async fn the_sqs_event_is_pushed_and_a_failed_push_is_a_batch_item_failure() {
    let app = setup().await;
    let queue = app.ports.queue(QueueRole::InboundEvents).unwrap();
    let push = BotPush::new(app.deps.clone(), queue);
    // No bot webhook configured: consumed, nothing failed.
    let response = dispatch(&app.router, &push, event("sqs-inbound-event"))
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));

    let bot = FakeServer::start(|_| (500, serde_json::json!({})))
        .await
        .unwrap();
    let mut item = shared::repo::bot_webhook::profile_key(&support::tenant("acme")).to_item();
    item.insert(
        "bot_webhook_url".into(),
        AttrValue::s(format!("{}/hook", bot.base)),
    );
    app.ports.table.put(item, None).await.unwrap();
    app.deps
        .bot_webhooks
        .store(
            &support::tenant("acme"),
            &shared::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
        )
        .await
        .unwrap();
    let response = dispatch(&app.router, &push, event("sqs-inbound-event"))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        "8f9f0f5e-1b7c-4c6b-9a55-1b2f0c3d4e5f"
    );
    assert_eq!(
        bot.requests()[0].header("webhook-id"),
        Some("evt_01jexample0000000000000000")
    );
}
