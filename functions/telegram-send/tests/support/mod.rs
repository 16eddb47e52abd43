//! telegram-send, telegram-crm-send and the outbound worker on a fresh embedded backend,
//! against one local server that speaks Wappi's, the Telegram CRM gateway's and the
//! Telegram Bot API's send calls and records every request.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue, Method};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::inbox::{Dialog, Direction, Message};
use shared::domain::{ClientId, IntegrationId, MessageId, TenantId};
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role, Router};
use shared::outbound::api::{Deps, OutboundWorker};
use shared::ports::{Clock, ManualClock};
use shared::repo::inbox::Contact;
use shared::testing::{FakeServer, Recorded};
use shared::worker::{WorkerOptions, poll_once};

pub const WAPPI_TOKEN: &str = "wappi_secret_token_0001";
pub const CRM_TOKEN: &str = "crm_secret_token_0002";
pub const BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
pub const USER_ID: &str = "1212686911";
pub const PHONE: &str = "+79161234567";

/// The messenger side: which account knows which recipient, and what is broken.
#[derive(Default)]
pub struct World {
    /// (account, recipient): wappi profile id / CRM account id / bot token, and the user
    /// id or phone (as the provider receives it).
    peers: Mutex<HashSet<(String, String)>>,
    /// account → (status, retry_after) answered instead of sending.
    down: Mutex<HashMap<String, (u16, Option<u64>)>>,
    /// accounts whose recipients blocked them.
    blocked: Mutex<HashSet<String>>,
    next_id: Mutex<u64>,
}

impl World {
    pub fn knows(&self, account: &str, recipient: &str) {
        self.peers
            .lock()
            .unwrap()
            .insert((account.into(), recipient.into()));
    }

    pub fn down(&self, account: &str, status: u16, retry_after: Option<u64>) {
        self.down
            .lock()
            .unwrap()
            .insert(account.into(), (status, retry_after));
    }

    pub fn up(&self, account: &str) {
        self.down.lock().unwrap().remove(account);
    }

    pub fn block(&self, account: &str) {
        self.blocked.lock().unwrap().insert(account.into());
    }

    fn outage(&self, account: &str) -> Option<(u16, Option<u64>)> {
        self.down.lock().unwrap().get(account).copied()
    }

    fn known(&self, account: &str, recipient: &str) -> bool {
        self.peers
            .lock()
            .unwrap()
            .contains(&(account.to_owned(), recipient.to_owned()))
    }

    fn id(&self) -> u64 {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        *next
    }

    fn respond(&self, req: &Recorded) -> (u16, Value) {
        if let Some(rest) = req.path.strip_prefix("/tapi/sync/") {
            return self.wappi(req, rest);
        }
        if req.path == "/crm/messages" {
            return self.crm(req);
        }
        if let Some((token, method)) = req
            .path
            .strip_prefix("/bot")
            .and_then(|r| r.split_once('/'))
        {
            return self.bot(req, token, method);
        }
        (404, json!({"error": "no such path"}))
    }

    /// Wappi: `Authorization: <token>`, `?profile_id=`, `{"recipient","body"|"url"}`.
    fn wappi(&self, req: &Recorded, path: &str) -> (u16, Value) {
        if req.header("authorization") != Some(WAPPI_TOKEN) {
            return (401, json!({"status": "error", "detail": "Unauthorized"}));
        }
        let profile = req
            .query
            .as_deref()
            .and_then(|q| q.strip_prefix("profile_id="))
            .unwrap_or_default()
            .to_owned();
        if !matches!(path, "message/send" | "message/file/url/send") {
            return (404, json!({"status": "error", "detail": "Not found"}));
        }
        if let Some((status, _)) = self.outage(&profile) {
            return (
                status,
                json!({"status": "error", "detail": "Service unavailable"}),
            );
        }
        let recipient = req.body["recipient"].as_str().unwrap_or_default();
        if !self.known(&profile, recipient) {
            return (
                400,
                json!({"status": "error", "detail": "Peer not found", "timestamp": 1700000000}),
            );
        }
        (
            200,
            json!({"status": "done", "timestamp": 1700000000, "time": "2023-11-14T22:13:20Z",
                   "message_id": format!("wappi-{}", self.id())}),
        )
    }

    /// The Telegram CRM gateway as pinned in SPEC §6.
    fn crm(&self, req: &Recorded) -> (u16, Value) {
        if req.header("authorization") != Some(&format!("Bearer {CRM_TOKEN}")) {
            return (
                401,
                json!({"error": {"code": "UNAUTHORIZED", "message": "bad token"}}),
            );
        }
        let account = req.body["account_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some((status, _)) = self.outage(&account) {
            return (
                status,
                json!({"error": {"code": "INTERNAL", "message": "try later"}}),
            );
        }
        let peer = &req.body["peer"];
        let recipient = peer["user_id"]
            .as_str()
            .or(peer["phone"].as_str())
            .unwrap_or_default();
        if self.blocked.lock().unwrap().contains(&account) {
            return (
                403,
                json!({"error": {"code": "USER_BLOCKED", "message": "the user blocked this account"}}),
            );
        }
        if !self.known(&account, recipient) {
            return (
                404,
                json!({"error": {"code": "PEER_NOT_FOUND", "message": "no such peer"}}),
            );
        }
        (200, json!({"message_id": self.id()}))
    }

