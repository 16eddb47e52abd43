//! `Table`: a DynamoDB-shaped key/value port.
//!
//! One table, string keys `pk`/`sk`, one sparse global secondary index `gsi1`
//! (`gsi1pk`/`gsi1sk`) and a TTL attribute `ttl` (epoch seconds). Repositories are written
//! once on top of this trait; both adapters run the same conformance suite.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
pub const TTL: &str = "ttl";
/// DynamoDB's limit on the number of actions in one `TransactWriteItems`.
pub const MAX_TRANSACT_OPS: usize = 100;

/// One attribute value, with DynamoDB's types. Numbers keep their decimal text, so a
/// 64-bit id never passes through a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    S(String),
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<AttrValue>),
    M(BTreeMap<String, AttrValue>),
}

pub type Item = BTreeMap<String, AttrValue>;

impl AttrValue {
    pub fn s(value: impl Into<String>) -> Self {
        Self::S(value.into())
    }

    pub fn n(value: impl Into<i128>) -> Self {
        Self::N(value.into().to_string())
    }

    pub fn as_s(&self) -> Option<&str> {
        match self {
            Self::S(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::N(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Converts JSON into an attribute value. Integers keep their exact digits.
    pub fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::N(n.to_string()),
            Value::String(s) => Self::S(s.clone()),
            Value::Array(items) => Self::L(items.iter().map(Self::from_json).collect()),
            Value::Object(map) => Self::M(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts back to JSON: integers as integers (i64/u64), other numbers as floats.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::N(n) => n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<u64>().map(Value::from))
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(n.clone())),
            Self::S(s) => Value::String(s.clone()),
            Self::B(bytes) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Self::L(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::M(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// DynamoDB's ordering for condition comparisons: numbers numerically, strings and
    /// binaries by bytes; values of different types are not comparable.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::S(a), Self::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Self::B(a), Self::B(b)) => Some(a.cmp(b)),
            (Self::N(a), Self::N(b)) => match (a.parse::<i128>(), b.parse::<i128>()) {
                (Ok(a), Ok(b)) => Some(a.cmp(&b)),
                _ => a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?),
            },
            _ => None,
        }
    }
}

/// Primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// Reads the key attributes of an item.
    pub fn of(item: &Item) -> Result<Self, TableError> {
        let get = |name: &str| {
            item.get(name)
                .and_then(AttrValue::as_s)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    TableError::Validation(format!(
                        "item needs a non-empty string attribute `{name}`"
                    ))
                })
        };
        Ok(Self::new(get(PK)?, get(SK)?))
    }

    pub fn to_item(&self) -> Item {
        let mut item = Item::new();
        item.insert(PK.into(), AttrValue::s(&self.pk));
        item.insert(SK.into(), AttrValue::s(&self.sk));
        item
    }
}

/// A condition on the current item, evaluated atomically with the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// No item with this key exists (`attribute_not_exists(pk)`).
    ItemNotExists,
    /// An item with this key exists (`attribute_exists(pk)`).
    ItemExists,
    AttrExists(String),
    AttrNotExists(String),
    Eq(String, AttrValue),
    Ne(String, AttrValue),
    Lt(String, AttrValue),
    Le(String, AttrValue),
    Gt(String, AttrValue),
    Ge(String, AttrValue),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    /// Evaluates the condition against the current item (`None` = no item), with
    /// DynamoDB's semantics: a comparison against a missing attribute is false, except `<>`.
    pub fn evaluate(&self, current: Option<&Item>) -> bool {
        let attr = |name: &str| current.and_then(|item| item.get(name));
        let cmp = |name: &str, value: &AttrValue, ok: fn(Ordering) -> bool| {
            attr(name).and_then(|a| a.compare(value)).is_some_and(ok)
        };
        match self {
            Self::ItemNotExists => current.is_none(),
            Self::ItemExists => current.is_some(),
            Self::AttrExists(name) => attr(name).is_some(),
            Self::AttrNotExists(name) => attr(name).is_none(),
            Self::Eq(name, value) => attr(name) == Some(value),
            Self::Ne(name, value) => attr(name) != Some(value),
            Self::Lt(name, value) => cmp(name, value, Ordering::is_lt),
            Self::Le(name, value) => cmp(name, value, Ordering::is_le),
            Self::Gt(name, value) => cmp(name, value, Ordering::is_gt),
            Self::Ge(name, value) => cmp(name, value, Ordering::is_ge),
            Self::And(all) => all.iter().all(|c| c.evaluate(current)),
            Self::Or(any) => any.iter().any(|c| c.evaluate(current)),
        }
    }
}

