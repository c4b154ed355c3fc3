//! Rendering rows into files (spec section 7): which cell each column holds for a raw point or
//! a decimated bucket, and the CSV and XLSX writers. Writers take any `std::io::Write`; where the
//! bytes go (S3) is not their business.

pub mod axis;
pub mod cells;
pub mod csv_file;
pub mod item;
pub mod json_file;
pub mod parquet_file;
pub mod report;
pub mod series;
pub mod stage;
pub mod wide;
pub mod xlsx_file;

use crate::domain::decimation::BucketRow;
use crate::domain::request::{ColumnId, Extension, Format};
use crate::domain::series::Point;

/// What a format's writer is opened with: the file (positioned at its end when it goes on),
/// the request's format, the column labels, how many rows an earlier leg wrote (`None`: a new
/// file), and the most rows a staged file may hold.
pub struct WriterArgs<'a> {
    pub out: std::fs::File,
    pub format: &'a Format,
    pub labels: &'a [&'a str],
    pub resumed_rows: Option<u64>,
    pub max_staged_rows: u64,
}

/// The writer of the file an item is written to, by its format (the registry in
/// `domain::formats` says how each goes on across invocations): a CSV written as it goes, or a
/// workbook's stage, rendered into the workbook at the end.
pub fn writer(args: WriterArgs<'_>) -> Result<Box<dyn RowWriter + Send>, RenderError> {
    let WriterArgs {
        out,
        format,
        labels,
        resumed_rows,
        max_staged_rows,
    } = args;
    Ok(match format.extension {
        Extension::Csv => match resumed_rows {
            None => Box::new(csv_file::CsvFile::new(
                out,
                format.into(),
                format.timezone,
                labels,
            )?),
            Some(rows) => Box::new(csv_file::CsvFile::continued(
                out,
                format.into(),
                format.timezone,
                rows,
            )),
        },
        Extension::Json | Extension::Ndjson => {
            let framing = if format.extension == Extension::Json {
                json_file::Framing::Array
            } else {
                json_file::Framing::Lines
            };
            Box::new(match resumed_rows {
                None => json_file::JsonFile::new(out, framing, format.timezone, labels)?,
                Some(rows) => json_file::JsonFile::continued(out, framing, format.timezone, labels, rows)?,
            })
        }
        Extension::Pdf => match resumed_rows {
            None => Box::new(csv_file::Head::new(
                out,
                format.timezone,
                labels,
                format.escape_formulas,
            )?),
            Some(rows) => Box::new(csv_file::Head::continued(
                out,
                format.timezone,
                rows,
                format.escape_formulas,
            )),
        },
        Extension::Xls | Extension::Xlsx | Extension::Parquet => Box::new(stage::StageFile::new(
            out,
            resumed_rows.unwrap_or(0),
            max_staged_rows,
        )),
    })
}

/// One cell of a row, borrowed from the row it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'x> {
    Empty,
    Number(f64),
    Count(u64),
    Text(&'x str),
    Bool(bool),
    /// Unix nanoseconds, written in the export's timezone.
    Time(i64),
    /// The zone's offset from UTC at these Unix nanoseconds (`+02:00`).
    Offset(i64),
}

/// What a row knows of its item: the name written (the target's label, else the SenML name),
/// and the item's channel and subtopic for decimated rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemContext {
    /// `params.target.label`, which replaces the SenML name in the file.
    pub label: Option<String>,
    pub target: String,
    pub channel: String,
    pub subtopic: String,
}

