//! Smart routing, phone and cross-integration fallback, error classes, the attempt log and
//! the route memo — over the wire against local servers speaking each provider's API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use serde_json::json;
use support::{BOT_TOKEN, PHONE, USER_ID, app};

/// The seed's scenario: Wappi by id → PEER_NOT_FOUND, by phone → PEER_NOT_FOUND, the
/// Telegram CRM integration → success; stored with the CRM integration, three attempts.
#[tokio::test]
async fn the_seed_scenario_falls_back_to_the_crm_integration_and_remembers_it() {
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    let crm = app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &wappi, "wappi").await;
    app.world.knows("acc-1", USER_ID);

    let r = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "Здравствуйте!"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    let body = r.json_body();
    assert_eq!(body["status"], "sent");
    assert_eq!(body["integration_id"], crm.as_str());
    assert_eq!(body["provider"], "telegram_crm");
    assert_eq!(body["fallback_used"], true);
    let attempts = body["attempts"].as_array().unwrap();
    let steps: Vec<(&str, &str, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["integration_id"].as_str().unwrap(),
                a["recipient_kind"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("wappi1", "user_id", "unreachable"),
            ("wappi1", "phone", "unreachable"),
            ("crm1", "user_id", "sent"),
        ]
    );
    // What the providers actually received, in order.
    let calls = app.sends();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].path, "/tapi/sync/message/send");
    assert_eq!(calls[0].query.as_deref(), Some("profile_id=profile-a"));
    assert_eq!(
        calls[0].body,
        json!({"recipient": USER_ID, "body": "Здравствуйте!"})
    );
    assert_eq!(calls[1].body["recipient"], "79161234567");
    assert_eq!(calls[2].path, "/crm/messages");
    assert_eq!(calls[2].body["account_id"], "acc-1");
    assert_eq!(calls[2].body["peer"], json!({"user_id": USER_ID}));
    assert_eq!(calls[2].body["text"], "Здравствуйте!");

    // Stored once, in the client's dialog of the CRM integration, with the attempt log.
    let stored = app.messages("acme").await;
    let outbound: Vec<_> = stored
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(outbound.len(), 1);
    assert_eq!(outbound[0]["integration_id"], "crm1");
    assert_eq!(outbound[0]["status"], "sent");
    assert_eq!(outbound[0]["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(outbound[0]["dialog_id"], body["dialog_id"]);
    assert_eq!(
        outbound[0]["provider_message_id"],
        body["provider_message_id"]
    );

    // The next send starts from the integration that worked: one provider call.
    let again = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "Ещё раз"}),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json_body()["integration_id"], "crm1");
    assert_eq!(again.json_body()["fallback_used"], false);
    assert_eq!(again.json_body()["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(app.sends().len(), 4);
}

#[tokio::test]
async fn a_new_inbound_message_moves_the_start_back_to_its_integration() {
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    let crm = app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", USER_ID);
    app.world.knows("profile-a", USER_ID);
    app.inbound("acme", &client, &crm, "telegram_crm").await;
    let first = app
        .post("acme", &json!({"client_id": client, "text": "a"}), &[])
        .await;
    assert_eq!(first.json_body()["integration_id"], "crm1");
    app.inbound("acme", &client, &wappi, "wappi").await;
    let second = app
        .post("acme", &json!({"client_id": client, "text": "b"}), &[])
        .await;
    assert_eq!(second.json_body()["integration_id"], "wappi1");
    assert_eq!(app.sends().len(), 2);
}

#[tokio::test]
async fn without_history_the_primary_goes_first_and_phone_follows_id() {
    let app = app().await;
    app.wappi("acme", "wappi1", "profile-a", false).await;
    app.wappi("acme", "wappi2", "profile-b", true).await;
    let client = app.client("acme").await;
    app.world.knows("profile-b", "79161234567");
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json_body();
    assert_eq!(body["integration_id"], "wappi2");
    assert_eq!(body["fallback_used"], false);
    let kinds: Vec<_> = body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["recipient_kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["user_id", "phone"]);
    // The phone worked: the next send asks by phone first, one call.
    let next = app
        .post("acme", &json!({"client_id": client, "text": "again"}), &[])
        .await;
    assert_eq!(next.json_body()["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(next.json_body()["attempts"][0]["recipient_kind"], "phone");
}

#[tokio::test]
async fn a_disabled_integration_is_never_tried() {
    let app = app().await;
    let wappi = app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.inbound("acme", &client, &wappi, "wappi").await;
    app.disable("acme", &wappi).await;
    app.world.knows("profile-a", USER_ID);
    app.world.knows("acc-1", USER_ID);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.json_body()["integration_id"], "crm1");
    assert!(app.sends().iter().all(|c| !c.path.starts_with("/tapi")));
}

#[tokio::test]
async fn nobody_reachable_is_422_with_every_attempt_and_nothing_stored() {
    let app = app().await;
    app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    app.bot("acme", "bot1", BOT_TOKEN, false).await;
    let client = app.client("acme").await;
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.json_body();
    assert_eq!(body["error"]["code"], "CLIENT_NOT_FOUND_IN_TELEGRAM");
    assert_eq!(body["error"]["message"], "Клиент не найден в Telegram");
    // wappi id+phone, crm id+phone, bot id only (a bot cannot write to a phone).
    let attempts = body["error"]["details"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5);
    assert!(attempts.iter().all(|a| a["outcome"] == "unreachable"));
    assert_eq!(app.sends().len(), 5);
    assert!(app.messages("acme").await.is_empty());
}

#[tokio::test]
async fn broken_credentials_mark_the_integration_error_and_the_next_route_is_used() {
    let app = app().await;
    shared::testing::store_integration(
        &app.ports,
        "acme",
        "wappi1",
        "wappi",
        &[
            ("api_token", "wrong"),
            ("profile_id", "profile-a"),
            ("platform", "telegram"),
        ],
        true,
    )
    .await;
    app.bot("acme", "bot1", BOT_TOKEN, false).await;
    let client = app.client("acme").await;
    app.world.knows(BOT_TOKEN, USER_ID);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json_body();
    assert_eq!(body["integration_id"], "bot1");
    // One call to the broken integration, not one per recipient kind.
    assert_eq!(body["attempts"][0]["outcome"], "integration_error");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 2);
    let (status, error) = app
        .integration_status(
            "acme",
            &shared::domain::IntegrationId::parse("wappi1").unwrap(),
        )
        .await;
    assert_eq!(status, "error");
    assert!(error.unwrap().contains("Unauthorized"));
}

#[tokio::test]
async fn a_user_who_blocked_the_account_stops_the_chain() {
    let app = app().await;
    app.telegram_crm("acme", "crm1", "acc-1", true).await;
    app.wappi("acme", "wappi1", "profile-a", false).await;
    let client = app.client("acme").await;
    app.world.block("acc-1");
    app.world.knows("profile-a", USER_ID);
    let r = app
        .post("acme", &json!({"client_id": client, "text": "hi"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json_body()["error"]["code"], "MESSAGE_REJECTED");
    assert_eq!(app.sends().len(), 1);
}

#[tokio::test]
async fn files_go_by_url_on_every_provider() {
    let app = app().await;
    let client = app.client("acme").await;
    let file = json!({"client_id": client, "text": "Прайс", "file_url": "https://example.com/price.pdf",
                      "file_name": "price.pdf", "file_type": "application/pdf"});
    let photo = json!({"client_id": client, "file_url": "https://example.com/a.png", "file_type": "image/png"});

    app.wappi("acme", "wappi1", "profile-a", false).await;
    app.world.knows("profile-a", USER_ID);
    let r = app
        .post("acme", &json!({"client_id": client, "integration_id": "wappi1", "file_url": "https://example.com/price.pdf", "file_name": "price.pdf", "text": "Прайс"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    let call = app.sends().pop().unwrap();
    assert_eq!(call.path, "/tapi/sync/message/file/url/send");
    assert_eq!(
        call.body,
        json!({"recipient": USER_ID, "url": "https://example.com/price.pdf", "caption": "Прайс", "file_name": "price.pdf"})
    );

    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    app.world.knows("acc-1", USER_ID);
    let mut pinned = file.clone();
    pinned["integration_id"] = json!("crm1");
    assert_eq!(app.post("acme", &pinned, &[]).await.status, StatusCode::OK);
    let call = app.sends().pop().unwrap();
    assert_eq!(call.body["file_url"], "https://example.com/price.pdf");
    assert_eq!(call.body["file_name"], "price.pdf");
    assert_eq!(call.body["file_type"], "application/pdf");

    app.bot("acme", "bot1", BOT_TOKEN, false).await;
    app.world.knows(BOT_TOKEN, USER_ID);
    for (body, method, field) in [
        (&file, "sendDocument", "document"),
        (&photo, "sendPhoto", "photo"),
    ] {
        let mut pinned = body.clone();
        pinned["integration_id"] = json!("bot1");
        assert_eq!(app.post("acme", &pinned, &[]).await.status, StatusCode::OK);
        let call = app.sends().pop().unwrap();
        assert_eq!(call.path, format!("/bot{BOT_TOKEN}/{method}"));
        assert_eq!(call.body["chat_id"], USER_ID);
        assert!(
            call.body[field]
                .as_str()
                .unwrap()
                .starts_with("https://example.com/")
        );
    }
    let stored = app.messages("acme").await;
    assert!(
        stored
            .iter()
            .all(|m| m["attachments"].as_array().unwrap().len() == 1)
    );
}

#[tokio::test]
async fn a_pinned_integration_is_the_only_one_tried() {
    let app = app().await;
    app.wappi("acme", "wappi1", "profile-a", true).await;
    app.telegram_crm("acme", "crm1", "acc-1", false).await;
    let client = app.client("acme").await;
    app.world.knows("acc-1", USER_ID);
    let r = app
        .post(
            "acme",
            &json!({"client_id": client, "text": "hi", "integration_id": "wappi1"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json_body()["error"]["code"],
        "CLIENT_NOT_FOUND_IN_TELEGRAM"
    );
    assert!(app.sends().iter().all(|c| c.path.starts_with("/tapi")));
    assert_eq!(app.sends().len(), 2);
    let _ = PHONE;
}
