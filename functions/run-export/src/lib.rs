//! run-export: one run of one export, triggered by `{"exportId", "scheduledAt"}` from the
//! create request (one-time) or from its schedule (recurring).
//!
//! A run: skip a missing or deleted export; for a recurring export, re-arm the next occurrence
//! *before* exporting, so a failed export never breaks the chain; record the job once per
//! `(exportId, scheduledAt)` (a duplicate trigger stops there); read each item's window from
//! the reader oldest first, decimate when asked, write the file to a local temporary file and
//! store it whole (a failure removes the job's earlier files, so no half result is ever visible);
//! zip several files; record the job's end; hand off to notify.
//!
//! This file holds the flows (a trigger, a continuation, a claimed job, a pause). The rooms:
//! `deps` (configuration and dependencies), `steps` (budget, access, end, settle, hand-off),
//! `chain` (re-arm and catch-up), `items` (a job's items in parallel), `pipeline` (a job's and
//! an item's work), `deadline` (the sink that stops in time), `checkpoint` (where a job stands
//! between legs), `upload` (a file in parts while it is written), `look` (a workbook's sheet and
//! chart), `archive` (the zip), `merge` (a wide item's targets read at once), `error`.

mod archive;
mod chain;
mod checkpoint;
pub mod config;
mod deadline;
mod deps;
mod error;
mod items;
mod job_report;
mod look;
mod merge;
mod pipeline;
mod steps;
mod upload;

pub use checkpoint::Checkpoint;
pub use config::RunConfig;
pub use deps::{stop_at, Deps};
pub use error::JobError;
pub use steps::Outcome;

use chain::rearm;
use checkpoint::{checkpoint_key, Progress};
use steps::{after_duplicate, end_job, over_budget, record_unrun, revoked};

use exporter_core::domain::job::{JobDetail, JobEnd, JobStatus};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{files, record};
use exporter_core::domain::{Export, ExportStatus, RunEvent, Schedule};

pub use exporter_adapters::failure::Failure;
use exporter_adapters::telemetry::names;

/// Handles one trigger, or one continuation of a job: every log line it writes carries the
/// export, the job, the occurrence, the leg and the item (the runtime adds the request id), and
/// its outcome, time and the time it left before its deadline are metrics.
pub async fn handle(deps: Deps<'_>, event: RunEvent) -> Result<Outcome, Failure> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "run",
        export_id = %event.export_id,
        job_id = %event.job_id(),
        occurrence = event.occurrence,
        leg = event.leg,
        item = event.item
    );
    let started = std::time::Instant::now();
    let outcome = run(deps, event).instrument(span).await;
    let name = match &outcome {
        Ok(outcome) => outcome.as_str(),
        Err(Failure::Retryable(_)) => "retryable",
        Err(Failure::Permanent(_)) => "permanent",
    };
    metrics::counter!(names::RUNS, "outcome" => name).increment(1);
    metrics::histogram!(names::RUN_DURATION).record(started.elapsed().as_secs_f64() * 1000.0);
    if let Some(deadline) = deps.stop_at {
        let left = (deadline + deps.config.deadline_margin - deps.clock.now()).num_milliseconds();
        metrics::histogram!(names::TIME_LEFT).record(left as f64 / 1000.0);
    }
    outcome
}

