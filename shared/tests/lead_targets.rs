//! Lead targets over the wire against local servers that speak each API (seed 001).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use shared::Secret;
use shared::config::Config;
use shared::domain::lead::Lead;
use shared::domain::registry::IntegrationKind;
use shared::domain::{IntegrationId, LeadId, TenantId};
use shared::leads::{LeadContext, LeadSent, LeadTargets};
use shared::ports::Sealed;
use shared::providers::ProviderError;
use shared::repo::integrations::{Integration, IntegrationStatus, OpenConfig};
use shared::signing::StandardWebhooks;
use shared::testing::{
    AMOCRM_FRESH_ACCESS, AMOCRM_FRESH_REFRESH, FakeServer, Recorded, amocrm_leads_api,
    bitrix24_api, telegram_send_api,
};

const TG_TOKEN: &str = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const TG_CHAT: &str = "-1001234567890";
/// The secret of the Standard Webhooks test vector (`libraries/go/webhook_test.go`).
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DELIVERY: &str = "01j9leadx1integr1-r1";

fn targets(base: &str) -> LeadTargets {
    let config = Config::from_lookup(|var| match var {
        "TELEGRAM_API_BASE" | "AMOCRM_API_BASE" => Some(base.to_owned()),
        _ => None,
    })
    .unwrap();
    LeadTargets::new(shared::egress::TargetClient::local(), &config.providers)
}

fn config(pairs: &[(&str, &str)]) -> OpenConfig {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
        .collect()
}

fn lead() -> Lead {
    Lead {
        id: LeadId::parse("01j9leadx1").unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        name: Some("Ivan <Petrov> & Co".into()),
        phone: Some("+79161234567".into()),
        email: Some("ivan@example.com".into()),
        comment: Some("Call me after 18:00 & not before".into()),
        source: Some("landing".into()),
        utm: BTreeMap::from([
            ("utm_source".to_owned(), "yandex".to_owned()),
            ("utm_campaign".to_owned(), "spring".to_owned()),
        ]),
        external_entity_id: None,
        external_project_id: None,
        attributes: BTreeMap::from([("rooms".to_owned(), json!(3))]),
        created_at: "2025-03-01T10:00:00Z".parse().unwrap(),
    }
}

