//! Runs that continue past one invocation, on moto with a slowed local reader: with a budget of
//! a fraction of a second a job pauses at a boundary between the reader's pieces, saves its
//! checkpoint and continues in fresh invocations (played here one after the other, as Lambda's
//! asynchronous invokes would run them), and its files are byte for byte those of a run that
//! never stopped; an invocation killed between checkpoints is resumed by the reconciler from
//! the last checkpoint, not from the start.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};

use exporter_core::domain::job::JobStatus;
use exporter_core::domain::{ExportId, ExportStatus, RunEvent};
use exporter_core::ports::{ExportLifecycle, Exports, FileStore, GrowingFiles, JobHistory, Upload};
use integration_tests::doubles::{HandOffs, Launches};
use integration_tests::{someone, Fixture, READER_START};
use run_export::{handle, Outcome, RunConfig};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";

/// Three days of a point a minute (4,320 points), raw, and their 15-minute standard deviations.
fn body() -> Value {
    let window = |name: &str| {
        json!({"params": {"target": {"value": name}, "channelId": CHANNEL, "subtopic": "events.data",
            "from": READER_START, "to": READER_START + 3 * 86_400}})
    };
    let mut decimated = window("urn:dev:b");
    decimated["params"]["decimation"] = json!({"ds": "15m", "dsf": "stddev"});
    json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "v"}, {"id": "count", "label": "n"}]},
        "type": "oneTime", "items": [window("urn:dev:a"), decimated],
        "notification": {"messages": []}
    })
}

/// One raw item of `points` seconds (a point each from a reader at a step of 1 s), to CSV.
fn dense_body(points: i64) -> Value {
    let mut request = body();
    request["format"]["columns"] = json!([{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]);
    request["items"] = json!([{"params": {"target": {"value": "urn:dev:a"}, "channelId": CHANNEL,
        "subtopic": "events.data", "from": READER_START, "to": READER_START + points}}]);
    request
}

/// Runs `first` and every continuation it launches, one invocation after the other; returns
/// each invocation's outcome.
async fn run_to_end(deps: run_export::Deps<'_>, queue: &Launches, first: RunEvent) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut pending = vec![first];
    while let Some(event) = pending.pop() {
        outcomes.push(handle(deps, event).await.expect("runs"));
        pending.extend(queue.take());
        assert!(outcomes.len() < 500, "a job that never ends");
    }
    outcomes
}

/// One short raw item (600 s), then a long one of `seconds` (a point a second from the reader
/// `slow_reader(.., 1, 1000)` makes), to CSV.
fn short_then_long(seconds: i64) -> Value {
    let mut request = dense_body(600);
    let long = json!({"params": {"target": {"value": "urn:dev:b"}, "channelId": CHANNEL,
        "subtopic": "events.data", "from": READER_START, "to": READER_START + seconds}});
    request["items"].as_array_mut().expect("items").push(long);
    request
}

/// Runs `first` and the runs it launches, one after the other, until one reaches a file `held`
/// holds: that run is killed there (its future dropped) and returned, with the runs not yet made.
async fn run_until_held(
    deps: run_export::Deps<'_>,
    queue: &Launches,
    held: &integration_tests::doubles::HeldPuts<'_>,
    first: RunEvent,
) -> (Option<RunEvent>, Vec<RunEvent>) {
    let mut pending = vec![first];
    while let Some(event) = pending.pop() {
        tokio::select! {
            outcome = handle(deps, event.clone()) => {
                outcome.expect("runs");
                pending.extend(queue.take());
            }
            () = held.until_held() => return (Some(event), pending),
        }
    }
    (None, pending)
}

/// Runs `event`'s job with a budget of 150 ms an invocation to its end; checks that it took at
/// least three invocations, the last one done; returns their outcomes.
pub(crate) async fn run_budgeted(fx: &Fixture, queue: &Launches, event: &RunEvent) -> Vec<Outcome> {
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(150)),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: queue,
        config: &config,
        ..fx.run_deps()
    };
    let outcomes = run_to_end(deps, queue, event.clone()).await;
    println!("{} invocations", outcomes.len());
    assert!(outcomes.len() >= 3, "at least three invocations: {outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Done));
    outcomes
}

/// Runs `event`'s job without a budget: one invocation, done.
pub(crate) async fn run_whole(fx: &Fixture, queue: &Launches, event: &RunEvent) {
    let unbounded = run_export::Deps {
        launcher: queue,
        ..fx.run_deps()
    };
    assert_eq!(run_to_end(unbounded, queue, event.clone()).await, [Outcome::Done]);
}

