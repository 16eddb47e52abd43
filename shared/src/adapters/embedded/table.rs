//! `Table` on a redb file.
//!
//! Items live in `items` under the key `pk \0 sk` (byte order = DynamoDB's sort-key order);
//! the sparse index `gsi1` maps `gsi1pk \0 gsi1sk \0 pk \0 sk` to nothing. Every write is one
//! redb write transaction, and redb runs one writer at a time, so a condition is evaluated
//! and its write applied atomically.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::blocking;
use crate::ports::table::{
    self, AttrValue, CancelReason, Condition, Cursor, GSI1_PK, GSI1_SK, Index, Item, Key, Page,
    PutOutcome, Query, TTL, Table, TableError, TransactOp, Update,
};

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<&str, &[u8]> = TableDefinition::new("gsi1");
const SEP: char = '\0';

#[derive(Clone)]
pub struct EmbeddedTable {
    db: Arc<Database>,
}

fn unavailable(e: impl std::fmt::Display) -> TableError {
    TableError::Unavailable(e.to_string())
}

fn check_key_text(value: &str) -> Result<(), TableError> {
    if value.contains(SEP) {
        return Err(TableError::Validation(
            "key values must not contain NUL characters".into(),
        ));
    }
    Ok(())
}

fn base_key(key: &Key) -> Result<String, TableError> {
    check_key_text(&key.pk)?;
    check_key_text(&key.sk)?;
    Ok(format!("{}{SEP}{}", key.pk, key.sk))
}

fn gsi_key(item: &Item, key: &Key) -> Result<Option<String>, TableError> {
    let (Some(gpk), Some(gsk)) = (
        item.get(GSI1_PK).and_then(AttrValue::as_s),
        item.get(GSI1_SK).and_then(AttrValue::as_s),
    ) else {
        return Ok(None);
    };
    check_key_text(gpk)?;
    check_key_text(gsk)?;
    Ok(Some(format!("{gpk}{SEP}{gsk}{SEP}{}", base_key(key)?)))
}

fn decode_item(bytes: &[u8]) -> Result<Item, TableError> {
    serde_json::from_slice(bytes).map_err(|e| TableError::Corrupt(e.to_string()))
}

fn encode_item(item: &Item) -> Result<Vec<u8>, TableError> {
    serde_json::to_vec(item).map_err(|e| TableError::Corrupt(e.to_string()))
}

/// Item-level operations inside one write transaction, keeping `gsi1` in step.
struct Tx<'a>(&'a WriteTransaction);

impl Tx<'_> {
    fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let items = self.0.open_table(ITEMS).map_err(unavailable)?;
        let found = items.get(base_key(key)?.as_str()).map_err(unavailable)?;
        found.map(|v| decode_item(v.value())).transpose()
    }

    fn remove(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let old = self.get(key)?;
        if let Some(old) = &old {
            let mut items = self.0.open_table(ITEMS).map_err(unavailable)?;
            items.remove(base_key(key)?.as_str()).map_err(unavailable)?;
            if let Some(g) = gsi_key(old, key)? {
                let mut gsi = self.0.open_table(GSI1).map_err(unavailable)?;
                gsi.remove(g.as_str()).map_err(unavailable)?;
            }
        }
        Ok(old)
    }

    fn put(&self, item: &Item) -> Result<(), TableError> {
        let key = table::validate_item(item)?;
        self.remove(&key)?;
        let mut items = self.0.open_table(ITEMS).map_err(unavailable)?;
        items
            .insert(base_key(&key)?.as_str(), encode_item(item)?.as_slice())
            .map_err(unavailable)?;
        if let Some(g) = gsi_key(item, &key)? {
            let mut gsi = self.0.open_table(GSI1).map_err(unavailable)?;
            gsi.insert(g.as_str(), [].as_slice()).map_err(unavailable)?;
        }
        Ok(())
    }

    fn check(&self, key: &Key, condition: Option<&Condition>) -> Result<Option<Item>, TableError> {
        let current = self.get(key)?;
        match condition {
            Some(c) if !c.evaluate(current.as_ref()) => Err(TableError::ConditionFailed),
            _ => Ok(current),
        }
    }

    fn update(
        &self,
        key: &Key,
        update: &Update,
        current: Option<Item>,
    ) -> Result<Item, TableError> {
        let item = update.apply(key, current)?;
        self.put(&item)?;
        Ok(item)
    }
}