fn integration(provider: &str) -> Integration {
    let now = "2025-03-01T09:00:00Z".parse().unwrap();
    Integration {
        id: IntegrationId::parse("integr1").unwrap(),
        tenant_id: TenantId::parse("acme").unwrap(),
        kind: IntegrationKind::LeadTarget,
        provider: provider.into(),
        channel: None,
        name: provider.into(),
        status: IntegrationStatus::Active,
        is_enabled: true,
        is_primary: false,
        config: Sealed(String::new()),
        last_error: None,
        last_sync_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

async fn deliver(
    targets: &LeadTargets,
    kind: &str,
    config: &OpenConfig,
) -> Result<LeadSent, ProviderError> {
    let lead = lead();
    let integration = integration(kind);
    let ctx = LeadContext {
        lead: &lead,
        integration: &integration,
        delivery_id: DELIVERY,
        credentials: &shared::leads::Discard,
    };
    targets.find(kind).unwrap().deliver(&ctx, config).await
}

async fn answering(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> FakeServer {
    FakeServer::start_with_headers(move |_| (status, headers.clone(), body.clone()))
        .await
        .unwrap()
}

fn transient(err: &ProviderError) -> Option<Option<Duration>> {
    match err {
        ProviderError::Transient { retry_after, .. } => Some(*retry_after),
        _ => None,
    }
}

#[test]
fn the_four_targets_are_registered() {
    let names = targets("http://127.0.0.1:9").names();
    for name in ["amocrm", "bitrix24", "telegram", "webhooks"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

// ---- amoCRM ----------------------------------------------------------------------------

fn amo_config(access: Option<&str>) -> OpenConfig {
    let mut pairs = vec![
        ("subdomain", "shop"),
        ("client_id", "0d9e6f5a-2c4b-4f8e-9d1a-3b7c5e2f1a0d"),
        ("client_secret", "amo-client-secret"),
        ("redirect_uri", "https://app.example.com/oauth/amocrm"),
        ("refresh_token", "amo-refresh-1"),
    ];
    if let Some(access) = access {
        pairs.push(("access_token", access));
    }
    config(&pairs)
}

#[tokio::test]
async fn amocrm_creates_the_deal_with_its_contact_and_a_note() {
    let server = FakeServer::start(amocrm_leads_api("amo-access-1", "amo-refresh-1"))
        .await
        .unwrap();
    let sent = deliver(
        &targets(&server.base),
        "amocrm",
        &amo_config(Some("amo-access-1")),
    )
    .await
    .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("31337"));
    assert!(sent.config_update.is_empty());
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let deal = &requests[0];
    assert_eq!(
        (deal.method.as_str(), deal.path.as_str()),
        ("POST", "/api/v4/leads/complex")
    );
    assert_eq!(deal.header("authorization"), Some("Bearer amo-access-1"));
    assert_eq!(
        deal.body,
        json!([{
            "name": "Lead: Ivan <Petrov> & Co, +79161234567, ivan@example.com",
            "_embedded": {"contacts": [{
                "name": "Ivan <Petrov> & Co",
                "first_name": "Ivan <Petrov> & Co",
                "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "+79161234567", "enum_code": "WORK"}]},
                    {"field_code": "EMAIL", "values": [{"value": "ivan@example.com", "enum_code": "WORK"}]}
                ]
            }]}
        }])
    );
    let note = &requests[1];
    assert_eq!(note.path, "/api/v4/leads/notes");
    assert_eq!(note.header("authorization"), Some("Bearer amo-access-1"));
    assert_eq!(
        note.body,
        json!([{"entity_id": 31337, "note_type": "common", "params": {"text":
            "Comment: Call me after 18:00 & not before\nSource: landing\nutm_campaign: spring\nutm_source: yandex\nrooms: 3"}}])
    );
}

#[tokio::test]
async fn amocrm_refreshes_on_401_retries_once_and_returns_the_new_tokens() {
    let server = FakeServer::start(amocrm_leads_api("amo-access-1", "amo-refresh-1"))
        .await
        .unwrap();
    let sent = deliver(
        &targets(&server.base),
        "amocrm",
        &amo_config(Some("amo-expired")),
    )
    .await
    .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("31337"));
    assert_eq!(
        sent.config_update,
        BTreeMap::from([
            ("access_token".to_owned(), AMOCRM_FRESH_ACCESS.to_owned()),
            ("refresh_token".to_owned(), AMOCRM_FRESH_REFRESH.to_owned()),
        ])
    );
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v4/leads/complex",
            "/oauth2/access_token",
            "/api/v4/leads/complex",
            "/api/v4/leads/notes"
        ]
    );
    assert_eq!(
        requests[1].body,
        json!({
            "client_id": "0d9e6f5a-2c4b-4f8e-9d1a-3b7c5e2f1a0d",
            "client_secret": "amo-client-secret",
            "grant_type": "refresh_token",
            "refresh_token": "amo-refresh-1",
            "redirect_uri": "https://app.example.com/oauth/amocrm"
        })
    );
    assert_eq!(requests[1].header("authorization"), None);
    assert_eq!(
        requests[2].header("authorization"),
        Some(format!("Bearer {AMOCRM_FRESH_ACCESS}").as_str())
    );
    assert_eq!(requests[0].body, requests[2].body);
}

#[tokio::test]
async fn amocrm_without_an_access_token_refreshes_first() {
    let server = FakeServer::start(amocrm_leads_api("amo-access-1", "amo-refresh-1"))
        .await
        .unwrap();
    let sent = deliver(&targets(&server.base), "amocrm", &amo_config(None))
        .await
        .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("31337"));
    assert_eq!(sent.config_update["refresh_token"], AMOCRM_FRESH_REFRESH);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths[..2],
        ["/oauth2/access_token", "/api/v4/leads/complex"]
    );
}

