//! Items in parallel, on moto with a slowed local reader: a job of several items is spread,
//! its items run as invocations of their own (played here concurrently, as Lambda would run
//! them), at most `ITEM_FAN_OUT` at a time, continuing when their budget runs out; the last one
//! zips the files, records the job once and hands off to notify once. One item's failure fails
//! the job once, naming the item, and leaves no file.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::TimeDelta;
use serde_json::{json, Value};

use exporter_core::domain::job::{JobDetail, JobEnd, JobStatus};
use exporter_core::domain::{NotifyEvent, RunEvent};
use exporter_core::ports::{FileStore, JobEnds, JobHistory, JobLedger, JobSpread, LaunchError, RunLauncher};
use integration_tests::doubles::HandOffs;
use integration_tests::{someone, Fixture, READER_START};
use run_export::{handle, Outcome, RunConfig};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";

/// `n` items of three days of minutes each, to CSV (about forty pieces of a hundred: more than
/// one budget of 150 ms).
fn body(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({"params": {"target": {"value": format!("urn:dev:{i}")}, "channelId": CHANNEL,
                "subtopic": "events.data", "from": READER_START, "to": READER_START + 3 * 86_400}})
        })
        .collect();
    json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "v"}, {"id": "name", "label": "n"}]},
        "type": "oneTime", "items": items,
        "notification": {"messages": []}
    })
}

/// Collects launched events.
#[derive(Default)]
struct Queue(Mutex<Vec<RunEvent>>);

#[async_trait]
impl RunLauncher for Queue {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
        if let Ok(mut q) = self.0.lock() {
            q.push(event.clone());
        }
        Ok(())
    }
}

/// One invocation: its event, when it ran, what it gave.
struct Invocation {
    event: RunEvent,
    span: (Instant, Instant),
    outcome: Outcome,
}

/// Runs `first`, then every launched event, those launched together concurrently (as Lambda
/// runs asynchronous invokes), until nothing is left.
async fn run_all(deps: run_export::Deps<'_>, queue: &Queue, first: RunEvent) -> Vec<Invocation> {
    let mut done = Vec::new();
    let mut pending = vec![first];
    while !pending.is_empty() {
        let runs = pending.drain(..).map(|event| async move {
            let start = Instant::now();
            let outcome = handle(deps, event.clone()).await.expect("runs");
            Invocation {
                event,
                span: (start, Instant::now()),
                outcome,
            }
        });
        done.extend(futures::future::join_all(runs).await);
        pending = queue
            .0
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        assert!(done.len() < 500, "a job that never ends");
    }
    done
}

