//! The HTTP contract: Idempotency-Key, bad input, tenant isolation, API-key scopes,
//! telegram-crm-send, and logs that never carry a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use shared::http::{ApiRequest, Scope};
use shared::testing::LogCapture;
use support::{BOT_TOKEN, CRM_TOKEN, USER_ID, WAPPI_TOKEN, app, tenant};

#[tokio::test]
async fn the_same_key_and_body_answer_the_first_response_without_a_second_send() {
    let app = app().await;
    app.telegram_crm("acme", "crm1", "acc-1", true).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", USER_ID);
    let body = json!({"client_id": client, "text": "hi"});
    let key = [("idempotency-key", "order-42-confirmation")];
    let first = app.post("acme", &body, &key).await;
    assert_eq!(first.status, StatusCode::OK);
    // Same JSON, other key order and spacing: the same request.
    let reordered = json!({"text": "hi", "client_id": client});
    let second = app.post("acme", &reordered, &key).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json_body(), first.json_body());
    assert_eq!(second.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(app.sends().len(), 1);
    assert_eq!(app.messages("acme").await.len(), 1);

    let other = app
        .post("acme", &json!({"client_id": client, "text": "bye"}), &key)
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.json_body()["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.sends().len(), 1);

    // Keys are per tenant: another tenant's identical key is its own request.
    app.telegram_crm("other", "crm2", "acc-1", true).await;
    let theirs = app.client("other").await;
    let r = app
        .post("other", &json!({"client_id": theirs, "text": "hi"}), &key)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.sends().len(), 2);
}

#[tokio::test]
async fn two_concurrent_requests_with_one_key_send_once() {
    let app = app().await;
    app.telegram_crm("acme", "crm1", "acc-1", true).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", USER_ID);
    let body = json!({"client_id": client, "text": "hi"});
    let key = [("idempotency-key", "k-concurrent")];
    let (a, b) = tokio::join!(app.post("acme", &body, &key), app.post("acme", &body, &key));
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(a.json_body()["id"], b.json_body()["id"]);
    assert_eq!(app.sends().len(), 1);
}

