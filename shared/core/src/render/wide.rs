//! A wide file: several targets of one item read as one merged stream (oldest first, a point's
//! `name` saying whose it is) and written as one row per time (raw) or bucket (decimated), with
//! a value (and count) column per target, joined on time. A target with no point at a time (or
//! no bucket) leaves its cells empty (its count 0). Memory: one pending row raw; decimated, the
//! buckets finished by some targets but not yet by all (a bucket is final for every target once
//! the stream has passed its end). Deltas and fills apply to each target on its own. It pauses
//! at the merged stream's boundaries, its state (each target's decimator, filler and last value,
//! the unjoined buckets) kept in the checkpoint.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono_tz::Tz;

use crate::domain::decimation::{BucketRow, Bucketer, Decimator, Filler, Statistics};
use crate::domain::files::ChartPoints;
use crate::domain::granularity::Granularity;
use crate::domain::request::{Aggregate, Column, ColumnId, Fill};
use crate::domain::series::Point;
use crate::ports::{Cause, SliceSink};

use super::series::{end, BucketDetail, Paused, Rendered, SeriesSink, WideState};
use super::{Cell, ItemContext, RenderError, Row, RowWriter};

/// A column of a wide file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WideColumn {
    Time,
    UtcOffset,
    /// The value of the target at this index.
    Value(usize),
    /// The count of the target's bucket.
    Count(usize),
    /// A column a wide file has no place for (refused when the request is checked).
    Empty,
}

/// The columns of a wide file and their headers: `value` and `count` become one column per
/// target, headed by the target's label (else its name); `count` ones as `<count label>
/// (<target>)`.
pub fn wide_columns(columns: &[Column], targets: &[(&str, Option<&str>)]) -> (Vec<WideColumn>, Vec<String>) {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    for column in columns {
        match column.id {
            ColumnId::Time => {
                out.push(WideColumn::Time);
                labels.push(column.label.clone());
            }
            ColumnId::UtcOffset => {
                out.push(WideColumn::UtcOffset);
                labels.push(column.label.clone());
            }
            ColumnId::Value => {
                for (k, (name, label)) in targets.iter().enumerate() {
                    out.push(WideColumn::Value(k));
                    labels.push(label.unwrap_or(name).to_owned());
                }
            }
            ColumnId::Count => {
                for (k, (name, label)) in targets.iter().enumerate() {
                    out.push(WideColumn::Count(k));
                    labels.push(format!("{} ({})", column.label, label.unwrap_or(name)));
                }
            }
            _ => {
                out.push(WideColumn::Empty);
                labels.push(column.label.clone());
            }
        }
    }
    (out, labels)
}

/// The finished buckets not yet written: by start, the row of each target that has one.
type Buckets = BTreeMap<i64, Vec<Option<BucketRow>>>;

/// A wide item written long (`outputFormat: long`, or `template: expanded`): a row per time
/// and target, with the columns of one series, each target's row told by its own context
/// (its label in `name`).
#[derive(Clone, Debug)]
pub struct Long {
    pub columns: Vec<ColumnId>,
    /// Each target's context, in the order of the item's targets.
    pub contexts: Vec<ItemContext>,
}

/// A raw value as written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RawValue {
    Number(f64),
    Bool(bool),
}

/// One target's decimation: its decimator and its filler.
#[derive(Debug)]
struct Decimating {
    decimator: Decimator,
    filler: Option<Filler>,
}

/// How a wide item is decimated.
#[derive(Clone, Copy, Debug)]
pub struct WideDecimation {
    pub tz: Tz,
    pub ds: Granularity,
    pub dsf: Aggregate,
    pub fill: Fill,
    /// The window, in Unix nanoseconds (for filling).
    pub window: (Option<i64>, i64),
}

