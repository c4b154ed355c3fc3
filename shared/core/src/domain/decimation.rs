//! Decimation (spec section 5): points grouped in buckets aligned in the export's timezone and
//! reduced with one of `avg max min sum stddev variance`.
//!
//! Buckets: a local day starts at its first instant (midnight, or the end of a DST gap that
//! swallows midnight). `d w M y` are calendar buckets counted from a local epoch (1970-01-01,
//! Monday 1969-12-29, January 1970, 1970). `s m h` are elapsed intervals from each day's first
//! instant, the last one of a day cut short at the next day. Input is sorted oldest first, so a
//! bucket is complete when the first point of the next one arrives: memory is one bucket.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime};
use chrono_tz::Tz;

use super::duration::resolve_local;
use super::granularity::{Granularity, GranularityUnit};
use super::request::{Aggregate, Fill};
use super::series::Point;

/// A bucket `[start_ns, end_ns)` in Unix nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Bucket {
    fn contains(&self, t_ns: i64) -> bool {
        self.start_ns <= t_ns && t_ns < self.end_ns
    }
}

/// The first instant of a local date, in Unix nanoseconds.
pub fn day_start_ns(tz: Tz, date: NaiveDate) -> Option<i64> {
    resolve_local(tz, date.and_time(NaiveTime::MIN))?.timestamp_nanos_opt()
}

/// Finds the bucket of an instant; remembers the last one, so consecutive points of one bucket
/// cost a comparison rather than a timezone lookup.
#[derive(Clone, Debug)]
pub struct Bucketer {
    tz: Tz,
    granularity: Granularity,
    last: Option<Bucket>,
}

impl Bucketer {
    pub fn new(tz: Tz, granularity: Granularity) -> Self {
        Self {
            tz,
            granularity,
            last: None,
        }
    }

    /// The bucket holding `t_ns`; `None` only for instants outside chrono's range.
    pub fn bucket_of(&mut self, t_ns: i64) -> Option<Bucket> {
        if let Some(last) = self.last.filter(|b| b.contains(t_ns)) {
            return Some(last);
        }
        let bucket = self.compute(t_ns)?;
        self.last = Some(bucket);
        Some(bucket)
    }

    fn compute(&self, t_ns: i64) -> Option<Bucket> {
        let tz = self.tz;
        let date = DateTime::from_timestamp_nanos(t_ns)
            .with_timezone(&tz)
            .date_naive();
        let n = i64::from(self.granularity.count);
        let (first, last) = match self.granularity.unit {
            GranularityUnit::Second | GranularityUnit::Minute | GranularityUnit::Hour => {
                let unit_s = self.granularity.unit.elapsed_seconds().unwrap_or(1) as i64;
                let length = n * unit_s * 1_000_000_000;
                let day_start = day_start_ns(tz, date)?;
                let day_end = day_start_ns(tz, date.checked_add_days(Days::new(1))?)?;
                let start = day_start + (t_ns - day_start).div_euclid(length) * length;
                return Some(Bucket {
                    start_ns: start,
                    end_ns: (start + length).min(day_end),
                });
            }
            GranularityUnit::Day => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
                let index = (date - epoch).num_days().div_euclid(n);
                let first = add_days(epoch, index * n)?;
                (first, add_days(first, n)?)
            }
            GranularityUnit::Week => {
                let epoch = NaiveDate::from_ymd_opt(1969, 12, 29)?; // a Monday
                let index = (date - epoch).num_days().div_euclid(7).div_euclid(n);
                let first = add_days(epoch, index * n * 7)?;
                (first, add_days(first, n * 7)?)
            }
            GranularityUnit::Month => {
                let months = i64::from(date.year() - 1970) * 12 + i64::from(date.month0());
                let index = months.div_euclid(n) * n;
                let first = NaiveDate::from_ymd_opt(
                    1970 + i32::try_from(index.div_euclid(12)).ok()?,
                    u32::try_from(index.rem_euclid(12)).ok()? + 1,
                    1,
                )?;
                (
                    first,
                    first.checked_add_months(Months::new(u32::try_from(n).ok()?))?,
                )
            }
            GranularityUnit::Year => {
                let index = i64::from(date.year() - 1970).div_euclid(n) * n;
                let year = 1970 + i32::try_from(index).ok()?;
                let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
                (
                    first,
                    NaiveDate::from_ymd_opt(year + i32::try_from(n).ok()?, 1, 1)?,
                )
            }
        };
        Some(Bucket {
            start_ns: day_start_ns(tz, first)?,
            end_ns: day_start_ns(tz, last)?,
        })
    }
}

fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        date.checked_add_days(Days::new(days as u64))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

/// Running statistics of one bucket, numerically stable: for the spread, values are shifted by
/// the bucket's first value (exact for close values) before Welford's update; the sum (and so
/// the average) is compensated (Neumaier). Values near 1e9 that differ by 1e-3 keep their spread.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accumulator {
    count: u64,
    shift: f64,
    mean: f64,
    m2: f64,
    sum: f64,
    compensation: f64,
    min: f64,
    max: f64,
}

impl Accumulator {
    pub fn push(&mut self, x: f64) {
        if self.count == 0 {
            self.shift = x;
            self.min = x;
            self.max = x;
        }
        self.count += 1;
        let shifted = x - self.shift;
        let delta = shifted - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (shifted - self.mean);
        let total = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - total) + x
        } else {
            (x - total) + self.sum
        };
        self.sum = total;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The aggregate; `None` for an empty bucket, and for `stddev`/`variance` of one point
    /// (sample statistics divide by `n - 1`).
    pub fn value(&self, function: Aggregate) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let variance = || (self.count > 1).then(|| (self.m2 / (n - 1.0)).max(0.0));
        match function {
            // The compensated sum over n: correctly rounded in the common cases, as databases do.
            Aggregate::Avg => Some((self.sum + self.compensation) / n),
            Aggregate::Sum => Some(self.sum + self.compensation),
            Aggregate::Min => Some(self.min),
            Aggregate::Max => Some(self.max),
            Aggregate::Variance => variance(),
            Aggregate::Stddev => variance().map(f64::sqrt),
        }
    }
}

/// Every statistic of a bucket (`template: expanded`): empty for a bucket with no point, and
/// the spread for one of a single point.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Statistics {
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sum: Option<f64>,
    pub stddev: Option<f64>,
    pub variance: Option<f64>,
}

impl Statistics {
    /// The statistics as the bits of their floats, in the order of their fields (for a
    /// checkpoint, which must give them back exactly).
    pub fn to_bits(self) -> [Option<u64>; 6] {
        [self.avg, self.min, self.max, self.sum, self.stddev, self.variance].map(|v| v.map(f64::to_bits))
    }

    pub fn from_bits(bits: [Option<u64>; 6]) -> Self {
        let [avg, min, max, sum, stddev, variance] = bits.map(|v| v.map(f64::from_bits));
        Self {
            avg,
            min,
            max,
            sum,
            stddev,
            variance,
        }
    }
}

/// One output row of a decimated series.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketRow {
    /// The bucket's start: the row's `time`.
    pub start_ns: i64,
    pub count: u64,
    pub value: Option<f64>,
    /// Every statistic of the bucket.
    pub stats: Statistics,
    /// Of the bucket's first point.
    pub unit: String,
    pub publisher: String,
    pub protocol: String,
}

/// Writes the buckets of a window that a decimation leaves out, having no point
/// (`decimation.fill`): between the window's first bucket (the one holding its start; without
/// a start, the first with a point) and its last (the one holding its end's last instant),
/// each as a row of count 0 whose value is empty (`null`) or the last value written
/// (`previous`; empty before the first).
#[derive(Debug)]
pub struct Filler {
    bucketer: Bucketer,
    fill: Fill,
    from_ns: Option<i64>,
    to_ns: i64,
    state: FillState,
}

/// Where a [`Filler`] stands between invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FillState {
    /// Where the next bucket starts: the end of the last row written.
    pub next_ns: Option<i64>,
    /// The last value written, as its bits.
    pub last: Option<u64>,
    pub unit: String,
    pub publisher: String,
    pub protocol: String,
}

