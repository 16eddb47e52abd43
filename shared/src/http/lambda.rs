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
    let deadline_ms = req.lambda_context_ref().map(|c| c.deadline);
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(text) => text.into(),
        Body::Binary(bytes) => bytes.into(),
        _ => bytes::Bytes::new(),
    };
    let mut request = ApiRequest::from_parts(parts, body, claims, request_id);
    request.deadline_ms = deadline_ms;
    request
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

/// Runs a function that has both an HTTP API and an SQS trigger: SQS events (they carry
/// `Records`) go to the consumer, everything else is an API Gateway v2 request.
pub async fn serve_with_consumer(
    router: Arc<Router>,
    consumer: Arc<dyn crate::worker::SqsConsumer>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let router = router.clone();
            let consumer = consumer.clone();
            async move { dispatch(&router, consumer.as_ref(), event.payload).await }
        },
    ))
    .await
}

/// Routes one raw Lambda event (see [`serve_with_consumer`]).
pub async fn dispatch(
    router: &Router,
    consumer: &dyn crate::worker::SqsConsumer,
    payload: serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if payload.get("Records").is_some() {
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(payload)?;
        return Ok(serde_json::to_value(consumer.handle(event).await)?);
    }
    let request = lambda_http::request::from_str(&payload.to_string())?;
    let response = router.handle(from_lambda(request)).await;
    Ok(to_apigw_v2(response))
}

/// An API Gateway v2 (payload 2.0) response document.
pub fn to_apigw_v2(resp: ApiResponse) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (name, value) in &resp.headers {
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str().to_owned(), value.into());
        }
    }
    let (body, base64) = match String::from_utf8(resp.body.to_vec()) {
        Ok(text) => (text, false),
        Err(e) => {
            use base64::Engine as _;
            (
                base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                true,
            )
        }
    };
    serde_json::json!({
        "statusCode": resp.status.as_u16(),
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64,
    })
}
