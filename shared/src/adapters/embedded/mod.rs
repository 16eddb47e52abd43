//! Embedded adapters: redb files and a local AES-256-GCM key, all under one data directory.
//!
//! redb rather than SQLite: it is pure Rust (no C build, nothing to link), keeps ordered byte
//! keys with serializable single-writer transactions — exactly DynamoDB's conditional-write
//! model — and survives a crash mid-write (copy-on-write B-trees, checksummed commits).

pub mod queue;
pub mod secretbox;
pub mod table;

pub use queue::{EmbeddedQueue, EmbeddedQueues, QueueSpec};
pub use secretbox::LocalSecretBox;
pub use table::EmbeddedTable;

/// Runs blocking storage work off the async executor.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    join_error: impl FnOnce(String) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(join_error(e.to_string())))
}
