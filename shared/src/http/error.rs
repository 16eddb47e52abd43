//! The one mapper from errors to `{"error":{"code","message","details"}}`.
//!
//! Client faults are 4xx with a reason. Everything else is logged with its context here and
//! answered with a generic 5xx: no internals reach a response.

use http::StatusCode;
use serde_json::{Value, json};

use crate::backend::BackendError;
use crate::domain::IdError;
use crate::ports::{QueueError, SecretBoxError, TableError};
use crate::repo::RepoError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn validation(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            message,
        )
        .with_details(details)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or invalid credentials",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the service is busy, retry later",
        )
    }

    /// A generic 500; the cause is logged by the caller, never returned.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ID", e.to_string())
    }
}

impl From<TableError> for ApiError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::ConditionFailed | TableError::TransactionCanceled { .. } => {
                Self::conflict("the resource was changed concurrently or already exists")
            }
            TableError::InvalidCursor => Self::new(
                StatusCode::BAD_REQUEST,
                "INVALID_CURSOR",
                "the cursor is not valid",
            ),
            TableError::Throttled => {
                tracing::warn!(error = %e, "table throttled");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = %other, "table failure");
                Self::internal()
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        tracing::error!(error = %e, "queue failure");
        if e.is_retryable() {
            Self::unavailable()
        } else {
            Self::internal()
        }
    }
}

impl From<SecretBoxError> for ApiError {
    fn from(e: SecretBoxError) -> Self {
        tracing::error!(error = %e, "secret box failure");
        Self::internal()
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Table(t) => t.into(),
            RepoError::Secrets(s) => s.into(),
            RepoError::Corrupt => {
                tracing::error!("a stored value could not be decoded");
                Self::internal()
            }
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Table(t) => t.into(),
            BackendError::Queue(q) => q.into(),
            BackendError::SecretBox(s) => s.into(),
            other => {
                tracing::error!(error = %other, "backend failure");
                Self::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_answer_a_generic_500_without_internals() {
        let e = ApiError::from(TableError::Unavailable(
            "dispatch failure: connection refused to 10.0.0.1".into(),
        ));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.body().to_string().contains("10.0.0.1"));
    }

    #[test]
    fn the_body_has_code_message_and_details() {
        let e = ApiError::validation("bad", json!({"fields": ["phone"]}));
        assert_eq!(
            e.body(),
            json!({"error": {"code": "VALIDATION_FAILED", "message": "bad", "details": {"fields": ["phone"]}}})
        );
    }
}
