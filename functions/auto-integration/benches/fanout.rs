//! Fan-out cost (not a test; prints counts, asserts nothing): table reads, table writes and
//! queue calls to fan one lead out to 1, 5 and 20 integrations attached to its entity and
//! project (with overlap), on the embedded backend behind counting wrappers (each table
//! call is one DynamoDB request, each queue call one SQS request).
//! Run: `cargo bench -p auto-integration --bench fanout`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use shared::backend;
use shared::config::{Config, QueueRole};
use shared::domain::lead::Lead;
use shared::domain::{IntegrationId, LeadId, TenantId};
use shared::leads::service::LeadService;
use shared::ports::SystemClock;
use shared::repo::leads::{Attachment, RouteScope};
use shared::testing::{CountingQueue, CountingTable, store_integration};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("fan-out of one lead: table reads / table writes / queue calls");
    for n in [1usize, 5, 20] {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = backend::embedded(dir.path(), Arc::new(SystemClock)).unwrap();
        let config = Config::from_lookup(|_| None).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("hook{i}");
            store_integration(
                &ports,
                "acme",
                &id,
                "webhooks",
                &[
                    ("url", "https://example.com/hook"),
                    ("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                ],
                false,
            )
            .await;
            ids.push(IntegrationId::parse(id).unwrap());
        }
        let table = CountingTable::new(ports.table.clone());
        let (reads, writes) = (table.reads.clone(), table.writes.clone());
        ports.table = Arc::new(table);
        let mut service = LeadService::new(&ports, &config).unwrap();
        let queue = CountingQueue::new(ports.queue(QueueRole::LeadDelivery).unwrap());
        let queue_calls = queue.calls.clone();
        service.deliveries = Arc::new(queue);
        // Entity: the first two thirds; project: the last two thirds (overlapping).
        let cut = |from: usize, to: usize| ids[from.min(n)..to.min(n)].to_vec();
        for (scope, external, list) in [
            (RouteScope::Entity, "site-1", cut(0, (2 * n).div_ceil(3))),
            (RouteScope::Project, "proj-1", cut(n / 3, n)),
        ] {
            service
                .leads
                .set_attachment(
                    &tenant,
                    &Attachment {
                        scope,
                        external_id: external.into(),
                        integration_ids: list,
                    },
                )
                .await
                .unwrap();
        }
        let lead = Lead {
            id: LeadId::generate(),
            tenant_id: tenant.clone(),
            name: Some("Ivan".into()),
            phone: Some("+79161234567".into()),
            email: None,
            comment: None,
            source: None,
            utm: BTreeMap::new(),
            external_entity_id: Some("site-1".into()),
            external_project_id: Some("proj-1".into()),
            attributes: BTreeMap::new(),
            created_at: jiff::Timestamp::now(),
        };
        service.leads.insert(&lead).await.unwrap();
        let (r0, w0) = (
            reads.load(Ordering::Relaxed),
            writes.load(Ordering::Relaxed),
        );
        let report = service.dispatch(&lead, None).await.unwrap();
        assert_eq!(report.dispatched.len(), n);
        println!(
            "  {n:>2} integrations: {} reads, {} writes, {} queue calls",
            reads.load(Ordering::Relaxed) - r0,
            writes.load(Ordering::Relaxed) - w0,
            queue_calls.load(Ordering::Relaxed),
        );
    }
}
