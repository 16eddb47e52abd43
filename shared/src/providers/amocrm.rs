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
