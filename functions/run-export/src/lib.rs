//! run-export: one run of one export, triggered by `{"exportId", "scheduledAt"}` from the
//! create request (one-time) or from its schedule (recurring).
//!
//! A run: skip a missing or deleted export; for a recurring export, re-arm the next occurrence
//! *before* exporting, so a failed export never breaks the chain; record the job once per
//! `(exportId, scheduledAt)` (a duplicate trigger stops there); read each item's window from
//! the reader oldest first, decimate when asked, write the file to a local temporary file and
//! store it whole (a failure removes the job's earlier files, so no half result is ever visible); zip several files; record the job's end; hand
//! off to notify.

mod items;
mod merge;
mod pipeline;

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};

use exporter::config::{optional, parsed_or, ConfigError};
use exporter::domain::files;
use exporter::domain::job::{JobDetail, JobEnd, JobKey, JobStatus};
use exporter::domain::timestamp::rfc3339;
use exporter::domain::{Export, ExportStatus, NotifyEvent, Recurrence, RunEvent, Schedule};
use exporter::ports::{
    Advance, Budgets, Caller, ChannelAccess, ChannelRead, Clock, ExportRuns, Exports, FileStore, ItemLedger,
    JobHistory, JobLedger, JobNotifier, RunLauncher, RunSchedules, SeriesReader, Spend,
};

pub use exporter::failure::Failure;
use pipeline::Progress;
pub use pipeline::{Checkpoint, JobError};

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// How long files and job records are kept (S3 lifecycle and DynamoDB TTL).
    pub retention: TimeDelta,
    /// Where temporary files go (Lambda: /tmp); the system default when unset.
    pub work_dir: Option<PathBuf>,
    /// How long an attempt holds its job: longer than the function's timeout, so that only an
    /// attempt that is surely over (crashed, timed out) can be taken over by a retry.
    pub lease: TimeDelta,
    /// Runs an owner's exports may make in a UTC day; past it, runs are recorded failed.
    pub max_runs_per_day: u32,
    /// How late an occurrence whose trigger never came may still run; older ones are recorded
    /// as missed.
    pub lateness: TimeDelta,
    /// How long before the invocation's deadline a run stops reading, to remove its files,
    /// record its job and hand off to notify.
    pub deadline_margin: TimeDelta,
    /// How long after its occurrence a schedule fires (the schedules' settle delay): an
    /// occurrence can still be armed until then.
    pub settle: TimeDelta,
    /// How long one invocation works on a job before it saves a checkpoint and continues in a
    /// fresh one; `None`: until the deadline's margin.
    pub budget: Option<TimeDelta>,
    /// How many times a job may continue; past it, a job out of time fails.
    pub max_legs: u32,
    /// The size of the parts a file continued across invocations is uploaded in (the store's
    /// minimum at least).
    pub part_bytes: usize,
    /// The most rows one item's workbook may hold; a job past it fails as soon as it gets there.
    pub xlsx_max_rows: u64,
    /// The most rows of a decimated item's workbook that get a native line chart; 0: none.
    pub xlsx_chart_max_rows: u64,
    /// The most bytes of a file one invocation writes locally before it pauses (its full parts
    /// uploaded) and continues in a fresh one: the function's local storage is bounded by it.
    pub max_local_bytes: u64,
    /// How many items of a job run at once, each in an invocation of its own; 1: a job's items
    /// run one after the other in the job's invocation.
    pub fan_out: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            retention: TimeDelta::days(7),
            work_dir: None,
            lease: TimeDelta::seconds(930),
            max_runs_per_day: 10_000,
            lateness: TimeDelta::hours(1),
            deadline_margin: TimeDelta::seconds(60),
            settle: TimeDelta::seconds(60),
            budget: None,
            max_legs: 200,
            part_bytes: 8 * 1024 * 1024,
            xlsx_max_rows: 5_000_000,
            xlsx_chart_max_rows: 10_000,
            fan_out: 4,
            max_local_bytes: 1 << 30,
        }
    }
}

