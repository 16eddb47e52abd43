//! The `Table` contract.

use std::sync::Arc;

use shared::ports::table::{
    AttrValue, CancelReason, Condition, Cursor, GSI1_PK, GSI1_SK, Item, Key, PutOutcome, Query,
    SortKey, TTL, Table, TableError, TransactOp, Update,
};

use crate::backends::Fixture;

type T = Fixture<Arc<dyn Table>>;

fn item(pk: &str, sk: &str, fields: &[(&str, AttrValue)]) -> Item {
    let mut item = Key::new(pk, sk).to_item();
    for (name, value) in fields {
        item.insert((*name).to_owned(), value.clone());
    }
    item
}

fn s(value: &str) -> AttrValue {
    AttrValue::s(value)
}

fn sks(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["sk"].as_s().unwrap_or_default().to_owned())
        .collect()
}

/// Pages through a query `limit` items at a time; returns every page's sort keys.
async fn pages(table: &dyn Table, query: Query, limit: u32) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = table
            .query(query.clone().limit(limit).after(cursor))
            .await
            .unwrap();
        if !page.items.is_empty() {
            out.push(sks(&page.items));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
        assert!(out.len() < 100, "paging does not terminate");
    }
}

pub async fn conditional_put_rejects_a_duplicate(t: T) {
    let first = item("TENANT#a", "UPDATE#1", &[("text", s("hello"))]);
    t.put(first.clone(), Some(Condition::ItemNotExists))
        .await
        .unwrap();
    let second = item("TENANT#a", "UPDATE#1", &[("text", s("again"))]);
    assert_eq!(
        t.put(second, Some(Condition::ItemNotExists)).await,
        Err(TableError::ConditionFailed)
    );
    let stored = t.get(&Key::new("TENANT#a", "UPDATE#1")).await.unwrap();
    assert_eq!(stored, Some(first));
}

/// One request that writes, or answers with what is there instead (the idempotency
/// claim's path: a duplicate costs no read).
pub async fn put_or_current_answers_a_failed_condition_with_the_stored_item(t: T) {
    let key = Key::new("TENANT#a", "CLAIM#1");
    let first = item(
        "TENANT#a",
        "CLAIM#1",
        &[
            ("status", s("in_progress")),
            ("lease_until", AttrValue::n(1_700_000_000_123_i64)),
        ],
    );
    assert_eq!(
        t.put_or_current(first.clone(), Condition::ItemNotExists)
            .await,
        Ok(PutOutcome::Written)
    );
    let second = item("TENANT#a", "CLAIM#1", &[("status", s("other"))]);
    assert_eq!(
        t.put_or_current(second.clone(), Condition::ItemNotExists)
            .await,
        Ok(PutOutcome::Refused(Some(first.clone()))),
        "the stored item, numbers intact"
    );
    assert_eq!(
        t.get(&key).await.unwrap(),
        Some(first.clone()),
        "nothing written"
    );
    let held = Condition::Eq("lease_until".into(), AttrValue::n(1_700_000_000_123_i64));
    assert_eq!(
        t.put_or_current(second.clone(), held).await,
        Ok(PutOutcome::Written)
    );
    assert_eq!(t.get(&key).await.unwrap(), Some(second));
    let absent = item("TENANT#a", "CLAIM#2", &[("status", s("x"))]);
    assert_eq!(
        t.put_or_current(absent, Condition::ItemExists).await,
        Ok(PutOutcome::Refused(None)),
        "no item to answer with"
    );
}

