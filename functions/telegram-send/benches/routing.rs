//! Routing simulation (not a test; prints ratios, asserts nothing).
//!
//! A population of clients over two Telegram integrations — a primary Wappi account and a
//! Telegram CRM account — where 30 % of the clients are reachable only through the CRM
//! account. Every client gets several messages. The same population is run twice over
//! the wire against the local provider server: with our routing (the client's last
//! working route first), and with the seed's documented algorithm (last inbound or
//! primary, id then phone, then the other integrations — no memory of what worked),
//! obtained by forgetting the route before every send. Prints provider calls per
//! delivered message for both, and table calls per send on the happy path.
//!
//! Then criterion times the routing decision itself, `OutboundSender::plan` (the pure
//! function that orders a client's routes), for a client with a remembered route (ours)
//! and the same client with the route forgotten (the seed's order), over 2 and over 10
//! Telegram integrations; the means and their ratio are printed at the end.
//!
//! Run: `cargo bench -p telegram-send --bench routing`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use serde_json::json;
use shared::config::Config;
use shared::domain::inbox::{Client, Identity, RouteMemo};
use shared::domain::registry::IntegrationKind;
use shared::domain::{ClientId, IntegrationId, TenantId};
use shared::outbound::channel::{ChannelProviders, RecipientKind};
use shared::outbound::telegram::{OutboundSender, Scope};
use shared::ports::Sealed;
use shared::ports::table::Key;
use shared::repo::inbox::{ClientProfile, Contact};
use shared::repo::integrations::{Integration, IntegrationStatus};
use support::{App, tenant};

const CLIENTS: usize = 200;
const SENDS_PER_CLIENT: usize = 5;
const ONLY_SECOND: f64 = 0.30;

