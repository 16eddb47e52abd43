//! Fault-injection soak: exactly once under a bad day (issue 20, part 3).
//!
//! The dev server runs on ports wrapped by `shared::faults`: a seeded fraction of every
//! table and queue operation fails, before the call (nothing happened) or after it (it
//! happened, the answer was lost). Sixteen senders deliver over real HTTP and redeliver
//! every non-2xx answer, as a provider does, until each item is acknowledged. The storm
//! goes on a few seconds more with time running fast (`SOAK_TAIL_SECS`, default 8, at 20×),
//! so the workers retry under the same faults; then it ends (no more faults, the fakes
//! recover, the clock runs fast so backoffs and leases of minutes pass in seconds) and the
//! books must balance:
//!
//! * webhooks — every Telegram update stored once, published once (one event id per
//!   update, whatever number of copies SQS's at-least-once delivery makes of it), and every
//!   published event pushed to the tenant's bot;
//! * sends — every `POST /v1/messages/telegram` with an Idempotency-Key delivered at the
//!   fake Bot API once (counted by the message's text), or ended `failed` with its reason
//!   on the DLQ; poison messages (a chat that always fails) on the DLQ with their reason;
//! * leads — every lead × 3 targets (signed webhook, Bitrix24, Telegram) delivered once,
//!   or ended `failed` with its reason;
//! * the webhook part once more on DynamoDB + SQS (moto, as `infra/test.sh` starts it).
//!
//! After the storm, what a queue's own redrive moved to its DLQ (a job whose receives ran
//! out on storage failures: no reason attached) is moved back, as an operator does after
//! an outage; what a worker dead-lettered with its reason stays there and is counted.
//!
//! `SOAK_SCALE=ci` (the default: what `cargo test --workspace` runs) or `long`;
//! `SOAK_SEED` (default 20), `SOAK_FAULT_RATE` (default 0.10), `SOAK_STORM_SPEED` (how fast
//! the clock runs during the storm, default 1). The long run:
//! `SOAK_SCALE=long cargo test -p e2e-tests --test soak --release -- --nocapture`.
//! Each part prints one `SOAK …` summary line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::Secret;
use shared::backend::{self, Ports};
use shared::config::{Config, QueueRole};
use shared::domain::TenantId;
use shared::faults::{DeliveryStats, FaultCounts, Faults, Redelivery, ScaledClock, WebhookBooks};
use shared::ports::Clock;
use shared::ports::queue::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use shared::ports::table::{Query, SortKey, Table};
use shared::testing::{FakeServer, Recorded, Reply, store_integration};

const TENANT: &str = "demo";
const SENDERS: usize = 16;
const TG_SECRET: &str = "tg_secret_0123456789abcdef";
const BOT_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How fast the clock runs once the storm is over (backoffs of 15 minutes pass in 9 s).
const RECOVERY_SPEED: f64 = 100.0;
/// How fast it runs in the storm's tail, after the last acknowledgement: the workers
/// retry under the same faults what failed (pushes, queued sends, lead deliveries).
const TAIL_SPEED: f64 = 20.0;
/// How long the books may go without progress after the storm (real time) before they
/// are read as they are: a large run drains its queues for as long as they keep moving.
const SETTLE: Duration = Duration::from_secs(60);

// ---- Parameters ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Scale {
    name: &'static str,
    webhooks: usize,
    sends: usize,
    leads: usize,
    moto_webhooks: usize,
}

fn scale() -> Scale {
    match std::env::var("SOAK_SCALE").as_deref() {
        Ok("long") => Scale {
            name: "long",
            webhooks: 10_000,
            sends: 2_000,
            leads: 500,
            moto_webhooks: 500,
        },
        Ok("ci") | Err(_) => Scale {
            name: "ci",
            webhooks: 1_000,
            sends: 200,
            leads: 50,
            moto_webhooks: 60,
        },
        Ok(other) => panic!("SOAK_SCALE is `ci` or `long`, not `{other}`"),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not valid: {v}")),
        Err(_) => default,
    }
}

fn seed() -> u64 {
    env_or("SOAK_SEED", 20)
}

fn fault_rate() -> f64 {
    env_or("SOAK_FAULT_RATE", 0.10)
}

fn storm_speed() -> f64 {
    env_or("SOAK_STORM_SPEED", 1.0)
}