/// The files stored for an export, by name, with their bytes.
pub(crate) async fn files_of(fx: &Fixture, id: &ExportId) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for key in fx.objects().await {
        if key.contains(&id.to_string()) {
            let name = key.rsplit('/').next().unwrap_or_default().to_owned();
            files.insert(name, fx.files.read(&key).await.expect("the file"));
        }
    }
    files
}

#[tokio::test]
async fn a_csv_job_continues_across_invocations_and_writes_the_files_of_a_run_that_never_stopped() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let _reader = fx.slow_reader(Duration::from_millis(25), 60, 100).await;
    let alice = someone();
    let queue = Launches::default();

    // The reference: a run that never stops.
    let whole = fx.create_run(&alice, &body()).await;
    run_whole(&fx, &queue, &whole).await;

    let budgeted = fx.create_run(&alice, &body()).await;
    let outcomes = run_budgeted(&fx, &queue, &budgeted).await;
    assert!(outcomes[..outcomes.len() - 1]
        .iter()
        .all(|o| *o == Outcome::Continued));

    let job = fx
        .store
        .job(&budgeted.job())
        .await
        .expect("reads")
        .expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.leg as usize, outcomes.len() - 1, "one leg per continuation");
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &budgeted.export_id).await;
    // The zip's name carries its job's id; the items' files are named alike.
    let names = |files: &BTreeMap<String, Vec<u8>>| {
        files
            .keys()
            .map(|k| {
                if k.ends_with(".zip") {
                    "export.zip".to_owned()
                } else {
                    k.clone()
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&got),
        names(&expected),
        "the same files, and no checkpoint or tail left"
    );
    for (name, bytes) in &expected {
        if name.ends_with(".csv") {
            assert!(
                got[name] == *bytes,
                "{name}: byte for byte the file of a run that never stopped"
            );
        }
    }
    let reference = fx.store.job(&whole.job()).await.expect("reads").expect("a job");
    let rows = |j: &exporter_core::domain::job::Job| {
        j.detail
            .files
            .iter()
            .map(|f| (f.rows, f.bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&job), rows(&reference), "rows and sizes recorded alike");
    assert_eq!(job.detail.files[0].rows, 4320);
    assert_eq!(fx.open_uploads().await, 0, "no upload left open");
}

#[tokio::test]
async fn a_file_larger_than_a_part_is_uploaded_in_parts_across_invocations() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point a second: 200,000 points make a file of about 6.4 MiB, more than a 5 MiB part.
    fx.slow_reader(Duration::from_millis(2), 1, 1000).await;
    let alice = someone();
    let request = dense_body(200_000);
    let queue = Launches::default();
    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;
    let budgeted = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(400)),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    let outcomes = run_to_end(deps, &queue, budgeted.clone()).await;
    println!("parts: {} invocations", outcomes.len());
    assert!(outcomes.len() >= 3, "{outcomes:?}");
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &budgeted.export_id).await;
    assert_eq!(
        got.len(),
        1,
        "one file, no checkpoint or tail left: {:?}",
        got.keys()
    );
    let (name, bytes) = expected.iter().next().expect("a file");
    assert!(
        bytes.len() > 5 * 1024 * 1024,
        "larger than a part: {}",
        bytes.len()
    );
    assert!(
        got[name] == *bytes,
        "byte for byte the file of a run that never stopped"
    );
}

