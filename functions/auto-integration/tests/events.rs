//! The events in `events/auto-integration/` and `events/lead-delivery/` through the
//! functions' Lambda entry points, on a tenant holding the lead and integrations they name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use shared::backend;
use shared::config::{Config, QueueRole};
use shared::domain::lead::Lead;
use shared::domain::{LeadId, TenantId};
use shared::http::lambda::dispatch;
use shared::ports::SystemClock;
use shared::testing::{FakeServer, SmtpSink, store_integration};

const LEAD: &str = "01jd9a0000000000000000lead";
const BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

#[tokio::test]
async fn auto_integration_and_lead_delivery_events() {
    let telegram = FakeServer::start(|_| {
        (200, json!({"ok": true, "result": {"message_id": 1, "date": 1700000000, "chat": {"id": 1, "type": "private"}}}))
    })
    .await
    .unwrap();
    let smtp = SmtpSink::start().await.unwrap();
    let base = telegram.base.clone();
    let port = smtp.port.to_string();
    let config = Config::from_lookup(|name| match name {
        "TELEGRAM_API_BASE" => Some(base.clone()),
        "SMTP_HOST" => Some("127.0.0.1".into()),
        "SMTP_PORT" => Some(port.clone()),
        "SMTP_TLS" => Some("none".into()),
        _ => None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let deps = auto_integration::Deps::new(&ports, &config).unwrap();
    let router = auto_integration::router(deps.clone());
    let intake = auto_integration::Intake::new(deps.clone(), &ports).unwrap();
    let delivery = lead_delivery::LeadDelivery::new(&ports, &config).unwrap();
    store_integration(
        &ports,
        "acme",
        "tg1",
        "telegram",
        &[("bot_token", BOT_TOKEN), ("chat_id", "-100123")],
        false,
    )
    .await;
    store_integration(
        &ports,
        "acme",
        "email1",
        "email",
        &[
            ("recipients", "sales@example.com"),
            ("from_address", "leads@example.com"),
        ],
        false,
    )
    .await;
    let lead = Lead {
        id: LeadId::parse(LEAD).unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        name: Some("Ivan".into()),
        phone: None,
        email: None,
        comment: None,
        source: None,
        utm: BTreeMap::new(),
        external_entity_id: Some("site-42".into()),
        external_project_id: Some("proj-7".into()),
        attributes: BTreeMap::new(),
        created_at: jiff::Timestamp::now(),
    };
    deps.service.leads.insert(&lead).await.unwrap();

    let http = |name: &'static str| {
        let router = &router;
        let intake = &intake;
        async move {
            dispatch(
                router,
                intake,
                shared::testing::event("auto-integration", name),
            )
            .await
            .unwrap()
        }
    };
    let routed = http("routing-put-entity").await;
    assert_eq!(shared::testing::status_of(&routed), 200, "{routed}");
    let refused = http("routing-put-entity-agent").await;
    assert_eq!(shared::testing::status_of(&refused), 403, "{refused}");
    assert_eq!(
        shared::testing::body_of(&refused)["error"]["code"],
        "ROLE_REQUIRED"
    );
    let created = http("create-lead").await;
    assert_eq!(shared::testing::status_of(&created), 201, "{created}");
    assert_eq!(
        shared::testing::body_of(&created)["dispatch"]["report"]["dispatched"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        shared::testing::body_of(&http("create-lead-delayed").await)["dispatch"]["status"],
        "scheduled"
    );
    assert_eq!(
        shared::testing::status_of(&http("create-lead-invalid").await),
        422
    );
    assert_eq!(
        shared::testing::body_of(&http("deliveries").await)["items"],
        json!([])
    );
    let one = http("resend-one").await;
    assert_eq!(
        shared::testing::body_of(&one)["dispatched"][0]["integration_id"],
        "tg1",
        "{one}"
    );
    let bulk = shared::testing::body_of(&http("resend-bulk").await);
    assert_eq!(
        (
            bulk["dispatched_count"].as_u64(),
            bulk["errors_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let due = http("sqs-intake").await;
    assert_eq!(due["batchItemFailures"], json!([]), "{due}");

    let worker = |name: &'static str| {
        let delivery = &delivery;
        async move {
            dispatch(
                &lead_delivery::router(),
                delivery,
                shared::testing::event("lead-delivery", name),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(worker("sqs-delivery").await["batchItemFailures"], json!([]));
    assert_eq!(worker("sqs-poison").await["batchItemFailures"], json!([]));
    let dlq = ports.dead_letter_queue(QueueRole::LeadDelivery).unwrap();
    let dead = shared::testing::drain(dlq.as_ref()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["job"], "not json");
}
