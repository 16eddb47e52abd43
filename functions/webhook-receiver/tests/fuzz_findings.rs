//! Regression tests of what `infra/fuzz.sh` found in the providers' parsers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use shared::Secret;
use webhook_receiver::event::EventKind;
use webhook_receiver::providers;

/// Ids taken verbatim from a body may be empty strings: an empty event id dedupes every
/// such event as one; an empty sender or chat id makes every such sender one client.
/// The fix: the receiver refuses a body with such an event (`InboundEvent::missing_id`).
#[test]

fn no_parsed_event_has_an_empty_id() {
    let cases: [(&str, &str); 10] = [
        (
            "wappi",
            r#"{"messages":[{"wh_type":"incoming_message","id":"","from":"79990000001@c.us","body":"hi"}]}"#,
        ),
        (
            "wappi",
            r#"{"messages":[{"wh_type":"incoming_message","id":"m1","from":"","body":"hi"}]}"#,
        ),
        (
            "telegram_crm",
            r#"{"event_id":"","type":"message","message":{"id":1,"date":1700000000,"peer":{"user_id":1}}}"#,
        ),
        (
            "max",
            r#"{"update_type":"message_created","timestamp":1,"message":{"sender":{"user_id":1},"recipient":{},"timestamp":1,"body":{"mid":""}}}"#,
        ),
        (
            "whatsapp",
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":"","id":"wamid.1","timestamp":"1","type":"text","text":{"body":"hi"}}]}}]}]}"#,
        ),
        (
            "whatsapp",
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"","status":"read","timestamp":"1"}]}}]}]}"#,
        ),
        (
            "messenger",
            r#"{"object":"page","entry":[{"messaging":[{"sender":{"id":"1"},"message":{"mid":"","text":"hi"}}]}]}"#,
        ),
        (
            "instagram",
            r#"{"object":"instagram","entry":[{"messaging":[{"sender":{"id":""},"message":{"mid":"m1","text":"hi"}}]}]}"#,
        ),
        (
            "viber",
            r#"{"event":"message","timestamp":1,"message_token":1,"sender":{"id":""},"message":{"type":"text","text":"hi"}}"#,
        ),
        (
            "vk",
            r#"{"type":"message_new","event_id":"","secret":"s","object":{"message":{"id":1,"date":1,"peer_id":2,"from_id":2}}}"#,
        ),
    ];
    let config: BTreeMap<String, Secret<String>> = BTreeMap::new();
    let mut found = Vec::new();
    for (name, body) in cases {
        let provider = providers::find(name).unwrap();
        let Ok(parsed) = provider.parse(&config, body.as_bytes()) else {
            continue;
        };
        for event in parsed.events {
            let ids: Vec<&str> = match &event.kind {
                EventKind::Message(m) => {
                    vec![&m.sender.external_id, &m.chat_id, &m.provider_message_id]
                }
                EventKind::Edited {
                    provider_message_id,
                    ..
                }
                | EventKind::Status {
                    provider_message_id,
                    ..
                } => vec![provider_message_id],
                EventKind::Action {
                    sender, chat_id, ..
                } => vec![&sender.external_id, chat_id],
            };
            let empty = event.event_id.is_empty() || ids.iter().any(|id| id.is_empty());
            // The receiver refuses such a body (400) before anything is stored.
            if empty && event.missing_id().is_none() {
                found.push(format!("{name}: {body}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "events with an empty id:\n{}",
        found.join("\n")
    );
}
