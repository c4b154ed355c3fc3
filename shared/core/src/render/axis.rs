//! The labels of a time axis, as people read them: at round local times (every 15 minutes, 3
//! hours, day, week, month...) chosen so that at most a given number fit, evenly spaced on the
//! wall clock of the export's zone, each formatted no finer than its step needs. Used by the
//! email's charts and the PDF report's.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A time axis's labels: where they go (Unix nanoseconds) and their text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeTicks {
    pub at: Vec<i64>,
    pub labels: Vec<String>,
}

/// Steps shorter than a day, in seconds.
const CLOCK_STEPS: [i64; 14] = [
    1, 5, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
];
/// Steps of whole days.
const DAY_STEPS: [i64; 4] = [1, 2, 7, 14];
/// Steps of whole months.
const MONTH_STEPS: [u32; 6] = [1, 2, 3, 6, 12, 24];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Seconds(i64),
    Days(i64),
    Months(u32),
}

impl Step {
    /// About how long the step is, in seconds.
    fn seconds(self) -> i64 {
        match self {
            Self::Seconds(s) => s,
            Self::Days(d) => d * 86_400,
            Self::Months(m) => i64::from(m) * 2_629_746,
        }
    }
}

/// The labels of an axis from `start_ns` to `end_ns` in `tz`, at most `most` of them (at least
/// two when the span allows).
pub fn time_ticks(tz: Tz, (start_ns, end_ns): (i64, i64), most: usize) -> TimeTicks {
    let most = most.max(2) as i64;
    let span = (end_ns.saturating_sub(start_ns) / 1_000_000_000).max(1);
    let steps = CLOCK_STEPS
        .iter()
        .map(|s| Step::Seconds(*s))
        .chain(DAY_STEPS.iter().map(|d| Step::Days(*d)))
        .chain(MONTH_STEPS.iter().map(|m| Step::Months(*m)));
    let mut chosen = Step::Months(MONTH_STEPS[MONTH_STEPS.len() - 1]);
    for step in steps {
        if span / step.seconds() < most {
            chosen = step;
            break;
        }
    }
    let local = |ns: i64| tz.from_utc_datetime(&DateTime::from_timestamp_nanos(ns).naive_utc());
    let (first, last) = (local(start_ns).naive_local(), local(end_ns).naive_local());
    let format = match chosen {
        Step::Seconds(s) if s < 60 => "%H:%M:%S",
        Step::Seconds(_) if first.date() == last.date() => "%H:%M",
        Step::Seconds(_) => "%m-%d %H:%M",
        Step::Days(_) => "%Y-%m-%d",
        Step::Months(_) => "%Y-%m",
    };
    let mut ticks = TimeTicks {
        at: Vec::new(),
        labels: Vec::new(),
    };
    let mut wall = align(first, chosen);
    // Bounded: a step fits at most `most` times in the span, and a few more for DST and
    // alignment.
    for _ in 0..(most * 2 + 4) {
        if wall > last {
            break;
        }
        if let Some(at) = instant(tz, wall).and_then(|t| t.timestamp_nanos_opt()) {
            if (start_ns..=end_ns).contains(&at) {
                ticks.at.push(at);
                ticks.labels.push(wall.format(format).to_string());
            }
        }
        wall = match next(wall, chosen) {
            Some(w) => w,
            None => break,
        };
    }
    ticks
}

/// The first round wall time of `step` at or after `wall`.
fn align(wall: NaiveDateTime, step: Step) -> NaiveDateTime {
    let midnight = wall.date().and_hms_opt(0, 0, 0).unwrap_or(wall);
    match step {
        Step::Seconds(s) => {
            let into = (wall - midnight).num_seconds();
            let up = (into + s - 1) / s * s;
            midnight + Duration::seconds(up)
        }
        Step::Days(d) => {
            let day = if wall == midnight {
                midnight
            } else {
                midnight + Duration::days(1)
            };
            // Whole weeks start on Mondays.
            let back = if d == 7 || d == 14 {
                i64::from(day.weekday().num_days_from_monday())
            } else {
                0
            };
            if back == 0 {
                day
            } else {
                day + Duration::days(7 - back)
            }
        }
        Step::Months(m) => {
            let month_start = NaiveDate::from_ymd_opt(wall.year(), wall.month(), 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(wall);
            let mut at = if month_start == wall {
                month_start
            } else {
                next(month_start, Step::Months(1)).unwrap_or(wall)
            };
            // Steps of months start where the year's months divide by them (January, April...).
            for _ in 0..24 {
                if at.month0() % m.min(12) == 0 {
                    break;
                }
                at = next(at, Step::Months(1)).unwrap_or(at);
            }
            at
        }
    }
}

fn next(wall: NaiveDateTime, step: Step) -> Option<NaiveDateTime> {
    match step {
        Step::Seconds(s) => Some(wall + Duration::seconds(s)),
        Step::Days(d) => Some(wall + Duration::days(d)),
        Step::Months(m) => wall.checked_add_months(chrono::Months::new(m)),
    }
}

/// The instant a wall time names in `tz`: the earlier of a repeated one; none in a DST gap.
fn instant(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(early, _) => Some(early),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    /// 2025-10-26 00:00 in Rome: the autumn DST day.
    const DAY: i64 = 1_761_429_600;

    fn ticks(from: i64, seconds: i64) -> TimeTicks {
        time_ticks(chrono_tz::Europe::Rome, (from * S, (from + seconds) * S), 7)
    }

    /// The wall-clock gaps between labels, in seconds.
    fn gaps(t: &TimeTicks) -> Vec<i64> {
        let wall = |ns: i64| {
            chrono_tz::Europe::Rome
                .from_utc_datetime(&DateTime::from_timestamp_nanos(ns).naive_utc())
                .naive_local()
        };
        t.at.windows(2)
            .map(|w| (wall(w[1]) - wall(w[0])).num_seconds())
            .collect()
    }

    #[test]
    fn an_hour_a_day_a_week_and_a_year_are_labelled_evenly_at_round_times() {
        let hour = ticks(DAY + 9 * 3600, 3600);
        assert_eq!(
            hour.labels,
            ["08:00", "08:10", "08:20", "08:30", "08:40", "08:50", "09:00"]
        );
        assert!(gaps(&hour).iter().all(|g| *g == 600));

        // The 25-hour day to its last quarter: every 6 hours of the wall clock.
        let day = ticks(DAY, 90_000 - 900);
        assert_eq!(day.labels, ["00:00", "06:00", "12:00", "18:00"]);
        assert!(gaps(&day).iter().all(|g| *g == 6 * 3600));

        let week = ticks(DAY, 7 * 86_400);
        assert_eq!(week.labels.len(), 4, "{:?}", week.labels);
        assert_eq!(week.labels[0], "2025-10-26");
        assert!(gaps(&week).iter().all(|g| *g == 2 * 86_400));

        let year = ticks(DAY, 365 * 86_400);
        assert_eq!(
            year.labels,
            ["2025-11", "2026-01", "2026-03", "2026-05", "2026-07", "2026-09"],
        );
        for t in [&hour, &day, &week, &year] {
            assert!(t.at.len() >= 2 && t.at.len() <= 7, "{:?}", t.labels);
            assert!(t.at.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn a_moment_or_ten_thousand_years_still_gets_bounded_labels() {
        let moment = time_ticks(chrono_tz::UTC, (DAY * S, DAY * S), 7);
        assert!(moment.at.len() <= 1);
        let ages = time_ticks(chrono_tz::UTC, (-(i64::MAX / 2), i64::MAX / 2), 7);
        assert!(ages.at.len() <= 7 * 2 + 4);
    }
}
