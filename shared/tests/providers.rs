//! Provider clients over the wire against local servers that speak their APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use shared::Secret;
use shared::providers::max::MaxApi;
use shared::providers::telegram_bot::{self, TelegramBotApi};
use shared::providers::{ProviderError, http_client};
use shared::testing::{FakeServer, max_api, telegram_bot_api};

const TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn secret(s: &str) -> Secret<String> {
    Secret::new(s.to_owned())
}

#[tokio::test]
async fn telegram_get_me_and_set_webhook_send_the_documented_requests() {
    let server = FakeServer::start(telegram_bot_api(TOKEN)).await.unwrap();
    let api = TelegramBotApi::new(http_client(), &server.base);
    let me = api.get_me(&secret(TOKEN)).await.unwrap();
    assert_eq!(me.username.as_deref(), Some("shop_bot"));
    api.set_webhook(
        &secret(TOKEN),
        "https://hooks.example.com/v1/webhooks/telegram_bot/i1",
        &secret("s3cr3t-s3cr3t-s3cr3t"),
    )
    .await
    .unwrap();
    let requests = server.requests();
    assert_eq!(requests[1].path, format!("/bot{TOKEN}/setWebhook"));
    assert_eq!(
        requests[1].body["url"],
        "https://hooks.example.com/v1/webhooks/telegram_bot/i1"
    );
    assert_eq!(requests[1].body["secret_token"], "s3cr3t-s3cr3t-s3cr3t");
    assert_eq!(
        requests[1].body["allowed_updates"],
        json!(telegram_bot::ALLOWED_UPDATES)
    );
}

#[tokio::test]
async fn telegram_wrong_token_is_an_auth_error_without_the_token_in_it() {
    let server = FakeServer::start(telegram_bot_api(TOKEN)).await.unwrap();
    let api = TelegramBotApi::new(http_client(), &server.base);
    let err = api
        .get_me(&secret("999:wrong-token-value"))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::Auth("Unauthorized".into()));
    let refused = api
        .set_webhook(
            &secret(TOKEN),
            "http://insecure",
            &secret("s3cr3t-s3cr3t-s3cr3t"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ProviderError::Rejected(ref r) if r.contains("HTTPS URL")),
        "{refused:?}"
    );
}

#[test]
fn telegram_errors_are_classified_in_one_place() {
    assert_eq!(
        telegram_bot::classify(400, "Bad Request: chat not found", None),
        ProviderError::RecipientUnreachable("Bad Request: chat not found".into())
    );
    assert_eq!(
        telegram_bot::classify(429, "Too Many Requests: retry after 7", Some(7)),
        ProviderError::Transient {
            reason: "Too Many Requests: retry after 7".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(matches!(
        telegram_bot::classify(403, "Forbidden: bot was blocked by the user", None),
        ProviderError::Rejected(_)
    ));
    assert!(matches!(
        telegram_bot::classify(502, "Bad Gateway", None),
        ProviderError::Transient { .. }
    ));
}

#[tokio::test]
async fn an_unreachable_provider_is_transient_and_names_no_url() {
    let api = TelegramBotApi::new(http_client(), "http://127.0.0.1:9");
    let err = api.get_me(&secret(TOKEN)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
}

#[tokio::test]
async fn max_me_and_subscriptions_use_the_authorization_header() {
    let server = FakeServer::start(max_api("max-token")).await.unwrap();
    let api = MaxApi::new(http_client(), &server.base);
    let me = api.get_me(&secret("max-token")).await.unwrap();
    assert_eq!(me.user_id, 9007199254740993, "64-bit ids stay exact");
    api.subscribe(
        &secret("max-token"),
        "https://hooks.example.com/v1/webhooks/max/i2",
        &secret("max-secret-12345"),
    )
    .await
    .unwrap();
    api.unsubscribe(
        &secret("max-token"),
        "https://hooks.example.com/v1/webhooks/max/i2",
    )
    .await
    .unwrap();
    let requests = server.requests();
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path, "/subscriptions");
    assert_eq!(requests[1].header("authorization"), Some("max-token"));
    assert_eq!(requests[1].body["secret"], "max-secret-12345");
    assert_eq!(requests[1].body["update_types"][0], "message_created");
    assert_eq!(requests[2].method, "DELETE");
    assert_eq!(
        requests[2].query.as_deref(),
        Some("url=https%3A%2F%2Fhooks.example.com%2Fv1%2Fwebhooks%2Fmax%2Fi2")
    );
    let err = api.get_me(&secret("nope")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth("verify.token: Invalid access_token".into())
    );
}
