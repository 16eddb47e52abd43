//! Dashboard tokens verified as API Gateway's JWT authorizer verifies them, for the HTTP
//! API Lambda authorizer of the routes that take a tenant API key or a dashboard token
//! (those cannot sit behind the gateway's JWT authorizer: it refuses every API-key call).
//!
//! * RS256 only (`none`, HS256 and every other algorithm are refused before any key is
//!   looked at), and the header must name the key (`kid`).
//! * The key is the issuer's: OIDC discovery (`{issuer}/.well-known/openid-configuration`
//!   → `jwks_uri`) and its JWKS, cached in memory for [`JWKS_TTL_SECS`]; a `kid` the cache
//!   does not hold fetches the keys again once (a rotation), at most once per
//!   [`REFETCH_COOLDOWN_SECS`] so made-up key ids cannot hammer the issuer.
//! * `iss` equal to the issuer; `aud` — or, without `aud`, `client_id` (Cognito access
//!   tokens) — one of the audiences; `exp` in the future and `nbf`, when present, in the
//!   past, each with [`LEEWAY_SECS`] of clock skew.
//! * Then the dashboard claims `tenant_id`, `sub`, `role`, as [`JwtClaims`].
//!
//! A token is never logged, nor put into an error.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::auth::{JwtClaims, WindowError, check_window};
use crate::ports::{Clock, SystemClock};
use crate::providers::transport_kind;

/// The crate that signs and verifies, for tests that mint tokens of a local issuer.
#[cfg(feature = "testing")]
pub use jsonwebtoken;

/// How long the issuer's keys are used before they are fetched again.
pub const JWKS_TTL_SECS: i64 = 600;
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
/// Least time between two fetches caused by an unknown `kid`.
pub const REFETCH_COOLDOWN_SECS: i64 = 60;

/// Why a token was refused. None of them carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    Algorithm,
    #[error("the token names no key the issuer publishes")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks tenant_id, sub or role")]
    Claims,
    #[error("the issuer's keys could not be fetched: {0}")]
    Keys(String),
}

/// Verifies the issuer's RS256 tokens; holds the issuer's keys between invocations.
pub struct OidcVerifier {
    http: reqwest::Client,
    issuer: String,
    audiences: Vec<String>,
    clock: Arc<dyn Clock>,
    keys: tokio::sync::Mutex<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at_ms: Option<i64>,
    /// When an unknown `kid` last sent us to the issuer.
    refetched_at_ms: Option<i64>,
}

impl OidcVerifier {
    /// `issuer` exactly as tokens carry it in `iss` (a trailing `/` matters there, not for
    /// discovery); `audiences` the accepted `aud` / `client_id` values.
    pub fn new(http: reqwest::Client, issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            http,
            issuer: issuer.into(),
            audiences,
            clock: Arc::new(SystemClock),
            keys: tokio::sync::Mutex::default(),
        }
    }

    /// The clock for `exp`, `nbf` and the key cache (tests move it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies `token` (the JWT itself, without `Bearer `) and answers its dashboard claims.
    pub async fn verify(&self, token: &str) -> Result<JwtClaims, OidcError> {
        let kid = rs256_kid(token)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Only the signature here: the claims are checked below, on this verifier's clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => OidcError::Signature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    OidcError::Algorithm
                }
                _ => OidcError::Malformed,
            })?
            .claims;
        self.check(&claims)
    }

    /// The claim checks of a token whose signature is verified (public for `fuzz/`).
    pub fn check(&self, claims: &Value) -> Result<JwtClaims, OidcError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(OidcError::Issuer);
        }
        let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            None | Some(Value::Null) => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(accepted),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(OidcError::Audience);
        }
        check_window(claims, self.clock.now_secs(), LEEWAY_SECS).map_err(|e| match e {
            WindowError::Malformed => OidcError::Malformed,
            WindowError::Expired => OidcError::Expired,
            WindowError::NotYetValid => OidcError::NotYetValid,
        })?;
        let strings: HashMap<String, String> = ["tenant_id", "sub", "role"]
            .into_iter()
            .filter_map(|name| {
                let value = claims.get(name)?.as_str()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        JwtClaims::from_authorizer(&strings).ok_or(OidcError::Claims)
    }

    /// The issuer's key `kid`: from the cache while it is fresh, else fetched.
    async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        let mut cache = self.keys.lock().await;
        let now = self.clock.now_ms();
        let fresh = cache
            .fetched_at_ms
            .is_some_and(|at| now - at < JWKS_TTL_SECS * 1000);
        let mut fetched = false;
        if !fresh {
            self.fetch_into(&mut cache, now).await?;
            fetched = true;
        }
        if let Some(key) = cache.by_kid.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = !fetched
            && cache
                .refetched_at_ms
                .is_none_or(|at| now - at >= REFETCH_COOLDOWN_SECS * 1000);
        if may_refetch {
            cache.refetched_at_ms = Some(now);
            self.fetch_into(&mut cache, now).await?;
            if let Some(key) = cache.by_kid.get(kid) {
                return Ok(key.clone());
            }
        }
        Err(OidcError::UnknownKey)
    }

    /// Discovery, then the JWKS: every RSA signing key with a `kid`.
    async fn fetch_into(&self, cache: &mut KeyCache, now_ms: i64) -> Result<(), OidcError> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document = self.get_json(&discovery).await?;
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Keys(format!("{discovery} names no jwks_uri")))?;
        let jwks = self.get_json(jwks_uri).await?;
        let by_kid: HashMap<String, DecodingKey> = jwks
            .get("keys")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(rsa_signing_key)
            .collect();
        tracing::info!(
            keys = by_kid.len(),
            issuer = %self.issuer,
            "fetched the JWT issuer's keys"
        );
        cache.by_kid = by_kid;
        cache.fetched_at_ms = Some(now_ms);
        Ok(())
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Keys(format!("{url}: {}", transport_kind(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::Keys(format!("{url} answered {status}")));
        }
        response
            .json()
            .await
            .map_err(|_| OidcError::Keys(format!("{url} answered no JSON")))
    }
}

