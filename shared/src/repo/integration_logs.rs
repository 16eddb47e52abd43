//! Integration logs: one item per connect / test / registration / delivery event, expiring
//! by TTL. They hold event names, outcomes and provider reasons — never secrets or bodies.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{RepoError, from_item, to_item};
use crate::domain::{IntegrationId, TenantId};
use crate::ports::Clock;
use crate::ports::table::{AttrValue, Cursor, Key, Page, Query, SortKey, TTL, Table};

/// How long a log entry is kept.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationLog {
    pub id: String,
    pub integration_id: IntegrationId,
    pub event: String,
    pub status: LogStatus,
    pub error: Option<String>,
    pub at: Timestamp,
}

#[derive(Clone)]
pub struct IntegrationLogs {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
}

fn prefix(integration: &IntegrationId) -> String {
    format!("LOG#{integration}#")
}

impl IntegrationLogs {
    pub fn new(table: Arc<dyn Table>, clock: Arc<dyn Clock>) -> Self {
        Self { table, clock }
    }

    /// Records an event. A failure to log is itself logged and never fails the caller.
    pub async fn record(
        &self,
        tenant: &TenantId,
        integration: &IntegrationId,
        event: &str,
        outcome: Result<(), String>,
    ) {
        let now = self.clock.now();
        let entry = IntegrationLog {
            id: crate::domain::ids::ordered_ulid(),
            integration_id: integration.clone(),
            event: event.to_owned(),
            status: if outcome.is_ok() {
                LogStatus::Ok
            } else {
                LogStatus::Error
            },
            error: outcome.err(),
            at: now,
        };
        let key = Key::new(
            format!("TENANT#{tenant}"),
            format!("{}{}", prefix(integration), entry.id),
        );
        let written = async {
            let mut item = to_item(&key, &entry)?;
            item.insert(TTL.into(), AttrValue::n(now.as_second() + RETENTION_SECS));
            self.table.put(item, None).await?;
            Ok::<_, RepoError>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, tenant_id = %tenant, integration_id = %integration, event, "integration log not written");
        }
    }

    /// Newest first, paged.
    pub async fn list(
        &self,
        tenant: &TenantId,
        integration: &IntegrationId,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<IntegrationLog>, Option<Cursor>), RepoError> {
        let Page { items, next } = self
            .table
            .query(
                Query::partition(format!("TENANT#{tenant}"))
                    .sort(SortKey::BeginsWith(prefix(integration)))
                    .backward()
                    .limit(limit)
                    .after(cursor),
            )
            .await?;
        let logs = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        Ok((logs, next))
    }
}
