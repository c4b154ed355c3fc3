//! A fault soak on moto: a driver plays EventBridge Scheduler (moto stores schedules and never
//! fires them) on a fast clock for a dozen recurring exports and a few one-time ones, while
//! faults are injected at random but reproducibly (a fixed seed): schedule fires that come late,
//! twice, or never; the scheduler, the store's next-run and job writes, and the hand-off to
//! notify failing (retried twice, as Lambda's asynchronous retries do, then dropped as into a
//! dead-letter queue); attempts that die holding their job; deletes between runs. The
//! reconciler runs every step. At the end the invariants hold: every due occurrence of a live
//! recurring export has exactly one finished job (done, or failed with its reason); every live
//! chain is armed at its true next occurrence; no job is left unfinished; no schedule outlives
//! its export; the quota counters equal the records. It prints what it injected and checked.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use exporter::domain::job::{JobEnd, JobKey, JobStatus};
use exporter::domain::{Export, ExportId, ExportStatus, NotifyEvent, RunEvent, Schedule};
use exporter::ports::{
    Advance, Clock, ExportRuns, FileError, FileStore, JobHistory, JobLedger, JobNotifier, LaunchError,
    RunSchedules, ScheduleError, StoreError, Sweep,
};
use exporter::scheduler::schedule_name;
use integration_tests::doubles::{Launches, NotifiesInProcess};
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use reconcile::ReconcileConfig;

const SEED: u64 = 20_261_129;
const STEPS: u32 = 40;
const STEP: TimeDelta = TimeDelta::minutes(20);

/// A clock the driver moves.
struct FastClock(AtomicI64);

impl Clock for FastClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// The dice, and what they decided.
struct Faults {
    rng: Mutex<fastrand::Rng>,
    injected: Mutex<BTreeMap<&'static str, u32>>,
}

impl Faults {
    fn roll(&self, what: &'static str, chance: f64) -> bool {
        let hit = self.rng.lock().map(|mut r| r.f64() < chance).unwrap_or(false);
        if hit {
            if let Ok(mut injected) = self.injected.lock() {
                *injected.entry(what).or_default() += 1;
            }
        }
        hit
    }
}

fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected: {what}").into())
}

struct FaultySchedules<'a>(&'a dyn RunSchedules, &'a Faults);

#[async_trait]
impl RunSchedules for FaultySchedules<'_> {
    async fn arm(&self, event: &RunEvent) -> Result<(), ScheduleError> {
        if self.1.roll("scheduler failed to arm", 0.08) {
            return Err(ScheduleError::Unavailable("injected".into()));
        }
        self.0.arm(event).await
    }
    async fn disarm(&self, id: &ExportId) -> Result<(), ScheduleError> {
        self.0.disarm(id).await
    }
    async fn armed(&self) -> Result<Vec<ExportId>, ScheduleError> {
        self.0.armed().await
    }
}

struct FaultyRuns<'a>(&'a dyn ExportRuns, &'a Faults, &'a AtomicU32);

#[async_trait]
impl ExportRuns for FaultyRuns<'_> {
    async fn advance_next_run(
        &self,
        id: &ExportId,
        next: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Advance, StoreError> {
        if self.1.roll("store failed to move the next run", 0.05) {
            return Err(unavailable("advance_next_run"));
        }
        let advanced = self.0.advance_next_run(id, next, at).await?;
        if self.1.roll("attempt died right after moving the chain", 0.03) {
            self.2.store(1, Ordering::SeqCst);
            return Err(unavailable("crash"));
        }
        Ok(advanced)
    }
    async fn settle_one_time(
        &self,
        export: &Export,
        status: ExportStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.0.settle_one_time(export, status, at).await
    }
}

/// The ledger, whose writes fail now and then, and whose attempts sometimes die holding their
/// job (the job stays `inProgress` under a live lease, and the attempt never reports back).
struct FaultyLedger<'a>(&'a dyn JobLedger, &'a Faults, &'a AtomicU32);