#[tokio::test]
async fn amocrm_rejected_refresh_is_an_auth_error() {
    let server = FakeServer::start(amocrm_leads_api("amo-access-1", "another-refresh"))
        .await
        .unwrap();
    let err = deliver(
        &targets(&server.base),
        "amocrm",
        &amo_config(Some("amo-expired")),
    )
    .await
    .unwrap_err();
    let ProviderError::Auth(reason) = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.starts_with("refresh token rejected; reconnect amoCRM"),
        "{reason}"
    );
    assert!(!reason.contains("amo-client-secret") && !reason.contains("amo-refresh-1"));
    // One refresh, no second lead call.
    assert_eq!(server.requests().len(), 2);

    let none = config(&[
        ("subdomain", "shop"),
        ("client_id", "c"),
        ("client_secret", "s"),
    ]);
    let err = deliver(&targets(&server.base), "amocrm", &none)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Auth(r) if r.contains("refresh_token")));
}

#[tokio::test]
async fn amocrm_a_401_after_a_refresh_is_an_auth_error_without_a_second_refresh() {
    // The token endpoint issues a pair the API still refuses.
    let server = FakeServer::start(|req: &Recorded| match req.path.as_str() {
        "/oauth2/access_token" => (
            200,
            json!({"token_type": "Bearer", "expires_in": 86400, "access_token": "a2", "refresh_token": "r2"}),
        ),
        _ => (
            401,
            json!({"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}),
        ),
    })
    .await
    .unwrap();
    let err = deliver(
        &targets(&server.base),
        "amocrm",
        &amo_config(Some("amo-expired")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth("Unauthorized: Unauthorized".into())
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn amocrm_keeps_a_refreshed_pair_when_the_call_after_it_fails() {
    // Refresh succeeds, then amoCRM is down: the rotated pair must not be lost.
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let api = amocrm_leads_api("amo-access-1", "amo-refresh-1");
    let server = FakeServer::start(move |req: &Recorded| {
        if req.path == "/api/v4/leads/complex"
            && req.header("authorization") == Some(&format!("Bearer {AMOCRM_FRESH_ACCESS}"))
            && flag.load(std::sync::atomic::Ordering::SeqCst)
        {
            return (
                503,
                json!({"title": "Service Unavailable", "status": 503, "detail": ""}),
            );
        }
        api(req)
    })
    .await
    .unwrap();
    let targets = targets(&server.base);
    let config = amo_config(Some("amo-expired"));
    let err = deliver(&targets, "amocrm", &config).await.unwrap_err();
    assert!(transient(&err).is_some(), "{err:?}");
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    // The retry reads the same (stale) config: it uses the pair, no second refresh.
    let sent = deliver(&targets, "amocrm", &config).await.unwrap();
    assert_eq!(sent.config_update["access_token"], AMOCRM_FRESH_ACCESS);
    assert_eq!(sent.config_update["refresh_token"], AMOCRM_FRESH_REFRESH);
    let refreshes = server
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth2/access_token")
        .count();
    assert_eq!(refreshes, 1);
}

#[tokio::test]
async fn amocrm_errors_are_classified() {
    let cfg = amo_config(Some("amo-access-1"));
    let too_many = answering(429, vec![("retry-after", "7".into())], json!("")).await;
    let err = deliver(&targets(&too_many.base), "amocrm", &cfg)
        .await
        .unwrap_err();
    assert_eq!(transient(&err), Some(Some(Duration::from_secs(7))));

    let down = answering(
        503,
        vec![],
        json!("<html><body>503 Service Temporarily Unavailable</body></html>"),
    )
    .await;
    let err = deliver(&targets(&down.base), "amocrm", &cfg)
        .await
        .unwrap_err();
    assert_eq!(transient(&err), Some(None));

    let invalid = answering(
        400,
        vec![],
        json!({"validation-errors": [{"request_id": "0", "errors": [
            {"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id", "detail": "The value you selected is not a valid choice."},
            {"code": "InvalidType", "path": "status_id", "detail": "This value should be of type int."}
        ]}], "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed"}),
    )
    .await;
    let err = deliver(&targets(&invalid.base), "amocrm", &cfg)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected(
            "Request validation failed: custom_fields_values.0.field_id: The value you selected is not a valid choice. (NotSupportedChoice); status_id: This value should be of type int. (InvalidType)".into()
        )
    );

    let blocked = answering(
        403,
        vec![],
        json!({"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403, "detail": "Account is blocked"}),
    )
    .await;
    let err = deliver(&targets(&blocked.base), "amocrm", &cfg)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth("Forbidden: Account is blocked".into())
    );
    // A 403 is no expired token: nothing is refreshed.
    assert_eq!(blocked.requests().len(), 1);

    let unreachable = targets("http://127.0.0.1:9");
    let err = deliver(&unreachable, "amocrm", &cfg).await.unwrap_err();
    assert!(transient(&err).is_some(), "{err:?}");
}

#[tokio::test]
async fn amocrm_a_refused_note_does_not_fail_the_delivered_deal() {
    let api = amocrm_leads_api("amo-access-1", "amo-refresh-1");
    let server = FakeServer::start(move |req: &Recorded| {
        if req.path == "/api/v4/leads/notes" {
            return (
                500,
                json!({"title": "Internal Server Error", "status": 500, "detail": ""}),
            );
        }
        api(req)
    })
    .await
    .unwrap();
    let sent = deliver(
        &targets(&server.base),
        "amocrm",
        &amo_config(Some("amo-access-1")),
    )
    .await
    .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("31337"));
}

// ---- Bitrix24 --------------------------------------------------------------------------

#[tokio::test]
async fn bitrix24_adds_the_lead_through_the_webhook() {
    let server = FakeServer::start(bitrix24_api("k3y")).await.unwrap();
    let cfg = config(&[("webhook_url", &format!("{}/rest/1/k3y/", server.base))]);
    let sent = deliver(&targets(&server.base), "bitrix24", &cfg)
        .await
        .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("4242"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/rest/1/k3y/crm.lead.add.json");
    assert_eq!(
        requests[0].body,
        json!({
            "fields": {
                "TITLE": "Lead: Ivan <Petrov> & Co, +79161234567, ivan@example.com",
                "NAME": "Ivan <Petrov> & Co",
                "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}],
                "EMAIL": [{"VALUE": "ivan@example.com", "VALUE_TYPE": "WORK"}],
                "SOURCE_DESCRIPTION": "landing",
                "UTM_SOURCE": "yandex",
                "UTM_CAMPAIGN": "spring",
                "COMMENTS": "Call me after 18:00 & not before\nutm_campaign: spring\nutm_source: yandex\nrooms: 3"
            },
            "params": {"REGISTER_SONET_EVENT": "Y"}
        })
    );
}

#[tokio::test]
async fn bitrix24_errors_are_classified() {
    async fn err_of(
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    ) -> ProviderError {
        let server = answering(status, headers, body).await;
        let cfg = config(&[("webhook_url", &format!("{}/rest/1/k3y", server.base))]);
        deliver(&targets(&server.base), "bitrix24", &cfg)
            .await
            .unwrap_err()
    }
    let err = err_of(
        503,
        vec![],
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
    )
    .await;
    assert_eq!(transient(&err), Some(None));
    let err = err_of(
        503,
        vec![("retry-after", "2".into())],
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
    )
    .await;
    assert_eq!(transient(&err), Some(Some(Duration::from_secs(2))));
    for (status, code) in [
        (401, "expired_token"),
        (401, "invalid_token"),
        (401, "NO_AUTH_FOUND"),
        (401, "INVALID_CREDENTIALS"),
    ] {
        let err = err_of(
            status,
            vec![],
            json!({"error": code, "error_description": "x"}),
        )
        .await;
        assert!(matches!(err, ProviderError::Auth(_)), "{code}: {err:?}");
    }
    let err = err_of(
        500,
        vec![],
        json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}),
    )
    .await;
    assert_eq!(transient(&err), Some(None));
    let err = err_of(502, vec![], json!("<html>502 Bad Gateway</html>")).await;
    assert!(transient(&err).is_some(), "{err:?}");
    let err = err_of(
        400,
        vec![],
        json!({"error": "", "error_description": "Access denied."}),
    )
    .await;
    assert_eq!(err, ProviderError::Rejected("Access denied.".into()));
    let err = err_of(
        400,
        vec![],
        json!({"error": "ERROR_CORE", "error_description": "Field PHONE has an invalid value"}),
    )
    .await;
    assert!(matches!(err, ProviderError::Rejected(r) if r.contains("ERROR_CORE")));

    // A wrong webhook key, as the portal answers it.
    let server = FakeServer::start(bitrix24_api("k3y")).await.unwrap();
    let cfg = config(&[("webhook_url", &format!("{}/rest/1/wrong/", server.base))]);
    let err = deliver(&targets(&server.base), "bitrix24", &cfg)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth("INVALID_CREDENTIALS: Invalid request credentials".into())
    );
}

// ---- Telegram --------------------------------------------------------------------------

#[tokio::test]
async fn telegram_sends_the_lead_as_escaped_html() {
    let server = FakeServer::start(telegram_send_api(TG_TOKEN, TG_CHAT))
        .await
        .unwrap();
    let cfg = config(&[("bot_token", TG_TOKEN), ("chat_id", TG_CHAT)]);
    let sent = deliver(&targets(&server.base), "telegram", &cfg)
        .await
        .unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("777"));
    let requests = server.requests();
    assert_eq!(requests[0].path, format!("/bot{TG_TOKEN}/sendMessage"));
    assert_eq!(requests[0].body["chat_id"], TG_CHAT);
    assert_eq!(requests[0].body["parse_mode"], "HTML");
    assert_eq!(
        requests[0].body["text"],
        "<b>Lead: Ivan &lt;Petrov&gt; &amp; Co, +79161234567, ivan@example.com</b>\n\
         \n<b>Name:</b> Ivan &lt;Petrov&gt; &amp; Co\
         \n<b>Phone:</b> +79161234567\
         \n<b>E-mail:</b> ivan@example.com\
         \n<b>Comment:</b> Call me after 18:00 &amp; not before\
         \n<b>Source:</b> landing\
         \n<b>utm_campaign:</b> spring\
         \n<b>utm_source:</b> yandex\
         \n<b>rooms:</b> 3"
    );
}

#[tokio::test]
async fn telegram_errors_are_classified() {
    let server = FakeServer::start(telegram_send_api(TG_TOKEN, TG_CHAT))
        .await
        .unwrap();
    let targets_ = targets(&server.base);
    let err = deliver(
        &targets_,
        "telegram",
        &config(&[("bot_token", TG_TOKEN), ("chat_id", "-100999")]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Auth(
            "the bot cannot write to chat_id -100999: Bad Request: chat not found".into()
        )
    );
    let err = deliver(
        &targets_,
        "telegram",
        &config(&[("bot_token", "1:wrong"), ("chat_id", TG_CHAT)]),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ProviderError::Auth("Unauthorized".into()));

    let cfg = config(&[("bot_token", TG_TOKEN), ("chat_id", TG_CHAT)]);
    let kicked = answering(
        403,
        vec![],
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was kicked from the supergroup chat"}),
    )
    .await;
    let err = deliver(&targets(&kicked.base), "telegram", &cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Auth(r) if r.starts_with("the bot cannot write to chat_id")),
        "{err:?}"
    );

    let flood = answering(
        429,
        vec![],
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5", "parameters": {"retry_after": 5}}),
    )
    .await;
    let err = deliver(&targets(&flood.base), "telegram", &cfg)
        .await
        .unwrap_err();
    assert_eq!(transient(&err), Some(Some(Duration::from_secs(5))));

    let bad = answering(
        400,
        vec![],
        json!({"ok": false, "error_code": 400, "description": "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3"}),
    )
    .await;
    let err = deliver(&targets(&bad.base), "telegram", &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");

    let down = answering(502, vec![], json!("<html>Bad Gateway</html>")).await;
    let err = deliver(&targets(&down.base), "telegram", &cfg)
        .await
        .unwrap_err();
    assert!(transient(&err).is_some(), "{err:?}");
}

// ---- Webhooks --------------------------------------------------------------------------

/// The receiver's side of Standard Webhooks: the headers, a fresh timestamp, the signature.
fn verified(req: &Recorded) -> bool {
    let id = req.header("webhook-id").unwrap_or_default();
    let ts: i64 = req
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    (now - ts).abs() < 300
        && StandardWebhooks::new(WHSEC).unwrap().verify(
            id,
            ts,
            &req.raw,
            req.header("webhook-signature").unwrap_or_default(),
        )
}

#[tokio::test]
async fn webhooks_posts_the_signed_lead() {
    let server = FakeServer::start(|req: &Recorded| {
        if verified(req) {
            (200, json!({"received": true}))
        } else {
            (401, json!({"error": "bad signature"}))
        }
    })
    .await
    .unwrap();
    let cfg = config(&[
        ("url", &format!("{}/hooks/leads?src=mi", server.base)),
        ("secret", WHSEC),
    ]);
    let sent = deliver(&targets(&server.base), "webhooks", &cfg)
        .await
        .unwrap();
    assert_eq!(sent, LeadSent::default());
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/leads");
    assert_eq!(req.query.as_deref(), Some("src=mi"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("webhook-id"), Some(DELIVERY));
    assert!(req.header("webhook-signature").unwrap().starts_with("v1,"));
    assert!(verified(req));
    assert_eq!(
        req.body,
        json!({
            "type": "lead.created",
            "timestamp": "2025-03-01T10:00:00Z",
            "data": serde_json::to_value(lead()).unwrap()
        })
    );
    assert_eq!(req.body["data"]["name"], "Ivan <Petrov> & Co");
    // A wrong key does not verify.
    let other =
        StandardWebhooks::new("whsec_dGhpcyBpcyBhbm90aGVyIGtleSBvZiAzMiBieXRlcyE=").unwrap();
    let ts: i64 = req.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(!other.verify(
        DELIVERY,
        ts,
        &req.raw,
        req.header("webhook-signature").unwrap()
    ));
}

#[tokio::test]
async fn webhooks_retry_keeps_the_webhook_id_and_the_body() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let server = FakeServer::start_with_headers(move |req: &Recorded| {
        let _ = req;
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            (503, vec![("retry-after", "30".into())], json!("busy"))
        } else {
            (200, vec![], json!({"ok": true}))
        }
    })
    .await
    .unwrap();
    let targets = targets(&server.base);
    let cfg = config(&[("url", &server.base), ("secret", WHSEC)]);
    let err = deliver(&targets, "webhooks", &cfg).await.unwrap_err();
    assert_eq!(transient(&err), Some(Some(Duration::from_secs(30))));
    deliver(&targets, "webhooks", &cfg).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("webhook-id"), Some(DELIVERY));
    assert_eq!(requests[1].header("webhook-id"), Some(DELIVERY));
    assert_eq!(requests[0].raw, requests[1].raw);
    assert!(requests.iter().all(verified));
}