impl RunConfig {
    /// Reads `RETENTION_DAYS`, `WORK_DIR`, `JOB_LEASE_SECONDS` and `MAX_RUNS_PER_DAY`, each falling back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            retention: TimeDelta::days(parsed_or("RETENTION_DAYS", defaults.retention.num_days())?),
            work_dir: optional("WORK_DIR").map(Into::into),
            lease: TimeDelta::seconds(parsed_or("JOB_LEASE_SECONDS", defaults.lease.num_seconds())?),
            max_runs_per_day: parsed_or("MAX_RUNS_PER_DAY", defaults.max_runs_per_day)?,
            lateness: TimeDelta::seconds(parsed_or(
                "CATCH_UP_LATENESS_SECONDS",
                defaults.lateness.num_seconds(),
            )?),
            deadline_margin: TimeDelta::seconds(parsed_or(
                "RUN_DEADLINE_MARGIN_SECONDS",
                defaults.deadline_margin.num_seconds(),
            )?),
            // Set by the composition root from the schedules' settings, which read it.
            settle: defaults.settle,
            budget: optional("RUN_BUDGET_SECONDS")
                .map(|s| s.parse::<i64>().map(TimeDelta::seconds))
                .transpose()
                .map_err(|e| ConfigError::Malformed {
                    name: "RUN_BUDGET_SECONDS",
                    reason: e.to_string(),
                })?,
            max_legs: parsed_or("RUN_MAX_CONTINUATIONS", defaults.max_legs)?,
            // Set by the composition root with the store's part size.
            part_bytes: defaults.part_bytes,
            xlsx_max_rows: parsed_or("XLSX_MAX_ROWS", defaults.xlsx_max_rows)?,
            xlsx_chart_max_rows: parsed_or("XLSX_CHART_MAX_ROWS", defaults.xlsx_chart_max_rows)?,
            fan_out: parsed_or("ITEM_FAN_OUT", defaults.fan_out)?,
            max_local_bytes: parsed_or("RUN_MAX_LOCAL_BYTES", defaults.max_local_bytes)?,
        })
    }
}

/// What the run needs: the roles of the store it uses, and nothing else.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub runs: &'a dyn ExportRuns,
    pub ledger: &'a dyn JobLedger,
    /// The runs of the items of jobs spread over parallel invocations.
    pub items: &'a dyn ItemLedger,
    pub history: &'a dyn JobHistory,
    pub budgets: &'a dyn Budgets,
    pub schedules: &'a dyn RunSchedules,
    /// Launches occurrences that passed without their trigger.
    pub launcher: &'a dyn RunLauncher,
    pub reader: &'a dyn SeriesReader,
    pub files: &'a dyn FileStore,
    pub notifier: &'a dyn JobNotifier,
    /// Re-checks the owner's channel access before every run (`CHANNEL_ACCESS=policy`); `None`
    /// when access is only checked at create time.
    pub access: Option<&'a dyn ChannelAccess>,
    pub clock: &'a dyn Clock,
    pub config: &'a RunConfig,
    /// When this attempt must stop working (the invocation's deadline less a margin), so that
    /// it ends its job cleanly rather than being cut off; `None`: no limit.
    pub stop_at: Option<DateTime<Utc>>,
}

/// When an attempt whose invocation ends at `deadline` must stop working: `margin` before it, or
/// half-way there when less time than twice the margin remains (a short timeout, an emulator);
/// `None` without a deadline still ahead.
pub fn stop_at(
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    margin: TimeDelta,
) -> Option<DateTime<Utc>> {
    let deadline = deadline.filter(|d| *d > now)?;
    Some(deadline - margin.min((deadline - now) / 2))
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The export is gone or deleted: nothing to do.
    Skipped,
    /// The job of this trigger exists already: a duplicate, nothing done twice.
    Duplicate,
    /// The job ran and wrote its files.
    Done,
    /// The job ran and failed; the failure is recorded on the job.
    Failed,
    /// The job's budget ran out: it saved a checkpoint and continues in a fresh invocation.
    Continued,
    /// The job's items were launched to run in parallel.
    Spread,
    /// An item of a spread job finished; others are still running.
    ItemDone,
}