/// An update of top-level attributes. Applied to a missing item it creates it (upsert),
/// as DynamoDB's `UpdateItem` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, AttrValue)>,
    pub remove: Vec<String>,
    /// Atomic numeric increments (`ADD name :n`); a missing attribute counts as 0.
    pub add: Vec<(String, i64)>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: impl Into<String>, value: AttrValue) -> Self {
        self.set.push((name.into(), value));
        self
    }

    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into());
        self
    }

    pub fn add(mut self, name: impl Into<String>, by: i64) -> Self {
        self.add.push((name.into(), by));
        self
    }

    /// Rejects what DynamoDB rejects: an empty update, a key attribute, a name used twice.
    pub fn validate(&self) -> Result<(), TableError> {
        let names: Vec<&str> = self
            .set
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.remove.iter().map(String::as_str))
            .chain(self.add.iter().map(|(n, _)| n.as_str()))
            .collect();
        if names.is_empty() {
            return Err(TableError::Validation("update has no actions".into()));
        }
        for (i, name) in names.iter().enumerate() {
            if *name == PK || *name == SK {
                return Err(TableError::Validation(format!(
                    "key attribute `{name}` cannot be updated"
                )));
            }
            if name.is_empty() {
                return Err(TableError::Validation("empty attribute name".into()));
            }
            if names[..i].contains(name) {
                return Err(TableError::Validation(format!(
                    "attribute `{name}` appears twice in one update"
                )));
            }
        }
        for (name, value) in &self.set {
            validate_attr(name, value)?;
        }
        Ok(())
    }

    /// Applies the update to an item (the embedded adapter's implementation of `UpdateItem`).
    pub fn apply(&self, key: &Key, current: Option<Item>) -> Result<Item, TableError> {
        let mut item = current.unwrap_or_else(|| key.to_item());
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        for name in &self.remove {
            item.remove(name);
        }
        for (name, by) in &self.add {
            let current = match item.get(name) {
                None => 0,
                Some(AttrValue::N(n)) => n.parse::<i128>().map_err(|_| {
                    TableError::Validation(format!("attribute `{name}` is not an integer"))
                })?,
                Some(_) => {
                    return Err(TableError::Validation(format!(
                        "ADD needs a number in `{name}`"
                    )));
                }
            };
            item.insert(name.clone(), AttrValue::n(current + i128::from(*by)));
        }
        Ok(item)
    }
}

/// Which key a query runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Primary,
    Gsi1,
}

impl Index {
    pub fn key_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Primary => (PK, SK),
            Self::Gsi1 => (GSI1_PK, GSI1_SK),
        }
    }
}

/// Sort-key condition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Any,
    Eq(String),
    BeginsWith(String),
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

impl SortKey {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(v) => sk == v,
            Self::BeginsWith(p) => sk.starts_with(p.as_str()),
            Self::Between(lo, hi) => sk >= lo.as_str() && sk <= hi.as_str(),
            Self::Lt(v) => sk < v.as_str(),
            Self::Le(v) => sk <= v.as_str(),
            Self::Gt(v) => sk > v.as_str(),
            Self::Ge(v) => sk >= v.as_str(),
        }
    }
}

