//! Who is calling: dashboard users (JWT claims `tenant_id`, `sub`, `role`) and tenant API
//! keys (looked up by SHA-256 hash, with scopes).

use std::collections::HashMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::error::ApiError;
use super::request::ApiRequest;
use crate::domain::TenantId;
use crate::repo::api_keys::ApiKeys;
use crate::secret::Secret;

pub const API_KEY_HEADER: &str = "x-api-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "config:read")]
    ConfigRead,
    #[serde(rename = "messages:send")]
    MessagesSend,
    #[serde(rename = "leads:write")]
    LeadsWrite,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigRead => "config:read",
            Self::MessagesSend => "messages:send",
            Self::LeadsWrite => "leads:write",
        }
    }
}

/// The verified claims a dashboard call carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    pub tenant_id: TenantId,
    pub sub: String,
    pub role: Role,
}

impl JwtClaims {
    /// Reads claims as the API Gateway JWT authorizer passes them (all strings).
    pub fn from_authorizer(claims: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            tenant_id: TenantId::parse(claims.get("tenant_id")?.as_str()).ok()?,
            sub: claims.get("sub")?.clone(),
            role: serde_json::from_value(serde_json::Value::String(claims.get("role")?.clone()))
                .ok()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        tenant_id: TenantId,
        sub: String,
        role: Role,
    },
    ApiKey {
        tenant_id: TenantId,
        key_id: String,
        scopes: Vec<Scope>,
    },
}

/// The dashboard roles a route admits (checked by the router before the handler runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles(&'static [Role]);

impl Roles {
    /// Every dashboard user: reads, the inbox, sends and leads.
    pub const ANY: Self = Self(&[Role::Owner, Role::Admin, Role::Agent]);
    /// Configuration writes: integrations, API keys, profile, catalog, prompt, lead routing.
    pub const MANAGERS: Self = Self(&[Role::Owner, Role::Admin]);
    /// Deleting the tenant.
    pub const OWNER: Self = Self(&[Role::Owner]);

    pub fn admits(self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn as_slice(self) -> &'static [Role] {
        self.0
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }
}

impl Principal {
    /// Refuses a dashboard user whose role `roles` does not admit (403 `ROLE_REQUIRED`);
    /// API keys and anonymous callers pass through (their scope is checked elsewhere).
    pub fn check_role(self, roles: Roles) -> Result<Self, ApiError> {
        match &self {
            Self::User { role, .. } if !roles.admits(*role) => Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "ROLE_REQUIRED",
                "your role does not allow this action",
            )),
            _ => Ok(self),
        }
    }

    /// The caller's tenant; anonymous callers get a 401.
    pub fn tenant(&self) -> Result<&TenantId, ApiError> {
        match self {
            Self::User { tenant_id, .. } | Self::ApiKey { tenant_id, .. } => Ok(tenant_id),
            Self::Anonymous => Err(ApiError::unauthorized()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks tenant_id, sub or role")]
    Claims,
}

/// Why a token's validity window refuses it (shared by the HS256 and the OIDC check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowError {
    /// `exp` is missing, or `exp`/`nbf` is not a NumericDate.
    Malformed,
    Expired,
    NotYetValid,
}

/// Checks a token's validity window at `now` (seconds): `exp` required and in the future,
/// `nbf`, when present, not in the future — each with `leeway` seconds of clock skew.
pub(crate) fn check_window(
    claims: &serde_json::Value,
    now: i64,
    leeway: i64,
) -> Result<(), WindowError> {
    let exp = numeric_date(claims.get("exp"))?.ok_or(WindowError::Malformed)?;
    if exp <= now - leeway {
        return Err(WindowError::Expired);
    }
    if numeric_date(claims.get("nbf"))?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(WindowError::NotYetValid);
    }
    Ok(())
}

/// A NumericDate claim in whole seconds (`None` when absent).
fn numeric_date(value: Option<&serde_json::Value>) -> Result<Option<i64>, WindowError> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(WindowError::Malformed),
        Some(_) => Err(WindowError::Malformed),
    }
}

/// Clock skew allowed on the dev server's tokens: none, as the same clock mints and checks.
pub const HS256_LEEWAY_SECS: i64 = 0;

#[derive(Serialize, Deserialize)]
struct Hs256Payload {
    #[serde(flatten)]
    claims: JwtClaims,
    exp: i64,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; the error branch cannot happen.
    Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("hmac key of any length"))
}

/// Signs dashboard claims as an HS256 JWT (the dev server's tokens, tests).
pub fn mint_hs256(claims: &JwtClaims, exp: i64, secret: &Secret<Vec<u8>>) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::to_vec(&Hs256Payload {
        claims: claims.clone(),
        exp,
    })
    .unwrap_or_default();
    let signing_input = format!("{header}.{}", b64(&payload));
    let mut m = mac(secret.expose());
    m.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&m.finalize().into_bytes()))
}