#[tokio::test]
async fn a_job_of_several_items_runs_them_in_parallel_and_ends_with_one_zip_one_record_one_hand_off() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(20), 60, 100).await;
    let alice = someone();
    let queue = Queue::default();
    let hand_offs = HandOffs::default();

    // The reference: the same items one after the other.
    let sequential = fx.create_run(&alice, &body(5)).await;
    let one_by_one = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        ..fx.run_deps()
    };
    run_all(one_by_one, &queue, sequential.clone()).await;

    let event = fx.create_run(&alice, &body(5)).await;
    let config = RunConfig {
        fan_out: 3,
        budget: Some(TimeDelta::milliseconds(150)),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        ..fx.run_deps()
    };
    let invocations = run_all(deps, &queue, event.clone()).await;
    println!("items: {} invocations", invocations.len());
    assert_eq!(invocations[0].outcome, Outcome::Spread);
    let items: Vec<&Invocation> = invocations.iter().filter(|i| i.event.item.is_some()).collect();
    // At most three items at once: the first wave is three, each next item launched by one
    // that finished.
    let first_wave = invocations
        .iter()
        .skip(1)
        .take_while(|i| i.event.item.is_some_and(|n| n < 3) && i.event.leg.is_none())
        .count();
    assert_eq!(first_wave, 3, "the first three items launched together");
    let overlapping = items.iter().any(|a| {
        items
            .iter()
            .any(|b| a.event.item != b.event.item && a.span.0 < b.span.1 && b.span.0 < a.span.1)
    });
    assert!(overlapping, "item runs overlap");
    assert!(
        items.iter().any(|i| i.outcome == Outcome::Continued),
        "items continue past their budget too"
    );
    let outcomes: Vec<&Outcome> = invocations.iter().map(|i| &i.outcome).collect();
    assert_eq!(
        invocations.iter().filter(|i| i.outcome == Outcome::Done).count(),
        1,
        "one run ends the job: {outcomes:?}"
    );

    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files.len(), 5);
    assert_eq!(job.detail.windows.len(), 5);
    assert!(job.detail.archive.is_some(), "one zip");
    let reference = fx
        .store
        .job(&sequential.job())
        .await
        .expect("reads")
        .expect("a job");
    for (got, want) in job.detail.files.iter().zip(&reference.detail.files) {
        assert_eq!(
            got.key.rsplit('/').next(),
            want.key.rsplit('/').next(),
            "files in item order"
        );
        assert_eq!((got.rows, got.bytes), (want.rows, want.bytes));
        let a = fx.files.read(&got.key).await.expect("the file");
        let b = fx.files.read(&want.key).await.expect("the file");
        assert!(a == b, "{}: as the items one after the other wrote it", got.key);
    }
    let sent: Vec<NotifyEvent> = hand_offs.0.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        sent.iter().filter(|e| e.export_id == event.export_id).count(),
        1,
        "one hand-off to notify"
    );
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.contains(&event.export_id.to_string()) && k.contains("/.resume/"))
        .collect();
    assert!(left.is_empty(), "no checkpoint or tail left: {left:?}");
    let (_, state) = fx
        .call(
            "GET",
            &format!("/exports/{}/status", event.export_id),
            None,
            &alice,
        )
        .await;
    assert_eq!(state["status"], "done", "{state}");
    assert_eq!(fx.queued(&alice[0].1).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn one_failing_item_fails_the_job_once_naming_it_and_leaves_no_file() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(5), 60, 100).await;
    let alice = someone();
    let queue = Queue::default();
    let hand_offs = HandOffs::default();
    // Item 2 reads a channel the local reader refuses (not a UUID it knows: a 400).
    let mut request = body(4);
    request["format"]["extension"] = json!("xlsx");
    request["format"]["columns"] = json!([{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]);
    request["items"][2]["params"]["to"] = json!(READER_START + 60 * 86_400);
    let event = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        fan_out: 4,
        xlsx_max_rows: 10_000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        ..fx.run_deps()
    };
    let invocations = run_all(deps, &queue, event.clone()).await;
    let failed = invocations
        .iter()
        .filter(|i| i.outcome == Outcome::Failed)
        .count();
    assert_eq!(failed, 1, "one item fails the job");
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.detail.error.unwrap_or_default();
    assert!(error.starts_with("item 2: more than 10000 rows"), "{error}");
    let sent: Vec<NotifyEvent> = hand_offs.0.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent.len(), 1, "one hand-off, for onFailure");
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.contains(&event.export_id.to_string()))
        .collect();
    assert!(left.is_empty(), "no file left: {left:?}");
    let (_, state) = fx
        .call(
            "GET",
            &format!("/exports/{}/status", event.export_id),
            None,
            &alice,
        )
        .await;
    assert_eq!(state["status"], "failed", "{state}");
    assert_eq!(fx.queued(&alice[0].1).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn an_item_run_that_finds_its_job_failed_removes_what_an_earlier_attempt_left() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    let event = fx.create_run(&alice, &body(2)).await;
    let job = event.job();
    let now = chrono::Utc::now();
    // The job was spread; item 1 failed it; item 0's first attempt had stored its file and
    // could not count it (the store failed), so it gave its claim back for Lambda's retry.
    fx.start_job_at(&job, now).await;
    assert!(fx.store.spread_job(&job, 2, 0).await.expect("spreads"));
    fx.end_job_at(&job, now, JobStatus::Failed, Some("item 1: the reader refused"))
        .await;
    let prefix = exporter_core::domain::files::job_prefix(&event.export_id, &event.job_id());
    let stored = format!("{prefix}/urn_dev_0.csv");
    fx.files
        .put_bytes(&stored, b"t,v,n\r\n".to_vec())
        .await
        .expect("stores");

    // Lambda's retry of item 0's run.
    let retry = RunEvent {
        item: Some(0),
        ..event.clone()
    };
    let outcome = handle(fx.run_deps(), retry).await.expect("runs");
    assert_eq!(outcome, Outcome::Skipped);
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{prefix}/")))
        .collect();
    assert!(left.is_empty(), "nothing of the failed job stays: {left:?}");
}

