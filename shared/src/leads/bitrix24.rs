//! Bitrix24: each lead becomes a CRM lead (`crm.lead.add` through the portal's inbound
//! webhook). Errors as [`crate::providers::bitrix24::classify`] reads them:
//! `QUERY_LIMIT_EXCEEDED` (503) and 5xx are transient, `expired_token` / `invalid_token` /
//! `NO_AUTH_FOUND` / `INVALID_CREDENTIALS` / 401 are auth, anything else is refused.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{LeadContext, LeadSent, LeadTarget, field};
use crate::domain::lead::Lead;
use crate::egress::TargetClient;
use crate::providers::ProviderError;
use crate::providers::bitrix24::Bitrix24Api;
use crate::repo::integrations::OpenConfig;
use crate::secret::Secret;

/// Lead UTM keys and the Bitrix24 lead fields they fill.
const UTM_FIELDS: [(&str, &str); 5] = [
    ("utm_source", "UTM_SOURCE"),
    ("utm_medium", "UTM_MEDIUM"),
    ("utm_campaign", "UTM_CAMPAIGN"),
    ("utm_content", "UTM_CONTENT"),
    ("utm_term", "UTM_TERM"),
];

/// Labels of [`Lead::lines`] that have their own Bitrix24 fields.
const OWN_FIELDS: [&str; 4] = ["Name", "Phone", "E-mail", "Source"];

pub struct Bitrix24Target {
    api: Bitrix24Api,
}

impl Bitrix24Target {
    pub fn new(targets: TargetClient) -> Self {
        Self {
            api: Bitrix24Api::new(targets),
        }
    }
}

/// The `crm.lead.add` parameters: title, name, phone and e-mail (as work entries), the
/// source, the five UTM fields, and a comment of the lead's comment, UTM and form fields.
pub fn lead_params(lead: &Lead) -> Value {
    let mut fields = Map::new();
    fields.insert("TITLE".into(), json!(lead.title()));
    let present = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    if let Some(name) = present(&lead.name) {
        fields.insert("NAME".into(), json!(name));
    }
    if let Some(phone) = present(&lead.phone) {
        fields.insert(
            "PHONE".into(),
            json!([{"VALUE": phone, "VALUE_TYPE": "WORK"}]),
        );
    }
    if let Some(email) = present(&lead.email) {
        fields.insert(
            "EMAIL".into(),
            json!([{"VALUE": email, "VALUE_TYPE": "WORK"}]),
        );
    }
    if let Some(source) = present(&lead.source) {
        fields.insert("SOURCE_DESCRIPTION".into(), json!(source));
    }
    for (key, field) in UTM_FIELDS {
        if let Some(value) = lead.utm.get(key).filter(|v| !v.is_empty()) {
            fields.insert(field.into(), json!(value));
        }
    }
    let comments: Vec<String> = lead
        .lines()
        .into_iter()
        .filter(|(label, _)| !OWN_FIELDS.contains(&label.as_str()))
        .map(|(label, value)| {
            if label == "Comment" {
                value
            } else {
                format!("{label}: {value}")
            }
        })
        .collect();
    if !comments.is_empty() {
        fields.insert("COMMENTS".into(), json!(comments.join("\n")));
    }
    json!({"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}})
}

#[async_trait]
impl LeadTarget for Bitrix24Target {
    fn name(&self) -> &'static str {
        "bitrix24"
    }

    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError> {
        let webhook_url = Secret::new(field(config, "webhook_url")?.to_owned());
        let result = self
            .api
            .call(&webhook_url, "crm.lead.add", &lead_params(ctx.lead))
            .await?;
        let id = match result {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.is_empty() => s,
            other => {
                return Err(ProviderError::Rejected(format!(
                    "Bitrix24 answered no lead id: {}",
                    crate::providers::short(&other.to_string())
                )));
            }
        };
        Ok(LeadSent {
            external_id: Some(id),
            config_update: Default::default(),
        })
    }
}