/// Renders a wide item's merged stream into a [`RowWriter`].
pub struct WideRenderer {
    writer: Box<dyn RowWriter + Send>,
    columns: Vec<WideColumn>,
    names: Vec<String>,
    /// With `transform: delta`: each target's last value (`None` before its first).
    delta: Option<Vec<Option<f64>>>,
    /// Raw: the row being gathered (its time, a value per target).
    pending: Option<(i64, Vec<Option<RawValue>>)>,
    /// Decimated: each target's decimation, the buckets' starts, the finished buckets not yet
    /// written (start, then a (value, count) per target).
    decimating: Vec<Decimating>,
    bucketer: Option<Bucketer>,
    buckets: Buckets,
    /// The start of the bucket the stream is in.
    current: Option<i64>,
    /// Decimated: each target's buckets written, thinned, for the email's chart.
    charts: Vec<ChartPoints>,
    /// Written long: a row per time and target.
    long: Option<Long>,
    /// The charts keep each bucket's lowest and highest value (a decimation whose statistic
    /// lies between them: avg, min, max).
    band: bool,
}

/// Notes target `target`'s row of a bucket among the buckets to write.
fn note(buckets: &mut Buckets, targets: usize, target: usize, row: &BucketRow) {
    buckets.entry(row.start_ns).or_insert_with(|| vec![None; targets])[target] = Some(row.clone());
}

impl WideRenderer {
    /// A renderer of the targets `names` (as the points name them), in the order of their
    /// columns; going on from `resumed` when an earlier invocation paused it.
    pub fn new(
        writer: Box<dyn RowWriter + Send>,
        columns: Vec<WideColumn>,
        names: Vec<String>,
        (decimation, delta): (Option<WideDecimation>, bool),
        resumed: Option<&WideState>,
    ) -> Self {
        let state = resumed.cloned().unwrap_or_default();
        let names_len = names.len();
        let decimating = match decimation {
            None => Vec::new(),
            Some(d) => (0..names.len())
                .map(|k| Decimating {
                    decimator: match state.decimators.get(k) {
                        Some(open) => Decimator::restore(d.tz, d.ds, d.dsf, open),
                        None => Decimator::new(d.tz, d.ds, d.dsf),
                    },
                    filler: (d.fill != Fill::None).then(|| {
                        let fill = state.fills.get(k).cloned().flatten().unwrap_or_default();
                        Filler::new(d.tz, d.ds, d.fill, d.window, fill)
                    }),
                })
                .collect(),
        };
        let previous = |k: usize| state.previous.get(k).copied().flatten().map(f64::from_bits);
        Self {
            writer,
            columns,
            delta: delta.then(|| (0..names.len()).map(previous).collect()),
            names,
            pending: None,
            decimating,
            bucketer: decimation.map(|d| Bucketer::new(d.tz, d.ds)),
            buckets: state
                .buckets
                .iter()
                .enumerate()
                .map(|(at, (start, values))| {
                    let values = values
                        .iter()
                        .enumerate()
                        .map(|(k, v)| {
                            v.map(|(value, count)| {
                                let detail = state
                                    .details
                                    .get(at)
                                    .and_then(|d| d.get(k))
                                    .cloned()
                                    .flatten()
                                    .unwrap_or_default();
                                BucketRow {
                                    start_ns: *start,
                                    count,
                                    value: value.map(f64::from_bits),
                                    stats: Statistics::from_bits(detail.stats),
                                    unit: detail.unit,
                                    publisher: detail.publisher,
                                    protocol: detail.protocol,
                                }
                            })
                        })
                        .collect();
                    (*start, values)
                })
                .collect(),
            charts: match decimation {
                Some(_) => (0..names_len)
                    .map(|k| state.charts.get(k).cloned().unwrap_or_default())
                    .collect(),
                None => Vec::new(),
            },
            current: state.current,
            long: None,
            band: false,
        }
    }

    /// The charts keep each bucket's lowest and highest value beside its statistic.
    pub fn banded(mut self) -> Self {
        self.band = true;
        self
    }

    /// Keeps a raw item's values for its chart too (a report's), going on from `state`.
    pub fn charting_raw(mut self, state: Option<&WideState>) -> Self {
        self.charts = (0..self.names.len())
            .map(|k| state.and_then(|s| s.charts.get(k).cloned()).unwrap_or_default())
            .collect();
        self
    }

    /// Writes the item long: a row per time and target, in `long`'s columns.
    pub fn long(mut self, long: Long) -> Self {
        self.long = Some(long);
        self
    }