async fn population(app: &App, tenant_id: &str) -> Vec<ClientId> {
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let user_id = format!("{}", 500_000_000 + n);
        let phone = format!("+7916{:07}", n);
        let client = app
            .deps
            .sender
            .inbox
            .identify(
                &tenant(tenant_id),
                &Contact {
                    channel: "telegram".into(),
                    external_id: user_id.clone(),
                    phone: Some(phone),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Deterministic 30 %: every client whose index falls in the last 30 of each 100.
        let only_second = (n % 100) as f64 >= 100.0 * (1.0 - ONLY_SECOND);
        let account = if only_second { "acc-b" } else { "profile-a" };
        app.world.knows(account, &user_id);
        clients.push(client);
    }
    clients
}

/// Sends every message; returns (provider calls, delivered).
async fn run(app: &App, tenant_id: &str, clients: &[ClientId], forget: bool) -> (usize, usize) {
    let before = app.sends().len();
    let mut delivered = 0;
    for _ in 0..SENDS_PER_CLIENT {
        for client in clients {
            if forget {
                let key = Key::new(
                    format!("TENANT#{tenant_id}"),
                    format!("CLIENT#{client}#ROUTE#telegram"),
                );
                app.ports.table.delete(&key, None).await.unwrap();
            }
            let r = app
                .post(tenant_id, &json!({"client_id": client, "text": "hi"}), &[])
                .await;
            if r.status.is_success() {
                delivered += 1;
            }
        }
    }
    (app.sends().len() - before, delivered)
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(simulation());
    decision();
}

async fn simulation() {
    let (app, reads, writes) = support::counted_app().await;
    let calls = || reads.load(Ordering::Relaxed) + writes.load(Ordering::Relaxed);
    for tenant_id in ["ours", "seed"] {
        app.wappi(tenant_id, &format!("{tenant_id}-a"), "profile-a", true)
            .await;
        app.telegram_crm(tenant_id, &format!("{tenant_id}-b"), "acc-b", false)
            .await;
    }
    let ours_clients = population(&app, "ours").await;
    let seed_clients = population(&app, "seed").await;

    let (ours_calls, ours_delivered) = run(&app, "ours", &ours_clients, false).await;
    let (seed_calls, seed_delivered) = run(&app, "seed", &seed_clients, true).await;
    let ours = ours_calls as f64 / ours_delivered as f64;
    let seed = seed_calls as f64 / seed_delivered as f64;
    println!(
        "routing: {CLIENTS} clients × {SENDS_PER_CLIENT} messages, 2 integrations, {:.0} % reachable only through the second",
        ONLY_SECOND * 100.0
    );
    println!(
        "  ours: {ours_calls} provider calls / {ours_delivered} delivered = {ours:.3} per message"
    );
    println!(
        "  seed: {seed_calls} provider calls / {seed_delivered} delivered = {seed:.3} per message"
    );
    println!("  ratio ours/seed = {:.3}", ours / seed);

    // Happy path: the client's route is known and works.
    let client = &ours_clients[0];
    let rounds = 50;
    let before = calls();
    for _ in 0..rounds {
        let r = app
            .post("ours", &json!({"client_id": client, "text": "hi"}), &[])
            .await;
        assert!(r.status.is_success());
    }
    let per_send = (calls() - before) as f64 / f64::from(rounds);
    println!("  table calls per send on the happy path: {per_send:.2} (goal ≤ 3)");
    let before = calls();
    for n in 0..rounds {
        let key = format!("bench-{n}");
        let r = app
            .post(
                "ours",
                &json!({"client_id": client, "text": "hi"}),
                &[("idempotency-key", &key)],
            )
            .await;
        assert!(r.status.is_success());
    }
    let per_send = (calls() - before) as f64 / f64::from(rounds);
    println!("  … with an Idempotency-Key: {per_send:.2} (claim write + completion)");
}

/// A Telegram integration of `provider`, `n` days old.
fn telegram_integration(id: &str, provider: &str, primary: bool, n: i64) -> Integration {
    let created = jiff::Timestamp::from_second(1_790_000_000 + n * 86_400).unwrap();
    Integration {
        id: IntegrationId::parse(id).unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        kind: IntegrationKind::Channel,
        provider: provider.into(),
        channel: Some("telegram".into()),
        name: id.into(),
        status: IntegrationStatus::Active,
        is_enabled: true,
        is_primary: primary,
        config: Sealed(String::new()),
        last_error: None,
        last_sync_at: None,
        created_at: created,
        updated_at: created,
        version: 1,
    }
}

/// A client with a Telegram id and a phone, whose last working route was `memo` by phone.
fn profile(memo: Option<&str>) -> ClientProfile {
    let now = jiff::Timestamp::from_second(1_795_000_000).unwrap();
    ClientProfile {
        client: Client {
            id: ClientId::parse("client-1").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            name: Some("Client".into()),
            phone: Some("+79160000001".into()),
            identities: vec![Identity {
                channel: "telegram".into(),
                external_id: "500000001".into(),
                username: None,
            }],
            created_at: now,
            updated_at: now,
        },
        dialog_ids: Vec::new(),
        routes: memo
            .map(|id| RouteMemo {
                channel: "telegram".into(),
                integration_id: IntegrationId::parse(id).unwrap(),
                recipient_kind: RecipientKind::Phone,
                at: now,
            })
            .into_iter()
            .collect(),
    }
}

/// Criterion: the routing decision with the client's route remembered (ours) and forgotten
/// (the seed's order), over 2 integrations (primary Wappi, the CRM account that works) and
/// over 10 (the one that works, a Telegram CRM account, comes late in the fallback order).
fn decision() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let providers = ChannelProviders::new(
        shared::egress::TargetClient::local(),
        &Config::from_lookup(|_| None).unwrap().providers,
    );
    let two = vec![
        telegram_integration("wappi-a", "wappi", true, 0),
        telegram_integration("crm-b", "telegram_crm", false, 1),
    ];
    let kinds = ["wappi", "telegram_crm", "telegram_bot"];
    let ten: Vec<Integration> = (0..10)
        .map(|n| telegram_integration(&format!("tg-{n}"), kinds[n % 3], n == 0, (10 - n) as i64))
        .collect();
    let cases = [
        ("routing_plan_2", &two, "crm-b"),
        ("routing_plan_10", &ten, "tg-4"),
    ];
    for (group_name, integrations, works) in cases {
        let mut group = criterion.benchmark_group(group_name);
        for (bench, memo) in [("ours", Some(works)), ("seed", None)] {
            let profile = profile(memo);
            group.bench_function(bench, |b| {
                b.iter(|| {
                    black_box(
                        OutboundSender::plan(
                            black_box(&profile),
                            black_box(integrations),
                            &Scope::Auto,
                            &providers,
                        )
                        .unwrap(),
                    )
                });
            });
        }
        group.finish();
    }
    criterion.final_summary();
    println!();
    println!("| routing decision  | ours (ns) | seed (ns) | ratio |");
    println!("|-------------------|-----------|-----------|-------|");
    for (group, integrations, _) in cases {
        let (Some(ours), Some(seed)) = (
            shared::testing::criterion_mean_ns(group, "ours", started),
            shared::testing::criterion_mean_ns(group, "seed", started),
        ) else {
            continue;
        };
        println!(
            "| {:<17} | {ours:>9.0} | {seed:>9.0} | {:>5.2} |",
            format!("{} integrations", integrations.len()),
            ours / seed
        );
    }
}
