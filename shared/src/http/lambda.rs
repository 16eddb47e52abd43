//! API Gateway (HTTP API, payload v2) ⇄ [`ApiRequest`]/[`ApiResponse`], and the HTTP API
//! Lambda authorizer ([`RequestAuthorizer`]) of the routes that take an API key or a
//! dashboard JWT.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::apigw::ApiGatewayRequestAuthorizer;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};

use super::auth::{API_KEY_HEADER, JwtClaims};
use super::error::ApiError;
use super::oidc::OidcVerifier;
use super::request::{ApiRequest, ApiResponse};
use super::router::Router;

/// Converts a Lambda HTTP request; JWT claims come from the authorizer in the request context.
pub fn from_lambda(req: lambda_http::Request) -> ApiRequest {
    let (claims, request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.authorizer.as_ref().and_then(authorizer_claims),
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

/// The dashboard claims an authorizer verified: the gateway JWT authorizer's `jwt.claims`,
/// or the context of the Lambda authorizer ([`RequestAuthorizer`], `lambda`). The same
/// validation for both; anything else in the context (an API-key call's empty one) is no
/// claims. Only API Gateway writes `requestContext`, so a caller cannot forge either.
fn authorizer_claims(authorizer: &ApiGatewayRequestAuthorizer) -> Option<JwtClaims> {
    if let Some(jwt) = &authorizer.jwt {
        return JwtClaims::from_authorizer(&jwt.claims);
    }
    let context: HashMap<String, String> = authorizer
        .fields
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    JwtClaims::from_authorizer(&context)
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

/// Runs a router as the Lambda function's handler: every event is an API Gateway v2
/// request, read as [`route_event`] reads one (an event `lambda_http` would panic on is
/// answered 400).
pub async fn serve(router: Arc<Router>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let router = router.clone();
            async move { route_event(&router, None, None, event.payload).await }
        },
    ))
    .await
}

/// Runs a function that has both an HTTP API and an SQS trigger: SQS events (they carry
/// `Records`) go to the consumer, everything else is an API Gateway v2 request.
pub async fn serve_with_consumer(
    router: Arc<Router>,
    consumer: Arc<dyn crate::worker::SqsConsumer>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let router = router.clone();
            let consumer = consumer.clone();
            async move { dispatch(&router, consumer.as_ref(), event.payload).await }
        },
    ))
    .await
}

/// Runs a function that also answers the HTTP API's Lambda authorizer events (config-api):
/// those go to `authorizer`, everything else is an API Gateway v2 request.
pub async fn serve_with_authorizer(
    router: Arc<Router>,
    authorizer: Arc<RequestAuthorizer>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let router = router.clone();
            let authorizer = authorizer.clone();
            async move { dispatch_with_authorizer(&router, &authorizer, event.payload).await }
        },
    ))
    .await
}

/// Routes one raw Lambda event (see [`serve_with_consumer`]). An authorizer event is an
/// error here: this function is not an authorizer.
pub async fn dispatch(
    router: &Router,
    consumer: &dyn crate::worker::SqsConsumer,
    payload: Value,
) -> Result<Value, lambda_runtime::Error> {
    route_event(router, Some(consumer), None, payload).await
}

/// Routes one raw Lambda event of a function that is also the HTTP API's Lambda
/// authorizer (see [`serve_with_authorizer`]). An SQS event is an error here.
pub async fn dispatch_with_authorizer(
    router: &Router,
    authorizer: &RequestAuthorizer,
    payload: Value,
) -> Result<Value, lambda_runtime::Error> {
    route_event(router, None, Some(authorizer), payload).await
}

async fn route_event(
    router: &Router,
    consumer: Option<&dyn crate::worker::SqsConsumer>,
    authorizer: Option<&RequestAuthorizer>,
    payload: Value,
) -> Result<Value, lambda_runtime::Error> {
    if is_authorizer_event(&payload) {
        let Some(authorizer) = authorizer else {
            return Err("an HTTP API authorizer event, but this function is no authorizer".into());
        };
        return Ok(authorizer.answer(&payload).await);
    }
    if payload.get("Records").is_some() {
        let Some(consumer) = consumer else {
            return Err("an SQS event, but this function has no SQS trigger".into());
        };
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(payload)?;
        return Ok(serde_json::to_value(consumer.handle(event).await)?);
    }
    // lambda_http panics on some events instead of failing (a URL that does not parse, a
    // body flagged base64 that is not): such a request is answered 400, never a dead
    // invocation.
    let raw = payload.to_string();
    let request = match std::panic::catch_unwind(|| lambda_http::request::from_str(&raw)) {
        Ok(Ok(request)) => request,
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("an API Gateway event that cannot be read as a request");
            let refused = ApiError::bad_request("the request cannot be read");
            return Ok(to_apigw_v2(ApiResponse::error(&refused)));
        }
    };
    let response = router.handle(from_lambda(request)).await;
    Ok(to_apigw_v2(response))
}

