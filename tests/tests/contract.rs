//! The HTTP contract as `openapi.yaml` states it, through the dev server's token check and
//! every function's routes: the token's validity window (`exp`, `nbf`), the role matrix
//! (agents work the inbox, owners and admins configure), `405` with `Allow`, literal paths
//! before templated ones, percent-decoded path parameters, display names without control
//! characters, and the findings of schemathesis runs (each test names its request).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::Secret;
use shared::backend::{self, Ports};
use shared::config::Config;
use shared::http::oidc::jsonwebtoken::{EncodingKey, Header, encode};
use shared::http::{ApiResponse, Router};
use shared::ports::SystemClock;

const SECRET: &[u8] = b"roles-test-secret";

struct Dev {
    router: Router,
    ports: Ports,
    _dir: tempfile::TempDir,
}

fn dev() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let router = devserver::router(&ports, &Config::from_lookup(|_| None).unwrap()).unwrap();
    Dev {
        router,
        ports,
        _dir: dir,
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An HS256 dashboard token with these claims (`exp` an hour ahead unless given).
fn token(claims: Value) -> String {
    let mut payload =
        json!({"tenant_id": "acme", "sub": "user-1", "role": "owner", "exp": now() + 3600});
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    encode(
        &Header::default(),
        &payload,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn role(role: &str) -> String {
    token(json!({ "role": role }))
}

impl Dev {
    /// The request as the dev server serves it: its own HS256 check, then the router.
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> ApiResponse {
        let (parts, ()) = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = devserver::to_api_request(
            parts,
            body.into(),
            &Secret::new(SECRET.to_vec()),
            self.ports.clock.now_secs(),
        );
        self.router.handle(req).await
    }
}

fn code(r: &ApiResponse) -> String {
    r.json_body()["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_token_is_refused_before_its_nbf_and_after_its_exp() {
    let dev = &dev();
    let call = |t: String| async move {
        dev.call(&t, Method::GET, "/v1/integrations", None)
            .await
            .status
    };
    assert_eq!(call(token(json!({}))).await, StatusCode::OK);
    assert_eq!(
        call(token(json!({"nbf": 9_999_999_999i64}))).await,
        StatusCode::UNAUTHORIZED,
        "not valid yet"
    );
    assert_eq!(call(token(json!({"nbf": now() - 5}))).await, StatusCode::OK);
    assert_eq!(
        call(token(json!({"exp": now() - 1}))).await,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    assert_eq!(
        call(token(json!({"nbf": "tomorrow"}))).await,
        StatusCode::UNAUTHORIZED,
        "an nbf that is no NumericDate"
    );
}

#[tokio::test]
async fn an_agent_works_the_inbox_and_reads_but_cannot_configure() {
    let dev = dev();
    let owner = role("owner");
    let agent = role("agent");
    let connect = json!({"provider": "webhooks", "name": "CRM hook", "config": {"url": "https://crm.example.com/hook"}});
    let r = dev
        .call(
            &owner,
            Method::POST,
            "/v1/integrations",
            Some(connect.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json_body());
    let id = r.json_body()["id"].as_str().unwrap().to_owned();
    let one = format!("/v1/integrations/{id}");

    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/integrations".into(), Some(connect)),
        (
            Method::PATCH,
            one.clone(),
            Some(json!({"is_enabled": false})),
        ),
        (Method::DELETE, one.clone(), None),
        (Method::POST, format!("{one}/test"), None),
        (Method::GET, "/v1/api-keys".into(), None),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "k", "scopes": ["config:read"]})),
        ),
        (Method::DELETE, "/v1/api-keys/key_1".into(), None),
        (
            Method::PUT,
            "/v1/profile".into(),
            Some(json!({"name": "Cafe"})),
        ),
        (
            Method::PUT,
            "/v1/catalog".into(),
            Some(json!({"items": []})),
        ),
        (
            Method::PUT,
            "/v1/prompt".into(),
            Some(json!({"content": "x"})),
        ),
        // A version that does not exist: the role is refused before the lookup (not 404).
        (
            Method::POST,
            "/v1/prompt/restore".into(),
            Some(json!({"version": 999})),
        ),
        (
            Method::PUT,
            "/v1/lead-routing/entities/e1".into(),
            Some(json!({"integration_ids": [id]})),
        ),
        (Method::DELETE, "/v1/lead-routing/entities/e1".into(), None),
        (Method::DELETE, "/v1/tenant".into(), None),
    ];
    for (method, path, body) in refused {
        let r = dev.call(&agent, method.clone(), &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "agent {method} {path}: {:?}",
            r.json_body()
        );
        assert_eq!(code(&r), "ROLE_REQUIRED", "agent {method} {path}");
    }
    let admin = role("admin");
    let r = dev.call(&admin, Method::DELETE, "/v1/tenant", None).await;
    assert_eq!(
        code(&r),
        "ROLE_REQUIRED",
        "only the owner deletes the tenant"
    );

    let after = dev.call(&owner, Method::GET, &one, None).await.json_body();
    assert_eq!(
        after["is_enabled"], true,
        "the agent's DELETE disconnected nothing: {after}"
    );

    for path in [
        "/v1/registry".to_owned(),
        "/v1/integrations".into(),
        one.clone(),
        format!("{one}/logs"),
        "/v1/profile".into(),
        "/v1/catalog".into(),
        "/v1/prompt".into(),
        "/v1/prompt/history".into(),
        "/v1/inbox/dialogs".into(),
    ] {
        let r = dev.call(&agent, Method::GET, &path, None).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "agent GET {path}: {:?}",
            r.json_body()
        );
    }
    let r = dev
        .call(
            &agent,
            Method::POST,
            "/v1/clients",
            Some(json!({"name": "Анна", "phone": "+7 999 123-45-67"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json_body());
    let r = dev
        .call(
            &agent,
            Method::POST,
            "/v1/leads",
            Some(json!({"name": "Лид", "phone": "+79991234567"})),
        )
        .await;
    assert!(
        r.status.is_success(),
        "an agent creates leads: {:?}",
        r.json_body()
    );
    let r = dev
        .call(
            &admin,
            Method::PATCH,
            &one,
            Some(json!({"name": "CRM hook 2"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an admin configures: {:?}",
        r.json_body()
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_answer_is_405_with_allow() {
    let dev = dev();
    let owner = role("owner");
    for (method, path, allow) in [
        (Method::TRACE, "/v1/api-keys", "GET, POST"),
        (Method::PUT, "/v1/integrations/int_1", "DELETE, GET, PATCH"),
        (Method::DELETE, "/v1/health", "GET"),
        (
            Method::PATCH,
            "/v1/lead-routing/entities/e1",
            "DELETE, GET, PUT",
        ),
    ] {
        let r = dev.call(&owner, method.clone(), path, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(code(&r), "METHOD_NOT_ALLOWED");
        assert_eq!(
            r.headers
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn control_characters_in_a_display_name_are_422_naming_the_field() {
    let dev = dev();
    let owner = role("owner");
    for bad in ["a\u{0}b", "line\nbreak", "\u{1b}[31mred"] {
        let cases = [
            (
                Method::POST,
                "/v1/api-keys",
                json!({"name": bad, "scopes": ["config:read"]}),
                "name",
            ),
            (
                Method::PUT,
                "/v1/profile",
                json!({"name": bad, "business_type": "restaurant", "language": "ru", "timezone": "Europe/Moscow"}),
                "name",
            ),
            (
                Method::PUT,
                "/v1/catalog",
                json!({"items": [{"name": bad, "price_minor": 100, "currency": "RUB"}]}),
                "items[0].name",
            ),
            (
                Method::POST,
                "/v1/integrations",
                json!({"provider": "webhooks", "name": bad, "config": {"url": "https://crm.example.com/hook"}}),
                "name",
            ),
            (
                Method::POST,
                "/v1/clients",
                json!({"name": bad, "phone": "+79990001122"}),
                "name",
            ),
            (
                Method::POST,
                "/v1/clients",
                json!({"identities": [{"channel": "telegram", "external_id": "42", "username": bad}]}),
                "identities[0].username",
            ),
            (
                Method::POST,
                "/v1/leads",
                json!({"name": bad, "phone": "+79990001122"}),
                "name",
            ),
        ];
        for (method, path, body, field) in cases {
            let r = dev.call(&owner, method.clone(), path, Some(body)).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {bad:?}: {:?}",
                r.json_body()
            );
            let details = r.json_body()["error"]["details"].to_string();
            assert!(
                details.contains(&format!("\"{field}\"")),
                "{method} {path}: the error names {field}: {details}"
            );
        }
    }
    let r = dev
        .call(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "  bot engine ", "scopes": ["config:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json_body()["name"], "bot engine");
}

#[tokio::test]
async fn a_literal_path_is_never_read_as_a_templated_one() {
    let dev = dev();
    let owner = role("owner");
    for method in [Method::GET, Method::OPTIONS] {
        let r = dev
            .call(&owner, method.clone(), "/v1/leads/resend", None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} /v1/leads/resend"
        );
        assert_eq!(
            r.headers
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("POST")
        );
    }
}

#[tokio::test]
async fn path_parameters_are_percent_decoded() {
    let dev = dev();
    let owner = role("owner");
    let r = dev
        .call(
            &owner,
            Method::PUT,
            "/v1/lead-routing/entities/a%3Ab",
            Some(json!({"integration_ids": []})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.json_body());
    let plain = dev
        .call(&owner, Method::GET, "/v1/lead-routing/entities/a:b", None)
        .await;
    assert_eq!(
        plain.status,
        StatusCode::OK,
        "the same entity: {:?}",
        plain.json_body()
    );
    let bad = dev
        .call(&owner, Method::GET, "/v1/lead-routing/entities/%FF", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_same_identity_twice_is_one_identity_not_a_500() {
    let dev = dev();
    let r = dev
        .call(
            &role("agent"),
            Method::POST,
            "/v1/clients",
            Some(json!({"identities": [
                {"channel": "vk", "external_id": "0"},
                {"channel": "vk", "external_id": " 0"},
                {"channel": "vk", "external_id": "0"}
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json_body());
    assert_eq!(
        r.json_body()["identities"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn an_unreadable_idempotency_key_is_refused_not_ignored() {
    let dev = dev();
    let (mut parts, ()) = http::Request::builder()
        .method(Method::POST)
        .uri("/v1/leads")
        .header("authorization", format!("Bearer {}", role("owner")))
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts();
    parts.headers.insert(
        "idempotency-key",
        http::HeaderValue::from_bytes(b"k\xe9y").unwrap(),
    );
    let req = devserver::to_api_request(
        parts,
        json!({"name": "Ivan"}).to_string().into(),
        &Secret::new(SECRET.to_vec()),
        dev.ports.clock.now_secs(),
    );
    let r = dev.router.handle(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json_body());
}

#[tokio::test]
async fn working_hours_are_two_digits_a_colon_two_digits() {
    let dev = dev();
    let profile = |open: &str| {
        json!({"name": "Cafe", "business_type": "restaurant", "language": "ru",
               "timezone": "Europe/Moscow", "working_hours": {"mon": [{"open": open, "close": "18:00"}]}})
    };
    let owner = role("owner");
    for bad in ["+9:+5", "9:00", "09:0", "-1:00", "09:60", "24:01"] {
        let r = dev
            .call(&owner, Method::PUT, "/v1/profile", Some(profile(bad)))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r = dev
        .call(&owner, Method::PUT, "/v1/profile", Some(profile("09:00")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json_body());
}

#[tokio::test]
async fn a_webhook_method_the_provider_does_not_answer_is_405_with_its_allow() {
    let dev = dev();
    let r = dev
        .call(
            &role("owner"),
            Method::POST,
            "/v1/integrations",
            Some(json!({"provider": "telegram_bot", "config": {"bot_token": "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json_body());
    let path = format!(
        "/v1/webhooks/telegram_bot/{}",
        r.json_body()["id"].as_str().unwrap()
    );
    for method in [Method::GET, Method::OPTIONS] {
        let r = dev.call("", method.clone(), &path, None).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}: {:?}",
            r.json_body()
        );
        assert_eq!(
            r.headers
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("POST"),
            "{method}"
        );
    }
}
