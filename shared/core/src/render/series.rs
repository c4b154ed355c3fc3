//! One series on its way into a file: points in (oldest first), turned into deltas and
//! decimated when asked (empty buckets filled when asked), each row's cells taken from its
//! columns and written. No allocation per row.

use async_trait::async_trait;

use crate::domain::decimation::{BucketRow, Decimator, DecimatorState, FillState, Filler};
use crate::domain::files::ChartPoints;
use crate::domain::request::ColumnId;
use crate::domain::series::Point;
use crate::ports::{Cause, SliceSink};

use super::{ItemContext, RenderError, Row, RowWriter};

/// What a finished series amounts to.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub rows: u64,
    /// Points a decimation skipped: neither a number nor a boolean.
    pub skipped: u64,
    /// Text cells cut to fit a cell.
    pub cut: u64,
    /// A decimated series' buckets with a value (start, value), thinned, for the email's
    /// chart (a wide item's: a line per target); `None` for raw rows.
    pub chart: Option<Vec<ChartPoints>>,
}

/// Where a paused series stands: what must survive until it goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub rows: u64,
    pub cut: u64,
    pub decimator: Option<DecimatorState>,
    /// Where filling empty buckets stands (absent without `decimation.fill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillState>,
    /// With `transform: delta`: the last value seen, as its bits (`None` before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// A decimated series' buckets so far, thinned, for the email's chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartPoints>,
    /// A wide item's state (its targets' decimations, deltas, unjoined buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide: Option<WideState>,
}

/// A target's finished bucket as a checkpoint keeps it: its value's bits and its count.
pub type StoredBucket = (Option<u64>, u64);

/// Where a wide item stands between invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WideState {
    /// Each target's decimator and filler.
    pub decimators: Vec<DecimatorState>,
    pub fills: Vec<Option<FillState>>,
    /// Finished buckets not yet written: their start, and per target (value bits, count).
    pub buckets: Vec<(i64, Vec<Option<StoredBucket>>)>,
    /// The bucket the stream is in.
    pub current: Option<i64>,
    /// With `transform: delta`: each target's last value, as its bits.
    pub previous: Vec<Option<u64>>,
    /// Decimated: each target's buckets written so far, thinned, for the email's chart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartPoints>,
    /// What else the unjoined buckets hold, as `buckets` lists them: each target's statistics
    /// and first point's unit, publisher and protocol (absent in checkpoints written before
    /// long files; such buckets go on with none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Vec<Option<BucketDetail>>>,
}

/// A finished bucket's statistics (as their bits) and its first point's text fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketDetail {
    pub stats: [Option<u64>; 6],
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub publisher: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

/// A series on its way into a file, as a run drives it: points in, then paused or finished.
pub trait SeriesSink: SliceSink + Send {
    /// Rows written so far.
    fn rows(&self) -> u64;
    /// Whether the series can stop and go on in another process.
    fn pausable(&self) -> bool;
    /// Stops here: what was written is flushed, and the state to go on from is returned.
    fn pause(self: Box<Self>) -> Result<Paused, RenderError>;
    /// Writes what is left and ends the file (a workbook is saved into `file`).
    fn finish(self: Box<Self>, file: &mut std::fs::File) -> Result<Rendered, RenderError>;
}

impl SeriesSink for SeriesRenderer {
    fn rows(&self) -> u64 {
        SeriesRenderer::rows(self)
    }

    fn pausable(&self) -> bool {
        SeriesRenderer::pausable(self)
    }

    fn pause(self: Box<Self>) -> Result<Paused, RenderError> {
        SeriesRenderer::pause(*self)
    }

    fn finish(self: Box<Self>, file: &mut std::fs::File) -> Result<Rendered, RenderError> {
        SeriesRenderer::finish(*self, file)
    }
}

/// Renders a series into a [`RowWriter`].
pub struct SeriesRenderer {
    writer: Box<dyn RowWriter + Send>,
    columns: Vec<ColumnId>,
    context: ItemContext,
    decimator: Option<Decimator>,
    filler: Option<Filler>,
    /// With `transform: delta`: `Some`, holding the last value seen (`None` before the first).
    delta: Option<Option<f64>>,
    /// Decimated: the buckets so far, thinned, for the chart.
    chart: Option<ChartPoints>,
    /// The chart keeps each bucket's lowest and highest value (a statistic between them).
    band: bool,
}

impl SeriesRenderer {
    pub fn new(
        writer: Box<dyn RowWriter + Send>,
        columns: Vec<ColumnId>,
        context: ItemContext,
        decimator: Option<Decimator>,
    ) -> Self {
        Self {
            writer,
            columns,
            context,
            decimator,
            filler: None,
            delta: None,
            chart: None,
            band: false,
        }
    }

