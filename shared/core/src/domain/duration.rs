//! ISO 8601 durations (`PnYnMnWnDTnHnMnS`) and the calendar arithmetic of spec section 4.
//!
//! Parsing is strict: designators in order, each at most once, a fraction only on seconds, and
//! never a zero duration. Adding a duration happens in a timezone: years and months on the local
//! calendar (the day clamped to the month's end), then weeks and days on the local calendar, then
//! hours, minutes and seconds as elapsed time. Nothing here reads a clock or the environment.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, Months, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The largest value one field may hold; keeps every product `k x field` far from overflow.
const FIELD_MAX: u64 = 1_000_000_000;

/// A validated, non-zero ISO 8601 duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IsoDuration {
    pub years: u64,
    pub months: u64,
    pub weeks: u64,
    pub days: u64,
    pub hours: u64,
    pub minutes: u64,
    pub seconds: u64,
    /// Fractional part of the seconds, in nanoseconds (`0..1e9`).
    pub nanos: u32,
}

/// Why a text is not an ISO 8601 duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("must start with `P` (ISO 8601 duration such as `P1DT12H`)")]
    MissingP,
    #[error("has no field after `P` (ISO 8601 duration such as `P1DT12H`)")]
    Empty,
    #[error("has `T` but no hours, minutes or seconds after it")]
    EmptyTime,
    #[error("has `{0}` where a number followed by a designator was expected")]
    Unexpected(char),
    #[error("has a number with no designator after it")]
    MissingDesignator,
    #[error("has designator `{0}` out of order or repeated (order: Y M W D T H M S)")]
    OutOfOrder(char),
    #[error("has `{0}` before `T`; hours and seconds go after `T` (such as `PT1H`)")]
    NeedsT(char),
    #[error("has a fraction on `{0}`; only the seconds may be fractional")]
    FractionNotOnSeconds(char),
    #[error("has a fraction with more than 9 digits")]
    FractionTooLong,
    #[error("has a field larger than {FIELD_MAX}")]
    TooLarge,
    #[error("is zero; a duration must be longer than nothing")]
    Zero,
}

impl IsoDuration {
    /// True when every field is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// True when the duration has a calendar part (years, months, weeks or days).
    pub fn has_calendar_part(&self) -> bool {
        self.years + self.months + self.weeks + self.days > 0
    }

    /// The elapsed part (hours, minutes, seconds) as a time delta.
    pub fn elapsed_part(&self) -> TimeDelta {
        let secs = self.hours * 3600 + self.minutes * 60 + self.seconds;
        // Fields are bounded by FIELD_MAX, so the sum fits an i64 comfortably.
        TimeDelta::new(secs as i64, self.nanos).unwrap_or(TimeDelta::MAX)
    }

    /// True when the duration is at least `secs` seconds long whatever the calendar does:
    /// any calendar part is at least 23 hours (a DST day), so it counts as long enough.
    pub fn at_least_seconds(&self, secs: u64) -> bool {
        if self.has_calendar_part() {
            return secs <= 23 * 3600;
        }
        self.elapsed_part() >= TimeDelta::seconds(secs as i64)
    }

    /// This duration with every field multiplied by `k`; `None` on overflow.
    pub fn times(&self, k: u64) -> Option<Self> {
        let total_nanos = u64::from(self.nanos).checked_mul(k)?;
        Some(Self {
            years: self.years.checked_mul(k)?,
            months: self.months.checked_mul(k)?,
            weeks: self.weeks.checked_mul(k)?,
            days: self.days.checked_mul(k)?,
            hours: self.hours.checked_mul(k)?,
            minutes: self.minutes.checked_mul(k)?,
            seconds: self
                .seconds
                .checked_mul(k)?
                .checked_add(total_nanos / 1_000_000_000)?,
            nanos: (total_nanos % 1_000_000_000) as u32,
        })
    }

