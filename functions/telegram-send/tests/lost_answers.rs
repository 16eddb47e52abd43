//! Sends whose storage fails at the worst moment (found by the fault-injection soak,
//! `tests/tests/soak.rs`): a write that happened but whose answer was lost, or one that
//! failed, right after the Bot API accepted the message or refused it for now. The
//! client retries with the same Idempotency-Key as it should; the message still reaches
//! the chat exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue, Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::TenantId;
use shared::faults::{Faults, Moment};
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role, Router};
use shared::outbound::api::{Deps, OutboundWorker};
use shared::ports::ManualClock;
use shared::repo::inbox::Contact;
use shared::testing::{FakeServer, Reply, store_integration};
use shared::worker::{WorkerOptions, poll_once};

const BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const CHAT: &str = "1212686911";

/// What the Bot API answers to the next `sendMessage` calls (then 200), and the fault
/// armed as it answers: `(skip, times, moment)` of the operations that follow.
type Script = VecDeque<(u16, Option<(u64, u64, Moment)>)>;

struct Sys {
    router: Router,
    worker: OutboundWorker,
    ports: Ports,
    clock: Arc<ManualClock>,
    script: Arc<Mutex<Script>>,
    accepted: Arc<AtomicUsize>,
    _bot: FakeServer,
    client: String,
    _dir: tempfile::TempDir,
}

async fn sys() -> Sys {
    let faults = Faults::new(0, 0.0);
    let script: Arc<Mutex<Script>> = Arc::default();
    let accepted: Arc<AtomicUsize> = Arc::default();
    let (armer, answers, sent) = (faults.clone(), script.clone(), accepted.clone());
    let bot = FakeServer::start_with_headers(move |req| -> Reply {
        let json_ct = vec![("content-type", "application/json".to_owned())];
        if !req.path.ends_with("/sendMessage") {
            return (404, json_ct, json!({"ok": false, "error_code": 404}));
        }
        let (status, arm) = answers.lock().unwrap().pop_front().unwrap_or((200, None));
        if let Some((skip, times, moment)) = arm {
            armer.arm(skip, times, moment);
        }
        let body = match status {
            200 => {
                sent.fetch_add(1, Ordering::SeqCst);
                json!({"ok": true, "result": {"message_id": 77, "date": 1_775_000_000,
                          "chat": {"id": 1_212_686_911, "type": "private"}}})
            }
            429 => json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5",
                          "parameters": {"retry_after": 5}}),
            s => json!({"ok": false, "error_code": s, "description": "Internal Server Error"}),
        };
        (status, json_ct, body)
    })
    .await
    .unwrap();
    let base = bot.base.clone();
    let config =
        Config::from_lookup(|name| (name == "TELEGRAM_API_BASE").then(|| base.clone())).unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let ports = shared::faults::inject(
        backend::embedded(dir.path(), clock.clone()).unwrap(),
        &faults,
    );
    store_integration(
        &ports,
        "acme",
        "bot1",
        "telegram_bot",
        &[("bot_token", BOT_TOKEN)],
        true,
    )
    .await;
    let deps = Deps::new(&ports, &config).unwrap();
    let client = deps
        .sender
        .inbox
        .identify(
            &TenantId::parse("acme").unwrap(),
            &Contact {
                channel: "telegram".into(),
                external_id: CHAT.into(),
                username: None,
                name: Some("Ivan".into()),
                phone: None,
            },
        )
        .await
        .unwrap()
        .to_string();
    Sys {
        router: telegram_send::router(deps.clone()),
        worker: OutboundWorker::new(
            deps,
            ports.queue(QueueRole::Outbound).unwrap(),
            ports.dead_letter_queue(QueueRole::Outbound).unwrap(),
        ),
        ports,
        clock,
        script,
        accepted,
        _bot: bot,
        client,
        _dir: dir,
    }
}

impl Sys {
    fn answer(&self, status: u16, arm: Option<(u64, u64, Moment)>) {
        self.script.lock().unwrap().push_back((status, arm));
    }

