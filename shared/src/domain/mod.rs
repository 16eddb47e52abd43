//! Domain types and rules. No I/O lives here.

pub mod ids;

pub use ids::{ClientId, DialogId, IdError, IntegrationId, MessageId, TenantId};
