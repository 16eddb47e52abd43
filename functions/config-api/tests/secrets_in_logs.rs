//! SPEC §7: a full connect → test → bot-config flow, with every log line captured at
//! DEBUG (ours and the libraries'), contains none of the secrets involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::Method;
use serde_json::json;
use shared::backend;
use shared::config::Config;
use shared::domain::TenantId;
use shared::http::{ApiRequest, JwtClaims, Role};
use shared::ports::SystemClock;
use shared::testing::{FakeServer, LogCapture, telegram_bot_api};

const BOT_TOKEN: &str = "424242:AAF-secret-bot-token-value-XYZ";
const WEBHOOK_SECRET: &str = "webhook-secret-value-0123456789";

#[tokio::test]
async fn no_secret_reaches_a_log_line() {
    let capture = LogCapture::default();
    let _guard = capture.install();

    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let telegram = FakeServer::start(telegram_bot_api(BOT_TOKEN))
        .await
        .unwrap();
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.public_base_url = Some("https://hooks.example.com".into());
    config.providers.telegram = telegram.base.clone();
    let router = config_api::router(config_api::Deps::new(&ports, &config).unwrap());
    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = ApiRequest::new(method, path);
        req.claims = Some(JwtClaims {
            tenant_id: TenantId::parse("acme").unwrap(),
            sub: "u1".into(),
            role: Role::Owner,
        });
        if let Some(body) = body {
            req.body = serde_json::to_vec(&body).unwrap().into();
        }
        req
    };

    let connect = json!({"provider": "telegram_bot", "config": {"bot_token": BOT_TOKEN, "webhook_secret": WEBHOOK_SECRET}});
    let created = router
        .handle(call(Method::POST, "/v1/integrations", Some(connect)))
        .await
        .json_body();
    assert_eq!(created["status"], "active", "{created}");
    let id = created["id"].as_str().unwrap();
    let checked = router
        .handle(call(
            Method::POST,
            &format!("/v1/integrations/{id}/test"),
            None,
        ))
        .await
        .json_body();
    assert_eq!(checked["ok"], true);
    let bad =
        json!({"provider": "telegram_bot", "config": {"bot_token": "999:another-secret-token"}});
    router
        .handle(call(Method::POST, "/v1/integrations", Some(bad)))
        .await;
    let key = router
        .handle(call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "bot", "scopes": ["config:read"]})),
        ))
        .await
        .json_body()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = ApiRequest::new(Method::GET, "/v1/bot/config");
    req.headers.insert("x-api-key", key.parse().unwrap());
    let config = router.handle(req).await.json_body();
    assert_eq!(config["channels"][0]["credentials"]["bot_token"], BOT_TOKEN);
    router
        .handle(call(
            Method::DELETE,
            &format!("/v1/integrations/{id}"),
            None,
        ))
        .await;

    let logs = capture.text();
    assert!(
        logs.contains("integration connected"),
        "the flow was logged: {logs}"
    );
    for secret in [
        BOT_TOKEN,
        WEBHOOK_SECRET,
        "another-secret-token",
        key.as_str(),
        "AAF-secret",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
