//! The Standard Webhooks signer/verifier (`shared::signing::StandardWebhooks`), the
//! scheme our own pushes to tenants' bots are signed with.

use shared::signing::StandardWebhooks;

use crate::input;

/// Input: `<secret>\n<id>\n<timestamp>\n<header>\n<body>`. A secret that is accepted
/// signs so that its own signature verifies (alone, or among other signatures of the
/// header) and a different timestamp, id or body does not.
pub fn standard_webhooks(data: &[u8]) {
    let (secret, rest) = input::line(data);
    let (id, rest) = input::line(rest);
    let (timestamp, rest) = input::line(rest);
    let (header, body) = input::line(rest);
    let (Ok(secret), Ok(id), Ok(header)) = (
        std::str::from_utf8(secret),
        std::str::from_utf8(id),
        std::str::from_utf8(header),
    ) else {
        return;
    };
    let timestamp = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let Ok(signer) = StandardWebhooks::new(secret) else {
        return;
    };
    let _ = signer.verify(id, timestamp, body, header);
    let signature = signer.sign(id, timestamp, body);
    assert!(
        signer.verify(id, timestamp, body, &signature),
        "own signature refused"
    );
    assert!(
        signer.verify(id, timestamp, body, &format!("{header} {signature}")),
        "own signature after {header:?} refused"
    );
    assert!(
        signer.verify(id, timestamp, body, &format!("{signature} {header}")),
        "own signature before {header:?} refused"
    );
    if let Some(later) = timestamp.checked_add(1) {
        assert!(
            !signer.verify(id, later, body, &signature),
            "another timestamp verified"
        );
    }
    let mut other_body = body.to_vec();
    other_body.push(b'x');
    assert!(
        !signer.verify(id, timestamp, &other_body, &signature),
        "another body verified"
    );
    let other_id = format!("{id}x");
    assert!(
        !signer.verify(&other_id, timestamp, body, &signature),
        "another id verified"
    );
}
