//! A lead whose creation is retried after its fan-out was queued (found by the
//! fault-injection soak, `tests/soak.rs`): the batch of delivery jobs reached the queue but
//! its answer was lost, so the request answered 503; the worker delivered the lead; the
//! client's retry with the same Idempotency-Key must not start a second round that
//! delivers it again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shared::config::{Config, QueueRole};
use shared::domain::TenantId;
use shared::faults::{Faults, FaultyQueue, Moment};
use shared::http::{ApiRequest, ApiResponse, JwtClaims, Role};
use shared::ports::ManualClock;
use shared::testing::{FakeServer, store_integration};
use shared::worker::{WorkerOptions, poll_once};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn request(method: Method, path: &str, body: &Value, key: Option<&'static str>) -> ApiRequest {
    let mut req = ApiRequest::new(method, path);
    req.claims = Some(JwtClaims {
        tenant_id: TenantId::parse("acme").unwrap(),
        sub: "u".into(),
        role: Role::Owner,
    });
    req.headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json"),
    );
    if let Some(key) = key {
        req.headers.insert(
            HeaderName::from_static("idempotency-key"),
            HeaderValue::from_static(key),
        );
    }
    req.body = body.to_string().into_bytes().into();
    req
}

#[tokio::test]
async fn a_lead_retried_after_its_lost_fan_out_answer_is_delivered_once() {
    let hook = FakeServer::start(|_| (204, Value::Null)).await.unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new(0, 0.0);
    let ports = shared::backend::embedded(dir.path(), clock.clone())
        .unwrap()
        .map_queues(|role, queue| {
            if role == QueueRole::LeadDelivery {
                Arc::new(FaultyQueue::new(queue, faults.clone()))
            } else {
                queue
            }
        });
    let config = Config::from_lookup(|_| None).unwrap();
    let router = devserver::router(&ports, &config).unwrap();
    let delivery = devserver::consumers(&ports, &config)
        .unwrap()
        .into_iter()
        .find(|(role, _)| *role == QueueRole::LeadDelivery)
        .unwrap()
        .1;
    let url = format!("{}/hooks/lead", hook.base);
    store_integration(
        &ports,
        "acme",
        "hook1",
        "webhooks",
        &[("url", &url), ("secret", WHSEC)],
        false,
    )
    .await;
    let routed = router
        .handle(request(
            Method::PUT,
            "/v1/lead-routing/entities/site-1",
            &json!({"integration_ids": ["hook1"]}),
            None,
        ))
        .await;
    assert_eq!(routed.status, StatusCode::OK);
    let create = || async {
        let body = json!({"name": "Ivan", "external_entity_id": "site-1"});
        router
            .handle(request(Method::POST, "/v1/leads", &body, Some("form-1")))
            .await
    };
    let work = || async {
        let queue = ports.queue(QueueRole::LeadDelivery).unwrap();
        let options = WorkerOptions {
            batch_size: 10,
            visibility: std::time::Duration::from_secs(60),
            idle: std::time::Duration::from_millis(10),
        };
        for _ in 0..4 {
            poll_once(queue.as_ref(), delivery.as_ref(), options)
                .await
                .unwrap();
            clock.advance(SignedDuration::from_secs(1000));
        }
    };

    // The jobs reach the queue; the answer to the batch is lost.
    faults.arm(0, 1, Moment::After);
    let first: ApiResponse = create().await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    work().await;
    assert_eq!(hook.requests().len(), 1, "the queued round was delivered");

    let second = create().await;
    assert_eq!(
        second.status,
        StatusCode::CREATED,
        "{:?}",
        second.json_body()
    );
    work().await;
    assert_eq!(
        hook.requests().len(),
        1,
        "the retry resumed the fan-out instead of delivering a second round"
    );
    let lead = second.json_body()["id"].as_str().unwrap().to_owned();
    let deliveries = router
        .handle(request(
            Method::GET,
            &format!("/v1/leads/{lead}/deliveries"),
            &Value::Null,
            None,
        ))
        .await
        .json_body();
    assert_eq!(deliveries["items"][0]["status"], "delivered");
    assert_eq!(deliveries["items"][0]["round"], 1);
}
