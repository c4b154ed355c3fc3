//! Jobs that ended but were never handed to notify (or whose messages notify never finished):
//! handed now, a one-time export settled first when its attempt died before settling it.

use chrono::{DateTime, TimeDelta, Utc};
use exporter_core::domain::chain::{self, HandOffError};
use exporter_core::domain::files;
use exporter_core::domain::job::{JobKey, JobStatus};

use exporter_core::domain::Schedule;

use crate::pass::{Deps, Pass, Repairs};
use exporter_adapters::failure::Failure;

/// How long after a job ended the reconciler keeps handing it to notify.
const HAND_OFF_FOR: TimeDelta = TimeDelta::days(1);

/// The jobs notify has not finished, handed (again), for a day after they ended.
pub(crate) async fn unhanded(pass: &Pass<'_>, repairs: &mut Repairs) -> Result<(), Failure> {
    // Finished jobs never handed to notify (every attempt's hand-off failed, or a crash came
    // between), handed now once the grace has passed; after a day of trying, given up.
    for (id, job) in pass.deps.sweep.unhanded_jobs(pass.overdue).await? {
        let unsettled = pass.exports.iter().find(|e| {
            e.id == id
                && e.deleted_at.is_none()
                && e.request.schedule == Schedule::OneTime
                && e.status.counts_against_quota()
        });
        // A job left unhanded has ended; one that somehow has not settles nothing.
        if let (Some(export), Some(status)) = (unsettled, job.status.settles_as()) {
            // Settled now: the counter is stamped with the sweep's time, not the job's end.
            pass.deps.runs.settle_one_time(export, status, pass.now).await?;
            tracing::warn!(export_id = %id, job_id = %job.job_id, status = status.as_str(), "settled a one-time export whose job had ended");
            repairs.exports_settled += 1;
        }
        if job.status == JobStatus::Failed {
            // Its attempt may have died between recording the failure and removing the job's
            // files (a failed job has none to serve), before handing it off.
            let prefix = files::job_prefix(&id, &job.job_id);
            match pass.deps.files.remove_all(&format!("{prefix}/")).await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::warn!(export_id = %id, job_id = %job.job_id, removed, "removed the files a failed job left");
                    repairs.failed_files_removed += usize::try_from(removed).unwrap_or(usize::MAX);
                }
                Err(e) => {
                    tracing::error!(export_id = %id, job_id = %job.job_id, error = %e, "could not remove a failed job's files; the next sweep tries again while the job is unhanded, and the bucket's lifecycle rule removes them in the end");
                }
            }
        }
        if job.status == JobStatus::Done {
            // Its attempt may have died between recording it and clearing up what a retry
            // would have needed (checkpoints, tails, stages under `.resume/`) or what attempts
            // that died had begun.
            let prefix = files::job_prefix(&id, &job.job_id);
            let cleared = match pass.deps.files.remove_all(&format!("{prefix}/.resume/")).await {
                Ok(_) => pass.deps.uploads.abandon_unfinished(&format!("{prefix}/")).await,
                Err(e) => Err(e),
            };
            if let Err(e) = cleared {
                tracing::error!(export_id = %id, job_id = %job.job_id, error = %e, "could not clear up a done job's resume files; they expire with the bucket's lifecycle rules");
            }
        }
        // Given up only once notify has run for it (it left a message unfinished): a job never
        // handed (a sweep that could not run for a day) is handed, however late.
        let notified_once = !job.deliveries.is_empty();
        if notified_once && job.finished_at.is_some_and(|t| t < pass.now - HAND_OFF_FOR) {
            let key = JobKey {
                export_id: id,
                scheduled_at: job.scheduled_at,
            };
            pass.deps.ends.stop_handing_off(&key).await?;
            tracing::error!(export_id = %id, job_id = %job.job_id, finished_at = ?job.finished_at, "gave up handing a job to notify after a day; its unsent messages are not sent");
            repairs.hand_offs_dropped += 1;
            continue;
        }
        hand_off(pass.deps, id, &job.job_id, job.scheduled_at, repairs).await?;
    }
    Ok(())
}

/// Hands a finished job to notify and marks it handed; a failure is logged and counted, and the
/// next sweep tries again (the job stays unmarked).
pub(crate) async fn hand_off(
    deps: Deps<'_>,
    id: exporter_core::domain::ExportId,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    repairs: &mut Repairs,
) -> Result<(), Failure> {
    match chain::hand_off(deps.notifier, deps.ends, id, job_id, scheduled_at).await {
        Ok(()) => {
            tracing::warn!(export_id = %id, job_id, "handed a finished job to notify");
            repairs.jobs_handed_off += 1;
        }
        Err(HandOffError::Notify(e)) => {
            tracing::error!(export_id = %id, job_id, error = %e, "could not hand a finished job to notify");
            repairs.hand_offs_failed += 1;
        }
        Err(HandOffError::Mark(e)) => return Err(e.into()),
    }
    Ok(())
}
