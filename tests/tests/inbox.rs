//! The unified inbox across functions, on the dev server's routes and workers: inbound
//! webhooks from Telegram and MAX make one client with two dialogs; a reply leaves only
//! through its dialog's channel, queued and delivered by the outbound worker exactly once;
//! WhatsApp's 24-hour window is enforced before any provider call; paging under concurrent
//! inserts neither misses nor repeats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::TenantId;
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role, Router};
use shared::ports::{Clock, ManualClock};
use shared::testing::{FakeServer, store_integration};
use shared::worker::{SqsConsumer, WorkerOptions, poll_once};

const TG_SECRET: &str = "tg_secret_0123456789abcdef";
const MAX_SECRET: &str = "max_secret_0123456789abcdef";
const MAX_TOKEN: &str = "max_access_token_value_0001";

struct System {
    router: Router,
    outbound: Arc<dyn SqsConsumer>,
    ports: Ports,
    clock: Arc<ManualClock>,
    providers: FakeServer,
    _dir: tempfile::TempDir,
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../functions/webhook-receiver/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The whole system on the embedded backend; every provider API is `respond`.
async fn system(
    respond: impl Fn(&shared::testing::Recorded) -> (u16, Value) + Send + Sync + 'static,
) -> System {
    let providers = FakeServer::start(respond).await.unwrap();
    let base = providers.base.clone();
    let config = Config::from_lookup(|name| match name {
        "MAX_API_BASE" | "WHATSAPP_API_BASE" | "TELEGRAM_API_BASE" => Some(base.clone()),
        _ => None,
    })
    .unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), clock.clone()).unwrap();
    let router = devserver::router(&ports, &config).unwrap();
    let outbound = devserver::consumers(&ports, &config)
        .unwrap()
        .into_iter()
        .find(|(role, _)| *role == QueueRole::Outbound)
        .unwrap()
        .1;
    store_integration(
        &ports,
        "acme",
        "tg1",
        "telegram_bot",
        &[("bot_token", "1:A"), ("webhook_secret", TG_SECRET)],
        true,
    )
    .await;
    store_integration(
        &ports,
        "acme",
        "max1",
        "max",
        &[("access_token", MAX_TOKEN), ("webhook_secret", MAX_SECRET)],
        true,
    )
    .await;
    System {
        router,
        outbound,
        ports,
        clock,
        providers,
        _dir: dir,
    }
}

impl System {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        dashboard: bool,
    ) -> ApiResponse {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut req = ApiRequest::new(method, path);
        req.query = ApiRequest::parse_query(query);
        if dashboard {
            req.claims = Some(JwtClaims {
                tenant_id: TenantId::parse("acme").unwrap(),
                sub: "agent-1".into(),
                role: Role::Agent,
            });
        }
        for (name, value) in headers {
            req.headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        if let Some(body) = body {
            req.body = body.to_string().into_bytes().into();
        }
        self.router.handle(req).await
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.call(Method::GET, path, None, &[], true).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.json_body());
        r.json_body()
    }

    async fn post(&self, path: &str, body: &Value) -> ApiResponse {
        self.call(Method::POST, path, Some(body), &[], true).await
    }

    async fn webhook(&self, path: &str, header: (&str, &str), body: &[u8]) {
        let mut req = ApiRequest::new(Method::POST, path);
        req.headers.insert(
            HeaderName::from_bytes(header.0.as_bytes()).unwrap(),
            HeaderValue::from_str(header.1).unwrap(),
        );
        req.body = body.to_vec().into();
        let r = self.router.handle(req).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.json_body());
    }

    async fn work(&self) -> usize {
        let queue = self.ports.queue(QueueRole::Outbound).unwrap();
        let options = WorkerOptions {
            batch_size: 10,
            visibility: std::time::Duration::from_secs(30),
            idle: std::time::Duration::from_millis(10),
        };
        poll_once(queue.as_ref(), self.outbound.as_ref(), options)
            .await
            .unwrap()
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }
}

/// A MAX private-dialog message from user 123456789 (MAX's own `message_edited` sample,
/// as the `message_created` it was).
fn max_message() -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture("max/webhook.message_edited.json")).unwrap();
    body["update_type"] = json!("message_created");
    body.to_string().into_bytes()
}