/// The item ledger, where the job fails (another item's run failing it) just as an item
/// commits its checkpoint.
struct FailsTheJobAtCheckpoint<'a>(&'a exporter_adapters::dynamodb::DynamoStore);

#[async_trait]
impl exporter_core::ports::ItemLedger for FailsTheJobAtCheckpoint<'_> {
    async fn claim_item(
        &self,
        job: &exporter_core::domain::job::JobKey,
        item: u32,
        leg: u32,
        at: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, exporter_core::ports::StoreError> {
        self.0.claim_item(job, item, leg, at, lease_until).await
    }
    async fn release_item(
        &self,
        job: &exporter_core::domain::job::JobKey,
        item: u32,
    ) -> Result<(), exporter_core::ports::StoreError> {
        self.0.release_item(job, item).await
    }
    async fn checkpoint_item(
        &self,
        job: &exporter_core::domain::job::JobKey,
        item: u32,
        leg: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, exporter_core::ports::StoreError> {
        let end = JobEnd {
            status: JobStatus::Failed,
            detail: JobDetail {
                error: Some("item 1: the reader refused".into()),
                ..JobDetail::default()
            },
            finished_at: at,
            expires_at: None,
        };
        assert!(self.0.finish_job(job, &end).await?, "the job fails");
        self.0.checkpoint_item(job, item, leg, at).await
    }
    async fn item_done(
        &self,
        job: &exporter_core::domain::job::JobKey,
        item: u32,
        outcome: &exporter_core::domain::job::ItemOutcome,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<exporter_core::domain::job::Counted, exporter_core::ports::StoreError> {
        self.0.item_done(job, item, outcome, at).await
    }
}

#[tokio::test]
async fn an_item_that_pauses_after_its_job_failed_leaves_nothing_and_launches_no_next_leg() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(20), 60, 100).await;
    let alice = someone();
    let queue = Queue::default();
    let event = fx.create_run(&alice, &body(2)).await;
    let config = RunConfig {
        fan_out: 2,
        budget: Some(TimeDelta::milliseconds(150)),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    assert_eq!(
        handle(deps, event.clone()).await.expect("spreads"),
        Outcome::Spread
    );
    let launched = std::mem::take(&mut *queue.0.lock().expect("the queue"));
    let first = launched
        .into_iter()
        .find(|e| e.item == Some(0))
        .expect("item 0 launched");
    // Item 0 reads past its budget; as it commits its checkpoint, item 1 fails the job.
    let failing = FailsTheJobAtCheckpoint(&fx.store);
    let outcome = handle(
        run_export::Deps {
            items: &failing,
            ..deps
        },
        first,
    )
    .await
    .expect("runs");
    assert_eq!(outcome, Outcome::Skipped, "the item stops");
    let next: Vec<RunEvent> = queue.0.lock().map(|q| q.clone()).unwrap_or_default();
    assert!(next.is_empty(), "no next leg is launched: {next:?}");
    let prefix = exporter_core::domain::files::job_prefix(&event.export_id, &event.job_id());
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{prefix}/")))
        .collect();
    assert!(
        left.is_empty(),
        "neither its checkpoint nor its tail stays: {left:?}"
    );
    assert_eq!(fx.open_uploads().await, 0, "nor its open upload");
}

#[tokio::test]
async fn an_item_run_whose_launch_was_lost_is_relaunched_by_the_reconciler_and_the_job_ends() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(5), 60, 100).await;
    let alice = someone();
    let queue = Queue::default();
    let hand_offs = HandOffs::default();
    let event = fx.create_run(&alice, &body(3)).await;
    let config = RunConfig {
        fan_out: 3,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        ..fx.run_deps()
    };
    assert_eq!(handle(deps, event.clone()).await.expect("runs"), Outcome::Spread);
    let mut launched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(launched.len(), 3);
    // Item 2's invocation never comes; the others run.
    launched.retain(|e| e.item != Some(2));
    for run in launched {
        assert_eq!(handle(deps, run).await.expect("runs"), Outcome::ItemDone);
    }
    let waiting = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(waiting.status, JobStatus::InProgress);
    assert_eq!(waiting.spread.as_ref().map(|s| s.left), Some(1));

    tokio::time::sleep(Duration::from_millis(20)).await;
    let reconcile_config = reconcile::ReconcileConfig {
        grace: TimeDelta::zero(),
        ..reconcile::ReconcileConfig::default()
    };
    let sweep = fx.reconcile_deps(&queue, &hand_offs, &reconcile_config);
    let repairs = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(repairs.items_relaunched, 1, "{repairs:?}");
    assert_eq!(repairs.jobs_abandoned, 0, "{repairs:?}");
    let relaunched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(relaunched.iter().map(|e| e.item).collect::<Vec<_>>(), [Some(2)]);
    let outcomes = run_all(deps, &queue, relaunched[0].clone()).await;
    assert_eq!(outcomes.last().map(|i| i.outcome), Some(Outcome::Done));
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files.len(), 3);
    let sent: Vec<NotifyEvent> = hand_offs.0.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent.len(), 1, "one hand-off");
    assert_eq!(
        reconcile::handle(sweep).await.expect("sweeps").items_relaunched,
        0,
        "nothing left to relaunch"
    );
}

