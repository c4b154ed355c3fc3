//! The faults the soak injects: the dice, an attempt that dies at any await or after any
//! write, and a double of each port that rolls them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use exporter_adapters::dynamodb::DynamoStore;
use exporter_core::domain::job::{JobEnd, JobKey};
use exporter_core::domain::{Export, ExportId, ExportStatus, NotifyEvent, RunEvent};
use exporter_core::ports::{
    Advance, Budgets, DeliveryLog, ExportRuns, Exports, FileError, FilePieces, FileStore, GrowingFiles,
    ItemLedger, JobEnds, JobHistory, JobLedger, JobNotifier, JobSpread, LaunchError, RunLauncher,
    RunSchedules, ScheduleError, Spend, StoreError, Upload,
};

/// The chance of an attempt dying at any await (the process killed).
pub(super) const AWAIT_DEATH: f64 = 0.004;
/// The chance of a call taking minutes (a throttled or slow dependency).
pub(super) const SLOW_CALL: f64 = 0.006;

/// The dice, and what they decided.
pub(super) struct Faults {
    pub(super) rng: Mutex<fastrand::Rng>,
    pub(super) injected: Mutex<BTreeMap<&'static str, u32>>,
}

impl Faults {
    pub(super) fn roll(&self, what: &'static str, chance: f64) -> bool {
        let hit = self.rng.lock().map(|mut r| r.f64() < chance).unwrap_or(false);
        if hit {
            if let Ok(mut injected) = self.injected.lock() {
                *injected.entry(what).or_default() += 1;
            }
        }
        hit
    }
}

pub(super) fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected: {what}").into())
}

/// An attempt's process: it may die at any await, and after any step that changes something;
/// a call may take minutes, and Lambda ends the invocation at its deadline, whatever it is
/// doing (the first await past the deadline is where it stops). Once dead, every later call of
/// the attempt fails and changes nothing (a dead process does nothing more); Lambda retries its
/// event like a failed one.
pub(super) struct Attempt<'a> {
    pub(super) faults: &'a Faults,
    pub(super) dead: AtomicBool,
    /// The soak's clock, which a slow call moves on.
    pub(super) clock: &'a super::FastClock,
    /// The invocation's deadline on that clock (milliseconds since the epoch; 0: none).
    pub(super) deadline_ms: AtomicI64,
}

impl Attempt<'_> {
    pub(super) fn new<'a>(faults: &'a Faults, clock: &'a super::FastClock) -> Attempt<'a> {
        Attempt {
            faults,
            dead: AtomicBool::new(false),
            clock,
            deadline_ms: AtomicI64::new(0),
        }
    }
    /// A fresh invocation that Lambda ends at `deadline`.
    pub(super) fn invoked(&self, deadline: DateTime<Utc>) {
        self.dead.store(false, Ordering::SeqCst);
        self.deadline_ms
            .store(deadline.timestamp_millis(), Ordering::SeqCst);
    }
    pub(super) fn alive(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(unavailable("the attempt is dead"));
        }
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        if deadline > 0 && self.clock.peek_ms() >= deadline {
            if let Ok(mut injected) = self.faults.injected.lock() {
                *injected
                    .entry("Lambda ended an invocation at its deadline (after a slow call)")
                    .or_default() += 1;
            }
            self.dead.store(true, Ordering::SeqCst);
            return Err(unavailable("Lambda's timeout"));
        }
        Ok(())
    }
    /// The await of `step`: the call may take minutes (the clock moves on, and past the
    /// invocation's deadline Lambda ends it here), or the process may die before its answer
    /// (the call may or may not have been made).
    pub(super) fn at(&self, step: &'static str) -> Result<(), StoreError> {
        self.alive()?;
        if self.faults.roll("a call took minutes", SLOW_CALL) {
            let minutes = self.faults.rng.lock().map(|mut r| r.i64(1..4)).unwrap_or(1);
            self.clock.advance(chrono::TimeDelta::minutes(minutes));
            self.alive()?;
        }
        self.dies_after_at(step, AWAIT_DEATH)
    }
    /// Rolls a death right after `step` was done.
    pub(super) fn dies_after(&self, step: &'static str) -> Result<(), StoreError> {
        self.dies_after_at(step, CRASH)
    }
    /// Rolls a death right after `step`, a step rarely taken, with its own chance.
    pub(super) fn dies_after_at(&self, step: &'static str, chance: f64) -> Result<(), StoreError> {
        if self.faults.roll(step, chance) {
            self.dead.store(true, Ordering::SeqCst);
            return Err(unavailable("crash"));
        }
        Ok(())
    }
    /// Whether the attempt died, and a fresh process for the next one.
    pub(super) fn buried(&self) -> bool {
        self.dead.swap(false, Ordering::SeqCst)
    }
}

/// The chance of dying after each step.
pub(super) const CRASH: f64 = 0.025;

pub(super) fn scheduler_down(e: StoreError) -> ScheduleError {
    ScheduleError::Unavailable(Box::new(e))
}

pub(super) struct FaultySchedules<'a>(pub(super) &'a dyn RunSchedules, pub(super) &'a Attempt<'a>);

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

pub(super) struct FaultyRuns<'a>(pub(super) &'a dyn ExportRuns, pub(super) &'a Attempt<'a>);

