//! amoCRM: each lead becomes a deal with its contact (`POST /api/v4/leads/complex`), the
//! comment, source, UTM and form fields a common note on it.
//!
//! Tokens: a missing access token, or a call answered 401, exchanges the refresh token
//! (`POST /oauth2/access_token`) and retries the call once; the new pair is returned in
//! [`LeadSent::config_update`] to be sealed back. amoCRM rotates refresh tokens, so a new
//! pair is also handed to the context's `CredentialStore` at once (sealed before the next
//! call, so a failure of that call loses nothing) and kept in memory for the next attempt
//! in this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{LeadContext, LeadSent, LeadTarget, field};
use crate::domain::lead::Lead;
use crate::providers::ProviderError;
use crate::providers::amocrm::{AmoCrmApi, OAuthApp, Tokens};
use crate::repo::integrations::OpenConfig;
use crate::secret::Secret;

/// Labels of [`Lead::lines`] that go into the contact rather than the note.
const CONTACT_LABELS: [&str; 3] = ["Name", "Phone", "E-mail"];

pub struct AmoCrmTarget {
    api: AmoCrmApi,
    /// Integration id → (the refresh token exchanged, the pair it gave).
    refreshed: Mutex<HashMap<String, (String, Tokens)>>,
}

impl AmoCrmTarget {
    pub fn new(http: reqwest::Client, base_override: Option<String>) -> Self {
        Self {
            api: AmoCrmApi::new(http, base_override),
            refreshed: Mutex::default(),
        }
    }

    /// A pair this process obtained for `refresh_token` and may not have stored yet.
    fn remembered(&self, integration: &str, refresh_token: Option<&str>) -> Option<Tokens> {
        let refresh_token = refresh_token?;
        let map = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        map.get(integration)
            .filter(|(old, _)| old == refresh_token)
            .map(|(_, tokens)| tokens.clone())
    }

    /// Exchanges the refresh token, remembering the new pair until it is stored.
    async fn refresh(
        &self,
        credentials: &dyn super::CredentialStore,
        integration: &str,
        subdomain: &str,
        config: &OpenConfig,
        refresh_token: Option<&Secret<String>>,
    ) -> Result<Tokens, ProviderError> {
        let refresh_token = refresh_token.ok_or_else(|| {
            ProviderError::Auth(
                "the integration's config lacks refresh_token; reconnect amoCRM".into(),
            )
        })?;
        let app = OAuthApp {
            client_id: field(config, "client_id")?,
            client_secret: secret_field(config, "client_secret")?,
            redirect_uri: config
                .get("redirect_uri")
                .map(|v| v.expose().as_str())
                .filter(|v| !v.is_empty()),
        };
        let tokens = self
            .api
            .refresh_tokens(subdomain, &app, refresh_token)
            .await?;
        self.refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                integration.to_owned(),
                (refresh_token.expose().clone(), tokens.clone()),
            );
        credentials
            .save(BTreeMap::from([
                (
                    "access_token".to_owned(),
                    tokens.access_token.expose().clone(),
                ),
                (
                    "refresh_token".to_owned(),
                    tokens.refresh_token.expose().clone(),
                ),
            ]))
            .await;
        Ok(tokens)
    }
}

/// A required secret config field, as a [`Secret`].
fn secret_field<'a>(
    config: &'a OpenConfig,
    name: &str,
) -> Result<&'a Secret<String>, ProviderError> {
    field(config, name)?;
    config
        .get(name)
        .ok_or_else(|| ProviderError::Auth(format!("the integration's config lacks {name}")))
}

/// The tokens a delivery uses, and those to seal back.
struct Session {
    access: Option<Secret<String>>,
    refresh: Option<Secret<String>>,
    update: BTreeMap<String, String>,
}

impl Session {
    fn adopt(&mut self, tokens: Tokens) -> Secret<String> {
        self.update.insert(
            "access_token".to_owned(),
            tokens.access_token.expose().clone(),
        );
        self.update.insert(
            "refresh_token".to_owned(),
            tokens.refresh_token.expose().clone(),
        );
        self.access = Some(tokens.access_token.clone());
        self.refresh = Some(tokens.refresh_token);
        tokens.access_token
    }
}

