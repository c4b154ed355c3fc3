//! XLSX files with `rust_xlsxwriter` in constant-memory mode: a bold header row, frozen and
//! with an autofilter; real numbers and real date-times (local time of the export's timezone);
//! columns as wide as their content; sheets named after the item; past Excel's 1,048,576 rows a
//! sheet the data continues on a new sheet with the header repeated. A decimated series short
//! enough gets a native line chart on a sheet of its own (a wide one, a line per target). The workbook's title and creation
//! time are set, the latter to the job's, so the same rows give the same bytes.

use std::collections::HashSet;
use std::io::{Seek, Write};

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use rust_xlsxwriter::{Chart, ChartType, DocProperties, Format, Workbook};

use super::cells::TimeFormatter;
use super::{Cell, RenderError, RowWriter};

/// Rows in one worksheet, the header included (Excel's limit).
pub const ROWS_PER_SHEET: u32 = 1_048_576;

/// The most characters a cell holds (Excel's limit).
pub const MAX_CELL_CHARS: usize = 32_767;

/// What ends a text cut to fit a cell.
pub const CELL_CUT_MARKER: &str = "…[cut]";

/// The longest sheet name Excel takes, in characters.
pub const MAX_SHEET_NAME: usize = 31;

/// The widest and narrowest a column is made, in characters.
const WIDEST: usize = 60;
const NARROWEST: usize = 8;
/// The width of a date-time as shown (`yyyy-mm-dd hh:mm:ss.000`).
const DATETIME_CHARS: usize = 23;

/// `text`, or its start and [`CELL_CUT_MARKER`] when a cell cannot hold it all.
fn fitted(text: &str) -> Option<String> {
    let end = text.char_indices().nth(MAX_CELL_CHARS)?.0;
    let keep = MAX_CELL_CHARS - CELL_CUT_MARKER.chars().count();
    let cut = text[..end].char_indices().nth(keep).map_or(end, |(at, _)| at);
    Some(format!("{}{CELL_CUT_MARKER}", &text[..cut]))
}

/// Sheet names made valid for Excel and unique within a workbook: no `[]:*?/\` (each becomes
/// `_`), no control characters, no leading or trailing `'`, at most 31 characters, not
/// `History` (reserved), never empty, and unique ignoring case (` (2)`, ` (3)`... added, the
/// name shortened to make room).
#[derive(Debug, Default)]
pub struct SheetNames(HashSet<String>);

impl SheetNames {
    /// A valid name, unique among those given so far, as close to `wanted` as can be.
    pub fn name(&mut self, wanted: &str) -> String {
        let cleaned: String = wanted
            .chars()
            .map(|c| {
                if "[]:*?/\\".contains(c) || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let mut base = cleaned.trim().trim_matches('\'').trim().to_owned();
        if base.is_empty() {
            base = "Data".to_owned();
        }
        if base.eq_ignore_ascii_case("history") {
            base.push('_');
        }
        let mut n = 1;
        loop {
            let suffix = if n == 1 { String::new() } else { format!(" ({n})") };
            let room = MAX_SHEET_NAME - suffix.chars().count();
            let head: String = base.chars().take(room).collect();
            let name = format!("{}{suffix}", head.trim_end_matches('\'').trim_end());
            if self.0.insert(name.to_lowercase()) {
                return name;
            }
            n += 1;
        }
    }
}

/// A line chart of a series (or of a wide item's series, one line each, with a legend) on a
/// sheet of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSpec {
    /// The column of the times (categories).
    pub time_column: u16,
    /// Each series' name (the item's label, or a wide item's target's) and its values' column.
    pub series: Vec<(String, u16)>,
    /// The chart's title (the item's name).
    pub title: String,
    /// No chart past this many rows (a chart of millions of points helps nobody and is slow
    /// to open).
    pub max_rows: u64,
}

/// How a workbook looks beyond its rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Look {
    /// The data sheets' name (the item's label), made valid; empty: Excel's `Sheet1`...
    pub sheet: String,
    /// The workbook's title property.
    pub title: String,
    pub chart: Option<ChartSpec>,
}

/// A workbook being written.
pub struct XlsxFile {
    workbook: Workbook,
    labels: Vec<String>,
    tz: Tz,
    offsets: TimeFormatter,
    header: Format,
    datetime: Format,
    look: Look,
    names: SheetNames,
    sheet_names: Vec<String>,
    /// Per column, the widest content seen, in characters.
    widths: Vec<usize>,
    sheets: usize,
    next_row: u32,
    rows: u64,
    cut: u64,
    field: Vec<u8>,
    /// The earliest and latest local time written, as Excel serial days: the chart's x range.
    span: Option<(f64, f64)>,
}

