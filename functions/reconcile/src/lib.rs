//! reconcile: the sweep that keeps every chain alive and every record true, run on a rate
//! schedule (and safe to run at any time, twice, or concurrently: each repair is a conditional
//! write or an idempotent call).
//!
//! - A live recurring export whose `nextRunAt` passed more than `grace` ago (its trigger never
//!   came: re-arming failed past its retries, a schedule was lost) gets that occurrence launched:
//!   run-export runs it and re-arms the chain forward, recording or running what it missed.
//!   One whose next run is ahead but whose schedule is gone is armed again.
//! - A job that continued across invocations and was left unfinished past its lease and `grace`
//!   (its continuation was lost, or the attempt running it died) is launched again from its
//!   last checkpoint, a few times at most.
//! - A job spread over parallel item runs gets its stopped or lost item runs relaunched (from
//!   their last checkpoint), or, when every item is done and it never ended, a run that ends it.
//! - A job left unfinished whose lease ended more than `grace` ago (its attempt crashed or timed
//!   out, and no retry came) is recorded `failed` with the reason, the files it left removed, its
//!   one-time export settled, and handed to notify for its `onFailure` messages.
//! - A schedule whose export is missing, deleted, or not a live recurring export is removed; an
//!   export left `creating` for longer than `grace` (a create that crashed) is discarded.
//! - Each owner's counter of queued exports is recomputed from the records and corrected when it
//!   still reads what was read before the records were (so a concurrent create is never undone).
//!
//! - An occurrence the chain moved past whose job was never attempted (its trigger's every
//!   attempt died after the chain had moved on) is launched, within a day; later it is recorded
//!   failed like any stalled job.
//!
//! What it reads follows the work, not the history: the live exports, the jobs not yet ended
//! and handed to notify, the owners' counters (the store's sweep index), and the schedules.
//! - A one-time export queued past the grace with no job (its launch was lost) is launched.
//! - A finished job never handed to notify (every attempt's hand-off failed), or left by notify
//!   with a message another run was sending (which may have died mid-send), is handed now, its
//!   one-time export settled first when the attempt died before settling it.
//!
//! Every repair is logged and counted in the answer.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use exporter_core::domain::files;
use exporter_core::domain::job::{ItemRun, JobEnd, JobKey};
use exporter_core::domain::{Export, ExportId, ExportStatus, NotifyEvent, RunEvent, Schedule};
use exporter_core::ports::{
    Clock, ExportLifecycle, ExportRuns, Exports, FileStore, ItemLedger, JobHistory, JobLedger, JobNotifier,
    RunLauncher, RunSchedules, Sweep,
};

pub mod config;
pub use config::ReconcileConfig;
pub use exporter_adapters::failure::Failure;

/// What the sweep needs.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub sweep: &'a dyn Sweep,
    /// An export that is not live (deleted, settled) whose job or schedule the sweep found.
    pub exports: &'a dyn Exports,
    /// Whether a one-time export's job was opened.
    pub history: &'a dyn JobHistory,
    /// To mark the jobs it hands to notify.
    pub ledger: &'a dyn JobLedger,
    /// The item runs of spread jobs.
    pub items: &'a dyn ItemLedger,
    pub lifecycle: &'a dyn ExportLifecycle,
    pub runs: &'a dyn ExportRuns,
    pub schedules: &'a dyn RunSchedules,
    /// run-export, for chains whose trigger never came.
    pub launcher: &'a dyn RunLauncher,
    pub notifier: &'a dyn JobNotifier,
    /// The files an attempt that died left behind.
    pub files: &'a dyn FileStore,
    pub clock: &'a dyn Clock,
    pub config: &'a ReconcileConfig,
}