#[tokio::test]
async fn an_invocation_killed_between_checkpoints_is_resumed_from_the_last_one() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let reader = fx.slow_reader(Duration::from_millis(25), 60, 100).await;
    let alice = someone();
    let queue = Launches::default();
    let whole = fx.create_run(&alice, &body()).await;
    let unbounded = run_export::Deps {
        launcher: &queue,
        ..fx.run_deps()
    };
    let requests = || reader.requests.load(std::sync::atomic::Ordering::SeqCst);
    let start = requests();
    run_to_end(unbounded, &queue, whole.clone()).await;
    let whole_requests = requests() - start;

    let job = fx.create_run(&alice, &body()).await;
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(150)),
        lease: TimeDelta::seconds(1),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    assert_eq!(handle(deps, job.clone()).await.expect("runs"), Outcome::Continued);
    let first = queue.take();
    assert_eq!(first.len(), 1, "one continuation launched");
    assert_eq!(
        handle(deps, first[0].clone()).await.expect("runs"),
        Outcome::Continued
    );
    let second = queue.take();
    assert_eq!(second[0].leg, Some(2));
    // The invocation of leg 2 is killed half-way through its budget: its future is dropped,
    // as a process that dies does nothing more. The job stays held at leg 2.
    let killed = tokio::time::timeout(Duration::from_millis(75), handle(deps, second[0].clone())).await;
    assert!(killed.is_err(), "killed before it ended");
    assert!(queue.take().is_empty(), "it launched nothing");
    let held = fx.store.job(&job.job()).await.expect("reads").expect("a job");
    assert_eq!((held.status, held.leg), (JobStatus::InProgress, 2));
    // A duplicate of the continuation while the lease holds does nothing.
    assert_eq!(
        handle(deps, second[0].clone()).await.expect("runs"),
        Outcome::Duplicate
    );

    // Once the lease has passed, the reconciler launches the job's continuation from leg 2.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = requests();
    let reconcile_config = reconcile::ReconcileConfig {
        grace: TimeDelta::zero(),
        ..reconcile::ReconcileConfig::default()
    };
    let hand_offs = HandOffs::default();
    let sweep = fx.reconcile_deps(&queue, &hand_offs, &reconcile_config);
    let repairs = reconcile::handle(sweep).await.expect("sweeps");
    assert_eq!(repairs.jobs_continued, 1, "{repairs:?}");
    assert_eq!(repairs.jobs_abandoned, 0, "{repairs:?}");
    let resumed = queue.take();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].leg, Some(2), "from the last checkpoint");
    // Without a budget now, so that its reads compare with the whole job's.
    let outcomes = run_to_end(unbounded, &queue, resumed[0].clone()).await;
    assert_eq!(outcomes.last(), Some(&Outcome::Done), "{outcomes:?}");
    let after_resume = requests() - before;
    let ended = fx.store.job(&job.job()).await.expect("reads").expect("a job");
    assert_eq!(ended.status, JobStatus::Done, "{:?}", ended.detail.error);
    println!("resume: {after_resume} reader requests after the resume, {whole_requests} for the whole job");
    assert!(
        after_resume < whole_requests,
        "the resume read on from its checkpoint: {after_resume} requests of {whole_requests}"
    );
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &job.export_id).await;
    for (name, bytes) in &expected {
        if name.ends_with(".csv") {
            assert!(got[name] == *bytes, "{name}: no row lost or repeated");
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "no checkpoint or tail left: {:?}",
        got.keys()
    );
}

/// The same export, with the same id and creation time, in a fresh fixture of its own with the
/// same slow reader: its job is the same job, so its files must be the same, byte for byte.
pub(crate) async fn twin(fx: &Fixture, id: &ExportId, latency: Duration) -> Fixture {
    twin_reading(fx, id, (latency, 60, 100)).await
}

/// [`twin`], its reader answering after `latency` with a point every `step` seconds, `page` a
/// page.
pub(crate) async fn twin_reading(
    fx: &Fixture,
    id: &ExportId,
    (latency, step, page): (Duration, i64, u32),
) -> Fixture {
    let mut other = Fixture::new().await.expect("the stack runs");
    other.slow_reader(latency, step, page).await;
    let mut export = fx.store.get(id).await.expect("reads").expect("the export");
    export.status = ExportStatus::Creating;
    other.store.insert(&export, 10).await.expect("inserts");
    other
        .store
        .activate(id, ExportStatus::Queued, None, export.created_at)
        .await
        .expect("activates");
    other
}

#[tokio::test]
async fn an_xlsx_job_stages_its_rows_across_invocations_and_renders_the_workbook_of_a_run_that_never_stopped()
{
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let latency = Duration::from_millis(25);
    fx.slow_reader(latency, 60, 100).await;
    let alice = someone();
    let queue = Launches::default();
    let mut request = body();
    request["format"]["extension"] = json!("xlsx");
    let event = fx.create_run(&alice, &request).await;
    run_budgeted(&fx, &queue, &event).await;

    // The reference: the same job, run without a budget.
    let other = twin(&fx, &event.export_id, latency).await;
    run_whole(&other, &queue, &event).await;
    let expected = files_of(&other, &event.export_id).await;
    let got = files_of(&fx, &event.export_id).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same files, and no stage, checkpoint or tail left"
    );
    for (name, bytes) in &expected {
        assert!(
            got[name] == *bytes,
            "{name}: byte for byte the workbook of a run that never stopped"
        );
    }
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.detail.files[0].rows, 4320);
    assert!(job.leg >= 2);
}