fn tail() -> Duration {
    Duration::from_secs(env_or("SOAK_TAIL_SECS", 8))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded draw for `key` (a stable per-item decision of the fakes).
fn draw(seed: u64, key: &str) -> u64 {
    key.bytes()
        .fold(splitmix(seed), |h, b| splitmix(h ^ u64::from(b)))
}

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

// ---- The system under test -------------------------------------------------------------

/// A queue that records the body of every message that reached it.
struct Tap {
    inner: Arc<dyn Queue>,
    bodies: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Queue for Tap {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        let body = message.body.clone();
        let sent = self.inner.send(message).await;
        if sent.is_ok() {
            self.bodies.lock().unwrap().push(body);
        }
        sent
    }
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        let bodies: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
        let sent = self.inner.send_batch(messages).await;
        let failed = match &sent {
            Ok(_) => Vec::new(),
            Err(QueueError::PartialBatch { indexes, .. }) => indexes.clone(),
            Err(_) => (0..bodies.len()).collect(),
        };
        let mut seen = self.bodies.lock().unwrap();
        for (i, body) in bodies.into_iter().enumerate() {
            if !failed.contains(&i) {
                seen.push(body);
            }
        }
        sent
    }
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, visibility).await
    }
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.inner.delete(receipt_handle).await
    }
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner
            .change_visibility(receipt_handle, visibility)
            .await
    }
}

/// The dev server on `base` wrapped by the fault injector (the tap, if any, sits under
/// the faults: it sees what really reached the queue).
struct Soak {
    clock: Arc<ScaledClock>,
    faults: Arc<Faults>,
    server: Option<devserver::DevServer>,
    url: String,
    token: String,
    http: reqwest::Client,
    started: Instant,
}

impl Soak {
    async fn start(
        base: Ports,
        clock: Arc<ScaledClock>,
        config: &Config,
        tap: Option<Arc<Mutex<Vec<String>>>>,
    ) -> Self {
        let faults = Faults::new(seed(), 0.0);
        let mut ports = base.clone();
        if let Some(bodies) = tap {
            ports = ports.map_queues(move |role, queue| {
                if role == QueueRole::InboundEvents {
                    Arc::new(Tap {
                        inner: queue,
                        bodies: bodies.clone(),
                    })
                } else {
                    queue
                }
            });
        }
        let ports = shared::faults::inject(ports, &faults);
        let secret = Secret::new(b"soak".to_vec());
        let token = devserver::dev_token(&secret, clock.now_secs()).unwrap();
        let server = devserver::start_with_ports(ports, config, 0, secret)
            .await
            .unwrap();
        Self {
            url: format!("http://{}", server.addr),
            clock,
            faults,
            server: Some(server),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            started: Instant::now(),
        }
    }

    /// A dashboard call made before the storm (set-up).
    async fn setup_call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    fn storm(&mut self) {
        self.faults.set_rate(fault_rate());
        self.clock.set_speed(storm_speed());
        self.started = Instant::now();
    }

    /// The storm goes on for [`tail`] after the last acknowledgement, time running at
    /// [`TAIL_SPEED`].
    async fn tail(&self) {
        self.clock.set_speed(TAIL_SPEED);
        tokio::time::sleep(tail()).await;
    }

