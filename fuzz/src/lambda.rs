//! API Gateway v2 (payload 2.0) events ⇄ [`ApiRequest`]/[`ApiResponse`]
//! (`shared::http::lambda`), from the raw JSON text of an event:
//!
//! * `lambda_http::request::from_str` → `from_lambda` → a small router → `to_lambda` and
//!   `to_apigw_v2`: the request body reaches the handler, the handler's bytes come back in
//!   the response unchanged (text, or base64 for non-UTF-8), nothing answers 5xx;
//! * the same JSON through `dispatch_with_authorizer` (authorizer events: the request
//!   authorizer without an issuer, which never goes to the network) and `dispatch` (SQS
//!   `Records`: a consumer that acknowledges all): they answer, never panic (not even on
//!   the events lambda_http panics on, see `crate::known`), and no HTTP answer is a 5xx;
//! * `ApiRequest::parse_query` of the raw query string.

use std::sync::OnceLock;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use base64::Engine as _;
use http::{Method, StatusCode};
use lambda_http::Body;
use serde_json::Value;
use shared::http::lambda::{self, RequestAuthorizer};
use shared::http::{Access, ApiRequest, ApiResponse, Principal, Roles, Router};

use crate::known::tolerate_lambda_http_panics;

struct State {
    runtime: tokio::runtime::Runtime,
    router: Router,
    authorizer: RequestAuthorizer,
}

struct Acknowledge;

#[async_trait::async_trait]
impl shared::worker::SqsConsumer for Acknowledge {
    async fn handle(&self, _event: SqsEvent) -> SqsBatchResponse {
        SqsBatchResponse::default()
    }
}

/// Echoes the request body as raw bytes; `/v1/me` answers the dashboard user.
fn router() -> Router {
    Router::new(None)
        .route(
            Method::POST,
            "/v1/echo",
            Access::Public,
            |req: ApiRequest, _| async move {
                Ok(ApiResponse::raw(
                    StatusCode::OK,
                    "application/octet-stream",
                    req.body,
                ))
            },
        )
        .route(
            Method::PUT,
            "/v1/echo/{id}",
            Access::Public,
            |req: ApiRequest, _| async move {
                Ok(ApiResponse::raw(
                    StatusCode::OK,
                    "application/octet-stream",
                    req.body,
                ))
            },
        )
        .route(
            Method::GET,
            "/v1/me",
            Access::Dashboard(Roles::ANY),
            |_, principal| async move {
                let Principal::User { tenant_id, .. } = principal else {
                    return Err(shared::http::ApiError::unauthorized());
                };
                Ok(ApiResponse::raw(
                    StatusCode::OK,
                    "text/plain",
                    tenant_id.as_str().to_owned(),
                ))
            },
        )
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| State {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}")),
        router: router(),
        authorizer: RequestAuthorizer::new(None),
    })
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b.as_slice(),
        _ => &[],
    }
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let state = state();
    if let Ok(payload) = serde_json::from_str::<Value>(text) {
        if let Some(raw) = payload.get("rawQueryString").and_then(Value::as_str) {
            let _ = ApiRequest::parse_query(raw);
        }
        let _ = lambda::is_authorizer_event(&payload);
        let answer = tolerate_lambda_http_panics(|| {
            state.runtime.block_on(lambda::dispatch_with_authorizer(
                &state.router,
                &state.authorizer,
                payload.clone(),
            ))
        });
        // route_event catches the dependency's panics and answers 400 (finding 2).
        let answer = answer.unwrap_or_else(|| panic!("a panic escaped dispatch_with_authorizer"));
        if let Ok(answer) = &answer {
            if let Some(authorized) = answer.get("isAuthorized") {
                // No issuer is configured: a bearer token is never authorized.
                assert!(authorized.is_boolean(), "isAuthorized: {answer}");
            } else if let Some(status) = answer.get("statusCode").and_then(Value::as_u64) {
                assert!(status < 500, "dispatch answered {answer}");
            }
        }
        let answer = tolerate_lambda_http_panics(|| {
            state
                .runtime
                .block_on(lambda::dispatch(&state.router, &Acknowledge, payload))
        });
        assert!(answer.is_some(), "a panic escaped dispatch");
    }
    let Some(Ok(request)) = tolerate_lambda_http_panics(|| lambda_http::request::from_str(text))
    else {
        return;
    };
    let request = lambda::from_lambda(request);
    let (method, path, sent) = (
        request.method.clone(),
        request.path.clone(),
        request.body.clone(),
    );
    let response = state.runtime.block_on(state.router.handle(request));
    assert!(
        response.status < StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {path} answered {}",
        response.status
    );
    let echoed = response.status == StatusCode::OK
        && (method == Method::POST || method == Method::PUT)
        && path.starts_with("/v1/echo");
    if echoed {
        assert_eq!(response.body, sent, "the echo route changed the body");
    }
    let document = lambda::to_apigw_v2(response.clone());
    assert_eq!(
        document["statusCode"].as_u64(),
        Some(u64::from(response.status.as_u16()))
    );
    let body = document["body"].as_str().unwrap_or_default();
    let decoded = if document["isBase64Encoded"] == Value::Bool(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("to_apigw_v2 wrote bad base64: {e}"))
    } else {
        body.as_bytes().to_vec()
    };
    assert_eq!(decoded, response.body, "to_apigw_v2 changed the body");
    let out = lambda::to_lambda(response.clone());
    assert_eq!(out.status(), response.status);
    assert_eq!(
        body_bytes(out.body()),
        &response.body[..],
        "to_lambda changed the body"
    );
}
