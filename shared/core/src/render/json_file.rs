//! JSON and NDJSON files: a row is an object keyed by the column labels (the CSV's header, in its
//! order), its cells typed: numbers in shortest round-trip form, counts as integers, booleans as
//! `true`/`false`, an empty cell as `null`, times as RFC 3339 text with the zone's offset (the
//! CSV's text exactly), text as JSON strings. `json` is one array of rows (`[`, rows separated by
//! `,` and a line break, `]`); `ndjson` is a row per line. Both are written as they go and go on
//! across invocations like a CSV: a continued array knows from the rows written before whether
//! the next row needs its separator. A label given twice is keyed `label (2)` the second time,
//! so that no parser drops a cell.

use std::io::Write;

use chrono_tz::Tz;

use super::cells::{write_number, TimeFormatter};
use super::{Cell, RenderError, RowWriter};

/// How the rows are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One JSON array of row objects.
    Array,
    /// One row object per line (newline-delimited JSON).
    Lines,
}

/// A JSON or NDJSON file being written to `W` (buffered here: `W` need not be).
pub struct JsonFile<W: Write> {
    out: std::io::BufWriter<W>,
    framing: Framing,
    /// Each column's key, encoded as a JSON string with its `:`.
    keys: Vec<Vec<u8>>,
    times: TimeFormatter,
    field: Vec<u8>,
    rows: u64,
}

impl<W: Write> JsonFile<W> {
    /// Starts a file whose rows are keyed by `labels`.
    pub fn new(out: W, framing: Framing, tz: Tz, labels: &[&str]) -> Result<Self, RenderError> {
        let mut file = Self::continued(out, framing, tz, labels, 0)?;
        if framing == Framing::Array {
            file.out.write_all(b"[")?;
        }
        Ok(file)
    }

    /// Goes on with a file an earlier invocation began with `rows` rows; `out` writes after them.
    pub fn continued(
        out: W,
        framing: Framing,
        tz: Tz,
        labels: &[&str],
        rows: u64,
    ) -> Result<Self, RenderError> {
        Ok(Self {
            out: std::io::BufWriter::with_capacity(256 * 1024, out),
            framing,
            keys: keys(labels)?,
            times: TimeFormatter::new(tz),
            field: Vec::with_capacity(64),
            rows,
        })
    }

    /// Flushes and hands back the destination.
    fn into_inner(self) -> Result<W, RenderError> {
        self.out.into_inner().map_err(|e| RenderError::Io(e.into_error()))
    }