    /// `start + self` in `tz`, by the rules of spec section 4. `None` when the result leaves
    /// chrono's range.
    pub fn add_to(&self, start: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut instant = start;
        if self.has_calendar_part() {
            let local = start.with_timezone(&tz).naive_local();
            let months = u32::try_from(self.years.checked_mul(12)?.checked_add(self.months)?).ok()?;
            let days = self.weeks.checked_mul(7)?.checked_add(self.days)?;
            let shifted = local
                .checked_add_months(Months::new(months))?
                .checked_add_days(Days::new(days))?;
            instant = resolve_local(tz, shifted)?;
        }
        instant.checked_add_signed(self.elapsed_part())
    }

    /// `end - self` in `tz`: the mirror of [`IsoDuration::add_to`], undoing the elapsed part
    /// first and then the calendar part on the local calendar (days, then months, clamped).
    pub fn subtract_from(&self, end: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut instant = end.checked_sub_signed(self.elapsed_part())?;
        if self.has_calendar_part() {
            let local = instant.with_timezone(&tz).naive_local();
            let months = u32::try_from(self.years.checked_mul(12)?.checked_add(self.months)?).ok()?;
            let days = self.weeks.checked_mul(7)?.checked_add(self.days)?;
            let shifted = local
                .checked_sub_days(Days::new(days))?
                .checked_sub_months(Months::new(months))?;
            instant = resolve_local(tz, shifted)?;
        }
        Some(instant)
    }
}

/// The instant of a local wall-clock time in `tz`. A time in a DST gap moves forward by the
/// gap's length (it is read with the offset in force before the gap); an ambiguous time (the
/// repeated autumn hour) takes the earlier of its two instants.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            // No zone has two transitions within a day, so a day earlier is before the gap.
            let probe = local.checked_sub_days(Days::new(1))?.and_utc();
            let before = tz.offset_from_utc_datetime(&probe.naive_utc()).fix();
            let utc = local.checked_sub_signed(TimeDelta::seconds(i64::from(before.local_minus_utc())))?;
            Some(utc.and_utc())
        }
    }
}

impl FromStr for IsoDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_prefix('P').ok_or(DurationError::MissingP)?;
        if rest.is_empty() {
            return Err(DurationError::Empty);
        }
        let (date, time) = match rest.split_once('T') {
            Some((date, time)) => {
                if time.is_empty() {
                    return Err(DurationError::EmptyTime);
                }
                (date, Some(time))
            }
            None => (rest, None),
        };
        let mut duration = IsoDuration::default();
        parse_fields(date, &['Y', 'M', 'W', 'D'], &mut duration, false)?;
        if let Some(time) = time {
            parse_fields(time, &['H', 'M', 'S'], &mut duration, true)?;
        }
        if duration.is_zero() {
            return Err(DurationError::Zero);
        }
        Ok(duration)
    }
}

/// Parses `<number><designator>` runs of one part (date or time) into `out`.
fn parse_fields(part: &str, order: &[char], out: &mut IsoDuration, time: bool) -> Result<(), DurationError> {
    let mut next = 0; // index in `order` of the first designator still allowed
    let mut chars = part.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if !c.is_ascii_digit() {
            return Err(DurationError::Unexpected(c));
        }
        let mut end = start;
        let mut fraction: Option<(usize, usize)> = None;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_digit() {
                end = i + 1;
                chars.next();
            } else if (c == '.' || c == ',') && fraction.is_none() {
                chars.next();
                let from = i + 1;
                let mut to = from;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    to = j + 1;
                    chars.next();
                }
                if to == from {
                    return Err(DurationError::Unexpected(c));
                }
                fraction = Some((from, to));
            } else {
                break;
            }
        }
        let (_, designator) = chars.next().ok_or(DurationError::MissingDesignator)?;
        let slot =
            order[next..]
                .iter()
                .position(|&d| d == designator)
                .ok_or(if designator.is_ascii_digit() {
                    DurationError::MissingDesignator
                } else if !time && (designator == 'H' || designator == 'S') {
                    DurationError::NeedsT(designator)
                } else if "YMWDHS".contains(designator) {
                    DurationError::OutOfOrder(designator)
                } else {
                    DurationError::Unexpected(designator)
                })?;
        next += slot + 1;
        let value: u64 = part[start..end].parse().map_err(|_| DurationError::TooLarge)?;
        if value > FIELD_MAX {
            return Err(DurationError::TooLarge);
        }
        let is_seconds = time && designator == 'S';
        if let Some((from, to)) = fraction {
            if !is_seconds {
                return Err(DurationError::FractionNotOnSeconds(designator));
            }
            let digits = &part[from..to];
            if digits.len() > 9 {
                return Err(DurationError::FractionTooLong);
            }
            let scale = 10u32.pow(9 - digits.len() as u32);
            out.nanos = digits.parse::<u32>().map_err(|_| DurationError::TooLarge)? * scale;
        }
        match (time, designator) {
            (false, 'Y') => out.years = value,
            (false, 'M') => out.months = value,
            (false, 'W') => out.weeks = value,
            (false, 'D') => out.days = value,
            (true, 'H') => out.hours = value,
            (true, 'M') => out.minutes = value,
            _ => out.seconds = value,
        }
    }
    Ok(())
}

