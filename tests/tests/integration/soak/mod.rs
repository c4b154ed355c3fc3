//! A fault soak on moto: a driver plays EventBridge Scheduler (moto stores schedules and never
//! fires them) and Lambda's asynchronous invocations on a fast clock, in ticks of five minutes,
//! for a dozen recurring exports (three of two items, spread over item runs; three of a wide
//! item, raw, of deltas and decimated), one of a minute, and a few one-time ones of three items,
//! while faults are injected at random but reproducibly (a fixed seed; `SOAK_SEED`,
//! `SOAK_STEPS`): schedule fires that come late, twice, or never; launches that are lost; the
//! scheduler, the store's next-run and job writes, S3, the reader and Slack failing; attempts that
//! die at any await or right after any step that changes something; notify dying holding a
//! message's claim; late data that arrives while a window is read page by page; deletes between
//! runs. A failed or dead invocation is retried a minute and three minutes later, then
//! dead-lettered. The clock moves as runs read it, so legs pause by their budget. The reconciler
//! sweeps every ten minutes. After every sweep no job is left unfinished past its lease and the
//! grace; every invocation's peak local disk and heap stay within bounds. At the end the
//! invariants hold: every due occurrence of a live recurring export has exactly one finished job
//! (done, or failed with its reason); every one-time export ran once and is settled as its job
//! ended; every live chain is armed at its true next occurrence; no job is left unfinished; no
//! schedule outlives its export; every stored file belongs to a done job and equals, byte for
//! byte, a fault-free run of its window (each late point once, in its place, or not at all when
//! it came after its slice was read); no done job's file was ever deleted; every message went
//! out once or is recorded failed; no upload is left open; the quota counters equal the records.
//! It prints what it injected and checked.

mod faults;
mod invariants;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use exporter_adapters::reader::HttpReader;
use exporter_adapters::scheduler::schedule_name;
use exporter_adapters::support::{Retry, Secret};
use exporter_core::domain::{ExportId, NotifyEvent, RunEvent};
use exporter_core::ports::{Clock, RunSchedules};
use integration_tests::doubles::{Launches, NotifiesInProcess};
use integration_tests::reader_server::LatePoint;
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use reconcile::ReconcileConfig;

use faults::{
    Attempt, Faults, FaultyBudgets, FaultyDeliveries, FaultyFiles, FaultyItems, FaultyLauncher, FaultyLedger,
    FaultyNotifier, FaultyReads, FaultyRuns, FaultySchedules,
};
use invariants::{remember_done, Bounds, HEAP_BOUND, LOCAL_DISK};

/// The seed and the number of steps of 20 minutes (`SOAK_SEED`, `SOAK_STEPS` override them:
/// `SOAK_STEPS=72` is a simulated day).
const SEED: u64 = 20_261_129;
const STEPS: u32 = 16;
const STEP: TimeDelta = TimeDelta::minutes(20);
/// A step is played in ticks: triggers and retries run when their time has come in a tick.
const TICK: TimeDelta = TimeDelta::minutes(5);
/// The reconciler's rate, in ticks.
const SWEEP_EVERY: u32 = 2;
/// The steps at which the third owner's hourly chain is paused, then resumed.
const PAUSE_AT: u32 = 3;
const RESUME_AT: u32 = 9;
/// Lambda's asynchronous retries of a failed (or timed-out, or crashed) invocation: about a
/// minute, then about two more; after them the event goes to the dead-letter queue.
const RETRIES: [TimeDelta; 2] = [TimeDelta::minutes(1), TimeDelta::minutes(3)];
/// Lambda's timeout of a run-export invocation, and the margin before it where a run stops
/// working, on the soak's clock (scaled down from 900 s and 60 s: a call that takes minutes
/// runs past it).
const INVOCATION_TIMEOUT: TimeDelta = TimeDelta::seconds(120);
const DEADLINE_MARGIN: TimeDelta = TimeDelta::seconds(20);
/// Lambda's timeout of a notify invocation.
const NOTIFY_TIMEOUT: TimeDelta = TimeDelta::seconds(300);
/// How far the clock moves each time a run reads it, so that a run takes time and its legs
/// pause by their budget.
const RUN_READ_MS: i64 = 100;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A clock the driver moves; while a run is under way each read moves it a little too.
struct FastClock {
    ms: AtomicI64,
    per_read: AtomicI64,
}

