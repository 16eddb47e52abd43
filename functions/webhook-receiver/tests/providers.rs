//! Every provider through the whole receiver, with real payloads: happy path, forged,
//! duplicate, 50 concurrent duplicates, malformed, oversized.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use support::{App, app, fixture, fixture_text, hex_hmac, hub_signature, tamper};

type Headers = Vec<(String, String)>;

struct Case {
    provider: &'static str,
    config: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Headers that authenticate a body.
    sign: fn(&Case, &[u8]) -> Headers,
    query: &'static str,
    /// A forged request: (headers, body).
    forge: fn(&Case) -> (Headers, Vec<u8>),
}

fn config_value(case: &Case, key: &str) -> String {
    case.config
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap()
        .1
        .clone()
}

fn h(name: &str, value: String) -> Headers {
    vec![(name.to_owned(), value)]
}

fn tampered_with_same_signature(case: &Case) -> (Headers, Vec<u8>) {
    ((case.sign)(case, &case.body), tamper(&case.body))
}

const TG_SECRET: &str = "tg_secret_0123456789abcdef";
const MAX_SECRET: &str = "max_secret_0123456789abcdef";
const WAPPI_SECRET: &str = "wappi_secret_0123456789abc";
const CRM_SECRET: &str = "crm_secret_0123456789abcdef";

