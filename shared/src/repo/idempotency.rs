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
use crate::ports::table::{
    AttrValue, Condition, Item, Key, PutOutcome, SK, TTL, Table, TableError,
};

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

/// The sort-key prefix of every idempotency record.
const SORT_PREFIX: &str = "IDEMPOTENCY#";
/// The attribute naming the `claim` call that wrote a claim.
const OWNER: &str = "owner";
/// Rounds of [`IdempotencyStore::claim`] before it gives up.
const CLAIM_ROUNDS: u32 = 5;
/// Tries of an idempotent write of the store before its error is returned.
const WRITE_TRIES: u32 = 5;

/// Runs `write` up to [`WRITE_TRIES`] times while it fails retryably (with a short pause);
/// only for reads, and writes whose repetition changes nothing.
async fn retrying<T, F, Fut>(mut write: F) -> Result<T, TableError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TableError>>,
{
    let mut tries = 1;
    loop {
        match write().await {
            Err(e) if e.is_retryable() && tries < WRITE_TRIES => {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

fn key(tenant: &TenantId, scope: &str, id: &str) -> Key {
    Key::new(
        format!("TENANT#{tenant}"),
        format!("{SORT_PREFIX}{scope}#{id}"),
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
    ///
    /// One request in the common cases: the claim is written on the assumption that the
    /// record does not exist, and a failed condition answers with the record as it is
    /// ([`Table::put_or_current`]), so a duplicate of a completed event costs that one
    /// refused write and no read.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        scope: &str,
        id: &str,
        fresh: &str,
        lease: Duration,
    ) -> Result<Claim, RepoError> {
        let key = key(tenant, scope, id);
        // This call's mark on the record: when the answer to our write is lost (a timeout,
        // a retried request that then fails its condition), the next round finds the
        // claim is ours instead of someone else's.
        let owner = ulid::Ulid::new().to_string();
        let mut data = fresh.to_owned();
        let mut condition = Condition::ItemNotExists;
        let mut failure = None;
        // Each round either decides, or learnt what the record is now (a race changed it,
        // an expired claim to take over, a retryable failure); five rounds cover
        // claim → expire → takeover races and a few lost answers.
        for round in 0..CLAIM_ROUNDS {
            let now = self.clock.now();
            let lease_until = millis(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            let mut item = key.to_item();
            item.insert("status".into(), AttrValue::s("in_progress"));
            item.insert("lease_until".into(), AttrValue::n(lease_until));
            item.insert("data".into(), AttrValue::s(data.clone()));
            item.insert(OWNER.into(), AttrValue::s(owner.clone()));
            // An abandoned claim disappears by itself after a day.
            item.insert(TTL.into(), AttrValue::n(now.as_second() + 86_400));
            let current = match self.table.put_or_current(item, condition.clone()).await {
                Ok(PutOutcome::Written) => return Ok(Claim::Acquired { data }),
                Ok(PutOutcome::Refused(current)) => {
                    failure = None;
                    current
                }
                // The write may have happened: the next round finds out.
                Err(e) if e.is_retryable() => {
                    failure = Some(e);
                    tokio::time::sleep(Duration::from_millis(20 * (u64::from(round) + 1))).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match current {
                // Gone since (an expired record swept): claim it afresh.
                None => {
                    data = fresh.to_owned();
                    condition = Condition::ItemNotExists;
                }
                Some(item) if text(&item, "status") == "completed" => {
                    return Ok(Claim::Completed {
                        data: text(&item, "data").to_owned(),
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
                    let chosen = text(&item, "data").to_owned();
                    if text(&item, OWNER) == owner {
                        return Ok(Claim::Acquired { data: chosen });
                    }
                    if held > millis(now) {
                        return Ok(Claim::InProgress { data: chosen });
                    }
                    // Expired: take it over, keeping the data it chose.
                    data = chosen;
                    condition = Condition::Eq("lease_until".into(), AttrValue::n(held));
                }
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(Claim::InProgress {
                data: fresh.to_owned(),
            }),
        }
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
        // The same write again is harmless: retried in place, as a failure here leaves
        // the work claimed (redeliveries wait for the lease) although it is done.
        retrying(|| self.table.put(item.clone(), None)).await?;
        Ok(())
    }

    /// Ends the lease of every claim among `items` that is still in progress, so the next
    /// caller takes its work over at once instead of waiting the lease out. Only a process
    /// that knows no one else holds claims may call it: the dev server does at start-up
    /// with its whole table (one process owns the embedded store, so such a claim was left
    /// by its previous run, which can no longer finish it). In AWS claims of a crashed
    /// invocation simply expire with their lease. Returns how many were released.
    pub async fn release_abandoned(&self, items: &[Item]) -> Result<usize, RepoError> {
        let mut released = 0;
        for item in items {
            let in_progress = text(item, "status") == "in_progress"
                && item
                    .get(SK)
                    .and_then(AttrValue::as_s)
                    .is_some_and(|sk| sk.starts_with(SORT_PREFIX));
            let Some(held) = item.get("lease_until").and_then(AttrValue::as_i64) else {
                continue;
            };
            if !in_progress || held == 0 {
                continue;
            }
            let result = self
                .table
                .update(
                    &Key::of(item)?,
                    crate::ports::table::Update::new().set("lease_until", AttrValue::n(0)),
                    Some(Condition::Eq("lease_until".into(), AttrValue::n(held))),
                )
                .await;
            match result {
                Ok(_) => released += 1,
                Err(TableError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(released)
    }

    /// Gives a claim up after a failure: its lease ends now, so the next caller takes the
    /// work over at once, with the same data. Retried in place like [`Self::complete`]: a
    /// claim left held makes every redelivery wait for its lease.
    pub async fn release(&self, tenant: &TenantId, scope: &str, id: &str) -> Result<(), RepoError> {
        let key = key(tenant, scope, id);
        let result = retrying(|| {
            self.table.update(
                &key,
                crate::ports::table::Update::new().set("lease_until", AttrValue::n(0)),
                Some(Condition::Eq("status".into(), AttrValue::s("in_progress"))),
            )
        })
        .await;
        match result {
            Ok(_) | Err(TableError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
