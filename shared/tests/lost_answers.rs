//! Idempotency claims and delivery records whose writes fail or lose their answer (found
//! by the fault-injection soak, `tests/tests/soak.rs`): the write happened but the caller
//! was told it failed, or it failed once for a moment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use shared::adapters::embedded::EmbeddedTable;
use shared::domain::lead::DeliveryState;
use shared::domain::{IntegrationId, LeadId, TenantId};
use shared::faults::{Faults, FaultyTable, Moment};
use shared::ports::{ManualClock, Table};
use shared::repo::idempotency::{Claim, IdempotencyStore};
use shared::repo::leads::Leads;

fn faulty() -> (
    Arc<dyn Table>,
    Arc<Faults>,
    Arc<ManualClock>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(EmbeddedTable::open(&dir.path().join("table.redb")).unwrap());
    let faults = Faults::new(0, 0.0);
    let table = Arc::new(FaultyTable::new(inner, faults.clone()));
    (
        table,
        faults,
        Arc::new(ManualClock::at(Timestamp::now())),
        dir,
    )
}

#[tokio::test]
async fn a_claim_whose_write_lost_its_answer_is_still_acquired_by_its_caller() {
    let (table, faults, clock, _dir) = faulty();
    let store = IdempotencyStore::new(table, clock);
    let tenant = TenantId::parse("acme").unwrap();
    let lease = Duration::from_secs(60);
    // The read goes through; the conditional put is written, its answer lost.
    faults.arm(1, 1, Moment::After);
    let claim = store.claim(&tenant, "webhook", "update-1", "msg-1", lease);
    assert_eq!(
        claim.await.unwrap(),
        Claim::Acquired {
            data: "msg-1".into()
        },
        "not an error (a 5xx, then every redelivery answered 409 for the whole lease)"
    );
    let other = store.claim(&tenant, "webhook", "update-1", "msg-2", lease);
    assert_eq!(
        other.await.unwrap(),
        Claim::InProgress {
            data: "msg-1".into()
        },
        "anyone else still finds it held"
    );
    // A failed completion is retried in place.
    faults.arm(0, 2, Moment::Before);
    store
        .complete(&tenant, "webhook", "update-1", "msg-1", None, lease)
        .await
        .unwrap();
    let done = store.claim(&tenant, "webhook", "update-1", "msg-3", lease);
    assert!(matches!(done.await.unwrap(), Claim::Completed { .. }));
}

#[tokio::test]
async fn the_outcome_of_a_delivery_is_recorded_once_when_the_write_fails_or_loses_its_answer() {
    let (table, faults, clock, _dir) = faulty();
    let leads = Leads::new(table, clock);
    let tenant = TenantId::parse("acme").unwrap();
    let lead = LeadId::generate();
    for (integration, moment) in [("hook1", Moment::Before), ("bx1", Moment::After)] {
        let integration = IntegrationId::parse(integration).unwrap();
        let delivery = leads
            .start_round(&tenant, &lead, &integration, "webhooks")
            .await
            .unwrap();
        faults.arm(0, 1, moment);
        // The target has the lead: a lost record would make the job's retry deliver again.
        let recorded = leads
            .record(
                &tenant,
                &delivery,
                DeliveryState::Delivered,
                None,
                Some("777"),
            )
            .await;
        assert!(recorded.unwrap(), "{moment:?}");
        let now = leads
            .delivery(&tenant, &lead, &integration)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.status, DeliveryState::Delivered, "{moment:?}");
        assert_eq!(now.attempts, 1, "{moment:?}: one attempt counted once");
    }
}