#[tokio::test]
async fn past_the_xlsx_row_cap_a_job_fails_early_and_says_to_use_csv() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let reader = fx.slow_reader(Duration::from_millis(5), 60, 100).await;
    let alice = someone();
    let queue = Launches::default();
    let mut request = body();
    request["format"]["extension"] = json!("xlsx");
    request["items"] = json!([request["items"][0].clone()]);
    request["format"]["columns"] = json!([{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]);
    // A year of a point a minute: 525,600 rows, far past a cap of 1,000.
    request["items"][0]["params"]["to"] = json!(READER_START + 365 * 86_400);
    let event = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        xlsx_max_rows: 1000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    assert_eq!(run_to_end(deps, &queue, event.clone()).await, [Outcome::Failed]);
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let error = job.detail.error.unwrap_or_default();
    assert!(
        error.starts_with("item 0: more than 1000 rows")
            && error.contains("XLSX_MAX_ROWS")
            && error.contains("CSV"),
        "{error}"
    );
    let requests = reader.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        requests < 40,
        "it stopped as the count passed the cap, not at the end: {requests} requests"
    );
    assert!(files_of(&fx, &event.export_id).await.is_empty(), "no file left");
}

#[tokio::test]
async fn a_job_pauses_when_its_local_file_reaches_the_most_an_invocation_may_write() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point a second: 100,000 points make a file of about 3.2 MiB.
    fx.slow_reader(Duration::from_millis(1), 1, 1000).await;
    let alice = someone();
    let request = dense_body(100_000);
    let queue = Launches::default();
    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;
    // No time budget: only the local file's size (past the CSV writer's 256 KiB buffer) makes
    // it pause.
    let bounded = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        max_local_bytes: 1_000_000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    let outcomes = run_to_end(deps, &queue, bounded.clone()).await;
    println!("local bytes: {} invocations", outcomes.len());
    assert!(outcomes.len() >= 3, "{outcomes:?}");
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &bounded.export_id).await;
    assert_eq!(
        got.len(),
        1,
        "one file, no checkpoint or tail left: {:?}",
        got.keys()
    );
    let (name, bytes) = expected.iter().next().expect("a file");
    assert!(
        got[name] == *bytes,
        "byte for byte the file of a run that never stopped"
    );
}

#[tokio::test]
async fn a_wide_job_continues_across_invocations_and_writes_the_files_of_a_run_that_never_stopped() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let _reader = fx.slow_reader(Duration::from_millis(25), 60, 100).await;
    let alice = someone();
    let queue = Launches::default();
    let targets = json!({"value": "urn:dev:a,urn:dev:b,urn:dev:c", "label": "A,B,C"});
    let mut request = body();
    request["items"][0]["params"]["target"] = targets.clone();
    request["items"][1]["params"]["target"] = targets;
    request["items"][1]["params"]["transform"] = json!("delta");
    request["items"][1]["params"]["decimation"] = json!({"ds": "15m", "dsf": "sum", "fill": "null"});

    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;
    let budgeted = fx.create_run(&alice, &request).await;
    run_budgeted(&fx, &queue, &budgeted).await;
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &budgeted.export_id).await;
    let csvs: Vec<&String> = expected.keys().filter(|k| k.ends_with(".csv")).collect();
    assert_eq!(csvs.len(), 2);
    for name in csvs {
        assert!(
            got.get(name) == expected.get(name),
            "{name}: byte for byte the file of a run that never stopped"
        );
    }
    // The decimated wide item's chart (a line per target) went on across the invocations too.
    let chart = expected.get("item-1.json").expect("the wide item's chart series");
    assert_eq!(got.get("item-1.json"), Some(chart), "the same chart series");
    let series: exporter_core::domain::files::ChartSeries = serde_json::from_slice(chart).expect("a series");
    let names: Vec<&str> = series.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert!(series.lines.iter().all(|l| l.points.len() > 280), "{series:?}");
    let job = fx
        .store
        .job(&budgeted.job())
        .await
        .expect("reads")
        .expect("a job");
    assert_eq!(
        job.detail.files[0].rows, 4320,
        "a row a minute, the three targets joined"
    );
    assert_eq!(job.detail.files[1].rows, 288, "a row a quarter of an hour");
}