/// The `kid` of a token whose header says RS256 (read before any key is looked up, so a
/// token of another algorithm never reaches a key).
pub fn rs256_kid(token: &str) -> Result<String, OidcError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed);
    };
    let header: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(OidcError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(OidcError::Algorithm);
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(OidcError::UnknownKey)
}

/// A JWK usable for RS256 signatures: RSA, a `kid`, `use` absent or `sig`, `alg` absent or
/// `RS256`.
fn rsa_signing_key(jwk: &Value) -> Option<(String, DecodingKey)> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("kty")? != "RSA"
        || field("use").is_some_and(|u| u != "sig")
        || field("alg").is_some_and(|a| a != "RS256")
    {
        return None;
    }
    let key = DecodingKey::from_rsa_components(field("n")?, field("e")?).ok()?;
    Some((field("kid")?.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier() -> OidcVerifier {
        OidcVerifier::new(
            reqwest::Client::new(),
            "https://auth.example.com/",
            vec!["dashboard".into(), "mobile".into()],
        )
    }

    fn claims(overrides: Value) -> Value {
        let now = SystemClock.now_secs();
        let mut claims = json!({
            "iss": "https://auth.example.com/",
            "aud": "dashboard",
            "exp": now + 300,
            "tenant_id": "acme",
            "sub": "user-1",
            "role": "owner",
        });
        if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), overrides) {
            for (k, v) in extra {
                if v.is_null() {
                    base.remove(&k);
                } else {
                    base.insert(k, v);
                }
            }
        }
        claims
    }

    #[test]
    fn claims_need_the_issuer_an_audience_and_time() {
        let v = verifier();
        let now = SystemClock.now_secs();
        assert_eq!(
            v.check(&claims(json!({})))
                .map(|c| c.tenant_id.as_str().to_owned()),
            Ok("acme".to_owned())
        );
        assert_eq!(
            v.check(&claims(json!({"iss": "https://auth.example.com"}))),
            Err(OidcError::Issuer)
        );
        assert_eq!(
            v.check(&claims(json!({"aud": "other"}))),
            Err(OidcError::Audience)
        );
        assert!(
            v.check(&claims(json!({"aud": ["other", "mobile"]})))
                .is_ok()
        );
        assert_eq!(
            v.check(&claims(json!({"aud": null}))),
            Err(OidcError::Audience)
        );
        assert!(
            v.check(&claims(json!({"aud": null, "client_id": "dashboard"})))
                .is_ok(),
            "a Cognito access token names its client in client_id"
        );
        assert_eq!(
            v.check(&claims(json!({"aud": null, "client_id": "other"}))),
            Err(OidcError::Audience)
        );
        assert_eq!(
            v.check(&claims(json!({"exp": now - LEEWAY_SECS - 1}))),
            Err(OidcError::Expired)
        );
        assert!(v.check(&claims(json!({"exp": now - 5}))).is_ok(), "leeway");
        assert_eq!(
            v.check(&claims(json!({"exp": null}))),
            Err(OidcError::Malformed)
        );
        assert_eq!(
            v.check(&claims(json!({"exp": "soon"}))),
            Err(OidcError::Malformed)
        );
        assert_eq!(
            v.check(&claims(json!({"nbf": now + LEEWAY_SECS + 60}))),
            Err(OidcError::NotYetValid)
        );
        assert!(v.check(&claims(json!({"nbf": now - 10}))).is_ok());
        assert_eq!(
            v.check(&claims(json!({"tenant_id": "a#b"}))),
            Err(OidcError::Claims)
        );
        assert_eq!(
            v.check(&claims(json!({"role": "superuser"}))),
            Err(OidcError::Claims)
        );
    }

    #[test]
    fn the_header_must_say_rs256_and_name_its_key() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |header: &str| format!("{}.{}.sig", b64(header), b64("{}"));
        assert_eq!(
            rs256_kid(&token(r#"{"alg":"RS256","kid":"k1"}"#)),
            Ok("k1".into())
        );
        assert_eq!(
            rs256_kid(&token(r#"{"alg":"none","kid":"k1"}"#)),
            Err(OidcError::Algorithm)
        );
        assert_eq!(
            rs256_kid(&token(r#"{"alg":"HS256","kid":"k1"}"#)),
            Err(OidcError::Algorithm)
        );
        assert_eq!(
            rs256_kid(&token(r#"{"alg":"RS256"}"#)),
            Err(OidcError::UnknownKey)
        );
        assert_eq!(rs256_kid("a.b"), Err(OidcError::Malformed));
        assert_eq!(rs256_kid("!!.b.c"), Err(OidcError::Malformed));
    }

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_kept() {
        let rsa = json!({"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"});
        assert!(rsa_signing_key(&rsa).is_some());
        let mut enc = rsa.clone();
        enc["use"] = json!("enc");
        assert!(rsa_signing_key(&enc).is_none());
        let mut ps = rsa.clone();
        ps["alg"] = json!("PS256");
        assert!(rsa_signing_key(&ps).is_none());
        assert!(rsa_signing_key(&json!({"kty": "EC", "kid": "k2"})).is_none());
        assert!(rsa_signing_key(&json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})).is_none());
    }
}