    /// The Bot API: `sendMessage`, `sendPhoto`, `sendDocument`.
    fn bot(&self, req: &Recorded, token: &str, method: &str) -> (u16, Value) {
        if token != BOT_TOKEN {
            return (
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        if !matches!(method, "sendMessage" | "sendPhoto" | "sendDocument") {
            return (
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
            );
        }
        if let Some((status, retry_after)) = self.outage(token) {
            let mut body = json!({"ok": false, "error_code": status,
                                  "description": format!("Too Many Requests: retry after {}", retry_after.unwrap_or(0))});
            if let Some(after) = retry_after {
                body["parameters"] = json!({"retry_after": after});
            }
            return (status, body);
        }
        if self.blocked.lock().unwrap().contains(token) {
            return (
                403,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            );
        }
        let chat = req.body["chat_id"].as_str().unwrap_or_default();
        if !self.known(token, chat) {
            return (
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        (
            200,
            json!({"ok": true, "result": {"message_id": self.id(), "date": 1700000000,
                   "chat": {"id": chat.parse::<i64>().unwrap_or(0), "type": "private"}}}),
        )
    }
}

pub struct App {
    pub ports: Ports,
    pub clock: Arc<ManualClock>,
    pub deps: Arc<Deps>,
    pub send: Router,
    pub crm: Router,
    pub worker: OutboundWorker,
    pub world: Arc<World>,
    pub server: FakeServer,
    _dir: tempfile::TempDir,
}

pub async fn app() -> App {
    app_with_table(|table| table).await
}

/// The app with its table wrapped (the benchmark counts calls this way).
pub async fn app_with_table(
    wrap: impl FnOnce(Arc<dyn shared::ports::Table>) -> Arc<dyn shared::ports::Table>,
) -> App {
    let world = Arc::new(World::default());
    let w = world.clone();
    let server = FakeServer::start(move |req| w.respond(req)).await.unwrap();
    let base = server.base.clone();
    let config = Config::from_lookup(|name| match name {
        "WAPPI_API_BASE" | "TELEGRAM_API_BASE" => Some(base.clone()),
        _ => None,
    })
    .unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let mut ports = backend::embedded(dir.path(), clock.clone()).unwrap();
    ports.table = wrap(ports.table.clone());
    let deps = Deps::new(&ports, &config).unwrap();
    App {
        send: telegram_send::router(deps.clone()),
        crm: telegram_crm_send::router(deps.clone()),
        worker: OutboundWorker::new(
            deps.clone(),
            ports.queue(QueueRole::Outbound).unwrap(),
            ports.dead_letter_queue(QueueRole::Outbound).unwrap(),
        ),
        deps,
        clock,
        world,
        server,
        ports,
        _dir: dir,
    }
}

/// The app on a table that counts its calls: (app, reads, writes).
pub async fn counted_app() -> (
    App,
    Arc<std::sync::atomic::AtomicU64>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    let mut counters = None;
    let app = app_with_table(|inner| {
        let table = shared::testing::CountingTable::new(inner);
        counters = Some((table.reads.clone(), table.writes.clone()));
        Arc::new(table)
    })
    .await;
    let (reads, writes) = counters.unwrap_or_default();
    (app, reads, writes)
}

pub fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

pub fn options() -> WorkerOptions {
    WorkerOptions {
        batch_size: 10,
        visibility: std::time::Duration::from_secs(30),
        idle: std::time::Duration::from_millis(10),
    }
}

impl App {
    pub async fn wappi(
        &self,
        tenant: &str,
        id: &str,
        profile: &str,
        primary: bool,
    ) -> IntegrationId {
        shared::testing::store_integration(
            &self.ports,
            tenant,
            id,
            "wappi",
            &[
                ("api_token", WAPPI_TOKEN),
                ("profile_id", profile),
                ("platform", "telegram"),
            ],
            primary,
        )
        .await
    }

    pub async fn telegram_crm(
        &self,
        tenant: &str,
        id: &str,
        account: &str,
        primary: bool,
    ) -> IntegrationId {
        shared::testing::store_integration(
            &self.ports,
            tenant,
            id,
            "telegram_crm",
            &[
                ("api_base", &format!("{}/crm", self.server.base)),
                ("api_token", CRM_TOKEN),
                ("account_id", account),
            ],
            primary,
        )
        .await
    }

    pub async fn bot(&self, tenant: &str, id: &str, token: &str, primary: bool) -> IntegrationId {
        shared::testing::store_integration(
            &self.ports,
            tenant,
            id,
            "telegram_bot",
            &[("bot_token", token)],
            primary,
        )
        .await
    }

    /// A client known on Telegram by `USER_ID` with phone `PHONE`.
    pub async fn client(&self, tenant_id: &str) -> ClientId {
        self.deps
            .sender
            .inbox
            .identify(
                &tenant(tenant_id),
                &Contact {
                    channel: "telegram".into(),
                    external_id: USER_ID.into(),
                    username: Some("ivan".into()),
                    name: Some("Ivan".into()),
                    phone: Some(PHONE.into()),
                },
            )
            .await
            .unwrap()
    }

    /// The client writes in through `integration` (the last inbound route).
    pub async fn inbound(
        &self,
        tenant_id: &str,
        client: &ClientId,
        integration: &IntegrationId,
        provider: &str,
    ) {
        let tenant = tenant(tenant_id);
        let now = self.clock.now();
        let dialog = Dialog {
            id: Dialog::id_for(integration, client),
            tenant_id: tenant.clone(),
            client_id: client.clone(),
            integration_id: integration.clone(),
            channel: "telegram".into(),
            provider: provider.into(),
            chat_id: USER_ID.into(),
            created_at: now,
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: None,
            unread_count: 0,
        };
        let inbox = &self.deps.sender.inbox;
        inbox.ensure_dialog(&dialog).await.unwrap();
        let message = Message {
            id: MessageId::generate(),
            tenant_id: tenant,
            dialog_id: dialog.id.clone(),
            client_id: client.clone(),
            integration_id: integration.clone(),
            channel: "telegram".into(),
            provider: provider.into(),
            direction: Direction::Inbound,
            kind: "message".into(),
            text: Some("привет".into()),
            attachments: Vec::new(),
            payload: None,
            provider_message_id: Some(format!("in-{}", MessageId::generate())),
            reply_to: None,
            status: None,
            status_reason: None,
            sent_at: now,
            created_at: now,
            edited_at: None,
            attempts: Vec::new(),
        };
        assert!(inbox.store_inbound(&message).await.unwrap());
        self.clock.advance(SignedDuration::from_secs(1));
    }

    pub async fn disable(&self, tenant_id: &str, id: &IntegrationId) {
        let repo = &self.deps.sender.integrations;
        let mut integration = repo.get(&tenant(tenant_id), id).await.unwrap().unwrap();
        integration.is_enabled = false;
        repo.save(&mut integration).await.unwrap();
    }

    pub async fn integration_status(
        &self,
        tenant_id: &str,
        id: &IntegrationId,
    ) -> (String, Option<String>) {
        let repo = &self.deps.sender.integrations;
        let integration = repo.get(&tenant(tenant_id), id).await.unwrap().unwrap();
        (
            serde_json::to_value(integration.status)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned(),
            integration.last_error,
        )
    }

    fn request(tenant_id: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> ApiRequest {
        let mut req = ApiRequest::new(Method::POST, path);
        req.claims = Some(JwtClaims {
            tenant_id: tenant(tenant_id),
            sub: "user-1".into(),
            role: Role::Owner,
        });
        req.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            req.headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        req.body = body.to_string().into_bytes().into();
        req
    }

    /// `POST /v1/messages/telegram` as the tenant's dashboard user.
    pub async fn post(
        &self,
        tenant_id: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        self.send
            .handle(Self::request(
                tenant_id,
                "/v1/messages/telegram",
                body,
                headers,
            ))
            .await
    }

    /// `POST /v1/messages/telegram-crm`.
    pub async fn post_crm(&self, tenant_id: &str, body: &Value) -> ApiResponse {
        self.crm
            .handle(Self::request(
                tenant_id,
                "/v1/messages/telegram-crm",
                body,
                &[],
            ))
            .await
    }

    /// One poll of the outbound queue by the worker; how many messages it handled.
    pub async fn work(&self) -> usize {
        let queue = self.ports.queue(QueueRole::Outbound).unwrap();
        poll_once(queue.as_ref(), &self.worker, options())
            .await
            .unwrap()
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    /// Send calls the providers received (any provider).
    pub fn sends(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// Every stored message of a tenant, oldest first.
    pub async fn messages(&self, tenant_id: &str) -> Vec<Value> {
        shared::testing::stored_messages(self.ports.table.as_ref(), tenant_id).await
    }

    pub async fn dead_letters(&self) -> Vec<Value> {
        let dlq = self.ports.dead_letter_queue(QueueRole::Outbound).unwrap();
        shared::testing::drain(dlq.as_ref()).await
    }
}
