//! The receiver's behaviour beyond the per-provider matrix: exact signature vectors,
//! handshakes, answers, failure and redelivery, cross-channel clients, edits, statuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use shared::config::QueueRole;
use shared::domain::inbox::{Dialog, Direction, Message};
use shared::domain::{ClientId, MessageId};
use shared::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use shared::repo::inbox::Contact;
use support::{TG_SECRET, app, fixture, fixture_text, hub_signature, tamper, tenant};

#[tokio::test]
async fn the_meta_signed_whatsapp_body_verifies_with_its_own_header_and_not_when_tampered() {
    let app = app();
    let secret = fixture_text("whatsapp/signature-pywa/app_secret.txt");
    let id = app
        .connect(
            "acme",
            "wa1",
            "whatsapp",
            &[
                ("phone_number_id", "277321005464405"),
                ("access_token", "t"),
                ("app_secret", &secret),
                ("verify_token", "verify_0123456789"),
            ],
        )
        .await;
    let body = fixture("whatsapp/signature-pywa/body.json");
    let header = fixture_text("whatsapp/signature-pywa/x-hub-signature-256.txt");
    let ok = app
        .post("whatsapp", &id, &[("x-hub-signature-256", &header)], &body)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let tampered = app
        .post(
            "whatsapp",
            &id,
            &[("x-hub-signature-256", &header)],
            &tamper(&body),
        )
        .await;
    assert_eq!(tampered.status, StatusCode::UNAUTHORIZED);
    let messages = app.messages("acme").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "Hey there! I am using PyWa.");
    assert_eq!(
        messages[0]["provider_message_id"],
        "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
    );
    let client = &app.clients("acme").await[0];
    assert_eq!(client["phone"], "+972544401243");
    assert_eq!(client["name"], "PyWa Tests");
}