impl fmt::Display for IsoDuration {
    /// The canonical form: zero fields omitted, seconds' fraction without trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for (value, designator) in [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ] {
            if value > 0 {
                write!(f, "{value}{designator}")?;
            }
        }
        let has_time = self.hours + self.minutes + self.seconds > 0 || self.nanos > 0;
        if has_time || self.is_zero() {
            f.write_str("T")?;
            if self.hours > 0 {
                write!(f, "{}H", self.hours)?;
            }
            if self.minutes > 0 {
                write!(f, "{}M", self.minutes)?;
            }
            if self.seconds > 0 || self.nanos > 0 || self.is_zero() {
                write!(f, "{}", self.seconds)?;
                if self.nanos > 0 {
                    let fraction = format!("{:09}", self.nanos);
                    write!(f, ".{}", fraction.trim_end_matches('0'))?;
                }
                f.write_str("S")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<IsoDuration, DurationError> {
        s.parse()
    }

    #[test]
    fn parses_the_seed_example() {
        let d = parse("P1Y6M4DT12H30M5S").expect("seed duration");
        assert_eq!(
            (d.years, d.months, d.days, d.hours, d.minutes, d.seconds),
            (1, 6, 4, 12, 30, 5)
        );
        assert_eq!(d.to_string(), "P1Y6M4DT12H30M5S");
    }

    #[test]
    fn rejects_malformed_durations() {
        assert_eq!(parse("P"), Err(DurationError::Empty));
        assert_eq!(parse("PT"), Err(DurationError::EmptyTime));
        assert_eq!(parse("1D"), Err(DurationError::MissingP));
        assert_eq!(parse("P1.5Y"), Err(DurationError::FractionNotOnSeconds('Y')));
        assert_eq!(parse("P0D"), Err(DurationError::Zero));
        assert_eq!(parse("P1D2Y"), Err(DurationError::OutOfOrder('Y')));
        assert_eq!(parse("P1H"), Err(DurationError::NeedsT('H')));
        assert_eq!(parse("PT1"), Err(DurationError::MissingDesignator));
        assert_eq!(parse("P-1D"), Err(DurationError::Unexpected('-')));
    }

    #[test]
    fn accepts_a_fraction_on_seconds_only() {
        let d = parse("PT1M0.25S").expect("fractional seconds");
        assert_eq!(d.nanos, 250_000_000);
        assert_eq!(d.to_string(), "PT1M0.25S");
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("valid date")
            .and_utc()
    }

    #[test]
    fn one_month_from_january_31_clamps_then_recovers() {
        let p1m = parse("P1M").expect("P1M");
        let start = utc(2026, 1, 31, 10, 0);
        let at = |k| {
            p1m.times(k)
                .and_then(|d| d.add_to(start, Tz::UTC))
                .expect("in range")
        };
        assert_eq!(at(1), utc(2026, 2, 28, 10, 0));
        assert_eq!(at(2), utc(2026, 3, 31, 10, 0));
        assert_eq!(at(3), utc(2026, 4, 30, 10, 0));
    }

    #[test]
    fn gap_times_move_forward_and_ambiguous_times_take_the_earlier_instant() {
        let rome = chrono_tz::Europe::Rome;
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29).and_then(|d| d.and_hms_opt(2, 30, 0));
        assert_eq!(
            resolve_local(rome, gap.expect("date")),
            Some(utc(2026, 3, 29, 1, 30))
        );
        let repeated = NaiveDate::from_ymd_opt(2026, 10, 25).and_then(|d| d.and_hms_opt(2, 30, 0));
        assert_eq!(
            resolve_local(rome, repeated.expect("date")),
            Some(utc(2026, 10, 25, 0, 30))
        );
        let lord_howe = chrono_tz::Australia::Lord_Howe;
        let half_hour_gap = NaiveDate::from_ymd_opt(2026, 10, 4).and_then(|d| d.and_hms_opt(2, 15, 0));
        let resolved = resolve_local(lord_howe, half_hour_gap.expect("date")).expect("in range");
        assert_eq!(
            resolved.with_timezone(&lord_howe).naive_local().to_string(),
            "2026-10-04 02:45:00"
        );
    }

    #[test]
    fn a_daily_period_stays_at_rome_midnight_on_every_day_of_2026() {
        let rome = chrono_tz::Europe::Rome;
        let first = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        let anchor = resolve_local(rome, first.and_time(chrono::NaiveTime::MIN)).expect("instant");
        let p1d = parse("P1D").expect("P1D");
        let mut lengths = std::collections::BTreeSet::new();
        let mut previous = anchor;
        for k in 1..=365 {
            let t = p1d
                .times(k)
                .and_then(|d| d.add_to(anchor, rome))
                .expect("in range");
            let local = t.with_timezone(&rome).naive_local();
            assert_eq!(
                local,
                (first + Days::new(k)).and_time(chrono::NaiveTime::MIN),
                "k = {k}"
            );
            lengths.insert((t - previous).num_hours());
            previous = t;
        }
        // Both DST changes of 2026 were crossed: a 23-hour and a 25-hour day.
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [23, 24, 25]);
    }

    fn arb_duration() -> impl Strategy<Value = IsoDuration> {
        (
            (0u64..50, 0u64..30, 0u64..10, 0u64..400),
            (0u64..100, 0u64..100, 0u64..100_000, 0u32..1_000_000_000),
        )
            .prop_map(
                |((years, months, weeks, days), (hours, minutes, seconds, nanos))| IsoDuration {
                    years,
                    months,
                    weeks,
                    days,
                    hours,
                    minutes,
                    seconds,
                    nanos,
                },
            )
            .prop_filter("non-zero", |d| !d.is_zero())
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_duration(d in arb_duration()) {
            let printed = d.to_string();
            prop_assert_eq!(parse(&printed), Ok(d));
            prop_assert_eq!(parse(&printed).map(|p| p.to_string()), Ok(printed));
        }

        #[test]
        fn a_daily_period_anchored_at_rome_midnight_stays_at_midnight(k in 0u64..800) {
            let rome = chrono_tz::Europe::Rome;
            let anchor = resolve_local(rome, NaiveDate::from_ymd_opt(2026, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0)).expect("date")).expect("instant");
            let t = parse("P1D").ok().and_then(|d| d.times(k)).and_then(|d| d.add_to(anchor, rome))
                .expect("in range");
            let local = t.with_timezone(&rome).naive_local();
            prop_assert_eq!(local.time(), chrono::NaiveTime::MIN);
            prop_assert_eq!(local.date(), NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
                + Days::new(k));
        }

        #[test]
        fn subtracting_undoes_adding_for_elapsed_durations(secs in 60u64..10_000_000, start in 0i64..4_000_000_000) {
            let d = IsoDuration { seconds: secs, ..IsoDuration::default() };
            let t = DateTime::from_timestamp(start, 0).expect("in range");
            let rome = chrono_tz::Europe::Rome;
            prop_assert_eq!(d.add_to(t, rome).and_then(|e| d.subtract_from(e, rome)), Some(t));
        }
    }
}