/// A spread job of three items with items 0 and 1 done; returns the job's trigger and item 2's
/// event (its run not yet made).
async fn two_of_three_done(fx: &Fixture, deps: run_export::Deps<'_>, queue: &Queue) -> (RunEvent, RunEvent) {
    let event = fx.create_run(&someone(), &body(3)).await;
    assert_eq!(handle(deps, event.clone()).await.expect("runs"), Outcome::Spread);
    let launched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(
        launched.iter().map(|e| e.item).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2)]
    );
    for run in &launched[..2] {
        assert_eq!(handle(deps, run.clone()).await.expect("runs"), Outcome::ItemDone);
    }
    (event, launched[2].clone())
}

/// A fixture whose reader answers in 2 ms; `None` without the emulators.
async fn quick_fixture() -> Option<Fixture> {
    let mut fx = Fixture::new().await?;
    fx.slow_reader(Duration::from_millis(2), 60, 100).await;
    Some(fx)
}

/// What a spread job's runs are given in these tests: launches queued, hand-offs recorded,
/// three items at once.
struct SpreadRun {
    queue: Queue,
    hand_offs: HandOffs,
    config: RunConfig,
}

impl SpreadRun {
    fn new(fx: &Fixture) -> Self {
        Self {
            queue: Queue::default(),
            hand_offs: HandOffs::default(),
            config: RunConfig {
                fan_out: 3,
                ..fx.run_config.clone()
            },
        }
    }

    fn deps<'a>(&'a self, fx: &'a Fixture) -> run_export::Deps<'a> {
        run_export::Deps {
            launcher: &self.queue,
            notifier: &self.hand_offs,
            config: &self.config,
            ..fx.run_deps()
        }
    }
}

/// A trigger delivered twice (at least once delivery, a dead letter replayed) while the job's
/// items run: the second is a duplicate, never a second run of the job that would strand its
/// items' outcomes.
#[tokio::test]
async fn a_duplicate_trigger_never_takes_over_a_spread_job() {
    let Some(fx) = quick_fixture().await else {
        return;
    };
    let run = SpreadRun::new(&fx);
    let (queue, hand_offs) = (&run.queue, &run.hand_offs);
    let deps = run.deps(&fx);
    let (event, last) = two_of_three_done(&fx, deps, queue).await;
    let before = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    // What the trigger's run asks first: the job is not to be claimed again (were it, its status
    // would read "not processed" until the run started it, and an item finishing then would be
    // refused its count).
    let now = chrono::Utc::now();
    assert!(
        !fx.store
            .open_job(&event.job(), now, now + TimeDelta::minutes(15))
            .await
            .expect("answers"),
        "a spread job is claimed again"
    );
    assert_eq!(
        handle(deps, event.clone()).await.expect("runs"),
        Outcome::Duplicate,
        "the trigger again"
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.attempts, before.attempts, "the job was claimed again");
    assert_eq!(job.status, JobStatus::InProgress);
    assert_eq!(job.spread.as_ref().map(|s| s.left), Some(1), "{:?}", job.spread);
    assert_eq!(handle(deps, last).await.expect("runs"), Outcome::Done);
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files.len(), 3);
    assert_eq!(hand_offs.0.lock().map(|h| h.len()).unwrap_or_default(), 1);
}

