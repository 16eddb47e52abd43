//! API keys, profile, catalog, bot config and tenant deletion through the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::domain::TenantId;
use shared::http::Role;

mod support;

use support::app;

fn profile() -> Value {
    json!({
        "name": "Кафе «Ромашка»",
        "business_type": "restaurant",
        "language": "ru",
        "timezone": "Europe/Moscow",
        "working_hours": {"mon": [{"open": "09:00", "close": "14:00"}, {"open": "15:00", "close": "22:00"}]}
    })
}

#[tokio::test]
async fn api_key_is_shown_once_listed_without_secret_and_revocable() {
    let app = app();
    let key = app.api_key("acme", json!(["config:read"])).await;
    assert!(
        key.starts_with("ak_") && key.len() == 3 + 64,
        "256 bits of randomness"
    );
    let (_, list) = app.call("acme", Method::GET, "/v1/api-keys", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains(&key[8..]),
        "listing never shows the key"
    );
    assert_eq!(app.bot_config_with(&key, None).await.status, StatusCode::OK);
    let id = list["items"][0]["id"].as_str().unwrap();
    let (status, revoked) = app
        .call("acme", Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        app.bot_config_with(&key, None).await.status,
        StatusCode::UNAUTHORIZED,
        "a revoked key is refused"
    );
    assert_eq!(
        app.call("other", Method::DELETE, &format!("/v1/api-keys/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = app
        .as_role(
            "acme",
            Role::Agent,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "x", "scopes": ["config:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "ROLE_REQUIRED");
    let (status, _) = app
        .call(
            "acme",
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "x", "scopes": ["root"]})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown scope is refused"
    );
}

#[tokio::test]
async fn profile_is_validated_field_by_field() {
    let app = app();
    let (status, saved) = app
        .call("acme", Method::PUT, "/v1/profile", Some(profile()))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (_, read) = app.call("acme", Method::GET, "/v1/profile", None).await;
    assert_eq!(read["business_type"], "restaurant");
    let mut bad = profile();
    bad["timezone"] = json!("Mars/Olympus");
    bad["language"] = json!("Russian");
    bad["working_hours"] = json!({"mon": [{"open": "10:00", "close": "09:00"}], "xyz": [], "tue": [{"open": "09:00", "close": "13:00"}, {"open": "12:00", "close": "18:00"}]});
    let (status, body) = app
        .call("acme", Method::PUT, "/v1/profile", Some(bad))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "language",
            "timezone",
            "working_hours.mon",
            "working_hours.tue",
            "working_hours.xyz"
        ]
    );
    let mut unknown_type = profile();
    unknown_type["business_type"] = json!("casino");
    assert_eq!(
        app.call("acme", Method::PUT, "/v1/profile", Some(unknown_type))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn catalog_is_replaced_whole_and_validated() {
    let app = app();
    let catalog = json!({"items": [
        {"name": "Борщ", "price_minor": 45000, "currency": "RUB", "category": "Супы", "sort_order": 2, "attributes": {"weight_g": 300}},
        {"name": "Чай", "price_minor": 15000, "currency": "RUB", "available": false, "sort_order": 1}
    ]});
    let (status, saved) = app
        .call("acme", Method::PUT, "/v1/catalog", Some(catalog))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["items"][0]["name"], "Чай", "sorted by sort_order");
    assert!(saved["items"][1]["id"].is_string());
    assert_eq!(saved["items"][1]["attributes"]["weight_g"], 300);
    let bad = json!({"items": [{"name": "", "price_minor": -1, "currency": "rub", "image_url": "http://x"}]});
    let (status, body) = app
        .call("acme", Method::PUT, "/v1/catalog", Some(bad))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["details"]["fields"].as_array().unwrap().len(),
        4
    );
}

#[tokio::test]
async fn bot_config_has_enabled_channels_with_credentials_and_an_etag() {
    let app = app();
    app.call("acme", Method::PUT, "/v1/profile", Some(profile()))
        .await;
    let (_, on) = app.connect("acme", json!({"provider": "bitrix24", "config": {"webhook_url": "https://b24.example.com/rest/1/abc/"}})).await;
    let (_, off) = app
        .connect(
            "acme",
            json!({"provider": "viber", "config": {"auth_token": "viber-token-1234"}}),
        )
        .await;
    app.call(
        "acme",
        Method::DELETE,
        &format!("/v1/integrations/{}", off["id"].as_str().unwrap()),
        None,
    )
    .await;
    let key = app.api_key("acme", json!(["config:read"])).await;
    let response = app.bot_config_with(&key, None).await;
    assert_eq!(response.status, StatusCode::OK);
    let config = response.json_body();
    assert_eq!(config["business"]["name"], "Кафе «Ромашка»");
    assert_eq!(config["crm"][0]["id"], on["id"]);
    assert_eq!(
        config["crm"][0]["credentials"]["webhook_url"],
        "https://b24.example.com/rest/1/abc/"
    );
    assert_eq!(
        config["channels"],
        json!([]),
        "a disconnected integration is not in the bot config"
    );
    let etag = response
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.bot_config_with(&key, Some(&etag)).await.status,
        StatusCode::NOT_MODIFIED
    );
    app.call(
        "acme",
        Method::PUT,
        "/v1/catalog",
        Some(json!({"items": [{"name": "Чай", "price_minor": 1, "currency": "RUB"}]})),
    )
    .await;
    assert_eq!(
        app.bot_config_with(&key, Some(&etag)).await.status,
        StatusCode::OK,
        "a change changes the ETag"
    );
    let wrong_scope = app.api_key("acme", json!(["leads:write"])).await;
    assert_eq!(
        app.bot_config_with(&wrong_scope, None).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn deleting_the_tenant_leaves_no_item_of_it_in_the_table() {
    let app = app();
    for tenant in ["acme", "other"] {
        app.call(tenant, Method::PUT, "/v1/profile", Some(profile()))
            .await;
        app.call(
            tenant,
            Method::POST,
            "/v1/integrations",
            Some(json!({"provider": "telegram_bot", "config": {"bot_token": "1:tok"}})),
        )
        .await;
        app.api_key(tenant, json!(["config:read"])).await;
    }
    let (status, _) = app
        .as_role("acme", Role::Admin, Method::DELETE, "/v1/tenant", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "owner only");
    let (status, body) = app.call("acme", Method::DELETE, "/v1/tenant", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let everything = app
        .ports
        .embedded_table
        .as_ref()
        .unwrap()
        .scan_all()
        .await
        .unwrap();
    let dump = format!("{everything:?}");
    assert!(
        !dump.contains("acme"),
        "no item of the tenant is left: {dump}"
    );
    assert!(dump.contains("other"), "another tenant is untouched");
}

const PROMPT_V1: &str =
    "## Роль\nТы — оператор {{business_name}}.\n## Правила\nСкидка {{discount}}.";

fn draft(content: &str) -> Value {
    json!({"content": content, "variables": [{"key": "discount", "label": "Скидка", "default_value": "10%", "source": "custom"}]})
}

#[tokio::test]
async fn prompt_versions_history_and_restore_round_trip() {
    let app = app();
    let (status, v1) = app
        .call("acme", Method::PUT, "/v1/prompt", Some(draft(PROMPT_V1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["version"], 1);
    let v2_text = PROMPT_V1.replace("Скидка", "Бонус");
    let (_, v2) = app
        .call("acme", Method::PUT, "/v1/prompt", Some(draft(&v2_text)))
        .await;
    assert_eq!(v2["version"], 2);
    let (_, history) = app
        .call("acme", Method::GET, "/v1/prompt/history", None)
        .await;
    let versions: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    let (status, v3) = app
        .call(
            "acme",
            Method::POST,
            "/v1/prompt/restore",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v3}");
    assert_eq!(v3["version"], 3);
    assert_eq!(
        v3["content"], PROMPT_V1,
        "restore brings back exactly that content"
    );
    assert_eq!(v3["variables"], v1["variables"]);
    let (status, _) = app
        .call(
            "acme",
            Method::POST,
            "/v1/prompt/restore",
            Some(json!({"version": 99})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, other) = app.call("other", Method::GET, "/v1/prompt", None).await;
    assert_eq!(other["version"], 0, "another tenant has its own prompt");
}

#[tokio::test]
async fn an_invalid_prompt_is_refused_and_validate_explains_why() {
    let app = app();
    let bad = "## Роль\n{{unknown_thing}} and {{business_name";
    let (status, body) = app
        .call(
            "acme",
            Method::PUT,
            "/v1/prompt",
            Some(json!({"content": bad})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["details"]["errors"].as_array().unwrap().len() >= 2);
    let (status, check) = app
        .call(
            "acme",
            Method::POST,
            "/v1/prompt/validate",
            Some(draft(PROMPT_V1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["valid"], true);
    assert_eq!(check["variables"], json!(["business_name", "discount"]));
    let (_, check) = app
        .call(
            "acme",
            Method::POST,
            "/v1/prompt/validate",
            Some(json!({"content": bad})),
        )
        .await;
    assert_eq!(check["valid"], false);
}

#[tokio::test]
async fn bot_config_carries_the_prompt_with_variables_substituted() {
    let app = app();
    app.call("acme", Method::PUT, "/v1/profile", Some(profile()))
        .await;
    app.call("acme", Method::PUT, "/v1/prompt", Some(draft(PROMPT_V1)))
        .await;
    let key = app.api_key("acme", json!(["config:read"])).await;
    let config = app.bot_config_with(&key, None).await.json_body();
    let content = config["prompt"]["content"].as_str().unwrap();
    assert!(
        content.contains("Ты — оператор Кафе «Ромашка»."),
        "{content}"
    );
    assert!(content.contains("Скидка 10%."));
    assert!(
        !content.contains("{{"),
        "no placeholder of a provided variable is left"
    );
    assert_eq!(config["prompt"]["version"], 1);
}

#[tokio::test]
async fn bot_webhook_secret_is_generated_sealed_masked_and_kept() {
    let app = app();
    let mut body = profile();
    body["bot_webhook_url"] = json!("https://bot.example.com/events");
    let (status, saved) = app
        .call("acme", Method::PUT, "/v1/profile", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let masked = saved["bot_webhook_secret"].as_str().unwrap().to_owned();
    assert!(
        masked.starts_with("••••") && masked.chars().count() == 8,
        "{masked}"
    );
    let secrets = shared::repo::bot_webhook::BotWebhookSecrets::new(
        app.ports.table.clone(),
        app.ports.secrets().unwrap(),
    );
    let tenant = TenantId::parse("acme").unwrap();
    let stored = secrets.open(&tenant).await.unwrap().unwrap();
    assert!(stored.expose().starts_with("whsec_"));
    let dump = format!(
        "{:?}",
        app.ports
            .embedded_table
            .as_ref()
            .unwrap()
            .scan_all()
            .await
            .unwrap()
    );
    assert!(!dump.contains(stored.expose().as_str()), "sealed at rest");
    body["bot_webhook_secret"] = json!(masked);
    app.call("acme", Method::PUT, "/v1/profile", Some(body.clone()))
        .await;
    assert_eq!(
        secrets.open(&tenant).await.unwrap().unwrap(),
        stored,
        "a masked value sent back keeps the secret"
    );
    body["bot_webhook_secret"] = json!("not-a-secret");
    body["bot_webhook_url"] = json!("ftp://insecure.example.com");
    let (status, errors) = app
        .call("acme", Method::PUT, "/v1/profile", Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = errors["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["bot_webhook_url", "bot_webhook_secret"]);
}

#[tokio::test]
async fn a_body_over_256_kb_is_413() {
    let app = app();
    let huge =
        json!({"items": [{"name": "x".repeat(300 * 1024), "price_minor": 1, "currency": "RUB"}]});
    let (status, body) = app
        .call("acme", Method::PUT, "/v1/catalog", Some(huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
}