impl FastClock {
    fn advance(&self, by: TimeDelta) {
        self.ms.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
    /// Moves the clock to `to`, unless runs took it past already.
    fn at_least(&self, to: DateTime<Utc>) {
        self.ms.fetch_max(to.timestamp_millis(), Ordering::SeqCst);
    }
    /// The time, without moving it.
    fn peek_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
    fn running(&self, running: bool) {
        self.per_read
            .store(if running { RUN_READ_MS } else { 0 }, Ordering::SeqCst);
    }
}

impl Clock for FastClock {
    fn now(&self) -> DateTime<Utc> {
        let step = self.per_read.load(Ordering::SeqCst);
        DateTime::from_timestamp_millis(self.ms.fetch_add(step, Ordering::SeqCst) + step).unwrap_or_default()
    }
}

/// An asynchronous invocation waiting for its time: a trigger, a launch, or a retry.
struct Pending<E> {
    at: DateTime<Utc>,
    tries: usize,
    event: E,
}

/// Lambda's asynchronous invocations: each event runs when its time has come; one that fails
/// (an error, a timeout, a crash) is retried about a minute and three minutes later, then
/// dropped into the dead-letter queue.
struct Invocations<E> {
    pending: Vec<Pending<E>>,
    dead_letters: usize,
}

impl<E> Invocations<E> {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
            dead_letters: 0,
        }
    }
    fn add(&mut self, at: DateTime<Utc>, event: E) {
        self.pending.push(Pending { at, tries: 0, event });
    }
    /// The events whose time has come.
    fn due(&mut self, now: DateTime<Utc>) -> Vec<Pending<E>> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.at <= now);
        self.pending = later;
        due
    }
    /// An invocation of `event` failed at `now`: retried, or dropped after Lambda's retries.
    fn failed(&mut self, now: DateTime<Utc>, mut run: Pending<E>) {
        match RETRIES.get(run.tries) {
            Some(after) => {
                run.tries += 1;
                run.at = now + *after;
                self.pending.push(run);
            }
            None => self.dead_letters += 1,
        }
    }
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
    let seed = env_or("SOAK_SEED", SEED);
    let steps = env_or("SOAK_STEPS", STEPS);
    let start = (Utc::now().timestamp() / 3600 + 1) * 3600;
    let clock = FastClock {
        ms: AtomicI64::new(start * 1000),
        per_read: AtomicI64::new(0),
    };
    let faults = Faults {
        rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        injected: Mutex::new(BTreeMap::new()),
    };
    let attempt = Attempt::new(&faults, &clock);
    let notify_attempt = Attempt::new(&faults, &clock);
    let queue = Launches::default();
    let notify_queue: Mutex<Vec<NotifyEvent>> = Mutex::new(Vec::new());
    let schedules = FaultySchedules(&fx.schedules, &attempt);
    let runs = FaultyRuns(&fx.store, &attempt);
    let ledger = FaultyLedger(&fx.store, &attempt);
    let budgets = FaultyBudgets(&fx.store, &attempt);
    let items = FaultyItems(&fx.store, &attempt);
    let reads = FaultyReads(&fx.store, &attempt);
    let launcher = FaultyLauncher(&queue, &attempt);
    let deliveries = FaultyDeliveries(&fx.store, &notify_attempt);
    let notify_deps = notify::Deps {
        clock: &clock,
        deliveries: &deliveries,
        ..fx.notify_deps()
    };
    let run_notifier = FaultyNotifier {
        faults: &faults,
        queue: &notify_queue,
        attempt: Some(&attempt),
    };
    // The sweep's own dice: it runs beside the invocations, and sharing theirs would make a
    // seed's faults depend on how the two interleave.
    let sweep_faults = Faults {
        rng: Mutex::new(fastrand::Rng::with_seed(seed.wrapping_add(1))),
        injected: Mutex::new(BTreeMap::new()),
    };
    let notifier = FaultyNotifier {
        faults: &sweep_faults,
        attempt: None,
        ..run_notifier
    };
    let files = FaultyFiles(&fx.files, &attempt);
    // Small pages, so that a window is read in several requests and late data can arrive
    // between them.
    let paged = HttpReader::new(&fx.reader_url, Secret::new(integration_tests::READER_TOKEN))
        .expect("a reader client")
        .with_page_limit(4)
        .with_retry(Retry {
            attempts: 3,
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(5),
        });
    // Jobs of several items spread over item runs, two at a time; a budget an invocation (the
    // clock moves as a run reads it), so long reads continue in fresh invocations; a local disk
    // smaller than a one-time export's files together.
    let work = tempfile::tempdir().expect("a work directory");
    let soak_config = run_export::RunConfig {
        fan_out: 2,
        budget: Some(TimeDelta::seconds(30)),
        work_dir: Some(work.path().to_owned()),
        max_local_bytes: LOCAL_DISK,
        ..fx.run_config.clone()
    };
    let run = run_export::Deps {
        config: &soak_config,
        exports: &reads,
        history: &reads,
        items: &items,
        spread: &items,
        files: &files,
        pieces: &files,
        uploads: &files,
        runs: &runs,
        ledger: &ledger,
        ends: &ledger,
        budgets: &budgets,
        schedules: &schedules,
        launcher: &launcher,
        notifier: &run_notifier,
        reader: &paged,
        clock: &clock,
        ..fx.run_deps()
    };
    // Some jobs of several items run them one after another in one job (`RUN_FAN_OUT=1`): their
    // files together exceed the local disk, so each is uploaded as it is written.
    let serial_config = run_export::RunConfig {
        fan_out: 1,
        ..soak_config.clone()
    };
    let run_serial = run_export::Deps {
        config: &serial_config,
        ..run
    };
    let mut serial: HashSet<ExportId> = HashSet::new();
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
        uploads: &fx.files,
        sweep: &fx.store,
        exports: &fx.store,
        history: &fx.store,
        ends: &fx.store,
        spread: &fx.store,
        lifecycle: &fx.store,
        runs: &fx.store,
        schedules: &fx.schedules,
        launcher: &queue,
        notifier: &notifier,
        clock: &clock,
        config: &reconcile_config,
    };

    // A dozen hourly and daily-ish chains, one of a minute, and a few one-time exports of three
    // items each; one owner each.
    let mut owners = Vec::new();
    for i in 0..16 {
        let who = someone();
        let body = if i < 12 || i == 15 {
            let mut body = recurring_body(match i {
                15 => "PT1M",
                _ if i % 3 == 0 => "PT2H",
                _ => "PT1H",
            });
            body["periodStart"] = json!(start - 3600 * (i % 4));
            body["items"][0]["params"]["period"] = json!(if i == 15 { "PT1M" } else { "PT10M" });
            if i % 4 == 1 && i < 12 {
                // Two items: the job is spread over two item runs.
                let mut second = body["items"][0].clone();
                second["params"]["target"] = json!({"value": "urn:dev:second"});
                body["items"] = json!([body["items"][0].clone(), second]);
            }
            if i == 4 {
                // A workbook: its rows staged, the workbook rendered at the end of the run.
                body["format"]["extension"] = json!("xlsx");
            }
            if i % 4 == 3 && i < 12 {
                // A wide item of two targets: raw, their changes, or their five-minute highs.
                let params = &mut body["items"][0]["params"];
                params["target"] = json!({"value": "urn:dev:a,urn:dev:b", "label": "A,B"});
                match i {
                    3 => {}
                    7 => params["transform"] = json!("delta"),
                    _ => params["decimation"] = json!({"ds": "5m", "dsf": "max", "fill": "previous"}),
                }
            }
            body["notification"]["messages"] = json!([
                {"policy": "onSuccess", "medium": "slack", "title": "Export",
                    "text": "ok job {{jobId}} of {{exportId}}", "target": format!("{}/slack/soak", fx.chat_url)},
                {"policy": "onFailure", "medium": "slack", "title": "Export",
                    "text": "failed job {{jobId}} of {{exportId}}", "target": format!("{}/slack/soak", fx.chat_url)}]);
            body
        } else {
            let mut body = one_time_body();
            let first = body["items"][0].clone();
            let mut items = vec![first.clone()];
            for name in ["urn:dev:second", "urn:dev:third"] {
                let mut item = first.clone();
                item["params"]["target"] = json!({"value": name});
                items.push(item);
            }
            body["items"] = json!(items);
            body
        };
        let (status, export) = Fixture::call_with(api, "POST", "/exports", Some(&body), &who).await;
        assert!(status == 201 || status == 503, "{status} {export}");
        if i == 13 || i == 5 {
            // A one-time export of three items, and a chain of two, run item after item.
            if let Some(id) = export["id"].as_str().and_then(|id| id.parse().ok()) {
                serial.insert(id);
            }
        }
        owners.push(who);
    }

    // Late data for the one-time exports' day, arriving while they are read (page by page).
    let served = || fx.reader_state.requests.load(Ordering::SeqCst);
    let mut late: Vec<LatePoint> = Vec::new();
    let mut arrive_late = |faults: &Faults, window_start: i64, minutes: i64, within: u64| {
        let (minute, after) = match faults.rng.lock() {
            Ok(mut rng) => (rng.i64(0..minutes), rng.u64(0..within)),
            Err(_) => return,
        };
        let point = LatePoint {
            after_request: served() + after,
            // Between the minutes, and at a second of its own (no two late points coincide).
            time: window_start + minute * 60 + 1 + (late.len() % 59) as i64,
            value: 900.5 + late.len() as f64,
        };
        late.push(point);
        if let Ok(mut points) = fx.reader_state.late_points.lock() {
            points.push(point);
        }
    };
    for _ in 0..3 {
        arrive_late(&faults, 1_767_225_600, 1440, 600);
    }

    let mut fired: HashSet<(ExportId, u64)> = HashSet::new();
    let mut triggers: Invocations<RunEvent> = Invocations::new();
    let mut notifies: Invocations<NotifyEvent> = Invocations::new();
    let mut deletes = 0;
    let mut bounds = Bounds::default();
    // The files of every job seen done: they must outlive the soak (unless their export is
    // deleted).
    let mut done_seen: BTreeMap<String, ExportId> = BTreeMap::new();
    // The chain paused by its owner: when, and when resumed.
    let mut paused: Option<invariants::Paused> = None;
    let ticks = STEP.num_minutes() / TICK.num_minutes();
    let real = std::time::Instant::now();
    for step in 0..steps {
        // The reader answers 500 to the next requests now and then (the client retries).
        if faults.roll("reader failed (500) for a while", 0.3) {
            fx.reader_state.fail_first.store(2, Ordering::SeqCst);
        }
        for tick in 0..ticks {
            let tick_start = clock.now();
            clock.at_least(tick_start + TICK);
            let now = clock.now();
            // The third owner pauses their hourly chain for two hours, between runs.
            if tick == 0 && (step == PAUSE_AT || step == RESUME_AT) {
                let who = &owners[2];
                let (_, listed) = Fixture::call_with(api, "GET", "/exports", None, who).await;
                if let Some(id) = listed["results"][0]["id"].as_str() {
                    let verb = if step == PAUSE_AT { "pause" } else { "resume" };
                    let path = format!("/exports/{id}/{verb}");
                    let (status, body) = Fixture::call_with(api, "POST", &path, None, who).await;
                    assert_eq!(status, 200, "{verb}: {body}");
                    match (&mut paused, id.parse()) {
                        (None, Ok(id)) => {
                            paused = Some(invariants::Paused {
                                id,
                                from: now,
                                to: None,
                            })
                        }
                        (Some(p), _) => p.to = Some(now),
                        _ => {}
                    }
                }
            }
            // Data stamped in the window of the occurrence now due arrives while it is read.
            if tick == 0 && faults.roll("late data arrived during a read", 0.4) {
                let hour = now.timestamp() / 3600 * 3600;
                arrive_late(&faults, hour - 600, 10, 12);
            }
            // What is due: armed schedules (each occurrence fires once, like a real one-time
            // schedule), what was launched, retries.
            for event in queue.take() {
                if !faults.roll("a launch was lost", 0.1) {
                    triggers.add(now, event);
                }
            }
            for event in due_schedules(&fx, now, &mut fired).await {
                if faults.roll("trigger never came", 0.05) {
                    continue;
                }
                let at = if faults.roll("trigger came late", 0.1) {
                    now + STEP * 2
                } else {
                    now
                };
                if faults.roll("trigger came twice", 0.08) {
                    triggers.add(at, event.clone());
                }
                triggers.add(at, event);
            }
            // The invocations due run while the sweep due (if any) runs: Lambda's retries and
            // the reconciler's rate are independent, and their calls interleave.
            let invocations = async {
                for pending in triggers.due(now) {
                    // A fresh invocation: Lambda ends it at its deadline; the run stops its work a
                    // margin before (or pauses earlier, by its budget).
                    let started = clock.now();
                    let deadline = started + INVOCATION_TIMEOUT;
                    attempt.invoked(deadline);
                    let deps = run_export::Deps {
                        stop_at: run_export::stop_at(Some(deadline), started, DEADLINE_MARGIN),
                        ..if serial.contains(&pending.event.export_id) {
                            run_serial
                        } else {
                            run
                        }
                    };
                    clock.running(true);
                    let took = std::time::Instant::now();
                    let (ran, disk, heap) = bounds
                        .measure(
                            work.path(),
                            Box::pin(run_export::handle(deps, pending.event.clone())),
                        )
                        .await;
                    clock.running(false);
                    bounds.note(disk, heap);
                    if std::env::var_os("SOAK_TRACE").is_some()
                        && took.elapsed() > std::time::Duration::from_millis(500)
                    {
                        eprintln!(
                            "soak: slow invocation {:?}: {:?} -> {:?}",
                            took.elapsed(),
                            pending.event,
                            ran.as_ref().map_err(|e| e.to_string())
                        );
                    }
                    // A process that died (timed out, crashed) or failed is retried by Lambda.
                    if attempt.buried() || ran.is_err() {
                        *faults
                            .injected
                            .lock()
                            .expect("counts")
                            .entry("invocations retried by Lambda")
                            .or_default() += 1;
                        triggers.failed(clock.now(), pending);
                    }
                }
                let handed: Vec<NotifyEvent> = notify_queue
                    .lock()
                    .map(|mut q| std::mem::take(&mut *q))
                    .unwrap_or_default();
                for event in handed {
                    notifies.add(clock.now(), event);
                }
                for pending in notifies.due(clock.now()) {
                    if faults.roll("Slack answered 500 three times", 0.05) {
                        let failing = integration_tests::chat_server::Scripted {
                            status: 500,
                            retry_after: None,
                        };
                        fx.chat_state.script("/slack/soak", &[failing; 3]);
                    }
                    notify_attempt.invoked(clock.now() + NOTIFY_TIMEOUT);
                    let sent = notify::handle(notify_deps, pending.event.clone()).await;
                    if notify_attempt.buried() || sent.is_err() {
                        notifies.failed(clock.now(), pending);
                    }
                }
            };
            if tick == 1 && step % 7 == 3 && faults.roll("export deleted between runs", 0.5) {
                let who = &owners[(step as usize) % owners.len()];
                let (_, listed) = Fixture::call_with(api, "GET", "/exports", None, who).await;
                if let Some(id) = listed["results"][0]["id"].as_str() {
                    let (status, _) =
                        Fixture::call_with(api, "DELETE", &format!("/exports/{id}"), None, who).await;
                    deletes += usize::from(status == 204);
                }
            }
            let sweeping = tick % SWEEP_EVERY as i64 == 0;
            let sweep = async {
                if !sweeping {
                    return None;
                }
                let at = clock.now();
                reconcile::handle(reconciler).await.expect("sweeps");
                Some(at)
            };
            // Boxed: the two futures together are too large for the test thread's stack.
            let ((), swept) = tokio::join!(Box::pin(invocations), Box::pin(sweep));
            if let Some(at) = swept {
                // As of the sweep's own time: what it could have seen overdue.
                bounds.no_job_overdue(&fx, at, reconcile_config.grace).await;
            }
        }
        remember_done(&fx, &mut done_seen).await;
        if std::env::var_os("SOAK_TRACE").is_some() {
            eprintln!(
                "soak: step {step} done after {:?}, {} invocations",
                real.elapsed(),
                bounds.invocations
            );
        }
    }
    // Quiet down: no more faults, time for the grace to pass, the queues to drain.
    if let Ok(mut rng) = faults.rng.lock() {
        *rng = fastrand::Rng::with_seed(seed);
    }
    let quiet_notifier = NotifiesInProcess(notify::Deps {
        clock: &clock,
        ..fx.notify_deps()
    });
    let quiet = run_export::Deps {
        config: &soak_config,
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
        clock.advance(TimeDelta::minutes(30));
        reconcile::handle(quiet_reconciler).await.expect("sweeps");
        let mut due: Vec<RunEvent> = queue.take();
        due.extend(std::mem::take(&mut triggers.pending).into_iter().map(|p| p.event));
        due.extend(due_schedules(&fx, clock.now(), &mut fired).await);
        for pending in std::mem::take(&mut notifies.pending) {
            notify::handle(quiet_notifier.0, pending.event)
                .await
                .expect("notifies when nothing fails");
        }
        // What the runs launch (items, continuations, missed occurrences) runs too, at once.
        while !due.is_empty() {
            for event in due {
                run_export::handle(quiet, event)
                    .await
                    .expect("runs when nothing fails");
            }
            due = queue.take();
        }
    }
    reconcile::handle(quiet_reconciler).await.expect("sweeps");
    remember_done(&fx, &mut done_seen).await;

    // The invariants.
    let checked = invariants::hold(&fx, clock.now(), &late, (&done_seen, paused)).await;
    let mut injected = faults.injected.lock().map(|i| i.clone()).unwrap_or_default();
    for (what, count) in sweep_faults
        .injected
        .lock()
        .map(|i| i.clone())
        .unwrap_or_default()
    {
        *injected.entry(what).or_default() += count;
    }
    println!(
        "soak: {steps} steps of {} minutes (ticks of {}, a sweep every {}), seed {seed}, {deletes} deletes, {} dead letters",
        STEP.num_minutes(),
        TICK.num_minutes(),
        TICK.num_minutes() * i64::from(SWEEP_EVERY),
        triggers.dead_letters + notifies.dead_letters
    );
    println!(
        "soak: {} invocations; peak local disk {} bytes (bound {}), peak heap added {} bytes (bound {HEAP_BOUND}); {} overdue checks after sweeps",
        bounds.invocations,
        bounds.disk,
        2 * LOCAL_DISK + 64 * 1024,
        bounds.heap,
        bounds.overdue_checks
    );
    println!("soak: faults injected: {injected:?}");
    println!("soak: invariants checked: {checked:?}");
    assert!(injected.values().sum::<u32>() > 10, "the soak injected faults");
}