/// A store that takes a file's first part only once the reader has answered `pages` more
/// requests since the part came (or, giving up, after ten seconds): a run that waited for its
/// parts before reading on would never get there. When `refuse`, it then fails that part.
struct PartsAfterReading<'a> {
    files: &'a exporter_adapters::s3::S3Files,
    reader: &'a integration_tests::reader_server::ReaderConfig,
    pages: u64,
    refuse: bool,
    gave_up: std::sync::atomic::AtomicBool,
    /// The reader's requests when it refused the part.
    refused_at: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl GrowingFiles for PartsAfterReading<'_> {
    fn piece_bytes(&self) -> usize {
        self.files.piece_bytes()
    }
    async fn begin(&self, key: &str, content_type: &str) -> Result<Upload, exporter_core::ports::FileError> {
        self.files.begin(key, content_type).await
    }
    async fn append(
        &self,
        key: &str,
        upload: &mut Upload,
        bytes: Vec<u8>,
    ) -> Result<(), exporter_core::ports::FileError> {
        let first = upload.size() == 0;
        let requests = || self.reader.requests.load(std::sync::atomic::Ordering::SeqCst);
        let until = requests() + self.pages;
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while first && requests() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if waited.is_err() {
            self.gave_up.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.refuse && first {
            self.refused_at
                .store(requests(), std::sync::atomic::Ordering::SeqCst);
            return Err(exporter_core::ports::FileError::Unavailable(
                "upload a part".into(),
                "the store is down".into(),
            ));
        }
        self.files.append(key, upload, bytes).await
    }
    async fn finish(&self, key: &str, upload: &Upload) -> Result<(), exporter_core::ports::FileError> {
        self.files.finish(key, upload).await
    }
    async fn abandon_unfinished(&self, prefix: &str) -> Result<u64, exporter_core::ports::FileError> {
        self.files.abandon_unfinished(prefix).await
    }
}

/// Runs `event`'s job in one invocation, its file going up in 5 MiB parts through `store`;
/// returns the invocation's outcome and how many hand-offs to notify it made.
async fn run_storing_through(
    fx: &Fixture,
    event: &RunEvent,
    store: &dyn GrowingFiles,
) -> (Result<Outcome, run_export::Failure>, usize) {
    let config = fx.run_config.clone();
    let (queue, hand_offs) = (Launches::default(), HandOffs::default());
    let deps = run_export::Deps {
        launcher: &queue,
        notifier: &hand_offs,
        config: &config,
        uploads: store,
        ..fx.run_deps()
    };
    let outcome = handle(deps, event.clone()).await;
    let handed = hand_offs.0.lock().map(|h| h.len()).unwrap_or_default();
    (outcome, handed)
}

#[tokio::test]
async fn reading_goes_on_while_a_part_is_uploaded() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point a second in pages of 1,000: 300,000 points make a file of about 9.6 MiB, a 5 MiB
    // part and then more than a hundred pages.
    let reader = fx.slow_reader(Duration::from_millis(1), 1, 1000).await;
    let alice = someone();
    let request = dense_body(300_000);
    let queue = Launches::default();
    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;
    let event = fx.create_run(&alice, &request).await;
    // More requests than a read keeps under way (three times the eight in flight) while the
    // run waits for it.
    let slow = PartsAfterReading {
        files: &fx.files,
        reader: &reader,
        pages: 40,
        refuse: false,
        gave_up: Default::default(),
        refused_at: Default::default(),
    };
    let (outcome, _) = run_storing_through(&fx, &event, &slow).await;
    assert_eq!(outcome.expect("runs"), Outcome::Done);
    assert!(
        !slow.gave_up.load(std::sync::atomic::Ordering::SeqCst),
        "the reader went on answering while the part was on its way"
    );
    let (expected, got) = (
        files_of(&fx, &whole.export_id).await,
        files_of(&fx, &event.export_id).await,
    );
    assert_eq!(got.len(), 1, "{:?}", got.keys());
    assert!(
        got.values().next() == expected.values().next(),
        "byte for byte the file of a run that uploads at once"
    );
}

