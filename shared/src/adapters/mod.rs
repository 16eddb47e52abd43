//! Implementations of the ports: AWS on the real SDKs, embedded for the dev server and
//! fast tests. [`crate::backend`] picks one set.

pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod kms;
pub mod sqs;