#[async_trait]
impl JobLedger for FaultyLedger<'_> {
    async fn open_job(
        &self,
        job: &JobKey,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.open_job(job, at, lease_until).await
    }
    async fn release_job(&self, job: &JobKey) -> Result<(), StoreError> {
        if self.2.swap(0, Ordering::SeqCst) > 0 {
            // The attempt died: it gives nothing back.
            return Ok(());
        }
        self.0.release_job(job).await
    }
    async fn start_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        if self.1.roll("attempt died right after claiming its job", 0.03) {
            self.2.store(1, Ordering::SeqCst);
            return Err(unavailable("crash"));
        }
        self.0.start_job(job, at).await
    }
    async fn finish_job(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError> {
        if self.1.roll("attempt died before recording its job", 0.04) {
            self.2.store(1, Ordering::SeqCst);
            return Err(unavailable("crash"));
        }
        if self.1.roll("store failed to record a job", 0.05) {
            return Err(unavailable("finish_job"));
        }
        self.0.finish_job(job, end).await
    }
    async fn record_unrun(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError> {
        self.0.record_unrun(job, end).await
    }
    async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError> {
        self.0.handed_off(job).await
    }
}

struct FaultyFiles<'a>(&'a dyn FileStore, &'a Faults);

#[async_trait]
impl FileStore for FaultyFiles<'_> {
    async fn put(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64, FileError> {
        if self.1.roll("S3 failed to store a file", 0.04) {
            return Err(FileError::Unavailable("put".into(), "injected".into()));
        }
        self.0.put(key, path, content_type).await
    }
    async fn remove(&self, key: &str) -> Result<(), FileError> {
        self.0.remove(key).await
    }
    async fn remove_all(&self, prefix: &str) -> Result<u64, FileError> {
        self.0.remove_all(prefix).await
    }
    async fn presign(&self, key: &str, expires_in: std::time::Duration) -> Result<String, FileError> {
        self.0.presign(key, expires_in).await
    }
    async fn read(&self, key: &str) -> Result<Vec<u8>, FileError> {
        self.0.read(key).await
    }
}

/// The hand-off to notify, run in this process (as the asynchronous invoke would), failing now
/// and then before it is made; Slack answers 500 now and then (notify retries, then records).
struct FaultyNotifier<'a>(
    &'a Faults,
    notify::Deps<'a>,
    &'a integration_tests::chat_server::ChatState,
);

#[async_trait]
impl JobNotifier for FaultyNotifier<'_> {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError> {
        if self.0.roll("hand-off to notify failed", 0.05) {
            return Err(LaunchError::Unavailable("injected".into()));
        }
        if self.0.roll("Slack answered 500 three times", 0.05) {
            let failing = integration_tests::chat_server::Scripted {
                status: 500,
                retry_after: None,
            };
            self.2.script("/slack/soak", &[failing; 3]);
        }
        notify::handle(self.1, event.clone())
            .await
            .map(drop)
            .map_err(|e| LaunchError::Unavailable(Box::new(e)))
    }
}

/// The CSV a fault-free run writes for `[from, to)` of the fixture's series: a header, and a
/// row a minute in Rome's time with the local reader's value (computed independently here).
fn expected_csv(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let mut text = String::from("Time,Value\n");
    let mut t = from.timestamp();
    while t < to.timestamp() {
        let local = chrono_tz::Europe::Rome
            .timestamp_opt(t, 0)
            .single()
            .expect("an instant");
        let value = integration_tests::expected_value((t - integration_tests::READER_START) / 60);
        text.push_str(&format!("{},{value}\n", local.to_rfc3339()));
        t += 60;
    }
    text
}

/// The armed schedules whose time has come, each occurrence once (as a one-time schedule fires).
async fn due_schedules(
    fx: &Fixture,
    now: DateTime<Utc>,
    fired: &mut HashSet<(ExportId, u64)>,
) -> Vec<RunEvent> {
    let mut due = Vec::new();
    for id in fx.schedules.armed().await.expect("lists") {
        let Ok(schedule) = fx
            .scheduler
            .get_schedule()
            .group_name(&fx.group)
            .name(schedule_name(&id))
            .send()
            .await
        else {
            continue;
        };
        let Some(event) = schedule
            .target()
            .and_then(|t| t.input())
            .and_then(|i| serde_json::from_str::<RunEvent>(i).ok())
        else {
            continue;
        };
        let fires_at = event.scheduled_at + TimeDelta::seconds(60);
        if fires_at <= now && fired.insert((id, event.occurrence.unwrap_or(0))) {
            due.push(event);
        }
    }
    due
}

