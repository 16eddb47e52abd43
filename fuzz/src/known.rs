//! What these targets found, and what they still tolerate.
//!
//! 1. Fixed (commit cab5974): providers took ids from the body verbatim, so an empty
//!    string (`"mid": ""`, `"id": ""`, `"sender": {"id": ""}`, `"event_id": ""`) became an
//!    empty event id (every such event deduped as one) or an empty sender / chat id (every
//!    such sender one client) — wappi, telegram_crm, max, whatsapp, instagram, messenger,
//!    viber, vk. The receiver now refuses a body with such an event
//!    (`InboundEvent::missing_id`); the webhook targets check every other event's ids.
//! 2. Fixed in our code (commit cab5974), still in the dependency: lambda_http 1.3.2's
//!    `request::from_str` panics instead of failing on an event whose URL does not parse
//!    (a `host` header or `requestContext.domainName` that is no valid host: `a\`b`,
//!    `xn--a.example.com`, `example.com:99999`; a `rawQueryString` with a character
//!    `http::Uri` refuses: `a="`, `a=b c`), and aws_lambda_events 1.2.1's
//!    `Body::from_maybe_encoded` on `"isBase64Encoded": true` with a body that is not
//!    base64 (`"body": "!"`). `shared::http::lambda::route_event` now catches that and
//!    answers 400; the apigw_v2 target asserts it does (the panic never leaves
//!    `dispatch*`). Every function reads its events there (`serve` included, since it
//!    no longer goes through `lambda_http::run`); the target still calls the dependency
//!    directly as well, and tolerates its panic there unless `FUZZ_STRICT=1`.
//!
//! Under afl-fuzz every panic aborts at once (its panic hook), before any `catch_unwind`
//! can see it; [`tolerate_lambda_http_panics`] lets panics located in those two crates
//! unwind instead, as they do in production.

use std::sync::OnceLock;

pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// Runs `f`, letting a panic located inside lambda_http or aws_lambda_events unwind (to a
/// `catch_unwind` in `f`, or to here: then `None`); any other panic aborts as usual. With
/// [`strict`], every panic aborts.
pub fn tolerate_lambda_http_panics<T>(f: impl FnOnce() -> T) -> Option<T> {
    if strict() {
        return Some(f());
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let in_lambda_http = info.location().is_some_and(|l| {
            l.file().contains("/lambda_http-") || l.file().contains("/aws_lambda_events-")
        });
        if !in_lambda_http {
            eprintln!("{info}");
            std::process::abort();
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.ok()
}
