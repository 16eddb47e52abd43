//! Domain types and rules. No I/O lives here.

pub mod ids;
pub mod inbox;
pub mod lead;
pub mod phone;
pub mod prompt;
pub mod registry;
pub mod text;

pub use ids::{ClientId, DialogId, IdError, IntegrationId, LeadId, MessageId, TenantId};
