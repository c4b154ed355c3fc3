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

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use exporter_core::domain::{Export, ExportId};
use exporter_core::ports::{
    Clock, ExportLifecycle, ExportRuns, Exports, FileStore, JobEnds, JobHistory, JobNotifier, JobSpread,
    RunLauncher, RunSchedules, Sweep,
};

mod chains;
pub mod config;
mod handoffs;
mod jobs;
mod quotas;
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
    pub ends: &'a dyn JobEnds,
    /// The item runs of spread jobs.
    pub spread: &'a dyn JobSpread,
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

/// What one sweep read first, shared by its phases.
pub(crate) struct Pass<'a> {
    pub(crate) deps: Deps<'a>,
    pub(crate) now: DateTime<Utc>,
    /// Before this, what is due is overdue (now less the grace).
    pub(crate) overdue: DateTime<Utc>,
    /// The live exports, from the sweep's index.
    pub(crate) exports: Vec<Export>,
    pub(crate) armed: HashSet<ExportId>,
}

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
    Ok(repairs)
}

/// The most occurrences never attempted of one chain the sweep launches at once.
pub(crate) const MAX_LAUNCHES: usize = 100;

/// How many attempts one leg of a job that continued may take (counted from its checkpoint, so a
/// long job's earlier faults do not count) before the sweep gives up on it and records it failed.
pub(crate) const MAX_ATTEMPTS_PER_LEG: u32 = 3;