#[tokio::test]
async fn a_part_that_fails_while_the_file_is_read_fails_the_job_with_the_store_s_error() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let reader = fx.slow_reader(Duration::from_millis(1), 1, 1000).await;
    let event = fx.create_run(&someone(), &dense_body(300_000)).await;
    let failing = PartsAfterReading {
        files: &fx.files,
        reader: &reader,
        pages: 10,
        refuse: true,
        gave_up: Default::default(),
        refused_at: Default::default(),
    };
    let (outcome, hand_offs) = run_storing_through(&fx, &event, &failing).await;
    let requests = reader.requests.load(std::sync::atomic::Ordering::SeqCst);
    println!("{outcome:?} after {requests} requests");
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let error = job.detail.error.clone().unwrap_or_default();
    assert_eq!(job.status, JobStatus::Failed, "{error}");
    assert!(
        error.contains("the store is down") || error.contains("upload a part"),
        "the store's error, not the reading's: {error}"
    );
    let refused_at = failing.refused_at.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        refused_at > 0 && requests <= refused_at + 24,
        "reading stopped as the part failed (at request {refused_at}; 300 pages in all), \
         with no more than the requests under way: {requests}"
    );
    assert!(fx.objects().await.is_empty(), "nothing half-written left");
    assert_eq!(fx.open_uploads().await, 0, "no upload left open");
    assert_eq!(hand_offs, 1, "one hand-off to notify, of the failed job");
}

/// The final leg stores its last file and dies zipping the job's files (its invocation timed
/// out at that await, before the job was recorded): the runtime's retry of that leg, once the
/// lease has passed, ends the job with the files of a run that never stopped, never failing a
/// job whose files were complete.
#[tokio::test]
async fn a_final_leg_that_dies_before_recording_its_job_is_retried_to_the_same_files() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point a second. A short item, then a long one (about 13 MiB, parts of 5 MiB): the
    // final leg resumes the long one with its upload under way, completes the upload, then zips.
    fx.slow_reader(Duration::from_millis(2), 1, 1000).await;
    let alice = someone();
    let queue = Launches::default();
    let request = short_then_long(400_000);
    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;

    let budgeted = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(400)),
        ..fx.run_config.clone()
    };
    let held = integration_tests::doubles::HeldPuts::new(&fx.files, ".zip");
    let zipping = run_export::Deps {
        launcher: &queue,
        config: &config,
        files: &held,
        pieces: &held,
        uploads: &held,
        ..fx.run_deps()
    };
    let (killed, _) = run_until_held(zipping, &queue, &held, budgeted.clone()).await;
    let killed = killed.expect("the final leg reached the zip");
    assert!(killed.leg.is_some_and(|leg| leg > 0), "the job continued first");
    let _ = held.release.send(true);

    let later = integration_tests::doubles::At(chrono::Utc::now() + TimeDelta::minutes(20));
    let retry = run_export::Deps {
        launcher: &queue,
        config: &config,
        clock: &later,
        ..fx.run_deps()
    };
    assert_eq!(handle(retry, killed).await.expect("runs"), Outcome::Done);
    let job = fx
        .store
        .job(&budgeted.job())
        .await
        .expect("reads")
        .expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &budgeted.export_id).await;
    for (name, bytes) in &expected {
        if name.ends_with(".csv") {
            assert!(
                got.get(name) == Some(bytes),
                "{name}: the file of a run that never stopped"
            );
        }
    }
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.contains(&budgeted.export_id.to_string()) && k.contains("/.resume/"))
        .collect();
    assert!(left.is_empty(), "no checkpoint or tail left: {left:?}");
    assert_eq!(fx.open_uploads().await, 0, "no upload left open");
}