#[tokio::test]
async fn viber_sdk_signature_example_verifies_and_a_tampered_copy_does_not() {
    let app = app();
    let token = fixture_text("viber/signature_sdk_webhook.token.txt");
    let id = app
        .connect("acme", "vb1", "viber", &[("auth_token", &token)])
        .await;
    let body = fixture("viber/signature_sdk_webhook.json");
    let sig = fixture_text("viber/signature_sdk_webhook.sig.txt");
    // The SDK's body is a `webhook` callback: verified, acknowledged, not stored.
    let ok = app
        .post("viber", &id, &[("x-viber-content-signature", &sig)], &body)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = app
        .post(
            "viber",
            &id,
            &[("x-viber-content-signature", &sig)],
            &tamper(&body),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(app.messages("acme").await.is_empty());
}

#[tokio::test]
async fn messenger_library_sha1_signatures_verify_when_no_sha256_header_is_sent() {
    for (stem, stored) in [
        ("text_signed_messenger4j", 1),
        ("text_signed_sociably", 1),
        ("empty_object_signed_bottender", 0),
    ] {
        let app = app();
        let secret = fixture_text(&format!("messenger/{stem}.app_secret.txt"));
        let id = app
            .connect(
                "acme",
                "fb1",
                "messenger",
                &[
                    ("page_id", "1"),
                    ("access_token", "t"),
                    ("app_secret", &secret),
                    ("verify_token", "verify_0123456789"),
                ],
            )
            .await;
        let body = fixture(&format!("messenger/{stem}.json"));
        let sig = fixture_text(&format!("messenger/{stem}.x_hub_signature.txt"));
        let response = app
            .post("messenger", &id, &[("x-hub-signature", &sig)], &body)
            .await;
        // bottender's `{}` is verified, then refused as not a Messenger body.
        let expected = if stored == 1 {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(
            response.status,
            expected,
            "{stem}: {:?}",
            response.json_body()
        );
        let bad = app
            .post(
                "messenger",
                &id,
                &[("x-hub-signature", &sig)],
                &tamper(&body),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{stem}");
        // A sha256 header, when present, is the one that counts.
        let wrong256 = app
            .post(
                "messenger",
                &id,
                &[
                    ("x-hub-signature", &sig),
                    ("x-hub-signature-256", "sha256=00"),
                ],
                &body,
            )
            .await;
        assert_eq!(wrong256.status, StatusCode::UNAUTHORIZED, "{stem}");
        assert_eq!(app.messages("acme").await.len(), stored, "{stem}");
    }
}

#[tokio::test]
async fn meta_handshake_answers_the_challenge_only_for_the_verify_token() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "wa1",
            "whatsapp",
            &[
                ("phone_number_id", "1"),
                ("access_token", "t"),
                ("app_secret", "s"),
                ("verify_token", "verify_0123456789"),
            ],
        )
        .await;
    let path = format!(
        "/v1/webhooks/whatsapp/{id}?hub.mode=subscribe&hub.verify_token=verify_0123456789&hub.challenge=1158201444"
    );
    let ok = app.send(Method::GET, &path, &[], b"").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(&ok.body[..], b"1158201444");
    let wrong = app
        .send(
            Method::GET,
            &path.replace("verify_0123456789", "guess"),
            &[],
            b"",
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.json_body()["error"]["code"], "HANDSHAKE_FAILED");
    let tg = app.connect_telegram_bot("acme", "tg1").await;
    let none = app
        .send(
            Method::GET,
            &format!("/v1/webhooks/telegram_bot/{tg}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(none.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_disabled_or_mismatched_integrations_are_one_404() {
    let app = app();
    let body = fixture("telegram/update-message-private-text.json");
    let headers = [("x-telegram-bot-api-secret-token", TG_SECRET)];
    let id = app.connect_telegram_bot("acme", "tg1").await;
    for path in [
        "/v1/webhooks/telegram_bot/nope".to_owned(),
        "/v1/webhooks/telegram_bot/bad%23id".to_owned(),
        format!("/v1/webhooks/max/{id}"),
        format!("/v1/webhooks/icq/{id}"),
    ] {
        let r = app.send(Method::POST, &path, &headers, &body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = app.post("telegram_bot", &id, &headers, &body).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the integration is now in the process's cache"
    );
    app.disable("acme", &id).await;
    let mut again: serde_json::Value = serde_json::from_slice(&body).unwrap();
    again["update_id"] = 1_000_001.into();
    let again = serde_json::to_vec(&again).unwrap();
    let r = app.post("telegram_bot", &id, &headers, &again).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a disable in this process is seen at once"
    );
    assert_eq!(r.json_body()["error"]["code"], "INTEGRATION_NOT_FOUND");
    assert_eq!(app.messages("acme").await.len(), 1);
}

/// Another process (another warm Lambda container) changed the integration's secret: this
/// process's cached copy refuses the new signature, so the integration is read again
/// before the request is refused. (Until that happens, or for `BY_ID_TTL`, the old secret
/// still verifies here — documented in the README.)
#[tokio::test]
async fn a_rotated_webhook_secret_is_seen_although_the_integration_is_cached() {
    let app = app();
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = fixture("telegram/update-message-private-text.json");
    assert_eq!(app.post_telegram(&id, &body).await.status, StatusCode::OK);

    let repo = shared::repo::integrations::Integrations::new(
        app.ports.table.clone(),
        app.ports.secrets().unwrap(),
        Arc::new(shared::ports::SystemClock),
    );
    let mut integration = repo.get(&tenant("acme"), &id).await.unwrap().unwrap();
    let rotated = "rotated-secret-0123456789";
    let config = [("bot_token", "1:A"), ("webhook_secret", rotated)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    integration.config = repo
        .seal(&integration.tenant_id, &id, &config)
        .await
        .unwrap();
    // Written past `Integrations` (which would forget this process's copy), as another
    // process's write looks from here.
    let key = shared::ports::table::Key::new("TENANT#acme", format!("INTEGRATION#{id}"));
    let mut item = app.ports.table.get(&key).await.unwrap().unwrap();
    let sealed = shared::repo::to_item(&key, &integration).unwrap();
    item.insert("config".into(), sealed["config"].clone());
    app.ports.table.put(item, None).await.unwrap();

    let mut next: serde_json::Value = serde_json::from_slice(&body).unwrap();
    next["update_id"] = 1_000_002.into();
    let next = serde_json::to_vec(&next).unwrap();
    let new = app
        .post(
            "telegram_bot",
            &id,
            &[("x-telegram-bot-api-secret-token", rotated)],
            &next,
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{:?}", new.json_body());
    let old = app
        .post(
            "telegram_bot",
            &id,
            &[("x-telegram-bot-api-secret-token", TG_SECRET)],
            &next,
        )
        .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old secret is refused once the new one was seen"
    );
    assert_eq!(app.messages("acme").await.len(), 2);
}

#[tokio::test]
async fn an_update_type_we_do_not_handle_is_acknowledged_and_stores_nothing() {
    let app = app();
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let body = br#"{"update_id": 10, "poll": {"id": "1", "question": "?", "options": []}}"#;
    let r = app.post_telegram(&id, body).await;
    assert_eq!(r.status, StatusCode::OK);
    let max = app
        .connect(
            "acme",
            "mx1",
            "max",
            &[("access_token", "t"), ("webhook_secret", TG_SECRET)],
        )
        .await;
    let body = br#"{"update_type":"chat_title_changed","timestamp":1775025604499,"chat_id":1}"#;
    let r = app
        .post("max", &max, &[("x-max-bot-api-secret", TG_SECRET)], body)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(app.messages("acme").await.is_empty());
    assert!(app.published().await.is_empty());
}

#[tokio::test]
async fn sixty_four_bit_ids_keep_every_digit() {
    let app = app();
    let token = fixture_text("viber/signature_sdk_webhook.token.txt");
    let id = app
        .connect("acme", "vb1", "viber", &[("auth_token", &token)])
        .await;
    let body = fixture("viber/message_text_unicode_sdk.json");
    let sig = support::hex_hmac(&token, &body);
    assert_eq!(
        app.post("viber", &id, &[("x-viber-content-signature", &sig)], &body)
            .await
            .status,
        StatusCode::OK
    );
    // 4912661846655238145 > 2^53: through a float it would end in ...8144.
    assert_eq!(
        app.messages("acme").await[0]["provider_message_id"],
        "4912661846655238145"
    );
    // MAX `seq` above 2^53 does not disturb parsing either.
    let max = app
        .connect(
            "acme",
            "mx1",
            "max",
            &[("access_token", "t"), ("webhook_secret", TG_SECRET)],
        )
        .await;
    let body = fixture("max/webhook.message_created.json");
    assert_eq!(
        app.post("max", &max, &[("x-max-bot-api-secret", TG_SECRET)], &body)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn vk_confirmation_is_answered_with_the_configured_string_and_events_with_ok() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "vk1",
            "vk",
            &[
                ("group_id", "123456"),
                ("access_token", "t"),
                ("confirmation_code", "confirmation_123456"),
                ("webhook_secret", "secret_123456_abcdefgh"),
            ],
        )
        .await;
    let body = fixture_text("vk/confirmation_with_secret_vksdk.json")
        .replace("secret_123456", "secret_123456_abcdefgh");
    let r = app.post("vk", &id, &[], body.as_bytes()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"confirmation_123456");
    let other_group = body.replace("123456,", "654321,");
    assert_eq!(
        app.post("vk", &id, &[], other_group.as_bytes())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let typing = br#"{"type":"message_typing_state","group_id":123456,"secret":"secret_123456_abcdefgh","object":{}}"#;
    let r = app.post("vk", &id, &[], typing).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"ok"[..]));
}

#[tokio::test]
async fn a_signed_body_whose_event_lacks_an_id_is_400_and_stores_nothing() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "vk1",
            "vk",
            &[
                ("group_id", "123456"),
                ("access_token", "t"),
                ("webhook_secret", "secret_123456_abcdefgh"),
            ],
        )
        .await;
    // A fuzz finding: an empty event id would dedupe every such event as one.
    let body = r#"{"type":"message_new","event_id":"","group_id":123456,"secret":"secret_123456_abcdefgh","object":{"message":{"id":1,"date":1,"peer_id":2,"from_id":2,"text":"hi"}}}"#;
    let r = app.post("vk", &id, &[], body.as_bytes()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json_body());
    assert_eq!(r.json_body()["error"]["code"], "MALFORMED_WEBHOOK");
    let with_id = body.replace("\"event_id\":\"\"", "\"event_id\":\"e1\"");
    let r = app.post("vk", &id, &[], with_id.as_bytes()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the same body with its id is taken"
    );
}

/// An inbound-events queue that refuses the first `fail` sends.
struct FlakyQueue {
    inner: Arc<dyn Queue>,
    fail: AtomicUsize,
}

#[async_trait]
impl Queue for FlakyQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError::Unavailable("injected".into()));
        }
        self.inner.send(message).await
    }
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        self.inner.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, visibility).await
    }
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.inner.delete(receipt_handle).await
    }
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner
            .change_visibility(receipt_handle, visibility)
            .await
    }
}

