//! Local HTTP servers that speak a provider's documented API and record every request, so
//! provider clients are tested over the wire against `127.0.0.1:0`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake provider received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body's bytes as received (for signature checks).
    pub raw: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Responder = dyn Fn(&Recorded) -> (u16, Value) + Send + Sync;

pub struct FakeServer {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Starts a server answering every request with `respond`.
    pub async fn start(
        respond: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let log = requests.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes: Bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    raw: bytes.to_vec(),
                };
                let (status, body) = respond(&recorded);
                log.lock().unwrap_or_else(|p| p.into_inner()).push(recorded);
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let response: Response = (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response();
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base,
            requests,
            _task: task,
        })
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The Telegram Bot API for one valid token: `getMe`, `setWebhook`, `deleteWebhook`;
/// any other token is answered as Telegram does (401 Unauthorized).
pub fn telegram_bot_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        let Some((token, method)) = req
            .path
            .strip_prefix("/bot")
            .and_then(|rest| rest.split_once('/'))
        else {
            return (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            );
        };
        if token != valid_token {
            return (
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        match method {
            "getMe" => (
                200,
                json!({"ok": true, "result": {"id": 110201543, "is_bot": true, "first_name": "Shop", "username": "shop_bot"}}),
            ),
            "setWebhook" => {
                if req.body["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://"))
                {
                    (
                        200,
                        json!({"ok": true, "result": true, "description": "Webhook was set"}),
                    )
                } else {
                    (
                        400,
                        json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"}),
                    )
                }
            }
            "deleteWebhook" => (
                200,
                json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
            ),
            _ => (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
            ),
        }
    }
}

/// The MAX Bot API for one valid token: `GET /me`, `POST|DELETE /subscriptions`.
pub fn max_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(valid_token) {
            return (
                401,
                json!({"code": "verify.token", "message": "Invalid access_token"}),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/me") => (
                200,
                json!({"user_id": 9007199254740993i64, "name": "Shop", "username": "shop_bot", "is_bot": true}),
            ),
            ("POST", "/subscriptions") => (200, json!({"success": true})),
            ("DELETE", "/subscriptions") => (200, json!({"success": true})),
            _ => (
                404,
                json!({"code": "not.found", "message": "Method not found"}),
            ),
        }
    }
}

/// The WhatsApp Cloud API (Graph) for one valid token: `GET /{phone_number_id}`; another
/// token gets Graph's OAuthException code 190.
pub fn whatsapp_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(format!("Bearer {valid_token}").as_str()) {
            return (
                401,
                json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "fbtrace_id": "AbC"}}),
            );
        }
        let id = req.path.trim_start_matches('/');
        (
            200,
            json!({"id": id, "display_phone_number": "+7 999 000-00-00", "verified_name": "Shop"}),
        )
    }
}

/// A Bitrix24 portal whose inbound webhook is `/rest/1/{valid_key}/`.
pub fn bitrix24_api(
    valid_key: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        let Some(rest) = req.path.strip_prefix("/rest/1/") else {
            return (
                404,
                json!({"error": "NOT_FOUND", "error_description": "Not found"}),
            );
        };
        let Some((key, method)) = rest.split_once('/') else {
            return (
                404,
                json!({"error": "NOT_FOUND", "error_description": "Not found"}),
            );
        };
        if key != valid_key {
            return (
                401,
                json!({"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}),
            );
        }
        match method {
            "profile.json" => (
                200,
                json!({"result": {"ID": "1", "ADMIN": true, "NAME": "Owner"}, "time": {}}),
            ),
            "crm.lead.add.json" => (200, json!({"result": 4242, "time": {}})),
            _ => (
                400,
                json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}),
            ),
        }
    }
}

/// An amoCRM account answering `GET /api/v4/account` for one valid access token.
pub fn amocrm_api(
    valid_token: &'static str,
) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.header("authorization") != Some(format!("Bearer {valid_token}").as_str()) {
            return (
                401,
                json!({"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v4/account") => (
                200,
                json!({"id": 30000001, "name": "Shop", "subdomain": "shop"}),
            ),
            _ => (
                404,
                json!({"title": "Not Found", "status": 404, "detail": "Not Found"}),
            ),
        }
    }
}

/// Captures every log line written through it (for tests that search logs for secrets).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// A JSON DEBUG-level subscriber writing here; keep the guard for the test's duration.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .json()
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stores an enabled channel integration of `provider` for a tenant, its config sealed
/// as config-api would; returns its id. Panics on bad input (test set-up only).
#[allow(clippy::expect_used)]
pub async fn store_integration(
    ports: &crate::backend::Ports,
    tenant: &str,
    id: &str,
    provider: &str,
    config: &[(&str, &str)],
    primary: bool,
) -> crate::domain::IntegrationId {
    use crate::domain::registry;
    use crate::repo::integrations::{Integration, IntegrationStatus, Integrations, channel_of};
    let meta = registry::find(provider).expect("a registered provider");
    let config: std::collections::BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let repo = Integrations::new(
        ports.table.clone(),
        ports.secrets().expect("secrets"),
        ports.clock.clone(),
    );
    let id = crate::domain::IntegrationId::parse(id).expect("an integration id");
    let tenant = crate::domain::TenantId::parse(tenant).expect("a tenant id");
    let now = ports.clock.now();
    let integration = Integration {
        id: id.clone(),
        tenant_id: tenant.clone(),
        kind: meta.kind,
        provider: provider.into(),
        channel: channel_of(meta, &config),
        name: provider.into(),
        status: IntegrationStatus::Active,
        is_enabled: true,
        is_primary: primary,
        config: repo.seal(&tenant, &id, &config).await.expect("sealed"),
        last_error: None,
        last_sync_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    repo.insert(&integration).await.expect("stored");
    if primary {
        repo.make_primary(&integration).await.expect("primary");
    }
    id
}

/// Takes every visible message off a queue, as JSON.
#[allow(clippy::expect_used)]
pub async fn drain(queue: &dyn crate::ports::Queue) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let batch = queue
            .receive(10, std::time::Duration::from_secs(300))
            .await
            .expect("receive");
        if batch.is_empty() {
            return out;
        }
        for m in batch {
            out.push(serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone())));
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
    }
}

/// Every stored message of a tenant (items `MSG#…`), oldest first per dialog, as JSON.
#[allow(clippy::expect_used)]
pub async fn stored_messages(table: &dyn crate::ports::Table, tenant: &str) -> Vec<Value> {
    use crate::ports::table::{Query, SortKey};
    let items = crate::repo::query_all(
        table,
        Query::partition(format!("TENANT#{tenant}")).sort(SortKey::BeginsWith("MSG#".into())),
    )
    .await
    .expect("query");
    items
        .iter()
        .map(|i| crate::repo::from_item::<Value>(i).expect("an item"))
        .collect()
}
