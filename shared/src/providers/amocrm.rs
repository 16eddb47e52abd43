//! amoCRM API v4. Live check: `GET /api/v4/account` with the OAuth access token as a
//! bearer. The host is `https://{subdomain}.amocrm.ru` unless `AMOCRM_API_BASE` overrides it.

use serde::Deserialize;

use super::{ProviderError, classify_status, decode, retry_after_header, short, transport_error};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: i64,
    pub name: Option<String>,
    pub subdomain: Option<String>,
}

#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

#[derive(Clone)]
pub struct AmoCrmApi {
    http: reqwest::Client,
    base_override: Option<String>,
}

impl AmoCrmApi {
    pub fn new(http: reqwest::Client, base_override: Option<String>) -> Self {
        Self {
            http,
            base_override,
        }
    }

    /// The API base of an account.
    pub fn base(&self, subdomain: &str) -> String {
        self.base_override
            .clone()
            .unwrap_or_else(|| format!("https://{subdomain}.amocrm.ru"))
    }

    pub async fn account(
        &self,
        subdomain: &str,
        access_token: &Secret<String>,
    ) -> Result<Account, ProviderError> {
        let response = self
            .http
            .get(format!("{}/api/v4/account", self.base(subdomain)))
            .bearer_auth(access_token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return decode(response).await;
        }
        let retry_after = retry_after_header(response.headers());
        let problem = response.json::<Problem>().await.ok();
        let reason = problem
            .map(|p| {
                format!(
                    "{}: {}",
                    p.title.unwrap_or_default(),
                    p.detail.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(classify_status(status, short(&reason), retry_after))
    }
}

/// A failed amoCRM call: the classified error, and the HTTP status when there was an
/// answer (a 401 is what a token refresh can cure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: ProviderError,
}

impl From<Failure> for ProviderError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

/// A fresh token pair from `POST /oauth2/access_token`. amoCRM rotates refresh tokens:
/// the one exchanged stops working, so the new pair must be stored.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub token_type: Option<String>,
    pub expires_in: Option<i64>,
    pub access_token: Secret<String>,
    pub refresh_token: Secret<String>,
}

/// The OAuth application of an integration (for refreshing its tokens).
pub struct OAuthApp<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a Secret<String>,
    pub redirect_uri: Option<&'a str>,
}

/// One entry of the answer of `POST /api/v4/leads/complex`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ComplexCreated {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub company_id: Option<i64>,
}

#[derive(Deserialize)]
struct ValidationSet {
    #[serde(default)]
    errors: Vec<ValidationError>,
}

#[derive(Deserialize)]
struct ValidationError {
    code: Option<String>,
    path: Option<String>,
    detail: Option<String>,
}

/// Reads an error answer: RFC 7807 `{title, detail, hint?}`, with `validation-errors`
/// (`[{request_id, errors: [{code, path, detail}]}]`) on a refused 400.
async fn failure(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let retry_after = retry_after_header(response.headers());
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let text = |key: &str| body.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let validation: Vec<String> = body
        .get("validation-errors")
        .cloned()
        .and_then(|v| serde_json::from_value::<Vec<ValidationSet>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|set| set.errors)
        .map(|e| {
            format!(
                "{}: {} ({})",
                e.path.unwrap_or_default(),
                e.detail.unwrap_or_default(),
                e.code.unwrap_or_default()
            )
        })
        .collect();
    let reason = if !validation.is_empty() {
        format!("{}: {}", text("detail"), validation.join("; "))
    } else if text("title").is_empty() && text("detail").is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{}: {}", text("title"), text("detail"))
    };
    let error = if status == 400 && !validation.is_empty() {
        ProviderError::Rejected(short(&reason))
    } else {
        classify_status(status, short(&reason), retry_after)
    };
    Failure {
        status: Some(status),
        error,
    }
}

fn transport(err: reqwest::Error) -> Failure {
    Failure {
        status: None,
        error: transport_error(err),
    }
}

impl AmoCrmApi {
    /// Exchanges a refresh token for a new pair (`POST /oauth2/access_token`,
    /// `grant_type=refresh_token`). A refused exchange (400/401/403) is an auth error: the
    /// integration must be connected again.
    pub async fn refresh_tokens(
        &self,
        subdomain: &str,
        app: &OAuthApp<'_>,
        refresh_token: &Secret<String>,
    ) -> Result<Tokens, ProviderError> {
        let mut body = serde_json::json!({
            "client_id": app.client_id,
            "client_secret": app.client_secret.expose(),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose(),
        });
        if let Some(uri) = app.redirect_uri {
            body["redirect_uri"] = serde_json::Value::String(uri.to_owned());
        }
        let response = self
            .http
            .post(format!("{}/oauth2/access_token", self.base(subdomain)))
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().is_success() {
            return decode(response).await;
        }
        let Failure { status, error } = failure(response).await;
        match status {
            Some(400 | 401 | 403) => Err(ProviderError::Auth(short(&format!(
                "refresh token rejected; reconnect amoCRM ({})",
                error.reason()
            )))),
            _ => Err(error),
        }
    }

    /// Creates leads with their contacts in one call (`POST /api/v4/leads/complex`).
    pub async fn add_leads_complex(
        &self,
        subdomain: &str,
        access_token: &Secret<String>,
        leads: &serde_json::Value,
    ) -> Result<Vec<ComplexCreated>, Failure> {
        let response = self
            .http
            .post(format!("{}/api/v4/leads/complex", self.base(subdomain)))
            .bearer_auth(access_token.expose())
            .json(leads)
            .send()
            .await
            .map_err(transport)?;
        if response.status().is_success() {
            return decode(response).await.map_err(|error| Failure {
                status: None,
                error,
            });
        }
        Err(failure(response).await)
    }

    /// Adds a common (text) note to a lead (`POST /api/v4/leads/notes`).
    pub async fn add_lead_note(
        &self,
        subdomain: &str,
        access_token: &Secret<String>,
        lead_id: i64,
        text: &str,
    ) -> Result<(), Failure> {
        let body = serde_json::json!([{
            "entity_id": lead_id,
            "note_type": "common",
            "params": {"text": text},
        }]);
        let response = self
            .http
            .post(format!("{}/api/v4/leads/notes", self.base(subdomain)))
            .bearer_auth(access_token.expose())
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(failure(response).await)
    }
}
