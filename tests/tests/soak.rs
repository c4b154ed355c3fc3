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

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use exporter::domain::job::{JobEnd, JobKey, JobStatus};
use exporter::domain::request::Item;
use exporter::domain::{Export, ExportId, ExportStatus, NotifyEvent, RunEvent, Schedule};
use exporter::dynamodb::DynamoStore;
use exporter::ports::{
    Advance, Budgets, Clock, DeliveryLog, ExportRuns, Exports, FileError, FileStore, ItemLedger, JobHistory,
    JobLedger, JobNotifier, LaunchError, RunLauncher, RunSchedules, ScheduleError, Spend, StoreError, Sweep,
};
use exporter::reader::HttpReader;
use exporter::scheduler::schedule_name;
use exporter::support::{Retry, Secret};
use integration_tests::doubles::{Launches, NotifiesInProcess};
use integration_tests::reader_server::LatePoint;
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use reconcile::ReconcileConfig;

/// The seed and the number of steps of 20 minutes (`SOAK_SEED`, `SOAK_STEPS` override them:
/// `SOAK_STEPS=72` is a simulated day).
const SEED: u64 = 20_261_129;
const STEPS: u32 = 24;
const STEP: TimeDelta = TimeDelta::minutes(20);
/// A step is played in ticks: triggers and retries run when their time has come in a tick.
const TICK: TimeDelta = TimeDelta::minutes(5);
/// The reconciler's rate, in ticks.
const SWEEP_EVERY: u32 = 2;
/// Lambda's asynchronous retries of a failed (or timed-out, or crashed) invocation: about a
/// minute, then about two more; after them the event goes to the dead-letter queue.
const RETRIES: [TimeDelta; 2] = [TimeDelta::minutes(1), TimeDelta::minutes(3)];
/// How far the clock moves each time a run reads it, so that a run takes time and its legs
/// pause by their budget.
const RUN_READ_MS: i64 = 100;
/// The chance of an attempt dying at any await (Lambda's timeout, the process killed).
const AWAIT_DEATH: f64 = 0.004;

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

/// The heap in use and its peak since the last reset (the soak's process: runs, the local
/// reader and chat servers), to bound what one invocation holds.
struct CountingAlloc;

static HEAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HEAP_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let now = HEAP.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

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

/// An attempt's process: it may die at any await, and after any step that changes something.
/// Once dead, every later call of the attempt fails and changes nothing (a dead process does
/// nothing more); Lambda retries its event like a failed one.
struct Attempt<'a> {
    faults: &'a Faults,
    dead: AtomicBool,
}

impl Attempt<'_> {
    fn alive(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(unavailable("the attempt is dead"));
        }
        Ok(())
    }
    /// Rolls a death at the await of `step`, before its answer: the call may or may not have
    /// been made (Lambda's timeout, the process killed while it waited).
    fn at(&self, step: &'static str) -> Result<(), StoreError> {
        self.alive()?;
        self.dies_after_at(step, AWAIT_DEATH)
    }
    /// Rolls a death right after `step` was done.
    fn dies_after(&self, step: &'static str) -> Result<(), StoreError> {
        self.dies_after_at(step, CRASH)
    }
    /// Rolls a death right after `step`, a step rarely taken, with its own chance.
    fn dies_after_at(&self, step: &'static str, chance: f64) -> Result<(), StoreError> {
        if self.faults.roll(step, chance) {
            self.dead.store(true, Ordering::SeqCst);
            return Err(unavailable("crash"));
        }
        Ok(())
    }
    /// Whether the attempt died, and a fresh process for the next one.
    fn buried(&self) -> bool {
        self.dead.swap(false, Ordering::SeqCst)
    }
}

/// The chance of dying after each step.
const CRASH: f64 = 0.025;

fn scheduler_down(e: StoreError) -> ScheduleError {
    ScheduleError::Unavailable(Box::new(e))
}

struct FaultySchedules<'a>(&'a dyn RunSchedules, &'a Attempt<'a>);

