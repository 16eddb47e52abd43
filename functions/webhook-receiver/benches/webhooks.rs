//! Per provider: verify + parse + building the stored items, against the floor of any
//! receiver — HMAC-SHA256 + `serde_json::from_slice` of the same bytes. Criterion measures
//! both (group `webhook_<provider>`, benches `ours` and `floor`); the table of means and
//! ratios is printed at the end from the estimates criterion stored in this run.
//! Run: `cargo bench -p webhook-receiver --bench webhooks` (release build; no assertions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput};

use http::{HeaderMap, HeaderName, HeaderValue};
use shared::Secret;
use shared::domain::inbox::Dialog;
use shared::domain::registry::IntegrationKind;
use shared::domain::{ClientId, IntegrationId, MessageId, TenantId};
use shared::ports::Sealed;
use shared::repo::integrations::{Integration, IntegrationStatus, OpenConfig};
use shared::signing::hmac_sha256;
use webhook_receiver::event::EventKind;
use webhook_receiver::pipeline::inbound_message;
use webhook_receiver::providers::{self, WebhookRequest};

const SECRET: &str = "bench_secret_0123456789abcdef";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn hex_hmac(body: &[u8]) -> String {
    hex::encode(hmac_sha256(SECRET.as_bytes(), body))
}

struct Case {
    provider: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    config: Vec<(&'static str, &'static str)>,
}

fn cases() -> Vec<Case> {
    let wa = fixture("whatsapp/signature-pywa/body.json");
    let viber = fixture("viber/message_text_unicode_sdk.json");
    let fb = fixture("messenger/text_signed_messenger4j.json");
    vec![
        Case {
            provider: "telegram_bot",
            body: fixture("telegram/update-message-private-text.json"),
            headers: vec![("x-telegram-bot-api-secret-token", SECRET.into())],
            config: vec![("webhook_secret", SECRET)],
        },
        Case {
            provider: "max",
            body: fixture("max/webhook.message_created.json"),
            headers: vec![("x-max-bot-api-secret", SECRET.into())],
            config: vec![("webhook_secret", SECRET)],
        },
        Case {
            provider: "whatsapp",
            headers: vec![("x-hub-signature-256", format!("sha256={}", hex_hmac(&wa)))],
            body: wa,
            config: vec![
                ("app_secret", SECRET),
                ("phone_number_id", "277321005464405"),
            ],
        },
        Case {
            provider: "viber",
            headers: vec![("x-viber-content-signature", hex_hmac(&viber))],
            body: viber,
            config: vec![("auth_token", SECRET)],
        },
        Case {
            provider: "messenger",
            headers: vec![("x-hub-signature-256", format!("sha256={}", hex_hmac(&fb)))],
            body: fb,
            config: vec![("app_secret", SECRET)],
        },
        Case {
            provider: "wappi",
            body: fixture("wappi/whatsapp_incoming_text_captured.json"),
            headers: vec![("x-webhook-secret", SECRET.into())],
            config: vec![("webhook_secret", SECRET), ("platform", "whatsapp")],
        },
    ]
}

fn integration(provider: &str) -> Integration {
    let now = jiff::Timestamp::now();
    Integration {
        id: IntegrationId::parse("bench").unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        kind: IntegrationKind::Channel,
        provider: provider.into(),
        channel: Some(provider.into()),
        name: provider.into(),
        status: IntegrationStatus::Active,
        is_enabled: true,
        is_primary: true,
        config: Sealed(String::new()),
        last_error: None,
        last_sync_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let query = HashMap::new();
    let mut sizes = Vec::new();
    for case in cases() {
        let provider = providers::find(case.provider).unwrap();
        let config: OpenConfig = case
            .config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
            .collect::<BTreeMap<_, _>>();
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let integration = integration(case.provider);
        let client = ClientId::parse("client").unwrap();
        let dialog = Dialog {
            id: Dialog::id_for(&integration.id, &client),
            tenant_id: integration.tenant_id.clone(),
            client_id: client,
            integration_id: integration.id.clone(),
            channel: case.provider.into(),
            provider: case.provider.into(),
            chat_id: "1".into(),
            created_at: jiff::Timestamp::now(),
            last_message_at: None,
            last_message_preview: None,
            last_inbound_at: None,
            unread_count: 0,
        };
        let mut group = criterion.benchmark_group(format!("webhook_{}", case.provider));
        group.throughput(Throughput::Bytes(case.body.len() as u64));
        group.bench_function("ours", |b| {
            b.iter(|| {
                let req = WebhookRequest {
                    headers: &headers,
                    query: &query,
                    body: black_box(&case.body),
                };
                provider.verify(&config, &req).unwrap();
                let parsed = provider.parse(&config, &case.body).unwrap();
                for event in parsed.events {
                    let EventKind::Message(m) = event.kind else {
                        continue;
                    };
                    let mut message = inbound_message(
                        &integration,
                        &dialog,
                        &MessageId::parse("m1").unwrap(),
                        "message",
                        event.occurred_at,
                        event.occurred_at,
                    );
                    message.text = m.text;
                    message.attachments = m.attachments;
                    message.provider_message_id = Some(m.provider_message_id);
                    let key = shared::ports::table::Key::new("TENANT#acme", "MSG#d#m1");
                    black_box(shared::repo::to_item(&key, &message).unwrap());
                }
            });
        });
        group.bench_function("floor", |b| {
            b.iter(|| {
                let body = black_box(&case.body);
                black_box(hmac_sha256(SECRET.as_bytes(), body));
                black_box(serde_json::from_slice::<serde_json::Value>(body).unwrap());
            });
        });
        group.finish();
        sizes.push((case.provider, case.body.len()));
    }
    criterion.final_summary();

    // The ratios, from the means criterion just stored (a filtered run prints what it has).
    println!();
    println!("| provider     | body   | ours (ns) | floor (ns) | ratio |");
    println!("|--------------|--------|-----------|------------|-------|");
    for (provider, bytes) in sizes {
        let group = format!("webhook_{provider}");
        let (Some(ours), Some(floor)) = (
            shared::testing::criterion_mean_ns(&group, "ours", started),
            shared::testing::criterion_mean_ns(&group, "floor", started),
        ) else {
            continue;
        };
        println!(
            "| {provider:<12} | {:>6} | {ours:>9.0} | {floor:>10.0} | {:>5.2} |",
            format!("{bytes} B"),
            ours / floor
        );
    }
}
