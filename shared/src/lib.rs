//! The common crate every function stands on.
//!
//! * [`domain`] — ids and rules, no I/O.
//! * [`ports`] — the small traits business logic depends on (`Table`, `Queue`, `SecretBox`, `Clock`).
//! * [`adapters`] — their implementations: AWS (DynamoDB, SQS, KMS) and embedded (redb, AES-GCM key file).
//! * [`backend`] — the one place that picks adapters from [`config`].
//! * [`http`] — request/response mapping, routing, auth, the error mapper.
//! * [`worker`] — SQS consumer contract and the loop that feeds embedded queues to consumers.
//! * [`telemetry`] — tracing set-up and CloudWatch EMF metrics.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod backend;
pub mod config;
pub mod domain;
pub mod egress;
#[cfg(feature = "testing")]
pub mod faults;
pub mod http;
pub mod leads;
pub mod outbound;
pub mod ports;
pub mod providers;
#[cfg(feature = "testing")]
pub mod provision;
pub mod repo;
pub mod secret;
pub mod signing;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod worker;

pub use secret::Secret;