#[async_trait]
impl RunSchedules for FaultySchedules<'_> {
    async fn arm(&self, event: &RunEvent) -> Result<(), ScheduleError> {
        self.1
            .at("attempt died awaiting the scheduler")
            .map_err(scheduler_down)?;
        if self.1.faults.roll("scheduler failed to arm", 0.08) {
            return Err(ScheduleError::Unavailable("injected".into()));
        }
        self.0.arm(event).await?;
        self.1
            .dies_after("attempt died after arming the next occurrence")
            .map_err(scheduler_down)
    }
    async fn disarm(&self, id: &ExportId) -> Result<(), ScheduleError> {
        self.1
            .at("attempt died awaiting the scheduler")
            .map_err(scheduler_down)?;
        self.0.disarm(id).await
    }
    async fn armed(&self) -> Result<Vec<ExportId>, ScheduleError> {
        self.0.armed().await
    }
}

struct FaultyRuns<'a>(&'a dyn ExportRuns, &'a Attempt<'a>);

#[async_trait]
impl ExportRuns for FaultyRuns<'_> {
    async fn advance_next_run(
        &self,
        id: &ExportId,
        next: DateTime<Utc>,
        at: DateTime<Utc>,
        passed: &[JobKey],
    ) -> Result<Advance, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        if self.1.faults.roll("store failed to move the next run", 0.05) {
            return Err(unavailable("advance_next_run"));
        }
        let advanced = self.0.advance_next_run(id, next, at, passed).await?;
        self.1.dies_after("attempt died after moving the chain")?;
        Ok(advanced)
    }
    async fn settle_one_time(
        &self,
        export: &Export,
        status: ExportStatus,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.settle_one_time(export, status, at).await?;
        self.1
            .dies_after_at("attempt died after settling a one-time export", 0.3)
    }
}

/// The ledger, whose writes fail now and then; an attempt that dies holding its job leaves it
/// unfinished under a live lease.
struct FaultyLedger<'a>(&'a dyn JobLedger, &'a Attempt<'a>);

#[async_trait]
impl JobLedger for FaultyLedger<'_> {
    async fn open_job(
        &self,
        job: &JobKey,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let opened = self.0.open_job(job, at, lease_until).await?;
        self.1.dies_after("attempt died after claiming its job")?;
        Ok(opened)
    }
    async fn release_job(&self, job: &JobKey, at: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.release_job(job, at).await
    }
    async fn start_job(&self, job: &JobKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.start_job(job, at).await?;
        self.1.dies_after("attempt died after starting its job")
    }
    async fn finish_job(&self, job: &JobKey, end: &JobEnd) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        if self.1.faults.roll("store failed to record a job", 0.05) {
            return Err(unavailable("finish_job"));
        }
        let ended = self.0.finish_job(job, end).await?;
        self.1
            .dies_after_at("attempt died after recording its job", 0.05)?;
        Ok(ended)
    }
    async fn record_unrun(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.record_unrun(job, end).await?;
        self.1
            .dies_after_at("attempt died after recording a missed occurrence", 0.2)
    }
    async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.handed_off(job).await?;
        self.1.dies_after("attempt died after marking its hand-off")
    }
    async fn checkpoint_job(&self, job: &JobKey, leg: u32) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.checkpoint_job(job, leg).await
    }
    async fn resume_job(
        &self,
        job: &JobKey,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.resume_job(job, leg, at, lease_until).await
    }
}

/// The runs of spread jobs' items: a dead attempt writes nothing; attempts die after spreading
/// a job, claiming an item, or counting one done.
struct FaultyItems<'a>(&'a dyn ItemLedger, &'a Attempt<'a>);