#[tokio::test]
async fn a_queued_answer_is_replayed_too() {
    let app = app().await;
    app.bot("acme", "bot1", BOT_TOKEN, true).await;
    let client = app.client("acme").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    app.world.down(BOT_TOKEN, 429, Some(60));
    let body = json!({"client_id": client, "text": "hi"});
    let key = [("idempotency-key", "k-queued")];
    let first = app.post("acme", &body, &key).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = app.post("acme", &body, &key).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json_body()["id"], first.json_body()["id"]);
    assert_eq!(app.sends().len(), 1);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let app = app().await;
    let client = app.client("acme").await;
    // No Telegram integration yet.
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json_body()["error"]["code"], "NO_TELEGRAM_INTEGRATION");
    app.wappi("acme", "wappi1", "profile-a", true).await;

    let cases = [
        (json!({"client_id": client}), "text"),
        (json!({"client_id": client, "text": "   "}), "text"),
        (
            json!({"client_id": client, "file_url": "ftp://example.com/a.pdf"}),
            "file_url",
        ),
        (
            json!({"client_id": client, "file_url": "not a url"}),
            "file_url",
        ),
        (
            json!({"client_id": client, "file_url": "https://example.com/a", "file_type": "pdf"}),
            "file_type",
        ),
        (
            json!({"client_id": client, "file_name": "a.pdf", "text": "x"}),
            "file_url",
        ),
        (
            json!({"client_id": client, "text": "x".repeat(4097)}),
            "text",
        ),
        (
            json!({"client_id": client, "text": "x".repeat(1025), "file_url": "https://example.com/a"}),
            "text",
        ),
        (json!({"client_id": "bad#id", "text": "hi"}), "client_id"),
        (
            json!({"client_id": client, "text": "hi", "integration_id": "a b"}),
            "integration_id",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("acme", &body, &[]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            r.json_body()["error"]["code"],
            "VALIDATION_FAILED",
            "{body}"
        );
        assert_eq!(r.json_body()["error"]["details"]["field"], field, "{body}");
    }
    let r = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "hi", "extra": 1}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let unknown = app
        .post(
            "acme",
            &json!({"client_id": "01unknownclient", "text": "hi"}),
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json_body()["error"]["code"], "CLIENT_NOT_FOUND");

    // A client of another tenant is not found, and nothing is sent for it.
    let theirs = app.client("other").await;
    let r = app
        .post("acme", &json!({"client_id": theirs, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Another tenant's integration cannot be named either.
    app.wappi("other", "wappi9", "profile-z", true).await;
    let r = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "hi", "integration_id": "wappi9"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json_body()["error"]["code"], "INTEGRATION_NOT_FOUND");
    assert!(app.sends().is_empty());

    // A client with neither a Telegram account nor a phone.
    let bare = app
        .deps
        .sender
        .inbox
        .identify(
            &tenant("acme"),
            &shared::repo::inbox::Contact {
                channel: "max".into(),
                external_id: "555".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = app
        .post("acme", &json!({"client_id": bare, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json_body()["error"]["code"], "NO_TELEGRAM_CONTACT");
    assert_eq!(
        r.json_body()["error"]["message"],
        "У клиента нет Telegram и номера телефона"
    );
}

#[tokio::test]
async fn an_api_key_needs_the_messages_send_scope() {
    let app = app().await;
    app.telegram_crm("acme", "crm1", "acc-1", true).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", USER_ID);
    let keys = &app.deps.api_keys;
    let (_, read_only) = keys
        .create(&tenant("acme"), "ro", vec![Scope::ConfigRead])
        .await
        .unwrap();
    let (_, sender) = keys
        .create(&tenant("acme"), "bot", vec![Scope::MessagesSend])
        .await
        .unwrap();
    let call = |key: Option<String>| {
        let mut req = ApiRequest::new(Method::POST, "/v1/messages/telegram");
        req.body = json!({"client_id": client, "text": "hi"})
            .to_string()
            .into_bytes()
            .into();
        if let Some(key) = key {
            req.headers.insert("x-api-key", key.parse().unwrap());
        }
        app.send.handle(req)
    };
    assert_eq!(call(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(Some(read_only.expose().clone())).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(Some(sender.expose().clone())).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn telegram_crm_send_uses_only_the_named_crm_integration() {
    let app = app().await;
    app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", "+79161234567");
    app.world.knows("profile-a", USER_ID);

    let missing = app
        .post_crm("acme", &json!({"client_id": client, "text": "hi"}))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.json_body()["error"]["details"]["field"],
        "integration_id"
    );
    let wrong = app
        .post_crm(
            "acme",
            &json!({"client_id": client, "text": "hi", "integration_id": "wappi1"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        wrong.json_body()["error"]["code"],
        "WRONG_INTEGRATION_PROVIDER"
    );
    assert!(app.sends().is_empty());

    let r = app
        .post_crm(
            "acme",
            &json!({"client_id": client, "text": "hi", "integration_id": "crm1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    let body = r.json_body();
    assert_eq!(body["integration_id"], "crm1");
    // By id (unknown to this account), then by phone — never through Wappi.
    let calls = app.sends();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["peer"], json!({"phone": "+79161234567"}));

    app.disable(
        "acme",
        &shared::domain::IntegrationId::parse("crm1").unwrap(),
    )
    .await;
    let off = app
        .post_crm(
            "acme",
            &json!({"client_id": client, "text": "hi", "integration_id": "crm1"}),
        )
        .await;
    assert_eq!(off.json_body()["error"]["code"], "INTEGRATION_DISABLED");
}

#[tokio::test]
async fn no_token_reaches_a_log_line() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    app.bot("acme", "bot1", BOT_TOKEN, false).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &wappi, "wappi").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    app.world.down(BOT_TOKEN, 429, Some(5));
    let r = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "secret text 123"}),
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.world.up(BOT_TOKEN);
    app.advance(20);
    assert_eq!(app.work().await, 1);
    assert_eq!(
        app.messages("acme")
            .await
            .iter()
            .filter(|m| m["status"] == "sent")
            .count(),
        1
    );
    let logs = capture.text();
    assert!(
        logs.contains("outbound send attempt"),
        "the flow was logged"
    );
    for secret in [
        WAPPI_TOKEN,
        CRM_TOKEN,
        BOT_TOKEN,
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "secret text 123",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