    async fn post(&self, text: &str) -> ApiResponse {
        let mut req = ApiRequest::new(Method::POST, "/v1/messages/telegram");
        req.claims = Some(JwtClaims {
            tenant_id: TenantId::parse("acme").unwrap(),
            sub: "user-1".into(),
            role: Role::Owner,
        });
        for (name, value) in [
            ("content-type", "application/json"),
            ("idempotency-key", "k-1"),
        ] {
            req.headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        req.body = json!({"client_id": self.client, "text": text})
            .to_string()
            .into_bytes()
            .into();
        self.router.handle(req).await
    }

    /// Posts until the answer is 2xx, as a client retrying a 5xx does.
    async fn post_until_accepted(&self, text: &str) -> ApiResponse {
        for _ in 0..3 {
            let r = self.post(text).await;
            if r.status.is_success() {
                return r;
            }
            assert!(r.status.is_server_error(), "{:?}", r.json_body());
        }
        panic!("not accepted after three tries");
    }

    /// `sendMessage` calls the Bot API accepted: messages in the chat.
    fn delivered(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn work(&self) -> usize {
        let options = WorkerOptions {
            batch_size: 10,
            visibility: std::time::Duration::from_secs(30),
            idle: std::time::Duration::from_millis(10),
        };
        let queue = self.ports.queue(QueueRole::Outbound).unwrap();
        poll_once(queue.as_ref(), &self.worker, options)
            .await
            .unwrap()
    }

    async fn outbound(&self) -> Vec<Value> {
        shared::testing::stored_messages(self.ports.table.as_ref(), "acme")
            .await
            .into_iter()
            .filter(|m| m["direction"] == "outbound")
            .collect()
    }
}

#[tokio::test]
async fn a_sent_message_whose_record_lost_its_answer_is_not_sent_again_by_the_retry() {
    for moment in [Moment::After, Moment::Before] {
        let sys = sys().await;
        // The Bot API takes the message; the write that records it fails right after.
        sys.answer(200, Some((0, 1, moment)));
        let r = sys.post_until_accepted("hello").await;
        assert_eq!(r.status, StatusCode::OK, "{moment:?}: {:?}", r.json_body());
        assert_eq!(sys.delivered(), 1, "{moment:?}: the chat got it once");
        let stored = sys.outbound().await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["status"], "sent");
    }
}

#[tokio::test]
async fn a_send_whose_idempotency_record_cannot_be_completed_still_answers_its_outcome() {
    let sys = sys().await;
    // Recorded, then every try to keep the response for the key fails.
    sys.answer(200, Some((1, 3, Moment::Before)));
    let r = sys.post("hello").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a 5xx here makes the client retry a send that happened: {:?}",
        r.json_body()
    );
    assert_eq!(sys.delivered(), 1);
    assert_eq!(sys.outbound().await[0]["status"], "sent");
}

#[tokio::test]
async fn a_send_whose_job_the_queue_refused_is_queued_again_by_the_retry_and_delivered() {
    let sys = sys().await;
    // 429 for longer than a request waits: queued. The placeholder is stored, then the
    // outbound queue refuses the job: the message ends `failed`, the request 503.
    sys.answer(429, Some((1, 1, Moment::Before)));
    let first = sys.post("hello").await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sys.outbound().await[0]["status"], "failed");
    // The client's retry is queued (202) and the worker delivers it.
    sys.answer(429, None);
    let second = sys.post("hello").await;
    assert_eq!(
        second.status,
        StatusCode::ACCEPTED,
        "{:?}",
        second.json_body()
    );
    assert_eq!(sys.outbound().await[0]["status"], "queued");
    sys.clock.advance(SignedDuration::from_secs(10));
    assert_eq!(sys.work().await, 1);
    assert_eq!(
        sys.delivered(),
        1,
        "the acknowledged message reaches the chat"
    );
    let stored = sys.outbound().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "sent");
}

#[tokio::test]
async fn a_message_queued_again_after_a_job_found_it_failed_is_still_delivered() {
    let sys = sys().await;
    // The job reaches the queue but the answer is lost: the message ends `failed`, 503.
    sys.answer(429, Some((1, 1, Moment::After)));
    assert_eq!(
        sys.post("hello").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // That job runs before the client retries: nothing to deliver for a failed message.
    sys.clock.advance(SignedDuration::from_secs(10));
    assert_eq!(sys.work().await, 1);
    assert_eq!(sys.delivered(), 0);
    // The retry queues it again; its job must not be dropped as handled.
    sys.answer(429, None);
    assert_eq!(sys.post("hello").await.status, StatusCode::ACCEPTED);
    sys.clock.advance(SignedDuration::from_secs(10));
    assert_eq!(sys.work().await, 1);
    assert_eq!(sys.delivered(), 1);
    assert_eq!(sys.outbound().await[0]["status"], "sent");
}

#[tokio::test]
async fn a_message_whose_placeholder_lost_its_answer_is_recorded_sent_by_the_retry() {
    let sys = sys().await;
    // Queued: the placeholder is written but its answer lost, so no job is queued (5xx).
    sys.answer(429, Some((0, 1, Moment::After)));
    assert!(sys.post("hello").await.status.is_server_error());
    assert_eq!(sys.outbound().await[0]["status"], "queued");
    // The retry sends it at once: the message is `sent`, not `queued` for ever.
    let r = sys.post("hello").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
    assert_eq!(sys.delivered(), 1);
    let stored = sys.outbound().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["status"], "sent");
}
