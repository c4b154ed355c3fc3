//! A recurring export's chain: the next occurrence armed before the job runs, and occurrences
//! that passed without their trigger launched or recorded missed.

use crate::deps::Deps;
use crate::steps::record_unrun;

use exporter_adapters::failure::Failure;
use exporter_core::domain::chain::{self, CatchUp, MAX_CATCH_UP};
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
    let moved = chain::after(
        recurrence,
        k,
        export.next_run_at,
        export.created_at,
        now,
        deps.config.settle,
    )
    .ok_or_else(|| Failure::permanent("the next occurrence is out of range"))?;
    let (next, at) = (moved.next, moved.at);
    // The occurrences this move passes get their jobs on record first.
    let passed: Vec<JobKey> = moved
        .passed
        .iter()
        .map(|&scheduled_at| JobKey {
            export_id: export.id,
            scheduled_at,
        })
        .collect();
    let advance = deps
        .runs
        .advance_next_run((&export.id, export.version), at, now, &passed)
        .await?;
    if advance == Advance::Behind {
        tracing::info!(export_id = %export.id, k, "a later occurrence is armed already; the chain stays");
        return Ok(());
    }
    if advance == Advance::Advanced {
        catch_up(deps, export, recurrence, moved.behind).await?;
    }
    deps.schedules
        .arm(&RunEvent::occurrence(export.id, next, at))
        .await?;
    Ok(())
}

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
        match chain::catch_up(at, now, deps.config.lateness, "its trigger never came") {
            CatchUp::Run => {
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
            }
            CatchUp::Missed(reason) => record_unrun(deps, &event, reason).await?,
        }
    }
    Ok(())
}