/// Handles one trigger, or one continuation of a job.
pub async fn handle(deps: Deps<'_>, event: RunEvent) -> Result<Outcome, Failure> {
    // The invocation works until its budget or its deadline's margin, whichever comes first.
    let budget_end = deps.config.budget.map(|b| deps.clock.now() + b);
    let stop_at = match (deps.stop_at, budget_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let deps = Deps { stop_at, ..deps };
    if let Some(item) = event.item {
        return items::run(deps, event, item).await;
    }
    if let Some(leg) = event.leg {
        return continue_job(deps, event, leg).await;
    }
    let export = match deps.exports.get(&event.export_id).await? {
        Some(export) if export.deleted_at.is_none() && export.status != ExportStatus::Creating => export,
        // `creating`: its create never finished (the reconciler removes it), so it is invisible
        // to its owner and must not run or notify.
        _ => {
            tracing::info!(export_id = %event.export_id, "export missing, deleted or never armed; nothing to run");
            return Ok(Outcome::Skipped);
        }
    };
    let (event, occurrence) = match export.request.schedule {
        Schedule::OneTime => (event, None),
        Schedule::Recurring(recurrence) => {
            // The index the event carries identifies the occurrence; older events carry only
            // its time (to the millisecond), which maps back to an index when it can.
            let k = event
                .occurrence
                .or_else(|| recurrence.index_of(event.scheduled_at));
            match k.and_then(|k| recurrence.occurrence(k).map(|t| (k, t))) {
                Some((k, t)) => {
                    rearm(deps, &export, &recurrence, k).await?;
                    (RunEvent::occurrence(export.id, k, t), Some(k))
                }
                None => {
                    // No input ends a chain: recorded, and the next occurrence after now armed.
                    let reason = format!(
                        "not run: {} is not an occurrence of this export; the next occurrence after now is armed",
                        rfc3339(event.scheduled_at)
                    );
                    tracing::warn!(export_id = %export.id, reason, "a trigger that is no occurrence");
                    record_unrun(deps, &event, reason).await?;
                    let (next, _) = recurrence
                        .next_after(deps.clock.now() - deps.config.settle)
                        .ok_or_else(|| Failure::permanent("the export has no next occurrence"))?;
                    rearm(deps, &export, &recurrence, next - 1).await?;
                    return Ok(Outcome::Failed);
                }
            }
        }
    };
    let job_id = event.job_id();
    let now = deps.clock.now();
    let lease_until = now + deps.config.lease;
    if !deps.ledger.open_job(&event.job(), now, lease_until).await? {
        tracing::info!(export_id = %export.id, job_id, "job finished or held by another attempt; duplicate trigger ignored");
        after_duplicate(deps, &export, &event).await?;
        return Ok(Outcome::Duplicate);
    }
    let claimed = async {
        deps.ledger.start_job(&event.job(), deps.clock.now()).await?;
        tracing::info!(export_id = %export.id, job_id, "job started");
        run_claimed(deps, &export, &event, &job_id, Start::Fresh(occurrence)).await
    };
    match claimed.await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            // Give the job back, so that the runtime's retry of this trigger can take it at once.
            if let Err(release) = deps.ledger.release_job(&event.job(), deps.clock.now()).await {
                tracing::error!(export_id = %export.id, job_id, error = %release, "could not give the job back; a retry takes it once its lease passes");
            }
            Err(e)
        }
    }
}

/// A continuation of a job: claims the job at its leg, reads the leg's checkpoint and runs the
/// job on from there.
async fn continue_job(deps: Deps<'_>, event: RunEvent, leg: u32) -> Result<Outcome, Failure> {
    // A deleted export's job goes on to its end, as a run under way in one invocation does.
    let Some(export) = deps.exports.get(&event.export_id).await? else {
        tracing::info!(export_id = %event.export_id, "export missing; nothing to continue");
        return Ok(Outcome::Skipped);
    };
    let job_id = event.job_id();
    let now = deps.clock.now();
    if !deps
        .ledger
        .resume_job(&event.job(), leg, now, now + deps.config.lease)
        .await?
    {
        tracing::info!(export_id = %export.id, job_id, leg, "continuation held by another attempt, or stale; ignored");
        return Ok(Outcome::Duplicate);
    }
    let resumed = async {
        let key = pipeline::checkpoint_key(&files::job_prefix(&export.id, &job_id), leg);
        let bytes = deps
            .files
            .read(&key)
            .await
            .map_err(|e| Failure::Retryable(Box::new(e)))?;
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::permanent(format!("the checkpoint of leg {leg} is unreadable: {e}")))?;
        tracing::info!(export_id = %export.id, job_id, leg, "job continues");
        run_claimed(
            deps,
            &export,
            &event,
            &job_id,
            Start::Resume(Box::new(checkpoint), leg),
        )
        .await
    };
    match resumed.await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            if let Err(release) = deps.ledger.release_job(&event.job(), deps.clock.now()).await {
                tracing::error!(export_id = %export.id, job_id, error = %release, "could not give the job back; the reconciler continues it once its lease passes");
            }
            Err(e)
        }
    }
}