impl Filler {
    /// A filler of the window `[from_ns, to_ns)` going on from `state`.
    pub fn new(
        tz: Tz,
        granularity: Granularity,
        fill: Fill,
        (from_ns, to_ns): (Option<i64>, i64),
        state: FillState,
    ) -> Self {
        Self {
            bucketer: Bucketer::new(tz, granularity),
            fill,
            from_ns,
            to_ns,
            state,
        }
    }

    pub fn state(&self) -> &FillState {
        &self.state
    }

    /// Writes the empty buckets before `row` (the next row with points), then notes `row`.
    pub fn before<E>(
        &mut self,
        row: &BucketRow,
        write: &mut impl FnMut(&BucketRow) -> Result<(), E>,
    ) -> Result<(), E> {
        self.until(row.start_ns, write)?;
        self.state.next_ns = self.bucketer.bucket_of(row.start_ns).map(|b| b.end_ns);
        self.state.last = row.value.map(f64::to_bits);
        if self.state.unit != row.unit
            || self.state.publisher != row.publisher
            || self.state.protocol != row.protocol
        {
            self.state.unit.clone_from(&row.unit);
            self.state.publisher.clone_from(&row.publisher);
            self.state.protocol.clone_from(&row.protocol);
        }
        Ok(())
    }

    /// Writes the empty buckets after the last row, to the window's end.
    pub fn finish<E>(&mut self, write: &mut impl FnMut(&BucketRow) -> Result<(), E>) -> Result<(), E> {
        self.until(self.to_ns, write)
    }

    /// Writes the empty buckets that start before `limit_ns`.
    pub fn until<E>(
        &mut self,
        limit_ns: i64,
        write: &mut impl FnMut(&BucketRow) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.fill == Fill::None {
            return Ok(());
        }
        let first = match (self.state.next_ns, self.from_ns) {
            (Some(next), _) => Some(next),
            (None, Some(from)) => self.bucketer.bucket_of(from).map(|b| b.start_ns),
            (None, None) => None,
        };
        let Some(mut at) = first else { return Ok(()) };
        let mut row = BucketRow {
            start_ns: 0,
            count: 0,
            value: None,
            stats: Statistics::default(),
            unit: self.state.unit.clone(),
            publisher: self.state.publisher.clone(),
            protocol: self.state.protocol.clone(),
        };
        while at < limit_ns {
            let Some(bucket) = self.bucketer.bucket_of(at) else {
                break;
            };
            row.start_ns = bucket.start_ns;
            row.value = match self.fill {
                Fill::Previous => self.state.last.map(f64::from_bits),
                Fill::Null | Fill::None => None,
            };
            write(&row)?;
            at = bucket.end_ns;
            self.state.next_ns = Some(at);
        }
        Ok(())
    }
}

/// A decimator's state between invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecimatorState {
    pub open: Option<OpenBucket>,
    pub skipped: u64,
}

/// The bucket a decimator had open: its running statistics as the bits of their floats, so
/// that they come back exactly (infinities included).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBucket {
    pub start_ns: i64,
    pub end_ns: i64,
    pub count: u64,
    pub floats: [u64; 7],
    pub unit: String,
    pub publisher: String,
    pub protocol: String,
}

/// Streams sorted points into finished bucket rows.
#[derive(Debug)]
pub struct Decimator {
    bucketer: Bucketer,
    function: Aggregate,
    current: Option<(Bucket, Accumulator, BucketRow)>,
    /// Points with neither a number nor a boolean: skipped, reported as a warning.
    pub skipped: u64,
}

impl Decimator {
    pub fn new(tz: Tz, granularity: Granularity, function: Aggregate) -> Self {
        Self {
            bucketer: Bucketer::new(tz, granularity),
            function,
            current: None,
            skipped: 0,
        }
    }

