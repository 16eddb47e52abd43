//! Lead fan-out and delivery across functions, on the dev server's routes and workers,
//! against local servers speaking SMTP, amoCRM, Bitrix24, the Telegram Bot API and a
//! webhook receiver that verifies Standard Webhooks signatures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::{IntegrationId, TenantId};
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role, Router};
use shared::ports::{Clock, ManualClock};
use shared::signing::StandardWebhooks;
use shared::testing::{FakeServer, LogCapture, Recorded, SmtpSink, store_integration};
use shared::worker::{SqsConsumer, WorkerOptions, poll_once};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const AMO_SECRET: &str = "amo_client_secret_value_0001";
const AMO_REFRESH: &str = "amo_refresh_token_value_0001";

/// What the fake APIs do, switchable per test.
#[derive(Default)]
struct Behaviour {
    /// Bitrix24 answers QUERY_LIMIT_EXCEEDED this many times first.
    bitrix_limited: AtomicUsize,
    /// amoCRM answers 503 to this many lead calls made with the fresh token.
    amo_down: AtomicUsize,
    /// The webhook endpoint is gone (410).
    hook_gone: std::sync::atomic::AtomicBool,
    /// Webhook deliveries whose signature verified: (webhook-id, body).
    hooks: Mutex<Vec<(String, Value)>>,
}

