//! The webhook-receiver on a fresh embedded backend, with integrations stored directly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::registry::{self, IntegrationKind};
use shared::domain::{IntegrationId, TenantId};
use shared::http::{ApiRequest, ApiResponse, Router};
use shared::ports::SystemClock;
use shared::repo::integrations::Integrations;
use webhook_receiver::Deps;

/// The Telegram bot webhook secret the tests register and send.
pub const TG_SECRET: &str = "tg_secret_0123456789abcdef";

pub struct App {
    pub router: Router,
    pub deps: Arc<Deps>,
    pub ports: Ports,
    _dir: tempfile::TempDir,
}

pub fn fixture(path: &str) -> Vec<u8> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&file).unwrap_or_else(|_| panic!("fixture {path}"))
}

pub fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).unwrap().trim().to_owned()
}

pub fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    app_on(ports, dir)
}

pub fn app_on(ports: Ports, dir: tempfile::TempDir) -> App {
    let config = Config::from_lookup(|_| None).unwrap();
    let deps = Deps::new(&ports, &config).unwrap();
    App {
        router: webhook_receiver::router(deps.clone()),
        deps,
        ports,
        _dir: dir,
    }
}

pub fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

impl App {
    /// Stores an enabled integration of `provider` with this config; returns its id.
    pub async fn connect(
        &self,
        tenant_id: &str,
        id: &str,
        provider: &str,
        config: &[(&str, &str)],
    ) -> IntegrationId {
        assert_eq!(
            registry::find(provider).unwrap().kind,
            IntegrationKind::Channel
        );
        shared::testing::store_integration(&self.ports, tenant_id, id, provider, config, false)
            .await
    }

    pub async fn disable(&self, tenant_id: &str, id: &IntegrationId) {
        let repo = Integrations::new(
            self.ports.table.clone(),
            self.ports.secrets().unwrap(),
            Arc::new(SystemClock),
        );
        let mut integration = repo.get(&tenant(tenant_id), id).await.unwrap().unwrap();
        integration.is_enabled = false;
        repo.save(&mut integration).await.unwrap();
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> ApiResponse {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut req = ApiRequest::new(method, path);
        req.query = ApiRequest::parse_query(query);
        for (name, value) in headers {
            req.headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        req.body = body.to_vec().into();
        self.router.handle(req).await
    }

    /// Stores an enabled Telegram bot integration named `id` with [`TG_SECRET`].
    pub async fn connect_telegram_bot(&self, tenant_id: &str, id: &str) -> IntegrationId {
        self.connect(
            tenant_id,
            id,
            "telegram_bot",
            &[("bot_token", "1:A"), ("webhook_secret", TG_SECRET)],
        )
        .await
    }

    /// Posts `body` to the Telegram bot integration `id` with the right secret header.
    pub async fn post_telegram(&self, id: &IntegrationId, body: &[u8]) -> ApiResponse {
        self.post(
            "telegram_bot",
            id,
            &[("x-telegram-bot-api-secret-token", TG_SECRET)],
            body,
        )
        .await
    }

    pub async fn post(
        &self,
        provider: &str,
        id: &IntegrationId,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> ApiResponse {
        self.send(
            Method::POST,
            &format!("/v1/webhooks/{provider}/{id}"),
            headers,
            body,
        )
        .await
    }

    /// Every event published on the inbound-events queue so far (taken off the queue).
    pub async fn published(&self) -> Vec<Value> {
        let queue = self.ports.queue(QueueRole::InboundEvents).unwrap();
        drain(queue.as_ref()).await
    }

    /// Every stored message of a tenant.
    pub async fn messages(&self, tenant_id: &str) -> Vec<Value> {
        shared::testing::stored_messages(self.ports.table.as_ref(), tenant_id).await
    }

    /// Every client of a tenant.
    pub async fn clients(&self, tenant_id: &str) -> Vec<Value> {
        let items = shared::repo::query_all(
            self.ports.table.as_ref(),
            shared::ports::table::Query::partition(format!("TENANT#{tenant_id}"))
                .sort(shared::ports::table::SortKey::BeginsWith("CLIENT#".into())),
        )
        .await
        .unwrap();
        items
            .iter()
            // `CLIENT#{id}` only, not its identities, dialog links or routes.
            .filter(|i| {
                i.get("sk")
                    .and_then(|s| s.as_s())
                    .is_some_and(|sk| sk.matches('#').count() == 1)
            })
            .map(|i| shared::repo::from_item::<Value>(i).unwrap())
            .collect()
    }
}

pub use shared::testing::drain;

/// `sha256=<hex>` of a body, as Meta signs it.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(shared::signing::hmac_sha256(secret.as_bytes(), body))
    )
}

pub fn hex_hmac(secret: &str, body: &[u8]) -> String {
    hex::encode(shared::signing::hmac_sha256(secret.as_bytes(), body))
}

/// The body with one byte changed (inside the JSON, so it still parses when possible).
pub fn tamper(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    match out.iter().rposition(|b| b.is_ascii_alphanumeric()) {
        Some(at) => out[at] = if out[at] == b'1' { b'2' } else { b'1' },
        None => out.push(b' '),
    }
    out
}