/// A row to write.
#[derive(Clone, Copy, Debug)]
pub enum Row<'r, 'a> {
    Raw(&'r Point<'a>),
    Bucket(&'r BucketRow),
}

impl<'r> Row<'r, '_> {
    /// The cell of `column` in this row.
    pub fn cell(&self, column: ColumnId, item: &'r ItemContext) -> Cell<'r> {
        let text = |s: &'r str| if s.is_empty() { Cell::Empty } else { Cell::Text(s) };
        let number = |n: Option<f64>| n.map_or(Cell::Empty, Cell::Number);
        match (self, column) {
            (Row::Raw(p), ColumnId::Time) => Cell::Time(p.time_ns),
            (Row::Bucket(b), ColumnId::Time) => Cell::Time(b.start_ns),
            (Row::Raw(p), ColumnId::UtcOffset) => Cell::Offset(p.time_ns),
            (Row::Bucket(b), ColumnId::UtcOffset) => Cell::Offset(b.start_ns),
            (Row::Raw(p), ColumnId::Value) => number(p.value),
            (Row::Bucket(b), ColumnId::Value) => number(b.value),
            (Row::Raw(p), ColumnId::Name) => text(item.label.as_deref().unwrap_or(&p.name)),
            (Row::Bucket(_), ColumnId::Name) => text(item.label.as_deref().unwrap_or(&item.target)),
            (Row::Raw(p), ColumnId::Unit) => text(&p.unit),
            (Row::Bucket(b), ColumnId::Unit) => text(&b.unit),
            (Row::Raw(p), ColumnId::Channel) => text(&p.channel),
            (Row::Bucket(_), ColumnId::Channel) => text(&item.channel),
            (Row::Raw(p), ColumnId::Subtopic) => text(&p.subtopic),
            (Row::Bucket(_), ColumnId::Subtopic) => text(&item.subtopic),
            (Row::Raw(p), ColumnId::Publisher) => text(&p.publisher),
            (Row::Bucket(b), ColumnId::Publisher) => text(&b.publisher),
            (Row::Raw(p), ColumnId::Protocol) => text(&p.protocol),
            (Row::Bucket(b), ColumnId::Protocol) => text(&b.protocol),
            (Row::Raw(p), ColumnId::StringValue) => p.string_value.as_deref().map_or(Cell::Empty, Cell::Text),
            (Row::Raw(p), ColumnId::BoolValue) => p.bool_value.map_or(Cell::Empty, Cell::Bool),
            (Row::Raw(p), ColumnId::DataValue) => p.data_value.as_deref().map_or(Cell::Empty, Cell::Text),
            (Row::Raw(p), ColumnId::Sum) => number(p.sum),
            (Row::Bucket(b), ColumnId::Sum) => number(b.stats.sum),
            (Row::Bucket(b), ColumnId::Avg) => number(b.stats.avg),
            (Row::Bucket(b), ColumnId::Min) => number(b.stats.min),
            (Row::Bucket(b), ColumnId::Max) => number(b.stats.max),
            (Row::Bucket(b), ColumnId::Stddev) => number(b.stats.stddev),
            (Row::Bucket(b), ColumnId::Variance) => number(b.stats.variance),
            (Row::Raw(p), ColumnId::UpdateTime) => number(p.update_time),
            (Row::Bucket(b), ColumnId::Count) => Cell::Count(b.count),
            _ => Cell::Empty,
        }
    }
}

/// A file being written, row by row.
pub trait RowWriter {
    /// Writes one row of cells, in column order.
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError>;
    /// Rows written so far, the header not counted.
    fn rows(&self) -> u64;
    /// Text cells cut to fit the format's limit (a workbook's 32,767 characters).
    fn cut(&self) -> u64 {
        0
    }
    /// Ends the file: a CSV flushes what it buffered; a workbook is saved into `file`.
    fn finish_into(self: Box<Self>, file: &mut std::fs::File) -> Result<(), RenderError>;
    /// Whether the file can stop here and go on in another process (what is written so far
    /// stays as it is): a CSV can, a workbook (saved whole at its end) cannot.
    fn pausable(&self) -> bool {
        false
    }
    /// Stops a pausable file here: what it buffered is written out.
    fn pause(self: Box<Self>) -> Result<(), RenderError> {
        Err(RenderError::Io(std::io::Error::other(
            "this file cannot stop and go on",
        )))
    }
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing the file failed")]
    Io(#[from] std::io::Error),
    #[error("writing the CSV failed")]
    Csv(#[from] csv::Error),
    #[error("writing the workbook failed")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("writing the Parquet file failed")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A workbook would hold more rows than allowed.
    #[error("more than {0} rows")]
    TooManyRows(u64),
}
