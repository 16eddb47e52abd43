//! Dev-server ingest under load on loopback (not a test: prints figures and ratios measured
//! in the same run; the only check is the stored-once count at the end, printed).
//!
//! The dev server runs in this process (`devserver::start` on a free port, embedded backend
//! in a temporary `DATA_DIR`, every SQS worker running). A `telegram_bot` integration is
//! connected through `POST /v1/integrations` with a dashboard token, its `webhook_secret`
//! set in the config. Then `BENCH_CONCURRENCY` workers (16) keep one request each in
//! flight for `BENCH_SECS` (10 s): first `GET /v1/health` (the floor: routing and HTTP on the
//! same server), then `POST /v1/webhooks/telegram_bot/{id}` with distinct Telegram updates
//! (the fixture `update-message-private-text.json` with a unique `update_id` and
//! `message_id`, from 50 different users) and the `X-Telegram-Bot-Api-Secret-Token` header.
//! Every accepted update must be stored exactly once: the messages are counted through the
//! inbox API afterwards.
//!
//! Run: `cargo bench -p bench --bench ingest`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::{load_average, machine};
use serde_json::{Value, json};
use shared::Secret;
use shared::config::Config;

const JWT_SECRET: &[u8] = b"bench-local-jwt-secret";
const WEBHOOK_SECRET: &str = "bench_webhook_secret_0123456789";
const USERS: u64 = 50;
/// A hard stop for the load loop, whatever the duration.
const MAX_REQUESTS: u64 = 2_000_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    requests: u64,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Latency of every answered request, sorted, in microseconds.
    latencies: Vec<u64>,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies[index.min(self.latencies.len() - 1)] as f64 / 1000.0
    }
}

/// `concurrency` workers, each with one request in flight, until `duration` has passed.
async fn load<F>(concurrency: usize, duration: Duration, request: F) -> Load
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let request = request.clone();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= MAX_REQUESTS {
                    break;
                }
                let sent = Instant::now();
                let answered = match request(n).send().await {
                    Ok(response) => {
                        let success = response.status() == reqwest::StatusCode::OK;
                        response.bytes().await.is_ok() && success
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed().as_micros() as u64);
                if answered {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            (ok, errors, latencies)
        }));
    }
    let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
    for worker in workers {
        let (o, e, l) = worker.await.unwrap();
        ok += o;
        errors += e;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Load {
        requests: ok + errors,
        ok,
        errors,
        elapsed,
        latencies,
    }
}

/// The fixture update, made unique by `n`.
fn update(template: &Value, n: u64) -> Vec<u8> {
    let mut update = template.clone();
    let user = 300_000_000 + n % USERS;
    update["update_id"] = json!(900_000_000 + n);
    update["message"]["message_id"] = json!(n + 1);
    update["message"]["from"]["id"] = json!(user);
    update["message"]["chat"]["id"] = json!(user);
    update["message"]["text"] = json!(format!("bench message {n}"));
    serde_json::to_vec(&update).unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Every page of a listing.
async fn all_items(client: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_url = match &cursor {
            Some(c) => format!("{url}?limit=200&cursor={c}"),
            None => format!("{url}?limit=200"),
        };
        let page = get_json(client, &page_url, token).await;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => return items,
        }
    }
}

fn row(name: &str, l: &Load) {
    println!(
        "| {name:<38} | {:>8} | {:>6} | {:>8.0} | {:>6.2} | {:>6.2} |",
        l.requests,
        l.errors,
        l.per_sec(),
        l.percentile_ms(0.50),
        l.percentile_ms(0.99),
    );
}

#[tokio::main]
async fn main() {
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let duration = Duration::from_secs(env_or("BENCH_SECS", 10));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let config = Config::from_lookup(|name| match name {
        "BACKEND" => Some("embedded".to_owned()),
        "DATA_DIR" => Some(data_dir.clone()),
        _ => None,
    })
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = devserver::dev_token(&Secret::new(JWT_SECRET.to_vec()), now).unwrap();
    let server = devserver::start(&config, 0, Secret::new(JWT_SECRET.to_vec()))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();

    let connected = client
        .post(format!("{base}/v1/integrations"))
        .bearer_auth(&token)
        .json(&json!({
            "provider": "telegram_bot",
            "name": "bench bot",
            "config": {"bot_token": "123456:bench", "webhook_secret": WEBHOOK_SECRET},
        }))
        .send()
        .await
        .unwrap();
    let status = connected.status();
    let connected: Value = connected.json().await.unwrap();
    assert!(status.is_success(), "connect: {status} {connected}");
    let id = connected["id"].as_str().unwrap().to_owned();

    let template: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../functions/webhook-receiver/tests/fixtures/telegram/update-message-private-text.json"
        ))
        .unwrap(),
    )
    .unwrap();
    println!(
        "ingest: dev server in-process on {base} (embedded backend, workers running), {concurrency} concurrent clients × {} s on loopback, {}",
        duration.as_secs(),
        machine()
    );

    let health = {
        let client = client.clone();
        let url = format!("{base}/v1/health");
        load(concurrency, duration, move |_| client.get(&url)).await
    };
    let ingest = {
        let client = client.clone();
        let url = format!("{base}/v1/webhooks/telegram_bot/{id}");
        load(concurrency, duration, move |n| {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-telegram-bot-api-secret-token", WEBHOOK_SECRET)
                .body(update(&template, n))
        })
        .await
    };

    println!("done; {}", load_average());
    println!();
    println!(
        "| load                                   | requests | errors |    req/s | p50 ms | p99 ms |"
    );
    println!(
        "|----------------------------------------|----------|--------|----------|--------|--------|"
    );
    row("GET /v1/health", &health);
    row("POST /v1/webhooks/telegram_bot/{id}", &ingest);
    println!(
        "| ratio webhook / health                 |          |        | {:>8.3} | {:>6.1} | {:>6.1} |",
        ingest.per_sec() / health.per_sec(),
        ingest.percentile_ms(0.50) / health.percentile_ms(0.50),
        ingest.percentile_ms(0.99) / health.percentile_ms(0.99),
    );

    // Stored exactly once: every inbound message of every dialog, by the provider's id.
    let dialogs = all_items(&client, &format!("{base}/v1/inbox/dialogs"), &token).await;
    let mut stored = 0usize;
    let mut ids = BTreeSet::new();
    for dialog in &dialogs {
        let dialog_id = dialog["id"].as_str().unwrap();
        let url = format!("{base}/v1/inbox/dialogs/{dialog_id}/messages");
        for message in all_items(&client, &url, &token).await {
            if message["direction"] == "inbound" {
                stored += 1;
                ids.insert(message["provider_message_id"].to_string());
            }
        }
    }
    let duplicates = stored - ids.len();
    let accepted = ingest.ok as usize;
    println!();
    println!(
        "stored: {stored} inbound messages in {} dialogs for {accepted} accepted updates: {} distinct, {duplicates} stored twice, {} accepted but missing, {} stored though refused — {}",
        dialogs.len(),
        ids.len(),
        accepted.saturating_sub(ids.len()),
        ids.len().saturating_sub(accepted),
        if duplicates == 0 && ids.len() == accepted {
            "every accepted update stored exactly once"
        } else {
            "MISMATCH"
        }
    );
    server.shutdown().await;
}