fn max_api(
    calls: Arc<AtomicUsize>,
    fail_first: usize,
) -> impl Fn(&shared::testing::Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |req| {
        if req.path != "/messages" {
            return (404, json!({"code": "not.found", "message": "no such path"}));
        }
        if req.header("authorization") != Some(MAX_TOKEN) {
            return (
                401,
                json!({"code": "verify.token", "message": "Invalid access_token"}),
            );
        }
        if calls.fetch_add(1, Ordering::SeqCst) < fail_first {
            return (
                503,
                json!({"code": "internal", "message": "Service unavailable"}),
            );
        }
        (
            200,
            json!({"message": {"recipient": {"chat_id": 182182182, "chat_type": "dialog"},
                     "timestamp": 1775025700000u64,
                     "body": {"mid": "mid.out0000000001", "seq": 116327994376978688u64, "text": req.body["text"]}}}),
        )
    }
}

#[tokio::test]
async fn one_phone_on_telegram_and_max_is_one_client_and_a_reply_leaves_only_through_max() {
    let calls = Arc::new(AtomicUsize::new(0));
    let sys = system(max_api(calls.clone(), 1)).await;

    let created = sys
        .post("/v1/clients", &json!({"name": "Waffle", "phone": "+7 916 123-45-67",
                                     "identities": [{"channel": "telegram", "external_id": "218485655"}]}))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{:?}",
        created.json_body()
    );
    let client = created.json_body()["id"].as_str().unwrap().to_owned();
    sys.webhook(
        "/v1/webhooks/telegram_bot/tg1",
        ("x-telegram-bot-api-secret-token", TG_SECRET),
        &fixture("telegram/update-message-private-text.json"),
    )
    .await;

    // The same phone again (another format) links the MAX account to the same client.
    let again = sys
        .post("/v1/clients", &json!({"phone": "89161234567", "identities": [{"channel": "max", "external_id": "123456789"}]}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json_body()["id"], client.as_str());
    sys.webhook(
        "/v1/webhooks/max/max1",
        ("x-max-bot-api-secret", MAX_SECRET),
        &max_message(),
    )
    .await;

    let view = sys.get(&format!("/v1/clients/{client}")).await;
    assert_eq!(view["phone"], "+79161234567");
    assert_eq!(view["identities"].as_array().unwrap().len(), 2);
    let dialogs = view["dialogs"].as_array().unwrap();
    assert_eq!(dialogs.len(), 2);
    let by_phone = sys.get("/v1/clients?phone=%2B79161234567").await;
    assert_eq!(by_phone["items"][0]["id"], client.as_str());

    let all = sys.get("/v1/inbox/dialogs").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][0]["channel"], "max", "newest activity first");
    let max_only = sys.get("/v1/inbox/dialogs?channel=max").await;
    let items = max_only["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    for empty in ["channel=", "integration_id="] {
        let r = sys
            .call(
                Method::GET,
                &format!("/v1/inbox/dialogs?{empty}"),
                None,
                &[],
                true,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "an empty filter {empty}"
        );
    }
    assert_eq!(items[0]["unread_count"], 1);
    let dialog = items[0]["id"].as_str().unwrap().to_owned();

    let reply = sys
        .call(
            Method::POST,
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            Some(&json!({"text": "Ответ из кабинета"})),
            &[("idempotency-key", "reply-1")],
            true,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "{:?}",
        reply.json_body()
    );
    assert_eq!(reply.json_body()["status"], "queued");
    let id = reply.json_body()["id"].as_str().unwrap().to_owned();
    // The same key again: the same answer, nothing queued twice.
    let replay = sys
        .call(
            Method::POST,
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            Some(&json!({"text": "Ответ из кабинета"})),
            &[("idempotency-key", "reply-1")],
            true,
        )
        .await;
    assert_eq!(replay.json_body()["id"], id.as_str());

    // MAX answers 503 first: the worker backs off, then delivers exactly once.
    assert_eq!(sys.work().await, 1);
    for _ in 0..5 {
        sys.advance(1000);
        sys.work().await;
    }
    let requests = sys.providers.requests();
    assert!(
        requests.iter().all(|r| r.path == "/messages"),
        "only the MAX API was called"
    );
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].query.as_deref(), Some("chat_id=182182182"));
    assert_eq!(requests[1].body["text"], "Ответ из кабинета");

    let messages = sys
        .get(&format!("/v1/inbox/dialogs/{dialog}/messages"))
        .await;
    let items = messages["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], id.as_str(), "newest first");
    assert_eq!(items[0]["status"], "sent");
    assert_eq!(items[0]["provider_message_id"], "mid.out0000000001");
    assert_eq!(items[0]["integration_id"], "max1");
    assert_eq!(items[1]["direction"], "inbound");
}