/// The last item's run zipping the files while a second finisher (the reconciler's, or a
/// duplicate of the last item's event) arrives: one of them ends the job, once; the other does
/// nothing, and no finished file is removed.
#[tokio::test]
async fn a_second_finisher_beside_the_last_items_run_ends_nothing_twice() {
    let Some(fx) = quick_fixture().await else {
        return;
    };
    let run = SpreadRun::new(&fx);
    let (queue, hand_offs) = (&run.queue, &run.hand_offs);
    let deps = run.deps(&fx);
    let (event, last) = two_of_three_done(&fx, deps, queue).await;
    let held = integration_tests::doubles::HeldPuts::new(&fx.files, ".zip");
    let zipping = run_export::Deps {
        files: &held,
        pieces: &held,
        uploads: &held,
        ..deps
    };
    let second = async {
        held.until_held().await;
        let outcome = handle(deps, last.clone()).await.expect("runs");
        let _ = held.release.send(true);
        outcome
    };
    let (first, second) = tokio::join!(handle(zipping, last.clone()), second);
    let outcomes = [first.expect("runs"), second];
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Done).count(),
        1,
        "one run ends the job: {outcomes:?}"
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    let archive = job.detail.archive.expect("a zip");
    assert!(fx.files.read(&archive.key).await.is_ok(), "the zip is there");
    for file in &job.detail.files {
        assert!(fx.files.read(&file.key).await.is_ok(), "{} is there", file.key);
    }
    assert_eq!(
        hand_offs.0.lock().map(|h| h.len()).unwrap_or_default(),
        1,
        "one hand-off"
    );
}

/// The last item's run dies while zipping (its invocation cut off at that await): the sweep
/// leaves the job alone while its finisher's claim and the grace last, then launches one
/// finisher, which ends the job once.
#[tokio::test]
async fn a_finisher_that_died_is_relaunched_after_the_grace_not_beside_a_live_one() {
    let Some(fx) = quick_fixture().await else {
        return;
    };
    let run = SpreadRun::new(&fx);
    let (queue, hand_offs) = (&run.queue, &run.hand_offs);
    let deps = run.deps(&fx);
    let (event, last) = two_of_three_done(&fx, deps, queue).await;
    let held = integration_tests::doubles::HeldPuts::new(&fx.files, ".zip");
    let zipping = run_export::Deps {
        files: &held,
        pieces: &held,
        uploads: &held,
        ..deps
    };
    tokio::select! {
        _ = handle(zipping, last.clone()) => panic!("the zip's put is held"),
        () = held.until_held() => {}
    }
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::InProgress);
    assert_eq!(job.spread.as_ref().map(|s| s.left), Some(0));

    let reconcile_config = reconcile::ReconcileConfig::default();
    let sweep = fx.reconcile_deps(queue, hand_offs, &reconcile_config);
    let repairs = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(
        (repairs.items_relaunched, repairs.jobs_abandoned),
        (0, 0),
        "nothing beside a finisher that may be alive: {repairs:?}"
    );
    assert!(queue.0.lock().map(|q| q.is_empty()).unwrap_or_default());

    let later = integration_tests::doubles::At(chrono::Utc::now() + TimeDelta::hours(1));
    let late_sweep = reconcile::Deps {
        clock: &later,
        ..sweep
    };
    let repairs = reconcile::handle(late_sweep).await.expect("sweeps");
    assert_eq!(repairs.items_relaunched, 1, "{repairs:?}");
    let relaunched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(relaunched.len(), 1);
    let an_hour_on = run_export::Deps {
        clock: &later,
        ..deps
    };
    assert_eq!(
        handle(an_hour_on, relaunched[0].clone()).await.expect("runs"),
        Outcome::Done
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files.len(), 3);
    assert_eq!(
        hand_offs.0.lock().map(|h| h.len()).unwrap_or_default(),
        1,
        "one hand-off"
    );
    let repairs = reconcile::handle(late_sweep).await.expect("sweeps");
    assert_eq!(repairs.items_relaunched, 0, "nothing left: {repairs:?}");
}

