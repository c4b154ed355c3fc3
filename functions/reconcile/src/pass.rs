//! What a sweep works with: its dependencies by role, the repairs it counts, what it read
//! first (shared by its phases), and its limits.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use exporter_core::domain::{Export, ExportId};
use exporter_core::ports::{
    Clock, ExportLifecycle, ExportRuns, Exports, FileStore, GrowingFiles, JobEnds, JobHistory, JobNotifier,
    JobSpread, RunLauncher, RunSchedules, Sweep,
};

use crate::config::ReconcileConfig;

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
    /// Files begun by attempts that died, never finished.
    pub uploads: &'a dyn GrowingFiles,
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
    /// Jobs whose messages notify had not finished a day after they ended, given up (logged
    /// as an error; they leave the sweep's index).
    pub hand_offs_dropped: usize,
    /// Files left under failed jobs (their attempt died before removing them), removed.
    pub failed_files_removed: usize,
}

impl Repairs {
    /// The sweep's repairs as metrics: each kind it made (by `kind`, its name here) and all of
    /// them in one figure, zero included (a sweep that keeps repairing shows).
    pub fn record(&self) {
        use exporter_adapters::telemetry::names;
        let mut total = 0;
        if let Ok(serde_json::Value::Object(kinds)) = serde_json::to_value(self) {
            for (kind, count) in kinds {
                let count = count.as_u64().unwrap_or(0);
                if count > 0 && kind != "handOffsFailed" {
                    metrics::counter!(names::REPAIRS, "kind" => kind).increment(count);
                    total += count;
                }
            }
        }
        // A value of this sweep (a gauge would repeat the last sweep's after a failed one).
        metrics::histogram!(names::REPAIRS_TOTAL).record(total as f64);
    }
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

/// The most occurrences never attempted of one chain the sweep launches at once.
pub(crate) const MAX_LAUNCHES: usize = 100;

/// How many attempts one leg of a job that continued may take (counted from its checkpoint, so a
/// long job's earlier faults do not count) before the sweep gives up on it and records it failed.
pub(crate) const MAX_ATTEMPTS_PER_LEG: u32 = 3;
