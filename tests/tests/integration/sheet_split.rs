//! Excel's row limit: a series longer than 1,048,576 rows continues on a second sheet, with
//! the header repeated, and no row is lost.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

use exporter_core::render::xlsx_file::{XlsxFile, ROWS_PER_SHEET};
use exporter_core::render::{Cell, RowWriter};

#[test]
fn a_series_over_the_row_limit_lands_on_two_sheets_with_the_header_on_both() {
    let data_rows = u64::from(ROWS_PER_SHEET) - 1 + 25; // 25 past what one sheet holds
    let mut file = XlsxFile::new(chrono_tz::UTC, &["Time", "Value"]).expect("a workbook");
    for i in 0..data_rows {
        file.write_row(&mut [Cell::Time(i as i64 * 1_000_000_000), Cell::Number(i as f64)].into_iter())
            .expect("a row");
    }
    assert_eq!(file.rows(), data_rows);
    assert_eq!(file.sheets(), 2);
    let mut bytes = Cursor::new(Vec::new());
    file.finish(&mut bytes).expect("saved");

    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.into_inner())).expect("an xlsx");
    assert_eq!(book.sheet_names(), ["Sheet1", "Sheet2"]);
    let first = book.worksheet_range("Sheet1").expect("sheet 1");
    assert_eq!(first.height(), ROWS_PER_SHEET as usize);
    assert_eq!(first.get((0, 1)), Some(&Data::String("Value".into())));
    let last_on_first = f64::from(ROWS_PER_SHEET - 2);
    assert_eq!(
        first.get((ROWS_PER_SHEET as usize - 1, 1)),
        Some(&Data::Float(last_on_first))
    );
    let second = book.worksheet_range("Sheet2").expect("sheet 2");
    assert_eq!(second.height(), 26);
    assert_eq!(second.get((0, 0)), Some(&Data::String("Time".into())));
    assert_eq!(second.get((1, 1)), Some(&Data::Float(last_on_first + 1.0)));
    assert_eq!(second.get((25, 1)), Some(&Data::Float((data_rows - 1) as f64)));
}
