//! Occurrence times and export windows (spec section 4).
//!
//! A recurring export runs at `t_k = periodStart + k x periodicity`, `k = 1, 2, ...`, each time
//! computed from the anchor (never from the previous run), so calendar clamping does not drift.
//! The window of a run is half-open, `[from, to)`. Pure: the caller supplies "now".

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::duration::IsoDuration;

/// The recurrence of a `recurring` export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recurrence {
    pub anchor: DateTime<Utc>,
    pub every: IsoDuration,
    pub tz: Tz,
}

impl Recurrence {
    /// `t_k`; `t_0` is the anchor. `None` when it leaves the representable range.
    pub fn occurrence(&self, k: u64) -> Option<DateTime<Utc>> {
        if k == 0 {
            return Some(self.anchor);
        }
        self.every.times(k)?.add_to(self.anchor, self.tz)
    }

    /// The first occurrence strictly after `now`, with its index `k >= 1`. Occurrences grow
    /// with `k`, so an exponential then binary search finds it in `O(log k)` steps.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<(u64, DateTime<Utc>)> {
        let after = |k: u64| self.occurrence(k).map(|t| t > now);
        let mut high = 1u64;
        while !after(high)? {
            high = high.checked_mul(2)?;
        }
        let mut low = high / 2; // occurrence(low) <= now, or low == 0
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if after(mid)? {
                high = mid;
            } else {
                low = mid;
            }
        }
        Some((high, self.occurrence(high)?))
    }

    /// The index of an occurrence time, when `at` is one (a trigger carries only the time).
    pub fn index_of(&self, at: DateTime<Utc>) -> Option<u64> {
        let before = at.checked_sub_signed(chrono::TimeDelta::nanoseconds(1))?;
        let (k, t) = self.next_after(before)?;
        (t == at).then_some(k)
    }
}

/// A half-open time window `[from, to)`; `from: None` means "from the beginning of the data".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

/// What an item asks of the time axis (the parts of an item that shape its window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ItemSpan {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub period: Option<IsoDuration>,
}

impl ItemSpan {
    /// The window of a one-time export run at `run_at`: `from`/`to` when set; an unset `to` is
    /// the run time; with `period` and no `from`, `from = to - period`; with neither, all data.
    pub fn one_time_window(&self, run_at: DateTime<Utc>, tz: Tz) -> Option<Window> {
        let to = self.to.unwrap_or(run_at);
        let from = match (self.from, self.period) {
            (Some(from), _) => Some(from),
            (None, Some(period)) => Some(period.subtract_from(to, tz)?),
            (None, None) => None,
        };
        Some(Window { from, to })
    }