    /// What must survive a pause for the file to go on exactly.
    fn state(&self) -> WideState {
        WideState {
            decimators: self.decimating.iter().map(|d| d.decimator.state()).collect(),
            fills: self
                .decimating
                .iter()
                .map(|d| d.filler.as_ref().map(|f| f.state().clone()))
                .collect(),
            buckets: self
                .buckets
                .iter()
                .map(|(start, values)| {
                    let values = values
                        .iter()
                        .map(|v| v.as_ref().map(|row| (row.value.map(f64::to_bits), row.count)))
                        .collect();
                    (*start, values)
                })
                .collect(),
            details: self
                .buckets
                .values()
                .map(|values| {
                    values
                        .iter()
                        .map(|v| {
                            v.as_ref().map(|row| BucketDetail {
                                stats: row.stats.to_bits(),
                                unit: row.unit.clone(),
                                publisher: row.publisher.clone(),
                                protocol: row.protocol.clone(),
                            })
                        })
                        .collect()
                })
                .collect(),
            current: self.current,
            charts: self.charts.clone(),
            previous: self
                .delta
                .as_ref()
                .map(|d| d.iter().map(|v| v.map(f64::to_bits)).collect())
                .unwrap_or_default(),
        }
    }

    /// The stream has reached the bucket starting at `start` (or its end, `i64::MAX`): every
    /// bucket before it is final for every target; they are closed (filled where asked) and
    /// their joined rows written.
    fn reach(&mut self, start: i64) -> Result<(), RenderError> {
        let targets = self.names.len();
        for (target, decimating) in self.decimating.iter_mut().enumerate() {
            let buckets = &mut self.buckets;
            let mut write = |row: &BucketRow| -> Result<(), RenderError> {
                note(buckets, targets, target, row);
                Ok(())
            };
            if decimating.decimator.open_start().is_some_and(|open| open < start) {
                if let Some(row) = decimating.decimator.finish() {
                    if let Some(filler) = &mut decimating.filler {
                        filler.before(&row, &mut write)?;
                    }
                    write(&row)?;
                }
            }
            if let Some(filler) = &mut decimating.filler {
                if start == i64::MAX {
                    filler.finish(&mut write)?;
                } else {
                    filler.until(start, &mut write)?;
                }
            }
        }
        self.write_buckets_before(start)
    }

    /// Adds a point of the merged stream (oldest first).
    pub fn push(&mut self, point: &Point<'_>) -> Result<(), RenderError> {
        let Some(target) = self.names.iter().position(|n| *n == point.name) else {
            // Not one of the item's targets: the reader answered for another name.
            return Ok(());
        };
        let mut value = point.value;
        if let (Some(previous), Some(v)) = (&mut self.delta, point.value) {
            value = previous[target].map(|p| v - p);
            previous[target] = Some(v);
            if value.is_none() && !self.decimating.is_empty() {
                return Ok(()); // the first point of a target has no delta: nothing to count
            }
        }
        if self.decimating.is_empty() {
            if let Some(long) = &self.long {
                // A copy only when a delta changed the value.
                let changed;
                let point = if value == point.value {
                    point
                } else {
                    changed = Point {
                        value,
                        ..point.clone()
                    };
                    &changed
                };
                let row = Row::Raw(point);
                let context = &long.contexts[target];
                let mut cells = long.columns.iter().map(|c| row.cell(*c, context));
                return self.writer.write_row(&mut cells);
            }
            return self.push_raw(target, point.time_ns, value, point);
        }
        // Every bucket before this point's is final for every target.
        let start = self
            .bucketer
            .as_mut()
            .and_then(|b| b.bucket_of(point.time_ns))
            .map(|b| b.start_ns);
        if let Some(start) = start.filter(|s| self.current.is_none_or(|c| *s > c)) {
            self.reach(start)?;
            self.current = Some(start);
        }
        // A copy only when a delta changed the value (the merged points own their text).
        let changed;
        let point = if value == point.value {
            point
        } else {
            changed = Point {
                value,
                ..point.clone()
            };
            &changed
        };
        let targets = self.names.len();
        let decimating = &mut self.decimating[target];
        if let Some(row) = decimating.decimator.push(point) {
            let buckets = &mut self.buckets;
            let mut write = |row: &BucketRow| -> Result<(), RenderError> {
                note(buckets, targets, target, row);
                Ok(())
            };
            if let Some(filler) = &mut decimating.filler {
                filler.before(&row, &mut write)?;
            }
            write(&row)?;
        }
        Ok(())
    }