#[tokio::test]
async fn bad_replies_and_other_tenants_dialogs_are_refused() {
    let sys = system(|_| (500, json!({}))).await;
    sys.webhook(
        "/v1/webhooks/max/max1",
        ("x-max-bot-api-secret", MAX_SECRET),
        &max_message(),
    )
    .await;
    let dialog = sys.get("/v1/inbox/dialogs").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/inbox/dialogs/{dialog}/reply");
    for (body, field) in [
        (json!({}), "text"),
        (json!({"text": "   "}), "text"),
        (json!({"text": "x".repeat(4001)}), "text"),
        (
            json!({"attachments": [{"type": "sticker", "url": "https://example.com/s.webp"}]}),
            "attachments[0].type",
        ),
        (
            json!({"attachments": [{"type": "image", "url": "javascript:alert(1)"}]}),
            "attachments[0].url",
        ),
    ] {
        let r = sys.post(&path, &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.json_body()["error"]["details"]["field"], field, "{body}");
    }
    let r = sys
        .post(&path, &json!({"text": "hi", "integration_id": "tg1"}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a reply cannot pick another integration"
    );

    // Another tenant's dashboard sees none of it.
    let mut req = ApiRequest::new(Method::POST, &path);
    req.claims = Some(JwtClaims {
        tenant_id: TenantId::parse("other").unwrap(),
        sub: "x".into(),
        role: Role::Owner,
    });
    req.body = json!({"text": "hi"}).to_string().into_bytes().into();
    assert_eq!(sys.router.handle(req).await.status, StatusCode::NOT_FOUND);

    // A disabled integration is a clear error, not a detour.
    let repo = shared::repo::integrations::Integrations::new(
        sys.ports.table.clone(),
        sys.ports.secrets().unwrap(),
        sys.ports.clock.clone(),
    );
    let tenant = TenantId::parse("acme").unwrap();
    let mut max = repo
        .get(
            &tenant,
            &shared::domain::IntegrationId::parse("max1").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    max.is_enabled = false;
    repo.save(&mut max).await.unwrap();
    let r = sys.post(&path, &json!({"text": "hi"})).await;
    assert_eq!(r.json_body()["error"]["code"], "INTEGRATION_DISABLED");
    assert!(sys.providers.requests().is_empty());
    assert_eq!(sys.work().await, 0);
}

#[tokio::test]
async fn a_whatsapp_reply_outside_the_24_hour_window_is_refused_without_a_provider_call() {
    let sys = system(|_| (200, json!({"messages": [{"id": "wamid.X"}]}))).await;
    let secret = String::from_utf8(fixture("whatsapp/signature-pywa/app_secret.txt")).unwrap();
    store_integration(
        &sys.ports,
        "acme",
        "wa1",
        "whatsapp",
        &[
            ("phone_number_id", "277321005464405"),
            ("access_token", "t"),
            ("app_secret", secret.trim()),
            ("verify_token", "verify_0123456789"),
        ],
        true,
    )
    .await;
    let signature =
        String::from_utf8(fixture("whatsapp/signature-pywa/x-hub-signature-256.txt")).unwrap();
    // pywa's signed sample is from 2024: its window closed long ago.
    sys.webhook(
        "/v1/webhooks/whatsapp/wa1",
        ("x-hub-signature-256", signature.trim()),
        &fixture("whatsapp/signature-pywa/body.json"),
    )
    .await;
    let dialog = sys.get("/v1/inbox/dialogs?channel=whatsapp").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sys
        .post(
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            &json!({"text": "Здравствуйте"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json_body()["error"]["code"], "WHATSAPP_WINDOW_CLOSED");
    assert_eq!(sys.work().await, 0);
    assert!(sys.providers.requests().is_empty());
    let messages = sys
        .get(&format!("/v1/inbox/dialogs/{dialog}/messages"))
        .await;
    assert_eq!(
        messages["items"].as_array().unwrap().len(),
        1,
        "nothing stored for the refused reply"
    );

    // A template is the one way to write outside the window.
    let r = sys
        .post(
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            &json!({"template": {"name": "order_update", "language": "ru"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json_body());
    assert_eq!(sys.work().await, 1);
    let sent = &sys.providers.requests()[0];
    assert_eq!(sent.body["type"], "template");
    assert_eq!(
        sent.body["template"],
        json!({"name": "order_update", "language": {"code": "ru"}})
    );
    let bad = sys
        .post(
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            &json!({"template": {"name": "Order Update", "language": "ru"}}),
        )
        .await;
    assert_eq!(
        bad.json_body()["error"]["details"]["field"],
        "template.name"
    );
}

#[tokio::test]
async fn whatsapp_error_131047_ends_the_reply_as_window_closed() {
    let sys = system(|_| {
        (400, json!({"error": {"message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                               "error_data": {"messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
                               "fbtrace_id": "AbCdEf"}}))
    })
    .await;
    let secret = "wa_app_secret_0123456789";
    store_integration(
        &sys.ports,
        "acme",
        "wa1",
        "whatsapp",
        &[
            ("phone_number_id", "1122334455667"),
            ("access_token", "wa_token"),
            ("app_secret", secret),
            ("verify_token", "verify_0123456789"),
        ],
        true,
    )
    .await;
    let now = sys.clock.now().as_second().to_string();
    let (body, signature) = whatsapp_signed(
        "pywa-message-text.json",
        |b| {
            b["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(now);
        },
        secret,
    );
    sys.webhook(
        "/v1/webhooks/whatsapp/wa1",
        ("x-hub-signature-256", &signature),
        &body,
    )
    .await;
    let dialog = sys.get("/v1/inbox/dialogs").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sys
        .post(
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            &json!({"text": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    assert_eq!(sys.work().await, 1);
    assert_eq!(
        sys.providers.requests().len(),
        1,
        "a final refusal is not retried"
    );
    let page = sys
        .get(&format!("/v1/inbox/dialogs/{dialog}/messages"))
        .await;
    let message = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(message["status"], "failed");
    assert!(
        message["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("WHATSAPP_WINDOW_CLOSED"),
        "{message}"
    );
}

#[tokio::test]
async fn paging_under_concurrent_inserts_misses_and_repeats_nothing() {
    let sys = system(|_| (200, json!({}))).await;
    // 23 clients write in, each in its own dialog.
    let tg = |user: u64, text: &str, update: u64| {
        json!({"update_id": update, "message": {"message_id": update, "from": {"id": user, "is_bot": false, "first_name": "U"},
               "chat": {"id": user, "type": "private"}, "date": 1700000000 + update, "text": text}}).to_string().into_bytes()
    };
    for n in 0..23u64 {
        sys.advance(1);
        sys.webhook(
            "/v1/webhooks/telegram_bot/tg1",
            ("x-telegram-bot-api-secret-token", TG_SECRET),
            &tg(1000 + n, "hi", n),
        )
        .await;
    }
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut update = 100;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/inbox/dialogs?limit=5&cursor={c}"),
            None => "/v1/inbox/dialogs?limit=5".to_owned(),
        };
        let page = sys.get(&path).await;
        for d in page["items"].as_array().unwrap() {
            assert!(
                seen.insert(d["id"].as_str().unwrap().to_owned()),
                "repeated {d}"
            );
        }
        // A new client writes in between pages: it is newer than everything paged.
        sys.advance(1);
        sys.webhook(
            "/v1/webhooks/telegram_bot/tg1",
            ("x-telegram-bot-api-secret-token", TG_SECRET),
            &tg(5000 + update, "new", update),
        )
        .await;
        update += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        23,
        "every dialog that existed when paging began, once"
    );

    // Messages of one dialog, newest first, while new ones arrive.
    let first_user = 1000u64;
    for n in 0..17u64 {
        sys.advance(1);
        sys.webhook(
            "/v1/webhooks/telegram_bot/tg1",
            ("x-telegram-bot-api-secret-token", TG_SECRET),
            &tg(first_user, &format!("m{n}"), 10_000 + n),
        )
        .await;
    }
    let client_dialog = sys.get("/v1/inbox/dialogs?limit=1").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut texts = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/inbox/dialogs/{client_dialog}/messages?limit=4&cursor={c}"),
            None => format!("/v1/inbox/dialogs/{client_dialog}/messages?limit=4"),
        };
        let page = sys.get(&path).await;
        for m in page["items"].as_array().unwrap() {
            texts.push(m["text"].as_str().unwrap().to_owned());
        }
        sys.advance(1);
        sys.webhook(
            "/v1/webhooks/telegram_bot/tg1",
            ("x-telegram-bot-api-secret-token", TG_SECRET),
            &tg(first_user, &format!("late{extra}"), 20_000 + extra),
        )
        .await;
        extra += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // 1 first message + 17 = 18, newest first, each once; the late ones come on refresh.
    let expected: Vec<String> = (0..17)
        .rev()
        .map(|n| format!("m{n}"))
        .chain(["hi".to_owned()])
        .collect();
    assert_eq!(texts, expected);
}

/// A WhatsApp webhook body of the pywa samples, signed with `secret` as Meta signs.
fn whatsapp_signed(sample: &str, edit: impl Fn(&mut Value), secret: &str) -> (Vec<u8>, String) {
    let mut body: Value = serde_json::from_slice(&fixture(&format!("whatsapp/{sample}"))).unwrap();
    edit(&mut body);
    let bytes = body.to_string().into_bytes();
    let signature = format!(
        "sha256={}",
        hex::encode(shared::signing::hmac_sha256(secret.as_bytes(), &bytes))
    );
    (bytes, signature)
}

async fn status_of(sys: &System, dialog: &str, id: &str) -> Value {
    let page = sys
        .get(&format!("/v1/inbox/dialogs/{dialog}/messages"))
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()["status"]
        .clone()
}

#[tokio::test]
async fn a_whatsapp_reply_moves_queued_sent_delivered_read_from_the_status_webhooks() {
    let sys = system(|req| {
        if req.path == "/1122334455667/messages" && req.header("authorization") == Some("Bearer wa_token") {
            (200, json!({"messaging_product": "whatsapp", "contacts": [{"input": "972987654321", "wa_id": "972987654321"}],
                         "messages": [{"id": "wamid.REPLY0001"}]}))
        } else {
            (401, json!({"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}}))
        }
    })
    .await;
    let secret = "wa_app_secret_0123456789";
    store_integration(
        &sys.ports,
        "acme",
        "wa1",
        "whatsapp",
        &[
            ("phone_number_id", "1122334455667"),
            ("access_token", "wa_token"),
            ("app_secret", secret),
            ("verify_token", "verify_0123456789"),
        ],
        true,
    )
    .await;
    let now = sys.clock.now().as_second().to_string();
    let (body, signature) = whatsapp_signed(
        "pywa-message-text.json",
        |b| {
            b["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(now);
        },
        secret,
    );
    sys.webhook(
        "/v1/webhooks/whatsapp/wa1",
        ("x-hub-signature-256", &signature),
        &body,
    )
    .await;
    let dialog = sys.get("/v1/inbox/dialogs?channel=whatsapp").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = sys
        .post(
            &format!("/v1/inbox/dialogs/{dialog}/reply"),
            &json!({"text": "Спасибо!"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json_body());
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    assert_eq!(sys.work().await, 1);
    let sent = &sys.providers.requests()[0];
    assert_eq!(sent.body["to"], "972987654321");
    assert_eq!(sent.body["text"]["body"], "Спасибо!");
    assert_eq!(status_of(&sys, &dialog, &id).await, "sent");
    for (state, expected) in [
        ("delivered", "delivered"),
        ("read", "read"),
        ("delivered", "read"),
    ] {
        let (body, signature) = whatsapp_signed(
            "pywa-status-delivered.json",
            |b| {
                let s = &mut b["entry"][0]["changes"][0]["value"]["statuses"][0];
                s["id"] = json!("wamid.REPLY0001");
                s["status"] = json!(state);
            },
            secret,
        );
        sys.webhook(
            "/v1/webhooks/whatsapp/wa1",
            ("x-hub-signature-256", &signature),
            &body,
        )
        .await;
        assert_eq!(
            status_of(&sys, &dialog, &id).await,
            expected,
            "after {state}"
        );
    }
}

#[tokio::test]
async fn max_replies_are_paced_at_two_per_second_per_dialog() {
    let capture = shared::testing::LogCapture::default();
    let _guard = capture.install();
    let calls = Arc::new(AtomicUsize::new(0));
    let sys = system(max_api(calls.clone(), 0)).await;
    sys.webhook(
        "/v1/webhooks/max/max1",
        ("x-max-bot-api-secret", MAX_SECRET),
        &max_message(),
    )
    .await;
    let dialog = sys.get("/v1/inbox/dialogs").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..3 {
        let r = sys
            .post(
                &format!("/v1/inbox/dialogs/{dialog}/reply"),
                &json!({"text": format!("r{n}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    // One batch, one second of the (stopped) clock: two go, the third waits.
    assert_eq!(sys.work().await, 3);
    assert_eq!(sys.providers.requests().len(), 2);
    sys.advance(60);
    sys.work().await;
    assert_eq!(sys.providers.requests().len(), 3);
    let page = sys
        .get(&format!("/v1/inbox/dialogs/{dialog}/messages"))
        .await;
    let sent = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "sent")
        .count();
    assert_eq!(sent, 3);
    let logs = capture.text();
    assert!(
        logs.contains("outbound send attempt"),
        "the flow was logged"
    );
    for secret in [MAX_TOKEN, MAX_SECRET] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
