//! Table requests per send (issue 19: each is one DynamoDB request in AWS). A count is
//! not a timing: pinned exactly, like the webhook receiver's in its `round_trips.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::sync::atomic::Ordering;

use serde_json::json;
use support::counted_app;

/// One query for the client with its identities, dialogs and route, one for the tenant's
/// integrations, one transaction for the message, its dialog, the provider-id pointer and
/// the route.
const HAPPY_PATH: (u64, u64) = (2, 1);
/// The same and the key's claim (one conditional write) and its completion.
const WITH_IDEMPOTENCY_KEY: (u64, u64) = (2, 3);
/// A repeated key answers from the completed claim: one refused write.
const REPEATED_KEY: (u64, u64) = (0, 1);

#[tokio::test]
async fn table_requests_per_send_are_pinned() {
    let (app, reads, writes) = counted_app().await;
    let take = || {
        (
            reads.swap(0, Ordering::SeqCst),
            writes.swap(0, Ordering::SeqCst),
        )
    };
    app.wappi("acme", "wappi1", "profile-a", true).await;
    let client = app.client("acme").await;
    app.world.knows("profile-a", support::USER_ID);
    let body = json!({"client_id": client, "text": "hi"});
    // The first send learns the route; the ones after it are the happy path.
    assert!(app.post("acme", &body, &[]).await.status.is_success());
    take();

    let r = app.post("acme", &body, &[]).await;
    assert!(r.status.is_success(), "{:?}", r.json_body());
    let happy = take();
    let keyed = [("idempotency-key", "send-1")];
    let r = app.post("acme", &body, &keyed).await;
    assert!(r.status.is_success(), "{:?}", r.json_body());
    let with_key = take();
    let again = app.post("acme", &body, &keyed).await;
    assert_eq!(again.status, r.status);
    assert_eq!(again.json_body()["message_id"], r.json_body()["message_id"]);
    let repeated = take();

    println!("table requests per send (reads, writes):");
    println!("  happy path:             {happy:?}");
    println!("  with an Idempotency-Key: {with_key:?}");
    println!("  the key repeated:        {repeated:?}");
    assert_eq!(
        app.messages("acme").await.len(),
        3,
        "the repeat stored nothing"
    );
    assert_eq!(happy, HAPPY_PATH, "happy path");
    assert_eq!(with_key, WITH_IDEMPOTENCY_KEY, "with an Idempotency-Key");
    assert_eq!(repeated, REPEATED_KEY, "the key repeated");
}
