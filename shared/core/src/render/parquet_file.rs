//! Parquet files, rendered from a stage (a Parquet file is whole only once its footer is
//! written, so across invocations its rows are staged like a workbook's): typed columns named by
//! the column labels, every column optional (an empty cell is null). Each column's type is what
//! its cells are, read off the stage in a first pass ([`Kinds`]): times are `INT64`
//! `TIMESTAMP(NANOS, UTC)`, numbers `DOUBLE`, counts `INT64`, booleans `BOOLEAN`, text and the
//! zone's offsets UTF-8 strings; a column mixing numbers and counts is `DOUBLE`, one mixing other
//! kinds (a raw wide column of numbers and booleans) is text written as the CSV writes it, and a
//! column with no cell at all is what its column id says it holds ([`Kind::of_column`]). The export's timezone is in the file's key-value metadata
//! (`timezone`), and with `local` each time column is followed by its local wall time
//! (`TIMESTAMP(NANOS)` not adjusted to UTC) headed `<label> (local)`. Rows are buffered a row
//! group at a time ([`ROW_GROUP_ROWS`]), Snappy-compressed: memory is bounded by a row group.

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::cells::{write_number, TimeFormatter};
use super::{Cell, RenderError, RowWriter};
use crate::domain::request::ColumnId;

/// Rows a row group holds: what a file buffers before writing.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// What a column holds, as its cells say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Time,
    Double,
    Count,
    Bool,
    Text,
}

impl Kind {
    /// What a column of `id` holds.
    pub fn of_column(id: ColumnId) -> Self {
        match id {
            ColumnId::Time => Self::Time,
            ColumnId::Value
            | ColumnId::Sum
            | ColumnId::UpdateTime
            | ColumnId::Avg
            | ColumnId::Min
            | ColumnId::Max
            | ColumnId::Stddev
            | ColumnId::Variance => Self::Double,
            ColumnId::Count => Self::Count,
            ColumnId::BoolValue => Self::Bool,
            ColumnId::Name
            | ColumnId::Unit
            | ColumnId::Channel
            | ColumnId::Subtopic
            | ColumnId::Publisher
            | ColumnId::Protocol
            | ColumnId::StringValue
            | ColumnId::DataValue
            | ColumnId::UtcOffset => Self::Text,
        }
    }

    fn of(cell: Cell<'_>) -> Option<Self> {
        Some(match cell {
            Cell::Empty => return None,
            Cell::Time(_) => Self::Time,
            Cell::Number(_) => Self::Double,
            Cell::Count(_) => Self::Count,
            Cell::Bool(_) => Self::Bool,
            Cell::Offset(_) | Cell::Text(_) => Self::Text,
        })
    }

    /// The kind of a column holding both.
    fn with(self, other: Self) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Self::Double, Self::Count) | (Self::Count, Self::Double) => Self::Double,
            _ => Self::Text,
        }
    }
}

/// The first pass over a stage: each column's kind.
#[derive(Default)]
pub struct Kinds {
    seen: Vec<Option<Kind>>,
    rows: u64,
}

impl Kinds {
    /// Each column's kind: what its cells said, else its `declared` kind.
    pub fn of(&self, declared: &[Kind]) -> Vec<Kind> {
        declared
            .iter()
            .enumerate()
            .map(|(i, kind)| self.seen.get(i).copied().flatten().unwrap_or(*kind))
            .collect()
    }
}