pub async fn twenty_concurrent_conditional_puts_have_exactly_one_winner(t: T) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let table = t.port.clone();
            tokio::spawn(async move {
                let it = item("TENANT#a", "DEDUP#42", &[("writer", AttrValue::n(i))]);
                table.put(it, Some(Condition::ItemNotExists)).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(TableError::ConditionFailed) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

pub async fn transact_write_with_one_failing_condition_writes_nothing(t: T) {
    t.put(item("TENANT#a", "EXISTING", &[]), None)
        .await
        .unwrap();
    let result = t
        .transact_write(vec![
            TransactOp::Put {
                item: item("TENANT#a", "NEW#1", &[]),
                condition: Some(Condition::ItemNotExists),
            },
            TransactOp::Put {
                item: item("TENANT#a", "EXISTING", &[("x", s("overwritten"))]),
                condition: Some(Condition::ItemNotExists),
            },
            TransactOp::Update {
                key: Key::new("TENANT#a", "COUNTER"),
                update: Update::new().add("n", 1),
                condition: None,
            },
        ])
        .await;
    assert_eq!(
        result,
        Err(TableError::TransactionCanceled {
            reasons: vec![
                CancelReason::None,
                CancelReason::ConditionFailed,
                CancelReason::None
            ]
        })
    );
    assert_eq!(t.get(&Key::new("TENANT#a", "NEW#1")).await.unwrap(), None);
    assert_eq!(t.get(&Key::new("TENANT#a", "COUNTER")).await.unwrap(), None);
    assert_eq!(
        t.get(&Key::new("TENANT#a", "EXISTING")).await.unwrap(),
        Some(item("TENANT#a", "EXISTING", &[]))
    );
}

pub async fn transact_write_applies_every_action_together(t: T) {
    t.put(item("TENANT#a", "OLD", &[]), None).await.unwrap();
    t.put(item("TENANT#a", "GUARD", &[("state", s("open"))]), None)
        .await
        .unwrap();
    t.transact_write(vec![
        TransactOp::Put {
            item: item("TENANT#a", "NEW", &[]),
            condition: Some(Condition::ItemNotExists),
        },
        TransactOp::Delete {
            key: Key::new("TENANT#a", "OLD"),
            condition: Some(Condition::ItemExists),
        },
        TransactOp::Check {
            key: Key::new("TENANT#a", "GUARD"),
            condition: Condition::Eq("state".into(), s("open")),
        },
        TransactOp::Update {
            key: Key::new("TENANT#a", "COUNTER"),
            update: Update::new().add("n", 2),
            condition: None,
        },
    ])
    .await
    .unwrap();
    assert!(t.get(&Key::new("TENANT#a", "NEW")).await.unwrap().is_some());
    assert!(t.get(&Key::new("TENANT#a", "OLD")).await.unwrap().is_none());
    let counter = t
        .get(&Key::new("TENANT#a", "COUNTER"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counter["n"].as_i64(), Some(2));
    let twice = t
        .transact_write(vec![
            TransactOp::Delete {
                key: Key::new("TENANT#a", "NEW"),
                condition: None,
            },
            TransactOp::Delete {
                key: Key::new("TENANT#a", "NEW"),
                condition: None,
            },
        ])
        .await;
    assert!(matches!(twice, Err(TableError::Validation(_))), "{twice:?}");
}

pub async fn query_by_partition_and_sort_key_prefix_pages_through_the_base_table(t: T) {
    for i in 0..7 {
        t.put(item("TENANT#a", &format!("MSG#{i:03}"), &[]), None)
            .await
            .unwrap();
    }
    t.put(item("TENANT#a", "PROFILE", &[]), None).await.unwrap();
    t.put(item("TENANT#b", "MSG#000", &[]), None).await.unwrap();
    let query = Query::partition("TENANT#a").sort(SortKey::BeginsWith("MSG#".into()));
    let got = pages(t.port.as_ref(), query, 3).await;
    assert_eq!(
        got,
        vec![
            vec!["MSG#000", "MSG#001", "MSG#002"],
            vec!["MSG#003", "MSG#004", "MSG#005"],
            vec!["MSG#006"],
        ]
    );
    let between = t
        .query(
            Query::partition("TENANT#a").sort(SortKey::Between("MSG#002".into(), "MSG#004".into())),
        )
        .await
        .unwrap();
    assert_eq!(sks(&between.items), vec!["MSG#002", "MSG#003", "MSG#004"]);
    assert_eq!(between.next, None);
}

pub async fn query_on_gsi_by_prefix_pages_and_skips_items_without_index_keys(t: T) {
    for i in 0..5 {
        t.put(
            item(
                &format!("DIALOG#{i}"),
                "META",
                &[
                    (GSI1_PK, s("TENANT#a#DIALOGS")),
                    (GSI1_SK, s(&format!("2026-11-0{i}#DIALOG#{i}"))),
                ],
            ),
            None,
        )
        .await
        .unwrap();
    }
    t.put(
        item(
            "DIALOG#x",
            "META",
            &[(GSI1_PK, s("TENANT#b#DIALOGS")), (GSI1_SK, s("2026-11-01"))],
        ),
        None,
    )
    .await
    .unwrap();
    t.put(item("DIALOG#no-index", "META", &[]), None)
        .await
        .unwrap();
    let query = Query::gsi1("TENANT#a#DIALOGS").sort(SortKey::BeginsWith("2026-11".into()));
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = t.query(query.clone().limit(2).after(cursor)).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(
            page.items
                .iter()
                .map(|i| i["pk"].as_s().unwrap_or_default().to_owned()),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["DIALOG#0", "DIALOG#1", "DIALOG#2", "DIALOG#3", "DIALOG#4"]
    );
}

pub async fn query_backward_returns_descending_sort_keys(t: T) {
    for sk in ["A", "B", "C", "D"] {
        t.put(item("P", sk, &[]), None).await.unwrap();
    }
    let got = pages(t.port.as_ref(), Query::partition("P").backward(), 3).await;
    assert_eq!(got, vec![vec!["D", "C", "B"], vec!["A"]]);
    let below = t
        .query(
            Query::partition("P")
                .sort(SortKey::Lt("C".into()))
                .backward(),
        )
        .await
        .unwrap();
    assert_eq!(sks(&below.items), vec!["B", "A"]);
}

pub async fn ttl_attribute_is_stored_as_a_number(t: T) {
    t.put(
        item("LOG#a", "1", &[(TTL, AttrValue::n(1_900_000_000))]),
        None,
    )
    .await
    .unwrap();
    let stored = t.get(&Key::new("LOG#a", "1")).await.unwrap().unwrap();
    assert_eq!(stored[TTL], AttrValue::N("1900000000".into()));
    let bad = t
        .put(item("LOG#a", "2", &[(TTL, s("tomorrow"))]), None)
        .await;
    assert!(matches!(bad, Err(TableError::Validation(_))), "{bad:?}");
}

pub async fn update_upserts_increments_and_honours_its_condition(t: T) {
    let key = Key::new("TENANT#a", "CLIENT#1");
    let created = t
        .update(
            &key,
            Update::new().set("name", s("Ann")).add("unread", 1),
            None,
        )
        .await
        .unwrap();
    assert_eq!(created["name"], s("Ann"));
    assert_eq!(created["unread"].as_i64(), Some(1));
    let bumped = t
        .update(
            &key,
            Update::new().add("unread", 2).remove("name"),
            Some(Condition::Eq("unread".into(), AttrValue::n(1))),
        )
        .await
        .unwrap();
    assert_eq!(bumped["unread"].as_i64(), Some(3));
    assert!(!bumped.contains_key("name"));
    let refused = t
        .update(
            &key,
            Update::new().set("name", s("Bob")),
            Some(Condition::Lt("unread".into(), AttrValue::n(3))),
        )
        .await;
    assert_eq!(refused, Err(TableError::ConditionFailed));
    let missing = t
        .update(
            &Key::new("TENANT#a", "CLIENT#404"),
            Update::new().set("name", s("x")),
            Some(Condition::ItemExists),
        )
        .await;
    assert_eq!(missing, Err(TableError::ConditionFailed));
    assert_eq!(
        t.get(&Key::new("TENANT#a", "CLIENT#404")).await.unwrap(),
        None
    );
}

pub async fn delete_returns_the_old_item_and_honours_its_condition(t: T) {
    let key = Key::new("TENANT#a", "INTEGRATION#1");
    t.put(
        item("TENANT#a", "INTEGRATION#1", &[("status", s("active"))]),
        None,
    )
    .await
    .unwrap();
    let refused = t
        .delete(&key, Some(Condition::Eq("status".into(), s("inactive"))))
        .await;
    assert_eq!(refused, Err(TableError::ConditionFailed));
    let old = t.delete(&key, None).await.unwrap();
    assert_eq!(old.map(|i| i["status"].clone()), Some(s("active")));
    assert_eq!(t.delete(&key, None).await.unwrap(), None);
}

pub async fn large_integers_are_stored_exactly(t: T) {
    let seq = "18446744073709551615";
    let json = serde_json::json!({"seq": 9_223_372_036_854_775_807i64, "mid": u64::MAX});
    t.put(
        item(
            "MAX#1",
            "EVENT",
            &[
                ("seq", AttrValue::N(seq.into())),
                ("raw", AttrValue::from_json(&json)),
            ],
        ),
        None,
    )
    .await
    .unwrap();
    let stored = t.get(&Key::new("MAX#1", "EVENT")).await.unwrap().unwrap();
    assert_eq!(stored["seq"], AttrValue::N(seq.into()));
    assert_eq!(stored["raw"].to_json(), json);
}

pub async fn an_item_without_sort_key_is_rejected(t: T) {
    let mut it = Item::new();
    it.insert("pk".into(), s("TENANT#a"));
    let result = t.put(it, None).await;
    assert!(
        matches!(result, Err(TableError::Validation(_))),
        "{result:?}"
    );
    let empty_key = t.put(item("TENANT#a", "", &[]), None).await;
    assert!(
        matches!(empty_key, Err(TableError::Validation(_))),
        "{empty_key:?}"
    );
}

pub async fn a_foreign_cursor_is_rejected(t: T) {
    let result = t
        .query(Query::partition("P").after(Some(Cursor::parse("%%%not-a-cursor"))))
        .await;
    assert_eq!(result, Err(TableError::InvalidCursor));
}