#[async_trait]
impl ItemLedger for FaultyItems<'_> {
    async fn spread_job(&self, job: &JobKey, items: u32, launched: u32) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let spread = self.0.spread_job(job, items, launched).await?;
        self.1.dies_after("attempt died after spreading its job")?;
        Ok(spread)
    }
    async fn launch_item(&self, job: &JobKey, item: u32, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.launch_item(job, item, at).await
    }
    async fn next_item(&self, job: &JobKey, items: u32) -> Result<Option<u32>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.next_item(job, items).await
    }
    async fn claim_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let claimed = self.0.claim_item(job, item, leg, at, lease_until).await?;
        self.1.dies_after("attempt died after claiming an item")?;
        Ok(claimed)
    }
    async fn release_item(&self, job: &JobKey, item: u32) -> Result<(), StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.release_item(job, item).await
    }
    async fn checkpoint_item(&self, job: &JobKey, item: u32, leg: u32) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.checkpoint_item(job, item, leg).await
    }
    async fn item_done(
        &self,
        job: &JobKey,
        item: u32,
        outcome: &exporter::domain::job::ItemOutcome,
        at: DateTime<Utc>,
    ) -> Result<exporter::domain::job::Counted, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let counted = self.0.item_done(job, item, outcome, at).await?;
        self.1
            .dies_after_at("attempt died after counting its item done", 0.1)?;
        Ok(counted)
    }
    async fn item_outcomes(
        &self,
        job: &JobKey,
    ) -> Result<Vec<(u32, exporter::domain::job::ItemOutcome)>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.item_outcomes(job).await
    }
    async fn item_runs(&self, job: &JobKey) -> Result<Vec<exporter::domain::job::ItemRun>, StoreError> {
        self.0.item_runs(job).await
    }
}

/// The reads a run makes of its export and its jobs: an attempt may die waiting on them.
struct FaultyReads<'a>(&'a DynamoStore, &'a Attempt<'a>);

#[async_trait]
impl Exports for FaultyReads<'_> {
    async fn get(&self, id: &ExportId) -> Result<Option<Export>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.get(id).await
    }
    async fn list_by_owner(&self, owner: &str) -> Result<Vec<Export>, StoreError> {
        self.0.list_by_owner(owner).await
    }
}

#[async_trait]
impl JobHistory for FaultyReads<'_> {
    async fn jobs(&self, id: &ExportId) -> Result<Vec<exporter::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.jobs(id).await
    }
    async fn job(&self, job: &JobKey) -> Result<Option<exporter::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.job(job).await
    }
    async fn recent_jobs(
        &self,
        id: &ExportId,
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<exporter::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.recent_jobs(id, before, limit).await
    }
}

/// notify's record of its messages: a run may die (time out) after claiming a message, before
/// sending it; the message stays claimed until the claim lapses.
struct FaultyDeliveries<'a>(&'a dyn DeliveryLog, &'a Attempt<'a>);

#[async_trait]
impl DeliveryLog for FaultyDeliveries<'_> {
    async fn claim_delivery(
        &self,
        job: &JobKey,
        message: usize,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.1.at("notify died awaiting the store")?;
        let claimed = self.0.claim_delivery(job, message, at, until).await?;
        self.1.dies_after_at(
            "notify died (timed out) after claiming a message, before sending it",
            0.05,
        )?;
        Ok(claimed)
    }
    async fn record_delivery(
        &self,
        job: &JobKey,
        delivery: &exporter::domain::notification::Delivery,
    ) -> Result<(), StoreError> {
        self.1.alive()?;
        self.0.record_delivery(job, delivery).await
    }
    async fn notified(&self, job: &JobKey, all_ended: bool) -> Result<(), StoreError> {
        self.1.at("notify died awaiting the store")?;
        self.0.notified(job, all_ended).await
    }
}

struct FaultyBudgets<'a>(&'a dyn Budgets, &'a Attempt<'a>);

#[async_trait]
impl Budgets for FaultyBudgets<'_> {
    async fn spend(
        &self,
        owner: &str,
        job: &JobKey,
        spend: Spend,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let spent = self.0.spend(owner, job, spend, at, limit).await?;
        self.1.dies_after("attempt died after spending its budget")?;
        Ok(spent)
    }
}

struct FaultyLauncher<'a>(&'a dyn RunLauncher, &'a Attempt<'a>);

#[async_trait]
impl RunLauncher for FaultyLauncher<'_> {
    async fn launch(&self, event: &RunEvent) -> Result<(), LaunchError> {
        let dead = |e: StoreError| LaunchError::Unavailable(Box::new(e));
        self.1.at("attempt died awaiting a launch").map_err(dead)?;
        self.0.launch(event).await?;
        self.1
            .dies_after_at("attempt died after launching a missed occurrence", 0.2)
            .map_err(dead)
    }
}

struct FaultyFiles<'a>(&'a dyn FileStore, &'a Attempt<'a>);

