//! The sweep's benchmark (`make bench`): one reconciler sweep on the local stack (moto), on a
//! table of its own holding 50 live recurring exports, timed as the history kept grows (deleted
//! exports, and ended jobs that were handed to notify and notified: four jobs per export). For
//! each size it prints the sweep's time (median of three) and the items DynamoDB read for it,
//! beside what the full-table scans the sweep made before its index would read and take.
//! Figures only.
//!   sweep-bench HISTORY_ITEMS...

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeDelta, Utc};

use exporter_adapters::dynamodb::DynamoStore;
use exporter_core::domain::ExportId;
use integration_tests::doubles::{Armed, HandOffs, ItemsRead, Launches};
use integration_tests::history::{history_of, put_all};
use integration_tests::{recurring_body, someone, Fixture};
use reconcile::ReconcileConfig;

const LIVE: usize = 50;

/// What the sweep read before its index: four full-table scans (exports, stalled jobs, ended
/// jobs not handed off, quotas); their time and the items they read.
async fn full_scans(client: &aws_sdk_dynamodb::Client, table: &str) -> (f64, usize) {
    let started = Instant::now();
    let mut read = 0;
    for filter in [
        "sk = :export",
        "begins_with(sk, :job) AND #status IN (:waiting, :running)",
        "begins_with(sk, :job) AND #status IN (:done, :failed) AND attribute_not_exists(handedOff)",
        "sk = :quota",
    ] {
        let mut scan = client
            .scan()
            .table_name(table)
            .filter_expression(filter)
            .consistent_read(true);
        let values = [
            (":export", "EXPORT"),
            (":job", "JOB#"),
            (":waiting", "notProcessed"),
            (":running", "inProgress"),
            (":done", "done"),
            (":failed", "failed"),
            (":quota", "QUOTA"),
        ];
        for (name, value) in values {
            if filter.contains(name) {
                scan = scan.expression_attribute_values(name, AttributeValue::S(value.into()));
            }
        }
        if filter.contains("#status") {
            scan = scan.expression_attribute_names("#status", "status");
        }
        let mut pages = scan.into_paginator().send();
        while let Some(page) = pages.next().await {
            read += usize::try_from(page.expect("moto scans").scanned_count()).unwrap_or(0);
        }
    }
    (started.elapsed().as_secs_f64() * 1000.0, read)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("HISTORY_ITEMS is a number"))
        .collect();
    let fx = Fixture::new()
        .await
        .expect("the local stack is up (scripts/stack.sh up)");
    let table = format!("sweep-bench-{}", ExportId::new_random());
    DynamoStore::create_table(&fx.dynamo, &table)
        .await
        .expect("creates");
    let read = ItemsRead::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(
        fx.dynamo.config().to_builder().interceptor(read.clone()).build(),
    );
    let store = DynamoStore::new(counted, &table);

    // The live exports: one as the API wrote it, copied with fresh ids.
    let (status, export) = fx
        .call("POST", "/exports", Some(&recurring_body("P1D")), &someone())
        .await;
    assert_eq!(status, 201, "{export}");
    let id = export["id"].as_str().expect("an id");
    let key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("EXPORT#{id}"))),
        ("sk".to_owned(), AttributeValue::S("EXPORT".into())),
    ]);
    let mut template = fx
        .dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(key))
        .send()
        .await
        .expect("reads")
        .item
        .expect("the export");
    template.remove("sweep");
    let mut live = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..LIVE {
        let id = ExportId::new_random();
        let mut item = template.clone();
        item.insert("pk".into(), AttributeValue::S(format!("EXPORT#{id}")));
        live.push(item);
        ids.push(id);
    }
    put_all(&fx.dynamo, &table, live).await;
    for at in [Utc::now(), Utc::now() + TimeDelta::minutes(31)] {
        store
            .index_for_sweeps(at, std::time::Duration::from_secs(60))
            .await
            .expect("indexes");
    }

    let launches = Launches::default();
    let hand_offs = HandOffs::default();
    let schedules = Armed(ids);
    let config = ReconcileConfig::default();
    let sweep =
        || reconcile::handle(fx.reconcile_deps_on(&store, &schedules, &launches, &hand_offs, &config));

    println!("== the reconciler's sweep, {LIVE} live recurring exports, against the history kept");
    let mut held = 0;
    for size in sizes {
        let mut history = Vec::new();
        let mut n = 0;
        while held + history.len() < size {
            history.extend(history_of(&template, n));
            n += 1;
        }
        held += history.len();
        put_all(&fx.dynamo, &table, history).await;
        let mut times = Vec::new();
        let mut items = 0;
        for _ in 0..3 {
            read.take();
            let started = Instant::now();
            let repairs = sweep().await.expect("sweeps");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            items = read.take();
            assert_eq!(repairs, reconcile::Repairs::default(), "nothing to repair");
        }
        times.sort_by(f64::total_cmp);
        let (scan_ms, scanned) = full_scans(&fx.dynamo, &table).await;
        println!(
            "  history {held:>6} items: sweep {:>7.1} ms, {items:>4} items read | full-table scans {scan_ms:>8.1} ms, {scanned:>6} items read",
            times[1]
        );
    }
    fx.dynamo
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("drops");
}