/// An item run counts its item done and cannot launch the next one (the store fails there); its
/// retry finds the item done: nothing runs the items not yet launched. The sweep, a grace after
/// the last item was done with none running, launches the next, and the job ends.
#[tokio::test]
async fn items_never_launched_after_a_failed_hand_on_are_launched_by_the_sweep() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(2), 60, 100).await;
    let queue = Queue::default();
    let hand_offs = HandOffs::default();
    let config = RunConfig {
        fan_out: 2,
        ..fx.run_config.clone()
    };
    let failing = integration_tests::doubles::FaultyItems::new(&fx.store);
    failing.failures.store(2, std::sync::atomic::Ordering::SeqCst);
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        items: &failing,
        spread: &failing,
        ..fx.run_deps()
    };
    let event = fx.create_run(&someone(), &body(3)).await;
    assert_eq!(handle(deps, event.clone()).await.expect("runs"), Outcome::Spread);
    let launched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(launched.len(), 2);
    for run in &launched {
        assert!(
            handle(deps, run.clone()).await.is_err(),
            "the next item could not be taken"
        );
        // The runtime's retry of that run: the item is done.
        assert_eq!(handle(deps, run.clone()).await.expect("runs"), Outcome::Duplicate);
    }
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::InProgress);
    assert_eq!(
        job.spread.as_ref().map(|s| (s.launched, s.left)),
        Some((2, 1)),
        "{:?}",
        job.spread
    );
    assert!(
        queue.0.lock().map(|q| q.is_empty()).unwrap_or_default(),
        "nothing runs item 2"
    );

    let sweep_config = reconcile::ReconcileConfig::default();
    let sweep = fx.reconcile_deps(&queue, &hand_offs, &sweep_config);
    let repairs = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(repairs.items_relaunched, 0, "not before the grace: {repairs:?}");
    let later = integration_tests::doubles::At(chrono::Utc::now() + TimeDelta::hours(1));
    let late_sweep = reconcile::Deps {
        clock: &later,
        ..sweep
    };
    let repairs = reconcile::handle(late_sweep).await.expect("sweeps");
    assert_eq!(repairs.items_relaunched, 1, "{repairs:?}");
    let relaunched = queue
        .0
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    assert_eq!(relaunched.iter().map(|e| e.item).collect::<Vec<_>>(), [Some(2)]);
    assert_eq!(
        handle(deps, relaunched[0].clone()).await.expect("runs"),
        Outcome::Done
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files.len(), 3);
}

