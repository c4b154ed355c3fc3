//! Formatting of times and numbers for text files, on the hot path: no allocation per row and
//! at most a few timezone lookups per local day.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::domain::decimation::day_start_ns;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A local day with one offset all through it: `[start_ns, end_ns)`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start_ns: i64,
    end_ns: i64,
    /// Local seconds since midnight at `start_ns` (not zero where a DST gap swallowed midnight).
    start_secs_of_day: i64,
    offset: i32,
    prefix: [u8; 11],
}

/// Writes instants as ISO 8601 with the zone's offset (`2026-03-29T03:00:00+02:00`).
#[derive(Clone, Debug)]
pub struct TimeFormatter {
    tz: Tz,
    span: Option<Span>,
}

impl TimeFormatter {
    pub fn new(tz: Tz) -> Self {
        Self { tz, span: None }
    }

    /// Appends the text of `t_ns` to `out`. Fractions of a second are written only when there
    /// are any, in milli-, micro- or nanoseconds as needed.
    pub fn write(&mut self, t_ns: i64, out: &mut Vec<u8>) {
        let span = match self.span {
            Some(span) if span.start_ns <= t_ns && t_ns < span.end_ns => Some(span),
            _ => {
                self.span = self.span_of(t_ns);
                self.span
            }
        };
        let nanos = t_ns.rem_euclid(NANOS_PER_SEC);
        match span {
            Some(span) => {
                let secs = span.start_secs_of_day + (t_ns - span.start_ns).div_euclid(NANOS_PER_SEC);
                write_parts(out, &span.prefix, secs, nanos, span.offset);
            }
            None => {
                // A day with a DST change: this instant on its own.
                let local = self
                    .tz
                    .from_utc_datetime(&DateTime::from_timestamp_nanos(t_ns).naive_utc());
                let mut prefix = [0u8; 11];
                write_date(&mut prefix, local.date_naive());
                let secs = i64::from(local.time().num_seconds_from_midnight());
                write_parts(out, &prefix, secs, nanos, local.offset().fix().local_minus_utc());
            }
        }
    }

    /// The local day of `t_ns` when its offset does not change during it.
    fn span_of(&self, t_ns: i64) -> Option<Span> {
        let local = self
            .tz
            .from_utc_datetime(&DateTime::from_timestamp_nanos(t_ns).naive_utc());
        let offset = local.offset().fix().local_minus_utc();
        let date = local.date_naive();
        let start_ns = day_start_ns(self.tz, date)?;
        let end_ns = day_start_ns(self.tz, date.succ_opt()?)?;
        if self.offset_at(start_ns) != offset || self.offset_at(end_ns - 1) != offset {
            return None;
        }
        let start_local = self
            .tz
            .from_utc_datetime(&DateTime::from_timestamp_nanos(start_ns).naive_utc());
        let mut prefix = [0u8; 11];
        write_date(&mut prefix, date);
        Some(Span {
            start_ns,
            end_ns,
            start_secs_of_day: i64::from(start_local.time().num_seconds_from_midnight()),
            offset,
            prefix,
        })
    }

    /// Appends the zone's offset from UTC at `t_ns` (`+02:00`): what tells the two 02:30 of an
    /// autumn night apart in a column of local times.
    pub fn write_offset(&self, t_ns: i64, out: &mut Vec<u8>) {
        write_offset(out, self.offset_at(t_ns));
    }

    fn offset_at(&self, t_ns: i64) -> i32 {
        let instant = DateTime::from_timestamp_nanos(t_ns);
        self.tz
            .offset_from_utc_datetime(&instant.naive_utc())
            .fix()
            .local_minus_utc()
    }
}

fn write_parts(out: &mut Vec<u8>, prefix: &[u8; 11], secs_of_day: i64, nanos: i64, offset: i32) {
    out.extend_from_slice(prefix);
    push2(out, (secs_of_day / 3600) as u32);
    out.push(b':');
    push2(out, ((secs_of_day / 60) % 60) as u32);
    out.push(b':');
    push2(out, (secs_of_day % 60) as u32);
    if nanos != 0 {
        let (value, digits) = if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        out.push(b'.');
        let mut buffer = itoa::Buffer::new();
        let text = buffer.format(value);
        out.extend(std::iter::repeat_n(b'0', digits - text.len()));
        out.extend_from_slice(text.as_bytes());
    }
    write_offset(out, offset);
}

