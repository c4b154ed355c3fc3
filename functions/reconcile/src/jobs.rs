//! Jobs left unfinished past their lease and the grace: occurrences never attempted launched
//! (or recorded missed), jobs that continued launched again from their checkpoint, spread jobs'
//! items relaunched, the rest recorded failed, their files removed and handed to notify.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use exporter_core::domain::chain::{self, CatchUp};
use exporter_core::domain::files;
use exporter_core::domain::job::{ItemRun, JobEnd, JobKey};
use exporter_core::domain::{ExportId, ExportStatus, RunEvent, Schedule};

use crate::handoffs::hand_off;
use crate::pass::{Deps, Pass, Repairs, MAX_ATTEMPTS_PER_LEG, MAX_LAUNCHES};
use exporter_adapters::failure::Failure;

/// Every stalled job, repaired or ended.
pub(crate) async fn stalled(pass: &Pass<'_>, repairs: &mut Repairs) -> Result<(), Failure> {
    let mut launched_of: BTreeMap<ExportId, usize> = BTreeMap::new();
    for (id, job) in pass.deps.sweep.stalled_jobs(pass.overdue).await? {
        let key = JobKey {
            export_id: id,
            scheduled_at: job.scheduled_at,
        };
        let export = match pass.exports.iter().find(|e| e.id == id) {
            Some(export) => Some(export.clone()),
            None => pass.deps.exports.get(&id).await?,
        };
        // An occurrence the chain moved past whose job no attempt ever opened: launched as its
        // trigger would have been, within the lateness (a hundred per chain and sweep at most);
        // later, or for an export gone, recorded missed as run-export's catch-up records it.
        if job.attempts == 0 && job.spread.is_none() {
            let occurrence = export.as_ref().and_then(|e| match e.request.schedule {
                Schedule::Recurring(recurrence) if e.deleted_at.is_none() => {
                    chain::occurrence_at(&recurrence, job.scheduled_at).map(|(k, _)| k)
                }
                _ => None,
            });
            let due = chain::catch_up(
                job.scheduled_at,
                pass.now,
                pass.deps.config.lateness,
                "its trigger's every attempt failed",
            );
            match (occurrence, due) {
                (Some(k), CatchUp::Run) => {
                    let launched = launched_of.entry(id).or_default();
                    if *launched < MAX_LAUNCHES {
                        pass.deps
                            .launcher
                            .launch(&RunEvent::occurrence(id, k, job.scheduled_at))
                            .await
                            .map_err(|e| Failure::Retryable(Box::new(e)))?;
                        tracing::warn!(export_id = %id, occurrence = k, "launched an occurrence whose job was never attempted");
                        *launched += 1;
                        repairs.occurrences_launched += 1;
                    }
                }
                (occurrence, due) => {
                    let reason = match (occurrence, due) {
                        (_, CatchUp::Missed(reason)) => reason,
                        // Within the lateness, of an export deleted or gone meanwhile: recorded
                        // as a late one is.
                        _ => format!(
                            "missed: its trigger's every attempt failed, and it is more than {} s late (CATCH_UP_LATENESS_SECONDS)",
                            pass.deps.config.lateness.num_seconds()
                        ),
                    };
                    let end =
                        JobEnd::failed(reason, job.detail.clone(), pass.now, pass.deps.config.retention);
                    pass.deps.ends.record_unrun(&key, &end).await?;
                    tracing::warn!(export_id = %id, job_id = %job.job_id, "recorded missed an occurrence whose job was never attempted");
                    repairs.occurrences_missed += 1;
                }
            }
            continue;
        }
        // A job whose export record is gone still ends (there is nothing to settle).
        let Some(export) = export else {
            let end = JobEnd::failed(
                "the run stopped without recording its end, and its export is gone; recorded by the reconciler".into(),
                job.detail.clone(),
                pass.now,
                pass.deps.config.retention,
            );
            if pass.deps.sweep.abandon_job(&key, &end, pass.overdue).await? {
                let _ = pass
                    .deps
                    .files
                    .remove_all(&format!("{}/", files::job_prefix(&id, &job.job_id)))
                    .await;
                tracing::warn!(export_id = %id, job_id = %job.job_id, "recorded failed a stalled job whose export is gone");
                repairs.jobs_abandoned += 1;
                hand_off(pass.deps, id, &job.job_id, job.scheduled_at, repairs).await?;
            }
            continue;
        };
        let export = &export;
        // A spread job's items that stopped go on (their runs relaunched), unless one keeps
        // dying; then the job is abandoned as below.
        if let Some(spread) = &job.spread {
            if relaunch_items(pass.deps, &key, &job, spread, pass.overdue, repairs).await? {
                continue;
            }
        }
        // A job that continued goes on from its last checkpoint (its continuation was lost, or
        // the attempt running it died), unless its attempts keep dying there.
        if job.spread.is_none() && job.leg > 0 && job.leg_attempts() <= MAX_ATTEMPTS_PER_LEG {
            let continuation = RunEvent {
                export_id: id,
                scheduled_at: job.scheduled_at,
                occurrence: None,
                leg: Some(job.leg),
                item: None,
                extra: None,
            };
            pass.deps
                .launcher
                .launch(&continuation)
                .await
                .map_err(|e| Failure::Retryable(Box::new(e)))?;
            tracing::warn!(export_id = %id, job_id = %job.job_id, leg = job.leg, "launched a stalled job's continuation from its last checkpoint");
            repairs.jobs_continued += 1;
            continue;
        }
        let end = JobEnd::failed(
            "the run stopped without recording its end (it crashed or timed out, and no retry took it over); recorded by the reconciler"
                .into(),
            job.detail.clone(),
            pass.now,
            pass.deps.config.retention,
        );
        if !pass.deps.sweep.abandon_job(&key, &end, pass.overdue).await? {
            continue;
        }
        // The job is ended: a store that fails here leaves its files to the bucket's lifecycle
        // rule, and the sweep goes on.
        match pass
            .deps
            .files
            .remove_all(&format!("{}/", files::job_prefix(&id, &job.job_id)))
            .await
        {
            Ok(left) => {
                tracing::warn!(export_id = %id, job_id = %job.job_id, files_removed = left, "recorded a stalled job failed")
            }
            Err(e) => {
                tracing::error!(export_id = %id, job_id = %job.job_id, error = %e, "recorded a stalled job failed; its files could not be removed (they expire with the bucket's lifecycle rule)")
            }
        }
        repairs.jobs_abandoned += 1;
        // A one-time export settles from its own job, not from an extra one (run now).
        if export.request.schedule == Schedule::OneTime && job.scheduled_at == export.created_at {
            pass.deps
                .runs
                .settle_one_time(export, ExportStatus::Failed, pass.now)
                .await?;
        }
        hand_off(pass.deps, id, &job.job_id, job.scheduled_at, repairs).await?;
    }
    Ok(())
}