/// The repairs one sweep made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repairs {
    /// Chains whose trigger never came, whose occurrence was launched.
    pub chains_restarted: usize,
    /// Live recurring exports whose schedule was gone, armed again.
    pub schedules_rearmed: usize,
    /// Unfinished jobs past their lease, recorded failed.
    pub jobs_abandoned: usize,
    /// Unfinished jobs that had continued, launched again from their last checkpoint.
    pub jobs_continued: usize,
    /// Item runs of spread jobs relaunched (lost, or stopped past their lease).
    pub items_relaunched: usize,
    /// Schedules of exports that are gone, deleted or not recurring, removed.
    pub schedules_removed: usize,
    /// Exports left `creating`, discarded.
    pub creating_discarded: usize,
    /// Owners whose counter of queued exports was corrected.
    pub quotas_corrected: usize,
    /// Occurrences the chain moved past whose job was never attempted (every attempt of their
    /// trigger died after the chain moved on), launched.
    pub occurrences_launched: usize,
    /// Such occurrences too late to run (or of an export deleted meanwhile), recorded missed.
    pub occurrences_missed: usize,
    /// One-time exports queued past the grace with no job (their launch was lost), launched.
    pub one_time_launched: usize,
    /// Finished jobs never handed to notify, handed now.
    pub jobs_handed_off: usize,
    /// One-time exports whose job finished but that were never given its end (the attempt died
    /// between recording the job and settling the export), settled now.
    pub exports_settled: usize,
    /// Hand-offs that failed (logged; the next sweep tries again).
    pub hand_offs_failed: usize,
}

