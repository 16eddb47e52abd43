//! MAX Bot API: `GET /me` (live check), `POST|DELETE /subscriptions` (webhook).
//! <https://dev.max.ru/docs-api>. The token goes in the `Authorization` header; errors
//! answer `{"code":"…","message":"…"}`.

use serde::Deserialize;
use serde_json::json;

use super::{ProviderError, classify_status, decode, retry_after_header, short, transport_error};
use crate::secret::Secret;

/// Update types a subscription asks MAX for.
pub const UPDATE_TYPES: &[&str] = &[
    "message_created",
    "message_edited",
    "message_callback",
    "bot_started",
    "bot_stopped",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    pub user_id: i64,
    pub name: Option<String>,
    pub username: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct SimpleResult {
    success: bool,
    message: Option<String>,
}

#[derive(Clone)]
pub struct MaxApi {
    http: reqwest::Client,
    base: String,
}

impl MaxApi {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret<String>,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let retry_after = retry_after_header(response.headers());
        let body: Option<ErrorBody> = response.json().await.ok();
        let reason = body
            .map(|b| {
                format!(
                    "{}: {}",
                    b.code.unwrap_or_default(),
                    b.message.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(classify_status(status, short(&reason), retry_after))
    }

    async fn simple(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret<String>,
    ) -> Result<(), ProviderError> {
        let result: SimpleResult = decode(self.send(request, token).await?).await?;
        if result.success {
            Ok(())
        } else {
            Err(ProviderError::Rejected(short(
                result.message.as_deref().unwrap_or("refused"),
            )))
        }
    }

    pub async fn get_me(&self, token: &Secret<String>) -> Result<BotInfo, ProviderError> {
        decode(
            self.send(self.http.get(format!("{}/me", self.base)), token)
                .await?,
        )
        .await
    }

    pub async fn subscribe(
        &self,
        token: &Secret<String>,
        url: &str,
        secret: &Secret<String>,
    ) -> Result<(), ProviderError> {
        let body = json!({"url": url, "update_types": UPDATE_TYPES, "secret": secret.expose()});
        self.simple(
            self.http
                .post(format!("{}/subscriptions", self.base))
                .json(&body),
            token,
        )
        .await
    }

    pub async fn unsubscribe(
        &self,
        token: &Secret<String>,
        url: &str,
    ) -> Result<(), ProviderError> {
        let request = self
            .http
            .delete(format!("{}/subscriptions", self.base))
            .query(&[("url", url)]);
        self.simple(request, token).await
    }
}
