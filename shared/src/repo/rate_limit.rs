//! Fixed-window counters in the table, shared by every instance of a function: one item
//! per key and window, incremented under a condition, gone by TTL after the window.

use std::sync::Arc;

use super::RepoError;
use crate::domain::TenantId;
use crate::ports::Clock;
use crate::ports::table::{AttrValue, Condition, Key, TTL, Table, TableError, Update};

#[derive(Clone)]
pub struct RateLimiter {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Counts one hit of `key` in the current window of `window_secs`. `Ok(None)` when it
    /// is within `limit`, `Ok(Some(seconds))` to wait when the window is full.
    pub async fn hit(
        &self,
        tenant: &TenantId,
        key: &str,
        limit: u32,
        window_secs: i64,
    ) -> Result<Option<i64>, RepoError> {
        let now = self.clock.now().as_second();
        let window = now.div_euclid(window_secs.max(1));
        let end = (window + 1) * window_secs.max(1);
        let item_key = Key::new(format!("TENANT#{tenant}"), format!("RATE#{key}#{window}"));
        let result = self
            .table
            .update(
                &item_key,
                Update::new()
                    .add("hits", 1)
                    .set(TTL, AttrValue::n(end + 60)),
                Some(Condition::Or(vec![
                    Condition::AttrNotExists("hits".into()),
                    Condition::Lt("hits".into(), AttrValue::n(i128::from(limit))),
                ])),
            )
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(TableError::ConditionFailed) => Ok(Some((end - now).max(1))),
            Err(e) => Err(e.into()),
        }
    }
}