fn respond(b: &Behaviour, req: &Recorded) -> (u16, Value) {
    let path = req.path.as_str();
    if path == "/oauth2/access_token" {
        if req.body["refresh_token"] == AMO_REFRESH && req.body["client_secret"] == AMO_SECRET {
            return (
                200,
                json!({"token_type": "Bearer", "expires_in": 86400,
                                "access_token": "fresh_access_token", "refresh_token": "fresh_refresh_token"}),
            );
        }
        return (
            400,
            json!({"hint": "Token has been revoked", "title": "Ошибка", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 400, "detail": "Неверный refresh_token"}),
        );
    }
    if path == "/api/v4/leads/complex" {
        if req.header("authorization") != Some("Bearer fresh_access_token") {
            return (
                401,
                json!({"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}),
            );
        }
        return (
            200,
            json!([{"id": 31234567, "contact_id": 555, "company_id": null, "request_id": ["0"], "merged": false}]),
        );
    }
    if path.ends_with("/crm.lead.add.json") {
        if b.bitrix_limited.load(Ordering::SeqCst) > 0 {
            b.bitrix_limited.fetch_sub(1, Ordering::SeqCst);
            return (
                503,
                json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
            );
        }
        return (200, json!({"result": 777, "time": {"start": 1700000000.1}}));
    }
    if let Some(rest) = path.strip_prefix("/bot") {
        let (token, method) = rest.split_once('/').unwrap_or_default();
        if token != BOT_TOKEN || method != "sendMessage" {
            return (
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        return (
            200,
            json!({"ok": true, "result": {"message_id": 9001, "date": 1700000000, "chat": {"id": -1001234567890i64, "type": "supergroup"}}}),
        );
    }
    if path == "/hooks/lead" {
        if b.hook_gone.load(Ordering::SeqCst) {
            return (410, json!({"error": "gone"}));
        }
        let id = req.header("webhook-id").unwrap_or_default().to_owned();
        let ts: i64 = req
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let sig = req.header("webhook-signature").unwrap_or_default();
        if !StandardWebhooks::new(WHSEC)
            .unwrap()
            .verify(&id, ts, &req.raw, sig)
        {
            return (401, json!({"error": "bad signature"}));
        }
        b.hooks.lock().unwrap().push((id, req.body.clone()));
        return (204, Value::Null);
    }
    (404, json!({"error": "no such path"}))
}

struct System {
    router: Router,
    intake: Arc<dyn SqsConsumer>,
    delivery: Arc<dyn SqsConsumer>,
    ports: Ports,
    clock: Arc<ManualClock>,
    apis: FakeServer,
    smtp: SmtpSink,
    behaviour: Arc<Behaviour>,
    _dir: tempfile::TempDir,
}

async fn system() -> System {
    let behaviour = Arc::new(Behaviour::default());
    let b = behaviour.clone();
    let apis = FakeServer::start(move |req| respond(&b, req))
        .await
        .unwrap();
    let smtp = SmtpSink::start().await.unwrap();
    let base = apis.base.clone();
    let smtp_port = smtp.port.to_string();
    let config = Config::from_lookup(|name| match name {
        "TELEGRAM_API_BASE" | "AMOCRM_API_BASE" => Some(base.clone()),
        "SMTP_HOST" => Some("127.0.0.1".into()),
        "SMTP_PORT" => Some(smtp_port.clone()),
        "SMTP_TLS" => Some("none".into()),
        _ => None,
    })
    .unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), clock.clone()).unwrap();
    let router = devserver::router(&ports, &config).unwrap();
    let mut consumers = devserver::consumers(&ports, &config).unwrap();
    let mut take = |role: QueueRole| {
        let i = consumers.iter().position(|(r, _)| *r == role).unwrap();
        consumers.remove(i).1
    };
    let intake = take(QueueRole::LeadIntake);
    let delivery = take(QueueRole::LeadDelivery);
    System {
        router,
        intake,
        delivery,
        ports,
        clock,
        apis,
        smtp,
        behaviour,
        _dir: dir,
    }
}

impl System {
    async fn call(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ApiResponse {
        let mut req = ApiRequest::new(method, path);
        req.claims = Some(JwtClaims {
            tenant_id: TenantId::parse(tenant).unwrap(),
            sub: "u".into(),
            role: Role::Owner,
        });
        req.headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        );
        if let Some(body) = body {
            req.body = body.to_string().into_bytes().into();
        }
        self.router.handle(req).await
    }

    async fn post(&self, path: &str, body: &Value) -> ApiResponse {
        self.call("acme", Method::POST, path, Some(body)).await
    }

    async fn route(&self, scope: &str, id: &str, integrations: &[&str]) {
        let r = self
            .call(
                "acme",
                Method::PUT,
                &format!("/v1/lead-routing/{scope}/{id}"),
                Some(&json!({"integration_ids": integrations})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    }

    async fn deliveries(&self, lead: &str) -> Vec<Value> {
        let r = self
            .call(
                "acme",
                Method::GET,
                &format!("/v1/leads/{lead}/deliveries"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        r.json_body()["items"].as_array().unwrap().clone()
    }

    async fn poll(&self, role: QueueRole, consumer: &dyn SqsConsumer) -> usize {
        let queue = self.ports.queue(role).unwrap();
        let options = WorkerOptions {
            batch_size: 10,
            visibility: std::time::Duration::from_secs(60),
            idle: std::time::Duration::from_millis(10),
        };
        poll_once(queue.as_ref(), consumer, options).await.unwrap()
    }

    async fn deliver_all(&self) {
        for _ in 0..6 {
            self.poll(QueueRole::LeadDelivery, self.delivery.as_ref())
                .await;
            self.clock.advance(SignedDuration::from_secs(1000));
        }
    }

    fn calls(&self, suffix: &str) -> usize {
        self.apis
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count()
    }

    async fn connect_all(&self) {
        let p = &self.ports;
        store_integration(
            p,
            "acme",
            "email1",
            "email",
            &[
                ("recipients", "sales@example.com, boss@example.com"),
                ("from_address", "leads@example.com"),
            ],
            false,
        )
        .await;
        store_integration(
            p,
            "acme",
            "amo1",
            "amocrm",
            &[
                ("subdomain", "acme"),
                ("client_id", "amo-client"),
                ("client_secret", AMO_SECRET),
                ("redirect_uri", "https://example.com/amo"),
                ("access_token", "expired_access_token"),
                ("refresh_token", AMO_REFRESH),
            ],
            false,
        )
        .await;
        store_integration(
            p,
            "acme",
            "tg1",
            "telegram",
            &[("bot_token", BOT_TOKEN), ("chat_id", "-1001234567890")],
            false,
        )
        .await;
        store_integration(
            p,
            "acme",
            "bx1",
            "bitrix24",
            &[(
                "webhook_url",
                &format!("{}/rest/1/abcdef123456/", self.apis.base),
            )],
            false,
        )
        .await;
        store_integration(
            p,
            "acme",
            "hook1",
            "webhooks",
            &[
                ("url", &format!("{}/hooks/lead", self.apis.base)),
                ("secret", WHSEC),
            ],
            false,
        )
        .await;
        store_integration(
            p,
            "acme",
            "gr1",
            "getresponse",
            &[("api_key", "gr_key_0001")],
            false,
        )
        .await;
        self.route("entities", "site-42", &["email1", "amo1", "tg1"])
            .await;
        self.route("projects", "proj-7", &["bx1", "hook1", "amo1", "gr1"])
            .await;
    }
}

fn lead_body() -> Value {
    json!({"name": "Иван <script>", "phone": "8 916 123-45-67", "email": "ivan@example.com",
           "comment": "Хочу тур", "source": "landing", "utm_source": "yandex", "utm_campaign": "spring",
           "external_entity_id": "site-42", "external_project_id": "proj-7", "attributes": {"budget": 150000}})
}

#[tokio::test]
async fn a_lead_fans_out_to_five_targets_from_entity_and_project_once_each() {
    let capture = LogCapture::default();
    let _guard = capture.install();
    let sys = system().await;
    sys.connect_all().await;
    let r = sys.post("/v1/leads", &lead_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json_body());
    let body = r.json_body();
    let lead = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["phone"], "+79161234567");
    let report = &body["dispatch"]["report"];
    let mut dispatched: Vec<&str> = report["dispatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    dispatched.sort_unstable();
    assert_eq!(
        dispatched,
        ["amocrm", "bitrix24", "email", "telegram", "webhooks"],
        "amo1 is attached twice, sent once"
    );
    assert_eq!(report["skipped"][0]["type"], "getresponse");

    sys.deliver_all().await;
    let states: Vec<(String, String)> = sys
        .deliveries(&lead)
        .await
        .iter()
        .map(|d| {
            (
                d["type"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 6);
    assert!(
        states.iter().all(|(t, s)| if t == "getresponse" {
            s == "skipped"
        } else {
            s == "delivered"
        }),
        "{states:?}"
    );
    let deliveries = sys.deliveries(&lead).await;
    let external =
        |t: &str| deliveries.iter().find(|d| d["type"] == t).unwrap()["external_id"].clone();
    assert_eq!(external("amocrm"), "31234567");
    assert_eq!(external("bitrix24"), "777");

    // Each target got the lead once.
    assert_eq!(sys.smtp.messages().len(), 1);
    assert_eq!(sys.calls("/sendMessage"), 1);
    assert_eq!(sys.calls("/crm.lead.add.json"), 1);
    let hooks = sys.behaviour.hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].1["data"]["id"], lead.as_str());
    // amoCRM: the expired token was refreshed, the lead sent with the new one, and the
    // new tokens sealed back into the integration.
    assert_eq!(sys.calls("/oauth2/access_token"), 1);
    let repo = shared::repo::integrations::Integrations::new(
        sys.ports.table.clone(),
        sys.ports.secrets().unwrap(),
        sys.ports.clock.clone(),
    );
    let amo = repo
        .get(
            &TenantId::parse("acme").unwrap(),
            &IntegrationId::parse("amo1").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let config = repo.open(&amo).await.unwrap();
    assert_eq!(config["access_token"].expose(), "fresh_access_token");
    assert_eq!(config["refresh_token"].expose(), "fresh_refresh_token");

    let logs = capture.text();
    for secret in [
        BOT_TOKEN,
        AMO_SECRET,
        AMO_REFRESH,
        "fresh_access_token",
        WHSEC,
        "ivan@example.com",
        "+79161234567",
        "Иван",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn a_target_down_then_up_gets_the_lead_exactly_once_and_a_gone_one_ends_in_the_dlq() {
    let sys = system().await;
    sys.connect_all().await;
    sys.behaviour.bitrix_limited.store(1, Ordering::SeqCst);
    sys.behaviour.hook_gone.store(true, Ordering::SeqCst);
    let lead = sys.post("/v1/leads", &lead_body()).await.json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sys.deliver_all().await;
    let deliveries = sys.deliveries(&lead).await;
    let of = |t: &str| deliveries.iter().find(|d| d["type"] == t).unwrap().clone();
    assert_eq!(of("bitrix24")["status"], "delivered");
    assert_eq!(of("bitrix24")["attempts"], 2);
    assert_eq!(
        sys.calls("/crm.lead.add.json"),
        2,
        "one limited call, one delivery"
    );
    assert_eq!(of("webhooks")["status"], "failed");
    assert!(
        of("webhooks")["last_error"]
            .as_str()
            .unwrap()
            .contains("gone"),
        "{}",
        of("webhooks")
    );
    assert_eq!(of("email")["status"], "delivered");
    let dlq = sys
        .ports
        .dead_letter_queue(QueueRole::LeadDelivery)
        .unwrap();
    let dead = shared::testing::drain(dlq.as_ref()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["job"]["integration_id"], "hook1");
    assert!(dead[0]["reason"].as_str().unwrap().contains("gone"));

    // SQS delivers at least once: the same delivery again sends nothing.
    let job = json!({"tenant_id": "acme", "lead_id": lead, "integration_id": "bx1", "round": 1});
    let queue = sys.ports.queue(QueueRole::LeadDelivery).unwrap();
    queue
        .send(shared::ports::queue::OutgoingMessage::new(job.to_string()))
        .await
        .unwrap();
    sys.deliver_all().await;
    assert_eq!(sys.calls("/crm.lead.add.json"), 2);
}

#[tokio::test]
async fn resend_one_lead_to_all_or_some_types_and_many_leads_with_errors_per_lead() {
    let sys = system().await;
    sys.connect_all().await;
    let lead = sys.post("/v1/leads", &lead_body()).await.json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sys.deliver_all().await;
    assert_eq!(sys.calls("/sendMessage"), 1);

    let r = sys
        .post(
            &format!("/v1/leads/{lead}/resend"),
            &json!({"integration_types": ["telegram"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    assert_eq!(r.json_body()["dispatched"].as_array().unwrap().len(), 1);
    sys.deliver_all().await;
    assert_eq!(sys.calls("/sendMessage"), 2);
    assert_eq!(sys.smtp.messages().len(), 1, "only telegram was resent");
    let tg = sys
        .deliveries(&lead)
        .await
        .into_iter()
        .find(|d| d["type"] == "telegram")
        .unwrap();
    assert_eq!(tg["round"], 2);

    let all = sys
        .call(
            "acme",
            Method::POST,
            &format!("/v1/leads/{lead}/resend"),
            None,
        )
        .await;
    assert_eq!(all.json_body()["dispatched"].as_array().unwrap().len(), 5);
    sys.deliver_all().await;
    assert_eq!(sys.smtp.messages().len(), 2);

    // Bulk: an unknown lead and another tenant's lead are entries in `errors`.
    store_integration(
        &sys.ports,
        "other",
        "tg9",
        "telegram",
        &[("bot_token", BOT_TOKEN), ("chat_id", "1")],
        false,
    )
    .await;
    let theirs = sys
        .call(
            "other",
            Method::POST,
            "/v1/leads",
            Some(&json!({"name": "X"})),
        )
        .await
        .json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bulk = sys
        .post(
            "/v1/leads/resend",
            &json!({"lead_ids": [lead, "01nosuchlead", theirs], "integration_types": ["email"]}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK);
    let b = bulk.json_body();
    assert_eq!(b["dispatched_count"], 1);
    assert_eq!(b["total_count"], 3);
    assert_eq!(b["errors_count"], 2);
    assert!(
        b["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["code"] == "LEAD_NOT_FOUND")
    );
    let bad = sys
        .post(
            "/v1/leads/resend",
            &json!({"lead_ids": [lead], "integration_types": ["fax"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_delay_longer_than_sqs_allows_still_fans_out_when_due() {
    let sys = system().await;
    sys.connect_all().await;
    let mut body = lead_body();
    body["delay_sec"] = json!(2000);
    let r = sys.post("/v1/leads", &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json_body()["dispatch"]["status"], "scheduled");
    let lead = r.json_body()["id"].as_str().unwrap().to_owned();
    assert!(sys.deliveries(&lead).await.is_empty());
    // After 900 s the intake message is back: not due, it goes on for the rest.
    sys.clock.advance(SignedDuration::from_secs(901));
    assert_eq!(
        sys.poll(QueueRole::LeadIntake, sys.intake.as_ref()).await,
        1
    );
    assert!(sys.deliveries(&lead).await.is_empty(), "not due at 901 s");
    sys.clock.advance(SignedDuration::from_secs(1100));
    assert_eq!(
        sys.poll(QueueRole::LeadIntake, sys.intake.as_ref()).await,
        1
    );
    assert_eq!(sys.deliveries(&lead).await.len(), 6);
}

#[tokio::test]
async fn bad_leads_and_other_tenants_are_clear_4xx_and_no_integrations_is_reported() {
    let sys = system().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"phone": "12"}), "phone"),
        (json!({"email": "not-an-email"}), "email"),
        (json!({"name": "A", "delay_sec": 604801}), "delay_sec"),
        (
            json!({"name": "A", "external_entity_id": "bad id#"}),
            "external_entity_id",
        ),
    ] {
        let r = sys.post("/v1/leads", &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.json_body()["error"]["details"]["field"], field, "{body}");
    }
    let r = sys
        .post("/v1/leads", &json!({"name": "A", "unknown": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let lonely = sys
        .post(
            "/v1/leads",
            &json!({"name": "A", "external_entity_id": "nobody"}),
        )
        .await;
    assert_eq!(lonely.status, StatusCode::CREATED);
    assert_eq!(
        lonely.json_body()["dispatch"]["report"]["note"],
        "the lead has no enabled integration"
    );
    let id = lonely.json_body()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sys.call(
            "other",
            Method::GET,
            &format!("/v1/leads/{id}/deliveries"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let r = sys
        .call(
            "acme",
            Method::PUT,
            "/v1/lead-routing/entities/site-1",
            Some(&json!({"integration_ids": ["nope"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        sys.call(
            "acme",
            Method::PUT,
            "/v1/lead-routing/planets/x",
            Some(&json!({"integration_ids": []}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let _ = sys.clock.now();
}

#[tokio::test]
async fn the_same_idempotency_key_creates_one_lead_and_one_fan_out() {
    let sys = system().await;
    sys.connect_all().await;
    let send = || async {
        let mut req = ApiRequest::new(Method::POST, "/v1/leads");
        req.claims = Some(JwtClaims {
            tenant_id: TenantId::parse("acme").unwrap(),
            sub: "u".into(),
            role: Role::Owner,
        });
        req.headers.insert(
            HeaderName::from_static("idempotency-key"),
            HeaderValue::from_static("form-submit-1"),
        );
        req.body = lead_body().to_string().into_bytes().into();
        sys.router.handle(req).await
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.json_body()["id"], first.json_body()["id"]);
    assert_eq!(second.headers.get("idempotent-replayed").unwrap(), "true");
    let lead = first.json_body()["id"].as_str().unwrap().to_owned();
    assert!(
        sys.deliveries(&lead)
            .await
            .iter()
            .all(|d| d["round"].as_u64().unwrap() <= 1)
    );
    sys.deliver_all().await;
    assert_eq!(sys.smtp.messages().len(), 1);
}

#[tokio::test]
async fn amocrm_tokens_refreshed_before_a_failed_call_are_already_sealed() {
    let sys = system().await;
    sys.connect_all().await;
    sys.behaviour.amo_down.store(1, Ordering::SeqCst);
    let lead = sys.post("/v1/leads", &lead_body()).await.json_body()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first attempt refreshes, then the lead call fails: the new pair is sealed anyway.
    sys.poll(QueueRole::LeadDelivery, sys.delivery.as_ref())
        .await;
    let repo = shared::repo::integrations::Integrations::new(
        sys.ports.table.clone(),
        sys.ports.secrets().unwrap(),
        sys.ports.clock.clone(),
    );
    let amo = repo
        .get(
            &TenantId::parse("acme").unwrap(),
            &IntegrationId::parse("amo1").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        repo.open(&amo).await.unwrap()["refresh_token"].expose(),
        "fresh_refresh_token"
    );
    sys.deliver_all().await;
    let amo = sys
        .deliveries(&lead)
        .await
        .into_iter()
        .find(|d| d["type"] == "amocrm")
        .unwrap();
    assert_eq!(amo["status"], "delivered");
    assert_eq!(
        sys.calls("/oauth2/access_token"),
        1,
        "the sealed pair is used, not refreshed again"
    );
}