    fn push_raw(
        &mut self,
        target: usize,
        time_ns: i64,
        value: Option<f64>,
        point: &Point<'_>,
    ) -> Result<(), RenderError> {
        if self.pending.as_ref().is_some_and(|(t, _)| *t != time_ns) {
            self.write_pending()?;
        }
        let count = self.names.len();
        let (_, values) = self.pending.get_or_insert_with(|| (time_ns, vec![None; count]));
        // Two points of one target at one time: the later one read is written.
        values[target] = match (value, point.bool_value) {
            (Some(v), _) => Some(RawValue::Number(v)),
            (None, Some(b)) if point.value.is_none() => Some(RawValue::Bool(b)),
            _ => None,
        };
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), RenderError> {
        let Some((time, values)) = self.pending.take() else {
            return Ok(());
        };
        for (chart, value) in self.charts.iter_mut().zip(&values) {
            if let Some(RawValue::Number(v)) = value {
                chart.push(time, *v);
            }
        }
        let mut cells = self.columns.iter().map(|c| match *c {
            WideColumn::Time => Cell::Time(time),
            WideColumn::UtcOffset => Cell::Offset(time),
            WideColumn::Value(k) => match values.get(k).copied().flatten() {
                Some(RawValue::Number(v)) => Cell::Number(v),
                Some(RawValue::Bool(b)) => Cell::Bool(b),
                None => Cell::Empty,
            },
            WideColumn::Count(_) | WideColumn::Empty => Cell::Empty,
        });
        self.writer.write_row(&mut cells)
    }

    /// Writes the joined rows of the buckets that start before `start`.
    fn write_buckets_before(&mut self, start: i64) -> Result<(), RenderError> {
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= start {
                break;
            }
            let (at, values) = entry.remove_entry();
            for (chart, row) in self.charts.iter_mut().zip(&values) {
                // A bucket a fill added (no point in it) is not charted nor counted.
                if let Some(row) = row.as_ref().filter(|row| row.count > 0) {
                    if let Some(value) = row.value {
                        let band = if self.band {
                            row.stats.min.zip(row.stats.max)
                        } else {
                            None
                        };
                        chart.push_with_band(at, value, band);
                    }
                }
            }
            if let Some(long) = &self.long {
                for (row, context) in values.iter().zip(&long.contexts) {
                    if let Some(row) = row {
                        let row = Row::Bucket(row);
                        let mut cells = long.columns.iter().map(|c| row.cell(*c, context));
                        self.writer.write_row(&mut cells)?;
                    }
                }
                continue;
            }
            let of = |k: usize| values.get(k).and_then(Option::as_ref);
            let mut cells = self.columns.iter().map(|c| match *c {
                WideColumn::Time => Cell::Time(at),
                WideColumn::UtcOffset => Cell::Offset(at),
                WideColumn::Value(k) => of(k).and_then(|row| row.value).map_or(Cell::Empty, Cell::Number),
                WideColumn::Count(k) => Cell::Count(of(k).map_or(0, |row| row.count)),
                WideColumn::Empty => Cell::Empty,
            });
            self.writer.write_row(&mut cells)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SliceSink for WideRenderer {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        for point in points {
            self.push(point).map_err(|e| Box::new(e) as Cause)?;
        }
        Ok(())
    }
}

impl SeriesSink for WideRenderer {
    fn rows(&self) -> u64 {
        self.writer.rows()
    }

    fn pausable(&self) -> bool {
        self.writer.pausable()
    }

    /// Stops at a boundary of the merged stream: the row being gathered is whole there, so it
    /// is written; the rest goes into the state.
    fn pause(mut self: Box<Self>) -> Result<Paused, RenderError> {
        self.write_pending()?;
        let paused = Paused {
            rows: self.writer.rows(),
            cut: self.writer.cut(),
            wide: Some(self.state()),
            ..Paused::default()
        };
        self.writer.pause()?;
        Ok(paused)
    }