impl EmbeddedTable {
    /// Opens (or creates) the table file.
    pub fn open(path: &Path) -> Result<Self, TableError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ITEMS).map_err(unavailable)?;
        txn.open_table(GSI1).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let db = self.db.clone();
        blocking(
            move || {
                let txn = db.begin_write().map_err(unavailable)?;
                let out = f(&Tx(&txn))?;
                txn.commit().map_err(unavailable)?;
                Ok(out)
            },
            TableError::Unavailable,
        )
        .await
    }

    /// Deletes items whose `ttl` (epoch seconds) is before `now_secs`, as DynamoDB's TTL
    /// sweeper does in the background. Returns how many were removed.
    pub async fn purge_expired(&self, now_secs: i64) -> Result<usize, TableError> {
        self.write(move |tx| {
            let expired: Vec<Key> = {
                let items = tx.0.open_table(ITEMS).map_err(unavailable)?;
                let mut expired = Vec::new();
                for entry in items.iter().map_err(unavailable)? {
                    let (_, v) = entry.map_err(unavailable)?;
                    let item = decode_item(v.value())?;
                    if item
                        .get(TTL)
                        .and_then(AttrValue::as_i64)
                        .is_some_and(|t| t < now_secs)
                    {
                        expired.push(Key::of(&item)?);
                    }
                }
                expired
            };
            for key in &expired {
                tx.remove(key)?;
            }
            Ok(expired.len())
        })
        .await
    }

    /// Every item in the table (diagnostics and tests that must see the whole table).
    pub async fn scan_all(&self) -> Result<Vec<Item>, TableError> {
        let db = self.db.clone();
        blocking(
            move || {
                let txn = db.begin_read().map_err(unavailable)?;
                let items = txn.open_table(ITEMS).map_err(unavailable)?;
                let mut out = Vec::new();
                for entry in items.iter().map_err(unavailable)? {
                    let (_, v) = entry.map_err(unavailable)?;
                    out.push(decode_item(v.value())?);
                }
                Ok(out)
            },
            TableError::Unavailable,
        )
        .await
    }

    fn query_blocking(db: &Database, query: &Query) -> Result<Page, TableError> {
        query.validate()?;
        check_key_text(&query.pk)?;
        let txn = db.begin_read().map_err(unavailable)?;
        let items = txn.open_table(ITEMS).map_err(unavailable)?;
        let index = match query.index {
            Index::Primary => None,
            Index::Gsi1 => Some(txn.open_table(GSI1).map_err(unavailable)?),
        };
        let start = format!("{}{SEP}", query.pk);
        let end = format!("{}\u{1}", query.pk);
        let cursor_key = query
            .cursor
            .as_ref()
            .map(|c| cursor_to_raw(query.index, &query.pk, c))
            .transpose()?;
        let (lower, upper) = match (&cursor_key, query.forward) {
            (Some(c), true) => (Bound::Excluded(c.as_str()), Bound::Excluded(end.as_str())),
            (Some(c), false) => (Bound::Included(start.as_str()), Bound::Excluded(c.as_str())),
            (None, _) => (
                Bound::Included(start.as_str()),
                Bound::Excluded(end.as_str()),
            ),
        };
        let source = index.as_ref().unwrap_or(&items);
        let range = source.range::<&str>((lower, upper)).map_err(unavailable)?;
        let entries: Box<dyn Iterator<Item = _>> = if query.forward {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let mut page = Vec::new();
        let mut more = false;
        for entry in entries {
            let (k, v) = entry.map_err(unavailable)?;
            let raw = k.value().to_owned();
            let rest = &raw[start.len()..];
            let sk = rest.split(SEP).next().unwrap_or_default();
            if !query.sort.matches(sk) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            let item = match query.index {
                Index::Primary => decode_item(v.value())?,
                Index::Gsi1 => {
                    let base = &rest[sk.len() + 1..];
                    let found = items.get(base).map_err(unavailable)?.ok_or_else(|| {
                        TableError::Corrupt(format!("index entry without item: {base:?}"))
                    })?;
                    decode_item(found.value())?
                }
            };
            page.push(item);
        }
        let next = match (more, page.last()) {
            (true, Some(last)) => Some(cursor_of(query.index, last)?),
            _ => None,
        };
        Ok(Page { items: page, next })
    }
}