/// Relaunches what a spread job needs to go on: the runs of launched items that never started
/// or stopped past their lease and the grace (from their last checkpoint), or, when every item
/// is done and the job never ended (the last item's run died), a run of the last item, which
/// ends it. `false` when an item's attempts keep dying: the job is to be abandoned.
async fn relaunch_items(
    deps: Deps<'_>,
    key: &JobKey,
    job: &exporter_core::domain::job::Job,
    spread: &exporter_core::domain::job::Spread,
    overdue: DateTime<Utc>,
    repairs: &mut Repairs,
) -> Result<bool, Failure> {
    let event = |item: u32, leg: u32| RunEvent {
        export_id: key.export_id,
        scheduled_at: key.scheduled_at,
        occurrence: None,
        leg: (leg > 0).then_some(leg),
        item: Some(item),
        extra: None,
    };
    let mut launches = Vec::new();
    let runs = deps.spread.item_runs(key).await?;
    if spread.left == 0 {
        // Every item is done and the job never ended. Its finisher is relaunched (as the last
        // item's event, which ends a job whose items are done) only once none can be alive: no
        // finisher claimed the job for a grace after the last item was done (the last item's
        // run died before claiming it), or the claim's lease passed a grace ago. One that keeps
        // dying gives the job up to the sweep below.
        let finisher = ItemRun::finisher(spread.items);
        let last_done = runs.iter().filter_map(|r| r.done_at).max();
        let due = match runs.iter().find(|r| r.item == finisher) {
            None => last_done.or(job.started_at).is_some_and(|t| t < overdue),
            Some(run) if run.lease_until < overdue && run.launched_at < overdue => {
                if run.leg_attempts() > MAX_ATTEMPTS_PER_LEG {
                    return Ok(false);
                }
                true
            }
            Some(_) => false,
        };
        if due {
            launches.push(event(spread.items.saturating_sub(1), 0));
        }
    } else {
        for item in 0..spread.launched {
            if spread.done.contains(&item) {
                continue;
            }
            match runs.iter().find(|r| r.item == item) {
                // Launched, never recorded: the launch died with its launcher.
                None if job.started_at.is_some_and(|t| t < overdue) => launches.push(event(item, 0)),
                Some(run) if !run.done && run.lease_until < overdue && run.launched_at < overdue => {
                    if run.leg_attempts() > MAX_ATTEMPTS_PER_LEG {
                        return Ok(false);
                    }
                    launches.push(event(item, run.leg));
                }
                _ => {}
            }
        }
        // Every launched item is done and items are left unlaunched: the run that finished last
        // died before launching the next (or could not). A grace after it, the next is taken
        // and launched; it launches the rest as it finishes.
        let all_done = (0..spread.launched).all(|item| spread.done.contains(&item));
        let last_done = runs.iter().filter_map(|r| r.done_at).max().or(job.started_at);
        if all_done && spread.launched < spread.items && last_done.is_some_and(|t| t < overdue) {
            if let Some(next) = deps.spread.next_item(key, spread.items).await? {
                launches.push(event(next, 0));
            }
        }
    }
    for launch in launches {
        deps.launcher
            .launch(&launch)
            .await
            .map_err(|e| Failure::Retryable(Box::new(e)))?;
        tracing::warn!(export_id = %key.export_id, job_id = %job.job_id, item = launch.item, leg = launch.leg, "relaunched a spread job's item run");
        repairs.items_relaunched += 1;
    }
    Ok(true)
}
