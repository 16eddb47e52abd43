//! One provider's `verify` + `parse` (+ `handshake`) on a request built from the input
//! ([`crate::input`]), with a fixed known secret so that some inputs verify.
//!
//! Flags (the input's first byte):
//! * [`SIGN`]: the harness adds the correct credential for the body (signature header,
//!   secret header, Origin), so mutated bodies still get past `verify` to `parse`;
//! * [`EXTRA`]: the config also has the optional fields (profile, account, phone number,
//!   community, allowed domains) that make `parse` filter;
//! * [`ALT`]: the other credential channel (the `token` query parameter instead of the
//!   header; Meta's SHA-1 `X-Hub-Signature` instead of SHA-256).
//!
//! Invariants:
//! * nothing panics;
//! * a request the harness signed verifies (VK, whose secret is in the body, excepted);
//! * a request that verifies with [`SECRET`] is refused with any other secret;
//! * a handshake answered 200 had the right verify token and echoes the challenge;
//! * every event of a parsed body has non-empty ids (event id, sender, chat, message), or
//!   is one `InboundEvent::missing_id` names, which the receiver refuses (fuzz finding 1,
//!   see [`crate::known`]).

use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue};
use shared::Secret;
use shared::repo::integrations::OpenConfig;
use webhook_receiver::event::{EventKind, InboundEvent};
use webhook_receiver::providers::{self, WebhookRequest};

use crate::input;

/// Every credential of the fuzzed integrations.
pub const SECRET: &str = "fuzz-secret-0123456789";
const OTHER_SECRET: &str = "another-secret-987654";
pub const SIGN: u8 = 0x01;
pub const EXTRA: u8 = 0x02;
pub const ALT: u8 = 0x04;
/// The allowed site of the web widget (with [`EXTRA`]).
pub const ORIGIN: &str = "https://shop.example.com";

const CREDENTIALS: [&str; 5] = [
    "webhook_secret",
    "app_secret",
    "auth_token",
    "verify_token",
    "bot_token",
];

pub fn config(provider: &str, secret: &str, extra: bool) -> OpenConfig {
    let mut config = OpenConfig::new();
    for field in CREDENTIALS {
        config.insert(field.to_owned(), Secret::new(secret.to_owned()));
    }
    if extra {
        let fields: &[(&str, &str)] = match provider {
            "wappi" => &[("profile_id", "fuzz-profile"), ("platform", "whatsapp")],
            "telegram_crm" => &[("account_id", "fuzz-account")],
            "whatsapp" => &[("phone_number_id", "277321005464405")],
            "vk" => &[("group_id", "-123456"), ("confirmation_code", "fuzz-code")],
            "web_widget" => &[("allowed_domains", "Shop.Example.com, example.org ,")],
            _ => &[],
        };
        for (k, v) in fields {
            config.insert((*k).to_owned(), Secret::new((*v).to_owned()));
        }
    }
    config
}

pub fn sha256_hex(key: &str, body: &[u8]) -> String {
    hex::encode(shared::signing::hmac_sha256(key.as_bytes(), body))
}