/// An HTTP API Lambda authorizer event (payload format 2.0): `"type": "REQUEST"` and the
/// ARN of the route it guards.
pub fn is_authorizer_event(payload: &Value) -> bool {
    payload.get("type").and_then(Value::as_str) == Some("REQUEST")
        && payload.get("routeArn").is_some_and(Value::is_string)
}

/// The HTTP API Lambda authorizer (REQUEST, payload format 2.0, simple responses, no
/// identity source, no caching) of the routes that take a tenant API key or a dashboard
/// JWT — the gateway's own JWT authorizer would refuse every API-key call on them:
///
/// * `X-Api-Key` and no `Authorization`: allowed with an empty context — the function
///   checks the key itself (hash lookup, scope), as before;
/// * `Authorization: Bearer <jwt>` (with or without a key): allowed only when the
///   [`OidcVerifier`] accepts the token, with its `tenant_id`, `sub` and `role` as the
///   context the router reads as the dashboard user ([`from_lambda`]); without a verifier
///   (no `JWT_ISSUER`) every token is refused;
/// * neither: refused (API Gateway answers 403).
///
/// Logs each decision with its reason, never the token or the key.
pub struct RequestAuthorizer {
    verifier: Option<OidcVerifier>,
}

impl RequestAuthorizer {
    pub fn new(verifier: Option<OidcVerifier>) -> Self {
        Self { verifier }
    }

    /// The simple response to one authorizer event: `{"isAuthorized": true, "context": …}`
    /// or `{"isAuthorized": false}`.
    pub async fn answer(&self, event: &Value) -> Value {
        let header = |name: &str| {
            event
                .get("headers")
                .and_then(Value::as_object)?
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.as_str())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        // Which credential the request carried, for the log line.
        let (credential, outcome) = match (header("authorization"), header(API_KEY_HEADER)) {
            (None, Some(_)) => ("api_key", Ok(None)),
            (None, None) => ("none", Err("no X-Api-Key or Authorization".to_owned())),
            (Some(authorization), _) => ("jwt", self.verify(authorization).await),
        };
        let request_id = event
            .pointer("/requestContext/requestId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let route = event
            .get("routeKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match outcome {
            Ok(claims) => {
                let context = claims.map_or_else(
                    || json!({}),
                    |c| json!({"tenant_id": c.tenant_id.as_str(), "sub": c.sub, "role": c.role}),
                );
                tracing::info!(
                    request_id,
                    route,
                    credential,
                    tenant_id = context["tenant_id"].as_str(),
                    "authorizer allowed"
                );
                json!({"isAuthorized": true, "context": context})
            }
            Err(reason) => {
                tracing::info!(request_id, route, credential, reason, "authorizer refused");
                json!({"isAuthorized": false})
            }
        }
    }

    async fn verify(&self, authorization: &str) -> Result<Option<JwtClaims>, String> {
        let token = match authorization.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => authorization[7..].trim(),
            _ => authorization,
        };
        let Some(verifier) = &self.verifier else {
            return Err("no JWT issuer is configured (JWT_ISSUER)".to_owned());
        };
        match verifier.verify(token).await {
            Ok(claims) => Ok(Some(claims)),
            Err(err @ super::oidc::OidcError::Keys(_)) => {
                tracing::error!(error = %err, "the JWT issuer's keys are unavailable");
                Err(err.to_string())
            }
            Err(err) => Err(err.to_string()),
        }
    }
}