#[tokio::test]
async fn webhooks_answers_are_classified() {
    async fn err_of(
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    ) -> ProviderError {
        let server = answering(status, headers, body).await;
        let cfg = config(&[("url", &server.base), ("secret", WHSEC)]);
        deliver(&targets(&server.base), "webhooks", &cfg)
            .await
            .unwrap_err()
    }
    let err = err_of(410, vec![], json!("")).await;
    assert_eq!(
        err,
        ProviderError::Rejected("the endpoint is gone (HTTP 410)".into())
    );
    let err = err_of(429, vec![("retry-after", "12".into())], json!("slow down")).await;
    assert_eq!(transient(&err), Some(Some(Duration::from_secs(12))));
    for status in [500, 502, 503, 504] {
        let err = err_of(status, vec![], json!("")).await;
        assert_eq!(transient(&err), Some(None), "{status}");
    }
    for status in [400, 401, 404, 422] {
        let err = err_of(status, vec![], json!({"error": "nope"})).await;
        assert!(
            matches!(&err, ProviderError::Rejected(r) if r.contains(&format!("HTTP {status}"))),
            "{err:?}"
        );
    }
    // A redirect is not followed (the target is never called).
    let target = FakeServer::start(|_: &Recorded| (200, json!({})))
        .await
        .unwrap();
    let err = err_of(308, vec![("location", target.base.clone())], json!("")).await;
    assert!(
        matches!(&err, ProviderError::Rejected(r) if r.contains("redirect")),
        "{err:?}"
    );
    assert!(target.requests().is_empty());

    let cfg = config(&[("url", "http://127.0.0.1:9/hook"), ("secret", WHSEC)]);
    let err = deliver(&targets("http://127.0.0.1:9"), "webhooks", &cfg)
        .await
        .unwrap_err();
    assert!(transient(&err).is_some(), "{err:?}");
}

