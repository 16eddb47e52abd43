//! Dashboard tokens: the dev server's HS256 check (`shared::http::auth::verify_hs256`) and
//! the claim checks of the OIDC verifier (`OidcVerifier::check`, `oidc::rs256_kid`, no
//! network: the issuer's keys are never fetched).

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use serde_json::Value;
use shared::Secret;
use shared::http::auth::{self, JwtError};
use shared::http::oidc::{self, OidcVerifier};
use shared::ports::ManualClock;

use crate::{NOW_SECS, input};

pub const SECRET: &[u8] = b"fuzz-jwt-secret";
pub const ISSUER: &str = "https://auth.example.com/";
pub const AUDIENCES: [&str; 2] = ["dashboard", "mobile"];
/// With this first byte the harness signs `<header JSON>\n<payload JSON>` itself.
pub const SIGN: u8 = b'S';

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 token of these raw header and payload bytes.
pub fn sign(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mac = shared::signing::hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64(&mac))
}

fn numeric(v: Option<&Value>) -> Option<i64> {
    let n = v?.as_number()?;
    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
}

/// Input: a token (any bytes), or [`SIGN`] + `<header>\n<payload>` that the harness signs.
/// A token that verifies has a valid signature under [`SECRET`] only, `exp` after now,
/// `nbf` (if any) not after now, and the claims of its payload.
pub fn hs256(data: &[u8]) {
    let secret = Secret::new(SECRET.to_vec());
    let (token, payload) = match data.split_first() {
        Some((&SIGN, rest)) => {
            let (header, payload) = input::line(rest);
            (sign(header, payload, SECRET), Some(payload))
        }
        _ => match std::str::from_utf8(data) {
            Ok(t) => (t.to_owned(), None),
            Err(_) => return,
        },
    };
    let verified = auth::verify_hs256(&token, &secret, NOW_SECS);
    let Ok(claims) = verified else {
        if let (Some(_), Err(e)) = (payload, &verified) {
            assert_ne!(
                *e,
                JwtError::Signature,
                "a token the harness signed: bad signature"
            );
        }
        return;
    };
    let other = auth::verify_hs256(&token, &Secret::new(b"another secret".to_vec()), NOW_SECS);
    assert_eq!(other, Err(JwtError::Signature), "verified with two secrets");
    let payload_b64 = token.split('.').nth(1).unwrap_or_default();
    let payload: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or_else(|| panic!("a verified token's payload is no JSON"));
    let exp = numeric(payload.get("exp")).unwrap_or_else(|| panic!("verified without exp"));
    assert!(exp > NOW_SECS, "verified an expired token (exp {exp})");
    if let Some(nbf) = numeric(payload.get("nbf")) {
        assert!(nbf <= NOW_SECS, "verified a token before its nbf ({nbf})");
    }
    assert_eq!(
        payload.get("tenant_id").and_then(Value::as_str),
        Some(claims.tenant_id.as_str())
    );
    assert_eq!(
        payload.get("sub").and_then(Value::as_str),
        Some(claims.sub.as_str())
    );
    assert_eq!(
        payload.get("role").and_then(Value::as_str),
        Some(claims.role.as_str())
    );
    // What the dev server mints verifies to the same claims.
    let minted = auth::mint_hs256(&claims, exp, &secret);
    assert_eq!(auth::verify_hs256(&minted, &secret, NOW_SECS), Ok(claims));
}

fn verifier() -> &'static OidcVerifier {
    static VERIFIER: OnceLock<OidcVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let at = jiff::Timestamp::from_second(NOW_SECS).unwrap_or_else(|e| panic!("{e}"));
        OidcVerifier::new(
            shared::providers::http_client(),
            ISSUER,
            AUDIENCES.iter().map(|a| (*a).to_owned()).collect(),
        )
        .with_clock(Arc::new(ManualClock::at(at)))
    })
}

/// Input: `<token>\n<claims JSON>`. `rs256_kid` answers a kid only for an RS256 header;
/// `check` accepts only the issuer, an accepted audience (or `client_id`), `exp` within
/// the leeway, `nbf` not ahead, and valid dashboard claims.
pub fn oidc(data: &[u8]) {
    let (token, claims) = input::line(data);
    if let Ok(token) = std::str::from_utf8(token)
        && let Ok(kid) = oidc::rs256_kid(token)
    {
        let header: Value = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .ok()
            })
            .and_then(|h| serde_json::from_slice(&h).ok())
            .unwrap_or_else(|| panic!("a kid from a header that is no JSON"));
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"].as_str(), Some(kid.as_str()));
    }
    let Ok(claims) = serde_json::from_slice::<Value>(claims) else {
        return;
    };
    let Ok(verified) = verifier().check(&claims) else {
        return;
    };
    assert_eq!(claims["iss"], ISSUER);
    let accepted = |v: &Value| v.as_str().is_some_and(|a| AUDIENCES.contains(&a));
    let audience_ok = match &claims["aud"] {
        Value::Null => accepted(&claims["client_id"]),
        Value::Array(auds) => auds.iter().any(accepted),
        aud => accepted(aud),
    };
    assert!(audience_ok, "accepted for another audience: {claims}");
    let exp = numeric(claims.get("exp")).unwrap_or_else(|| panic!("accepted without exp"));
    assert!(
        exp > NOW_SECS - oidc::LEEWAY_SECS,
        "accepted an expired token"
    );
    if let Some(nbf) = numeric(claims.get("nbf")) {
        assert!(nbf <= NOW_SECS + oidc::LEEWAY_SECS, "accepted before nbf");
    }
    assert_eq!(
        claims["tenant_id"].as_str(),
        Some(verified.tenant_id.as_str())
    );
    assert_eq!(claims["sub"].as_str(), Some(verified.sub.as_str()));
    assert_eq!(claims["role"].as_str(), Some(verified.role.as_str()));
}
