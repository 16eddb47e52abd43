//! Repositories, written once on top of the [`Table`](crate::ports::Table) port.

pub mod api_keys;
pub mod bot_webhook;
pub mod idempotency;
pub mod inbox;
pub mod integration_logs;
pub mod integrations;
pub mod leads;
pub mod memo;
pub mod rate_limit;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::SecretBoxError;
use crate::ports::table::{AttrValue, GSI1_PK, GSI1_SK, Item, Key, PK, SK, TTL, TableError};

/// What a repository call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Secrets(#[from] SecretBoxError),
    #[error("a stored value could not be decoded")]
    Corrupt,
}

const RESERVED: [&str; 5] = [PK, SK, GSI1_PK, GSI1_SK, TTL];

/// Stores an entity's fields as top-level attributes next to its key.
pub fn to_item<T: Serialize>(key: &Key, value: &T) -> Result<Item, TableError> {
    let json = serde_json::to_value(value).map_err(|e| TableError::Validation(e.to_string()))?;
    let serde_json::Value::Object(fields) = json else {
        return Err(TableError::Validation(
            "an entity must serialize to an object".into(),
        ));
    };
    let mut item = key.to_item();
    for (name, value) in &fields {
        if RESERVED.contains(&name.as_str()) {
            return Err(TableError::Validation(format!(
                "entity field `{name}` collides with a key attribute"
            )));
        }
        item.insert(name.clone(), AttrValue::from_json(value));
    }
    Ok(item)
}

/// Reads an entity back from an item, ignoring key, index and TTL attributes.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, TableError> {
    let fields: serde_json::Map<String, serde_json::Value> = item
        .iter()
        .filter(|(name, _)| !RESERVED.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| TableError::Corrupt(e.to_string()))
}

/// Reads a single-item document (profile, catalog, prompt) of a tenant.
pub async fn get_document<T: DeserializeOwned>(
    table: &dyn crate::ports::Table,
    key: &Key,
) -> Result<Option<T>, TableError> {
    table.get(key).await?.as_ref().map(from_item).transpose()
}

/// Writes a single-item document, replacing the previous one.
pub async fn put_document<T: Serialize>(
    table: &dyn crate::ports::Table,
    key: &Key,
    value: &T,
) -> Result<(), TableError> {
    table.put(to_item(key, value)?, None).await
}

/// Every item a query finds, following the cursor through all pages.
pub async fn query_all(
    table: &dyn crate::ports::Table,
    query: crate::ports::table::Query,
) -> Result<Vec<Item>, TableError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = table.query(query.clone().after(cursor)).await?;
        out.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}
