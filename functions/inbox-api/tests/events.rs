//! The events in `events/inbox-api/` (used by `sam local invoke -e` and `cargo lambda
//! invoke --data-file`) through the Lambda entry point, on a tenant holding the client and
//! the MAX dialog they name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shared::backend;
use shared::config::{Config, QueueRole};
use shared::domain::inbox::{Client, Dialog, Identity};
use shared::domain::{ClientId, DialogId, IntegrationId, TenantId};
use shared::http::lambda::dispatch;
use shared::ports::SystemClock;

const CLIENT: &str = "01jd8x3k5q9w2e4r6t8y0vxz7m";
const DIALOG: &str = "dlg_5dafd2decf33560c0d26610bcc5d179d";

#[tokio::test]
async fn inbox_api_events() {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let deps = inbox_api::Deps::new(&ports, &config).unwrap();
    let router = inbox_api::router(deps.clone());
    let worker = outbound_worker::worker(&ports, &config).unwrap();
    shared::testing::store_integration(
        &ports,
        "acme",
        "max1",
        "max",
        &[
            ("access_token", "t"),
            ("webhook_secret", "max_secret_0123456789"),
        ],
        true,
    )
    .await;
    let tenant = TenantId::parse("acme").unwrap();
    let now = ports.clock.now();
    let inbox = &deps.sender.inbox;
    assert!(
        inbox
            .insert_client(&Client {
                id: ClientId::parse(CLIENT).unwrap(),
                tenant_id: tenant.clone(),
                name: Some("Ivan".into()),
                phone: Some("+79991234567".into()),
                identities: vec![Identity {
                    channel: "max".into(),
                    external_id: "123456789".into(),
                    username: None,
                }],
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap()
    );
    inbox
        .ensure_dialog(&Dialog {
            id: DialogId::parse(DIALOG).unwrap(),
            tenant_id: tenant,
            client_id: ClientId::parse(CLIENT).unwrap(),
            integration_id: IntegrationId::parse("max1").unwrap(),
            channel: "max".into(),
            provider: "max".into(),
            chat_id: "182182182".into(),
            created_at: now,
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: Some(now),
            unread_count: 0,
        })
        .await
        .unwrap();

    let run = |name: &'static str| {
        let router = &router;
        let worker = &worker;
        async move {
            dispatch(router, worker, shared::testing::event("inbox-api", name))
                .await
                .unwrap()
        }
    };
    let created = run("create-client").await;
    assert_eq!(shared::testing::status_of(&created), 201, "{created}");
    let found = run("find-client").await;
    assert_eq!(shared::testing::status_of(&found), 200);
    assert_eq!(
        shared::testing::body_of(&found)["items"][0]["id"],
        shared::testing::body_of(&created)["id"]
    );
    let got = run("get-client").await;
    assert_eq!(shared::testing::status_of(&got), 200);
    assert_eq!(shared::testing::body_of(&got)["dialogs"][0]["id"], DIALOG);
    let dialogs = run("list-dialogs").await;
    assert_eq!(shared::testing::body_of(&dialogs)["items"][0]["id"], DIALOG);
    let reply = run("reply").await;
    assert_eq!(shared::testing::status_of(&reply), 202, "{reply}");
    assert_eq!(shared::testing::body_of(&reply)["status"], "queued");
    let again = run("reply").await;
    assert_eq!(
        shared::testing::body_of(&again)["id"],
        shared::testing::body_of(&reply)["id"],
        "the event's Idempotency-Key"
    );
    let messages = run("list-messages").await;
    assert_eq!(
        shared::testing::body_of(&messages)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for bad in ["reply-empty", "reply-unknown-attachment"] {
        assert_eq!(shared::testing::status_of(&run(bad).await), 422, "{bad}");
    }
    let queue = ports.queue(QueueRole::Outbound).unwrap();
    assert_eq!(shared::testing::drain(queue.as_ref()).await.len(), 1);
}