fn cursor_of(index: Index, item: &Item) -> Result<Cursor, TableError> {
    let key = Key::of(item)?;
    let mut map = BTreeMap::from([
        (table::PK.to_owned(), key.pk),
        (table::SK.to_owned(), key.sk),
    ]);
    if index == Index::Gsi1 {
        for name in [GSI1_PK, GSI1_SK] {
            let value = item.get(name).and_then(AttrValue::as_s).unwrap_or_default();
            map.insert(name.to_owned(), value.to_owned());
        }
    }
    Ok(Cursor::encode(&map))
}

fn cursor_to_raw(index: Index, pk: &str, cursor: &Cursor) -> Result<String, TableError> {
    let map = cursor.decode()?;
    let field = |name: &str| map.get(name).cloned().ok_or(TableError::InvalidCursor);
    let base = Key::new(field(table::PK)?, field(table::SK)?);
    let raw = match index {
        Index::Primary => base_key(&base)?,
        Index::Gsi1 => {
            let gsk = field(GSI1_SK)?;
            check_key_text(&gsk)?;
            if field(GSI1_PK)? != pk {
                return Err(TableError::InvalidCursor);
            }
            return Ok(format!("{pk}{SEP}{gsk}{SEP}{}", base_key(&base)?));
        }
    };
    if base.pk != pk {
        return Err(TableError::InvalidCursor);
    }
    Ok(raw)
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let db = self.db.clone();
        let raw = base_key(key)?;
        blocking(
            move || {
                let txn = db.begin_read().map_err(unavailable)?;
                let items = txn.open_table(ITEMS).map_err(unavailable)?;
                let found = items.get(raw.as_str()).map_err(unavailable)?;
                found.map(|v| decode_item(v.value())).transpose()
            },
            TableError::Unavailable,
        )
        .await
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let key = table::validate_item(&item)?;
        self.write(move |tx| {
            tx.check(&key, condition.as_ref())?;
            tx.put(&item)
        })
        .await
    }

    async fn put_or_current(
        &self,
        item: Item,
        condition: Condition,
    ) -> Result<PutOutcome, TableError> {
        let key = table::validate_item(&item)?;
        self.write(move |tx| {
            let current = tx.get(&key)?;
            if !condition.evaluate(current.as_ref()) {
                return Ok(PutOutcome::Refused(current));
            }
            tx.put(&item)?;
            Ok(PutOutcome::Written)
        })
        .await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        update.validate()?;
        base_key(key)?;
        let key = key.clone();
        self.write(move |tx| {
            let current = tx.check(&key, condition.as_ref())?;
            tx.update(&key, &update, current)
        })
        .await
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        base_key(key)?;
        let key = key.clone();
        self.write(move |tx| {
            tx.check(&key, condition.as_ref())?;
            tx.remove(&key)
        })
        .await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let db = self.db.clone();
        blocking(
            move || Self::query_blocking(&db, &query),
            TableError::Unavailable,
        )
        .await
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> Result<(), TableError> {
        let keys = table::validate_transaction(&ops)?;
        for key in &keys {
            base_key(key)?;
        }
        self.write(move |tx| {
            let mut currents = Vec::with_capacity(ops.len());
            let mut reasons = Vec::with_capacity(ops.len());
            for (op, key) in ops.iter().zip(&keys) {
                match tx.check(key, op.condition()) {
                    Ok(current) => {
                        currents.push(current);
                        reasons.push(CancelReason::None);
                    }
                    Err(TableError::ConditionFailed) => {
                        currents.push(None);
                        reasons.push(CancelReason::ConditionFailed);
                    }
                    Err(other) => return Err(other),
                }
            }
            if reasons.iter().any(|r| *r != CancelReason::None) {
                return Err(TableError::TransactionCanceled { reasons });
            }
            for ((op, key), current) in ops.iter().zip(&keys).zip(currents) {
                match op {
                    TransactOp::Put { item, .. } => tx.put(item)?,
                    TransactOp::Update { update, .. } => {
                        tx.update(key, update, current)?;
                    }
                    TransactOp::Delete { .. } => {
                        tx.remove(key)?;
                    }
                    TransactOp::Check { .. } => {}
                }
            }
            Ok(())
        })
        .await
    }
}