#[tokio::test]
async fn a_queue_failure_answers_503_and_the_redelivery_completes_the_work_once() {
    let app = app();
    let id = app.connect_telegram_bot("acme", "tg1").await;
    let flaky: Arc<dyn Queue> = Arc::new(FlakyQueue {
        inner: app.ports.queue(QueueRole::InboundEvents).unwrap(),
        fail: AtomicUsize::new(2),
    });
    let deps = Arc::new(webhook_receiver::Deps {
        events: flaky,
        ..clone_deps(&app.deps)
    });
    let router = webhook_receiver::router(deps);
    let body = fixture("telegram/update-message-private-text.json");
    let call = || {
        let mut req =
            shared::http::ApiRequest::new(Method::POST, format!("/v1/webhooks/telegram_bot/{id}"));
        req.headers.insert(
            "x-telegram-bot-api-secret-token",
            TG_SECRET.parse().unwrap(),
        );
        req.body = body.clone().into();
        router.handle(req)
    };
    let first = call().await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !first.json_body().to_string().contains("injected"),
        "no internals leak"
    );
    assert_eq!(call().await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(call().await.status, StatusCode::OK);
    assert_eq!(call().await.status, StatusCode::OK);
    // The message was written by the first attempt and rewritten by none of the others.
    assert_eq!(app.messages("acme").await.len(), 1);
    let published = app.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["data"]["message"]["id"],
        app.messages("acme").await[0]["id"]
    );
    let key = shared::ports::table::Key::new(
        "TENANT#acme",
        format!(
            "DIALOG#{}",
            published[0]["data"]["message"]["dialog_id"]
                .as_str()
                .unwrap()
        ),
    );
    let dialog = app.ports.table.get(&key).await.unwrap().unwrap();
    assert_eq!(
        dialog.get("unread_count").and_then(|v| v.as_i64()),
        Some(1),
        "counted once"
    );
}