/// Where a claimed job starts.
enum Start {
    /// From the beginning, for this occurrence (recurring) or none (one-time).
    Fresh(Option<u64>),
    /// From a checkpoint, in this leg.
    Resume(Box<Checkpoint>, u32),
}

/// Runs a job this attempt has claimed, to its recorded end and the hand-off to notify, or to
/// a checkpoint and its continuation.
async fn run_claimed(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    job_id: &str,
    start: Start,
) -> Result<Outcome, Failure> {
    let (resume, leg) = match start {
        Start::Fresh(occurrence) => {
            let refused = match over_budget(deps, export, event).await? {
                Some(reason) => Some(reason),
                None => revoked(deps, export).await?,
            };
            if let Some(reason) = refused {
                tracing::warn!(export_id = %export.id, job_id, reason, "job refused");
                let detail = JobDetail {
                    error: Some(reason),
                    ..JobDetail::default()
                };
                return end_job(deps, export, event, job_id, JobStatus::Failed, detail).await;
            }
            let items = export.request.items.len();
            if items > 1 && deps.config.fan_out > 1 {
                return items::spread(deps, export, event, occurrence).await;
            }
            let checkpoint = Checkpoint {
                occurrence,
                ..Checkpoint::default()
            };
            (checkpoint, 0)
        }
        Start::Resume(checkpoint, leg) => (*checkpoint, leg),
    };
    let (status, detail) = match pipeline::run_job(deps, export, job_id, event.scheduled_at, resume, leg)
        .await
    {
        Ok(Progress::Done(detail)) => (JobStatus::Done, detail),
        Ok(Progress::Paused(checkpoint)) => return pause(deps, export, event, &checkpoint, leg + 1).await,
        Err((mut detail, error)) => {
            tracing::warn!(export_id = %export.id, job_id, error = %error, "job failed");
            detail.error = Some(error.to_string());
            (JobStatus::Failed, detail)
        }
    };
    end_job(deps, export, event, job_id, status, detail).await
}

/// Saves the checkpoint of leg `leg`, commits it on the job (which gives the job back), and
/// launches the continuation. A continuation that cannot be launched is the reconciler's: it
/// finds the job unheld past the grace and launches it.
async fn pause(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    checkpoint: &Checkpoint,
    leg: u32,
) -> Result<Outcome, Failure> {
    let job_id = event.job_id();
    let key = pipeline::checkpoint_key(&files::job_prefix(&export.id, &job_id), leg);
    let bytes = serde_json::to_vec(checkpoint).map_err(|e| Failure::permanent(e.to_string()))?;
    deps.files
        .put_bytes(&key, bytes)
        .await
        .map_err(|e| Failure::Retryable(Box::new(e)))?;
    if !deps.ledger.checkpoint_job(&event.job(), leg).await? {
        tracing::warn!(export_id = %export.id, job_id, leg, "another attempt moved the job on; this one stops");
        return Ok(Outcome::Duplicate);
    }
    let continuation = RunEvent {
        leg: Some(leg),
        ..event.clone()
    };
    match deps.launcher.launch(&continuation).await {
        Ok(()) => {
            tracing::info!(export_id = %export.id, job_id, leg, "job paused; it continues in a fresh invocation")
        }
        Err(e) => {
            tracing::error!(export_id = %export.id, job_id, leg, error = %e, "could not launch the continuation; the reconciler will")
        }
    }
    Ok(Outcome::Continued)
}