impl XlsxFile {
    /// Starts a plain workbook (sheets `Sheet1`...) with its first sheet and header row.
    pub fn new(tz: Tz, labels: &[&str]) -> Result<Self, RenderError> {
        Self::with_look(tz, labels, Look::default())
    }

    /// Starts a workbook that looks as `look` says.
    pub fn with_look(tz: Tz, labels: &[&str], look: Look) -> Result<Self, RenderError> {
        let mut workbook = Workbook::new();
        if !look.title.is_empty() {
            workbook.set_properties(&DocProperties::new().set_title(&look.title));
        }
        let mut file = Self {
            workbook,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            tz,
            offsets: TimeFormatter::new(tz),
            header: Format::new().set_bold(),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            widths: labels
                .iter()
                // Room for the autofilter's arrow beside the label.
                .map(|l| l.chars().count() + 3)
                .collect(),
            look,
            names: SheetNames::default(),
            sheet_names: Vec::new(),
            sheets: 0,
            next_row: 0,
            rows: 0,
            cut: 0,
            field: Vec::with_capacity(32),
            span: None,
        };
        file.add_sheet()?;
        Ok(file)
    }

    fn add_sheet(&mut self) -> Result<(), RenderError> {
        let name = if self.look.sheet.is_empty() {
            format!("Sheet{}", self.sheets + 1)
        } else {
            self.names.name(&self.look.sheet)
        };
        let sheet = self.workbook.add_worksheet_with_constant_memory();
        sheet.set_name(&name)?;
        sheet.set_freeze_panes(1, 0)?;
        for (col, label) in self.labels.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, label, &self.header)?;
        }
        self.sheet_names.push(name);
        self.sheets += 1;
        self.next_row = 1;
        Ok(())
    }

    /// Records `at` as the workbook's creation time (else it is the time it is saved): a
    /// workbook rendered again from the same rows is then the same, byte for byte.
    pub fn created_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        let mut properties = DocProperties::new().set_creation_datetime(&at);
        if !self.look.title.is_empty() {
            properties = properties.set_title(&self.look.title);
        }
        self.workbook.set_properties(&properties);
        self
    }

    /// Sheets written so far.
    pub fn sheets(&self) -> usize {
        self.sheets
    }

    /// The names of the data sheets, in order.
    pub fn sheet_names(&self) -> &[String] {
        &self.sheet_names
    }

    /// Writes the finished workbook: each sheet's column widths and autofilter, and the chart.
    pub fn finish<W: Write + Seek + Send>(mut self, out: W) -> Result<(), RenderError> {
        let columns = self.labels.len() as u16;
        for index in 0..self.sheets {
            let last_row = if index + 1 == self.sheets {
                self.next_row - 1
            } else {
                ROWS_PER_SHEET - 1
            };
            let sheet = self.workbook.worksheet_from_index(index)?;
            for (col, width) in self.widths.iter().enumerate() {
                let chars = (width + 1).clamp(NARROWEST, WIDEST);
                sheet.set_column_width(col as u16, chars as f64)?;
            }
            if columns > 0 {
                sheet.autofilter(0, 0, last_row, columns - 1)?;
            }
        }
        if let Some(spec) = self.look.chart.clone() {
            if self.sheets == 1 && self.rows > 0 && self.rows <= spec.max_rows {
                self.add_chart(&spec)?;
            }
        }
        self.workbook.save_to_writer(out)?;
        Ok(())
    }

    fn add_chart(&mut self, spec: &ChartSpec) -> Result<(), RenderError> {
        let data = self.sheet_names[0].clone();
        let last = self.next_row - 1;
        // A scatter chart with lines: each point at its own time on a value axis. (A line chart's
        // date axis groups points by day, the least base unit spreadsheets know, and draws a
        // day of 15-minute buckets as one vertical stroke.)
        let mut chart = Chart::new(ChartType::ScatterStraight);
        for (name, column) in &spec.series {
            chart
                .add_series()
                .set_name(name.as_str())
                .set_categories((data.as_str(), 1, spec.time_column, last, spec.time_column))
                .set_values((data.as_str(), 1, *column, last, *column));
        }
        chart.title().set_name(spec.title.as_str());
        let (first, latest) = self.span.unwrap_or((0.0, 1.0));
        let (step, format) = time_axis(latest - first);
        chart
            .x_axis()
            .set_num_format(format)
            .set_min(first)
            .set_max(latest.max(first + step / 4.0))
            .set_major_unit(step)
            .set_major_gridlines(true);
        // One line needs no legend: the title names it.
        if spec.series.len() < 2 {
            chart.legend().set_hidden();
        }
        // The label shortened so that the sheet still says it is the chart.
        let label: String = self.look.sheet.chars().take(MAX_SHEET_NAME - 6).collect();
        let name = self.names.name(&format!("{} chart", label.trim_end()));
        let sheet = self.workbook.add_chartsheet();
        sheet.set_name(&name)?;
        sheet.insert_chart(0, 0, &chart)?;
        Ok(())
    }
}

