//! CSV files: RFC 4180 through the `csv` crate (records end with CRLF), UTF-8, a header of the
//! column labels, numbers in shortest round-trip form, times in ISO 8601 with the zone's offset.
//! Text that a spreadsheet would run as a formula (a device's `stringValue` of `=HYPERLINK(...)`,
//! a label starting with `+`) is written with a leading `'` unless the export turned that off
//! (OWASP's CSV injection rule); numbers, times and booleans are never touched. Asked for, the
//! file starts with a UTF-8 byte-order mark (Excel then reads non-ASCII text as UTF-8) and
//! numbers use a decimal comma (`21,5`, for Excel in locales that write numbers so).

use std::io::Write;

use chrono_tz::Tz;

use super::cells::{write_number, TimeFormatter};
use super::{Cell, RenderError, RowWriter};
use crate::domain::request::Format;

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a CSV file is written: the export's format options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    pub delimiter: u8,
    /// Text a spreadsheet would run as a formula gets a leading `'`.
    pub escape_formulas: bool,
    /// The file starts with a UTF-8 byte-order mark.
    pub bom: bool,
    /// Numbers use a decimal comma.
    pub decimal_comma: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            escape_formulas: true,
            bom: false,
            decimal_comma: false,
        }
    }
}

impl From<&Format> for CsvOptions {
    fn from(format: &Format) -> Self {
        Self {
            delimiter: format.csv_delimiter,
            escape_formulas: format.escape_formulas,
            bom: format.csv_bom,
            decimal_comma: format.csv_decimal_comma,
        }
    }
}

/// A CSV file being written to `W` (buffered here: `W` need not be).
pub struct CsvFile<W: Write> {
    writer: csv::Writer<W>,
    times: TimeFormatter,
    field: Vec<u8>,
    rows: u64,
    options: CsvOptions,
}

/// True when a spreadsheet would read `text` as a formula (or a DDE command).
pub fn is_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

impl<W: Write> CsvFile<W> {
    /// Starts a file (its byte-order mark when asked, and its header row of `labels`).
    pub fn new(mut out: W, options: CsvOptions, tz: Tz, labels: &[&str]) -> Result<Self, RenderError> {
        if options.bom {
            out.write_all(BOM)?;
        }
        let mut file = Self::continued(out, options, tz, 0);
        for label in labels {
            file.write_text(label)?;
        }
        file.writer.write_record(None::<&[u8]>)?;
        Ok(file)
    }

    /// Goes on with a file an earlier invocation began: `rows` rows (and the header) were
    /// written before; `out` writes after them.
    pub fn continued(out: W, options: CsvOptions, tz: Tz, rows: u64) -> Self {
        let writer = csv::WriterBuilder::new()
            .delimiter(options.delimiter)
            .terminator(csv::Terminator::CRLF)
            .buffer_capacity(256 * 1024)
            .from_writer(out);
        Self {
            writer,
            times: TimeFormatter::new(tz),
            field: Vec::with_capacity(64),
            rows,
            options,
        }
    }

    fn write_text(&mut self, text: &str) -> Result<(), RenderError> {
        if self.options.escape_formulas && is_formula(text) {
            self.field.clear();
            self.field.push(b'\'');
            self.field.extend_from_slice(text.as_bytes());
            self.writer.write_field(&self.field)?;
        } else {
            self.writer.write_field(text)?;
        }
        Ok(())
    }

    /// Flushes and hands back the destination.
    pub fn finish(self) -> Result<W, RenderError> {
        self.writer
            .into_inner()
            .map_err(|e| RenderError::Io(e.into_error()))
    }
}

impl<W: Write> RowWriter for CsvFile<W> {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        for cell in cells {
            if let Cell::Text(text) = cell {
                self.write_text(text)?;
                continue;
            }
            self.field.clear();
            match cell {
                Cell::Empty | Cell::Text(_) => {}
                Cell::Number(v) => {
                    write_number(v, &mut self.field);
                    if self.options.decimal_comma {
                        if let Some(point) = self.field.iter_mut().find(|b| **b == b'.') {
                            *point = b',';
                        }
                    }
                }
                Cell::Count(n) => self
                    .field
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                Cell::Bool(b) => self.field.extend_from_slice(if b { b"true" } else { b"false" }),
                Cell::Time(t) => self.times.write(t, &mut self.field),
                Cell::Offset(t) => self.times.write_offset(t, &mut self.field),
            }
            self.writer.write_field(&self.field)?;
        }
        self.writer.write_record(None::<&[u8]>)?;
        self.rows += 1;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish_into(self: Box<Self>, _file: &mut std::fs::File) -> Result<(), RenderError> {
        self.finish()?.flush()?;
        Ok(())
    }

    fn pausable(&self) -> bool {
        true
    }

    fn pause(self: Box<Self>) -> Result<(), RenderError> {
        self.finish()?.flush()?;
        Ok(())
    }
}

/// The most rows a report's table shows; an item with more gets its chart and summary, and no
/// table.
pub const REPORT_TABLE_ROWS: u64 = 200;

/// A report item's file: the first [`REPORT_TABLE_ROWS`] rows as a plain CSV (times in the
/// export's zone), every later row only counted.
pub struct Head<W: Write> {
    csv: CsvFile<W>,
    rows: u64,
}

