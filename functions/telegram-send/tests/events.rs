//! The events in `events/telegram-send/`, `events/telegram-crm-send/` and
//! `events/outbound-worker/` (used by `sam local invoke -e` and `cargo lambda invoke
//! --data-file`) through the Lambda entry point, against the local provider server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use shared::domain::inbox::{Client, Identity};
use shared::domain::{ClientId, TenantId};
use shared::http::Router;
use shared::http::lambda::dispatch;
use support::{App, app};

const CLIENT: &str = "01jd8x3k5q9w2e4r6t8y0vxz7m";

/// The tenant, integrations and client the events name.
async fn setup() -> App {
    let app = app().await;
    app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let now = app.ports.clock.now();
    let client = Client {
        id: ClientId::parse(CLIENT).unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        name: Some("Ivan".into()),
        phone: Some("+79991234567".into()),
        identities: vec![Identity {
            channel: "telegram".into(),
            external_id: "1212686911".into(),
            username: None,
        }],
        created_at: now,
        updated_at: now,
    };
    assert!(app.deps.sender.inbox.insert_client(&client).await.unwrap());
    app.world.knows("acc-1", "1212686911");
    app
}

async fn invoke(app: &App, router: &Router, function: &str, name: &str) -> Value {
    dispatch(router, &app.worker, shared::testing::event(function, name))
        .await
        .unwrap()
}

#[tokio::test]
async fn telegram_send_events() {
    let app = setup().await;
    let sent = invoke(&app, &app.send, "telegram-send", "send-text").await;
    assert_eq!(shared::testing::status_of(&sent), 200, "{sent}");
    assert_eq!(shared::testing::body_of(&sent)["integration_id"], "crm1");
    let file = invoke(&app, &app.send, "telegram-send", "send-file").await;
    assert_eq!(shared::testing::status_of(&file), 200, "{file}");
    let first = invoke(&app, &app.send, "telegram-send", "idempotent").await;
    let again = invoke(&app, &app.send, "telegram-send", "idempotent").await;
    assert_eq!(shared::testing::status_of(&first), 200);
    assert_eq!(
        shared::testing::body_of(&first),
        shared::testing::body_of(&again)
    );
    assert_eq!(
        app.sends()
            .iter()
            .filter(|c| c.path == "/crm/messages")
            .count(),
        3
    );
    for bad in ["bad-empty", "bad-file-url"] {
        let r = invoke(&app, &app.send, "telegram-send", bad).await;
        assert_eq!(shared::testing::status_of(&r), 422, "{bad}: {r}");
    }
    // The event's API key is not one of this tenant's.
    let r = invoke(&app, &app.send, "telegram-send", "api-key").await;
    assert_eq!(shared::testing::status_of(&r), 401);
}

#[tokio::test]
async fn telegram_crm_send_events() {
    let app = setup().await;
    let sent = invoke(&app, &app.crm, "telegram-crm-send", "send").await;
    assert_eq!(shared::testing::status_of(&sent), 200, "{sent}");
    assert_eq!(shared::testing::body_of(&sent)["provider"], "telegram_crm");
    let missing = invoke(&app, &app.crm, "telegram-crm-send", "missing-integration").await;
    assert_eq!(shared::testing::status_of(&missing), 422);
}

#[tokio::test]
async fn outbound_worker_events() {
    let app = setup().await;
    let router = outbound_worker::router();
    let done = invoke(&app, &router, "outbound-worker", "job").await;
    assert_eq!(done["batchItemFailures"], serde_json::json!([]), "{done}");
    let stored = app.messages("acme").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "sent");
    assert_eq!(stored[0]["integration_id"], "crm1");
    let poison = invoke(&app, &router, "outbound-worker", "poison").await;
    assert_eq!(poison["batchItemFailures"], serde_json::json!([]));
    assert_eq!(app.dead_letters().await.len(), 1);
}
