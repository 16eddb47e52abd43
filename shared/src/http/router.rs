//! The route table. Every function builds one; Lambda serves it through
//! [`super::lambda::serve`], the dev server merges them all on one port.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Method, StatusCode};
use serde_json::json;
use tracing::Instrument as _;

use super::auth::{Authenticator, Principal, Roles, Scope};
use super::error::ApiError;
use super::request::{ApiRequest, ApiResponse};

/// Largest request body accepted by default (API Gateway allows 10 MB, Lambda 6 MB).
/// Wraps a handler `async fn(&Deps, ApiRequest, Principal)` into a route closure that
/// holds its own `Arc` of the deps: `.route(method, path, access, handler!(deps, f))`.
#[macro_export]
macro_rules! handler {
    ($deps:expr, $handler:path) => {{
        let deps = $deps.clone();
        move |req, principal| {
            let deps = deps.clone();
            async move { $handler(&deps, req, principal).await }
        }
    }};
}

pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (health, provider webhooks that verify their own signatures).
    Public,
    /// Dashboard JWT of one of these roles.
    Dashboard(Roles),
    /// Tenant API key with this scope.
    ApiKey(Scope),
    /// Dashboard JWT of one of these roles, or else an API key with this scope.
    DashboardOrApiKey(Roles, Scope),
}

impl Access {
    /// The dashboard roles admitted; `None` where no dashboard token is taken.
    pub fn roles(self) -> Option<Roles> {
        match self {
            Self::Dashboard(roles) | Self::DashboardOrApiKey(roles, _) => Some(roles),
            Self::Public | Self::ApiKey(_) => None,
        }
    }
}

type Handler = Arc<
    dyn Fn(ApiRequest, Principal) -> BoxFuture<'static, Result<ApiResponse, ApiError>>
        + Send
        + Sync,
>;

#[derive(Clone)]
struct Route {
    method: Method,
    pattern: &'static str,
    segments: Vec<Segment>,
    access: Access,
    handler: Handler,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

fn parse_pattern(pattern: &'static str) -> Vec<Segment> {
    pattern
        .trim_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s),
            },
        )
        .collect()
}

impl Route {
    /// The route's parameters when it matches `path` (its segments, percent-decoded).
    fn matches(&self, path: &[String]) -> Option<Vec<(&'static str, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(path) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Param(name) if !part.is_empty() => params.push((*name, part.clone())),
                _ => return None,
            }
        }
        Some(params)
    }

    /// Orders routes matching one path: a literal segment beats a parameter at the first
    /// place they differ, so `/v1/leads/resend` is never read as `/v1/leads/{id}`.
    fn specificity(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Literal(_)))
            .collect()
    }
}

/// A path's segments, percent-decoded (`a%3Ab` is `a:b`); `None` when a segment does not
/// decode to UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|d| d.into_owned())
        })
        .collect()
}

/// The integration a route's path names (`{integration_id}`, or `{id}` under
/// `/v1/integrations/`), when it is a well-formed id: logged on the request span.
fn integration_param<'a>(
    pattern: &str,
    params: &'a std::collections::HashMap<String, String>,
) -> Option<&'a str> {
    let raw = params.get("integration_id").or_else(|| {
        pattern
            .starts_with("/v1/integrations/")
            .then(|| params.get("id"))
            .flatten()
    })?;
    crate::domain::IntegrationId::parse(raw.as_str())
        .ok()
        .map(|_| raw.as_str())
}

/// 405 with the `Allow` header HTTP requires: the methods the path does answer.
fn method_not_allowed(method: &Method, allowed: &[&Method]) -> ApiResponse {
    let mut response = ApiResponse::error(&ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed here"),
    ));
    let mut methods: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    if let Ok(value) = http::HeaderValue::from_str(&methods.join(", ")) {
        response.headers.insert(http::header::ALLOW, value);
    }
    response
}

#[derive(Clone)]
pub struct Router {
    routes: Vec<Route>,
    auth: Option<Arc<Authenticator>>,
    body_limit: usize,
}

