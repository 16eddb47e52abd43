//! The config-api router on a fresh embedded backend, and the calls tests make on it.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::config::Config;
use shared::domain::TenantId;
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role, Router};
use shared::ports::SystemClock;

pub struct App {
    pub router: Router,
    pub ports: Ports,
    _dir: tempfile::TempDir,
}

/// The default configuration (no public URL, real provider URLs that tests never reach).
pub fn default_config() -> Config {
    Config::from_lookup(|_| None).unwrap()
}

pub fn app() -> App {
    app_with(&default_config())
}

pub fn app_with(config: &Config) -> App {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let deps = config_api::Deps::new(&ports, config).unwrap();
    App {
        router: config_api::router(deps),
        ports,
        _dir: dir,
    }
}

pub fn request(
    tenant: &str,
    role: Role,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> ApiRequest {
    let mut req = ApiRequest::new(method, path);
    req.claims = Some(JwtClaims {
        tenant_id: TenantId::parse(tenant).unwrap(),
        sub: "user-1".into(),
        role,
    });
    if let Some(body) = body {
        req.body = serde_json::to_vec(&body).unwrap().into();
    }
    req
}

impl App {
    pub async fn as_role(
        &self,
        tenant: &str,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self
            .router
            .handle(request(tenant, role, method, path, body))
            .await;
        (response.status, response.json_body())
    }

    /// A call by the tenant's owner.
    pub async fn call(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.as_role(tenant, Role::Owner, method, path, body).await
    }

    /// Connects an integration as the tenant's owner.
    pub async fn connect(&self, tenant: &str, body: Value) -> (StatusCode, Value) {
        self.call(tenant, Method::POST, "/v1/integrations", Some(body))
            .await
    }

    /// Creates an API key with these scopes and returns the raw key.
    pub async fn api_key(&self, tenant: &str, scopes: Value) -> String {
        let (status, created) = self
            .call(
                tenant,
                Method::POST,
                "/v1/api-keys",
                Some(json!({"name": "bot engine", "scopes": scopes})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["key"].as_str().unwrap().to_owned()
    }

    pub async fn bot_config_with(&self, key: &str, etag: Option<&str>) -> ApiResponse {
        let mut req = ApiRequest::new(Method::GET, "/v1/bot/config");
        req.headers.insert("x-api-key", key.parse().unwrap());
        if let Some(etag) = etag {
            req.headers.insert("if-none-match", etag.parse().unwrap());
        }
        self.router.handle(req).await
    }

    /// The tenant's bot config through a fresh `config:read` key.
    pub async fn bot_config(&self, tenant: &str) -> Value {
        let key = self.api_key(tenant, json!(["config:read"])).await;
        self.bot_config_with(&key, None).await.json_body()
    }

    /// Every item of the table, as debug text (to search it for secrets or tenants).
    pub async fn dump(&self) -> String {
        format!(
            "{:?}",
            self.ports
                .embedded_table
                .as_ref()
                .unwrap()
                .scan_all()
                .await
                .unwrap()
        )
    }
}