/// An item run of a spread job resumes its item in a later leg, completes its upload, and dies
/// right after (before counting the item done): the runtime's retry of that leg counts the item
/// and ends the job with the files of a run that never stopped.
#[tokio::test]
async fn an_item_leg_that_dies_after_storing_its_file_is_retried_to_the_same_files() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(2), 1, 1000).await;
    let alice = someone();
    let queue = Launches::default();
    let request = short_then_long(400_000);
    let whole = fx.create_run(&alice, &request).await;
    run_whole(&fx, &queue, &whole).await;

    let spread = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(400)),
        fan_out: 2,
        ..fx.run_config.clone()
    };
    let mut held = integration_tests::doubles::HeldPuts::new(&fx.files, ".csv");
    held.puts = false;
    let storing = run_export::Deps {
        launcher: &queue,
        config: &config,
        files: &held,
        pieces: &held,
        uploads: &held,
        ..fx.run_deps()
    };
    let (killed, mut pending) = run_until_held(storing, &queue, &held, spread.clone()).await;
    let killed = killed.expect("the long item completed its upload");
    assert_eq!(killed.item, Some(1));
    assert!(
        killed.leg.is_some_and(|leg| leg > 0),
        "the item continued first: {killed:?}"
    );
    let _ = held.release.send(true);

    let later = integration_tests::doubles::At(chrono::Utc::now() + TimeDelta::minutes(20));
    let retry = run_export::Deps {
        launcher: &queue,
        config: &config,
        clock: &later,
        ..fx.run_deps()
    };
    let mut outcomes = Vec::new();
    pending.push(killed);
    pending.extend(queue.take());
    while let Some(event) = pending.pop() {
        outcomes.push(handle(retry, event).await.expect("runs"));
        pending.extend(queue.take());
    }
    assert!(outcomes.contains(&Outcome::Done), "{outcomes:?}");
    let job = fx.store.job(&spread.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    let expected = files_of(&fx, &whole.export_id).await;
    let got = files_of(&fx, &spread.export_id).await;
    for (name, bytes) in &expected {
        if name.ends_with(".csv") {
            assert!(
                got.get(name) == Some(bytes),
                "{name}: the file of a run that never stopped"
            );
        }
    }
    assert_eq!(fx.open_uploads().await, 0, "no upload left open");
}

/// A job of two large items, one after the other, zipped: no more than about one item's file is
/// ever on the function's local disk (each file goes once stored, the zip is streamed from the
/// store to the store), never the job's files together.
#[tokio::test]
async fn a_jobs_files_are_never_held_together_on_local_disk() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(1), 1, 1000).await;
    let alice = someone();
    let queue = Launches::default();
    let mut request = short_then_long(200_000);
    request["items"][0]["params"]["to"] = json!(READER_START + 200_000);
    let event = fx.create_run(&alice, &request).await;
    let dir = tempfile::tempdir().expect("a work directory");
    let config = RunConfig {
        work_dir: Some(dir.path().to_owned()),
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    let (outcome, peak) = integration_tests::peak_disk(dir.path(), handle(deps, event.clone())).await;
    assert_eq!(outcome.expect("runs"), Outcome::Done);
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let largest = job.detail.files.iter().map(|f| f.bytes).max().unwrap_or(0);
    let together: u64 = job.detail.files.iter().map(|f| f.bytes).sum();
    println!("peak local disk {peak} bytes; largest file {largest}, together {together}");
    assert!(job.detail.archive.is_some(), "a zip");
    assert!(
        peak <= largest + largest / 4,
        "at most about one file at a time: peak {peak}, largest {largest}, together {together}"
    );
}

/// Runs `first` and every continuation it launches, each invocation with `seconds` to work
/// and storing through `files`; returns each invocation's outcome.
async fn run_timed(
    fx: &Fixture,
    files: &integration_tests::doubles::HeldPuts<'_>,
    queue: &Launches,
    first: RunEvent,
    seconds: i64,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut pending = vec![first];
    while let Some(event) = pending.pop() {
        let deps = run_export::Deps {
            files,
            pieces: files,
            uploads: files,
            launcher: queue,
            stop_at: Some(chrono::Utc::now() + TimeDelta::seconds(seconds)),
            ..fx.run_deps()
        };
        outcomes.push(handle(deps, event).await.expect("runs"));
        pending.extend(queue.take());
        assert!(outcomes.len() < 50, "a job that never ends: {outcomes:?}");
    }
    outcomes
}

