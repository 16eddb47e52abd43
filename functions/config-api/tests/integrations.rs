//! `/v1/integrations` through the router, on the embedded backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::domain::TenantId;
use shared::ports::table::{Key, Query};
use shared::repo::integrations::Freshness;
use shared::testing::{FakeServer, max_api, telegram_bot_api};

const BOT_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

mod support;

/// The router with local servers speaking the Telegram Bot API and the MAX API.
struct World {
    app: support::App,
    telegram: FakeServer,
    max: FakeServer,
}

impl std::ops::Deref for World {
    type Target = support::App;
    fn deref(&self) -> &support::App {
        &self.app
    }
}

const MAX_TOKEN: &str = "max-bot-token-0001";

async fn app_with(public_base_url: Option<&str>) -> World {
    let telegram = FakeServer::start(telegram_bot_api(BOT_TOKEN))
        .await
        .unwrap();
    let max = FakeServer::start(max_api(MAX_TOKEN)).await.unwrap();
    let mut config = support::default_config();
    // As deployed: tenant URLs must be public https (the provider fakes are operator bases).
    config.egress = shared::egress::EgressPolicy::PUBLIC_ONLY;
    config.public_base_url = public_base_url.map(str::to_owned);
    config.providers.telegram = telegram.base.clone();
    config.providers.max = max.base.clone();
    World {
        app: support::app_with(&config),
        telegram,
        max,
    }
}

async fn app() -> World {
    app_with(Some("https://hooks.example.com")).await
}

fn telegram(name: &str) -> Value {
    json!({"provider": "telegram_bot", "name": name, "config": {"bot_token": BOT_TOKEN}})
}