/// Records a job's end, settles a one-time export and hands the job to notify.
async fn end_job(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    job_id: &str,
    status: JobStatus,
    detail: JobDetail,
) -> Result<Outcome, Failure> {
    let finished_at = deps.clock.now();
    let end = JobEnd {
        status,
        detail,
        finished_at,
        // Failed jobs expire too, so an export's partition does not grow without bound.
        expires_at: Some(finished_at + deps.config.retention),
    };
    deps.ledger.finish_job(&event.job(), &end).await?;
    settle(deps, export, status, finished_at).await?;
    hand_off(deps, export, job_id).await?;
    tracing::info!(export_id = %export.id, job_id, status = status.as_str(), "job ended");
    Ok(if status == JobStatus::Done {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// Spends one run of the owner's daily budget (once per job, whatever the attempts); why not,
/// when it is spent.
async fn over_budget(deps: Deps<'_>, export: &Export, event: &RunEvent) -> Result<Option<String>, Failure> {
    let limit = deps.config.max_runs_per_day;
    let spent = deps
        .budgets
        .spend(&export.owner, &event.job(), Spend::Run, deps.clock.now(), limit)
        .await?;
    Ok((!spent).then(|| {
        format!(
            "not run: the owner's budget of {limit} runs a day (MAX_RUNS_PER_DAY) is spent for today (UTC); later occurrences still run"
        )
    }))
}

/// When access is re-checked before runs: why the owner may no longer read one of the items'
/// channels, if so. A checker that cannot answer fails the attempt (retryable), never the job.
async fn revoked(deps: Deps<'_>, export: &Export) -> Result<Option<String>, Failure> {
    let Some(access) = deps.access else {
        return Ok(None);
    };
    let owner = Caller {
        subject: &export.owner,
        credential: None,
    };
    for (index, item) in export.request.items.iter().enumerate() {
        for read in ChannelRead::of_item(item) {
            if !access.may_read(&owner, &read).await? {
                return Ok(Some(format!(
                    "item {index}: the owner may no longer read channel {} (subtopic `{}`, name `{}`); access was revoked after the export was created",
                    read.channel, read.subtopic, read.name
                )));
            }
        }
    }
    Ok(None)
}

/// Gives a one-time export the final status of its job (once; again is a no-op).
async fn settle(
    deps: Deps<'_>,
    export: &Export,
    status: JobStatus,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    if export.request.schedule != Schedule::OneTime {
        return Ok(());
    }
    match status.settles_as() {
        Some(final_status) => Ok(deps.runs.settle_one_time(export, final_status, at).await?),
        None => Ok(()),
    }
}

/// On a duplicate trigger of a job that finished: an earlier attempt may have stopped between
/// recording the job and settling the export or handing off to notify (a crash, a timeout, a
/// hand-off that failed), so both happen again. Settling is once only; notify's per-message
/// claims make a second hand-off send nothing twice.
async fn after_duplicate(deps: Deps<'_>, export: &Export, event: &RunEvent) -> Result<(), Failure> {
    let Some(job) = deps.history.job(&event.job()).await? else {
        return Ok(());
    };
    if !matches!(
        job.status,
        JobStatus::Done | JobStatus::Failed | JobStatus::Expired
    ) {
        return Ok(());
    }
    if export.request.schedule == Schedule::OneTime
        && !matches!(export.status, ExportStatus::Done | ExportStatus::Failed)
    {
        let at = job.finished_at.unwrap_or_else(|| deps.clock.now());
        settle(deps, export, job.status, at).await?;
    }
    hand_off(deps, export, &job.job_id).await
}

/// Hands a finished job to notify; a failure is retryable, so the runtime's retry (a duplicate
/// of a finished job) hands it off again rather than losing its messages.
async fn hand_off(deps: Deps<'_>, export: &Export, job_id: &str) -> Result<(), Failure> {
    let event = NotifyEvent {
        export_id: export.id,
        job_id: job_id.to_owned(),
    };
    deps.notifier.job_ended(&event).await.map_err(|e| {
        tracing::error!(export_id = %export.id, job_id, error = %e, "could not hand off to notify; the retry (or the reconciler) will");
        Failure::Retryable(Box::new(e))
    })?;
    if let Some(key) = JobKey::of_job_id(export.id, job_id) {
        deps.ledger.handed_off(&key).await?;
    }
    Ok(())
}

/// After occurrence `k`: moves the export's next run forward to the first occurrence after now
/// and arms it, never back (a late or replayed trigger of `k` finds a later one armed and does
/// nothing). When occurrences between `k` and now were never triggered (the chain fell behind),
/// the run that moved the chain forward launches those within `lateness` and records the older
/// ones as missed.
async fn rearm(deps: Deps<'_>, export: &Export, recurrence: &Recurrence, k: u64) -> Result<(), Failure> {
    let now = deps.clock.now();
    // An occurrence can be armed while its schedule (which fires `settle` after it) is ahead.
    let armable_after = now - deps.config.settle;
    let out_of_range = || Failure::permanent("the next occurrence is out of range");
    let mut next = k + 1;
    let mut at = recurrence.occurrence(next).ok_or_else(out_of_range)?;
    if at <= armable_after {
        (next, at) = recurrence.next_after(armable_after).ok_or_else(out_of_range)?;
    }
    let advance = deps.runs.advance_next_run(&export.id, at, now).await?;
    if advance == Advance::Behind {
        tracing::info!(export_id = %export.id, k, "a later occurrence is armed already; the chain stays");
        return Ok(());
    }
    if advance == Advance::Advanced {
        // Occurrences before the export existed were never due: no trigger is missing for them.
        let first_due = recurrence
            .next_after(export.created_at)
            .map_or(next, |(first, _)| first);
        catch_up(deps, export, recurrence, (k + 1).max(first_due)..next).await?;
    }
    deps.schedules
        .arm(&RunEvent::occurrence(export.id, next, at))
        .await?;
    Ok(())
}

/// The most past occurrences one run launches or records; a longer gap is logged and skipped.
const MAX_CATCH_UP: u64 = 1000;

/// Occurrences `range` passed without a trigger: those within `lateness` run now, older ones
/// are recorded as missed.
async fn catch_up(
    deps: Deps<'_>,
    export: &Export,
    recurrence: &Recurrence,
    range: std::ops::Range<u64>,
) -> Result<(), Failure> {
    if range.is_empty() {
        return Ok(());
    }
    let now = deps.clock.now();
    let skipped = (range.end - range.start).saturating_sub(MAX_CATCH_UP);
    if skipped > 0 {
        tracing::error!(export_id = %export.id, skipped, "too many missed occurrences to record; the oldest are skipped");
    }
    for j in range.start + skipped..range.end {
        let Some(at) = recurrence.occurrence(j) else {
            continue;
        };
        let event = RunEvent::occurrence(export.id, j, at);
        if now - at <= deps.config.lateness {
            tracing::warn!(export_id = %export.id, occurrence = j, "an occurrence without its trigger: running it now");
            if let Err(e) = deps.launcher.launch(&event).await {
                tracing::error!(export_id = %export.id, occurrence = j, error = %e, "could not launch a missed occurrence");
                record_unrun(
                    deps,
                    &event,
                    format!("missed: its trigger never came and it could not be launched ({e})"),
                )
                .await?;
            }
        } else {
            let reason = format!(
                "missed: its trigger never came, and it is more than {} s late (CATCH_UP_LATENESS_SECONDS)",
                deps.config.lateness.num_seconds()
            );
            record_unrun(deps, &event, reason).await?;
        }
    }
    Ok(())
}

/// Records the job of `event` as failed without running it.
async fn record_unrun(deps: Deps<'_>, event: &RunEvent, reason: String) -> Result<(), Failure> {
    Ok(deps
        .ledger
        .record_unrun(&event.job(), &failed_end(deps, reason))
        .await?)
}

/// The end of a job that failed for `reason`, now; it expires like any job.
fn failed_end(deps: Deps<'_>, reason: String) -> JobEnd {
    JobEnd::failed(
        reason,
        JobDetail::default(),
        deps.clock.now(),
        deps.config.retention,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_a_margin_before_its_deadline_or_half_way_when_time_is_short() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("in range");
        let minute = TimeDelta::seconds(60);
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(900)), now, minute),
            Some(now + TimeDelta::seconds(840))
        );
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(30)), now, minute),
            Some(now + TimeDelta::seconds(15))
        );
        assert_eq!(stop_at(Some(now - TimeDelta::seconds(1)), now, minute), None);
        assert_eq!(stop_at(None, now, minute), None);
    }
}