async fn run(deps: Deps<'_>, event: RunEvent) -> Result<Outcome, Failure> {
    // The invocation works until its budget or its deadline's margin, whichever comes first.
    let budget_end = deps.config.budget.map(|b| deps.clock.now() + b);
    let stop_at = match (deps.stop_at, budget_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let deps = Deps {
        stop_at,
        deadline: deps.stop_at,
        ..deps
    };
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
    if export.status == ExportStatus::Paused && event.extra.is_none() {
        // Its schedule is removed when it pauses; a trigger still on its way (late, retried,
        // launched by a sweep) runs nothing, and its occurrence is recorded skipped, so that
        // every due occurrence has its job.
        if let Schedule::Recurring(recurrence) = export.request.schedule {
            let k = event
                .occurrence
                .or_else(|| recurrence.index_of(event.scheduled_at));
            let millis = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
            let ours = k
                .and_then(|k| recurrence.occurrence(k))
                .is_some_and(|t| millis(t) == millis(event.scheduled_at));
            if ours {
                let end = JobEnd::skipped(deps.clock.now(), deps.config.retention);
                deps.ends.record_unrun(&event.job(), &end).await?;
            }
        }
        tracing::info!(export_id = %export.id, "export paused; nothing to run");
        return Ok(Outcome::Skipped);
    }
    let (event, occurrence) = match export.request.schedule {
        // An extra job (run now) is outside the chain: it never moves it.
        _ if event.extra.is_some() => {
            let occurrence = event.occurrence;
            (event, occurrence)
        }
        Schedule::OneTime => (event, None),
        Schedule::Recurring(recurrence) => {
            // A trigger armed before an edit changed the schedule names an occurrence of the
            // old one: it runs nothing, and the chain of the definition as it is now is armed.
            if let Some(k) = event.occurrence {
                let millis = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
                if recurrence.occurrence(k).map(millis) != Some(millis(event.scheduled_at)) {
                    tracing::warn!(export_id = %export.id, k, "a trigger of the schedule before an edit; the edited chain is armed");
                    // On record as not run (it sends nothing): a job the chain expected at that
                    // time ends, and is not launched again by every sweep.
                    record_unrun(
                        deps,
                        &event,
                        "not run: its export's schedule was edited before it ran".into(),
                    )
                    .await?;
                    let (next, _) = recurrence
                        .next_after(deps.clock.now() - deps.config.settle)
                        .ok_or_else(|| Failure::permanent("the export has no next occurrence"))?;
                    rearm(deps, &export, &recurrence, next - 1).await?;
                    return Ok(Outcome::Skipped);
                }
            }
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
        let key = checkpoint_key(&files::job_prefix(&export.id, &job_id), leg);
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
                let ended = end_job(deps, export, event, job_id, JobStatus::Failed, detail).await;
                return count_failure(ended, "refused");
            }
            let items = export.request.items.len();
            // An extra job runs its items one after another: a spread job's item runs are
            // relaunched from the job's record, which knows no extra window.
            if items > 1 && deps.config.fan_out > 1 && event.extra.is_none() {
                return items::spread(deps, export, event, occurrence).await;
            }
            let checkpoint = Checkpoint {
                occurrence,
                detail: JobDetail {
                    version: Some(export.version),
                    ..JobDetail::default()
                },
                definition: Some(record::definition_digest(&export.request)),
                window: event.extra.and_then(|e| e.window),
                ..Checkpoint::default()
            };
            (checkpoint, 0)
        }
        Start::Resume(checkpoint, leg) => {
            if let Some(reason) = edited_since(export, &checkpoint) {
                tracing::warn!(export_id = %export.id, job_id, leg, "the export was edited while its job ran; the job fails");
                // Nothing half-done stays: its files (open uploads too) go.
                steps::remove(deps, &format!("{}/", files::job_prefix(&export.id, job_id))).await;
                let detail = JobDetail {
                    error: Some(reason),
                    version: checkpoint.detail.version,
                    windows: checkpoint.detail.windows,
                    warnings: checkpoint.detail.warnings,
                    ..JobDetail::default()
                };
                let ended = end_job(deps, export, event, job_id, JobStatus::Failed, detail).await;
                return count_failure(ended, "edited");
            }
            (*checkpoint, leg)
        }
    };
    let (status, detail, class) =
        match pipeline::run_job(deps, export, job_id, event.scheduled_at, resume, leg).await {
            Ok(Progress::Done(detail)) => (JobStatus::Done, detail, None),
            Ok(Progress::Paused(checkpoint)) => {
                return pause(deps, export, event, &checkpoint, leg + 1).await
            }
            Err((mut detail, error)) => {
                tracing::warn!(export_id = %export.id, job_id, error = %error, "job failed");
                detail.error = Some(error.to_string());
                (JobStatus::Failed, detail, Some(error.class()))
            }
        };
    let ended = end_job(deps, export, event, job_id, status, detail).await;
    match class {
        Some(class) => count_failure(ended, class),
        None => ended,
    }
}

/// Why a job cannot go on from `checkpoint`: its export's definition was edited since the job
/// began (one file must not mix two definitions); `None` when it was not (or the checkpoint
/// predates the check).
pub(crate) fn edited_since(export: &Export, checkpoint: &Checkpoint) -> Option<String> {
    let began = checkpoint.definition.as_deref()?;
    (began != record::definition_digest(&export.request)).then(|| {
        format!(
            "the export was edited while this job ran (now version {}); run it again with POST /exports/{}/runs",
            export.version, export.id
        )
    })
}

/// Counts a job's failure by its reason's class, once: only when this attempt recorded it.
fn count_failure(ended: Result<Outcome, Failure>, class: &'static str) -> Result<Outcome, Failure> {
    if matches!(ended, Ok(Outcome::Failed)) {
        metrics::counter!(names::JOBS_FAILED, "reason" => class).increment(1);
    }
    ended
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
    let key = checkpoint_key(&files::job_prefix(&export.id, &job_id), leg);
    let bytes = serde_json::to_vec(checkpoint).map_err(|e| Failure::permanent(e.to_string()))?;
    deps.files
        .put_bytes(&key, bytes)
        .await
        .map_err(|e| Failure::Retryable(Box::new(e)))?;
    if !deps
        .ledger
        .checkpoint_job(&event.job(), leg, deps.clock.now())
        .await?
    {
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
