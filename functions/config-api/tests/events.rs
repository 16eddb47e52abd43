//! The events in `events/config-api/` (the ones `sam local invoke -e` and
//! `cargo lambda invoke --data-file` use) answered by the real router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use shared::http::lambda::from_lambda;

mod support;

/// The router as the template configures the function (private targets refused).
async fn answer(raw: &str) -> (StatusCode, serde_json::Value) {
    let config = shared::config::Config::from_lookup(|var| {
        (var == "ALLOW_PRIVATE_TARGETS").then(|| "false".to_owned())
    })
    .unwrap();
    let app = support::app_with(&config);
    let request = from_lambda(lambda_http::request::from_str(raw).unwrap());
    let response = app.router.handle(request).await;
    (response.status, response.json_body())
}

#[tokio::test]
async fn registry_event_lists_providers() {
    let (status, body) = answer(include_str!("../../../events/config-api/registry-get.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"].as_array().map(Vec::len),
        Some(shared::domain::registry::REGISTRY.len())
    );
    assert_eq!(body["items"][0]["provider"], "telegram_bot");
}

#[tokio::test]
async fn connect_event_creates_a_masked_integration_for_the_authorizer_tenant() {
    let (status, body) = answer(include_str!(
        "../../../events/config-api/integrations-connect-telegram-bot.json"
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["config"]["bot_token"], "••••Dsaw");
    assert_eq!(
        body["webhook_url"],
        serde_json::Value::Null,
        "no PUBLIC_BASE_URL, no webhook URL"
    );
}

#[tokio::test]
async fn invalid_connect_event_names_each_field() {
    let (status, body) = answer(include_str!(
        "../../../events/config-api/integrations-connect-invalid.json"
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["client_id", "client_secret", "redirect_uri"]);
}

#[tokio::test]
async fn event_without_authorizer_claims_is_401() {
    let (status, body) = answer(include_str!(
        "../../../events/config-api/integrations-list-no-token.json"
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
}

async fn authorizer_answer(name: &str) -> serde_json::Value {
    let authorizer = shared::http::lambda::RequestAuthorizer::new(None);
    let app = support::app();
    shared::http::lambda::dispatch_with_authorizer(
        &app.router,
        &authorizer,
        shared::testing::event("config-api", name),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn authorizer_event_with_an_api_key_is_allowed_with_an_empty_context() {
    assert_eq!(
        authorizer_answer("authorizer-api-key").await,
        serde_json::json!({"isAuthorized": true, "context": {}})
    );
}

#[tokio::test]
async fn authorizer_event_without_credentials_is_refused() {
    assert_eq!(
        authorizer_answer("authorizer-no-credentials").await,
        serde_json::json!({"isAuthorized": false})
    );
}

#[tokio::test]
async fn http_events_still_reach_the_router_through_the_authorizer_entry() {
    let authorizer = shared::http::lambda::RequestAuthorizer::new(None);
    let app = support::app();
    let answer = shared::http::lambda::dispatch_with_authorizer(
        &app.router,
        &authorizer,
        shared::testing::event("config-api", "registry-get"),
    )
    .await
    .unwrap();
    assert_eq!(shared::testing::status_of(&answer), 200);
    assert_eq!(
        shared::testing::body_of(&answer)["items"][0]["provider"],
        "telegram_bot"
    );
}
