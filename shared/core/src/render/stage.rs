//! The stage of a workbook: a workbook is saved whole at its end and cannot be appended across
//! processes, so a workbook's rows are first written to a compact stage (which can pause and go
//! on anywhere, like a CSV) and the workbook is rendered from it in a last step, streaming.
//!
//! Each row is its cell count (`u16`), then each cell: a tag byte and its value in little-endian
//! (`e` empty, `n` a number as its `f64` bits, `c` a count, `t` a time in Unix nanoseconds, `o` the
//! zone's offset at a time in Unix nanoseconds, `b` a
//! boolean, `s` a text as its UTF-8 length in a `u32` and its bytes). Exact: a staged row renders
//! as the row itself would have. The count of rows is checked as it grows: past `cap`, writing
//! fails at once, not after hours of work.

use std::io::{BufRead, Read, Write};

use super::{Cell, RenderError, RowWriter};

/// Rows being staged into `W` (buffered here: `W` need not be).
pub struct StageFile<W: Write> {
    out: std::io::BufWriter<W>,
    /// The row being encoded (reused: no allocation per row).
    row: Vec<u8>,
    rows: u64,
    cap: u64,
}

impl<W: Write> StageFile<W> {
    /// A stage that already holds `rows` rows (0 for a new one); more than `cap` fail.
    pub fn new(out: W, rows: u64, cap: u64) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(256 * 1024, out),
            row: Vec::with_capacity(256),
            rows,
            cap,
        }
    }

    fn flush(self) -> Result<(), RenderError> {
        self.out
            .into_inner()
            .map_err(|e| RenderError::Io(e.into_error()))?
            .flush()?;
        Ok(())
    }
}

impl<W: Write> RowWriter for StageFile<W> {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        if self.rows >= self.cap {
            return Err(RenderError::TooManyRows(self.cap));
        }
        let row = &mut self.row;
        row.clear();
        let mut count = 0u16;
        for cell in cells {
            count = count
                .checked_add(1)
                .ok_or_else(|| RenderError::Io(std::io::Error::other("too many columns")))?;
            match cell {
                Cell::Empty => row.push(b'e'),
                Cell::Number(v) => {
                    row.push(b'n');
                    row.extend_from_slice(&v.to_bits().to_le_bytes());
                }
                Cell::Count(n) => {
                    row.push(b'c');
                    row.extend_from_slice(&n.to_le_bytes());
                }
                Cell::Time(t) => {
                    row.push(b't');
                    row.extend_from_slice(&t.to_le_bytes());
                }
                Cell::Offset(t) => {
                    row.push(b'o');
                    row.extend_from_slice(&t.to_le_bytes());
                }
                Cell::Bool(b) => row.extend_from_slice(&[b'b', u8::from(b)]),
                Cell::Text(s) => {
                    let length = u32::try_from(s.len())
                        .map_err(|_| RenderError::Io(std::io::Error::other("a text too long")))?;
                    row.push(b's');
                    row.extend_from_slice(&length.to_le_bytes());
                    row.extend_from_slice(s.as_bytes());
                }
            }
        }
        self.out.write_all(&count.to_le_bytes())?;
        self.out.write_all(row)?;
        self.rows += 1;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish_into(self: Box<Self>, _file: &mut std::fs::File) -> Result<(), RenderError> {
        (*self).flush()
    }

    fn pausable(&self) -> bool {
        true
    }

    fn pause(self: Box<Self>) -> Result<(), RenderError> {
        (*self).flush()
    }
}

/// An owned cell read back from a stage.
#[derive(Clone, Debug, PartialEq)]
enum Staged {
    Empty,
    Number(f64),
    Count(u64),
    Time(i64),
    Offset(i64),
    Bool(bool),
    Text(String),
}

impl Staged {
    fn cell(&self) -> Cell<'_> {
        match self {
            Self::Empty => Cell::Empty,
            Self::Number(v) => Cell::Number(*v),
            Self::Count(n) => Cell::Count(*n),
            Self::Time(t) => Cell::Time(*t),
            Self::Offset(t) => Cell::Offset(*t),
            Self::Bool(b) => Cell::Bool(*b),
            Self::Text(s) => Cell::Text(s),
        }
    }
}

fn corrupt(what: &str) -> RenderError {
    RenderError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the stage is corrupt: {what}"),
    ))
}

fn array<const N: usize>(input: &mut impl Read) -> Result<[u8; N], RenderError> {
    let mut bytes = [0; N];
    input
        .read_exact(&mut bytes)
        .map_err(|_| corrupt("a cell ends early"))?;
    Ok(bytes)
}

