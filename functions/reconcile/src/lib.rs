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
//!   one-time export settled first when the attempt died before settling it; a failed one has
//!   what its attempts left under its prefix removed (an attempt that died between recording the
//!   failure and removing the files).
//!
//! Every repair is logged and counted in the answer.

use chrono::TimeDelta;

mod chains;
pub mod config;
mod handoffs;
mod jobs;
mod pass;
mod quotas;
pub use config::ReconcileConfig;
pub use exporter_adapters::failure::Failure;
pub use pass::{Deps, Repairs};

use pass::Pass;

/// One sweep.
pub async fn handle(deps: Deps<'_>) -> Result<Repairs, Failure> {
    let now = deps.clock.now();
    let mut repairs = Repairs::default();
    // Counters first, records second: a write in between changes the counter, and the
    // correction below, conditional on the counter read here, then leaves it alone.
    // Counters changed in the last minute are left alone: the index the exports are read from
    // may not show the change yet.
    let counters = deps.sweep.quotas(now - TimeDelta::minutes(1)).await?;
    let pass = Pass {
        deps,
        now,
        overdue: now - deps.config.grace,
        exports: deps.sweep.live_exports().await?,
        armed: deps.schedules.armed().await?.into_iter().collect(),
    };
    chains::exports(&pass, &mut repairs).await?;
    jobs::stalled(&pass, &mut repairs).await?;
    handoffs::unhanded(&pass, &mut repairs).await?;
    quotas::correct(&pass, &counters, &mut repairs).await?;
    tracing::info!(repairs = ?repairs, exports = pass.exports.len(), "reconciled");
    repairs.record();
    Ok(repairs)
}
