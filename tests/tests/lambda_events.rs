//! The API Gateway events in `events/` go through the same conversion and router as in
//! Lambda, so the files `sam local invoke -e` uses cannot go stale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, StatusCode};
use serde_json::json;
use shared::http::lambda::{from_lambda, to_lambda};
use shared::http::{Access, ApiResponse, Role, Roles, Router};

fn event(raw: &str) -> shared::http::ApiRequest {
    from_lambda(lambda_http::request::from_str(raw).expect("a valid API Gateway v2 event"))
}

#[tokio::test]
async fn health_event_answers_ok() {
    let request = event(include_str!("../../events/shared/health-get.json"));
    assert_eq!(request.request_id, "health-req-1");
    let response = to_lambda(Router::new(None).handle(request).await);
    assert_eq!(response.status(), StatusCode::OK);
    let lambda_http::Body::Text(body) = response.body() else {
        panic!("a text body");
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn authorizer_claims_become_the_dashboard_principal() {
    let request = event(include_str!("../../events/shared/dashboard-jwt-get.json"));
    let claims = request
        .claims
        .clone()
        .expect("claims from the JWT authorizer");
    assert_eq!(claims.tenant_id.as_str(), "acme");
    assert_eq!(claims.sub, "user-42");
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(
        request.query.get("cursor").map(String::as_str),
        Some("abc=")
    );
    let router = Router::new(None).route(
        Method::GET,
        "/v1/whoami",
        Access::Dashboard(Roles::ANY),
        |_, p| async move {
            Ok(ApiResponse::json(
                StatusCode::OK,
                &json!({"tenant": p.tenant()?.as_str()}),
            ))
        },
    );
    let response = router.handle(request).await;
    assert_eq!(response.json_body(), json!({"tenant": "acme"}));
}

#[tokio::test]
async fn the_same_route_without_authorizer_claims_is_401() {
    let request = event(include_str!("../../events/shared/health-get.json"));
    let mut request = request;
    request.path = "/v1/whoami".into();
    let router = Router::new(None).route(
        Method::GET,
        "/v1/whoami",
        Access::Dashboard(Roles::ANY),
        |_, _| async { Ok(ApiResponse::empty(StatusCode::OK)) },
    );
    let response = router.handle(request).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json_body()["error"]["code"], "UNAUTHORIZED");
}