/// An API Gateway v2 (payload 2.0) response document.
pub fn to_apigw_v2(resp: ApiResponse) -> Value {
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
    json!({
        "statusCode": resp.status.as_u16(),
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Access, Principal, Role, Roles, Scope};
    use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

    struct NoConsumer;

    #[async_trait::async_trait]
    impl crate::worker::SqsConsumer for NoConsumer {
        async fn handle(&self, _event: SqsEvent) -> SqsBatchResponse {
            SqsBatchResponse::default()
        }
    }

    fn authorizer_event(headers: Value) -> Value {
        json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:eu-central-1:123456789012:abc123/$default/POST/v1/leads",
            "identitySource": null,
            "routeKey": "POST /v1/leads",
            "rawPath": "/v1/leads",
            "headers": headers,
            "requestContext": {"requestId": "r1", "http": {"method": "POST", "path": "/v1/leads"}},
        })
    }

    fn http_event(authorizer: Value) -> Value {
        crate::testing::apigw_v2_event("POST", "/v1/leads", &[], authorizer, "{}")
    }

    /// `POST /v1/leads` taking a dashboard user or a `leads:write` key, answering the user.
    fn router() -> Router {
        Router::new(None).route(
            http::Method::POST,
            "/v1/leads",
            Access::DashboardOrApiKey(Roles::ANY, Scope::LeadsWrite),
            |_, principal| async move {
                let Principal::User {
                    tenant_id, role, ..
                } = principal
                else {
                    return Err(crate::http::ApiError::unauthorized());
                };
                Ok(ApiResponse::json(
                    http::StatusCode::OK,
                    &json!({"tenant": tenant_id.as_str(), "role": role}),
                ))
            },
        )
    }

    #[test]
    fn authorizer_events_are_told_from_http_and_sqs_events() {
        assert!(is_authorizer_event(&authorizer_event(json!({}))));
        assert!(!is_authorizer_event(&http_event(json!({}))));
        assert!(!is_authorizer_event(&json!({"Records": []})));
        assert!(!is_authorizer_event(
            &json!({"type": "TOKEN", "methodArn": "arn:…"})
        ));
    }

    #[tokio::test]
    async fn a_function_without_an_authorizer_refuses_authorizer_events() {
        let answer = dispatch(&router(), &NoConsumer, authorizer_event(json!({}))).await;
        assert!(answer.is_err(), "{answer:?}");
    }

    #[tokio::test]
    async fn the_authorizer_entry_answers_authorizer_http_but_no_sqs_events() {
        let authorizer = RequestAuthorizer::new(None);
        let router = router();
        let allowed = dispatch_with_authorizer(
            &router,
            &authorizer,
            authorizer_event(json!({"x-api-key": "k"})),
        )
        .await
        .ok();
        assert_eq!(allowed, Some(json!({"isAuthorized": true, "context": {}})));
        let refused = dispatch_with_authorizer(&router, &authorizer, authorizer_event(json!({})))
            .await
            .ok();
        assert_eq!(refused, Some(json!({"isAuthorized": false})));
        let health = dispatch_with_authorizer(
            &router,
            &authorizer,
            json!({
                "version": "2.0", "routeKey": "GET /v1/health", "rawPath": "/v1/health",
                "headers": {}, "isBase64Encoded": false,
                "requestContext": {"http": {"method": "GET", "path": "/v1/health"}, "requestId": "h"}
            }),
        )
        .await
        .ok();
        assert_eq!(health.map(|h| h["statusCode"].clone()), Some(json!(200)));
        assert!(
            dispatch_with_authorizer(&router, &authorizer, json!({"Records": []}))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_lambda_authorizers_context_is_the_dashboard_user() {
        let context = json!({"lambda": {"tenant_id": "acme", "sub": "user-1", "role": "agent"}});
        let answer = dispatch(&router(), &NoConsumer, http_event(context))
            .await
            .ok();
        assert_eq!(
            answer.as_ref().map(|a| a["statusCode"].clone()),
            Some(json!(200))
        );
        let body: Value = answer
            .and_then(|a| serde_json::from_str(a["body"].as_str()?).ok())
            .unwrap_or_default();
        assert_eq!(body, json!({"tenant": "acme", "role": Role::Agent}));
    }

    #[tokio::test]
    async fn an_empty_or_invalid_lambda_context_is_no_user() {
        for context in [
            json!({"lambda": {}}),
            json!({"lambda": {"tenant_id": "a#b", "sub": "u", "role": "owner"}}),
            json!({"lambda": {"tenant_id": "acme", "sub": "u", "role": "god"}}),
            json!({"lambda": {"tenant_id": ["acme"], "sub": "u", "role": "owner"}}),
            json!({"lambda": null}),
        ] {
            let answer = dispatch(&router(), &NoConsumer, http_event(context.clone()))
                .await
                .ok();
            assert_eq!(
                answer.map(|a| a["statusCode"].clone()),
                Some(json!(401)),
                "{context}"
            );
        }
    }

    #[tokio::test]
    async fn the_jwt_authorizers_claims_still_count() {
        let claims = json!({"jwt": {"claims": {"tenant_id": "acme", "sub": "u", "role": "owner"}, "scopes": null}});
        let answer = dispatch(&router(), &NoConsumer, http_event(claims))
            .await
            .ok();
        assert_eq!(answer.map(|a| a["statusCode"].clone()), Some(json!(200)));
    }
}