    /// Ends the file (an array's `]`), flushes and hands back the destination.
    pub fn finish(mut self) -> Result<W, RenderError> {
        if self.framing == Framing::Array {
            self.out
                .write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        self.into_inner()
    }
}

/// Each label as a JSON key (`"label":`), a repeated one numbered.
fn keys(labels: &[&str]) -> Result<Vec<Vec<u8>>, RenderError> {
    let mut seen: Vec<String> = Vec::with_capacity(labels.len());
    let mut keys = Vec::with_capacity(labels.len());
    for label in labels {
        let mut key = (*label).to_owned();
        let mut n = 1;
        while seen.contains(&key) {
            n += 1;
            key = format!("{label} ({n})");
        }
        let mut encoded = serde_json::to_vec(&key).map_err(std::io::Error::other)?;
        encoded.push(b':');
        keys.push(encoded);
        seen.push(key);
    }
    Ok(keys)
}

impl<W: Write> RowWriter for JsonFile<W> {
    fn write_row(&mut self, cells: &mut dyn Iterator<Item = Cell<'_>>) -> Result<(), RenderError> {
        let field = &mut self.field;
        field.clear();
        match (self.framing, self.rows) {
            (Framing::Array, 0) => field.extend_from_slice(b"\n{"),
            (Framing::Array, _) => field.extend_from_slice(b",\n{"),
            (Framing::Lines, _) => field.push(b'{'),
        }
        for (i, (key, cell)) in self.keys.iter().zip(cells).enumerate() {
            if i > 0 {
                field.push(b',');
            }
            field.extend_from_slice(key);
            match cell {
                Cell::Empty => field.extend_from_slice(b"null"),
                Cell::Number(v) if !v.is_finite() => field.extend_from_slice(b"null"),
                Cell::Number(v) => write_number(v, field),
                Cell::Count(n) => field.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                Cell::Bool(b) => field.extend_from_slice(if b { b"true" } else { b"false" }),
                Cell::Time(t) => {
                    field.push(b'"');
                    self.times.write(t, field);
                    field.push(b'"');
                }
                Cell::Offset(t) => {
                    field.push(b'"');
                    self.times.write_offset(t, field);
                    field.push(b'"');
                }
                Cell::Text(s) => serde_json::to_writer(&mut *field, s).map_err(std::io::Error::other)?,
            }
        }
        field.push(b'}');
        if self.framing == Framing::Lines {
            field.push(b'\n');
        }
        self.out.write_all(field)?;
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
        self.into_inner()?.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(file: &mut JsonFile<Vec<u8>>) {
        file.write_row(
            &mut [
                Cell::Time(1_792_886_400_000_000_000),
                Cell::Offset(1_792_886_400_000_000_000),
                Cell::Number(0.1 + 0.2),
                Cell::Count(3),
                Cell::Bool(true),
                Cell::Text("a \"quoted\"\nline é"),
            ]
            .into_iter(),
        )
        .expect("row");
        file.write_row(
            &mut [
                Cell::Time(1_792_890_000_000_000_000),
                Cell::Offset(1_792_890_000_000_000_000),
                Cell::Empty,
                Cell::Count(0),
                Cell::Number(f64::NAN),
                Cell::Empty,
            ]
            .into_iter(),
        )
        .expect("row");
    }

    const LABELS: [&str; 6] = ["time", "offset", "v", "n", "b", "v"];

    #[test]
    fn an_array_of_typed_rows_keyed_by_label_across_the_autumn_hour() {
        let mut file =
            JsonFile::new(Vec::new(), Framing::Array, chrono_tz::Europe::Rome, &LABELS).expect("begun");
        rows(&mut file);
        let text = String::from_utf8(file.finish().expect("flushed")).expect("utf-8");
        assert_eq!(
            text,
            "[\n{\"time\":\"2026-10-25T02:00:00+02:00\",\"offset\":\"+02:00\",\"v\":0.30000000000000004,\"n\":3,\"b\":true,\"v (2)\":\"a \\\"quoted\\\"\\nline é\"},\n\
             {\"time\":\"2026-10-25T02:00:00+01:00\",\"offset\":\"+01:00\",\"v\":null,\"n\":0,\"b\":null,\"v (2)\":null}\n]\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed[0]["v"].as_f64(), Some(0.1 + 0.2));
        let empty = JsonFile::new(Vec::new(), Framing::Array, chrono_tz::UTC, &LABELS)
            .expect("begun")
            .finish()
            .expect("flushed");
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn a_file_that_goes_on_equals_one_written_at_once() {
        let mut whole =
            JsonFile::new(Vec::new(), Framing::Array, chrono_tz::Europe::Rome, &LABELS).expect("begun");
        rows(&mut whole);
        rows(&mut whole);
        let whole = whole.finish().expect("flushed");
        for framing in [Framing::Array, Framing::Lines] {
            let mut first =
                JsonFile::new(Vec::new(), framing, chrono_tz::Europe::Rome, &LABELS).expect("begun");
            rows(&mut first);
            let mut bytes = first.into_inner().expect("paused");
            let mut second = JsonFile::continued(Vec::new(), framing, chrono_tz::Europe::Rome, &LABELS, 2)
                .expect("continued");
            rows(&mut second);
            bytes.extend(second.finish().expect("flushed"));
            if framing == Framing::Array {
                assert_eq!(bytes, whole);
            } else {
                let text = String::from_utf8(bytes).expect("utf-8");
                assert_eq!(text.lines().count(), 4);
                for line in text.lines() {
                    let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                    assert!(row.is_object());
                }
            }
        }
    }
}