fn clone_deps(d: &webhook_receiver::Deps) -> webhook_receiver::Deps {
    webhook_receiver::Deps {
        integrations: d.integrations.clone(),
        inbox: d.inbox.clone(),
        idempotency: d.idempotency.clone(),
        rate_limiter: d.rate_limiter.clone(),
        events: d.events.clone(),
        bot_webhooks: d.bot_webhooks.clone(),
        clock: d.clock.clone(),
        targets: d.targets.clone(),
    }
}

#[tokio::test]
async fn one_phone_on_two_channels_is_one_client_with_two_dialogs() {
    let app = app();
    let crm = app
        .connect(
            "acme",
            "crm1",
            "telegram_crm",
            &[
                ("api_base", "https://g.example.com"),
                ("api_token", "t"),
                ("account_id", "acc-1"),
                ("webhook_secret", TG_SECRET),
            ],
        )
        .await;
    let body = br#"{"event_id":"e1","type":"message","message":{"id":7,"date":1700000000,"peer":{"user_id":1212686911,"phone":"8 (999) 123-45-67"},"text":"hi from telegram"}}"#;
    assert_eq!(
        app.post(
            "telegram_crm",
            &crm,
            &[("x-webhook-secret", TG_SECRET)],
            body
        )
        .await
        .status,
        StatusCode::OK
    );
    let wappi = app
        .connect(
            "acme",
            "wp1",
            "wappi",
            &[
                ("api_token", "t"),
                ("profile_id", "971cdfd1-28ef"),
                ("platform", "whatsapp"),
                ("webhook_secret", TG_SECRET),
            ],
        )
        .await;
    let body = fixture_text("wappi/whatsapp_incoming_text_captured.json")
        .replace("79990000001", "79991234567");
    let r = app
        .post(
            "wappi",
            &wappi,
            &[("x-webhook-secret", TG_SECRET)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let clients = app.clients("acme").await;
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(clients[0]["phone"], "+79991234567");
    let client_id = ClientId::parse(clients[0]["id"].as_str().unwrap()).unwrap();
    let client = app
        .deps
        .inbox
        .client(&tenant("acme"), &client_id)
        .await
        .unwrap()
        .unwrap();
    let mut channels: Vec<_> = client
        .identities
        .iter()
        .map(|i| i.channel.clone())
        .collect();
    channels.sort();
    assert_eq!(channels, ["telegram", "whatsapp"]);
    let dialogs = app
        .deps
        .inbox
        .client_dialogs(&tenant("acme"), &client_id)
        .await
        .unwrap();
    assert_eq!(dialogs.len(), 2);
    // Another tenant's identical webhook makes another tenant's client.
    let other = app
        .connect(
            "other",
            "wp2",
            "wappi",
            &[
                ("api_token", "t"),
                ("profile_id", "971cdfd1-28ef"),
                ("platform", "whatsapp"),
                ("webhook_secret", TG_SECRET),
            ],
        )
        .await;
    assert_eq!(
        app.post(
            "wappi",
            &other,
            &[("x-webhook-secret", TG_SECRET)],
            body.as_bytes()
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(app.clients("other").await.len(), 1);
    assert_eq!(app.clients("acme").await.len(), 1);
}

#[tokio::test]
async fn a_max_edit_changes_the_stored_text_and_is_published_once() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "mx1",
            "max",
            &[("access_token", "t"), ("webhook_secret", TG_SECRET)],
        )
        .await;
    let headers = [("x-max-bot-api-secret", TG_SECRET)];
    let created = fixture_text("max/webhook.message_edited.json")
        .replace("message_edited", "message_created")
        .replace("hi bot", "hi bot (typo)");
    assert_eq!(
        app.post("max", &id, &headers, created.as_bytes())
            .await
            .status,
        StatusCode::OK
    );
    let edited = fixture("max/webhook.message_edited.json");
    assert_eq!(
        app.post("max", &id, &headers, &edited).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post("max", &id, &headers, &edited).await.status,
        StatusCode::OK
    );
    let messages = app.messages("acme").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "hi bot");
    assert!(messages[0]["edited_at"].is_string());
    let types: Vec<_> = app
        .published()
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["message.received", "message.edited"]);
}