    fn finish(mut self: Box<Self>, file: &mut std::fs::File) -> Result<Rendered, RenderError> {
        self.write_pending()?;
        self.reach(i64::MAX)?;
        let skipped = self.decimating.iter().map(|d| d.decimator.skipped).sum();
        let charts = (!self.charts.is_empty()).then(|| self.charts.clone());
        end(self.writer, file, skipped, charts)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[derive(Default)]
    struct Rows(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl RowWriter for Rows {
        fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
            let row: Vec<String> = cells
                .map(|c| match c {
                    Cell::Time(t) => (t / 1_000_000_000).to_string(),
                    Cell::Number(v) => v.to_string(),
                    Cell::Count(n) => format!("#{n}"),
                    Cell::Empty => String::new(),
                    other => format!("{other:?}"),
                })
                .collect();
            if let Ok(mut rows) = self.0.lock() {
                rows.push(row.join(","));
            }
            Ok(())
        }
        fn rows(&self) -> u64 {
            self.0.lock().map_or(0, |r| r.len() as u64)
        }
        fn finish_into(self: Box<Self>, _: &mut std::fs::File) -> Result<(), RenderError> {
            Ok(())
        }
    }

    fn point(name: &'static str, t: i64, v: f64) -> Point<'static> {
        Point {
            time_ns: t * 1_000_000_000,
            name: Cow::Borrowed(name),
            unit: Cow::Borrowed(""),
            channel: Cow::Borrowed(""),
            subtopic: Cow::Borrowed(""),
            publisher: Cow::Borrowed(""),
            protocol: Cow::Borrowed(""),
            value: Some(v),
            string_value: None,
            bool_value: None,
            data_value: None,
            sum: None,
            update_time: None,
        }
    }

    fn render(decimation: Option<WideDecimation>, delta: bool, points: &[Point<'_>]) -> Vec<String> {
        let rows = Rows::default();
        let seen = rows.0.clone();
        let columns = vec![
            WideColumn::Time,
            WideColumn::Value(0),
            WideColumn::Value(1),
            WideColumn::Value(2),
            WideColumn::Count(1),
        ];
        let mut wide = Box::new(WideRenderer::new(
            Box::new(rows),
            columns,
            vec!["a".into(), "b".into(), "c".into()],
            (decimation, delta),
            None,
        ));
        for p in points {
            wide.push(p).expect("pushed");
        }
        let file = tempfile_in_memory();
        let mut file = file.expect("a file");
        wide.finish(&mut file).expect("finished");
        let rows = seen.lock().map(|r| r.clone()).unwrap_or_default();
        rows
    }

    fn tempfile_in_memory() -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(std::env::temp_dir().join(format!("wide-{}", std::process::id())))
    }

    #[test]
    fn three_targets_with_different_times_join_on_time_raw_and_decimated() {
        let points = [
            point("a", 0, 1.0),
            point("b", 0, 10.0),
            point("c", 30, 100.0),
            point("a", 60, 2.0),
            point("a", 120, 3.0),
            point("b", 120, 20.0),
            point("c", 120, 200.0),
            point("x", 150, 9.0),
            point("b", 200, 30.0),
        ];
        assert_eq!(
            render(None, false, &points),
            ["0,1,10,,", "30,,,100,", "60,2,,,", "120,3,20,200,", "200,,30,,"],
            "one row per time; another name is not written"
        );
        let decimation = WideDecimation {
            tz: Tz::UTC,
            ds: "1m".parse().expect("a granularity"),
            dsf: Aggregate::Sum,
            fill: Fill::None,
            window: (Some(0), 240_000_000_000),
        };
        assert_eq!(
            render(Some(decimation), false, &points),
            ["0,1,10,100,#1", "60,2,,,#0", "120,3,20,200,#1", "180,,30,,#1"]
        );
        let filled = WideDecimation {
            fill: Fill::Previous,
            ..decimation
        };
        assert_eq!(
            render(Some(filled), true, &points),
            ["0,,,,#0", "60,1,,,#0", "120,1,10,100,#1", "180,1,10,100,#1"],
            "deltas per target (each first point has none), filled with each one's last"
        );
    }
}