#[tokio::test]
async fn a_zip_out_of_time_is_written_by_a_fresh_invocation_and_one_out_of_time_on_its_own_fails_saying_so() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let queue = Launches::default();
    // Each invocation may work two seconds; each read of the zip takes two and a half.
    let mut slow = integration_tests::doubles::HeldPuts::new(&fx.files, ".never");
    slow.range_delay = Duration::from_millis(2500);

    // After the items, the zip runs out of time: it is aborted and a fresh invocation zips.
    let event = fx.create_run(&alice, &body()).await;
    let deps = run_export::Deps {
        files: &slow,
        pieces: &slow,
        uploads: &slow,
        launcher: &queue,
        stop_at: Some(chrono::Utc::now() + TimeDelta::seconds(2)),
        ..fx.run_deps()
    };
    assert_eq!(
        handle(deps, event.clone()).await.expect("runs"),
        Outcome::Continued
    );
    let prefix = format!("exports/{}/", event.export_id);
    let zips = |objects: Vec<String>| {
        objects
            .into_iter()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(".zip"))
            .count()
    };
    assert_eq!(zips(fx.objects().await), 0, "no zip half-written");
    let continuation = queue.take().pop().expect("a continuation");
    let outcomes = run_to_end(
        run_export::Deps {
            launcher: &queue,
            ..fx.run_deps()
        },
        &queue,
        continuation,
    )
    .await;
    assert_eq!(outcomes, [Outcome::Done]);
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let zip = job.detail.archive.as_ref().expect("a zip");
    assert!(zip.bytes > 0 && zip.rows == job.detail.files.iter().map(|f| f.rows).sum::<u64>());
    assert_eq!(zips(fx.objects().await), 1);

    // A budget shorter than the zip is no deadline: the zip runs on to the invocation's end.
    let event = fx.create_run(&alice, &body()).await;
    let budgeted = RunConfig {
        budget: Some(TimeDelta::seconds(1)),
        ..fx.run_config.clone()
    };
    let outcomes = run_to_end(
        run_export::Deps {
            files: &slow,
            pieces: &slow,
            uploads: &slow,
            launcher: &queue,
            config: &budgeted,
            ..fx.run_deps()
        },
        &queue,
        event.clone(),
    )
    .await;
    assert_eq!(outcomes.last(), Some(&Outcome::Done), "{outcomes:?}");

    // A zip out of time in an invocation of its own fails the job, saying why, and leaves nothing.
    let event = fx.create_run(&alice, &body()).await;
    let outcomes = run_timed(&fx, &slow, &queue, event.clone(), 2).await;
    assert_eq!(outcomes.first(), Some(&Outcome::Continued), "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Failed), "{outcomes:?}");
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let error = job.detail.error.unwrap_or_default();
    assert!(
        error.contains("ran out of time zipping the job's 2 files"),
        "{error}"
    );
    let prefix = format!("exports/{}/", event.export_id);
    let left: Vec<String> = fx
        .objects()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let open = fx
        .s3
        .list_multipart_uploads()
        .bucket(&fx.bucket)
        .prefix(&prefix)
        .send()
        .await
        .expect("moto lists")
        .uploads()
        .len();
    assert_eq!(open, 0, "no upload left open");
}

#[tokio::test]
async fn a_workbooks_final_leg_that_dies_after_completing_its_stage_is_retried_to_the_same_workbook() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point a second, 300,000 of them to a workbook: a stage of several parts of 5 MiB,
    // completed in the final leg before the workbook is rendered from it.
    let latency = Duration::from_millis(2);
    fx.slow_reader(latency, 1, 1000).await;
    let alice = someone();
    let queue = Launches::default();
    let mut request = dense_body(300_000);
    request["format"]["extension"] = json!("xlsx");
    let event = fx.create_run(&alice, &request).await;
    let config = RunConfig {
        budget: Some(TimeDelta::milliseconds(400)),
        ..fx.run_config.clone()
    };
    // The attempt dies once the stage's upload is complete (rendering the workbook).
    let held = integration_tests::doubles::HeldPuts::new(&fx.files, ".stage");
    let staging = run_export::Deps {
        launcher: &queue,
        config: &config,
        files: &held,
        pieces: &held,
        uploads: &held,
        ..fx.run_deps()
    };
    let (killed, _) = run_until_held(staging, &queue, &held, event.clone()).await;
    let killed = killed.expect("the final leg completed the stage");
    assert!(killed.leg.is_some_and(|leg| leg > 0), "the job continued first");
    let _ = held.release.send(true);

    let later = integration_tests::doubles::At(chrono::Utc::now() + TimeDelta::minutes(20));
    let retry = run_export::Deps {
        launcher: &queue,
        config: &config,
        clock: &later,
        ..fx.run_deps()
    };
    assert_eq!(handle(retry, killed).await.expect("runs"), Outcome::Done);
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
    assert_eq!(job.detail.files[0].rows, 300_000);

    // The reference: the same job, run without a budget.
    let other = twin_reading(&fx, &event.export_id, (latency, 1, 1000)).await;
    run_whole(&other, &queue, &event).await;
    let expected = files_of(&other, &event.export_id).await;
    let got = files_of(&fx, &event.export_id).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same files, and no stage, checkpoint or tail left"
    );
    for (name, bytes) in &expected {
        assert!(
            got[name] == *bytes,
            "{name}: byte for byte the workbook of a run that never stopped"
        );
    }
}
