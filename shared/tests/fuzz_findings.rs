//! Regression tests of what `infra/fuzz.sh` found in the API Gateway mapping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use shared::http::Router;
use shared::http::lambda::{RequestAuthorizer, dispatch_with_authorizer};

fn event(host: Option<&str>, raw_query: &str) -> Value {
    let mut headers = serde_json::Map::new();
    if let Some(host) = host {
        headers.insert("host".into(), host.into());
    }
    json!({
        "version": "2.0", "routeKey": "GET /v1/health", "rawPath": "/v1/health",
        "rawQueryString": raw_query, "headers": headers, "isBase64Encoded": false,
        "requestContext": {"http": {"method": "GET", "path": "/v1/health"}, "requestId": "r"},
    })
}

/// lambda_http 1.3.2's `request::from_str`, which `route_event` calls, panics (an
/// `unwrap` of `Url::parse`, an `expect` on `http::Request::builder`) on an event whose
/// URL does not parse, and (aws_lambda_events 1.2.1's `Body::from_maybe_encoded`) on a
/// body flagged base64 that is not, instead of answering an error: the invocation died.
/// The fix: `route_event` answers such an event 400.
#[tokio::test]

async fn an_event_whose_url_or_body_does_not_parse_is_an_error_not_a_panic() {
    use futures::FutureExt as _;
    let mut panicked = Vec::new();
    for event in [
        event(None, "a=\""),
        event(None, "a=b c"),
        event(Some("a`b.example.com"), ""),
        event(Some("xn--a.example.com"), ""),
        event(Some("example.com:99999"), ""),
        {
            let mut e = event(None, "");
            e["isBase64Encoded"] = true.into();
            e["body"] = "!".into();
            e
        },
    ] {
        let router = Router::new(None);
        let authorizer = RequestAuthorizer::new(None);
        let outcome = std::panic::AssertUnwindSafe(dispatch_with_authorizer(
            &router,
            &authorizer,
            event.clone(),
        ))
        .catch_unwind()
        .await;
        if outcome.is_err() {
            panicked.push(event.to_string());
        }
    }
    assert!(panicked.is_empty(), "panicked on:\n{}", panicked.join("\n"));
}

/// `phone::normalize` gives a phone that normalises to itself (one phone is one client):
/// the fuzz target `phone` found `888439245676` → `+78439245676`, which normalised to
/// nothing (the metadata accepts the national form, not its E.164 form). Fixed: a
/// candidate whose E.164 form is not valid is no phone.
#[test]
fn a_normalised_phone_normalises_to_itself() {
    use shared::domain::phone::normalize;
    for raw in [
        "888439245676",
        "8@)G88\u{1d}\0\u{1}43X92G45\u{1}@\u{0}67P6",
        "+7 999 123-45-67",
        "8 (999) 123-45-67",
    ] {
        let once = normalize(raw);
        assert_eq!(once.as_deref().and_then(normalize), once, "{raw:?}");
    }
    assert_eq!(normalize("888439245676"), None);
    assert_eq!(
        normalize("8 (999) 123-45-67").as_deref(),
        Some("+79991234567")
    );
}