impl RowWriter for Kinds {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        for (i, cell) in cells.enumerate() {
            if self.seen.len() <= i {
                self.seen.resize(i + 1, None);
            }
            if let Some(kind) = Kind::of(cell) {
                self.seen[i] = Some(self.seen[i].map_or(kind, |k| k.with(kind)));
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish_into(self: Box<Self>, _file: &mut std::fs::File) -> Result<(), RenderError> {
        Ok(())
    }
}

/// A column's values of the row group being buffered, and which rows have one.
enum Buffer {
    Int64(Vec<i64>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
}

struct Column {
    kind: Kind,
    /// The local wall time of a time column, as a column of its own.
    local: bool,
    values: Buffer,
    defined: Vec<i16>,
}

/// A Parquet file being written to `W`.
pub struct ParquetFile<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    columns: Vec<Column>,
    buffered: usize,
    rows: u64,
    tz: Tz,
    times: TimeFormatter,
    text: Vec<u8>,
}

/// Each label once: a repeated one numbered (`label (2)`).
pub fn unique_labels(labels: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let mut name = (*label).to_owned();
        let mut n = 1;
        while out.contains(&name) {
            n += 1;
            name = format!("{label} ({n})");
        }
        out.push(name);
    }
    out
}

fn field(name: &str, kind: Kind, local: bool) -> Result<Arc<Type>, RenderError> {
    let (physical, logical) = match kind {
        Kind::Time => (
            PhysicalType::INT64,
            Some(LogicalType::Timestamp {
                is_adjusted_to_u_t_c: !local,
                unit: TimeUnit::NANOS,
            }),
        ),
        Kind::Double => (PhysicalType::DOUBLE, None),
        Kind::Count => (PhysicalType::INT64, None),
        Kind::Bool => (PhysicalType::BOOLEAN, None),
        Kind::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
    };
    Ok(Arc::new(
        Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()?,
    ))
}

impl<W: Write + Send> ParquetFile<W> {
    /// Starts a file of columns headed `labels`, of `kinds`, for an export in `tz`; with
    /// `local`, each time column is followed by its local wall time.
    pub fn new(
        out: W,
        (labels, kinds): (&[&str], &[Kind]),
        tz: Tz,
        local: bool,
    ) -> Result<Self, RenderError> {
        // Each column's name, a time's local column right after it, every name once.
        let mut wanted: Vec<String> = Vec::new();
        for (label, kind) in labels.iter().zip(kinds) {
            wanted.push((*label).to_owned());
            if local && *kind == Kind::Time {
                wanted.push(format!("{label} (local)"));
            }
        }
        let mut names = unique_labels(&wanted.iter().map(String::as_str).collect::<Vec<_>>()).into_iter();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for kind in kinds.iter().take(labels.len()) {
            let column = |local| Column {
                kind: *kind,
                local,
                values: match kind {
                    Kind::Time | Kind::Count => Buffer::Int64(Vec::new()),
                    Kind::Double => Buffer::Double(Vec::new()),
                    Kind::Bool => Buffer::Bool(Vec::new()),
                    Kind::Text => Buffer::Bytes(Vec::new()),
                },
                defined: Vec::new(),
            };
            fields.push(field(&names.next().unwrap_or_default(), *kind, false)?);
            columns.push(column(false));
            if local && *kind == Kind::Time {
                fields.push(field(&names.next().unwrap_or_default(), *kind, true)?);
                columns.push(column(true));
            }
        }
        let schema = Type::group_type_builder("schema").with_fields(fields).build()?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(ROW_GROUP_ROWS)
            .set_key_value_metadata(Some(vec![KeyValue::new("timezone".into(), tz.name().to_owned())]))
            .build();
        Ok(Self {
            writer: SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?,
            columns,
            buffered: 0,
            rows: 0,
            tz,
            times: TimeFormatter::new(tz),
            text: Vec::new(),
        })
    }

    /// Writes the buffered rows as a row group.
    fn flush(&mut self) -> Result<(), RenderError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for column in &mut self.columns {
            let Some(mut writer) = group.next_column()? else {
                return Err(RenderError::Io(std::io::Error::other(
                    "fewer columns than the schema",
                )));
            };
            let defined = Some(column.defined.as_slice());
            match &mut column.values {
                Buffer::Int64(v) => {
                    writer.typed::<Int64Type>().write_batch(v, defined, None)?;
                    v.clear();
                }
                Buffer::Double(v) => {
                    writer.typed::<DoubleType>().write_batch(v, defined, None)?;
                    v.clear();
                }
                Buffer::Bool(v) => {
                    writer.typed::<BoolType>().write_batch(v, defined, None)?;
                    v.clear();
                }
                Buffer::Bytes(v) => {
                    writer.typed::<ByteArrayType>().write_batch(v, defined, None)?;
                    v.clear();
                }
            }
            column.defined.clear();
            writer.close()?;
        }
        group.close()?;
        self.buffered = 0;
        Ok(())
    }

    /// Writes what is buffered and the footer; hands back the destination.
    pub fn finish(mut self) -> Result<W, RenderError> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }

    /// The local wall time of `t_ns`, as nanoseconds since the Unix epoch of that wall clock.
    fn local_ns(&self, t_ns: i64) -> i64 {
        let offset = self
            .tz
            .offset_from_utc_datetime(&DateTime::from_timestamp_nanos(t_ns).naive_utc())
            .fix()
            .local_minus_utc();
        t_ns.saturating_add(i64::from(offset) * 1_000_000_000)
    }
}