#[tokio::test]
async fn a_fault_soak_keeps_every_chain_alive_and_every_record_true() {
    let Some(fx) = Fixture::new().await else { return };
    let start = (Utc::now().timestamp() / 3600 + 1) * 3600;
    let clock = FastClock(AtomicI64::new(start * 1000));
    let faults = Faults {
        rng: Mutex::new(fastrand::Rng::with_seed(SEED)),
        injected: Mutex::new(BTreeMap::new()),
    };
    let died = AtomicU32::new(0);
    let queue = Launches::default();
    let schedules = FaultySchedules(&fx.schedules, &faults);
    let runs = FaultyRuns(&fx.store, &faults, &died);
    let ledger = FaultyLedger(&fx.store, &faults, &died);
    let notify_deps = notify::Deps {
        clock: &clock,
        ..fx.notify_deps()
    };
    let notifier = FaultyNotifier(&faults, notify_deps, &fx.chat_state);
    let files = FaultyFiles(&fx.files, &faults);
    let run = run_export::Deps {
        files: &files,
        runs: &runs,
        ledger: &ledger,
        schedules: &schedules,
        launcher: &queue,
        notifier: &notifier,
        clock: &clock,
        ..fx.run_deps()
    };
    let api = exports_api::Deps {
        launcher: &queue,
        clock: &clock,
        ..fx.deps()
    };
    let reconcile_config = ReconcileConfig {
        grace: TimeDelta::minutes(20),
        ..ReconcileConfig::default()
    };
    let reconciler = reconcile::Deps {
        files: &fx.files,
        sweep: &fx.store,
        history: &fx.store,
        ledger: &fx.store,
        lifecycle: &fx.store,
        runs: &fx.store,
        schedules: &fx.schedules,
        launcher: &queue,
        notifier: &notifier,
        clock: &clock,
        config: &reconcile_config,
    };

    // A dozen hourly and daily-ish chains, and a few one-time exports; one owner each.
    let mut owners = Vec::new();
    for i in 0..15 {
        let who = someone();
        let body = if i < 12 {
            let mut body = recurring_body(if i % 3 == 0 { "PT2H" } else { "PT1H" });
            body["periodStart"] = json!(start - 3600 * (i % 4));
            body["items"][0]["params"]["period"] = json!("PT10M");
            body["notification"]["messages"] = json!([{"policy": "onSuccess", "medium": "slack",
                "title": "Export", "text": "job {{jobId}} of {{exportId}}", "target": format!("{}/slack/soak", fx.chat_url)}]);
            body
        } else {
            one_time_body()
        };
        let (status, export) = Fixture::call_with(api, "POST", "/exports", Some(&body), &who).await;
        assert!(status == 201 || status == 503, "{status} {export}");
        owners.push(who);
    }

    let mut fired: HashSet<(ExportId, u64)> = HashSet::new();
    let mut postponed: Vec<(u32, RunEvent)> = Vec::new();
    let mut deletes = 0;
    for step in 0..STEPS {
        clock.0.fetch_add(STEP.num_milliseconds(), Ordering::SeqCst);
        let now = clock.now();
        // The reader answers 500 to the next requests now and then (the client retries).
        if faults.roll("reader failed (500) for a while", 0.3) {
            fx.reader_state.fail_first.store(2, Ordering::SeqCst);
        }
        // What is due: armed schedules (each occurrence fires once, like a real one-time
        // schedule), what was launched, what was postponed.
        let mut due: Vec<RunEvent> = queue
            .0
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        for event in due_schedules(&fx, now, &mut fired).await {
            if faults.roll("trigger never came", 0.05) {
                continue;
            }
            if faults.roll("trigger came late", 0.1) {
                postponed.push((step + 2, event));
                continue;
            }
            due.push(event);
        }
        let (now_due, later): (Vec<_>, Vec<_>) = postponed.drain(..).partition(|(at, _)| *at <= step);
        postponed = later;
        due.extend(now_due.into_iter().map(|(_, e)| e));
        for event in due {
            let copies = if faults.roll("trigger came twice", 0.08) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                // Lambda's asynchronous invocation: two retries, then the dead-letter queue.
                for _attempt in 0..3 {
                    if run_export::handle(run, event.clone()).await.is_ok() {
                        break;
                    }
                    if died.load(Ordering::SeqCst) > 0 {
                        died.store(0, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        if step % 7 == 3 && faults.roll("export deleted between runs", 0.5) {
            let who = &owners[(step as usize) % owners.len()];
            let (_, listed) = Fixture::call_with(api, "GET", "/exports", None, who).await;
            if let Some(id) = listed["results"][0]["id"].as_str() {
                let (status, _) =
                    Fixture::call_with(api, "DELETE", &format!("/exports/{id}"), None, who).await;
                deletes += usize::from(status == 204);
            }
        }
        reconcile::handle(reconciler).await.expect("sweeps");
    }
    // Quiet down: no more faults, time for the grace to pass, the queue to drain.
    if let Ok(mut rng) = faults.rng.lock() {
        *rng = fastrand::Rng::with_seed(SEED);
    }
    let quiet_notifier = NotifiesInProcess(notify_deps);
    let quiet = run_export::Deps {
        runs: &fx.store,
        ledger: &fx.store,
        schedules: &fx.schedules,
        launcher: &queue,
        notifier: &quiet_notifier,
        clock: &clock,
        ..fx.run_deps()
    };
    let quiet_reconciler = reconcile::Deps {
        notifier: &quiet_notifier,
        ..reconciler
    };
    for _ in 0..4 {
        clock
            .0
            .fetch_add(TimeDelta::minutes(30).num_milliseconds(), Ordering::SeqCst);
        reconcile::handle(quiet_reconciler).await.expect("sweeps");
        let mut due: Vec<RunEvent> = queue
            .0
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        due.extend(postponed.drain(..).map(|(_, e)| e));
        due.extend(due_schedules(&fx, clock.now(), &mut fired).await);
        for event in due {
            run_export::handle(quiet, event)
                .await
                .expect("runs when nothing fails");
        }
    }
    reconcile::handle(quiet_reconciler).await.expect("sweeps");

    // The invariants.
    let now = clock.now();
    let mut checked = BTreeMap::<&str, usize>::new();
    let exports = fx.store.all_exports().await.expect("scans");
    let armed: HashSet<ExportId> = fx.schedules.armed().await.expect("lists").into_iter().collect();
    for export in &exports {
        let jobs = fx.store.jobs(&export.id).await.expect("jobs");
        for job in &jobs {
            assert!(
                matches!(
                    job.status,
                    JobStatus::Done | JobStatus::Failed | JobStatus::Expired
                ),
                "{}: job {} left {:?}",
                export.id,
                job.job_id,
                job.status
            );
            assert!(
                job.status != JobStatus::Failed || job.detail.error.is_some(),
                "a failure has its reason"
            );
            *checked
                .entry("jobs finished, failures with their reason")
                .or_default() += 1;
        }
        let live = export.deleted_at.is_none();
        match export.request.schedule {
            Schedule::Recurring(recurrence) if live && export.status == ExportStatus::Scheduled => {
                let (first, _) = recurrence
                    .next_after(export.created_at)
                    .expect("a first occurrence");
                let (next, at) = recurrence
                    .next_after(now - TimeDelta::seconds(60))
                    .expect("a next occurrence");
                let scheduled: HashSet<DateTime<Utc>> = jobs.iter().map(|j| j.scheduled_at).collect();
                for k in first..next {
                    let t = recurrence.occurrence(k).expect("in range");
                    let t = DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range");
                    assert!(
                        scheduled.contains(&t),
                        "{}: occurrence {k} ({t}) has no job; created {}, next run {:?}, jobs {:?}",
                        export.id,
                        export.created_at,
                        export.next_run_at,
                        jobs.iter()
                            .map(|j| (j.scheduled_at.to_string(), j.status, j.detail.error.clone()))
                            .collect::<Vec<_>>()
                    );
                    *checked.entry("due occurrences with exactly one job").or_default() += 1;
                }
                assert!(armed.contains(&export.id), "{}: live chain not armed", export.id);
                let schedule = fx
                    .scheduler
                    .get_schedule()
                    .group_name(&fx.group)
                    .name(schedule_name(&export.id))
                    .send()
                    .await
                    .expect("armed");
                let event: RunEvent =
                    serde_json::from_str(schedule.target().and_then(|t| t.input()).expect("an input"))
                        .expect("an event");
                assert_eq!(
                    event.occurrence,
                    Some(next),
                    "{}: armed at its true next occurrence",
                    export.id
                );
                assert_eq!(
                    export.next_run_at.map(|t| t.timestamp_millis()),
                    Some(at.timestamp_millis())
                );
                *checked
                    .entry("live chains armed at their true next occurrence")
                    .or_default() += 1;
            }
            _ => {
                assert!(
                    !armed.contains(&export.id),
                    "{}: a schedule outlives its export",
                    export.id
                );
                *checked
                    .entry("finished or deleted exports without a schedule")
                    .or_default() += 1;
            }
        }
    }
    // Files: every one belongs to a done job, and each done job's file holds its whole window
    // (ten minutes of a chain's occurrence, a day for a one-time export), as a fault-free run's.
    let done_files: HashSet<String> = {
        let mut keys = HashSet::new();
        for export in &exports {
            for job in fx.store.jobs(&export.id).await.expect("jobs") {
                if job.status == JobStatus::Done {
                    let rows = if export.request.schedule == Schedule::OneTime {
                        1440
                    } else {
                        10
                    };
                    for file in &job.detail.files {
                        assert_eq!(file.rows, rows, "{}: a file of the job's whole window", file.key);
                        // Byte for byte what a fault-free run writes for the window, computed here.
                        let window = &job.detail.windows[0];
                        let from: DateTime<Utc> = window
                            .from
                            .as_deref()
                            .and_then(|t| t.parse().ok())
                            .expect("a start");
                        let to: DateTime<Utc> = window.to.parse().expect("an end");
                        let got = fx.files.read(&file.key).await.expect("the file");
                        assert_eq!(
                            String::from_utf8_lossy(&got),
                            expected_csv(from, to),
                            "{}",
                            file.key
                        );
                        *checked
                            .entry("files equal to a fault-free run, byte for byte")
                            .or_default() += 1;
                        keys.insert(file.key.clone());
                        *checked.entry("done files complete").or_default() += 1;
                    }
                }
            }
        }
        keys
    };
    for key in fx.objects().await {
        if !done_files.contains(&key) {
            let mut found = Vec::new();
            for export in &exports {
                for job in fx.store.jobs(&export.id).await.expect("jobs") {
                    if key.contains(&job.job_id) && key.contains(&export.id.to_string()) {
                        found.push(format!(
                            "{:?} attempts {} error {:?} deleted {:?}",
                            job.status, job.attempts, job.detail.error, export.deleted_at
                        ));
                    }
                }
            }
            panic!("{key}: a file of no done job; its job: {found:?}");
        }
        *checked.entry("stored files of done jobs only").or_default() += 1;
    }
    // Messages: each done job's message went out once, or its failure is recorded.
    let posts: Vec<String> = fx
        .chat_state
        .captured()
        .into_iter()
        .filter(|c| c.path.starts_with("/slack/soak") && c.answered == 200)
        .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
        .collect();
    for export in exports.iter().filter(|e| !e.request.messages.is_empty()) {
        for job in fx.store.jobs(&export.id).await.expect("jobs") {
            if job.status != JobStatus::Done {
                continue;
            }
            let sent = posts
                .iter()
                .filter(|t| t.contains(&format!("job {} of {}", job.job_id, export.id)))
                .count();
            let recorded = job
                .deliveries
                .iter()
                .find(|d| d.message == 0)
                .map(|d| d.status.as_str());
            match recorded {
                Some("sent") => assert_eq!(sent, 1, "{}: sent once", job.job_id),
                Some("failed") => assert_eq!(sent, 0, "{}: a recorded failure was not sent", job.job_id),
                other => panic!(
                    "{} of {}: message neither sent nor recorded failed: {other:?}; attempts {}, deleted {:?}, deliveries {:?}",
                    job.job_id, export.id, job.attempts, export.deleted_at, job.deliveries
                ),
            }
            *checked
                .entry("messages sent once or recorded failed")
                .or_default() += 1;
        }
    }
    let uploads = fx
        .s3
        .list_multipart_uploads()
        .bucket(&fx.bucket)
        .send()
        .await
        .expect("lists");
    assert!(uploads.uploads().is_empty(), "no upload left open");
    *checked.entry("no multipart upload left open").or_default() += 1;
    let mut queued: BTreeMap<String, i64> = BTreeMap::new();
    for export in exports
        .iter()
        .filter(|e| e.deleted_at.is_none() && e.status.counts_against_quota())
    {
        *queued.entry(export.owner.clone()).or_default() += 1;
    }
    for (owner, counter) in fx.store.quotas().await.expect("counters") {
        assert_eq!(
            counter,
            queued.get(&owner).copied().unwrap_or(0),
            "{owner}'s counter"
        );
        *checked.entry("quota counters equal to the records").or_default() += 1;
    }
    let injected = faults.injected.lock().map(|i| i.clone()).unwrap_or_default();
    println!(
        "soak: {STEPS} steps of {} minutes, seed {SEED}, {deletes} deletes",
        STEP.num_minutes()
    );
    println!("soak: faults injected: {injected:?}");
    println!("soak: invariants checked: {checked:?}");
    assert!(injected.values().sum::<u32>() > 10, "the soak injected faults");
}