#[tokio::test]
async fn whatsapp_statuses_move_our_outbound_message_forward_only() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "wa1",
            "whatsapp",
            &[
                ("phone_number_id", "1122334455667"),
                ("access_token", "t"),
                ("app_secret", "app_secret_1"),
                ("verify_token", "verify_0123456789"),
            ],
        )
        .await;
    // A message we sent earlier, known by its wamid.
    let tenant = tenant("acme");
    let client = app
        .deps
        .inbox
        .identify(
            &tenant,
            &Contact {
                channel: "whatsapp".into(),
                external_id: "972987654321".into(),
                ..Contact::default()
            },
        )
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    let dialog = Dialog {
        id: Dialog::id_for(&id, &client),
        tenant_id: tenant.clone(),
        client_id: client.clone(),
        integration_id: id.clone(),
        channel: "whatsapp".into(),
        provider: "whatsapp".into(),
        chat_id: "972987654321".into(),
        created_at: now,
        last_message_at: None,
        last_message_preview: None,
        last_inbound_at: None,
        unread_count: 0,
    };
    app.deps.inbox.ensure_dialog(&dialog).await.unwrap();
    let outbound = Message {
        id: MessageId::generate(),
        tenant_id: tenant.clone(),
        dialog_id: dialog.id.clone(),
        client_id: client,
        integration_id: id.clone(),
        channel: "whatsapp".into(),
        provider: "whatsapp".into(),
        direction: Direction::Outbound,
        kind: "message".into(),
        text: Some("Your order is ready".into()),
        attachments: Vec::new(),
        payload: None,
        provider_message_id: Some("wamid.xyzxyz".into()),
        reply_to: None,
        status: Some(shared::domain::inbox::DeliveryStatus::Sent),
        status_reason: None,
        sent_at: now,
        created_at: now,
        edited_at: None,
        attempts: Vec::new(),
    };
    app.deps.inbox.store_outbound(&outbound).await.unwrap();
    let post = |name: &'static str| {
        let body = fixture(&format!("whatsapp/pywa-status-{name}.json"));
        let sig = hub_signature("app_secret_1", &body);
        let app = &app;
        let id = id.clone();
        async move {
            app.post("whatsapp", &id, &[("x-hub-signature-256", &sig)], &body)
                .await
                .status
        }
    };
    assert_eq!(post("read").await, StatusCode::OK);
    assert_eq!(post("delivered").await, StatusCode::OK);
    let stored = app
        .deps
        .inbox
        .find_by_provider_id(&tenant, &id, "wamid.xyzxyz")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status,
        Some(shared::domain::inbox::DeliveryStatus::Read),
        "a late delivered does not move read back"
    );
    assert_eq!(post("failed").await, StatusCode::OK);
    let stored = app
        .deps
        .inbox
        .find_by_provider_id(&tenant, &id, "wamid.xyzxyz")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status,
        Some(shared::domain::inbox::DeliveryStatus::Failed)
    );
    assert!(stored.status_reason.unwrap().starts_with("130472"));
    let types: Vec<_> = app
        .published()
        .await
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["read", "failed"]);
}