impl<W: Write + Send> RowWriter for ParquetFile<W> {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        let mut cells = cells.fuse();
        let mut cell = Cell::Empty;
        for i in 0..self.columns.len() {
            // A local time column repeats the cell before it.
            if !self.columns[i].local {
                cell = cells.next().unwrap_or(Cell::Empty);
            }
            let local = match cell {
                Cell::Time(t) if self.columns[i].local => Some(self.local_ns(t)),
                _ => None,
            };
            let text = &mut self.text;
            let column = &mut self.columns[i];
            let defined = match (&mut column.values, column.kind, cell) {
                (_, _, Cell::Empty) => false,
                (Buffer::Int64(v), Kind::Time, Cell::Time(t)) => {
                    v.push(local.unwrap_or(t));
                    true
                }
                (Buffer::Int64(v), _, Cell::Count(n)) => {
                    v.push(i64::try_from(n).unwrap_or(i64::MAX));
                    true
                }
                (Buffer::Double(v), _, Cell::Number(n)) if n.is_finite() => {
                    v.push(n);
                    true
                }
                (Buffer::Double(v), _, Cell::Count(n)) => {
                    v.push(n as f64);
                    true
                }
                (Buffer::Bool(v), _, Cell::Bool(b)) => {
                    v.push(b);
                    true
                }
                (Buffer::Bytes(v), _, cell) => {
                    text.clear();
                    match cell {
                        Cell::Text(s) => text.extend_from_slice(s.as_bytes()),
                        Cell::Number(n) => write_number(n, text),
                        Cell::Count(n) => text.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                        Cell::Bool(b) => text.extend_from_slice(if b { b"true" } else { b"false" }),
                        Cell::Time(t) => self.times.write(t, text),
                        Cell::Offset(t) => self.times.write_offset(t, text),
                        Cell::Empty => {}
                    }
                    let some = !text.is_empty() || matches!(cell, Cell::Text(_));
                    if some {
                        v.push(ByteArray::from(text.clone()));
                    }
                    some
                }
                _ => false,
            };
            column.defined.push(i16::from(defined));
        }
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish_into(self: Box<Self>, _file: &mut std::fs::File) -> Result<(), RenderError> {
        self.finish()?.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn row(t_s: i64, v: Cell<'static>, n: u64, b: Option<bool>, s: &'static str) -> Vec<Cell<'static>> {
        let t = t_s * 1_000_000_000;
        vec![
            Cell::Time(t),
            Cell::Offset(t),
            v,
            Cell::Count(n),
            b.map_or(Cell::Empty, Cell::Bool),
            if s.is_empty() { Cell::Empty } else { Cell::Text(s) },
        ]
    }

    #[test]
    fn typed_columns_across_the_autumn_hour_read_back() {
        let rows = [
            row(1_792_886_400, Cell::Number(0.1 + 0.2), 3, Some(true), "é"),
            row(1_792_890_000, Cell::Empty, 0, None, ""),
            row(1_792_893_600, Cell::Number(-1.5e-7), 7, Some(false), "x"),
        ];
        let mut kinds = Kinds::default();
        for r in &rows {
            kinds.write_row(&mut r.iter().copied()).expect("row");
        }
        let labels = ["time", "offset", "v", "n", "b", "v"];
        let kinds = kinds.of(&[Kind::Text; 6]);
        assert_eq!(
            kinds,
            [
                Kind::Time,
                Kind::Text,
                Kind::Double,
                Kind::Count,
                Kind::Bool,
                Kind::Text
            ]
        );
        let mut file =
            ParquetFile::new(Vec::new(), (&labels, &kinds), chrono_tz::Europe::Rome, true).expect("begun");
        for r in &rows {
            file.write_row(&mut r.iter().copied()).expect("row");
        }
        let bytes = file.finish().expect("written");
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("a Parquet file");
        let meta = reader.metadata().file_metadata();
        let timezone = meta
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == "timezone"))
            .and_then(|k| k.value.clone());
        assert_eq!(timezone.as_deref(), Some("Europe/Rome"));
        assert_eq!(meta.num_rows(), 3);
        let names: Vec<String> = meta
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names, ["time", "time (local)", "offset", "v", "n", "b", "v (2)"]);
        // A label like a local column's name does not make two columns of one name.
        let twice = ParquetFile::new(
            Vec::new(),
            (&["time", "time (local)"], &[Kind::Time, Kind::Text]),
            chrono_tz::UTC,
            true,
        )
        .expect("begun")
        .finish()
        .expect("written");
        let other = SerializedFileReader::new(bytes::Bytes::from(twice)).expect("a Parquet file");
        let other: Vec<String> = other
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(other, ["time", "time (local)", "time (local) (2)"]);
        let read: Vec<Vec<Field>> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| {
                r.expect("a row")
                    .get_column_iter()
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        assert_eq!(read[0][2], Field::Str("+02:00".into()));
        assert_eq!(read[1][2], Field::Str("+01:00".into()));
        assert_eq!(read[0][3], Field::Double(0.1 + 0.2));
        assert_eq!(read[1][3], Field::Null);
        assert_eq!(read[2][4], Field::Long(7));
        assert_eq!(read[0][5], Field::Bool(true));
        assert_eq!(read[1][6], Field::Null);
        // 02:00 twice in local wall time, an hour apart in UTC.
        assert_eq!(read[0][0], Field::Long(1_792_886_400_000_000_000));
        let local_two = (1_792_886_400 + 7200) * 1_000_000_000;
        assert_eq!(read[0][1], Field::Long(local_two));
        assert_eq!(read[1][1], Field::Long(local_two));
    }
}