#[tokio::test]
async fn registry_lists_every_provider_with_its_schema() {
    let app = app().await;
    let (status, body) = app.call("acme", Method::GET, "/v1/registry", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        24,
        "18 providers + the telegram lead target + 5 not yet delivered"
    );
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
    let app = app().await;
    let (status, created) = app.connect("acme", telegram("Main bot")).await;
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
    let app = app().await;
    let (status, body) = app.connect("acme", json!({"provider": "bitrix24", "config": {"webhook_url": "http://insecure", "extra": 1}})).await;
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
        .connect(
            "acme",
            json!({"provider": "bitrix24", "config": {"webhook_url": "https://10.1.2.3/rest/1/k/"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["details"]["fields"][0]["field"],
        "webhook_url"
    );
    assert_eq!(
        body["error"]["details"]["fields"][0]["code"],
        "private_address"
    );
    let local = support::app();
    let (status, body) = local
        .call(
            "acme",
            Method::POST,
            "/v1/integrations",
            Some(json!({"provider": "webhooks", "config": {"url": "http://127.0.0.1:8080/hook"}})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the dev server takes a local http target: {body}"
    );
    let (status, body) = app.connect("acme", json!({"provider": "icq"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "UNKNOWN_PROVIDER");
    let (status, body) = app
        .connect("acme", json!({"provider": "max", "colour": "red"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "MALFORMED_JSON");
}

#[tokio::test]
async fn patch_merges_and_a_masked_secret_sent_back_keeps_the_stored_one() {
    let app = app().await;
    let (_, created) = app.connect("acme", telegram("Bot")).await;
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
    let app = app().await;
    let (_, first) = app.connect("acme", telegram("A")).await;
    let (_, second) = app.connect("acme", telegram("B")).await;
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
    let app = app().await;
    let (_, created) = app.connect("acme", telegram("A")).await;
    let path = format!("/v1/integrations/{}", created["id"].as_str().unwrap());
    let (status, gone) = app.call("acme", Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gone["is_enabled"], false);
    assert_eq!(gone["status"], "inactive");
    assert_eq!(gone["is_primary"], false);
    let (_, again) = app.connect("acme", telegram("B")).await;
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
    let app = app().await;
    let (_, created) = app.connect("acme", telegram("A")).await;
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

impl World {
    fn integrations(&self) -> shared::repo::integrations::Integrations {
        shared::repo::integrations::Integrations::new(
            self.ports.table.clone(),
            self.ports.secrets().unwrap(),
            self.ports.clock.clone(),
        )
    }

    async fn open_field(&self, tenant: &str, id: &str, field: &str) -> String {
        let repo = self.integrations();
        let stored = repo
            .get(
                &TenantId::parse(tenant).unwrap(),
                &shared::domain::IntegrationId::parse(id).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        repo.open(&stored).await.unwrap()[field].expose().clone()
    }
}

#[tokio::test]
async fn connecting_a_telegram_bot_registers_its_webhook_with_the_generated_secret() {
    let app = app().await;
    let (status, created) = app.connect("acme", telegram("Bot")).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "active", "{created}");
    let secret = app.open_field("acme", id, "webhook_secret").await;
    let calls = app.telegram.requests();
    let set = calls
        .iter()
        .find(|r| r.path.ends_with("/setWebhook"))
        .expect("setWebhook was called");
    assert_eq!(set.path, format!("/bot{BOT_TOKEN}/setWebhook"));
    assert_eq!(
        set.body["url"],
        format!("https://hooks.example.com/v1/webhooks/telegram_bot/{id}")
    );
    assert_eq!(set.body["secret_token"], secret.as_str());

    let path = format!("/v1/integrations/{id}");
    app.call("acme", Method::DELETE, &path, None).await;
    assert!(
        app.telegram
            .requests()
            .iter()
            .any(|r| r.path == format!("/bot{BOT_TOKEN}/deleteWebhook"))
    );
    let (_, logs) = app
        .call("acme", Method::GET, &format!("{path}/logs"), None)
        .await;
    let events: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "disconnected",
            "webhook_removal",
            "webhook_registration",
            "connected"
        ]
    );
    assert!(!logs.to_string().contains(BOT_TOKEN) && !logs.to_string().contains(&secret));
}

#[tokio::test]
async fn a_refused_registration_keeps_the_integration_in_error_with_the_reason() {
    let app = app().await;
    let body = json!({"provider": "telegram_bot", "config": {"bot_token": "111:revoked-token"}});
    let (status, created) = app.connect("acme", body).await;
    assert_eq!(status, StatusCode::CREATED, "never a lost integration");
    assert_eq!(created["status"], "error");
    assert!(
        created["last_error"]
            .as_str()
            .unwrap()
            .contains("Unauthorized"),
        "{created}"
    );
    assert_eq!(created["warnings"].as_array().unwrap().len(), 1);
    assert!(!created.to_string().contains("revoked-token"));
}

#[tokio::test]
async fn an_unreachable_provider_still_saves_the_integration_and_never_answers_500() {
    let mut config = support::default_config();
    config.public_base_url = Some("https://hooks.example.com".into());
    config.providers.telegram = "http://127.0.0.1:9".into();
    let app = support::app_with(&config);
    let (status, created) = app.connect("acme", telegram("Bot")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["status"], "error");
}

#[tokio::test]
async fn without_a_public_url_the_integration_waits_in_pending() {
    let app = app_with(None).await;
    let (_, created) = app.connect("acme", telegram("Bot")).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["webhook_url"], Value::Null);
    assert!(app.telegram.requests().is_empty());
}

#[tokio::test]
async fn max_subscription_carries_url_update_types_and_secret() {
    let app = app().await;
    let body = json!({"provider": "max", "config": {"access_token": MAX_TOKEN}});
    let (_, created) = app.connect("acme", body).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "active", "{created}");
    let secret = app.open_field("acme", id, "webhook_secret").await;
    let calls = app.max.requests();
    let sub = calls
        .iter()
        .find(|r| r.method == "POST" && r.path == "/subscriptions")
        .unwrap();
    assert_eq!(sub.header("authorization"), Some(MAX_TOKEN));
    assert_eq!(
        sub.body["url"],
        format!("https://hooks.example.com/v1/webhooks/max/{id}")
    );
    assert_eq!(sub.body["secret"], secret.as_str());
    assert!(
        sub.body["update_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "message_created")
    );
}

#[tokio::test]
async fn live_check_calls_the_provider_and_marks_refused_credentials() {
    let app = app().await;
    let (_, good) = app.connect("acme", telegram("Bot")).await;
    let (status, checked) = app
        .call(
            "acme",
            Method::POST,
            &format!("/v1/integrations/{}/test", good["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checked["ok"], true);
    assert_eq!(checked["details"]["username"], "shop_bot");
    assert!(
        app.telegram
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/getMe"))
    );

    let (_, max) = app
        .connect(
            "acme",
            json!({"provider": "max", "config": {"access_token": MAX_TOKEN}}),
        )
        .await;
    let max_path = format!("/v1/integrations/{}", max["id"].as_str().unwrap());
    app.call(
        "acme",
        Method::PATCH,
        &max_path,
        Some(json!({"config": {"access_token": "revoked-max-token"}})),
    )
    .await;
    let (_, failed) = app
        .call("acme", Method::POST, &format!("{max_path}/test"), None)
        .await;
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["error"]["class"], "auth");
    assert_eq!(failed["integration"]["status"], "error");
    assert!(!failed.to_string().contains("revoked-max-token"));

    let (_, crm) = app
        .connect(
            "acme",
            json!({"provider": "hubspot", "config": {"api_key": "pat-eu1-123"}}),
        )
        .await;
    let (status, body) = app
        .call(
            "acme",
            Method::POST,
            &format!("/v1/integrations/{}/test", crm["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "LIVE_CHECK_UNAVAILABLE");
}

#[tokio::test]
async fn whatsapp_and_amocrm_live_checks_call_their_apis() {
    let wa = FakeServer::start(shared::testing::whatsapp_api("wa-token-1234"))
        .await
        .unwrap();
    let amo = FakeServer::start(shared::testing::amocrm_api("amo-token-1234"))
        .await
        .unwrap();
    let mut config = support::default_config();
    config.providers.whatsapp = wa.base.clone();
    config.providers.amocrm = Some(amo.base.clone());
    let app = support::app_with(&config);
    let whatsapp = json!({"provider": "whatsapp", "config": {"phone_number_id": "106540352242922", "access_token": "wa-token-1234", "app_secret": "app-secret-1", "verify_token": "verify-1"}});
    let (_, created) = app.connect("acme", whatsapp).await;
    let (_, checked) = app
        .call(
            "acme",
            Method::POST,
            &format!("/v1/integrations/{}/test", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["details"]["verified_name"], "Shop");
    assert_eq!(wa.requests()[0].path, "/106540352242922");

    let no_token = json!({"provider": "amocrm", "config": {"subdomain": "shop", "client_id": "c", "client_secret": "s"}});
    let (_, created) = app.connect("acme", no_token).await;
    let path = format!("/v1/integrations/{}", created["id"].as_str().unwrap());
    let (_, checked) = app
        .call("acme", Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(checked["ok"], false);
    assert_eq!(
        checked["error"]["class"], "auth",
        "no access token yet: {checked}"
    );
    app.call(
        "acme",
        Method::PATCH,
        &path,
        Some(json!({"config": {"access_token": "amo-token-1234"}})),
    )
    .await;
    let (_, checked) = app
        .call("acme", Method::POST, &format!("{path}/test"), None)
        .await;
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["details"]["account_id"], 30000001);
    assert_eq!(
        checked["integration"]["status"], "active",
        "a passing check clears the error"
    );
}

#[tokio::test]
async fn an_integration_is_found_by_its_id_alone_for_inbound_webhooks() {
    let app = app().await;
    let (_, created) = app.connect("acme", telegram("Bot")).await;
    let id = shared::domain::IntegrationId::parse(created["id"].as_str().unwrap()).unwrap();
    let found = app
        .integrations()
        .find_by_id_fresh(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.tenant_id.as_str(), "acme");
    assert_eq!(found.provider, "telegram_bot");
    let (again, freshness) = app.integrations().find_by_id(&id).await.unwrap().unwrap();
    assert_eq!(again, found);
    assert_eq!(freshness, Freshness::Cached, "kept for the next webhook");
    let path = format!("/v1/integrations/{id}");
    app.call(
        "acme",
        Method::PATCH,
        &path,
        Some(json!({"name": "Renamed", "is_primary": true})),
    )
    .await;
    let (cached, _) = app.integrations().find_by_id(&id).await.unwrap().unwrap();
    assert_eq!(cached.name, "Renamed", "a save forgets the process's copy");
    let found = app
        .integrations()
        .find_by_id_fresh(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "Renamed", "the index follows every save");
    let unknown = shared::domain::IntegrationId::generate();
    assert!(
        app.integrations()
            .find_by_id_fresh(&unknown)
            .await
            .unwrap()
            .is_none()
    );
}
