//! HTTP: one request/response shape for Lambda and the dev server, the route table,
//! authentication, and the one error mapper.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod lambda;
pub mod oidc;
pub mod request;
pub mod router;

pub use auth::{Authenticator, JwtClaims, Principal, Role, Roles, Scope};
pub use error::ApiError;
pub use oidc::{OidcError, OidcVerifier};
pub use request::{ApiRequest, ApiResponse};
pub use router::{Access, Router};