fn s3_down(e: StoreError) -> FileError {
    FileError::Unavailable("dead".into(), Box::new(e))
}

#[async_trait]
impl FileStore for FaultyFiles<'_> {
    async fn put(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        if key.ends_with(".xlsx") {
            // Lambda's timeout while the workbook is rendered and stored.
            self.1
                .dies_after_at("attempt died (timed out) rendering a workbook", 0.1)
                .map_err(s3_down)?;
        }
        if self.1.faults.roll("S3 failed to store a file", 0.04) {
            return Err(FileError::Unavailable("put".into(), "injected".into()));
        }
        let size = self.0.put(key, path, content_type).await?;
        self.1
            .dies_after("attempt died after storing a file")
            .map_err(s3_down)?;
        Ok(size)
    }
    async fn remove(&self, key: &str) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.remove(key).await
    }
    async fn remove_all(&self, prefix: &str) -> Result<u64, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        let removed = self.0.remove_all(prefix).await?;
        self.1
            .dies_after_at("attempt died after removing a failed job's files", 0.3)
            .map_err(s3_down)?;
        Ok(removed)
    }
    async fn presign(&self, key: &str, expires_in: std::time::Duration) -> Result<String, FileError> {
        self.0.presign(key, expires_in).await
    }
    async fn read(&self, key: &str) -> Result<Vec<u8>, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.read(key).await
    }
    async fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, FileError> {
        // Lambda's timeout in the middle of a zip.
        self.1.alive().map_err(s3_down)?;
        self.1
            .dies_after_at("attempt died (timed out) in the middle of a zip", 0.05)
            .map_err(s3_down)?;
        self.0.read_range(key, offset, len).await
    }
    async fn download(&self, key: &str, path: &std::path::Path) -> Result<u64, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.download(key, path).await
    }
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.put_bytes(key, bytes).await
    }
    async fn begin_upload(&self, key: &str, content_type: &str) -> Result<String, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.begin_upload(key, content_type).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<String, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.upload_part(key, upload, number, bytes).await
    }
    async fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        parts: &[(i32, String)],
    ) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.complete_upload(key, upload, parts).await
    }
}

/// The hand-off to notify: an asynchronous invoke, failing now and then before it is made, that
/// queues notify's run (which the driver plays as a Lambda of its own, retried like one). A run's
/// attempt may die right after handing off; the reconciler's never does.
struct FaultyNotifier<'a> {
    faults: &'a Faults,
    queue: &'a Mutex<Vec<NotifyEvent>>,
    attempt: Option<&'a Attempt<'a>>,
}