impl Router {
    /// A router answering `GET /v1/health`; `auth` resolves API keys for protected routes.
    pub fn new(auth: Option<Arc<Authenticator>>) -> Self {
        Self {
            routes: Vec::new(),
            auth,
            body_limit: DEFAULT_BODY_LIMIT,
        }
        .route(Method::GET, "/v1/health", Access::Public, |_, _| async {
            Ok(ApiResponse::json(StatusCode::OK, &json!({"status": "ok"})))
        })
    }

    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    pub fn route<F, Fut>(
        mut self,
        method: Method,
        pattern: &'static str,
        access: Access,
        handler: F,
    ) -> Self
    where
        F: Fn(ApiRequest, Principal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ApiResponse, ApiError>> + Send + 'static,
    {
        let duplicate = self
            .routes
            .iter()
            .any(|r| r.method == method && r.pattern == pattern);
        if !duplicate {
            self.routes.push(Route {
                method,
                pattern,
                segments: parse_pattern(pattern),
                access,
                handler: Arc::new(move |req, principal| Box::pin(handler(req, principal))),
            });
        }
        self
    }

    /// Adds another router's routes (the dev server mounts every function this way).
    /// The first registration of a method + pattern wins, so `/v1/health` stays single.
    pub fn merge(mut self, other: Router) -> Self {
        for route in other.routes {
            let duplicate = self
                .routes
                .iter()
                .any(|r| r.method == route.method && r.pattern == route.pattern);
            if !duplicate {
                self.routes.push(route);
            }
        }
        self.auth = self.auth.or(other.auth);
        self
    }

    /// `METHOD pattern` of every route, for listings and tests.
    pub fn describe(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.pattern))
            .collect()
    }

    /// Every route with who may call it (the role matrix the documents are checked against).
    pub fn access_table(&self) -> Vec<(Method, &'static str, Access)> {
        self.routes
            .iter()
            .map(|r| (r.method.clone(), r.pattern, r.access))
            .collect()
    }

    async fn authenticate(&self, access: Access, req: &ApiRequest) -> Result<Principal, ApiError> {
        let api_key = |scope| async move {
            match &self.auth {
                Some(auth) => auth.api_key(req, scope).await,
                None => Err(ApiError::unauthorized()),
            }
        };
        match access {
            Access::Public => Ok(Principal::Anonymous),
            Access::Dashboard(roles) => Authenticator::user(req)?.check_role(roles),
            Access::ApiKey(scope) => api_key(scope).await,
            Access::DashboardOrApiKey(roles, scope) => match Authenticator::user(req) {
                Ok(user) => user.check_role(roles),
                Err(_) => api_key(scope).await,
            },
        }
    }

    async fn dispatch(&self, mut req: ApiRequest) -> Result<(ApiResponse, &'static str), ApiError> {
        let path = segments(&req.path)
            .ok_or_else(|| ApiError::bad_request("the path is not percent-encoded UTF-8"))?;
        let matching: Vec<(&Route, Vec<(&'static str, String)>)> = self
            .routes
            .iter()
            .filter_map(|route| Some((route, route.matches(&path)?)))
            .collect();
        // The path belongs to its most specific pattern; the methods are that pattern's.
        let Some(best) = matching.iter().map(|(r, _)| r.specificity()).max() else {
            return Err(ApiError::not_found("route"));
        };
        let mut candidates = matching
            .into_iter()
            .filter(|(route, _)| route.specificity() == best);
        let mut allowed: Vec<&Method> = Vec::new();
        let found = candidates.find_map(|(route, params)| {
            allowed.push(&route.method);
            (route.method == req.method).then_some((route, params))
        });
        let Some((route, params)) = found else {
            allowed.extend(candidates.map(|(route, _)| &route.method));
            return Ok((method_not_allowed(&req.method, &allowed), "-"));
        };
        if req.body.len() > self.body_limit {
            return Err(ApiError::payload_too_large(self.body_limit));
        }
        req.path_params = params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let span = tracing::Span::current();
        span.record("route", route.pattern);
        if let Some(id) = integration_param(route.pattern, &req.path_params) {
            span.record("integration_id", id);
        }
        let principal = self.authenticate(route.access, &req).await?;
        if let Ok(tenant) = principal.tenant() {
            span.record("tenant_id", tenant.as_str());
        }
        let response = (route.handler)(req, principal).await?;
        Ok((response, route.pattern))
    }

    /// Answers a request: routing, body limit, authentication, the handler, the error
    /// mapper. A panicking handler becomes a logged 500, never a dropped connection.
    /// Everything runs in a `request` span carrying `request_id` (API Gateway's), and,
    /// once known, `route`, `tenant_id` (the caller's) and `integration_id` (from the
    /// path), so every line logged while handling the request carries them.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let span = tracing::info_span!(
            "request",
            request_id = %req.request_id,
            method = %req.method,
            route = tracing::field::Empty,
            tenant_id = tracing::field::Empty,
            integration_id = tracing::field::Empty,
        );
        self.handle_in_span(req).instrument(span).await
    }

    async fn handle_in_span(&self, req: ApiRequest) -> ApiResponse {
        let started = Instant::now();
        let method = req.method.clone();
        let request_id = req.request_id.clone();
        let outcome = AssertUnwindSafe(self.dispatch(req)).catch_unwind().await;
        let (response, route) = match outcome {
            Ok(Ok((response, route))) => (response, route),
            Ok(Err(error)) => (ApiResponse::error(&error), "-"),
            Err(_) => {
                tracing::error!(%request_id, "handler panicked");
                (ApiResponse::error(&ApiError::internal()), "-")
            }
        };
        tracing::info!(
            %request_id,
            %method,
            route,
            status = response.status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{JwtClaims, Role};

    fn router() -> Router {
        Router::new(None)
            .route(
                Method::GET,
                "/v1/things/{id}",
                Access::Public,
                |req, _| async move {
                    let id = req.path_param("id")?.to_owned();
                    Ok(ApiResponse::json(StatusCode::OK, &json!({"id": id})))
                },
            )
            .route(Method::POST, "/v1/panic", Access::Public, |_, _| async {
                panic!("boom")
            })
            .route(
                Method::GET,
                "/v1/private",
                Access::Dashboard(Roles::MANAGERS),
                |_, p| async move {
                    Ok(ApiResponse::json(
                        StatusCode::OK,
                        &json!({"tenant": p.tenant()?.as_str()}),
                    ))
                },
            )
    }

    async fn call(method: Method, path: &str) -> ApiResponse {
        router().handle(ApiRequest::new(method, path)).await
    }

    #[tokio::test]
    async fn health_answers_ok() {
        let r = call(Method::GET, "/v1/health").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json_body(), json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn path_parameters_are_captured() {
        let r = call(Method::GET, "/v1/things/abc").await;
        assert_eq!(r.json_body(), json!({"id": "abc"}));
    }

    #[tokio::test]
    async fn unknown_route_is_404_and_wrong_method_405_in_json() {
        let r = call(Method::GET, "/v1/nope").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.json_body()["error"]["code"], "NOT_FOUND");
        let r = call(Method::DELETE, "/v1/health").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.json_body()["error"]["code"], "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn a_405_names_every_method_of_the_path_in_allow() {
        let router = router().route(
            Method::DELETE,
            "/v1/things/{id}",
            Access::Public,
            |_, _| async { Ok(ApiResponse::empty(StatusCode::NO_CONTENT)) },
        );
        let r = router
            .handle(ApiRequest::new(Method::TRACE, "/v1/things/a"))
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            r.headers.get(http::header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"DELETE, GET"[..])
        );
    }

    fn user(role: Role) -> Option<JwtClaims> {
        Some(JwtClaims {
            tenant_id: crate::domain::TenantId::parse("acme").unwrap(),
            sub: "user-1".into(),
            role,
        })
    }

    #[tokio::test]
    async fn a_role_the_route_does_not_admit_is_403_before_the_handler_runs() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = ran.clone();
        let router = Router::new(None).route(
            Method::POST,
            "/v1/config",
            Access::DashboardOrApiKey(Roles::MANAGERS, Scope::LeadsWrite),
            move |_, _| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Ok(ApiResponse::empty(StatusCode::NO_CONTENT)) }
            },
        );
        let call = |role| {
            let mut req = ApiRequest::new(Method::POST, "/v1/config");
            req.claims = user(role);
            router.handle(req)
        };
        let r = call(Role::Agent).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json_body()["error"]["code"], "ROLE_REQUIRED");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(call(Role::Admin).await.status, StatusCode::NO_CONTENT);
        assert_eq!(call(Role::Owner).await.status, StatusCode::NO_CONTENT);
        let mut private = ApiRequest::new(Method::GET, "/v1/private");
        private.claims = user(Role::Agent);
        assert_eq!(
            self::router().handle(private).await.status,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json() {
        let r = call(Method::POST, "/v1/panic").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.json_body()["error"]["code"], "INTERNAL");
    }

    #[tokio::test]
    async fn dashboard_route_without_claims_is_401() {
        let r = call(Method::GET, "/v1/private").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn log_lines_of_a_request_carry_its_id_route_tenant_and_integration() {
        let capture = crate::testing::LogCapture::default();
        let sink = capture.clone();
        let subscriber = crate::telemetry::json_subscriber(
            tracing_subscriber::EnvFilter::new("info"),
            move || sink.clone(),
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = Router::new(None).route(
            Method::GET,
            "/v1/integrations/{id}",
            Access::Dashboard(Roles::ANY),
            |_, _| async {
                tracing::info!("inside the handler");
                Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
            },
        );
        let mut req = ApiRequest::new(Method::GET, "/v1/integrations/wappi_1");
        req.request_id = "req-42".into();
        req.claims = user(Role::Owner);
        assert_eq!(router.handle(req).await.status, StatusCode::NO_CONTENT);
        let lines: Vec<serde_json::Value> = capture
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert_eq!(line["request_id"], "req-42", "{line}");
            assert_eq!(line["route"], "/v1/integrations/{id}", "{line}");
            assert_eq!(line["tenant_id"], "acme", "{line}");
            assert_eq!(line["integration_id"], "wappi_1", "{line}");
        }
        assert_eq!(lines[0]["message"], "inside the handler");
        assert_eq!(lines[1]["message"], "request");
        assert_eq!(lines[1]["status"], 204);
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let mut req = ApiRequest::new(Method::GET, "/v1/things/x");
        req.body = vec![b'x'; 20].into();
        let r = router().body_limit(10).handle(req).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
