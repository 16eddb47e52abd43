//! Process-wide memories of table reads that a warm process may reuse for a bounded time.
//!
//! Entries are kept per table (by the address of its `Arc`, with a weak reference so a
//! table dropped since — and a new one at the same address — never sees them): tests run
//! many tables in one process, with the same ids.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::ports::Table;

struct Entry<V> {
    table: Weak<dyn Table>,
    at: Instant,
    value: V,
}

/// Values by key and table, each for at most `ttl`; a full memory is emptied and refilled
/// (only values found in the table go in, so its size follows real data, not requests).
pub struct TableMemo<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<(usize, K), Entry<V>>>,
}

fn address(table: &Arc<dyn Table>) -> usize {
    Arc::as_ptr(table).cast::<()>() as usize
}

impl<K: Eq + Hash + Clone, V: Clone> TableMemo<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<(usize, K), Entry<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value kept for `key` of this table, if it is younger than the ttl.
    pub fn get(&self, table: &Arc<dyn Table>, key: &K) -> Option<V> {
        self.entries()
            .get(&(address(table), key.clone()))
            .filter(|e| e.table.strong_count() > 0 && e.at.elapsed() < self.ttl)
            .map(|e| e.value.clone())
    }

    pub fn put(&self, table: &Arc<dyn Table>, key: K, value: V) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(
            (address(table), key),
            Entry {
                table: Arc::downgrade(table),
                at: Instant::now(),
                value,
            },
        );
    }

    /// Keeps only the entries (of every table) for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries().retain(|(_, key), e| keep(key, &e.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<dyn Table> {
        let dir = tempfile::tempdir().unwrap();
        let table =
            crate::adapters::embedded::EmbeddedTable::open(&dir.path().join("t.redb")).unwrap();
        Arc::new(table)
    }

    #[test]
    fn values_are_kept_per_table_and_die_with_it() {
        let memo = TableMemo::new(Duration::from_secs(60), 10);
        let (a, b) = (table(), table());
        memo.put(&a, "id", 1);
        assert_eq!(memo.get(&a, &"id"), Some(1));
        assert_eq!(
            memo.get(&b, &"id"),
            None,
            "another table's value is not this one's"
        );
        let weak = Arc::downgrade(&a);
        drop(a);
        assert_eq!(weak.strong_count(), 0);
        memo.retain(|_, _| true);
        assert!(
            memo.entries().values().all(|e| e.table.strong_count() == 0),
            "a dropped table's entry is dead"
        );
    }

    #[test]
    fn values_expire_and_a_full_memory_starts_over() {
        let memo = TableMemo::new(Duration::ZERO, 2);
        let t = table();
        memo.put(&t, 1, "one");
        assert_eq!(memo.get(&t, &1), None, "older than the ttl");
        let memo = TableMemo::new(Duration::from_secs(60), 2);
        memo.put(&t, 1, "one");
        memo.put(&t, 2, "two");
        memo.put(&t, 3, "three");
        assert_eq!(memo.get(&t, &1), None);
        assert_eq!(memo.get(&t, &3), Some("three"));
        memo.retain(|k, _| *k != 3);
        assert_eq!(memo.get(&t, &3), None);
    }
}