#[async_trait]
impl JobNotifier for FaultyNotifier<'_> {
    async fn job_ended(&self, event: &NotifyEvent) -> Result<(), LaunchError> {
        let dead = |e: StoreError| LaunchError::Unavailable(Box::new(e));
        if let Some(attempt) = self.attempt {
            attempt
                .at("attempt died awaiting the hand-off to notify")
                .map_err(dead)?;
        }
        if self.faults.roll("hand-off to notify failed", 0.05) {
            return Err(LaunchError::Unavailable("injected".into()));
        }
        if let Ok(mut queue) = self.queue.lock() {
            queue.push(event.clone());
        }
        if let Some(attempt) = self.attempt {
            attempt
                .dies_after("attempt died after handing off to notify")
                .map_err(dead)?;
        }
        Ok(())
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

/// The CSVs a fault-free run may write for `[from, to)` of a wide item of the fixture's series
/// (a value a minute, the same for any name), in Rome's time (computed independently here): a
/// row per time any target has, with each target's value (or its change, none for its first),
/// or a row per five minutes with each target's highest. Each target is read on its own, so a
/// point that arrived late during the reads (`late`) is in any subset of the targets' series:
/// one file per way it can be.
fn wide_files(item: &Item, (from, to): (DateTime<Utc>, DateTime<Utc>), late: &[LatePoint]) -> Vec<String> {
    let targets = item.targets();
    let labels: Vec<&str> = targets.iter().map(|(n, l)| l.unwrap_or(n.as_str())).collect();
    let at = |t: i64| {
        chrono_tz::Europe::Rome
            .timestamp_opt(t, 0)
            .single()
            .expect("an instant")
            .to_rfc3339()
    };
    let minutes: Vec<(i64, f64)> = (from.timestamp()..to.timestamp())
        .step_by(60)
        .map(|t| {
            (
                t,
                integration_tests::expected_value((t - integration_tests::READER_START) / 60),
            )
        })
        .collect();
    let late: Vec<&LatePoint> = late
        .iter()
        .filter(|p| (from.timestamp()..to.timestamp()).contains(&p.time))
        .collect();
    assert!(
        late.len() <= 4,
        "too many late points in one window to try every way"
    );
    let mut files = Vec::new();
    for seen in 0u32..1 << (late.len() * targets.len()) {
        // Each target's cells by time: its value, its change, or its bucket's highest.
        let cells: Vec<BTreeMap<i64, String>> = (0..targets.len())
            .map(|k| {
                let mut points = minutes.clone();
                for (j, p) in late.iter().enumerate() {
                    if seen & (1 << (k * late.len() + j)) != 0 {
                        points.push((p.time, p.value));
                    }
                }
                points.sort_by_key(|p| p.0);
                match (item.decimation, item.transform) {
                    (Some(_), _) => {
                        let mut highest: BTreeMap<i64, f64> = BTreeMap::new();
                        for (t, v) in points {
                            let h = highest.entry(t - t.rem_euclid(300)).or_insert(f64::NEG_INFINITY);
                            *h = h.max(v);
                        }
                        highest.into_iter().map(|(t, v)| (t, v.to_string())).collect()
                    }
                    (None, Some(_)) => {
                        let mut previous: Option<f64> = None;
                        points
                            .into_iter()
                            .map(|(t, v)| {
                                let change = previous.map(|p| (v - p).to_string()).unwrap_or_default();
                                previous = Some(v);
                                (t, change)
                            })
                            .collect()
                    }
                    (None, None) => points.into_iter().map(|(t, v)| (t, v.to_string())).collect(),
                }
            })
            .collect();
        let times: std::collections::BTreeSet<i64> = cells.iter().flat_map(|c| c.keys().copied()).collect();
        let mut file = format!("Time,{}\r\n", labels.join(","));
        for t in times {
            let row: Vec<&str> = cells
                .iter()
                .map(|c| c.get(&t).map_or("", String::as_str))
                .collect();
            file += &format!("{},{}\r\n", at(t), row.join(","));
        }
        files.push(file);
    }
    files
}

/// The CSV a fault-free run writes for `[from, to)` of the fixture's series: a header, and a
/// row a minute in Rome's time with the local reader's value (computed independently here).
/// `late` are the points that arrived late (during reads): each row of the window, with whether
/// it is a late one (a file holds it when it arrived before its slice was read).
fn expected_rows(from: DateTime<Utc>, to: DateTime<Utc>, late: &[LatePoint]) -> Vec<(String, bool)> {
    let mut points: Vec<(i64, f64, bool)> = Vec::new();
    let mut t = from.timestamp();
    while t < to.timestamp() {
        let value = integration_tests::expected_value((t - integration_tests::READER_START) / 60);
        points.push((t, value, false));
        t += 60;
    }
    points.extend(
        late.iter()
            .filter(|p| (from.timestamp()..to.timestamp()).contains(&p.time))
            .map(|p| (p.time, p.value, true)),
    );
    points.sort_by_key(|p| p.0);
    points
        .into_iter()
        .map(|(t, value, late)| {
            let local = chrono_tz::Europe::Rome
                .timestamp_opt(t, 0)
                .single()
                .expect("an instant");
            (format!("{},{value}", local.to_rfc3339()), late)
        })
        .collect()
}

/// The local disk a run may fill in one invocation (`RUN_MAX_LOCAL_BYTES`), scaled down:
/// smaller than a one-time export's three files together.
const LOCAL_DISK: u64 = 48 * 1024;
/// The most heap one invocation may add (the run, and the local reader serving it).
const HEAP_BOUND: usize = 64 * 1024 * 1024;

/// What invocations held, and the checks made while the soak ran.
#[derive(Default)]
struct Bounds {
    disk: u64,
    heap: usize,
    invocations: usize,
    overdue_checks: usize,
}

impl Bounds {
    /// Runs `run`, measuring the peak of the local disk under `dir` and of the heap it added.
    async fn measure<F: std::future::Future>(
        &self,
        dir: &std::path::Path,
        run: F,
    ) -> (F::Output, u64, usize) {
        let base = HEAP.load(Ordering::SeqCst);
        HEAP_PEAK.store(base, Ordering::SeqCst);
        let (out, disk) = integration_tests::peak_disk(dir, run).await;
        (out, disk, HEAP_PEAK.load(Ordering::SeqCst).saturating_sub(base))
    }

    /// An invocation's peaks: within the configured bounds.
    fn note(&mut self, disk: u64, heap: usize) {
        // The local file of one item (up to the configured bound, then it pauses), and the tail
        // it carried over from the leg before (less than a part, here less than a file).
        assert!(
            disk <= 2 * LOCAL_DISK + 64 * 1024,
            "an invocation held {disk} bytes of local disk"
        );
        assert!(heap <= HEAP_BOUND, "an invocation added {heap} bytes of heap");
        self.disk = self.disk.max(disk);
        self.heap = self.heap.max(heap);
        self.invocations += 1;
    }

    /// Right after a sweep: no job is left unfinished an hour past its lease and the grace
    /// (the sweep ended it, or relaunched what goes on). Spread jobs are their items'.
    async fn no_job_overdue(&mut self, fx: &Fixture, now: DateTime<Utc>, grace: TimeDelta) {
        let overdue = fx
            .store
            .stalled_jobs(now - grace - TimeDelta::hours(1))
            .await
            .expect("reads");
        let overdue: Vec<_> = overdue
            .iter()
            .filter(|(_, job)| job.spread.is_none())
            .map(|(id, job)| {
                (
                    id.to_string(),
                    job.job_id.clone(),
                    job.status,
                    job.leg,
                    job.attempts,
                )
            })
            .collect();
        assert!(
            overdue.is_empty(),
            "jobs left unfinished past their lease and the grace: {overdue:?}"
        );
        self.overdue_checks += 1;
    }
}

/// Records the files (and zips) of every job done so far, with their export.
async fn remember_done(fx: &Fixture, seen: &mut BTreeMap<String, ExportId>) {
    for export in fx.store.every_export().await.expect("scans") {
        for job in fx.store.jobs(&export.id).await.expect("jobs") {
            if job.status != JobStatus::Done {
                continue;
            }
            for file in job.detail.files.iter().chain(job.detail.archive.as_ref()) {
                seen.insert(file.key.clone(), export.id);
            }
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
    let attempt = Attempt {
        faults: &faults,
        dead: AtomicBool::new(false),
    };
    let notify_attempt = Attempt {
        faults: &faults,
        dead: AtomicBool::new(false),
    };
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
    let notifier = FaultyNotifier {
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
        files: &files,
        runs: &runs,
        ledger: &ledger,
        budgets: &budgets,
        schedules: &schedules,
        launcher: &launcher,
        notifier: &run_notifier,
        reader: &paged,
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
        exports: &fx.store,
        history: &fx.store,
        ledger: &fx.store,
        items: &fx.store,
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
    let ticks = STEP.num_minutes() / TICK.num_minutes();
    for step in 0..steps {
        // The reader answers 500 to the next requests now and then (the client retries).
        if faults.roll("reader failed (500) for a while", 0.3) {
            fx.reader_state.fail_first.store(2, Ordering::SeqCst);
        }
        for tick in 0..ticks {
            let tick_start = clock.now();
            clock.at_least(tick_start + TICK);
            let now = clock.now();
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
            for pending in triggers.due(now) {
                clock.running(true);
                let (ran, disk, heap) = bounds
                    .measure(work.path(), run_export::handle(run, pending.event.clone()))
                    .await;
                clock.running(false);
                bounds.note(disk, heap);
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
                let sent = notify::handle(notify_deps, pending.event.clone()).await;
                if notify_attempt.buried() || sent.is_err() {
                    notifies.failed(clock.now(), pending);
                }
            }
            if tick == 1 && step % 7 == 3 && faults.roll("export deleted between runs", 0.5) {
                let who = &owners[(step as usize) % owners.len()];
                let (_, listed) = Fixture::call_with(api, "GET", "/exports", None, who).await;
                if let Some(id) = listed["results"][0]["id"].as_str() {
                    let (status, _) =
                        Fixture::call_with(api, "DELETE", &format!("/exports/{id}"), None, who).await;
                    deletes += usize::from(status == 204);
                }
            }
            if tick % SWEEP_EVERY as i64 == 0 {
                reconcile::handle(reconciler).await.expect("sweeps");
                bounds
                    .no_job_overdue(&fx, clock.now(), reconcile_config.grace)
                    .await;
            }
        }
        remember_done(&fx, &mut done_seen).await;
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
    let now = clock.now();
    let mut checked = BTreeMap::<&str, usize>::new();
    let exports = fx.store.every_export().await.expect("scans");
    let armed: HashSet<ExportId> = fx.schedules.armed().await.expect("lists").into_iter().collect();
    for export in &exports {
        let jobs = fx.store.jobs(&export.id).await.expect("jobs");
        for job in &jobs {
            let runs = match &job.spread {
                Some(_) => fx
                    .store
                    .item_runs(&JobKey {
                        export_id: export.id,
                        scheduled_at: job.scheduled_at,
                    })
                    .await
                    .expect("item runs"),
                None => Vec::new(),
            };
            assert!(
                matches!(
                    job.status,
                    JobStatus::Done | JobStatus::Failed | JobStatus::Expired
                ),
                "{}: job {} left {:?}: attempts {}, leg {}, spread {:?}, item runs {runs:?}",
                export.id,
                job.job_id,
                job.status,
                job.attempts,
                job.leg,
                job.spread
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
        if live && export.request.schedule == Schedule::OneTime && export.status != ExportStatus::Creating {
            let job = jobs
                .first()
                .unwrap_or_else(|| panic!("{}: a one-time export never ran", export.id));
            let settled = match job.status {
                JobStatus::Done => ExportStatus::Done,
                _ => ExportStatus::Failed,
            };
            assert_eq!(export.status, settled, "{}: settled as its job ended", export.id);
            *checked
                .entry("one-time exports settled as their job")
                .or_default() += 1;
        }
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
    // (ten minutes of a chain's occurrence, a day for a one-time export) byte for byte as a
    // fault-free run writes it: every point once, in order, and each late point either in it
    // (it arrived before its slice was read) or not (it came after), never twice or misplaced.
    let done_files: HashSet<String> = {
        let mut keys = HashSet::new();
        for export in &exports {
            for job in fx.store.jobs(&export.id).await.expect("jobs") {
                if job.status != JobStatus::Done {
                    continue;
                }
                // A row a minute of the window, and the late points it held.
                let whole = |from: DateTime<Utc>, to: DateTime<Utc>| {
                    usize::try_from((to - from).num_minutes()).unwrap_or(0)
                };
                // A decimated item's series for the email's chart stays beside the files.
                for (index, item) in export.request.items.iter().enumerate() {
                    if item.decimation.is_some() {
                        keys.insert(exporter::domain::files::chart_key(&export.id, &job.job_id, index));
                    }
                }
                if let Some(archive) = &job.detail.archive {
                    keys.insert(archive.key.clone());
                    *checked.entry("spread jobs zipped").or_default() += 1;
                }
                for (index, file) in job.detail.files.iter().enumerate() {
                    let window = &job.detail.windows[index];
                    let from: DateTime<Utc> = window
                        .from
                        .as_deref()
                        .and_then(|t| t.parse().ok())
                        .expect("a start");
                    let to: DateTime<Utc> = window.to.parse().expect("an end");
                    let bytes = fx.files.read(&file.key).await.expect("the file");
                    if file.key.ends_with(".xlsx") {
                        // A workbook: whole (a zip), a row a minute of its window at least.
                        assert!(bytes.starts_with(b"PK"), "{}: a workbook", file.key);
                        assert!(
                            file.rows as usize >= whole(from, to),
                            "{}: rows recorded",
                            file.key
                        );
                        *checked.entry("workbooks whole").or_default() += 1;
                        keys.insert(file.key.clone());
                        continue;
                    }
                    let got = String::from_utf8_lossy(&bytes).into_owned();
                    let item = &export.request.items[index];
                    if item.is_wide() {
                        let candidates = wide_files(item, (from, to), &late);
                        assert!(
                            candidates.contains(&got),
                            "{}: {got:?} is none of {candidates:?}",
                            file.key
                        );
                        assert_eq!(
                            file.rows,
                            got.lines().count() as u64 - 1,
                            "{}: rows recorded",
                            file.key
                        );
                        *checked.entry("wide files (raw, deltas, decimated)").or_default() += 1;
                        keys.insert(file.key.clone());
                        continue;
                    }
                    let held: HashSet<&str> = got.lines().collect();
                    let rows: Vec<String> = expected_rows(from, to, &late)
                        .into_iter()
                        .filter(|(row, late)| !late || held.contains(row.as_str()))
                        .map(|(row, _)| row)
                        .collect();
                    let late_held = rows.len().saturating_sub(whole(from, to));
                    let expected = format!("Time,Value\r\n{}\r\n", rows.join("\r\n"));
                    assert_eq!(got, expected, "{}", file.key);
                    assert_eq!(file.rows, rows.len() as u64, "{}: rows recorded", file.key);
                    *checked
                        .entry("files equal to a fault-free run, byte for byte")
                        .or_default() += 1;
                    *checked.entry("late points in files, once each").or_default() += late_held;
                    keys.insert(file.key.clone());
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
    // Messages: each done job's success message and each failed job's failure message went out
    // once, or its failure is recorded; a job that never ran (recorded missed) sends nothing.
    let posts: Vec<String> = fx
        .chat_state
        .captured()
        .into_iter()
        .filter(|c| c.path.starts_with("/slack/soak") && c.answered == 200)
        .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
        .collect();
    for export in exports.iter().filter(|e| !e.request.messages.is_empty()) {
        for job in fx.store.jobs(&export.id).await.expect("jobs") {
            let posted = |outcome: &str| {
                posts
                    .iter()
                    .filter(|t| t.contains(&format!("{outcome} job {} of {}", job.job_id, export.id)))
                    .count()
            };
            let message = match job.status {
                JobStatus::Done => 0,
                JobStatus::Failed if job.attempts == 0 => {
                    assert_eq!(
                        posted("failed") + posted("ok"),
                        0,
                        "{}: recorded missed, never sent",
                        job.job_id
                    );
                    *checked.entry("missed occurrences silent").or_default() += 1;
                    continue;
                }
                JobStatus::Failed if export.deleted_at.is_none() => 1,
                _ => continue,
            };
            let sent = posted(if message == 0 { "ok" } else { "failed" });
            let recorded = job
                .deliveries
                .iter()
                .find(|d| d.message == message)
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
    // The files of every job ever seen done are still there (unless its export was deleted).
    let stored: HashSet<String> = fx.objects().await.into_iter().collect();
    for (key, id) in &done_seen {
        let deleted = exports.iter().any(|e| e.id == *id && e.deleted_at.is_some());
        assert!(
            deleted || stored.contains(key),
            "{key}: a done job's file was deleted"
        );
        *checked.entry("done jobs' files never deleted").or_default() += 1;
    }
    assert_eq!(fx.open_uploads().await, 0, "no upload left open");
    *checked.entry("no multipart upload left open").or_default() += 1;
    let mut queued: BTreeMap<String, i64> = BTreeMap::new();
    for export in exports
        .iter()
        .filter(|e| e.deleted_at.is_none() && e.status.counts_against_quota())
    {
        *queued.entry(export.owner.clone()).or_default() += 1;
    }
    for (owner, counter) in fx
        .store
        .quotas(Utc::now() + TimeDelta::days(1))
        .await
        .expect("counters")
    {
        assert_eq!(
            counter,
            queued.get(&owner).copied().unwrap_or(0),
            "{owner}'s counter"
        );
        *checked.entry("quota counters equal to the records").or_default() += 1;
    }
    let injected = faults.injected.lock().map(|i| i.clone()).unwrap_or_default();
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