/// Verifies an HS256 JWT: constant-time signature check, `exp` required, `nbf` honoured.
pub fn verify_hs256(
    token: &str,
    secret: &Secret<Vec<u8>>,
    now_secs: i64,
) -> Result<JwtClaims, JwtError> {
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)
    };
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let mut m = mac(secret.expose());
    m.update(signed);
    m.verify_slice(&decode(signature)?)
        .map_err(|_| JwtError::Signature)?;
    let payload: serde_json::Value =
        serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Claims)?;
    check_window(&payload, now_secs, HS256_LEEWAY_SECS).map_err(|e| match e {
        WindowError::Malformed => JwtError::Claims,
        WindowError::Expired => JwtError::Expired,
        WindowError::NotYetValid => JwtError::NotYetValid,
    })?;
    serde_json::from_value(payload).map_err(|_| JwtError::Claims)
}

/// Resolves the principal of a request for a route's [`Access`](super::Access).
#[derive(Clone)]
pub struct Authenticator {
    api_keys: ApiKeys,
}

impl Authenticator {
    pub fn new(api_keys: ApiKeys) -> Self {
        Self { api_keys }
    }

    pub fn user(req: &ApiRequest) -> Result<Principal, ApiError> {
        req.claims
            .as_ref()
            .map(|c| Principal::User {
                tenant_id: c.tenant_id.clone(),
                sub: c.sub.clone(),
                role: c.role,
            })
            .ok_or_else(ApiError::unauthorized)
    }

    pub async fn api_key(&self, req: &ApiRequest, scope: Scope) -> Result<Principal, ApiError> {
        let raw = req
            .header(API_KEY_HEADER)
            .map(|v| Secret::new(v.to_owned()))
            .ok_or_else(ApiError::unauthorized)?;
        let record = self
            .api_keys
            .find_active(&raw)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if !record.scopes.contains(&scope) {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "INSUFFICIENT_SCOPE",
                format!("this API key lacks the scope {}", scope.as_str()),
            ));
        }
        Ok(Principal::ApiKey {
            tenant_id: record.tenant_id,
            key_id: record.id,
            scopes: record.scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> JwtClaims {
        JwtClaims {
            tenant_id: TenantId::parse("demo").unwrap_or_else(|_| unreachable!()),
            sub: "user-1".into(),
            role: Role::Owner,
        }
    }

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let secret = Secret::new(b"s3cret".to_vec());
        let token = mint_hs256(&claims(), 2_000, &secret);
        assert_eq!(verify_hs256(&token, &secret, 1_000), Ok(claims()));
        assert_eq!(
            verify_hs256(&token, &Secret::new(b"other".to_vec()), 1_000),
            Err(JwtError::Signature)
        );
        assert_eq!(verify_hs256(&token, &secret, 2_000), Err(JwtError::Expired));
        let mut tampered = token.clone();
        tampered.insert(tampered.find('.').map_or(0, |i| i + 2), 'x');
        assert!(verify_hs256(&tampered, &secret, 1_000).is_err());
        assert_eq!(verify_hs256("a.b", &secret, 0), Err(JwtError::Malformed));
    }

    fn signed(payload: &str, secret: &Secret<Vec<u8>>) -> String {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64(payload.as_bytes())
        );
        let mut m = mac(secret.expose());
        m.update(input.as_bytes());
        format!("{input}.{}", b64(&m.finalize().into_bytes()))
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_and_one_past_its_nbf_accepted() {
        let secret = Secret::new(b"s3cret".to_vec());
        let token = |nbf: &str| {
            signed(
                &format!(
                    r#"{{"tenant_id":"demo","sub":"user-1","role":"owner","exp":9999999999,"nbf":{nbf}}}"#
                ),
                &secret,
            )
        };
        assert_eq!(
            verify_hs256(&token("9999999998"), &secret, 1_000),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verify_hs256(&token("1001"), &secret, 1_000),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(verify_hs256(&token("1000"), &secret, 1_000), Ok(claims()));
        assert_eq!(
            verify_hs256(&token("\"soon\""), &secret, 1_000),
            Err(JwtError::Claims)
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = b64(br#"{"alg":"none"}"#);
        let payload = b64(br#"{"tenant_id":"demo","sub":"x","role":"owner","exp":9999999999}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(
            verify_hs256(&token, &Secret::new(b"k".to_vec()), 0),
            Err(JwtError::Algorithm)
        );
    }

    #[test]
    fn authorizer_claims_map_to_jwt_claims() {
        let map: HashMap<String, String> =
            [("tenant_id", "demo"), ("sub", "user-1"), ("role", "owner")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(JwtClaims::from_authorizer(&map), Some(claims()));
        let mut bad = map.clone();
        bad.insert("tenant_id".into(), "a#b".into());
        assert_eq!(JwtClaims::from_authorizer(&bad), None);
    }
}