    fn recover(&self) {
        self.faults.set_rate(0.0);
        self.clock.set_speed(RECOVERY_SPEED);
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Delivers `n` POSTs from [`SENDERS`] senders until each is acknowledged; `request(i)`
/// builds attempt `i`, `on_ack(i, status, body)` sees each acknowledgement.
async fn deliver_all(
    soak: &Soak,
    n: usize,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    on_ack: impl Fn(usize, u16, Value) + Send + Sync + 'static,
) -> DeliveryStats {
    let http = soak.http.clone();
    let (request, on_ack) = (Arc::new(request), Arc::new(on_ack));
    Redelivery::new(n, SENDERS, seed())
        .run(move |i| {
            let (http, request, on_ack) = (http.clone(), request.clone(), on_ack.clone());
            async move {
                let Ok(response) = request(&http, i).send().await else {
                    return 0;
                };
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    let body = response.json().await.unwrap_or(Value::Null);
                    on_ack(i, status, body);
                }
                status
            }
        })
        .await
}

/// Waits (real time) until `remaining` counts nothing left to do, or has not dropped for
/// [`SETTLE`], redriving `role`'s dead-letter queue on the way (see [`redrive`]; every
/// letter it finds goes to `seen`); returns how many messages it redrove.
async fn settle(
    base: &Ports,
    role: QueueRole,
    seen: &Mutex<Vec<Value>>,
    mut remaining: impl AsyncFnMut() -> usize,
) -> usize {
    let (mut fewest, mut progress_at) = (usize::MAX, Instant::now());
    let mut redriven = 0;
    loop {
        redriven += redrive(base, role, seen).await;
        let left = remaining().await;
        if left == 0 {
            return redriven;
        }
        if left < fewest {
            (fewest, progress_at) = (left, Instant::now());
        } else if progress_at.elapsed() >= SETTLE {
            return redriven;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After the outage, as an operator does (`aws sqs start-message-move-task`): what the
/// queue's own redrive moved to the DLQ (a raw job, no reason: its receives ran out on
/// failures of the table or queue) goes back to its queue; what a worker dead-lettered
/// with a reason (`{"reason", "job"}`: given up, poison) stays.
async fn redrive(base: &Ports, role: QueueRole, seen: &Mutex<Vec<Value>>) -> usize {
    let dlq = base.dead_letter_queue(role).unwrap();
    let queue = base.queue(role).unwrap();
    let mut moved = 0;
    for letter in shared::testing::drain(dlq.as_ref()).await {
        seen.lock().unwrap().push(letter.clone());
        let target = if letter["reason"].is_string() && letter.get("job").is_some() {
            &dlq
        } else {
            moved += 1;
            &queue
        };
        target
            .send(OutgoingMessage::new(letter.to_string()))
            .await
            .unwrap();
    }
    moved
}

/// Every letter `role`'s DLQ held: those seen while redriving and those left on it.
async fn dead_letters(base: &Ports, role: QueueRole, seen: &Mutex<Vec<Value>>) -> Vec<Value> {
    let mut letters = seen.lock().unwrap().clone();
    letters.extend(shared::testing::drain(base.dead_letter_queue(role).unwrap().as_ref()).await);
    letters
}

/// The job of a letter: `{"reason", "job"}` when a worker wrote it, else the letter.
fn job_of(letter: &Value) -> &Value {
    if letter["job"].is_object() {
        &letter["job"]
    } else {
        letter
    }
}

fn fault_figures(c: FaultCounts) -> String {
    format!(
        "faults_injected={} (before={} after={} of {} ops)",
        c.injected(),
        c.before,
        c.after,
        c.calls
    )
}

fn statuses(stats: &DeliveryStats) -> String {
    stats
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn items(table: &dyn Table, prefix: &str) -> Vec<(String, Value)> {
    let found = shared::repo::query_all(
        table,
        Query::partition(format!("TENANT#{TENANT}")).sort(SortKey::BeginsWith(prefix.into())),
    )
    .await
    .unwrap();
    found
        .iter()
        .map(|item| {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s())
                .unwrap_or_default()
                .to_owned();
            (sk, shared::repo::from_item::<Value>(item).unwrap())
        })
        .collect()
}

fn embedded_base(clock: &Arc<ScaledClock>) -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), clock.clone()).unwrap();
    (ports, dir)
}

// ---- Webhooks --------------------------------------------------------------------------

fn update(i: usize) -> String {
    let user = 7_000_000 + (i % 97) as i64;
    json!({
        "update_id": 400_000_000 + i,
        "message": {
            "message_id": i + 1,
            "from": {"id": user, "is_bot": false, "first_name": format!("User {user}")},
            "chat": {"id": user, "type": "private", "first_name": format!("User {user}")},
            "date": 1_775_000_000 + i,
            "text": webhook_text(i),
        }
    })
    .to_string()
}

fn webhook_text(i: usize) -> String {
    format!("soak-webhook-{i:05}")
}

/// The webhook part on `base`; `push` sets a bot webhook and counts what its consumer
/// pushes (on SQS, whose visibility timeouts run in real time, only the queue is counted).
async fn webhooks(label: &str, base: Ports, clock: Arc<ScaledClock>, n: usize, push: bool) {
    let config = Config::from_lookup(|_| None).unwrap();
    let bot = FakeServer::start(|_| (200, json!({"ok": true})))
        .await
        .unwrap();
    let integration = store_integration(
        &base,
        TENANT,
        "tgsoak",
        "telegram_bot",
        &[("bot_token", BOT_TOKEN), ("webhook_secret", TG_SECRET)],
        true,
    )
    .await;
    if push {
        let mut profile = shared::repo::bot_webhook::profile_key(&tenant()).to_item();
        profile.insert(
            "bot_webhook_url".into(),
            shared::ports::AttrValue::s(format!("{}/bot-hook", bot.base)),
        );
        base.table.put(profile, None).await.unwrap();
        shared::repo::bot_webhook::BotWebhookSecrets::new(
            base.table.clone(),
            base.secrets().unwrap(),
        )
        .store(&tenant(), &Secret::new(WHSEC.to_owned()))
        .await
        .unwrap();
    }
    let tap: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut soak = Soak::start(base.clone(), clock, &config, Some(tap.clone())).await;
    let url = format!("{}/v1/webhooks/telegram_bot/{integration}", soak.url);
    let bodies: Arc<Vec<String>> = Arc::new((0..n).map(update).collect());
    soak.storm();
    let stats = deliver_all(
        &soak,
        n,
        move |http, i| {
            http.post(&url)
                .header("x-telegram-bot-api-secret-token", TG_SECRET)
                .header("content-type", "application/json")
                .body(bodies[i].clone())
        },
        |_, _, _| {},
    )
    .await;
    soak.tail().await;
    let storm = soak.started.elapsed();
    let faults = soak.faults.counts();
    soak.recover();

    // Published: what reached the inbound-events queue, by event id and by update.
    let published = || {
        let mut by_text: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let bodies = tap.lock().unwrap().clone();
        for body in &bodies {
            let event: Value = serde_json::from_str(body).unwrap();
            let text = event["data"]["message"]["text"]
                .as_str()
                .unwrap_or_default();
            by_text
                .entry(text.to_owned())
                .or_default()
                .insert(event["id"].as_str().unwrap().to_owned());
        }
        (by_text, bodies.len())
    };
    let pushed = || -> BTreeSet<String> {
        bot.requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect()
    };
    let seen = Mutex::default();
    let redriven = if push {
        settle(&base, QueueRole::InboundEvents, &seen, async || {
            let (by_text, _) = published();
            let pushed = pushed();
            by_text
                .values()
                .flatten()
                .filter(|id| !pushed.contains(*id))
                .count()
        })
        .await
    } else {
        0
    };
    soak.stop().await;

    let stored = shared::testing::stored_messages(base.table.as_ref(), TENANT).await;
    let unread: i64 = items(base.table.as_ref(), "DIALOG#")
        .await
        .iter()
        .filter_map(|(_, d)| d["unread_count"].as_i64())
        .sum();
    let (by_text, copies) = published();
    let dead: BTreeSet<String> = shared::testing::drain(
        base.dead_letter_queue(QueueRole::InboundEvents)
            .unwrap()
            .as_ref(),
    )
    .await
    .iter()
    .filter_map(|e| e["id"].as_str().map(str::to_owned))
    .collect();
    let pushed = pushed();
    let texts: Vec<String> = (0..n).map(webhook_text).collect();
    let books = WebhookBooks::tally(&texts, &stored, &by_text);
    let distinct: BTreeSet<&String> = by_text.values().flatten().collect();
    let not_consumed = if push {
        distinct
            .iter()
            .filter(|id| !pushed.contains(**id) && !dead.contains(**id))
            .count()
    } else {
        0
    };
    let duplicates = books.duplicates();
    let missing = books.not_stored + books.not_published + not_consumed;
    println!(
        "SOAK webhooks backend={label} scale={} seed={} sent={} acknowledged={} redeliveries={} {} \
         stored={} published={} duplicates={duplicates} missing={missing} duration={:.1}s \
         | storm={:.1}s queue_copies={} pushed={} redriven={redriven} dlq={} unread_total={unread} answers={}",
        scale().name,
        seed(),
        stats.sent,
        stats.acknowledged,
        stats.redeliveries,
        fault_figures(faults),
        stored.len(),
        distinct.len(),
        soak.started.elapsed().as_secs_f64(),
        storm.as_secs_f64(),
        copies,
        if push {
            pushed.len().to_string()
        } else {
            "-".into()
        },
        dead.len(),
        statuses(&stats),
    );
    assert_eq!(stats.acknowledged, n);
    assert_eq!(books.stored_twice, 0, "updates stored twice");
    assert_eq!(books.not_stored, 0, "acknowledged updates not stored");
    assert_eq!(stored.len(), n);
    assert_eq!(
        books.published_twice, 0,
        "updates published under two event ids"
    );
    assert_eq!(books.not_published, 0, "stored updates never published");
    assert_eq!(
        books.mismatched, 0,
        "events that do not name their stored message"
    );
    assert_eq!(
        not_consumed, 0,
        "published events neither pushed nor dead-lettered"
    );
    assert_eq!(unread, n as i64, "each update counted unread once");
    assert!(faults.after > 0 && faults.before > 0, "{faults:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_under_faults_are_stored_and_published_exactly_once() {
    let clock = ScaledClock::new(1.0);
    let (base, _dir) = embedded_base(&clock);
    webhooks("embedded", base, clock, scale().webhooks, true).await;
}

// ---- Telegram sends --------------------------------------------------------------------

/// The Bot API's `sendMessage` on a bad day: during the storm 30 % of calls fail (5xx, or
/// 429 with `retry_after`); poison chats fail always. Counts successful sends per text.
#[derive(Default)]
struct BotApi {
    storm: AtomicBool,
    delivered: Mutex<BTreeMap<String, u32>>,
    calls: Mutex<BTreeMap<String, u32>>,
    failed: AtomicU64,
    next_id: AtomicU64,
}

const POISON_CHAT_PREFIX: &str = "666";
/// A dead letter the queue's redrive moved, without a worker's reason.
const NO_REASON: &str = "(moved by the queue's redrive, no reason)";

impl BotApi {
    fn respond(&self, req: &Recorded, token: &str, seed: u64) -> Reply {
        let json_ct = vec![("content-type", "application/json".to_owned())];
        let Some(method) = req.path.strip_prefix(&format!("/bot{token}/")) else {
            return (
                401,
                json_ct,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        };
        if method != "sendMessage" {
            return (
                404,
                json_ct,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            );
        }
        let chat = match &req.body["chat_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text = req.body["text"].as_str().unwrap_or_default().to_owned();
        let attempt = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(text.clone()).or_default();
            *n += 1;
            *n
        };
        if chat.starts_with(POISON_CHAT_PREFIX) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return (
                502,
                json_ct,
                json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            );
        }
        let roll = draw(seed, &format!("{text}#{attempt}"));
        if self.storm.load(Ordering::SeqCst) && roll % 100 < 30 {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if roll & 0x100 == 0 {
                let after = 1 + (roll >> 16) % 3;
                return (
                    429,
                    json_ct,
                    json!({"ok": false, "error_code": 429,
                           "description": format!("Too Many Requests: retry after {after}"),
                           "parameters": {"retry_after": after}}),
                );
            }
            let status = [500, 502, 503][((roll >> 20) % 3) as usize];
            return (
                status,
                json_ct,
                json!({"ok": false, "error_code": status, "description": "Internal Server Error"}),
            );
        }
        *self
            .delivered
            .lock()
            .unwrap()
            .entry(text.clone())
            .or_default() += 1;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        (
            200,
            json_ct,
            json!({"ok": true, "result": {"message_id": id, "date": 1_775_000_000,
                   "chat": {"id": chat.parse::<i64>().unwrap_or(0), "type": "private"}, "text": text}}),
        )
    }
}

fn send_text(i: usize) -> String {
    format!("soak-send-{i:05}")
}

/// Every 20th send goes to a poison chat.
fn poison(i: usize) -> bool {
    i % 20 == 7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telegram_sends_under_faults_are_delivered_exactly_once_or_dead_lettered() {
    let n = scale().sends;
    let api = Arc::new(BotApi::default());
    let fake = api.clone();
    let bot = FakeServer::start_with_headers(move |req| fake.respond(req, BOT_TOKEN, seed()))
        .await
        .unwrap();
    let base_url = bot.base.clone();
    let config = Config::from_lookup(|name| match name {
        "TELEGRAM_API_BASE" => Some(base_url.clone()),
        _ => None,
    })
    .unwrap();
    let clock = ScaledClock::new(1.0);
    let (base, _dir) = embedded_base(&clock);
    store_integration(
        &base,
        TENANT,
        "tgbot",
        "telegram_bot",
        &[("bot_token", BOT_TOKEN)],
        true,
    )
    .await;
    let inbox = shared::repo::inbox::Inbox::new(base.table.clone(), base.clock.clone());
    let mut clients = Vec::new();
    for c in 0..20 {
        let chat = if c < 18 {
            format!("70000{c:03}")
        } else {
            format!("{POISON_CHAT_PREFIX}00{c:03}")
        };
        let client = inbox
            .identify(
                &tenant(),
                &shared::repo::inbox::Contact {
                    channel: "telegram".into(),
                    external_id: chat,
                    username: None,
                    name: Some(format!("Client {c}")),
                    phone: None,
                },
            )
            .await
            .unwrap();
        clients.push(client.to_string());
    }
    let mut soak = Soak::start(base.clone(), clock, &config, None).await;
    let url = format!("{}/v1/messages/telegram", soak.url);
    let token = soak.token.clone();
    let clients = Arc::new(clients);
    api.storm.store(true, Ordering::SeqCst);
    soak.storm();
    let acks: Arc<Mutex<BTreeMap<usize, (u16, Value)>>> = Arc::default();
    let seen = acks.clone();
    let stats = deliver_all(
        &soak,
        n,
        move |http, i| {
            let client = if poison(i) {
                &clients[18 + i % 2]
            } else {
                &clients[i % 18]
            };
            http.post(&url)
                .bearer_auth(&token)
                .header("idempotency-key", format!("soak-send-{i}"))
                .json(&json!({"client_id": client, "text": send_text(i)}))
        },
        move |i, status, body| {
            seen.lock().unwrap().insert(i, (status, body));
        },
    )
    .await;
    soak.tail().await;
    let storm = soak.started.elapsed();
    let faults = soak.faults.counts();
    api.storm.store(false, Ordering::SeqCst);
    soak.recover();

    let outbound = |stored: &[Value]| -> BTreeMap<String, Vec<Value>> {
        let mut by_text: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for m in stored.iter().filter(|m| m["direction"] == "outbound") {
            by_text
                .entry(m["text"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(m.clone());
        }
        by_text
    };
    let table = base.table.clone();
    let seen = Mutex::default();
    // Left: what is still queued, and what was given up but whose job has not reached
    // the DLQ yet (its letter's write failed, or the answer to the `failed` write was
    // lost: the job is retried and ends there, with its reason or raw by the queue's
    // redrive, a backoff later).
    let redriven = settle(&base, QueueRole::Outbound, &seen, async || {
        let stored = shared::testing::stored_messages(table.as_ref(), TENANT).await;
        let lettered: std::collections::BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| job_of(l)["content"]["text"].as_str().map(str::to_owned))
            .collect();
        stored
            .iter()
            .filter(|m| m["direction"] == "outbound")
            .filter(|m| {
                m["status"] == "queued"
                    || (m["status"] == "failed"
                        && m["status_reason"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("gave up"))
                        && !m["text"].as_str().is_some_and(|t| lettered.contains(t)))
            })
            .count()
    })
    .await;
    soak.stop().await;

    let stored = shared::testing::stored_messages(base.table.as_ref(), TENANT).await;
    let by_text = outbound(&stored);
    // By text: the reason a worker wrote, else none (moved by the queue's redrive).
    let mut dead: BTreeMap<String, String> = BTreeMap::new();
    for letter in dead_letters(&base, QueueRole::Outbound, &seen).await {
        let text = job_of(&letter)["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let reason = letter["reason"].as_str().unwrap_or(NO_REASON).to_owned();
        let known = dead.entry(text).or_insert_with(|| reason.clone());
        if known == NO_REASON {
            *known = reason;
        }
    }
    let delivered = api.delivered.lock().unwrap().clone();
    let acks = acks.lock().unwrap().clone();
    let (mut once, mut twice, mut gave_up, mut missing, mut poison_dlq, mut records_twice) =
        (0, 0, 0, 0, 0, 0);
    let mut without_reason = 0;
    let mut problems = Vec::new();
    for i in 0..n {
        let text = send_text(i);
        let times = delivered.get(&text).copied().unwrap_or(0);
        let records = by_text.get(&text).map_or(&[][..], Vec::as_slice);
        if records.len() > 1 {
            records_twice += 1;
            problems.push(format!("{text}: {} message records", records.len()));
        }
        let status = records
            .first()
            .and_then(|m| m["status"].as_str())
            .unwrap_or("none");
        let reason = records
            .first()
            .and_then(|m| m["status_reason"].as_str())
            .unwrap_or("");
        let ack = acks.get(&i).map(|(s, b)| format!("{s} {}", b["status"]));
        let tried: Vec<String> = records
            .first()
            .and_then(|m| m["attempts"].as_array())
            .map(|a| {
                a.iter()
                    .map(|t| t["outcome"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let ack = format!(
            "{ack:?}, attempts recorded {tried:?}, bot calls {}",
            api.calls.lock().unwrap().get(&text).copied().unwrap_or(0)
        );
        // Given up: `failed` with the reason, and on the DLQ — with the reason, or raw when
        // the worker's write to the DLQ failed and the queue's redrive moved the job.
        let given_up = status == "failed"
            && reason.starts_with("gave up")
            && dead
                .get(&text)
                .is_some_and(|r| r.starts_with("gave up") || r == NO_REASON);
        without_reason += usize::from(given_up && dead.get(&text).is_some_and(|r| r == NO_REASON));
        if poison(i) {
            if times == 0 && given_up {
                poison_dlq += 1;
            } else {
                missing += 1;
                problems.push(format!(
                    "poison {text}: delivered {times}, status {status}, dlq {:?}, ack {ack}",
                    dead.get(&text)
                ));
            }
            continue;
        }
        match times {
            1 if status == "sent" => once += 1,
            0 if given_up => gave_up += 1,
            0 => {
                missing += 1;
                problems.push(format!(
                    "{text}: never delivered, status {status} ({reason}), dlq {:?}, ack {ack}",
                    dead.get(&text)
                ));
            }
            1 => {
                missing += 1;
                problems.push(format!(
                    "{text}: delivered once but recorded {status} ({reason}), ack {ack}"
                ));
            }
            _ => {
                twice += 1;
                problems.push(format!(
                    "{text}: delivered {times} times, status {status}, ack {ack}"
                ));
            }
        }
    }
    let duplicates = twice + records_twice;
    println!(
        "SOAK sends backend=embedded scale={} seed={} sent={} acknowledged={} redeliveries={} {} \
         delivered_once={once} gave_up={gave_up} poison_dlq={poison_dlq} duplicates={duplicates} missing={missing} \
         duration={:.1}s | storm={:.1}s redriven={redriven} dlq_without_reason={without_reason} \
         bot_api_failures={} answers={}",
        scale().name,
        seed(),
        stats.sent,
        stats.acknowledged,
        stats.redeliveries,
        fault_figures(faults),
        soak.started.elapsed().as_secs_f64(),
        storm.as_secs_f64(),
        api.failed.load(Ordering::Relaxed),
        statuses(&stats),
    );
    for p in problems.iter().take(60) {
        println!("  {p}");
    }
    assert_eq!(stats.acknowledged, n);
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        problems.first()
    );
    assert_eq!(once + gave_up + poison_dlq, n);
}

// ---- Leads -----------------------------------------------------------------------------

/// The lead targets on a bad day: 30 % of calls fail transiently during the storm.
#[derive(Default)]
struct LeadTargets {
    storm: AtomicBool,
    /// (target, lead marker) → successful deliveries.
    delivered: Mutex<BTreeMap<(String, String), u32>>,
    calls: Mutex<BTreeMap<(String, String), u32>>,
    failed: AtomicU64,
}

fn lead_marker(i: usize) -> String {
    format!("soaklead{i:05}")
}

fn marker_in(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let at = text.find("soaklead")?;
    text.get(at..at + 13).map(str::to_owned)
}

impl LeadTargets {
    fn respond(&self, req: &Recorded, seed: u64) -> (u16, Value) {
        let target = if req.path == "/hooks/lead" {
            "webhooks"
        } else if req.path.ends_with("/crm.lead.add.json") {
            "bitrix24"
        } else if req.path.ends_with("/sendMessage") {
            "telegram"
        } else {
            return (404, json!({"error": "no such path"}));
        };
        let marker = marker_in(&req.raw).unwrap_or_default();
        let key = (target.to_owned(), marker.clone());
        let attempt = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        if self.storm.load(Ordering::SeqCst)
            && draw(seed, &format!("{target}{marker}#{attempt}")) % 100 < 30
        {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return match target {
                "bitrix24" => (
                    503,
                    json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
                ),
                "telegram" => (
                    429,
                    json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 2", "parameters": {"retry_after": 2}}),
                ),
                _ => (503, json!({"error": "unavailable"})),
            };
        }
        *self.delivered.lock().unwrap().entry(key).or_default() += 1;
        match target {
            "bitrix24" => (
                200,
                json!({"result": 777, "time": {"start": 1_700_000_000.1}}),
            ),
            "telegram" => (
                200,
                json!({"ok": true, "result": {"message_id": 9001, "date": 1_700_000_000, "chat": {"id": -1_001_234_567_890i64, "type": "supergroup"}}}),
            ),
            _ => (204, Value::Null),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leads_under_faults_reach_each_target_exactly_once_or_fail_with_a_reason() {
    let n = scale().leads;
    let targets = Arc::new(LeadTargets::default());
    let fake = targets.clone();
    let apis = FakeServer::start(move |req| fake.respond(req, seed()))
        .await
        .unwrap();
    let base_url = apis.base.clone();
    let config = Config::from_lookup(|name| match name {
        "TELEGRAM_API_BASE" => Some(base_url.clone()),
        _ => None,
    })
    .unwrap();
    let clock = ScaledClock::new(1.0);
    let (base, _dir) = embedded_base(&clock);
    let hook_url = format!("{}/hooks/lead", apis.base);
    let bitrix_url = format!("{}/rest/1/abcdef123456/", apis.base);
    store_integration(
        &base,
        TENANT,
        "hook1",
        "webhooks",
        &[("url", &hook_url), ("secret", WHSEC)],
        false,
    )
    .await;
    store_integration(
        &base,
        TENANT,
        "bx1",
        "bitrix24",
        &[("webhook_url", &bitrix_url)],
        false,
    )
    .await;
    store_integration(
        &base,
        TENANT,
        "tg1",
        "telegram",
        &[("bot_token", BOT_TOKEN), ("chat_id", "-1001234567890")],
        false,
    )
    .await;
    let mut soak = Soak::start(base.clone(), clock, &config, None).await;
    soak.setup_call(
        reqwest::Method::PUT,
        "/v1/lead-routing/entities/site-1",
        &json!({"integration_ids": ["hook1", "bx1", "tg1"]}),
    )
    .await;
    let url = format!("{}/v1/leads", soak.url);
    let token = soak.token.clone();
    targets.storm.store(true, Ordering::SeqCst);
    soak.storm();
    let leads: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    let seen = leads.clone();
    let stats = deliver_all(
        &soak,
        n,
        move |http, i| {
            http.post(&url)
                .bearer_auth(&token)
                .header("idempotency-key", format!("soak-lead-{i}"))
                .json(&json!({"name": lead_marker(i), "external_entity_id": "site-1"}))
        },
        move |i, _, body| {
            seen.lock()
                .unwrap()
                .insert(i, body["id"].as_str().unwrap_or_default().to_owned());
        },
    )
    .await;
    soak.tail().await;
    let storm = soak.started.elapsed();
    let faults = soak.faults.counts();
    targets.storm.store(false, Ordering::SeqCst);
    soak.recover();
    let table = base.table.clone();
    let seen = Mutex::default();
    // Left: pending deliveries, and given-up ones whose job has not reached the DLQ yet
    // (as for the sends).
    let redriven = settle(&base, QueueRole::LeadDelivery, &seen, async || {
        let lettered: std::collections::BTreeSet<(String, String)> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                let job = job_of(l);
                (
                    job["lead_id"].as_str().unwrap_or_default().to_owned(),
                    job["integration_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        items(table.as_ref(), "LEAD#")
            .await
            .iter()
            .filter(|(sk, d)| {
                let Some((lead, integration)) = sk
                    .strip_prefix("LEAD#")
                    .and_then(|rest| rest.split_once("#DELIVERY#"))
                else {
                    return false;
                };
                d["status"] == "pending"
                    || (d["status"] == "failed"
                        && d["last_error"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("gave up"))
                        && !lettered.contains(&(lead.to_owned(), integration.to_owned())))
            })
            .count()
    })
    .await;
    soak.stop().await;

    let stored = items(base.table.as_ref(), "LEAD#").await;
    let mut lead_docs: BTreeMap<String, usize> = BTreeMap::new();
    let mut deliveries: BTreeMap<(String, String), Value> = BTreeMap::new();
    for (sk, doc) in &stored {
        if sk.contains("#DELIVERY#") {
            deliveries.insert(
                (
                    doc["lead_id"].as_str().unwrap_or_default().to_owned(),
                    doc["type"].as_str().unwrap_or_default().to_owned(),
                ),
                doc.clone(),
            );
        } else {
            let name = doc["name"].as_str().unwrap_or_default().to_owned();
            *lead_docs.entry(name).or_default() += 1;
        }
    }
    let dead = dead_letters(&base, QueueRole::LeadDelivery, &seen).await;
    // Whether the job was on the DLQ, and with its reason (`false`: moved there raw by the
    // queue's redrive, after a worker's write to the DLQ failed).
    let dead_for = |lead: &str, integration: &str| -> Option<bool> {
        let letters: Vec<&Value> = dead
            .iter()
            .filter(|d| job_of(d)["lead_id"] == lead && job_of(d)["integration_id"] == integration)
            .collect();
        (!letters.is_empty()).then(|| letters.iter().any(|d| d["reason"].is_string()))
    };
    let delivered = targets.delivered.lock().unwrap().clone();
    let leads = leads.lock().unwrap().clone();
    let (mut once, mut twice, mut gave_up, mut missing, mut without_reason) = (0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    for i in 0..n {
        let marker = lead_marker(i);
        if lead_docs.get(&marker).copied().unwrap_or(0) != 1 {
            problems.push(format!(
                "{marker}: {:?} lead records",
                lead_docs.get(&marker)
            ));
        }
        let lead = leads.get(&i).cloned().unwrap_or_default();
        for (kind, integration) in [
            ("webhooks", "hook1"),
            ("bitrix24", "bx1"),
            ("telegram", "tg1"),
        ] {
            let times = delivered
                .get(&(kind.to_owned(), marker.clone()))
                .copied()
                .unwrap_or(0);
            let state = deliveries.get(&(lead.clone(), kind.to_owned()));
            let status = state.and_then(|d| d["status"].as_str()).unwrap_or("none");
            let reason = state.and_then(|d| d["last_error"].as_str()).unwrap_or("");
            let letter = dead_for(&lead, integration);
            match times {
                1 if status == "delivered" => once += 1,
                0 if status == "failed" && reason.starts_with("gave up") && letter.is_some() => {
                    gave_up += 1;
                    without_reason += usize::from(letter == Some(false));
                }
                0 | 1 => {
                    missing += 1;
                    problems.push(format!(
                        "{marker} → {kind}: delivered {times}, status {status} ({reason}), dlq {letter:?}"
                    ));
                }
                _ => {
                    twice += 1;
                    problems.push(format!(
                        "{marker} → {kind}: delivered {times} times, status {status}, round {}",
                        state.map(|d| d["round"].clone()).unwrap_or_default()
                    ));
                }
            }
        }
    }
    println!(
        "SOAK leads backend=embedded scale={} seed={} sent={} acknowledged={} redeliveries={} {} \
         targets=3 delivered_once={once} gave_up={gave_up} duplicates={twice} missing={missing} duration={:.1}s \
         | storm={:.1}s redriven={redriven} gave_up_dlq_without_reason={without_reason} target_failures={} answers={}",
        scale().name,
        seed(),
        stats.sent,
        stats.acknowledged,
        stats.redeliveries,
        fault_figures(faults),
        soak.started.elapsed().as_secs_f64(),
        storm.as_secs_f64(),
        targets.failed.load(Ordering::Relaxed),
        statuses(&stats),
    );
    for p in problems.iter().take(60) {
        println!("  {p}");
    }
    assert_eq!(stats.acknowledged, n);
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        problems.first()
    );
    assert_eq!(once + gave_up, 3 * n);
}

// ---- The webhook part on DynamoDB + SQS (moto) -----------------------------------------

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "the moto part of the soak runs against the local moto server only: \
         run `infra/test.sh`, which starts it and sets AWS_ENDPOINT_URL (got {endpoint:?})"
    );
    aws_config::load_from_env().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_under_faults_on_dynamodb_and_sqs_are_stored_and_published_exactly_once() {
    let sdk = sdk().await;
    let prefix = format!(
        "soak-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let aws = shared::provision::stack(&sdk, &prefix).await.unwrap();
    let clock = ScaledClock::new(1.0);
    let mut base = backend::connect_aws(&aws).await;
    base.clock = clock.clone();
    webhooks("moto", base, clock, scale().moto_webhooks, false).await;
}
