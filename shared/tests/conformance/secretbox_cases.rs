//! The `SecretBox` contract.

use std::sync::Arc;

use base64::Engine as _;
use shared::domain::{IntegrationId, TenantId};
use shared::ports::{EncryptionContext, Sealed, SecretBox, SecretBoxError};

use crate::backends::Fixture;

type B = Fixture<Arc<dyn SecretBox>>;

const TOKEN: &[u8] = br#"{"bot_token":"123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"}"#;

fn ctx(tenant: &str, integration: &str) -> EncryptionContext {
    EncryptionContext::integration(
        &TenantId::parse(tenant).unwrap(),
        &IntegrationId::parse(integration).unwrap(),
    )
}

pub async fn seal_open_round_trip(b: B) {
    let sealed = b.seal(TOKEN, &ctx("acme", "int1")).await.unwrap();
    let opened = b.open(&sealed, &ctx("acme", "int1")).await.unwrap();
    assert_eq!(opened.expose().as_slice(), TOKEN);
}

pub async fn open_with_a_different_context_fails(b: B) {
    let sealed = b.seal(TOKEN, &ctx("acme", "int1")).await.unwrap();
    // Warm any cache with the right context first: the cache must not bypass the check.
    b.open(&sealed, &ctx("acme", "int1")).await.unwrap();
    assert_eq!(
        b.open(&sealed, &ctx("other", "int1")).await.err(),
        Some(SecretBoxError::OpenFailed),
        "another tenant"
    );
    assert_eq!(
        b.open(&sealed, &ctx("acme", "int2")).await.err(),
        Some(SecretBoxError::OpenFailed),
        "another integration"
    );
}

pub async fn tampered_ciphertext_fails(b: B) {
    let sealed = b.seal(TOKEN, &ctx("acme", "int1")).await.unwrap();
    let (prefix, body) = match sealed.0.rsplit_once('.') {
        Some((p, b)) => (format!("{p}."), b.to_owned()),
        None => (String::new(), sealed.0.clone()),
    };
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let tampered = Sealed(format!(
        "{prefix}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ));
    assert_eq!(
        b.open(&tampered, &ctx("acme", "int1")).await.err(),
        Some(SecretBoxError::OpenFailed)
    );
    assert_eq!(
        b.open(&Sealed("not sealed at all".into()), &ctx("acme", "int1"))
            .await
            .err(),
        Some(SecretBoxError::OpenFailed)
    );
}

pub async fn sealed_text_does_not_contain_the_plaintext(b: B) {
    let sealed = b.seal(TOKEN, &ctx("acme", "int1")).await.unwrap();
    assert!(!sealed.0.contains("123456:ABC"));
    let again = b.seal(TOKEN, &ctx("acme", "int1")).await.unwrap();
    assert_ne!(sealed, again, "every seal uses a fresh nonce");
}
