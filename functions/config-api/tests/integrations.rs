//! `/v1/integrations` through the router, on the embedded backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::domain::TenantId;
use shared::http::{ApiRequest, JwtClaims, Role, Router};
use shared::ports::SystemClock;
use shared::ports::table::{Key, Query};

const BOT_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

struct App {
    router: Router,
    ports: Ports,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let deps = config_api::Deps::new(&ports, Some("https://hooks.example.com".into())).unwrap();
    App {
        router: config_api::router(deps),
        ports,
        _dir: dir,
    }
}

impl App {
    async fn call(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = ApiRequest::new(method, path);
        req.claims = Some(JwtClaims {
            tenant_id: TenantId::parse(tenant).unwrap(),
            sub: "user-1".into(),
            role: Role::Owner,
        });
        if let Some(body) = body {
            req.body = serde_json::to_vec(&body).unwrap().into();
        }
        let response = self.router.handle(req).await;
        (response.status, response.json_body())
    }
}

fn telegram(name: &str) -> Value {
    json!({"provider": "telegram_bot", "name": name, "config": {"bot_token": BOT_TOKEN}})
}

#[tokio::test]
async fn registry_lists_every_provider_with_its_schema() {
    let app = app();
    let (status, body) = app.call("acme", Method::GET, "/v1/registry", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 18);
    let tg = items
        .iter()
        .find(|i| i["provider"] == "telegram_bot")
        .unwrap();
    assert_eq!(tg["kind"], "channel");
    assert_eq!(
        tg["config_schema"][0],
        json!({"key": "bot_token", "label": "Bot Token", "type": "password", "required": true, "help": "Токен от @BotFather"})
    );
}

#[tokio::test]
async fn connect_seals_the_config_masks_secrets_and_generates_a_webhook_secret() {
    let app = app();
    let (status, created) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("Main bot")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["config"]["bot_token"], "••••Dsaw");
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["is_primary"], true,
        "the first telegram integration becomes primary"
    );
    assert_eq!(created["channel"], "telegram");
    assert_eq!(
        created["webhook_url"],
        format!("https://hooks.example.com/v1/webhooks/telegram_bot/{id}")
    );
    assert_eq!(created["warnings"], json!([]));
    let secret_mask = created["config"]["webhook_secret"].as_str().unwrap();
    assert!(secret_mask.starts_with("••••") && secret_mask.chars().count() == 8);

    let item = app
        .ports
        .table
        .get(&Key::new("TENANT#acme", format!("INTEGRATION#{id}")))
        .await
        .unwrap()
        .unwrap();
    let stored = format!("{item:?}");
    assert!(!stored.contains(BOT_TOKEN), "the token is stored sealed");
    assert!(
        !stored.contains("123456789"),
        "no part of the token is stored in the clear"
    );
}

#[tokio::test]
async fn invalid_configs_are_refused_naming_each_field() {
    let app = app();
    let (status, body) = app
        .call("acme", Method::POST, "/v1/integrations", Some(json!({"provider": "bitrix24", "config": {"webhook_url": "http://insecure", "extra": 1}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["extra", "webhook_url"]);
    let (status, body) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(json!({"provider": "icq"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "UNKNOWN_PROVIDER");
    let (status, body) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(json!({"provider": "max", "colour": "red"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "MALFORMED_JSON");
}

#[tokio::test]
async fn patch_merges_and_a_masked_secret_sent_back_keeps_the_stored_one() {
    let app = app();
    let (_, created) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("Bot")),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/integrations/{id}");
    let masked = created["config"].clone();
    let (status, patched) = app
        .call(
            "acme",
            Method::PATCH,
            &path,
            Some(json!({"name": "Renamed", "config": masked})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(
        patched["config"], created["config"],
        "masked values sent back change nothing"
    );

    let integrations = shared::repo::integrations::Integrations::new(
        app.ports.table.clone(),
        app.ports.secrets().unwrap(),
        app.ports.clock.clone(),
    );
    let stored = integrations
        .get(
            &TenantId::parse("acme").unwrap(),
            &shared::domain::IntegrationId::parse(id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let open = integrations.open(&stored).await.unwrap();
    assert_eq!(open["bot_token"].expose(), BOT_TOKEN);

    let (_, rotated) = app
        .call(
            "acme",
            Method::PATCH,
            &path,
            Some(json!({"config": {"bot_token": "987654:NEWTOKENabcd"}})),
        )
        .await;
    assert_eq!(rotated["config"]["bot_token"], "••••abcd");
    assert_eq!(
        rotated["config"]["webhook_secret"],
        created["config"]["webhook_secret"]
    );
}

#[tokio::test]
async fn one_primary_per_channel_switched_atomically() {
    let app = app();
    let (_, first) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("A")),
        )
        .await;
    let (_, second) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("B")),
        )
        .await;
    assert_eq!(first["is_primary"], true);
    assert_eq!(second["is_primary"], false);
    let path = format!("/v1/integrations/{}", second["id"].as_str().unwrap());
    let (status, switched) = app
        .call(
            "acme",
            Method::PATCH,
            &path,
            Some(json!({"is_primary": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["is_primary"], true);
    let (_, list) = app
        .call("acme", Method::GET, "/v1/integrations", None)
        .await;
    let primaries: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["is_primary"] == true)
        .collect();
    assert_eq!(primaries.len(), 1);
    assert_eq!(primaries[0]["id"], second["id"]);
}

#[tokio::test]
async fn disconnect_disables_and_releases_primary() {
    let app = app();
    let (_, created) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("A")),
        )
        .await;
    let path = format!("/v1/integrations/{}", created["id"].as_str().unwrap());
    let (status, gone) = app.call("acme", Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gone["is_enabled"], false);
    assert_eq!(gone["status"], "inactive");
    assert_eq!(gone["is_primary"], false);
    let (_, again) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("B")),
        )
        .await;
    assert_eq!(
        again["is_primary"], true,
        "the channel has no primary after a disconnect"
    );
    let (status, body) = app
        .call(
            "acme",
            Method::PATCH,
            &path,
            Some(json!({"is_primary": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "PRIMARY_REQUIRES_ENABLED");
}

#[tokio::test]
async fn another_tenant_never_sees_or_changes_an_integration() {
    let app = app();
    let (_, created) = app
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(telegram("A")),
        )
        .await;
    let path = format!("/v1/integrations/{}", created["id"].as_str().unwrap());
    assert_eq!(
        app.call("other", Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("other", Method::PATCH, &path, Some(json!({"name": "x"})))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("other", Method::DELETE, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app
        .call("other", Method::GET, "/v1/integrations", None)
        .await;
    assert_eq!(list["items"], json!([]));
    let page = app
        .ports
        .table
        .query(Query::partition("TENANT#other"))
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let (status, body) = app
        .call("acme", Method::GET, "/v1/integrations/bad%23id", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