/// Opaque paging cursor: the last evaluated key, base64url-encoded JSON. Both adapters
/// produce the same encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    pub fn encode(key: &BTreeMap<String, String>) -> Self {
        let json = serde_json::to_vec(key).unwrap_or_default();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(&self) -> Result<BTreeMap<String, String>, TableError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| TableError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| TableError::InvalidCursor)
    }

    pub fn parse(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sort: SortKey,
    /// Ascending sort-key order when true.
    pub forward: bool,
    pub limit: Option<u32>,
    pub cursor: Option<Cursor>,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Primary,
            pk: pk.into(),
            sort: SortKey::Any,
            forward: true,
            limit: None,
            cursor: None,
        }
    }

    pub fn gsi1(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Gsi1,
            ..Self::partition(pk)
        }
    }

    pub fn sort(mut self, sort: SortKey) -> Self {
        self.sort = sort;
        self
    }

    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    pub fn validate(&self) -> Result<(), TableError> {
        if self.pk.is_empty() {
            return Err(TableError::Validation("query needs a partition key".into()));
        }
        if self.limit == Some(0) {
            return Err(TableError::Validation("limit must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

/// Why one action of a cancelled transaction failed (same order as the actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    None,
    ConditionFailed,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransactOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    Check {
        key: Key,
        condition: Condition,
    },
}

impl TransactOp {
    pub fn key(&self) -> Result<Key, TableError> {
        match self {
            Self::Put { item, .. } => Key::of(item),
            Self::Update { key, .. } | Self::Delete { key, .. } | Self::Check { key, .. } => {
                Ok(key.clone())
            }
        }
    }

    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Self::Put { condition, .. }
            | Self::Update { condition, .. }
            | Self::Delete { condition, .. } => condition.as_ref(),
            Self::Check { condition, .. } => Some(condition),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    #[error("the condition of the write was not met")]
    ConditionFailed,
    #[error("the transaction was cancelled")]
    TransactionCanceled { reasons: Vec<CancelReason> },
    #[error("invalid request to the table: {0}")]
    Validation(String),
    #[error("the paging cursor is not valid")]
    InvalidCursor,
    #[error("the table is throttling requests")]
    Throttled,
    #[error("the table is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored item is corrupt: {0}")]
    Corrupt(String),
}

impl TableError {
    /// Worth retrying later (SQS consumers leave the message for redelivery).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable(_))
    }
}

fn validate_attr(name: &str, value: &AttrValue) -> Result<(), TableError> {
    let must_be_string = [PK, SK, GSI1_PK, GSI1_SK].contains(&name);
    if name == TTL && !matches!(value, AttrValue::N(_)) {
        return Err(TableError::Validation(format!(
            "`{TTL}` must be a number of epoch seconds"
        )));
    }
    match value {
        AttrValue::S(s) if must_be_string && s.is_empty() => Err(TableError::Validation(format!(
            "key attribute `{name}` must not be empty"
        ))),
        AttrValue::S(_) => Ok(()),
        _ if must_be_string => Err(TableError::Validation(format!(
            "key attribute `{name}` must be a string"
        ))),
        AttrValue::N(n) if n.parse::<f64>().is_err() => Err(TableError::Validation(format!(
            "attribute `{name}` is not a number"
        ))),
        _ => Ok(()),
    }
}

/// Rejects an item DynamoDB would reject: missing/empty/non-string keys, bad index keys,
/// a non-numeric TTL.
pub fn validate_item(item: &Item) -> Result<Key, TableError> {
    let key = Key::of(item)?;
    for (name, value) in item {
        validate_attr(name, value)?;
    }
    Ok(key)
}

/// Rejects a transaction DynamoDB would reject: empty, too long, or touching one item twice.
pub fn validate_transaction(ops: &[TransactOp]) -> Result<Vec<Key>, TableError> {
    if ops.is_empty() || ops.len() > MAX_TRANSACT_OPS {
        return Err(TableError::Validation(format!(
            "a transaction has 1..={MAX_TRANSACT_OPS} actions, got {}",
            ops.len()
        )));
    }
    let mut keys = Vec::with_capacity(ops.len());
    for op in ops {
        let key = match op {
            TransactOp::Put { item, .. } => validate_item(item)?,
            TransactOp::Update { key, update, .. } => {
                update.validate()?;
                key.clone()
            }
            other => other.key()?,
        };
        if keys.contains(&key) {
            return Err(TableError::Validation(
                "a transaction cannot include two actions on one item".into(),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// What [`Table::put_or_current`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The condition held; the item is written.
    Written,
    /// The condition failed; nothing was written. The item as it is (`None`: there is none).
    Refused(Option<Item>),
}

/// The DynamoDB-shaped key/value store.
#[async_trait]
pub trait Table: Send + Sync {
    /// Strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;
    /// Writes the whole item if the condition holds on the current one.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError>;
    /// Writes the whole item if the condition holds; when it does not, answers with the
    /// current item instead of an error. The adapters do it in one request (DynamoDB:
    /// `ReturnValuesOnConditionCheckFailure = ALL_OLD`); this default, for a table that
    /// has nothing better, takes two (a put, then a read when the condition failed).
    async fn put_or_current(
        &self,
        item: Item,
        condition: Condition,
    ) -> Result<PutOutcome, TableError> {
        let key = Key::of(&item)?;
        match self.put(item, Some(condition)).await {
            Ok(()) => Ok(PutOutcome::Written),
            Err(TableError::ConditionFailed) => Ok(PutOutcome::Refused(self.get(&key).await?)),
            Err(e) => Err(e),
        }
    }
    /// Updates (or creates) an item if the condition holds; returns the item as written.
    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, TableError>;
    /// Deletes an item if the condition holds; returns the deleted item, if there was one.
    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError>;
    /// Items of one partition of the base table or of `gsi1`, in sort-key order, paged.
    async fn query(&self, query: Query) -> Result<Page, TableError>;
    /// All actions or none.
    async fn transact_write(&self, ops: Vec<TransactOp>) -> Result<(), TableError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_integers_survive_json_round_trip_without_floats() {
        let json = serde_json::json!({"seq": 18446744073709551615u64, "mid": -9007199254740993i64});
        let attr = AttrValue::from_json(&json);
        assert_eq!(attr.to_json(), json);
    }

    #[test]
    fn number_comparison_is_numeric_not_lexicographic() {
        assert_eq!(
            AttrValue::n(9).compare(&AttrValue::n(10)),
            Some(Ordering::Less)
        );
        assert_eq!(AttrValue::n(9).compare(&AttrValue::s("10")), None);
    }

    #[test]
    fn updating_a_key_attribute_is_rejected() {
        let e = Update::new().set(PK, AttrValue::s("x")).validate();
        assert!(matches!(e, Err(TableError::Validation(_))));
    }

    #[test]
    fn a_bad_cursor_is_a_typed_error() {
        assert_eq!(
            Cursor::parse("not base64!").decode(),
            Err(TableError::InvalidCursor)
        );
    }
}