#[tokio::test]
async fn the_last_items_run_out_of_time_for_the_zip_hands_it_to_a_fresh_invocation() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    let queue = Queue::default();
    let hand_offs = HandOffs::default();
    // Each invocation may work two seconds; each read of the zip takes two and a half.
    let mut slow = integration_tests::doubles::HeldPuts::new(&fx.files, ".never");
    slow.range_delay = Duration::from_millis(2500);
    let config = RunConfig {
        fan_out: 2,
        ..fx.run_config.clone()
    };
    let event = fx.create_run(&alice, &body(2)).await;
    let mut invocations = Vec::new();
    let mut pending = vec![event.clone()];
    while let Some(run) = pending.pop() {
        let deps = run_export::Deps {
            launcher: &queue,
            notifier: &hand_offs,
            files: &slow,
            pieces: &slow,
            uploads: &slow,
            config: &config,
            stop_at: Some(chrono::Utc::now() + TimeDelta::seconds(2)),
            ..fx.run_deps()
        };
        let outcome = handle(deps, run.clone()).await.expect("runs");
        invocations.push(Invocation {
            event: run,
            span: (Instant::now(), Instant::now()),
            outcome,
        });
        pending.extend(
            queue
                .0
                .lock()
                .map(|mut q| std::mem::take(&mut *q))
                .unwrap_or_default(),
        );
        assert!(invocations.len() < 100, "a job that never ends");
    }
    let outcomes: Vec<&Outcome> = invocations.iter().map(|i| &i.outcome).collect();
    // The last item's run gave the zip to a fresh invocation, which ran out of time on its own.
    let failed: Vec<&Invocation> = invocations
        .iter()
        .filter(|i| i.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    let relaunched = invocations.iter().filter(|i| i.event == failed[0].event).count();
    assert_eq!(
        relaunched, 2,
        "the failing finisher is a relaunch of an item's event: {outcomes:?}"
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let error = job.detail.error.unwrap_or_default();
    assert!(
        error.contains("ran out of time zipping the job's 2 files"),
        "{error}"
    );
    assert_eq!(
        hand_offs.0.lock().map(|h| h.len()).unwrap_or(0),
        1,
        "one hand-off"
    );
}

#[tokio::test]
async fn an_item_run_that_dies_between_counting_its_item_and_marking_its_run_is_retried_without_running_it_again(
) {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(2), 60, 100).await;
    let queue = Queue::default();
    let hand_offs = HandOffs::default();
    // Items continue across legs: the item that dies does in its last leg.
    let config = RunConfig {
        fan_out: 2,
        budget: Some(TimeDelta::milliseconds(150)),
        ..fx.run_config.clone()
    };
    let faulty = integration_tests::doubles::FaultyItems::new(&fx.store);
    faulty
        .deaths_after_done
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        items: &faulty,
        ..fx.run_deps()
    };
    let event = fx.create_run(&someone(), &body(2)).await;
    let job = event.job();
    let mut pending = vec![event.clone()];
    let mut outcomes = Vec::new();
    let mut died = None;
    while let Some(run) = pending.pop() {
        match handle(deps, run.clone()).await {
            Ok(outcome) => outcomes.push((run.item, outcome)),
            Err(_) => {
                // The attempt died after the item was counted on the job: its run record is as
                // it was before the attempt marked it (the second write never happened), and
                // its lease has passed when the runtime retries.
                let item = run.item.expect("an item run");
                let key = HashMap::from([
                    (
                        "pk".to_owned(),
                        AttributeValue::S(format!("EXPORT#{}", event.export_id)),
                    ),
                    (
                        "sk".to_owned(),
                        AttributeValue::S(format!(
                            "ITEM#{}#{item:04}",
                            event.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        )),
                    ),
                ]);
                fx.dynamo
                    .update_item()
                    .table_name(&fx.table)
                    .set_key(Some(key))
                    .update_expression("SET #status = :running, leaseUntil = :past REMOVE doneAt")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":running", AttributeValue::S("inProgress".into()))
                    .expression_attribute_values(":past", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .expect("moto updates");
                let spread = fx.store.job(&job).await.expect("reads").and_then(|j| j.spread);
                assert!(
                    spread.as_ref().is_some_and(|s| s.done.contains(&item)),
                    "counted: {spread:?}"
                );
                died = Some(run.clone());
                pending.push(run);
                continue;
            }
        }
        pending.extend(
            queue
                .0
                .lock()
                .map(|mut q| std::mem::take(&mut *q))
                .unwrap_or_default(),
        );
        assert!(outcomes.len() < 500, "a job that never ends");
    }
    let died = died.expect("an item run died after counting its item");
    let retried = outcomes
        .iter()
        .rev()
        .find(|(item, _)| *item == died.item)
        .map(|(_, outcome)| outcome);
    assert!(
        matches!(retried, Some(Outcome::ItemDone | Outcome::Done)),
        "the retry marks the item done, never runs it again: {outcomes:?}"
    );
    let runs = fx.store.item_runs(&job).await.expect("reads");
    assert!(runs.iter().filter(|r| r.item < 2).all(|r| r.done), "{runs:?}");
    let ended = fx.store.job(&job).await.expect("reads").expect("a job");
    assert_eq!(ended.status, JobStatus::Done, "{:?}", ended.detail.error);
    assert_eq!(ended.detail.files.len(), 2);
    assert!(ended.detail.archive.is_some());
    assert_eq!(
        hand_offs.0.lock().map(|h| h.len()).unwrap_or(0),
        1,
        "one hand-off"
    );
}
