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

#[tokio::test]
async fn whatsapp_phone_number_lookup_and_an_expired_token() {
    use shared::providers::whatsapp::WhatsAppApi;
    let server = FakeServer::start(shared::testing::whatsapp_api("wa-token"))
        .await
        .unwrap();
    let api = WhatsAppApi::new(http_client(), &server.base);
    let number = api
        .phone_number(&secret("wa-token"), "106540352242922")
        .await
        .unwrap();
    assert_eq!(number.verified_name.as_deref(), Some("Shop"));
    let request = &server.requests()[0];
    assert_eq!(request.path, "/106540352242922");
    assert_eq!(request.header("authorization"), Some("Bearer wa-token"));
    let err = api
        .phone_number(&secret("old"), "106540352242922")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth(ref r) if r.contains("Session has expired")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bitrix24_calls_methods_on_the_webhook_url() {
    use shared::providers::bitrix24::{self, Bitrix24Api};
    let server = FakeServer::start(shared::testing::bitrix24_api("k3y"))
        .await
        .unwrap();
    let api = Bitrix24Api::new(shared::egress::TargetClient::local());
    let profile = api
        .profile(&secret(&format!("{}/rest/1/k3y/", server.base)))
        .await
        .unwrap();
    assert_eq!(profile["ID"], "1");
    assert_eq!(server.requests()[0].path, "/rest/1/k3y/profile.json");
    let err = api
        .profile(&secret(&format!("{}/rest/1/wrong", server.base)))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth(_)), "{err:?}");
    assert!(matches!(
        bitrix24::classify(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        ProviderError::Transient { .. }
    ));
}

#[tokio::test]
async fn amocrm_account_with_a_bearer_token() {
    use shared::providers::amocrm::AmoCrmApi;
    let server = FakeServer::start(shared::testing::amocrm_api("amo-access"))
        .await
        .unwrap();
    let api = AmoCrmApi::new(http_client(), Some(server.base.clone()));
    assert_eq!(
        AmoCrmApi::new(http_client(), None).base("shop"),
        "https://shop.amocrm.ru"
    );
    let account = api.account("shop", &secret("amo-access")).await.unwrap();
    assert_eq!(account.id, 30000001);
    let err = api.account("shop", &secret("expired")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth("Unauthorized: Unauthorized".into())
    );
}