#[async_trait]
impl ExportRuns for FaultyRuns<'_> {
    async fn advance_next_run(
        &self,
        id: (&ExportId, u64),
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
pub(super) struct FaultyLedger<'a>(pub(super) &'a DynamoStore, pub(super) &'a Attempt<'a>);

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
    async fn checkpoint_job(&self, job: &JobKey, leg: u32, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.checkpoint_job(job, leg, at).await
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

#[async_trait]
impl JobEnds for FaultyLedger<'_> {
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
    async fn stop_handing_off(&self, job: &JobKey) -> Result<(), StoreError> {
        self.0.stop_handing_off(job).await
    }
}

/// The runs of spread jobs' items: a dead attempt writes nothing; attempts die after spreading
/// a job, claiming an item, or counting one done.
pub(super) struct FaultyItems<'a>(pub(super) &'a DynamoStore, pub(super) &'a Attempt<'a>);

#[async_trait]
impl ItemLedger for FaultyItems<'_> {
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
    async fn checkpoint_item(
        &self,
        job: &JobKey,
        item: u32,
        leg: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.checkpoint_item(job, item, leg, at).await
    }
    async fn item_done(
        &self,
        job: &JobKey,
        item: u32,
        outcome: &exporter_core::domain::job::ItemOutcome,
        at: DateTime<Utc>,
    ) -> Result<exporter_core::domain::job::Counted, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        let counted = self.0.item_done(job, item, outcome, at).await?;
        self.1
            .dies_after_at("attempt died after counting its item done", 0.1)?;
        Ok(counted)
    }
}

#[async_trait]
impl JobSpread for FaultyItems<'_> {
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
    async fn item_outcomes(
        &self,
        job: &JobKey,
    ) -> Result<Vec<(u32, exporter_core::domain::job::ItemOutcome)>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.item_outcomes(job).await
    }
    async fn item_runs(&self, job: &JobKey) -> Result<Vec<exporter_core::domain::job::ItemRun>, StoreError> {
        self.0.item_runs(job).await
    }
}

/// The reads a run makes of its export and its jobs: an attempt may die waiting on them.
pub(super) struct FaultyReads<'a>(pub(super) &'a DynamoStore, pub(super) &'a Attempt<'a>);

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
    async fn jobs(&self, id: &ExportId) -> Result<Vec<exporter_core::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.jobs(id).await
    }
    async fn job(&self, job: &JobKey) -> Result<Option<exporter_core::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.job(job).await
    }
    async fn recent_jobs(
        &self,
        id: &ExportId,
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<exporter_core::domain::job::Job>, StoreError> {
        self.1.at("attempt died awaiting the store")?;
        self.0.recent_jobs(id, before, limit).await
    }
}

/// notify's record of its messages: a run may die (time out) after claiming a message, before
/// sending it; the message stays claimed until the claim lapses.
pub(super) struct FaultyDeliveries<'a>(pub(super) &'a dyn DeliveryLog, pub(super) &'a Attempt<'a>);

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
        delivery: &exporter_core::domain::notification::Delivery,
    ) -> Result<(), StoreError> {
        self.1.alive()?;
        self.0.record_delivery(job, delivery).await
    }
    async fn notified(&self, job: &JobKey, all_ended: bool) -> Result<(), StoreError> {
        self.1.at("notify died awaiting the store")?;
        self.0.notified(job, all_ended).await
    }
}

pub(super) struct FaultyBudgets<'a>(pub(super) &'a dyn Budgets, pub(super) &'a Attempt<'a>);

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

pub(super) struct FaultyLauncher<'a>(pub(super) &'a dyn RunLauncher, pub(super) &'a Attempt<'a>);

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

pub(super) struct FaultyFiles<'a>(
    pub(super) &'a exporter_adapters::s3::S3Files,
    pub(super) &'a Attempt<'a>,
);

pub(super) fn s3_down(e: StoreError) -> FileError {
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
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.put_bytes(key, bytes).await
    }
}

#[async_trait]
impl FilePieces for FaultyFiles<'_> {
    async fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, FileError> {
        // Lambda's timeout in the middle of a zip.
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.1
            .dies_after_at("attempt died (timed out) in the middle of a zip", 0.05)
            .map_err(s3_down)?;
        self.0.read_range(key, offset, len).await
    }
    async fn download(&self, key: &str, path: &std::path::Path) -> Result<u64, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.download(key, path).await
    }
}

#[async_trait]
impl GrowingFiles for FaultyFiles<'_> {
    fn piece_bytes(&self) -> usize {
        self.0.piece_bytes()
    }
    async fn begin(&self, key: &str, content_type: &str) -> Result<Upload, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.begin(key, content_type).await
    }
    async fn append(&self, key: &str, upload: &mut Upload, bytes: Vec<u8>) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.append(key, upload, bytes).await
    }
    async fn finish(&self, key: &str, upload: &Upload) -> Result<(), FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.finish(key, upload).await
    }
    async fn abandon_unfinished(&self, prefix: &str) -> Result<u64, FileError> {
        self.1.at("attempt died awaiting S3").map_err(s3_down)?;
        self.0.abandon_unfinished(prefix).await
    }
}

/// The hand-off to notify: an asynchronous invoke, failing now and then before it is made, that
/// queues notify's run (which the driver plays as a Lambda of its own, retried like one). A run's
/// attempt may die right after handing off; the reconciler's never does.
pub(super) struct FaultyNotifier<'a> {
    pub(super) faults: &'a Faults,
    pub(super) queue: &'a Mutex<Vec<NotifyEvent>>,
    pub(super) attempt: Option<&'a Attempt<'a>>,
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
