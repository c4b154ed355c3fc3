//! XLSX files with `rust_xlsxwriter` in constant-memory mode: a header row, real numbers and
//! real date-times (local time of the export's timezone); past Excel's 1,048,576 rows a sheet
//! the data continues on a new sheet with the header repeated.

use std::io::{Seek, Write};

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use rust_xlsxwriter::{Format, Workbook};

use super::{Cell, RenderError, RowWriter};

/// Rows in one worksheet, the header included (Excel's limit).
pub const ROWS_PER_SHEET: u32 = 1_048_576;

/// The most characters a cell holds (Excel's limit).
pub const MAX_CELL_CHARS: usize = 32_767;

/// What ends a text cut to fit a cell.
pub const CELL_CUT_MARKER: &str = "…[cut]";

/// `text`, or its start and [`CELL_CUT_MARKER`] when a cell cannot hold it all.
fn fitted(text: &str) -> Option<String> {
    let end = text.char_indices().nth(MAX_CELL_CHARS)?.0;
    let keep = MAX_CELL_CHARS - CELL_CUT_MARKER.chars().count();
    let cut = text[..end].char_indices().nth(keep).map_or(end, |(at, _)| at);
    Some(format!("{}{CELL_CUT_MARKER}", &text[..cut]))
}

/// A workbook being written.
pub struct XlsxFile {
    workbook: Workbook,
    labels: Vec<String>,
    tz: Tz,
    header: Format,
    datetime: Format,
    sheets: usize,
    next_row: u32,
    rows: u64,
    cut: u64,
}

impl XlsxFile {
    /// Starts a workbook with its first sheet and header row.
    pub fn new(tz: Tz, labels: &[&str]) -> Result<Self, RenderError> {
        let mut file = Self {
            workbook: Workbook::new(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            tz,
            header: Format::new().set_bold(),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            sheets: 0,
            next_row: 0,
            rows: 0,
            cut: 0,
        };
        file.add_sheet()?;
        Ok(file)
    }

    fn add_sheet(&mut self) -> Result<(), RenderError> {
        let sheet = self.workbook.add_worksheet_with_constant_memory();
        for (col, label) in self.labels.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, label, &self.header)?;
            sheet.set_column_width(col as u16, if col == 0 { 24 } else { 16 })?;
        }
        self.sheets += 1;
        self.next_row = 1;
        Ok(())
    }

    /// Records `at` as the workbook's creation time (else it is the time it is saved): a
    /// workbook rendered again from the same rows is then the same, byte for byte.
    pub fn created_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.workbook
            .set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&at));
        self
    }

    /// Sheets written so far.
    pub fn sheets(&self) -> usize {
        self.sheets
    }

    /// Writes the finished workbook.
    pub fn finish<W: Write + Seek + Send>(mut self, out: W) -> Result<(), RenderError> {
        self.workbook.save_to_writer(out)?;
        Ok(())
    }
}

impl RowWriter for XlsxFile {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        if self.next_row == ROWS_PER_SHEET {
            self.add_sheet()?;
        }
        let row = self.next_row;
        let sheet = self.workbook.worksheet_from_index(self.sheets - 1)?;
        for (col, cell) in cells.enumerate() {
            let col = col as u16;
            match cell {
                Cell::Empty => {}
                Cell::Number(v) if v.is_finite() => {
                    sheet.write_number(row, col, v)?;
                }
                Cell::Number(_) => {}
                Cell::Count(n) => {
                    sheet.write_number(row, col, n as f64)?;
                }
                Cell::Text(s) => match fitted(s) {
                    None => {
                        sheet.write_string(row, col, s)?;
                    }
                    Some(fitted) => {
                        sheet.write_string(row, col, &fitted)?;
                        self.cut += 1;
                    }
                },
                Cell::Bool(b) => {
                    sheet.write_boolean(row, col, b)?;
                }
                Cell::Time(t) => {
                    let utc = DateTime::from_timestamp_nanos(t).naive_utc();
                    let local = self.tz.from_utc_datetime(&utc).naive_local();
                    sheet.write_datetime_with_format(row, col, local, &self.datetime)?;
                }
            }
        }
        self.next_row += 1;
        self.rows += 1;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn cut(&self) -> u64 {
        self.cut
    }

    fn finish_into(self: Box<Self>, file: &mut std::fs::File) -> Result<(), RenderError> {
        (*self).finish(file)
    }
}

#[cfg(test)]
mod cut_tests {
    use super::*;

    #[test]
    fn a_text_longer_than_a_cell_is_cut_with_a_marker_to_exactly_the_limit() {
        assert_eq!(fitted("short"), None);
        assert_eq!(fitted(&"é".repeat(MAX_CELL_CHARS)), None);
        let long = "é".repeat(MAX_CELL_CHARS + 1);
        let cut = fitted(&long).expect("cut");
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS);
        assert!(cut.ends_with(CELL_CUT_MARKER));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, DataType, Reader, Xlsx};

    #[test]
    fn writes_real_numbers_and_local_date_times() {
        let mut file = XlsxFile::new(chrono_tz::Europe::Rome, &["Time", "Value", "On"]).expect("workbook");
        file.write_row(
            &mut [
                Cell::Time(1_774_746_000_000_000_000),
                Cell::Number(21.5),
                Cell::Bool(true),
            ]
            .into_iter(),
        )
        .expect("row");
        let mut bytes = std::io::Cursor::new(Vec::new());
        file.finish(&mut bytes).expect("saved");
        let mut book: Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.into_inner())).expect("readable");
        let range = book.worksheet_range("Sheet1").expect("sheet");
        assert_eq!(range.get((0, 0)), Some(&Data::String("Time".into())));
        assert_eq!(range.get((1, 1)), Some(&Data::Float(21.5)));
        assert_eq!(range.get((1, 2)), Some(&Data::Bool(true)));
        let time = range
            .get((1, 0))
            .and_then(|d| d.as_datetime())
            .expect("a date-time");
        assert_eq!(time.to_string(), "2026-03-29 03:00:00");
    }
}