pub fn sha1_hex(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes any key"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The headers / query parameters that authenticate `body` for `provider` with `secret`
/// (none for VK: its secret is inside the body).
pub fn credentials(
    provider: &str,
    secret: &str,
    body: &[u8],
    alt: bool,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let h = |name: &str, value: String| (vec![(name.to_owned(), value)], vec![]);
    match provider {
        "telegram_bot" => h("x-telegram-bot-api-secret-token", secret.to_owned()),
        "max" => h("x-max-bot-api-secret", secret.to_owned()),
        "wappi" | "telegram_crm" if alt => (vec![], vec![("token".into(), secret.to_owned())]),
        "wappi" | "telegram_crm" => h("x-webhook-secret", secret.to_owned()),
        "whatsapp" | "instagram" | "messenger" if alt => h(
            "x-hub-signature",
            format!("sha1={}", sha1_hex(secret, body)),
        ),
        "whatsapp" | "instagram" | "messenger" => h(
            "x-hub-signature-256",
            format!("sha256={}", sha256_hex(secret, body)),
        ),
        "viber" => h("x-viber-content-signature", sha256_hex(secret, body)),
        "web_widget" => h("origin", ORIGIN.to_owned()),
        _ => (vec![], vec![]),
    }
}

fn fail(provider: &str, what: &str, event: &InboundEvent, body: &[u8]) -> ! {
    panic!(
        "{provider}: a parsed event has an empty {what}: {event:?}\nbody: {}",
        String::from_utf8_lossy(body)
    )
}

fn check_ids(provider: &str, event: &InboundEvent, body: &[u8]) {
    let fail = |what: &str| fail(provider, what, event, body);
    if event.event_id.is_empty() {
        fail("event_id");
    }
    match &event.kind {
        EventKind::Message(m) => {
            if m.sender.external_id.is_empty() {
                fail("sender id");
            }
            if m.chat_id.is_empty() {
                fail("chat_id");
            }
            if m.provider_message_id.is_empty() {
                fail("provider_message_id");
            }
        }
        EventKind::Edited {
            provider_message_id,
            ..
        }
        | EventKind::Status {
            provider_message_id,
            ..
        } => {
            if provider_message_id.is_empty() {
                fail("provider_message_id");
            }
        }
        EventKind::Action {
            sender, chat_id, ..
        } => {
            if sender.external_id.is_empty() {
                fail("sender id");
            }
            if chat_id.is_empty() {
                fail("chat_id");
            }
        }
    }
    let _ = event.type_name();
}

pub fn run(provider_name: &str, data: &[u8]) {
    let Some(mut input) = input::split(data) else {
        return;
    };
    let provider =
        providers::find(provider_name).unwrap_or_else(|| panic!("no provider {provider_name}"));
    let extra = input.flags & EXTRA != 0;
    let signed = input.flags & SIGN != 0;
    let config = config(provider_name, SECRET, extra);
    if signed {
        let alt = input.flags & ALT != 0;
        if alt {
            input.headers.remove("x-hub-signature-256");
            input.headers.remove("x-webhook-secret");
        }
        let (headers, query) = credentials(provider_name, SECRET, input.body, alt);
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                input.headers.insert(name, value);
            }
        }
        input.query.extend(query);
    }
    let req = WebhookRequest {
        headers: &input.headers,
        query: &input.query,
        body: input.body,
    };
    let verified = provider.verify(&config, &req);
    if signed && provider_name != "vk" {
        assert!(
            verified.is_ok(),
            "{provider_name}: a request signed with the secret is refused: {verified:?}"
        );
    }
    if verified.is_ok() && provider_name != "web_widget" {
        let other = self::config(provider_name, OTHER_SECRET, extra);
        let forged = provider.verify(&other, &req);
        assert!(
            forged.is_err(),
            "{provider_name}: a request verified with two different secrets"
        );
    }
    if provider_name == "web_widget" {
        let _ = webhook_receiver::providers::web_widget::WebWidget::allowed_origin(&config, &req);
    }
    if let Ok(answer) = provider.handshake(&config, &req) {
        assert_eq!(
            req.query.get("hub.verify_token").map(String::as_str),
            Some(SECRET),
            "{provider_name}: a handshake without the verify token was answered"
        );
        let challenge = req.query.get("hub.challenge").map(String::as_bytes);
        assert_eq!(
            Some(&answer.body[..]),
            challenge,
            "{provider_name}: handshake echo"
        );
    }
    let _ = provider.acknowledge();
    let _ = provider.visitor_rate_limit();
    if let Ok(parsed) = provider.parse(&config, input.body) {
        for event in &parsed.events {
            // The receiver refuses a body with an event `missing_id` names (400); every
            // other event must have all its ids.
            if event.missing_id().is_none() {
                check_ids(provider_name, event, input.body);
            }
            let _ = event.type_name();
        }
    }
}