/// A VK `message_new` as Callback API sends it: the update of vk's own long-poll sample,
/// with the community's secret, which Callback API adds.
fn vk_message_new() -> Vec<u8> {
    let poll: serde_json::Value =
        serde_json::from_slice(&fixture("vk/longpoll_message_new_text_5_110.json")).unwrap();
    let mut update = poll["updates"][0].clone();
    update["secret"] = "vk_secret_0123456789abcdef".into();
    serde_json::to_vec(&update).unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            provider: "telegram_bot",
            config: vec![("bot_token", "123:ABC".into()), ("webhook_secret", TG_SECRET.into())],
            body: fixture("telegram/update-message-private-text.json"),
            sign: |_, _| h("x-telegram-bot-api-secret-token", TG_SECRET.into()),
            query: "",
            forge: |c| (h("x-telegram-bot-api-secret-token", format!("{TG_SECRET}x")), c.body.clone()),
        },
        Case {
            provider: "max",
            config: vec![("access_token", "max-token".into()), ("webhook_secret", MAX_SECRET.into())],
            body: fixture("max/webhook.message_created.json"),
            sign: |_, _| h("x-max-bot-api-secret", MAX_SECRET.into()),
            query: "",
            forge: |c| (h("x-max-bot-api-secret", "wrong".into()), c.body.clone()),
        },
        Case {
            provider: "whatsapp",
            config: vec![
                ("phone_number_id", "277321005464405".into()),
                ("access_token", "wa-token".into()),
                ("app_secret", fixture_text("whatsapp/signature-pywa/app_secret.txt")),
                ("verify_token", "verify_0123456789".into()),
            ],
            body: fixture("whatsapp/signature-pywa/body.json"),
            sign: |c, body| h("x-hub-signature-256", hub_signature(&config_value(c, "app_secret"), body)),
            query: "",
            forge: tampered_with_same_signature,
        },
        Case {
            provider: "viber",
            config: vec![("auth_token", fixture_text("viber/signature_sdk_webhook.token.txt"))],
            body: fixture("viber/message_text_unicode_sdk.json"),
            sign: |c, body| h("x-viber-content-signature", hex_hmac(&config_value(c, "auth_token"), body)),
            query: "",
            forge: tampered_with_same_signature,
        },
        Case {
            provider: "vk",
            config: vec![
                ("group_id", "1689756581".into()),
                ("access_token", "vk-token".into()),
                ("confirmation_code", "confirmation_123456".into()),
                ("webhook_secret", "vk_secret_0123456789abcdef".into()),
            ],
            body: vk_message_new(),
            sign: |_, _| Vec::new(),
            query: "",
            forge: |c| {
                let body = String::from_utf8(c.body.clone()).unwrap().replace("vk_secret_0123456789abcdef", "vk_secret_0123456789abcdeX");
                (Vec::new(), body.into_bytes())
            },
        },
        Case {
            provider: "messenger",
            config: vec![
                ("page_id", "1717527131834678".into()),
                ("access_token", "page-token".into()),
                ("app_secret", fixture_text("messenger/text_signed_messenger4j.app_secret.txt")),
                ("verify_token", "verify_0123456789".into()),
            ],
            body: fixture("messenger/text_signed_messenger4j.json"),
            sign: |c, body| h("x-hub-signature-256", hub_signature(&config_value(c, "app_secret"), body)),
            query: "",
            forge: tampered_with_same_signature,
        },
        Case {
            provider: "instagram",
            config: vec![
                ("page_id", "1717527131834678".into()),
                ("access_token", "ig-token".into()),
                ("app_secret", "ig_app_secret_0123456789".into()),
                ("verify_token", "verify_0123456789".into()),
            ],
            // Instagram messaging uses Messenger's shape under `object: instagram`.
            body: String::from_utf8(fixture("messenger/text_signed_messenger4j.json"))
                .unwrap()
                .replace(r#""object":"page""#, r#""object":"instagram""#)
                .into_bytes(),
            sign: |c, body| h("x-hub-signature-256", hub_signature(&config_value(c, "app_secret"), body)),
            query: "",
            forge: tampered_with_same_signature,
        },
        Case {
            provider: "wappi",
            config: vec![
                ("api_token", "wappi-token".into()),
                ("profile_id", "971cdfd1-28ef".into()),
                ("platform", "whatsapp".into()),
                ("webhook_secret", WAPPI_SECRET.into()),
            ],
            body: fixture("wappi/whatsapp_incoming_text_captured.json"),
            sign: |_, _| Vec::new(),
            query: "?token=wappi_secret_0123456789abc",
            forge: |c| (h("x-webhook-secret", "not-the-secret".into()), c.body.clone()),
        },
        Case {
            provider: "telegram_crm",
            config: vec![
                ("api_base", "https://gateway.example.com".into()),
                ("api_token", "crm-token".into()),
                ("account_id", "acc-1".into()),
                ("webhook_secret", CRM_SECRET.into()),
            ],
            body: br#"{"event_id":"evt-1","type":"message","account_id":"acc-1","message":{"id":501,"date":1700000000,"peer":{"user_id":1212686911,"username":"ivan","phone":"+7 999 123-45-67","first_name":"Ivan"},"text":"hello"}}"#.to_vec(),
            sign: |_, _| h("x-webhook-secret", CRM_SECRET.into()),
            query: "",
            forge: |c| (Vec::new(), c.body.clone()),
        },
        Case {
            provider: "web_widget",
            config: vec![("allowed_domains", "shop.example.com, example.com".into())],
            body: br#"{"visitor_id":"v_123","message_id":"m_1","text":"Do you deliver on Sundays?","name":"Anna"}"#.to_vec(),
            sign: |_, _| h("origin", "https://shop.example.com".into()),
            query: "",
            forge: |c| (h("origin", "https://evil.example.net".into()), c.body.clone()),
        },
    ]
}

async fn setup(case: &Case) -> (App, String) {
    let app = app();
    let config: Vec<(&str, &str)> = case.config.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let id = app
        .connect(
            "acme",
            &format!("int-{}", case.provider.replace('_', "-")),
            case.provider,
            &config,
        )
        .await;
    (
        app,
        format!("/v1/webhooks/{}/{id}{}", case.provider, case.query),
    )
}

fn pairs(headers: &Headers) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn each_provider_stores_and_publishes_a_real_update_once() {
    for case in cases() {
        let (app, path) = setup(&case).await;
        let headers = (case.sign)(&case, &case.body);
        let first = app
            .send(http::Method::POST, &path, &pairs(&headers), &case.body)
            .await;
        assert_eq!(
            first.status,
            StatusCode::OK,
            "{}: {:?}",
            case.provider,
            first.json_body()
        );
        let again = app
            .send(http::Method::POST, &path, &pairs(&headers), &case.body)
            .await;
        assert_eq!(again.status, StatusCode::OK, "{} duplicate", case.provider);
        let messages = app.messages("acme").await;
        assert_eq!(messages.len(), 1, "{}: {messages:?}", case.provider);
        assert_eq!(messages[0]["direction"], "inbound");
        assert_eq!(messages[0]["provider"], case.provider);
        let published = app.published().await;
        assert_eq!(published.len(), 1, "{}", case.provider);
        assert_eq!(published[0]["type"], "message.received");
        assert_eq!(published[0]["tenant_id"], "acme");
        assert_eq!(published[0]["data"]["message"]["id"], messages[0]["id"]);
        assert_eq!(app.clients("acme").await.len(), 1, "{}", case.provider);
    }
}

