//! Tenant API keys: stored only as a SHA-256 hash, looked up by it, scoped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;
use shared::backend;
use shared::domain::TenantId;
use shared::http::{Access, ApiRequest, ApiResponse, Authenticator, Router, Scope};
use shared::ports::SystemClock;
use shared::ports::table::{Key, Query};
use shared::repo::api_keys::{ApiKeys, hash_key};

fn request(key: Option<&str>) -> ApiRequest {
    let mut req = ApiRequest::new(Method::GET, "/v1/bot/config");
    if let Some(key) = key {
        req.headers.insert("x-api-key", key.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn api_key_is_stored_hashed_and_grants_only_its_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
    let keys = ApiKeys::new(ports.table.clone(), ports.clock.clone());
    let tenant = TenantId::parse("acme").unwrap();
    let (record, raw) = keys
        .create(&tenant, "bot engine", vec![Scope::ConfigRead])
        .await
        .unwrap();

    let stored = ports
        .table
        .get(&Key::new(
            format!("APIKEY#{}", hash_key(raw.expose())),
            "APIKEY",
        ))
        .await
        .unwrap()
        .expect("stored under its hash");
    let dump = format!("{stored:?}");
    assert!(
        !dump.contains(raw.expose().as_str()),
        "the raw key is never stored"
    );
    let listed = ports
        .table
        .query(Query::gsi1("TENANT#acme#APIKEYS"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let router = Router::new(Some(Arc::new(Authenticator::new(keys))))
        .route(
            Method::GET,
            "/v1/bot/config",
            Access::ApiKey(Scope::ConfigRead),
            |_, p| async move {
                Ok(ApiResponse::json(
                    StatusCode::OK,
                    &json!({"tenant": p.tenant()?.as_str()}),
                ))
            },
        )
        .route(
            Method::POST,
            "/v1/leads",
            Access::ApiKey(Scope::LeadsWrite),
            |_, _| async { Ok(ApiResponse::empty(StatusCode::CREATED)) },
        );

    let ok = router.handle(request(Some(raw.expose()))).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json_body(), json!({"tenant": "acme"}));

    let mut lead = request(Some(raw.expose()));
    lead.method = Method::POST;
    lead.path = "/v1/leads".into();
    let forbidden = router.handle(lead).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.json_body()["error"]["code"], "INSUFFICIENT_SCOPE");

    assert_eq!(
        router.handle(request(Some("ak_unknown"))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        router.handle(request(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(record.prefix.starts_with("ak_"));
}