    /// Adds a point (points must come oldest first); returns the previous bucket's row when
    /// this point starts a new bucket.
    pub fn push(&mut self, point: &Point<'_>) -> Option<BucketRow> {
        let Some(x) = point.numeric() else {
            self.skipped += 1;
            return None;
        };
        let bucket = self.bucketer.bucket_of(point.time_ns)?;
        if let Some((current, accumulator, _)) = &mut self.current {
            if *current == bucket {
                accumulator.push(x);
                return None;
            }
        }
        let mut accumulator = Accumulator::default();
        accumulator.push(x);
        let row = BucketRow {
            start_ns: bucket.start_ns,
            count: 0,
            value: None,
            stats: Statistics::default(),
            unit: point.unit.to_string(),
            publisher: point.publisher.to_string(),
            protocol: point.protocol.to_string(),
        };
        let finished = self.current.replace((bucket, accumulator, row));
        finished.map(|(_, accumulator, row)| self.finish_row(accumulator, row))
    }

    /// Where the bucket open now starts, if one is.
    pub fn open_start(&self) -> Option<i64> {
        self.current.as_ref().map(|(bucket, _, _)| bucket.start_ns)
    }

    /// The last bucket's row, if any.
    pub fn finish(&mut self) -> Option<BucketRow> {
        let (_, accumulator, row) = self.current.take()?;
        Some(self.finish_row(accumulator, row))
    }

    /// What must survive a pause for the series to go on exactly: the open bucket and the count
    /// of skipped points.
    pub fn state(&self) -> DecimatorState {
        DecimatorState {
            open: self
                .current
                .as_ref()
                .map(|(bucket, accumulator, row)| OpenBucket {
                    start_ns: bucket.start_ns,
                    end_ns: bucket.end_ns,
                    count: accumulator.count,
                    floats: [
                        accumulator.shift,
                        accumulator.mean,
                        accumulator.m2,
                        accumulator.sum,
                        accumulator.compensation,
                        accumulator.min,
                        accumulator.max,
                    ]
                    .map(f64::to_bits),
                    unit: row.unit.clone(),
                    publisher: row.publisher.clone(),
                    protocol: row.protocol.clone(),
                }),
            skipped: self.skipped,
        }
    }

    /// A decimator that goes on from `state`, as if it had never stopped.
    pub fn restore(tz: Tz, granularity: Granularity, function: Aggregate, state: &DecimatorState) -> Self {
        let mut decimator = Self::new(tz, granularity, function);
        decimator.skipped = state.skipped;
        decimator.current = state.open.as_ref().map(|open| {
            let [shift, mean, m2, sum, compensation, min, max] = open.floats.map(f64::from_bits);
            let accumulator = Accumulator {
                count: open.count,
                shift,
                mean,
                m2,
                sum,
                compensation,
                min,
                max,
            };
            let bucket = Bucket {
                start_ns: open.start_ns,
                end_ns: open.end_ns,
            };
            let row = BucketRow {
                start_ns: open.start_ns,
                count: 0,
                value: None,
                stats: Statistics::default(),
                unit: open.unit.clone(),
                publisher: open.publisher.clone(),
                protocol: open.protocol.clone(),
            };
            (bucket, accumulator, row)
        });
        decimator
    }

