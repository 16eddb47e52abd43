//! API Gateway (HTTP API, payload v2) ⇄ [`ApiRequest`]/[`ApiResponse`].

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt, service_fn};

use super::auth::JwtClaims;
use super::request::{ApiRequest, ApiResponse};
use super::router::Router;

/// Converts a Lambda HTTP request; JWT claims come from the authorizer in the request context.
pub fn from_lambda(req: lambda_http::Request) -> ApiRequest {
    let (claims, request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .and_then(|jwt| JwtClaims::from_authorizer(&jwt.claims)),
            ctx.request_id.clone().unwrap_or_default(),
        ),
        _ => (None, String::new()),
    };
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(text) => text.into(),
        Body::Binary(bytes) => bytes.into(),
        _ => bytes::Bytes::new(),
    };
    ApiRequest::from_parts(parts, body, claims, request_id)
}

pub fn to_lambda(resp: ApiResponse) -> lambda_http::Response<Body> {
    let mut out = lambda_http::Response::new(if resp.body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(resp.body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    });
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}

/// Runs a router as the Lambda function's handler.
pub async fn serve(router: Arc<Router>) -> Result<(), lambda_http::Error> {
    lambda_http::run(service_fn(move |req: lambda_http::Request| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(to_lambda(router.handle(from_lambda(req)).await)) }
    }))
    .await
}