/// The Excel serial day of a local time (days since 1899-12-30, the fraction the time of day).
fn excel_serial(local: chrono::NaiveDateTime) -> f64 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    (local - epoch).num_milliseconds() as f64 / 86_400_000.0
}

/// A time axis over `days`: the step between its labels (in days; about a dozen labels) and
/// their format (the time of day for a day or two, the date and time up to a month, else the
/// date).
pub fn time_axis(days: f64) -> (f64, &'static str) {
    const MINUTE: f64 = 1.0 / 1440.0;
    let steps = [
        MINUTE,
        5.0 * MINUTE,
        15.0 * MINUTE,
        30.0 * MINUTE,
        60.0 * MINUTE,
        120.0 * MINUTE,
        180.0 * MINUTE,
        360.0 * MINUTE,
        720.0 * MINUTE,
        1.0,
        2.0,
        7.0,
        14.0,
        30.0,
        61.0,
        91.0,
        182.0,
        365.0,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|step| days / step <= 12.0)
        .unwrap_or((days / 12.0).ceil());
    let format = if days <= 2.0 {
        "hh:mm"
    } else if days <= 31.0 {
        "yyyy-mm-dd hh:mm"
    } else {
        "yyyy-mm-dd"
    };
    (step, format)
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
            let mut chars = 0;
            match cell {
                Cell::Empty => {}
                Cell::Number(v) if v.is_finite() => {
                    sheet.write_number(row, col, v)?;
                    chars = ryu::Buffer::new().format_finite(v).len();
                }
                Cell::Number(_) => {}
                Cell::Count(n) => {
                    sheet.write_number(row, col, n as f64)?;
                    chars = itoa::Buffer::new().format(n).len();
                }
                Cell::Text(s) => {
                    // Past the widest a column is made, counting is no use.
                    chars = if s.len() <= WIDEST {
                        s.chars().count()
                    } else {
                        WIDEST
                    };
                    match fitted(s) {
                        None => {
                            sheet.write_string(row, col, s)?;
                        }
                        Some(fitted) => {
                            sheet.write_string(row, col, &fitted)?;
                            self.cut += 1;
                        }
                    }
                }
                Cell::Bool(b) => {
                    sheet.write_boolean(row, col, b)?;
                    chars = 5;
                }
                Cell::Time(t) => {
                    let utc = DateTime::from_timestamp_nanos(t).naive_utc();
                    let local = self.tz.from_utc_datetime(&utc).naive_local();
                    sheet.write_datetime_with_format(row, col, local, &self.datetime)?;
                    let serial = excel_serial(local);
                    self.span = Some(
                        self.span
                            .map_or((serial, serial), |(a, b)| (a.min(serial), b.max(serial))),
                    );
                    chars = DATETIME_CHARS;
                }
                Cell::Offset(t) => {
                    self.field.clear();
                    self.offsets.write_offset(t, &mut self.field);
                    sheet.write_string(row, col, String::from_utf8_lossy(&self.field))?;
                    chars = self.field.len();
                }
            }
            if let Some(width) = self.widths.get_mut(usize::from(col)) {
                *width = (*width).max(chars);
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
    fn sheet_names_are_valid_for_excel_and_unique() {
        let mut names = SheetNames::default();
        assert_eq!(
            names.name("Hall/B [north]: température moyenne*"),
            "Hall_B _north__ température moy"
        );
        assert_eq!(
            names.name("Hall/B [north]: température moyenne*"),
            "Hall_B _north__ température (2)"
        );
        assert_eq!(
            names.name("hall_b _north__ température moy"),
            "hall_b _north__ température (3)",
            "unique ignoring case"
        );
        assert_eq!(names.name("'quoted'"), "quoted");
        assert_eq!(names.name("  "), "Data");
        assert_eq!(names.name("History"), "History_");
        assert_eq!(names.name("a\tb?"), "a_b_");
        let long = "é".repeat(40);
        assert_eq!(names.name(&long).chars().count(), MAX_SHEET_NAME);
    }

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
