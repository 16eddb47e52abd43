//! One request/response shape shared by Lambda (API Gateway) and the dev server.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::JwtClaims;
use super::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Verified JWT claims: from the API Gateway JWT authorizer in AWS, from the dev
    /// server's HS256 check locally. `None` when the caller sent no valid token.
    pub claims: Option<JwtClaims>,
    pub request_id: String,
    /// When the Lambda invocation times out (ms since the epoch); `None` off Lambda.
    pub deadline_ms: Option<u64>,
    /// Filled by the router from `{name}` segments of the matched route.
    pub path_params: HashMap<String, String>,
}

impl ApiRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            ..Self::default()
        }
    }

    /// Builds a request from HTTP parts; `claims` are already verified by the caller
    /// (the API Gateway authorizer, or the dev server's HS256 check).
    pub fn from_parts(
        parts: http::request::Parts,
        body: Bytes,
        claims: Option<JwtClaims>,
        request_id: String,
    ) -> Self {
        Self {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(Self::parse_query).unwrap_or_default(),
            headers: parts.headers,
            body,
            claims,
            request_id,
            deadline_ms: None,
            path_params: HashMap::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn path_param(&self, name: &str) -> Result<&str, ApiError> {
        self.path_params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("missing path parameter {name}")))
    }

    /// Parses the JSON body; a malformed one is a 400 naming what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                "the request body is not valid JSON for this route",
            )
            .with_details(serde_json::json!({"reason": e.to_string()}))
        })
    }

    /// Splits a raw query string (`a=1&b=x%20y`) into a map (first value wins).
    pub fn parse_query(raw: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.entry(percent_decode(k))
                .or_insert_with(|| percent_decode(v));
        }
        out
    }
}

fn percent_decode(raw: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' => bytes
                .get(i + 1)
                .and_then(|h| hex(*h))
                .zip(bytes.get(i + 2).and_then(|l| hex(*l)))
                .map(|(h, l)| (h * 16 + l, 3)),
            _ => None,
        };
        let (byte, len) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += len;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::raw(status, "application/json", body),
            Err(e) => {
                tracing::error!(error = %e, "response serialization failed");
                Self::error(&ApiError::internal())
            }
        }
    }

    pub fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn error(error: &ApiError) -> Self {
        Self::json(error.status, &error.body())
    }

    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl From<ApiError> for ApiResponse {
    fn from(e: ApiError) -> Self {
        Self::error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = ApiRequest::parse_query("phone=%2B7%20999&channel=max&channel=tg&bad=%zz&e");
        assert_eq!(q.get("phone").map(String::as_str), Some("+7 999"));
        assert_eq!(q.get("channel").map(String::as_str), Some("max"));
        assert_eq!(q.get("bad").map(String::as_str), Some("%zz"));
        assert_eq!(q.get("e").map(String::as_str), Some(""));
    }

    #[test]
    fn a_truncated_or_non_ascii_escape_is_kept_verbatim() {
        let q = ApiRequest::parse_query("a=%4&b=%\u{444}\u{444}");
        assert_eq!(q.get("a").map(String::as_str), Some("%4"));
        assert_eq!(q.get("b").map(String::as_str), Some("%\u{444}\u{444}"));
    }
}