#[tokio::test]
async fn fifty_concurrent_deliveries_store_one_message_and_publish_one_event() {
    for case in cases() {
        let (app, path) = setup(&case).await;
        let headers = (case.sign)(&case, &case.body);
        let header_pairs = pairs(&headers);
        let calls = (0..50).map(|_| app.send(http::Method::POST, &path, &header_pairs, &case.body));
        let responses = futures::future::join_all(calls).await;
        for r in &responses {
            // The widget's per-visitor limit counts deliveries, duplicates included.
            let limited =
                case.provider == "web_widget" && r.status == StatusCode::TOO_MANY_REQUESTS;
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::CONFLICT || limited,
                "{}: {} {:?}",
                case.provider,
                r.status,
                r.json_body()
            );
        }
        assert!(
            responses.iter().any(|r| r.status == StatusCode::OK),
            "{}",
            case.provider
        );
        assert_eq!(app.messages("acme").await.len(), 1, "{}", case.provider);
        assert_eq!(app.published().await.len(), 1, "{}", case.provider);
        assert_eq!(app.clients("acme").await.len(), 1, "{}", case.provider);
        // A redelivery after the rush is a plain duplicate.
        if case.provider != "web_widget" {
            let late = app
                .send(http::Method::POST, &path, &pairs(&headers), &case.body)
                .await;
            assert_eq!(late.status, StatusCode::OK, "{}", case.provider);
        }
        assert!(app.published().await.is_empty(), "{}", case.provider);
    }
}

#[tokio::test]
async fn forged_malformed_and_oversized_requests_are_refused_and_store_nothing() {
    for case in cases() {
        let (app, path) = setup(&case).await;
        let (headers, body) = (case.forge)(&case);
        let forged = app
            .send(http::Method::POST, &path, &pairs(&headers), &body)
            .await;
        assert_eq!(
            forged.status,
            StatusCode::UNAUTHORIZED,
            "{} forged: {:?}",
            case.provider,
            forged.json_body()
        );
        assert_eq!(forged.json_body()["error"]["code"], "INVALID_SIGNATURE");

        // VK's secret is in the body and the widget has none: their forged cases cover them.
        if !["web_widget", "vk"].contains(&case.provider) {
            let bare = path.split('?').next().unwrap().to_owned();
            let unsigned = app.send(http::Method::POST, &bare, &[], &case.body).await;
            assert_eq!(
                unsigned.status,
                StatusCode::UNAUTHORIZED,
                "{} unsigned",
                case.provider
            );
        }

        let garbage = br#"{"update_id": "#.to_vec();
        let garbage = if case.provider == "vk" {
            br#"{"type":"message_new","secret":"vk_secret_0123456789abcdef","object":{"message":"nope"}}"#.to_vec()
        } else {
            garbage
        };
        let headers = (case.sign)(&case, &garbage);
        let malformed = app
            .send(http::Method::POST, &path, &pairs(&headers), &garbage)
            .await;
        assert_eq!(
            malformed.status,
            StatusCode::BAD_REQUEST,
            "{} malformed: {:?}",
            case.provider,
            malformed.json_body()
        );
        assert_eq!(malformed.json_body()["error"]["code"], "MALFORMED_WEBHOOK");

        let huge = vec![b' '; webhook_receiver::BODY_LIMIT + 1];
        let headers = (case.sign)(&case, &huge);
        let oversized = app
            .send(http::Method::POST, &path, &pairs(&headers), &huge)
            .await;
        assert_eq!(
            oversized.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            case.provider
        );

        assert!(app.messages("acme").await.is_empty(), "{}", case.provider);
        assert!(app.published().await.is_empty(), "{}", case.provider);
    }
}