/// Writes every staged row of `input` to `writer`, in order; returns how many there were.
pub fn render_stage(input: impl Read, writer: &mut dyn RowWriter) -> Result<u64, RenderError> {
    let mut input = std::io::BufReader::with_capacity(256 * 1024, input);
    let mut row: Vec<Staged> = Vec::new();
    let mut rows = 0;
    loop {
        if input.fill_buf()?.is_empty() {
            return Ok(rows);
        }
        let count = u16::from_le_bytes(array(&mut input)?);
        row.clear();
        for _ in 0..count {
            let [tag] = array(&mut input)?;
            row.push(match tag {
                b'e' => Staged::Empty,
                b'n' => Staged::Number(f64::from_bits(u64::from_le_bytes(array(&mut input)?))),
                b'c' => Staged::Count(u64::from_le_bytes(array(&mut input)?)),
                b't' => Staged::Time(i64::from_le_bytes(array(&mut input)?)),
                b'o' => Staged::Offset(i64::from_le_bytes(array(&mut input)?)),
                b'b' => Staged::Bool(array::<1>(&mut input)?[0] != 0),
                b's' => {
                    let length = u32::from_le_bytes(array(&mut input)?) as usize;
                    let mut bytes = vec![0; length];
                    input
                        .read_exact(&mut bytes)
                        .map_err(|_| corrupt("a text ends early"))?;
                    Staged::Text(String::from_utf8(bytes).map_err(|_| corrupt("a text is not UTF-8"))?)
                }
                _ => return Err(corrupt("an unknown cell")),
            });
        }
        writer.write_row(&mut row.iter().map(Staged::cell))?;
        rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the rows it is given.
    #[derive(Default)]
    struct Rows(Vec<Vec<String>>);

    impl RowWriter for Rows {
        fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
            self.0.push(cells.map(|c| format!("{c:?}")).collect());
            Ok(())
        }
        fn rows(&self) -> u64 {
            self.0.len() as u64
        }
        fn finish_into(self: Box<Self>, _: &mut std::fs::File) -> Result<(), RenderError> {
            Ok(())
        }
    }

    #[test]
    fn staged_rows_come_back_exactly_and_a_stage_paused_goes_on() {
        let rows: Vec<Vec<Cell<'_>>> = vec![
            vec![
                Cell::Time(-1),
                Cell::Number(0.1 + 0.2),
                Cell::Empty,
                Cell::Text("é=x"),
            ],
            vec![
                Cell::Time(i64::MAX),
                Cell::Number(f64::NAN),
                Cell::Count(u64::MAX),
                Cell::Bool(true),
            ],
            vec![Cell::Bool(false), Cell::Text(""), Cell::Number(-0.0)],
        ];
        let mut whole = Vec::new();
        let mut stage = Box::new(StageFile::new(&mut whole, 0, 10));
        for row in &rows {
            stage.write_row(&mut row.iter().copied()).expect("staged");
        }
        stage.pause().expect("flushed");
        // The same rows staged in two goes, the second going on after the first's bytes.
        let mut parts = Vec::new();
        let mut first = Box::new(StageFile::new(&mut parts, 0, 10));
        first.write_row(&mut rows[0].iter().copied()).expect("staged");
        first.pause().expect("flushed");
        let mut second = Box::new(StageFile::new(&mut parts, 1, 10));
        for row in &rows[1..] {
            second.write_row(&mut row.iter().copied()).expect("staged");
        }
        assert_eq!(second.rows(), 3);
        second.pause().expect("flushed");
        assert_eq!(parts, whole);

        let mut back = Rows::default();
        assert_eq!(render_stage(whole.as_slice(), &mut back).expect("renders"), 3);
        let expected: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| format!("{c:?}")).collect())
            .collect();
        assert_eq!(back.0, expected);
    }

    #[test]
    fn a_stage_refuses_the_row_past_its_cap_and_a_corrupt_stage_is_an_error() {
        let mut out = Vec::new();
        let mut stage = StageFile::new(&mut out, 1, 2);
        stage
            .write_row(&mut [Cell::Count(1)].into_iter())
            .expect("the second row");
        assert!(matches!(
            stage.write_row(&mut [Cell::Count(2)].into_iter()),
            Err(RenderError::TooManyRows(2))
        ));
        let mut back = Rows::default();
        assert!(render_stage(&b"\x01\x00z"[..], &mut back).is_err());
        assert!(render_stage(&b"\x01\x00n\x01"[..], &mut back).is_err());
    }
}
