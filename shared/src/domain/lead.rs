//! Leads and their delivery to each integration (seed 001).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{IntegrationId, LeadId, TenantId};

/// A lead as the business received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E.164 when it parsed as a phone, else as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `utm_term`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub utm: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_project_id: Option<String>,
    /// Free fields of the form, kept as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub created_at: Timestamp,
}

impl Lead {
    /// A one-line title for CRMs and subjects: "Lead: Ivan, +7916…".
    pub fn title(&self) -> String {
        let who: Vec<&str> = [&self.name, &self.phone, &self.email]
            .into_iter()
            .filter_map(|v| v.as_deref())
            .collect();
        if who.is_empty() {
            format!("Lead {}", self.id)
        } else {
            format!("Lead: {}", who.join(", "))
        }
    }

    /// The lead as labelled lines (label, value), in a stable order, for e-mails and chat
    /// messages. Attribute values that are not strings are written as JSON.
    pub fn lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |label: &str, value: &Option<String>| {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                out.push((label.to_owned(), v.to_owned()));
            }
        };
        push("Name", &self.name);
        push("Phone", &self.phone);
        push("E-mail", &self.email);
        push("Comment", &self.comment);
        push("Source", &self.source);
        for (k, v) in &self.utm {
            out.push((k.clone(), v.clone()));
        }
        for (k, v) in &self.attributes {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((k.clone(), text));
        }
        out
    }
}

/// Where a lead stands with one integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
    Skipped,
}

/// A lead × integration delivery. `round` grows with every dispatch (the first, then each
/// resend); a retry within a round after a recorded success sends nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadDelivery {
    pub lead_id: LeadId,
    pub integration_id: IntegrationId,
    /// The integration's provider (`email`, `amocrm`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub status: DeliveryState,
    pub round: u32,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The id the CRM gave the lead (amoCRM lead id, Bitrix24 lead id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub updated_at: Timestamp,
}