    /// The chart keeps each bucket's lowest and highest value beside its statistic.
    pub fn banded(mut self) -> Self {
        self.band = true;
        self
    }

    /// Keeps the decimated rows' values for a chart, going on from what an earlier invocation
    /// kept.
    pub fn with_chart(mut self, kept: Option<ChartPoints>) -> Self {
        self.chart = Some(kept.unwrap_or_default());
        self
    }

    /// Fills empty buckets as `filler` says.
    pub fn with_filler(mut self, filler: Filler) -> Self {
        self.filler = Some(filler);
        self
    }

    /// Writes each value minus the one before it, `previous` (bits) being the last one seen by
    /// an earlier invocation.
    pub fn with_delta(mut self, previous: Option<u64>) -> Self {
        self.delta = Some(previous.map(f64::from_bits));
        self
    }

    /// Writes a decimated row, the empty buckets before it first.
    fn write_bucket(&mut self, bucket: &BucketRow) -> Result<(), RenderError> {
        if let (Some(chart), Some(value)) = (&mut self.chart, bucket.value) {
            let band = if self.band {
                bucket.stats.min.zip(bucket.stats.max)
            } else {
                None
            };
            chart.push_with_band(bucket.start_ns, value, band);
        }
        if let Some(mut filler) = self.filler.take() {
            let filled = filler.before(bucket, &mut |row| self.write(Row::Bucket(row)));
            self.filler = Some(filler);
            filled?;
        }
        self.write(Row::Bucket(bucket))
    }

    fn write(&mut self, row: Row<'_, '_>) -> Result<(), RenderError> {
        let context = &self.context;
        let mut cells = self.columns.iter().map(|c| row.cell(*c, context));
        self.writer.write_row(&mut cells)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.writer.rows()
    }

    /// Adds points, oldest first.
    pub fn push(&mut self, points: &[Point<'_>]) -> Result<(), RenderError> {
        for point in points {
            let delta;
            let point = match &mut self.delta {
                Some(previous) if point.value.is_some() => {
                    let value = point.value.unwrap_or_default();
                    let change = previous.map(|p| value - p);
                    *previous = Some(value);
                    if change.is_none() && self.decimator.is_some() {
                        // The window's first point has no delta: nothing to count.
                        continue;
                    }
                    delta = Point {
                        value: change,
                        ..point.clone()
                    };
                    &delta
                }
                _ => point,
            };
            match &mut self.decimator {
                Some(decimator) => {
                    if let Some(bucket) = decimator.push(point) {
                        self.write_bucket(&bucket)?;
                    }
                }
                None => {
                    if let (Some(chart), Some(value)) = (&mut self.chart, point.value) {
                        chart.push(point.time_ns, value);
                    }
                    self.write(Row::Raw(point))?
                }
            }
        }
        Ok(())
    }

    /// Whether the series can stop and go on in another process.
    pub fn pausable(&self) -> bool {
        self.writer.pausable()
    }

    /// Stops here, the open bucket kept open: what was written is flushed to the file, and the
    /// state to go on from is returned.
    pub fn pause(self) -> Result<Paused, RenderError> {
        let paused = Paused {
            rows: self.writer.rows(),
            cut: self.writer.cut(),
            decimator: self.decimator.as_ref().map(Decimator::state),
            fill: self.filler.as_ref().map(|f| f.state().clone()),
            previous: self.delta.flatten().map(f64::to_bits),
            chart: self.chart.clone(),
            wide: None,
        };
        self.writer.pause()?;
        Ok(paused)
    }

    /// Writes the last bucket and ends the file (a workbook is saved into `file`).
    pub fn finish(mut self, file: &mut std::fs::File) -> Result<Rendered, RenderError> {
        let mut skipped = 0;
        if let Some(mut decimator) = self.decimator.take() {
            if let Some(bucket) = decimator.finish() {
                self.write_bucket(&bucket)?;
            }
            if let Some(mut filler) = self.filler.take() {
                filler.finish(&mut |row| self.write(Row::Bucket(row)))?;
            }
            skipped = decimator.skipped;
        }
        let chart = self.chart.take().map(|c| vec![c]);
        end(self.writer, file, skipped, chart)
    }
}

/// Ends a series' file: what it amounts to, the writer finished into `file`.
pub(super) fn end(
    writer: Box<dyn RowWriter + Send>,
    file: &mut std::fs::File,
    skipped: u64,
    chart: Option<Vec<ChartPoints>>,
) -> Result<Rendered, RenderError> {
    let (rows, cut) = (writer.rows(), writer.cut());
    writer.finish_into(file)?;
    Ok(Rendered {
        rows,
        skipped,
        cut,
        chart,
    })
}

#[async_trait]
impl SliceSink for SeriesRenderer {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.push(points).map_err(|e| Box::new(e) as Cause)
    }
}
