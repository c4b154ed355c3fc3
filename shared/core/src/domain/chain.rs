//! A recurring export's chain, as rules both run-export (which moves it after each occurrence)
//! and the reconciler (which repairs it) follow: where the chain goes after an occurrence and
//! which occurrences the move passes; whether a passed occurrence still runs or is recorded
//! missed; the occurrence a stored time stands for; the hand-off of a finished job to notify.

use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};

use super::export::{ExportId, NotifyEvent};
use super::job::JobKey;
use super::recurrence::Recurrence;
use crate::ports::{JobEnds, JobNotifier, LaunchError, StoreError};

/// The most past occurrences one move records or runs; a longer gap is logged and skipped.
pub const MAX_CATCH_UP: u64 = 1000;

/// Where a chain goes after occurrence `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The next occurrence to arm, and its time.
    pub next: u64,
    pub at: DateTime<Utc>,
    /// The occurrences the move passes, from where the chain stood (its `nextRunAt`) to `next`
    /// (at most [`MAX_CATCH_UP`]): their jobs go on record before the chain moves, so that one
    /// whose every attempt dies after the move is an unfinished job, not a hole in the history.
    pub passed: Vec<DateTime<Utc>>,
    /// The occurrences after `k` that were due and never triggered (the chain fell behind):
    /// each runs now or is recorded missed ([`catch_up`]), once the move succeeded.
    pub behind: Range<u64>,
}

/// The occurrence a stored time stands for: the one at it or just after (times are kept to the
/// millisecond; an occurrence may have a finer fraction).
pub fn occurrence_at(recurrence: &Recurrence, stored: DateTime<Utc>) -> Option<(u64, DateTime<Utc>)> {
    recurrence.next_after(stored - TimeDelta::milliseconds(1))
}

/// Where the chain of an export created at `created_at`, standing at `next_run_at`, goes after
/// occurrence `k` at `now`: the occurrence after `k`, or, when that can no longer be armed (its
/// schedule would fire `settle` after it, already past), the first that can. `None` past the
/// recurrence's range.
pub fn after(
    recurrence: &Recurrence,
    k: u64,
    next_run_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    settle: TimeDelta,
) -> Option<Move> {
    let armable_after = now - settle;
    let mut next = k + 1;
    let mut at = recurrence.occurrence(next)?;
    if at <= armable_after {
        (next, at) = recurrence.next_after(armable_after)?;
    }
    let from = next_run_at
        .and_then(|t| occurrence_at(recurrence, t))
        .map_or(k, |(from, _)| from);
    let passed = (from.max(next.saturating_sub(MAX_CATCH_UP))..next)
        .filter_map(|j| recurrence.occurrence(j))
        .collect();
    // Occurrences before the export existed were never due: no trigger is missing for them.
    let first_due = recurrence.next_after(created_at).map_or(next, |(first, _)| first);
    Some(Move {
        next,
        at,
        passed,
        behind: (k + 1).max(first_due)..next,
    })
}

/// What becomes of a due occurrence that never ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Within the lateness: it runs now.
    Run,
    /// Later: recorded failed with this reason, sending nothing.
    Missed(String),
}

/// Whether an occurrence at `at` that never ran (`why`: its trigger never came, or its
/// trigger's every attempt died) still runs at `now`, or is recorded missed.
pub fn catch_up(at: DateTime<Utc>, now: DateTime<Utc>, lateness: TimeDelta, why: &str) -> CatchUp {
    if now - at <= lateness {
        CatchUp::Run
    } else {
        CatchUp::Missed(format!(
            "missed: {why}, and it is more than {} s late (CATCH_UP_LATENESS_SECONDS)",
            lateness.num_seconds()
        ))
    }
}