/// One sweep.
pub async fn handle(deps: Deps<'_>) -> Result<Repairs, Failure> {
    let now = deps.clock.now();
    let overdue = now - deps.config.grace;
    let mut repairs = Repairs::default();
    // Counters first, records second: a write in between changes the counter, and the
    // correction below, conditional on the counter read here, then leaves it alone.
    // Counters changed in the last minute are left alone: the index the exports are read from
    // may not show the change yet.
    let counters = deps.sweep.quotas(now - TimeDelta::minutes(1)).await?;
    let exports = deps.sweep.live_exports().await?;
    let armed: HashSet<_> = deps.schedules.armed().await?.into_iter().collect();

    // A schedule of an export that is not live (deleted, settled, gone): read again, since the
    // index may lag a create by a moment.
    let live: HashSet<_> = exports.iter().map(|e| e.id).collect();
    for id in armed.iter().filter(|id| !live.contains(id)) {
        let export = deps.exports.get(id).await?;
        let keep = export.as_ref().is_some_and(|e| {
            e.deleted_at.is_none()
                && (e.status == ExportStatus::Creating
                    || (e.status == ExportStatus::Scheduled
                        && matches!(e.request.schedule, Schedule::Recurring(_))))
        });
        if !keep {
            deps.schedules.disarm(id).await?;
            tracing::warn!(export_id = %id, "removed the schedule of an export that is not a live recurring one");
            repairs.schedules_removed += 1;
        }
    }

    for export in &exports {
        let live_recurring = export.deleted_at.is_none()
            && export.status == ExportStatus::Scheduled
            && matches!(export.request.schedule, Schedule::Recurring(_));
        if !live_recurring && armed.contains(&export.id) && export.status != ExportStatus::Creating {
            // Live but not a recurring export that is scheduled (a one-time export, queued).
            deps.schedules.disarm(&export.id).await?;
            tracing::warn!(export_id = %export.id, status = export.status.as_str(), "removed the schedule of an export that is not a live recurring one");
            repairs.schedules_removed += 1;
        }
        if export.status == ExportStatus::Creating && export.created_at < overdue {
            if armed.contains(&export.id) {
                deps.schedules.disarm(&export.id).await?;
                repairs.schedules_removed += 1;
            }
            deps.lifecycle.discard(export).await?;
            tracing::warn!(export_id = %export.id, "discarded an export whose create never finished");
            repairs.creating_discarded += 1;
        }
        if live_recurring {
            restart_chain(deps, export, &armed, overdue, &mut repairs).await?;
        }
        if export.request.schedule == Schedule::OneTime
            && export.status == ExportStatus::Queued
            && export.deleted_at.is_none()
            && export.created_at < overdue
        {
            relaunch_one_time(deps, export, &mut repairs).await?;
        }
    }

    let mut launched_of: BTreeMap<ExportId, usize> = BTreeMap::new();
    for (id, job) in deps.sweep.stalled_jobs(overdue).await? {
        let key = JobKey {
            export_id: id,
            scheduled_at: job.scheduled_at,
        };
        let export = match exports.iter().find(|e| e.id == id) {
            Some(export) => Some(export.clone()),
            None => deps.exports.get(&id).await?,
        };
        // An occurrence the chain moved past whose job no attempt ever opened: launched as its
        // trigger would have been, within the lateness (a hundred per chain and sweep at most);
        // later, or for an export gone, recorded missed as run-export's catch-up records it.
        if job.attempts == 0 && job.spread.is_none() {
            let occurrence = export.as_ref().and_then(|e| match e.request.schedule {
                Schedule::Recurring(recurrence) if e.deleted_at.is_none() => recurrence
                    .next_after(job.scheduled_at - TimeDelta::milliseconds(1))
                    .map(|(k, _)| k),
                _ => None,
            });
            match occurrence {
                Some(k) if now - job.scheduled_at <= deps.config.lateness => {
                    let launched = launched_of.entry(id).or_default();
                    if *launched < MAX_LAUNCHES {
                        deps.launcher
                            .launch(&RunEvent::occurrence(id, k, job.scheduled_at))
                            .await
                            .map_err(|e| Failure::Retryable(Box::new(e)))?;
                        tracing::warn!(export_id = %id, occurrence = k, "launched an occurrence whose job was never attempted");
                        *launched += 1;
                        repairs.occurrences_launched += 1;
                    }
                }
                _ => {
                    let reason = format!(
                        "missed: its trigger's every attempt failed, and it is more than {} s late (CATCH_UP_LATENESS_SECONDS)",
                        deps.config.lateness.num_seconds()
                    );
                    let end = JobEnd::failed(reason, job.detail.clone(), now, deps.config.retention);
                    deps.ledger.record_unrun(&key, &end).await?;
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
                now,
                deps.config.retention,
            );
            if deps.sweep.abandon_job(&key, &end, overdue).await? {
                let _ = deps
                    .files
                    .remove_all(&format!("{}/", files::job_prefix(&id, &job.job_id)))
                    .await;
                tracing::warn!(export_id = %id, job_id = %job.job_id, "recorded failed a stalled job whose export is gone");
                repairs.jobs_abandoned += 1;
                hand_off(deps, id, &job.job_id, job.scheduled_at, &mut repairs).await?;
            }
            continue;
        };
        let export = &export;
        // A spread job's items that stopped go on (their runs relaunched), unless one keeps
        // dying; then the job is abandoned as below.
        if let Some(spread) = &job.spread {
            if relaunch_items(deps, &key, &job, spread, overdue, &mut repairs).await? {
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
            };
            deps.launcher
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
            now,
            deps.config.retention,
        );
        if !deps.sweep.abandon_job(&key, &end, overdue).await? {
            continue;
        }
        // The job is ended: a store that fails here leaves its files to the bucket's lifecycle
        // rule, and the sweep goes on.
        match deps
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
        if export.request.schedule == Schedule::OneTime {
            deps.runs
                .settle_one_time(export, ExportStatus::Failed, now)
                .await?;
        }
        hand_off(deps, id, &job.job_id, job.scheduled_at, &mut repairs).await?;
    }

    // Finished jobs never handed to notify (every attempt's hand-off failed, or a crash came
    // between), handed now once the grace has passed, for the last day's jobs.
    for (id, job) in deps
        .sweep
        .unhanded_jobs(now - TimeDelta::days(1), overdue)
        .await?
    {
        let unsettled = exports.iter().find(|e| {
            e.id == id
                && e.deleted_at.is_none()
                && e.request.schedule == Schedule::OneTime
                && e.status.counts_against_quota()
        });
        // A job left unhanded has ended; one that somehow has not settles nothing.
        if let (Some(export), Some(status)) = (unsettled, job.status.settles_as()) {
            let at = job.finished_at.unwrap_or(now);
            deps.runs.settle_one_time(export, status, at).await?;
            tracing::warn!(export_id = %id, job_id = %job.job_id, status = status.as_str(), "settled a one-time export whose job had ended");
            repairs.exports_settled += 1;
        }
        hand_off(deps, id, &job.job_id, job.scheduled_at, &mut repairs).await?;
    }

    let mut queued: BTreeMap<&str, i64> = BTreeMap::new();
    for export in exports
        .iter()
        .filter(|e| e.deleted_at.is_none() && e.status.counts_against_quota())
    {
        *queued.entry(export.owner.as_str()).or_default() += 1;
    }
    for (owner, stored) in &counters {
        let actual = queued.get(owner.as_str()).copied().unwrap_or(0);
        if *stored != actual && deps.sweep.set_quota(owner, *stored, actual).await? {
            tracing::warn!(
                owner,
                stored,
                actual,
                "corrected an owner's counter of queued exports"
            );
            repairs.quotas_corrected += 1;
        }
    }
    tracing::info!(repairs = ?repairs, exports = exports.len(), "reconciled");
    Ok(repairs)
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
    };
    let mut launches = Vec::new();
    let runs = deps.items.item_runs(key).await?;
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
            if let Some(next) = deps.items.next_item(key, spread.items).await? {
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

/// The most occurrences never attempted of one chain the sweep launches at once.
const MAX_LAUNCHES: usize = 100;

/// How many attempts one leg of a job that continued may take (counted from its checkpoint, so a
/// long job's earlier faults do not count) before the sweep gives up on it and records it failed.
const MAX_ATTEMPTS_PER_LEG: u32 = 3;

/// A one-time export queued past the grace whose job was never opened (the create died between
/// queueing and launching it, or the invoke's every attempt failed) is launched again; a launch
/// that arrives twice is a duplicate of one job, run once.
async fn relaunch_one_time(deps: Deps<'_>, export: &Export, repairs: &mut Repairs) -> Result<(), Failure> {
    let event = RunEvent {
        export_id: export.id,
        scheduled_at: export.created_at,
        occurrence: None,
        leg: None,
        item: None,
    };
    if deps.history.job(&event.job()).await?.is_some() {
        return Ok(());
    }
    deps.launcher
        .launch(&event)
        .await
        .map_err(|e| Failure::Retryable(Box::new(e)))?;
    tracing::warn!(export_id = %export.id, "launched a one-time export whose launch was lost");
    repairs.one_time_launched += 1;
    Ok(())
}

/// Hands a finished job to notify and marks it handed; a failure is logged and counted, and the
/// next sweep tries again (the job stays unmarked).
async fn hand_off(
    deps: Deps<'_>,
    id: exporter_core::domain::ExportId,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    repairs: &mut Repairs,
) -> Result<(), Failure> {
    let event = NotifyEvent {
        export_id: id,
        job_id: job_id.to_owned(),
    };
    match deps.notifier.job_ended(&event).await {
        Ok(()) => {
            deps.ledger
                .handed_off(&JobKey {
                    export_id: id,
                    scheduled_at,
                })
                .await?;
            tracing::warn!(export_id = %id, job_id, "handed a finished job to notify");
            repairs.jobs_handed_off += 1;
        }
        Err(e) => {
            tracing::error!(export_id = %id, job_id, error = %e, "could not hand a finished job to notify");
            repairs.hand_offs_failed += 1;
        }
    }
    Ok(())
}

/// A live recurring export whose trigger never came gets that occurrence launched (run-export
/// runs it and re-arms forward); one whose schedule is gone is armed again.
async fn restart_chain(
    deps: Deps<'_>,
    export: &Export,
    armed: &HashSet<exporter_core::domain::ExportId>,
    overdue: DateTime<Utc>,
    repairs: &mut Repairs,
) -> Result<(), Failure> {
    let Schedule::Recurring(recurrence) = export.request.schedule else {
        return Ok(());
    };
    let next_run = export.next_run_at.unwrap_or(export.created_at);
    // `nextRunAt` is kept to the millisecond: the occurrence at or just after it.
    let Some((k, at)) = recurrence.next_after(next_run - TimeDelta::milliseconds(1)) else {
        return Ok(());
    };
    let event = RunEvent::occurrence(export.id, k, at);
    if next_run < overdue {
        deps.launcher
            .launch(&event)
            .await
            .map_err(|e| Failure::Retryable(Box::new(e)))?;
        tracing::warn!(export_id = %export.id, occurrence = k, "launched an occurrence whose trigger never came");
        repairs.chains_restarted += 1;
    } else if !armed.contains(&export.id) {
        deps.schedules.arm(&event).await?;
        tracing::warn!(export_id = %export.id, occurrence = k, "armed again a schedule that was gone");
        repairs.schedules_rearmed += 1;
    }
    Ok(())
}