#[tokio::test]
async fn the_web_widget_answers_cors_for_its_domains_and_limits_each_visitor() {
    let app = app();
    let id = app
        .connect(
            "acme",
            "ww1",
            "web_widget",
            &[("allowed_domains", "shop.example.com")],
        )
        .await;
    let origin = [("origin", "https://shop.example.com")];
    let pre = app
        .send(
            Method::OPTIONS,
            &format!("/v1/webhooks/web_widget/{id}"),
            &origin,
            b"",
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let evil = app
        .send(
            Method::OPTIONS,
            &format!("/v1/webhooks/web_widget/{id}"),
            &[("origin", "https://evil.example.net")],
            b"",
        )
        .await;
    assert!(evil.headers.get("access-control-allow-origin").is_none());
    let mut last = StatusCode::OK;
    for n in 0..=webhook_receiver::providers::web_widget::VISITOR_MESSAGES_PER_MINUTE {
        let body = format!(r#"{{"visitor_id":"v1","message_id":"m{n}","text":"hello {n}"}}"#);
        let r = app.post("web_widget", &id, &origin, body.as_bytes()).await;
        if n == 0 {
            assert_eq!(
                r.headers["access-control-allow-origin"],
                "https://shop.example.com"
            );
        }
        last = r.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let other_visitor = br#"{"visitor_id":"v2","message_id":"m1","text":"hi"}"#;
    assert_eq!(
        app.post("web_widget", &id, &origin, other_visitor)
            .await
            .status,
        StatusCode::OK
    );
    let empty = br#"{"visitor_id":"v3","message_id":"m1","text":"   "}"#;
    assert_eq!(
        app.post("web_widget", &id, &origin, empty).await.status,
        StatusCode::BAD_REQUEST
    );
}