#[tokio::test]
async fn webhooks_without_a_whsec_secret_is_an_auth_error() {
    let server = FakeServer::start(|_: &Recorded| (200, json!({})))
        .await
        .unwrap();
    for cfg in [
        config(&[("url", &server.base)]),
        config(&[("url", &server.base), ("secret", "")]),
        config(&[
            ("url", &server.base),
            ("secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ]),
        config(&[("url", &server.base), ("secret", "whsec_!!")]),
    ] {
        let err = deliver(&targets(&server.base), "webhooks", &cfg)
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Auth(_)), "{err:?}");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn telegram_text_stays_within_the_message_limit() {
    let mut long = lead();
    long.comment = Some("<&>".repeat(5000));
    for i in 0..200 {
        long.attributes
            .insert(format!("field_{i}"), json!("x".repeat(50)));
    }
    let text = shared::leads::telegram::format_lead(&long);
    // What Telegram counts: the text after entity parsing.
    let visible = text
        .replace("<b>", "")
        .replace("</b>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    assert!(
        visible.chars().count() <= 4096,
        "{}",
        visible.chars().count()
    );
    assert!(text.contains("<b>Comment:</b> &lt;&amp;&gt;"));
    assert!(text.ends_with('…'));
}

// ---- the SSRF guard ---------------------------------------------------------------------

/// The targets as AWS runs them: tenant URLs must be public https.
fn public_only_targets() -> LeadTargets {
    let config = Config::from_lookup(|_| None).unwrap();
    LeadTargets::new(
        shared::egress::TargetClient::new(shared::egress::EgressPolicy::PUBLIC_ONLY),
        &config.providers,
    )
}

#[tokio::test]
async fn a_lead_to_a_private_address_fails_final_with_the_reason_and_sends_nothing() {
    let targets = public_only_targets();
    let cases = [
        (
            "webhooks",
            config(&[
                ("url", "https://169.254.169.254/latest/meta-data/"),
                ("secret", WHSEC),
            ]),
        ),
        (
            "webhooks",
            config(&[("url", "https://[::ffff:10.0.0.8]/hook"), ("secret", WHSEC)]),
        ),
        (
            "webhooks",
            config(&[("url", "http://crm.example.com/hook"), ("secret", WHSEC)]),
        ),
        (
            "bitrix24",
            config(&[("webhook_url", "https://192.168.0.10/rest/1/k3y/")]),
        ),
    ];
    for (kind, config) in cases {
        let err = deliver(&targets, kind, &config).await.unwrap_err();
        let ProviderError::Rejected(reason) = &err else {
            panic!("{kind}: a refused target is final, got {err:?}");
        };
        assert!(reason.contains("refused"), "{kind}: {reason}");
        assert!(
            !reason.contains("k3y"),
            "the reason names no path: {reason}"
        );
    }
}

#[tokio::test]
async fn a_webhook_target_named_like_a_public_host_but_resolving_to_loopback_is_refused() {
    let hook = answering(204, vec![], Value::Null).await;
    let url = format!(
        "{}/hooks/lead",
        hook.base.replace("http://127.0.0.1", "https://localhost")
    );
    let err = deliver(
        &public_only_targets(),
        "webhooks",
        &config(&[("url", url.as_str()), ("secret", WHSEC)]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Rejected(r) if r.contains("loopback")),
        "{err:?}"
    );
    assert!(hook.requests().is_empty());
}