    /// The window of the recurring run at `t_k`: `[t_k - period, t_k)`, or `[t_(k-1), t_k)`
    /// without a period, so consecutive runs tile the timeline.
    pub fn recurring_window(&self, recurrence: &Recurrence, k: u64) -> Option<Window> {
        let to = recurrence.occurrence(k)?;
        let from = match self.period {
            Some(period) => period.subtract_from(to, recurrence.tz)?,
            None => recurrence.occurrence(k.checked_sub(1)?)?,
        };
        Some(Window { from: Some(from), to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, TimeDelta};
    use proptest::prelude::*;

    fn rec(anchor: i64, every: &str, tz: Tz) -> Recurrence {
        Recurrence {
            anchor: DateTime::from_timestamp(anchor, 0).expect("in range"),
            every: every.parse().expect("duration"),
            tz,
        }
    }

    /// The obviously-correct reference: step the local calendar one unit at a time.
    fn naive_occurrence(r: &Recurrence, k: u64) -> DateTime<Utc> {
        let local = r.anchor.with_timezone(&r.tz).naive_local();
        let months_total = (r.every.years * 12 + r.every.months) * k;
        let mut date = local.date();
        let (mut y, mut m) = (date.year(), date.month0() as u64);
        m += months_total;
        y += (m / 12) as i32;
        m %= 12;
        let mut day = date.day();
        while NaiveDate::from_ymd_opt(y, m as u32 + 1, day).is_none() {
            day -= 1;
        }
        date = NaiveDate::from_ymd_opt(y, m as u32 + 1, day).expect("clamped day exists");
        for _ in 0..(r.every.weeks * 7 + r.every.days) * k {
            date = date.succ_opt().expect("in range");
        }
        let mut t = if r.every.has_calendar_part() {
            super::super::duration::resolve_local(r.tz, date.and_time(local.time())).expect("in range")
        } else {
            r.anchor
        };
        for _ in 0..k {
            t += r.every.elapsed_part();
        }
        t
    }

    #[test]
    fn one_month_from_january_31_gives_february_28_then_march_31() {
        let anchor = NaiveDate::from_ymd_opt(2026, 1, 31)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("date")
            .and_utc()
            .timestamp();
        let r = rec(anchor, "P1M", Tz::UTC);
        let dates: Vec<String> = (1..=3)
            .map(|k| r.occurrence(k).expect("in range").date_naive().to_string())
            .collect();
        assert_eq!(dates, ["2026-02-28", "2026-03-31", "2026-04-30"]);
    }

    #[test]
    fn next_after_finds_the_first_future_occurrence() {
        let r = rec(1_767_225_600, "PT15M", Tz::UTC); // 2026-01-01T00:00Z
        let now = DateTime::from_timestamp(1_767_225_600 + 3600, 0).expect("in range");
        let (k, t) = r.next_after(now).expect("found");
        assert_eq!(k, 5);
        assert_eq!(t, now + TimeDelta::minutes(15));
        assert_eq!(r.index_of(t), Some(5));
        assert_eq!(r.index_of(t + TimeDelta::seconds(1)), None);
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(chrono_tz::Europe::Rome),
            Just(chrono_tz::America::New_York),
            Just(chrono_tz::Australia::Lord_Howe),
            Just(chrono_tz::Asia::Kathmandu),
            Just(chrono_tz::America::Santiago),
            Just(Tz::UTC),
        ]
    }

    fn periodicities() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("P1D"),
            Just("P1M"),
            Just("P1W"),
            Just("PT15M"),
            Just("PT1H"),
            Just("P1Y"),
            Just("P1MT12H"),
            Just("P2DT3H"),
            Just("P1Y6M4DT12H30M5S"),
            Just("PT25H"),
        ]
    }

    proptest! {
        #[test]
        fn occurrences_equal_the_naive_reference(
            anchor in 1_735_689_600i64..1_798_761_600, // 2025 to 2026
            every in periodicities(), tz in zones(), k in 1u64..60,
        ) {
            let r = rec(anchor, every, tz);
            prop_assert_eq!(r.occurrence(k), Some(naive_occurrence(&r, k)));
        }

        #[test]
        fn consecutive_recurring_windows_tile_the_timeline(
            anchor in 1_735_689_600i64..1_798_761_600,
            every in periodicities(), tz in zones(), k in 1u64..40,
        ) {
            let r = rec(anchor, every, tz);
            let span = ItemSpan::default();
            let first = span.recurring_window(&r, k).expect("window");
            let second = span.recurring_window(&r, k + 1).expect("window");
            prop_assert_eq!(Some(first.to), second.from);
            prop_assert!(first.from.expect("set") < first.to);
            prop_assert!(second.from.expect("set") < second.to);
        }

        #[test]
        fn next_after_is_the_first_occurrence_after_now(
            anchor in 1_735_689_600i64..1_798_761_600, offset in 0i64..200_000_000,
            every in periodicities(), tz in zones(),
        ) {
            let r = rec(anchor, every, tz);
            let now = DateTime::from_timestamp(anchor + offset, 0).expect("in range");
            let (k, t) = r.next_after(now).expect("found");
            prop_assert!(t > now);
            prop_assert!(r.occurrence(k - 1).expect("in range") <= now);
        }
    }
}
