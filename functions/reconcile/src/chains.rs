//! Live exports: schedules of exports that are not live removed, creates that never finished
//! discarded, chains whose trigger never came restarted (or re-armed), one-time exports whose
//! launch was lost launched.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use exporter_core::domain::chain;
use exporter_core::domain::{Export, ExportStatus, RunEvent, Schedule};

use crate::pass::{Deps, Pass, Repairs};
use exporter_adapters::failure::Failure;

/// The schedules and the live exports, each repaired as it needs.
pub(crate) async fn exports(pass: &Pass<'_>, repairs: &mut Repairs) -> Result<(), Failure> {
    // A schedule of an export that is not live (deleted, settled, gone): read again, since the
    // index may lag a create by a moment.
    let live: HashSet<_> = pass.exports.iter().map(|e| e.id).collect();
    for id in pass.armed.iter().filter(|id| !live.contains(id)) {
        let export = pass.deps.exports.get(id).await?;
        let keep = export.as_ref().is_some_and(|e| {
            e.deleted_at.is_none()
                && (e.status == ExportStatus::Creating
                    || (e.status == ExportStatus::Scheduled
                        && matches!(e.request.schedule, Schedule::Recurring(_))))
        });
        if !keep {
            pass.deps.schedules.disarm(id).await?;
            tracing::warn!(export_id = %id, "removed the schedule of an export that is not a live recurring one");
            repairs.schedules_removed += 1;
        }
    }

    for export in &pass.exports {
        let live_recurring = export.deleted_at.is_none()
            && export.status == ExportStatus::Scheduled
            && matches!(export.request.schedule, Schedule::Recurring(_));
        if !live_recurring && pass.armed.contains(&export.id) && export.status != ExportStatus::Creating {
            // Live but not a recurring export that is scheduled (a one-time export, queued).
            pass.deps.schedules.disarm(&export.id).await?;
            tracing::warn!(export_id = %export.id, status = export.status.as_str(), "removed the schedule of an export that is not a live recurring one");
            repairs.schedules_removed += 1;
        }
        if export.status == ExportStatus::Creating && export.created_at < pass.overdue {
            if pass.armed.contains(&export.id) {
                pass.deps.schedules.disarm(&export.id).await?;
                repairs.schedules_removed += 1;
            }
            pass.deps.lifecycle.discard(export, pass.now).await?;
            tracing::warn!(export_id = %export.id, "discarded an export whose create never finished");
            repairs.creating_discarded += 1;
        }
        if live_recurring {
            restart_chain(pass.deps, export, &pass.armed, pass.overdue, repairs).await?;
        }
        if export.request.schedule == Schedule::OneTime
            && export.status == ExportStatus::Queued
            && export.deleted_at.is_none()
            && export.created_at < pass.overdue
        {
            relaunch_one_time(pass.deps, export, repairs).await?;
        }
    }
    Ok(())
}

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
        extra: None,
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
    let Some((k, at)) = chain::occurrence_at(&recurrence, next_run) else {
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
