//! Idempotency records, modelled on Powertools' idempotency utility: the first caller of a
//! key *claims* it (an in-progress record with a lease), does the work, then *completes*
//! it (the record keeps a result for later callers). A concurrent caller sees the claim
//! and backs off; a caller that comes after a crash finds the lease expired and takes the
//! work over with the same `data` (so the redo writes the same items, not new ones).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::RepoError;
use crate::domain::TenantId;
use crate::ports::Clock;
use crate::ports::table::{AttrValue, Condition, Item, Key, TTL, Table, TableError};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the work; `data` is the fresh value, or the one an expired claim
    /// had chosen (a takeover).
    Acquired { data: String },
    /// Someone else is doing it right now.
    InProgress { data: String },
    /// Done before; `result` is what the first caller stored.
    Completed {
        data: String,
        result: Option<String>,
    },
}

#[derive(Clone)]
pub struct IdempotencyStore {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

fn key(tenant: &TenantId, scope: &str, id: &str) -> Key {
    Key::new(
        format!("TENANT#{tenant}"),
        format!("IDEMPOTENCY#{scope}#{id}"),
    )
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(AttrValue::as_s).unwrap_or_default()
}

fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl IdempotencyStore {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Claims `scope`/`id` of a tenant for `lease`. `fresh` is stored as the claim's data
    /// unless an expired claim already chose one.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        scope: &str,
        id: &str,
        fresh: &str,
        lease: Duration,
    ) -> Result<Claim, RepoError> {
        let key = key(tenant, scope, id);
        // Each round either decides or lost a race that changed the record; three rounds
        // cover claim → expire → takeover races.
        for _ in 0..3 {
            let now = self.clock.now();
            let lease_until = millis(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            let current = self.table.get(&key).await?;
            let (data, condition) = match &current {
                None => (fresh.to_owned(), Condition::ItemNotExists),
                Some(item) if text(item, "status") == "completed" => {
                    return Ok(Claim::Completed {
                        data: text(item, "data").to_owned(),
                        result: item
                            .get("result")
                            .and_then(AttrValue::as_s)
                            .map(str::to_owned),
                    });
                }
                Some(item) => {
                    let held = item
                        .get("lease_until")
                        .and_then(AttrValue::as_i64)
                        .unwrap_or(0);
                    let data = text(item, "data").to_owned();
                    if held > millis(now) {
                        return Ok(Claim::InProgress { data });
                    }
                    (
                        data,
                        Condition::Eq("lease_until".into(), AttrValue::n(held)),
                    )
                }
            };
            let mut item = key.to_item();
            item.insert("status".into(), AttrValue::s("in_progress"));
            item.insert("lease_until".into(), AttrValue::n(lease_until));
            item.insert("data".into(), AttrValue::s(data.clone()));
            // An abandoned claim disappears by itself after a day.
            item.insert(TTL.into(), AttrValue::n(now.as_second() + 86_400));
            match self.table.put(item, Some(condition)).await {
                Ok(()) => return Ok(Claim::Acquired { data }),
                Err(TableError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Claim::InProgress {
            data: fresh.to_owned(),
        })
    }

    /// Marks the work done, keeping `result` for `retention`.
    pub async fn complete(
        &self,
        tenant: &TenantId,
        scope: &str,
        id: &str,
        data: &str,
        result: Option<&str>,
        retention: Duration,
    ) -> Result<(), RepoError> {
        let now = self.clock.now();
        let mut item = key(tenant, scope, id).to_item();
        item.insert("status".into(), AttrValue::s("completed"));
        item.insert("data".into(), AttrValue::s(data));
        if let Some(result) = result {
            item.insert("result".into(), AttrValue::s(result));
        }
        let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        item.insert(
            TTL.into(),
            AttrValue::n(now.as_second().saturating_add(retention)),
        );
        self.table.put(item, None).await?;
        Ok(())
    }

    /// Gives a claim up after a failure: its lease ends now, so the next caller takes the
    /// work over at once, with the same data.
    pub async fn release(&self, tenant: &TenantId, scope: &str, id: &str) -> Result<(), RepoError> {
        let result = self
            .table
            .update(
                &key(tenant, scope, id),
                crate::ports::table::Update::new().set("lease_until", AttrValue::n(0)),
                Some(Condition::Eq("status".into(), AttrValue::s("in_progress"))),
            )
            .await;
        match result {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
