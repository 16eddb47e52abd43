//! kill -9 mid-soak (issue 20, part 3): the real binary takes Telegram webhooks from
//! sixteen senders, is killed with SIGKILL at a seeded point, and restarts on the same
//! DATA_DIR while the senders redeliver everything not acknowledged. Afterwards every
//! update is stored once (nothing acknowledged is lost, nothing stored twice) and
//! published under one event id (pushed to the tenant's bot, or still on the queue).
//!
//! `SOAK_SCALE=ci` (default, 300 updates) or `long` (3 000), `SOAK_SEED` (default 20):
//! `SOAK_SCALE=long cargo test -p devserver --test kill9 -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::config::QueueRole;
use shared::faults::{Redelivery, WebhookBooks};
use shared::ports::{ManualClock, SystemClock};
use shared::testing::{FakeServer, store_integration};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TENANT: &str = "demo";
const TG_SECRET: &str = "tg_secret_0123456789abcdef";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The scale's name and how many updates it sends.
fn scale() -> (&'static str, usize) {
    match std::env::var("SOAK_SCALE").as_deref() {
        Ok("long") => ("long", 3_000),
        Ok("ci") | Err(_) => ("ci", 300),
        Ok(other) => panic!("SOAK_SCALE is `ci` or `long`, not `{other}`"),
    }
}

fn seed() -> u64 {
    std::env::var("SOAK_SEED").map_or(20, |s| s.parse().expect("SOAK_SEED is a number"))
}

fn text(i: usize) -> String {
    format!("kill9-webhook-{i:05}")
}

fn update(i: usize) -> String {
    let user = 8_000_000 + (i % 31) as i64;
    json!({
        "update_id": 600_000_000 + i,
        "message": {
            "message_id": i + 1,
            "from": {"id": user, "is_bot": false, "first_name": "Soak"},
            "chat": {"id": user, "type": "private", "first_name": "Soak"},
            "date": 1_775_000_000 + i,
            "text": text(i),
        }
    })
    .to_string()
}

/// Starts the binary on a free port on `data_dir`; returns it and its address.
async fn spawn(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devserver"))
        .env("PORT", "0")
        .env("DATA_DIR", data_dir)
        .env("LOCAL_JWT_SECRET", "kill9")
        .env_remove("BACKEND")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix("devserver listening on http://") {
                return a.to_owned();
            }
        }
        panic!("the dev server exited before listening");
    })
    .await
    .unwrap();
    (child, addr)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_soak_and_restarted_it_loses_nothing_acknowledged_and_stores_nothing_twice() {
    let (scale, n) = scale();
    let dir = tempfile::tempdir().unwrap();
    let bot = FakeServer::start(|_| (200, json!({"ok": true})))
        .await
        .unwrap();
    let integration = {
        let ports = shared::backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
        let id = store_integration(
            &ports,
            TENANT,
            "tgkill",
            "telegram_bot",
            &[("bot_token", "1:A"), ("webhook_secret", TG_SECRET)],
            true,
        )
        .await;
        let tenant = shared::domain::TenantId::parse(TENANT).unwrap();
        let mut profile = shared::repo::bot_webhook::profile_key(&tenant).to_item();
        profile.insert(
            "bot_webhook_url".into(),
            shared::ports::AttrValue::s(format!("{}/bot-hook", bot.base)),
        );
        ports.table.put(profile, None).await.unwrap();
        shared::repo::bot_webhook::BotWebhookSecrets::new(
            ports.table.clone(),
            ports.secrets().unwrap(),
        )
        .store(&tenant, &shared::Secret::new(WHSEC.to_owned()))
        .await
        .unwrap();
        id
    };

    let started = Instant::now();
    let (child, addr) = spawn(dir.path()).await;
    let base = Arc::new(RwLock::new(format!("http://{addr}")));
    let redelivery = Redelivery::new(n, 16, seed());
    let acknowledged = redelivery.acknowledged();
    let kill_at = n / 4 + (splitmix(seed()) % (n as u64 / 2)) as usize;
    let data_dir = dir.path().to_owned();
    let current = base.clone();
    let watcher = tokio::spawn(async move {
        let mut child = child;
        while acknowledged.load(Ordering::SeqCst) < kill_at {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.start_kill().unwrap();
        let killed_after = acknowledged.load(Ordering::SeqCst);
        child.wait().await.unwrap();
        let down = Instant::now();
        let (child, addr) = spawn(&data_dir).await;
        *current.write().unwrap() = format!("http://{addr}");
        (child, killed_after, down.elapsed())
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let bodies: Arc<Vec<String>> = Arc::new((0..n).map(update).collect());
    let url = base.clone();
    let stats = redelivery
        .run(move |i| {
            let (http, bodies) = (http.clone(), bodies.clone());
            let url = format!(
                "{}/v1/webhooks/telegram_bot/{integration}",
                url.read().unwrap()
            );
            async move {
                match http
                    .post(url)
                    .header("x-telegram-bot-api-secret-token", TG_SECRET)
                    .header("content-type", "application/json")
                    .body(bodies[i].clone())
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            }
        })
        .await;
    let (mut child, killed_after, restart) = watcher.await.unwrap();
    // Let the restarted server push what it can; the rest is read off the queue below.
    let pushed_ids = || -> BTreeSet<String> {
        bot.requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect()
    };
    let settle = Instant::now();
    while pushed_ids().len() < n && settle.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");

    // The data directory as the next run would find it, an hour on: every message on the
    // queue is visible.
    let later = Arc::new(ManualClock::at(
        Timestamp::now()
            .checked_add(SignedDuration::from_hours(1))
            .unwrap(),
    ));
    let ports = shared::backend::embedded(dir.path(), later).unwrap();
    let stored = shared::testing::stored_messages(ports.table.as_ref(), TENANT).await;
    let mut events: Vec<Value> = bot.requests().iter().map(|r| r.body.clone()).collect();
    let pushed = events.len();
    for role_queue in [
        ports.queue(QueueRole::InboundEvents).unwrap(),
        ports.dead_letter_queue(QueueRole::InboundEvents).unwrap(),
    ] {
        events.extend(shared::testing::drain(role_queue.as_ref()).await);
    }
    let mut published: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &events {
        published
            .entry(
                e["data"]["message"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default()
            .insert(e["id"].as_str().unwrap_or_default().to_owned());
    }
    let texts: Vec<String> = (0..n).map(text).collect();
    let books = WebhookBooks::tally(&texts, &stored, &published);
    let refused = stats.statuses.get(&0).copied().unwrap_or(0);
    println!(
        "SOAK kill9 backend=embedded(binary) scale={} seed={} sent={} acknowledged={} redeliveries={} \
         killed_after_acks={killed_after} restart={:.1}s stored={} published={} duplicates={} missing={} \
         duration={:.1}s | no_answer={refused} pushed={pushed} events_left_on_queue={} answers={:?}",
        scale,
        seed(),
        stats.sent,
        stats.acknowledged,
        stats.redeliveries,
        restart.as_secs_f64(),
        stored.len(),
        published.len(),
        books.duplicates(),
        books.not_stored + books.not_published,
        started.elapsed().as_secs_f64(),
        events.len() - pushed,
        stats.statuses,
    );
    assert_eq!(stats.acknowledged, n);
    assert!(
        killed_after >= kill_at && killed_after < n,
        "killed mid-soak"
    );
    assert_eq!(books.stored_twice, 0, "updates stored twice");
    assert_eq!(books.not_stored, 0, "acknowledged updates lost");
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
}