impl<W: Write> Head<W> {
    /// A plain comma-separated file (the report reads it back), guarding formulas as the
    /// export asks (it is a file of the job's too).
    fn options(escape_formulas: bool) -> CsvOptions {
        CsvOptions {
            escape_formulas,
            ..CsvOptions::default()
        }
    }

    pub fn new(out: W, tz: Tz, labels: &[&str], escape_formulas: bool) -> Result<Self, RenderError> {
        Ok(Self {
            csv: CsvFile::new(out, Self::options(escape_formulas), tz, labels)?,
            rows: 0,
        })
    }

    /// Goes on after `rows` rows an earlier invocation saw.
    pub fn continued(out: W, tz: Tz, rows: u64, escape_formulas: bool) -> Self {
        let options = Self::options(escape_formulas);
        Self {
            csv: CsvFile::continued(out, options, tz, rows.min(REPORT_TABLE_ROWS)),
            rows,
        }
    }
}

impl<W: Write> RowWriter for Head<W> {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        if self.rows < REPORT_TABLE_ROWS {
            self.csv.write_row(cells)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish_into(self: Box<Self>, _file: &mut std::fs::File) -> Result<(), RenderError> {
        self.csv.finish()?.flush()?;
        Ok(())
    }

    fn pausable(&self) -> bool {
        true
    }

    fn pause(self: Box<Self>) -> Result<(), RenderError> {
        self.csv.finish()?.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_a_spreadsheet_would_run_is_written_as_text_and_numbers_are_untouched() {
        let mut file = CsvFile::new(
            Vec::new(),
            CsvOptions::default(),
            chrono_tz::UTC,
            &["+Total", "v", "s"],
        )
        .expect("header");
        for (number, text) in [
            (-3.5, "=HYPERLINK(\"http://evil.example\")"),
            (1.0, "@SUM(A1)"),
            (2.0, "-2"),
            (3.0, "\tx"),
            (4.0, "fine = ok"),
        ] {
            file.write_row(&mut [Cell::Text("=label"), Cell::Number(number), Cell::Text(text)].into_iter())
                .expect("row");
        }
        let text = String::from_utf8(file.finish().expect("flushed")).expect("utf-8");
        assert_eq!(
            text,
            "'+Total,v,s\r\n'=label,-3.5,\"'=HYPERLINK(\"\"http://evil.example\"\")\"\r\n'=label,1,'@SUM(A1)\r\n'=label,2,'-2\r\n'=label,3,'\tx\r\n'=label,4,fine = ok\r\n"
        );
        let options = CsvOptions {
            escape_formulas: false,
            ..CsvOptions::default()
        };
        let mut raw = CsvFile::new(Vec::new(), options, chrono_tz::UTC, &["+Total"]).expect("header");
        raw.write_row(&mut [Cell::Text("=1+1")].into_iter()).expect("row");
        assert_eq!(
            String::from_utf8(raw.finish().expect("flushed")).expect("utf-8"),
            "+Total\r\n=1+1\r\n"
        );
    }

    #[test]
    fn writes_a_header_and_quoted_fields() {
        let options = CsvOptions {
            delimiter: b';',
            ..CsvOptions::default()
        };
        let mut file = CsvFile::new(
            Vec::new(),
            options,
            chrono_tz::Europe::Rome,
            &["Time", "Value", "Note"],
        )
        .expect("header");
        file.write_row(
            &mut [
                Cell::Time(1_774_746_000_000_000_000),
                Cell::Number(21.5),
                Cell::Text("a;b \"c\""),
            ]
            .into_iter(),
        )
        .expect("row");
        file.write_row(&mut [Cell::Time(0), Cell::Empty, Cell::Bool(true)].into_iter())
            .expect("row");
        assert_eq!(file.rows(), 2);
        let text = String::from_utf8(file.finish().expect("flushed")).expect("utf-8");
        assert_eq!(
            text,
            "Time;Value;Note\r\n2026-03-29T03:00:00+02:00;21.5;\"a;b \"\"c\"\"\"\r\n1970-01-01T01:00:00+01:00;;true\r\n"
        );
    }

    #[test]
    fn a_byte_order_mark_and_a_decimal_comma_when_asked() {
        let options = CsvOptions {
            delimiter: b';',
            bom: true,
            decimal_comma: true,
            ..CsvOptions::default()
        };
        let mut file =
            CsvFile::new(Vec::new(), options, chrono_tz::UTC, &["Température", "v"]).expect("header");
        for v in [21.5, -0.125, 3.0, 1.5e-7] {
            file.write_row(&mut [Cell::Text("1.5"), Cell::Number(v)].into_iter())
                .expect("row");
        }
        let bytes = file.finish().expect("flushed");
        assert!(bytes.starts_with(BOM));
        assert_eq!(
            std::str::from_utf8(&bytes[BOM.len()..]).expect("utf-8"),
            "Température;v\r\n1.5;21,5\r\n1.5;-0,125\r\n1.5;3\r\n1.5;1,5e-7\r\n",
            "numbers only: text keeps its points"
        );
        // A file that goes on writes no second mark.
        let more = CsvFile::continued(Vec::new(), options, chrono_tz::UTC, 4)
            .finish()
            .expect("flushed");
        assert!(more.is_empty());
    }
}