fn write_offset(out: &mut Vec<u8>, offset: i32) {
    out.push(if offset < 0 { b'-' } else { b'+' });
    let minutes = offset.unsigned_abs() / 60;
    push2(out, minutes / 60);
    out.push(b':');
    push2(out, minutes % 60);
}

fn write_date(prefix: &mut [u8; 11], date: NaiveDate) {
    let year = date.year().clamp(0, 9999) as u32;
    let digits = [year / 1000, (year / 100) % 10, (year / 10) % 10, year % 10];
    for (slot, digit) in prefix.iter_mut().zip(digits) {
        *slot = b'0' + digit as u8;
    }
    prefix[4] = b'-';
    prefix[5] = b'0' + (date.month() / 10) as u8;
    prefix[6] = b'0' + (date.month() % 10) as u8;
    prefix[7] = b'-';
    prefix[8] = b'0' + (date.day() / 10) as u8;
    prefix[9] = b'0' + (date.day() % 10) as u8;
    prefix[10] = b'T';
}

fn push2(out: &mut Vec<u8>, value: u32) {
    out.push(b'0' + (value / 10 % 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

/// Appends a number in its shortest round-trip form: `21` for whole numbers, `0.1`, `1e300`.
pub fn write_number(value: f64, out: &mut Vec<u8>) {
    if !value.is_finite() {
        return; // no text form a spreadsheet reads back; the cell stays empty
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(tz: Tz, t_ns: i64) -> String {
        let mut out = Vec::new();
        TimeFormatter::new(tz).write(t_ns, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn writes_the_offset_in_force_across_dst() {
        let rome = chrono_tz::Europe::Rome;
        let s = 1_000_000_000i64;
        assert_eq!(text(rome, 1_774_746_000 * s), "2026-03-29T03:00:00+02:00");
        assert_eq!(text(rome, 1_774_745_999 * s), "2026-03-29T01:59:59+01:00");
        assert_eq!(text(chrono_tz::Asia::Kathmandu, 0), "1970-01-01T05:30:00+05:30");
        assert_eq!(
            text(Tz::UTC, 1_500_000_000_123_000_000),
            "2017-07-14T02:40:00.123+00:00"
        );
        assert_eq!(
            text(chrono_tz::America::New_York, 1_500_000_000_000_000_001),
            "2017-07-13T22:40:00.000000001-04:00"
        );
    }

    #[test]
    fn numbers_are_shortest_round_trip() {
        let render = |v: f64| {
            let mut out = Vec::new();
            write_number(v, &mut out);
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(render(21.0), "21");
        assert_eq!(render(0.1), "0.1");
        assert_eq!(render(-2.5e-8), "-2.5e-8");
        assert_eq!(render(1e300), "1e300");
        assert_eq!(render(f64::NAN), "");
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_chrono(
            tz in prop_oneof![Just(chrono_tz::Europe::Rome), Just(chrono_tz::Australia::Lord_Howe),
                Just(chrono_tz::America::Santiago), Just(chrono_tz::Asia::Kathmandu)],
            start in 1_735_689_600i64..1_798_761_600, steps in prop::collection::vec(0i64..20_000, 1..50),
        ) {
            let mut formatter = TimeFormatter::new(tz);
            let mut t = start * 1_000_000_000;
            for step in steps {
                t += step * 1_000_000_000 + step;
                let mut out = Vec::new();
                formatter.write(t, &mut out);
                let expected = tz.from_utc_datetime(&DateTime::from_timestamp_nanos(t).naive_utc())
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
                prop_assert_eq!(String::from_utf8(out).unwrap_or_default(), expected);
            }
        }

        #[test]
        fn numbers_read_back_to_the_same_value(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let mut out = Vec::new();
            write_number(v, &mut out);
            let parsed: f64 = String::from_utf8(out).unwrap_or_default().parse().unwrap_or(f64::NAN);
            prop_assert_eq!(parsed, v);
        }
    }
}
