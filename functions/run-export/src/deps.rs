//! What a run needs: its dependencies by role (its configuration is `config.rs`); when an
//! attempt must stop working.

use chrono::{DateTime, TimeDelta, Utc};
use exporter_core::ports::{
    Budgets, ChannelAccess, Clock, ExportRuns, Exports, FilePieces, FileStore, GrowingFiles, ItemLedger,
    JobEnds, JobHistory, JobLedger, JobNotifier, JobSpread, RunLauncher, RunSchedules, SeriesReader,
};

use crate::config::RunConfig;

/// What the run needs: the roles of the store it uses, and nothing else.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub runs: &'a dyn ExportRuns,
    pub ledger: &'a dyn JobLedger,
    /// How jobs end: recorded once, handed off.
    pub ends: &'a dyn JobEnds,
    /// The runs of the items of jobs spread over parallel invocations.
    pub items: &'a dyn ItemLedger,
    /// Jobs spread over item runs: the spread, the items launched, their outcomes.
    pub spread: &'a dyn JobSpread,
    pub history: &'a dyn JobHistory,
    pub budgets: &'a dyn Budgets,
    pub schedules: &'a dyn RunSchedules,
    /// Launches occurrences that passed without their trigger.
    pub launcher: &'a dyn RunLauncher,
    pub reader: &'a dyn SeriesReader,
    pub files: &'a dyn FileStore,
    /// Stored files read a piece at a time (the zip, a workbook's stage).
    pub pieces: &'a dyn FilePieces,
    /// Files written across invocations, sent a piece at a time.
    pub uploads: &'a dyn GrowingFiles,
    pub notifier: &'a dyn JobNotifier,
    /// Re-checks the owner's channel access before every run (`CHANNEL_ACCESS=policy`); `None`
    /// when access is only checked at create time.
    pub access: Option<&'a dyn ChannelAccess>,
    pub clock: &'a dyn Clock,
    pub config: &'a RunConfig,
    /// When this attempt must stop working (the invocation's deadline less a margin), so that
    /// it ends its job cleanly rather than being cut off; `None`: no limit. Within a run, the
    /// earlier of that and the end of the invocation's budget: where a leg pauses.
    pub stop_at: Option<DateTime<Utc>>,
    /// The invocation's own limit (the deadline less its margin), whatever the budget: what a
    /// step that cannot pause (the zip) must finish within. Set by the run from `stop_at`.
    pub deadline: Option<DateTime<Utc>>,
}

/// When an attempt whose invocation ends at `deadline` must stop working: `margin` before it, or
/// half-way there when less time than twice the margin remains (a short timeout, an emulator);
/// `None` without a deadline still ahead.
pub fn stop_at(
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    margin: TimeDelta,
) -> Option<DateTime<Utc>> {
    let deadline = deadline.filter(|d| *d > now)?;
    Some(deadline - margin.min((deadline - now) / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_a_margin_before_its_deadline_or_half_way_when_time_is_short() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("in range");
        let minute = TimeDelta::seconds(60);
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(900)), now, minute),
            Some(now + TimeDelta::seconds(840))
        );
        assert_eq!(
            stop_at(Some(now + TimeDelta::seconds(30)), now, minute),
            Some(now + TimeDelta::seconds(15))
        );
        assert_eq!(stop_at(Some(now - TimeDelta::seconds(1)), now, minute), None);
        assert_eq!(stop_at(None, now, minute), None);
    }
}