/// Why a hand-off did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandOffError {
    /// notify could not be asked: the job stays unmarked, a retry or the sweep hands it again.
    #[error("could not hand off to notify: {0}")]
    Notify(#[source] LaunchError),
    /// notify was asked, and marking the job handed failed: the sweep hands it again (notify
    /// skips what it sent).
    #[error("could not mark the job handed off: {0}")]
    Mark(#[source] StoreError),
}

/// Hands a finished job to notify, then marks it handed: in this order, so that a job is never
/// marked handed without notify having been asked.
pub async fn hand_off(
    notifier: &dyn JobNotifier,
    ends: &dyn JobEnds,
    export_id: ExportId,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
) -> Result<(), HandOffError> {
    let event = NotifyEvent {
        export_id,
        job_id: job_id.to_owned(),
    };
    notifier.job_ended(&event).await.map_err(HandOffError::Notify)?;
    ends.handed_off(&JobKey {
        export_id,
        scheduled_at,
    })
    .await
    .map_err(HandOffError::Mark)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IsoDuration;

    fn hourly() -> Recurrence {
        Recurrence {
            anchor: t(0),
            every: "PT1H".parse::<IsoDuration>().expect("a duration"),
            tz: chrono_tz::UTC,
        }
    }

    fn t(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + hours * 3600, 0).expect("in range")
    }

    #[test]
    fn a_chain_on_time_moves_to_the_next_occurrence_passing_nothing() {
        let moved = after(
            &hourly(),
            5,
            Some(t(5)),
            t(0),
            t(5) + TimeDelta::seconds(70),
            TimeDelta::seconds(60),
        )
        .expect("in range");
        assert_eq!((moved.next, moved.at), (6, t(6)));
        assert_eq!(moved.passed, vec![t(5)]);
        assert!(moved.behind.is_empty());
    }

    #[test]
    fn a_chain_behind_moves_past_what_can_no_longer_be_armed_and_says_what_it_passed() {
        // Occurrence 5's trigger came at 9:30: 6 to 9 were never triggered.
        let moved = after(
            &hourly(),
            5,
            Some(t(5)),
            t(0),
            t(9) + TimeDelta::minutes(30),
            TimeDelta::seconds(60),
        )
        .expect("in range");
        assert_eq!((moved.next, moved.at), (10, t(10)));
        assert_eq!(moved.passed, (5..10).map(t).collect::<Vec<_>>());
        assert_eq!(moved.behind, 6..10);
        // Created at 7:10, the occurrences before it were never due.
        let young = after(
            &hourly(),
            5,
            Some(t(5)),
            t(7) + TimeDelta::minutes(10),
            t(9) + TimeDelta::minutes(30),
            TimeDelta::seconds(60),
        )
        .expect("in range");
        assert_eq!(young.behind, 8..10);
    }

    #[test]
    fn a_stored_time_stands_for_the_occurrence_at_it_even_with_a_finer_fraction() {
        let r = hourly();
        assert_eq!(occurrence_at(&r, t(3)), Some((3, t(3))));
        assert_eq!(
            occurrence_at(&r, t(3) - TimeDelta::microseconds(300)),
            Some((3, t(3)))
        );
    }

    #[test]
    fn an_occurrence_that_never_ran_runs_within_the_lateness_and_is_missed_after() {
        let hour = TimeDelta::hours(1);
        assert_eq!(catch_up(t(0), t(1), hour, "its trigger never came"), CatchUp::Run);
        assert_eq!(
            catch_up(t(0), t(1) + TimeDelta::seconds(1), hour, "its trigger never came"),
            CatchUp::Missed(
                "missed: its trigger never came, and it is more than 3600 s late (CATCH_UP_LATENESS_SECONDS)"
                    .into()
            )
        );
    }

    struct Notifier(bool);

    #[async_trait::async_trait]
    impl JobNotifier for Notifier {
        async fn job_ended(&self, _: &NotifyEvent) -> Result<(), LaunchError> {
            if self.0 {
                Ok(())
            } else {
                Err(LaunchError::Unavailable("down".into()))
            }
        }
    }

    #[derive(Default)]
    struct Marks(std::sync::Mutex<Vec<JobKey>>);

    #[async_trait::async_trait]
    impl JobEnds for Marks {
        async fn finish_job(&self, _: &JobKey, _: &crate::domain::job::JobEnd) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn record_unrun(&self, _: &JobKey, _: &crate::domain::job::JobEnd) -> Result<(), StoreError> {
            Ok(())
        }
        async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError> {
            self.0
                .lock()
                .map_err(|_| StoreError::Unavailable("poisoned".into()))?
                .push(*job);
            Ok(())
        }
        async fn stop_handing_off(&self, _: &JobKey) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_job_is_marked_handed_off_only_once_notify_was_asked() {
        let id = ExportId::new_random();
        let marks = Marks::default();
        let failed = hand_off(&Notifier(false), &marks, id, "job", t(1)).await;
        assert!(matches!(failed, Err(HandOffError::Notify(_))), "{failed:?}");
        assert!(marks.0.lock().expect("marks").is_empty());
        hand_off(&Notifier(true), &marks, id, "job", t(1))
            .await
            .expect("handed");
        assert_eq!(
            *marks.0.lock().expect("marks"),
            vec![JobKey {
                export_id: id,
                scheduled_at: t(1)
            }]
        );
    }
}
