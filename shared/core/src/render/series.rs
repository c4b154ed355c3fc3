//! One series on its way into a file: points in (oldest first), decimated when asked, each row's
//! cells taken from its columns and written. No allocation per row.

use async_trait::async_trait;

use crate::domain::decimation::{Decimator, DecimatorState};
use crate::domain::request::ColumnId;
use crate::domain::series::Point;
use crate::ports::{Cause, SliceSink};

use super::{ItemContext, RenderError, Row, RowWriter};

/// What a finished series amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub rows: u64,
    /// Points a decimation skipped: neither a number nor a boolean.
    pub skipped: u64,
    /// Text cells cut to fit a cell.
    pub cut: u64,
}

/// Where a paused series stands: what must survive until it goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub rows: u64,
    pub cut: u64,
    pub decimator: Option<DecimatorState>,
}

/// Renders a series into a [`RowWriter`].
pub struct SeriesRenderer {
    writer: Box<dyn RowWriter + Send>,
    columns: Vec<ColumnId>,
    context: ItemContext,
    decimator: Option<Decimator>,
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
        }
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
            match &mut self.decimator {
                Some(decimator) => {
                    if let Some(bucket) = decimator.push(point) {
                        self.write(Row::Bucket(&bucket))?;
                    }
                }
                None => self.write(Row::Raw(point))?,
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
        };
        self.writer.pause()?;
        Ok(paused)
    }

    /// Writes the last bucket and ends the file (a workbook is saved into `file`).
    pub fn finish(mut self, file: &mut std::fs::File) -> Result<Rendered, RenderError> {
        let mut skipped = 0;
        if let Some(mut decimator) = self.decimator.take() {
            if let Some(bucket) = decimator.finish() {
                self.write(Row::Bucket(&bucket))?;
            }
            skipped = decimator.skipped;
        }
        let (rows, cut) = (self.writer.rows(), self.writer.cut());
        self.writer.finish_into(file)?;
        Ok(Rendered { rows, skipped, cut })
    }
}

#[async_trait]
impl SliceSink for SeriesRenderer {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.push(points).map_err(|e| Box::new(e) as Cause)
    }
}
