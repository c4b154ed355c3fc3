//! A recurring export's chain: the next occurrence armed before the job runs, and occurrences
//! that passed without their trigger launched or recorded missed.

use crate::deps::Deps;
use crate::steps::record_unrun;
use chrono::TimeDelta;

use exporter_adapters::failure::Failure;
use exporter_core::domain::job::JobKey;
use exporter_core::domain::{Export, Recurrence, RunEvent};
use exporter_core::ports::Advance;

/// After occurrence `k`: moves the export's next run forward to the first occurrence after now
/// and arms it, never back (a late or replayed trigger of `k` finds a later one armed and does
/// nothing). When occurrences between `k` and now were never triggered (the chain fell behind),
/// the run that moved the chain forward launches those within `lateness` and records the older
/// ones as missed.
pub(crate) async fn rearm(
    deps: Deps<'_>,
    export: &Export,
    recurrence: &Recurrence,
    k: u64,
) -> Result<(), Failure> {
    let now = deps.clock.now();
    // An occurrence can be armed while its schedule (which fires `settle` after it) is ahead.
    let armable_after = now - deps.config.settle;
    let out_of_range = || Failure::permanent("the next occurrence is out of range");
    let mut next = k + 1;
    let mut at = recurrence.occurrence(next).ok_or_else(out_of_range)?;
    if at <= armable_after {
        (next, at) = recurrence.next_after(armable_after).ok_or_else(out_of_range)?;
    }
    // The occurrences this move passes (from where the chain stands to `next`) get their jobs
    // on record first: one whose every attempt dies after the chain moved on is then an
    // unfinished job the reconciler finds, not a hole in the history.
    let from = export
        .next_run_at
        .and_then(|t| recurrence.next_after(t - TimeDelta::milliseconds(1)))
        .map_or(k, |(from, _)| from);
    let passed: Vec<JobKey> = (from.max(next.saturating_sub(MAX_CATCH_UP))..next)
        .filter_map(|j| recurrence.occurrence(j))
        .map(|scheduled_at| JobKey {
            export_id: export.id,
            scheduled_at,
        })
        .collect();
    let advance = deps.runs.advance_next_run(&export.id, at, now, &passed).await?;
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
pub(crate) const MAX_CATCH_UP: u64 = 1000;

/// Occurrences `range` passed without a trigger: those within `lateness` run now, older ones
/// are recorded as missed.
pub(crate) async fn catch_up(
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