    fn finish_row(&self, accumulator: Accumulator, row: BucketRow) -> BucketRow {
        BucketRow {
            count: accumulator.count(),
            value: accumulator.value(self.function),
            stats: Statistics {
                avg: accumulator.value(Aggregate::Avg),
                min: accumulator.value(Aggregate::Min),
                max: accumulator.value(Aggregate::Max),
                sum: accumulator.value(Aggregate::Sum),
                stddev: accumulator.value(Aggregate::Stddev),
                variance: accumulator.value(Aggregate::Variance),
            },
            ..row
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, TimeZone, Utc};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_filler_stopped_and_restored_from_its_state_writes_the_same_rows() {
        let g: Granularity = "1h".parse().expect("a granularity");
        let (from, to) = (0i64, 10 * 3_600_000_000_000);
        let row = |hour: i64, value: f64| BucketRow {
            start_ns: hour * 3_600_000_000_000,
            count: 1,
            value: Some(value),
            stats: Statistics::default(),
            unit: "u".into(),
            publisher: "p".into(),
            protocol: "m".into(),
        };
        let rows = [row(2, 1.5), row(5, 2.5)];
        let run = |stop_after: usize| {
            let mut out: Vec<(i64, Option<f64>, u64)> = Vec::new();
            let mut write = |r: &BucketRow| -> Result<(), ()> {
                out.push((r.start_ns / 3_600_000_000_000, r.value, r.count));
                Ok(())
            };
            let mut filler = Filler::new(Tz::UTC, g, Fill::Previous, (Some(from), to), FillState::default());
            for (i, r) in rows.iter().enumerate() {
                if i == stop_after {
                    let state = filler.state().clone();
                    filler = Filler::new(Tz::UTC, g, Fill::Previous, (Some(from), to), state);
                }
                filler.before(r, &mut write).expect("written");
                write(r).expect("written");
            }
            filler.finish(&mut write).expect("written");
            out
        };
        let whole = run(usize::MAX);
        assert_eq!(
            whole,
            [
                (0, None, 0),
                (1, None, 0),
                (2, Some(1.5), 1),
                (3, Some(1.5), 0),
                (4, Some(1.5), 0),
                (5, Some(2.5), 1),
                (6, Some(2.5), 0),
                (7, Some(2.5), 0),
                (8, Some(2.5), 0),
                (9, Some(2.5), 0)
            ]
        );
        assert_eq!(run(1), whole);
    }

    /// The reference bucket start: walk the local calendar one obvious step at a time.
    fn reference_start(tz: Tz, g: Granularity, t_ns: i64) -> i64 {
        let local: NaiveDateTime = DateTime::from_timestamp_nanos(t_ns)
            .with_timezone(&tz)
            .naive_local();
        let date = local.date();
        let first_instant = |d: NaiveDate| -> i64 {
            // Scan forward minute by minute from local midnight to the first time that exists.
            let mut time = d.and_time(NaiveTime::MIN);
            loop {
                if let Some(t) = tz.from_local_datetime(&time).earliest() {
                    return t.timestamp_nanos_opt().expect("in range");
                }
                time += chrono::TimeDelta::minutes(1);
            }
        };
        let n = i64::from(g.count);
        match g.unit {
            GranularityUnit::Second | GranularityUnit::Minute | GranularityUnit::Hour => {
                let length = n * g.unit.elapsed_seconds().expect("elapsed") as i64 * 1_000_000_000;
                let mut start = first_instant(date);
                while start + length <= t_ns {
                    start += length;
                }
                start
            }
            GranularityUnit::Day => {
                let mut d = date;
                while (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() % n != 0 {
                    d = d.pred_opt().expect("in range");
                }
                first_instant(d)
            }
            GranularityUnit::Week => {
                let mut d = date;
                let monday = NaiveDate::from_ymd_opt(1969, 12, 29).expect("epoch");
                while (d - monday).num_days() % (7 * n) != 0 {
                    d = d.pred_opt().expect("in range");
                }
                first_instant(d)
            }
            GranularityUnit::Month => {
                let mut d = date.with_day(1).expect("first");
                while ((d.year() - 1970) as i64 * 12 + d.month0() as i64) % n != 0 {
                    d = (d - chrono::TimeDelta::days(1)).with_day(1).expect("first");
                }
                first_instant(d)
            }
            GranularityUnit::Year => {
                let mut year = date.year();
                while (year - 1970) as i64 % n != 0 {
                    year -= 1;
                }
                first_instant(NaiveDate::from_ymd_opt(year, 1, 1).expect("date"))
            }
        }
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(chrono_tz::Europe::Rome),
            Just(chrono_tz::America::New_York),
            Just(chrono_tz::Australia::Lord_Howe),
            Just(chrono_tz::Asia::Kathmandu),
            Just(chrono_tz::America::Santiago),
        ]
    }

    fn granularities() -> impl Strategy<Value = Granularity> {
        prop_oneof![
            Just("1s"),
            Just("45s"),
            Just("1m"),
            Just("7m"),
            Just("15m"),
            Just("1h"),
            Just("5h"),
            Just("24h"),
            Just("1d"),
            Just("2d"),
            Just("1w"),
            Just("2w"),
            Just("1M"),
            Just("3M"),
            Just("1y"),
            Just("2y"),
        ]
        .prop_map(|g| g.parse().expect("granularity"))
    }

    /// Instants spread over the DST days of 2026 in the zones above.
    fn dst_instants() -> impl Strategy<Value = i64> {
        let days = [
            (2026, 3, 8),
            (2026, 3, 29),
            (2026, 4, 5),
            (2026, 9, 6),
            (2026, 10, 4),
            (2026, 10, 25),
            (2026, 11, 1),
            (2026, 1, 1),
            (2026, 6, 15),
        ];
        (0..days.len(), -36i64 * 3600..36 * 3600, 0i64..1_000_000_000).prop_map(move |(i, offset, nanos)| {
            let (y, m, d) = days[i];
            let noon = Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().expect("date");
            noon.timestamp_nanos_opt().expect("in range") + offset * 1_000_000_000 + nanos
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn buckets_start_where_the_calendar_reference_says(tz in zones(), g in granularities(), t in dst_instants()) {
            let bucket = Bucketer::new(tz, g).bucket_of(t).expect("in range");
            prop_assert_eq!(bucket.start_ns, reference_start(tz, g, t));
            prop_assert!(bucket.contains(t));
        }
    }

    fn reference_aggregate(values: &[f64], f: Aggregate) -> Option<f64> {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance =
            || (values.len() > 1).then(|| values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0));
        match f {
            Aggregate::Avg => Some(mean),
            Aggregate::Sum => Some(values.iter().sum()),
            Aggregate::Min => values.iter().copied().reduce(f64::min),
            Aggregate::Max => values.iter().copied().reduce(f64::max),
            Aggregate::Variance => variance(),
            Aggregate::Stddev => variance().map(f64::sqrt),
        }
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            (None, None) => true,
            _ => false,
        }
    }

    fn functions() -> impl Strategy<Value = Aggregate> {
        prop::sample::select(Aggregate::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn decimation_equals_sort_group_and_two_pass_formulas(
            tz in zones(), g in granularities(), f in functions(),
            mut points in prop::collection::vec((dst_instants(), -1e6f64..1e6, 0u8..10), 1..300),
        ) {
            points.sort_by_key(|p| p.0);
            // The reference: group by the reference bucket start, then reduce each group.
            let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            let mut skipped = 0;
            let mut decimator = Decimator::new(tz, g, f);
            let mut rows = Vec::new();
            for (t, v, kind) in &points {
                let point = match kind {
                    0 => Point { time_ns: *t, ..Point::default() },
                    1 => Point { time_ns: *t, bool_value: Some(*v > 0.0), ..Point::default() },
                    _ => Point { time_ns: *t, value: Some(*v), ..Point::default() },
                };
                match point.numeric() {
                    Some(x) => groups.entry(reference_start(tz, g, *t)).or_default().push(x),
                    None => skipped += 1,
                }
                rows.extend(decimator.push(&point));
            }
            rows.extend(decimator.finish());
            prop_assert_eq!(decimator.skipped, skipped);
            prop_assert_eq!(rows.len(), groups.len());
            for (row, (start, values)) in rows.iter().zip(&groups) {
                prop_assert_eq!(row.start_ns, *start);
                prop_assert_eq!(row.count, values.len() as u64);
                prop_assert!(close(row.value, reference_aggregate(values, f)), "{:?} vs {:?}", row.value, reference_aggregate(values, f));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// Paused anywhere (its state through JSON, as a checkpoint keeps it) and restored, a
        /// decimator gives exactly the rows of one that never stopped, skipped count included.
        #[test]
        fn a_decimator_restored_from_its_state_goes_on_exactly(
            tz in zones(), g in granularities(), f in functions(),
            mut points in prop::collection::vec((dst_instants(), -1e6f64..1e6, 0u8..10), 1..200),
            pauses in prop::collection::vec(any::<bool>(), 200),
        ) {
            points.sort_by_key(|p| p.0);
            let point = |(t, v, kind): &(i64, f64, u8)| match kind {
                0 => Point { time_ns: *t, ..Point::default() },
                1 => Point { time_ns: *t, bool_value: Some(*v > 0.0), ..Point::default() },
                _ => Point { time_ns: *t, value: Some(*v), ..Point::default() },
            };
            let mut whole = Decimator::new(tz, g, f);
            let mut expected: Vec<BucketRow> = points.iter().filter_map(|p| whole.push(&point(p))).collect();
            expected.extend(whole.finish());
            let mut paused = Decimator::new(tz, g, f);
            let mut rows = Vec::new();
            for (p, pause) in points.iter().zip(&pauses) {
                rows.extend(paused.push(&point(p)));
                if *pause {
                    let text = serde_json::to_string(&paused.state()).expect("serialises");
                    let state: DecimatorState = serde_json::from_str(&text).expect("parses");
                    paused = Decimator::restore(tz, g, f, &state);
                }
            }
            rows.extend(paused.finish());
            prop_assert_eq!(paused.skipped, whole.skipped);
            prop_assert_eq!(rows.len(), expected.len());
            for (got, want) in rows.iter().zip(&expected) {
                prop_assert_eq!(got.start_ns, want.start_ns);
                prop_assert_eq!(got.count, want.count);
                prop_assert_eq!(got.value.map(f64::to_bits), want.value.map(f64::to_bits));
            }
        }
    }

    #[test]
    fn stddev_of_values_near_1e9_differing_by_a_thousandth_is_right() {
        let values: Vec<f64> = (0..1000).map(|k| 1e9 + f64::from(k) * 1e-3).collect();
        let mut accumulator = Accumulator::default();
        values.iter().for_each(|v| accumulator.push(*v));
        // Reference on the exactly representable offsets from 1e9 (Sterbenz: exact).
        let offsets: Vec<f64> = values.iter().map(|v| v - 1e9).collect();
        let expected = reference_aggregate(&offsets, Aggregate::Stddev).expect("n > 1");
        let got = accumulator.value(Aggregate::Stddev).expect("n > 1");
        assert!((got - expected).abs() <= 1e-9 * expected, "{got} vs {expected}");
        assert!((expected - 0.288_819_0).abs() < 1e-6, "{expected}");
        assert_eq!(
            accumulator
                .value(Aggregate::Variance)
                .map(|v| (v - expected * expected).abs() < 1e-12),
            Some(true)
        );
    }

    #[test]
    fn one_point_has_no_sample_deviation() {
        let mut accumulator = Accumulator::default();
        accumulator.push(3.5);
        assert_eq!(accumulator.value(Aggregate::Stddev), None);
        assert_eq!(accumulator.value(Aggregate::Variance), None);
        assert_eq!(accumulator.value(Aggregate::Avg), Some(3.5));
    }

    #[test]
    fn the_repeated_autumn_hour_gets_buckets_of_its_own() {
        let rome = chrono_tz::Europe::Rome;
        let g: Granularity = "1h".parse().expect("1h");
        let mut bucketer = Bucketer::new(rome, g);
        // 2026-10-25: 02:30 CEST is 00:30Z, 02:30 CET is 01:30Z.
        let first = Utc
            .with_ymd_and_hms(2026, 10, 25, 0, 30, 0)
            .single()
            .expect("date");
        let second = Utc
            .with_ymd_and_hms(2026, 10, 25, 1, 30, 0)
            .single()
            .expect("date");
        let a = bucketer
            .bucket_of(first.timestamp_nanos_opt().expect("ns"))
            .expect("bucket");
        let b = bucketer
            .bucket_of(second.timestamp_nanos_opt().expect("ns"))
            .expect("bucket");
        assert_ne!(a, b);
        assert_eq!(b.start_ns - a.start_ns, 3_600_000_000_000);
    }

    #[test]
    fn santiago_days_start_at_the_end_of_the_midnight_gap() {
        let santiago = chrono_tz::America::Santiago;
        // 2026-09-06: clocks jump from 00:00 to 01:00 in Chile.
        let date = NaiveDate::from_ymd_opt(2026, 9, 6).expect("date");
        let start = day_start_ns(santiago, date).expect("start");
        let local = DateTime::from_timestamp_nanos(start).with_timezone(&santiago);
        assert_eq!(local.format("%H:%M").to_string(), "01:00");
    }
}
