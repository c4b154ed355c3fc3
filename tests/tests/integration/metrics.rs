//! The metrics a run, a failed run and a sweep record, read from a recorder of the test's own
//! (the functions' `metrics` macros write to it while the test's thread runs them; the
//! deployed functions write the same to CloudWatch's embedded metric format, which
//! `black_box` reads from the stack's log).

use std::future::Future;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::CompositeKey;
use serde_json::json;

use exporter_adapters::reader::HttpReader;
use exporter_adapters::support::Secret;
use exporter_adapters::telemetry::names;
use exporter_core::ports::RunSchedules;
use integration_tests::doubles::{HandOffs, Launches};
use integration_tests::{recurring_body, someone, Fixture, READER_START};
use run_export::Outcome;

/// What `work` recorded: each metric with its labels, and its value.
type Recorded = Vec<(String, Vec<(String, String)>, DebugValue)>;

/// Runs `work` on a runtime of its own on this thread, recording its metrics.
fn recorded<F: Future<Output = ()>>(work: impl FnOnce() -> F) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work());
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value): (CompositeKey, _, _, DebugValue)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect()
}

/// The counter `name` with the label `label` (if any), summed over its other labels.
fn counted(metrics: &Recorded, name: &str, label: Option<(&str, &str)>) -> u64 {
    metrics
        .iter()
        .filter(|(n, labels, _)| {
            n == name && label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

fn recorded_values(metrics: &Recorded, name: &str) -> Vec<f64> {
    metrics
        .iter()
        .filter(|(n, _, _)| n == name)
        .flat_map(|(_, _, value)| match value {
            DebugValue::Histogram(values) => values.iter().map(|v| v.into_inner()).collect(),
            DebugValue::Gauge(v) => vec![v.into_inner()],
            DebugValue::Counter(c) => vec![*c as f64],
        })
        .collect()
}

fn one_time(minutes: i64) -> serde_json::Value {
    json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "t"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "urn:dev:a"}, "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482",
            "subtopic": "events.data", "from": READER_START, "to": READER_START + 60 * minutes}}],
        "notification": {"messages": []}
    })
}

#[test]
fn a_done_run_records_its_outcome_time_reads_and_what_it_wrote() {
    let mut ran = false;
    let metrics = recorded(|| async {
        let Some(fx) = Fixture::new().await else { return };
        let job = fx.create_run(&someone(), &one_time(30)).await;
        let outcome = run_export::handle(fx.run_deps(), job).await.expect("runs");
        assert_eq!(outcome, Outcome::Done);
        ran = true;
    });
    if !ran {
        return;
    }
    assert_eq!(
        counted(&metrics, names::RUNS, Some(("outcome", "done"))),
        1,
        "{metrics:?}"
    );
    assert_eq!(counted(&metrics, names::ROWS_WRITTEN, None), 30, "a row a minute");
    assert!(counted(&metrics, names::BYTES_WRITTEN, None) > 30 * 10);
    assert!(counted(&metrics, names::READER_PAGES, None) >= 1);
    assert!(counted(&metrics, names::POINTS_READ, None) >= 30);
    assert_eq!(counted(&metrics, names::JOBS_FAILED, None), 0);
    assert_eq!(recorded_values(&metrics, names::RUN_DURATION).len(), 1);
    assert_eq!(recorded_values(&metrics, names::JOB_LEGS), [1.0]);
    // Labels stay few: no export or job id is a dimension.
    for (name, labels, _) in &metrics {
        for (key, _) in labels {
            assert!(
                ["outcome", "reason", "medium", "result", "route", "status", "kind"].contains(&key.as_str()),
                "{name} has the label {key}"
            );
        }
    }
}

#[test]
fn a_run_the_reader_refuses_records_the_failure_and_its_reason_class() {
    let mut ran = false;
    let metrics = recorded(|| async {
        let Some(fx) = Fixture::new().await else { return };
        let job = fx.create_run(&someone(), &one_time(10)).await;
        // The service's credential expired: the reader answers 401.
        let refusing = HttpReader::new(&fx.reader_url, Secret::new("an-expired-token")).expect("a client");
        let deps = run_export::Deps {
            reader: &refusing,
            ..fx.run_deps()
        };
        let outcome = run_export::handle(deps, job).await.expect("runs");
        assert_eq!(outcome, Outcome::Failed);
        ran = true;
    });
    if !ran {
        return;
    }
    assert_eq!(
        counted(&metrics, names::RUNS, Some(("outcome", "failed"))),
        1,
        "{metrics:?}"
    );
    assert_eq!(
        counted(&metrics, names::JOBS_FAILED, Some(("reason", "readerRefused"))),
        1
    );
    assert_eq!(counted(&metrics, names::READER_REFUSED, None), 1);
    assert_eq!(counted(&metrics, names::ROWS_WRITTEN, None), 0);
}

#[test]
fn a_sweep_records_its_repairs_by_kind_and_their_total() {
    let mut ran = false;
    let metrics = recorded(|| async {
        let Some(fx) = Fixture::new().await else { return };
        let who = someone();
        let (status, export) = fx
            .call("POST", "/exports", Some(&recurring_body("PT1H")), &who)
            .await;
        assert_eq!(status, 201, "{export}");
        let id = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
        // Its schedule is lost: the sweep arms it again.
        fx.schedules.disarm(&id).await.expect("disarms");
        let launches = Launches::default();
        let hand_offs = HandOffs::default();
        let config = reconcile::ReconcileConfig::default();
        let repairs = reconcile::handle(fx.reconcile_deps(&launches, &hand_offs, &config))
            .await
            .expect("sweeps");
        assert!(repairs.schedules_rearmed >= 1, "{repairs:?}");
        ran = true;
    });
    if !ran {
        return;
    }
    let rearmed = counted(&metrics, names::REPAIRS, Some(("kind", "schedulesRearmed")));
    assert!(rearmed >= 1, "{metrics:?}");
    let total = recorded_values(&metrics, names::REPAIRS_TOTAL);
    assert_eq!(total.len(), 1, "one figure a sweep");
    assert!(total[0] >= rearmed as f64);
}