/// The `leads/complex` body: one deal named after the lead, with its contact when the
/// lead names anyone (phone and e-mail as the predefined `PHONE` / `EMAIL` fields).
pub fn complex_body(lead: &Lead) -> Value {
    let mut fields = Vec::new();
    if let Some(phone) = lead.phone.as_deref().filter(|v| !v.is_empty()) {
        fields.push(
            json!({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]}),
        );
    }
    if let Some(email) = lead.email.as_deref().filter(|v| !v.is_empty()) {
        fields.push(
            json!({"field_code": "EMAIL", "values": [{"value": email, "enum_code": "WORK"}]}),
        );
    }
    let name = lead.name.as_deref().filter(|v| !v.is_empty());
    let mut deal = json!({"name": lead.title()});
    if name.is_some() || !fields.is_empty() {
        let mut contact = json!({});
        if let Some(name) = name {
            contact["name"] = json!(name);
            contact["first_name"] = json!(name);
        }
        if !fields.is_empty() {
            contact["custom_fields_values"] = Value::Array(fields);
        }
        deal["_embedded"] = json!({"contacts": [contact]});
    }
    json!([deal])
}

/// The note text: every line of the lead but the contact's own.
pub fn note_text(lead: &Lead) -> Option<String> {
    let lines: Vec<String> = lead
        .lines()
        .into_iter()
        .filter(|(label, _)| !CONTACT_LABELS.contains(&label.as_str()))
        .map(|(label, value)| format!("{label}: {value}"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[async_trait]
impl LeadTarget for AmoCrmTarget {
    fn name(&self) -> &'static str {
        "amocrm"
    }

    async fn deliver(
        &self,
        ctx: &LeadContext<'_>,
        config: &OpenConfig,
    ) -> Result<LeadSent, ProviderError> {
        let subdomain = field(config, "subdomain")?;
        let integration = ctx.integration.id.as_str();
        let present = |key: &str| config.get(key).filter(|v| !v.expose().is_empty()).cloned();
        let mut session = Session {
            access: present("access_token"),
            refresh: present("refresh_token"),
            update: BTreeMap::new(),
        };
        let kept = self.remembered(
            integration,
            session.refresh.as_ref().map(|r| r.expose().as_str()),
        );
        if let Some(tokens) = kept {
            session.adopt(tokens);
        }
        let (token, refreshed) = match session.access.clone() {
            Some(token) => (token, false),
            None => {
                let tokens = self
                    .refresh(
                        ctx.credentials,
                        integration,
                        subdomain,
                        config,
                        session.refresh.as_ref(),
                    )
                    .await?;
                (session.adopt(tokens), true)
            }
        };
        let body = complex_body(ctx.lead);
        let (created, token) = match self.api.add_leads_complex(subdomain, &token, &body).await {
            Ok(created) => (created, token),
            Err(failure) if failure.status == Some(401) && !refreshed => {
                let tokens = self
                    .refresh(
                        ctx.credentials,
                        integration,
                        subdomain,
                        config,
                        session.refresh.as_ref(),
                    )
                    .await?;
                let token = session.adopt(tokens);
                let created = self.api.add_leads_complex(subdomain, &token, &body).await?;
                (created, token)
            }
            Err(failure) => return Err(failure.into()),
        };
        let id = created
            .first()
            .map(|c| c.id)
            .ok_or_else(|| ProviderError::Rejected("amoCRM answered no lead id".into()))?;
        if let Some(text) = note_text(ctx.lead) {
            // The deal exists: a failed note must not make the delivery retry (and create
            // the deal twice).
            if let Err(failure) = self.api.add_lead_note(subdomain, &token, id, &text).await {
                tracing::warn!(
                    lead_id = %ctx.lead.id,
                    amocrm_lead_id = id,
                    error = %failure.error,
                    "amoCRM note not added"
                );
            }
        }
        Ok(LeadSent {
            external_id: Some(id.to_string()),
            config_update: session.update,
        })
    }
}
