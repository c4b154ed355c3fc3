//! The format's rules: the extension, the columns and their labels, the timezone, CSV options.

use chrono_tz::Tz;
use serde_json::Value;

use crate::domain::request::walk::{type_name, Checker};
use crate::domain::request::{
    Column, ColumnId, Extension, Format, JobFilename, PageSize, PdfPages, Template,
};

impl Checker<'_> {
    pub(super) fn format(&mut self, v: &Value) -> Option<Format> {
        let map = self.object(
            v,
            "/format",
            &[
                "extension",
                "columns",
                "timezone",
                "csvDelimiter",
                "escapeFormulas",
                "csvBom",
                "csvDecimalSeparator",
                "template",
                "filename",
                "localTime",
                "pdf",
            ],
        )?;
        let formats: Vec<(&str, Extension)> = crate::domain::formats::FORMATS
            .iter()
            .map(|f| (f.name, f.extension))
            .collect();
        let extension = self
            .required(map, "/format", "extension")
            .and_then(|v| self.one_of(v, "/format/extension", &formats));
        // Optional since Connhex 1.3.7: the time, name, value and unit of each row by default.
        let columns = match map.get("columns") {
            None | Some(Value::Null) => Some(
                [ColumnId::Time, ColumnId::Name, ColumnId::Value, ColumnId::Unit]
                    .map(|id| Column {
                        id,
                        label: id.as_str().to_owned(),
                    })
                    .to_vec(),
            ),
            Some(v) => self.columns(v),
        };
        let template = match map.get("template") {
            None | Some(Value::Null) => Some(Template::Tabular),
            Some(v) => {
                let options: Vec<(&str, Template)> = Template::ALL.iter().map(|t| (t.as_str(), *t)).collect();
                self.one_of(v, "/format/template", &options)
            }
        };
        let filename = match map.get("filename") {
            None | Some(Value::Null) => Some(None),
            Some(v) => self
                .string(v, "/format/filename", 120)
                .and_then(|s| match JobFilename::parse(s) {
                    Ok(f) => Some(Some(f)),
                    Err(e) => {
                        self.fail("/format/filename", e);
                        None
                    }
                }),
        };
        let timezone = match map.get("timezone") {
            None | Some(Value::Null) => Some(Tz::UTC),
            Some(v) => self.timezone(v),
        };
        let csv_delimiter = match map.get("csvDelimiter") {
            None | Some(Value::Null) => Some(b','),
            Some(v) => self
                .string(v, "/format/csvDelimiter", 1)
                .and_then(|s| match s.as_bytes() {
                    [c] if c.is_ascii()
                        && !b"\"\r\n".contains(c)
                        && (c.is_ascii_graphic() || *c == b'\t' || *c == b' ') =>
                    {
                        Some(*c)
                    }
                    _ => {
                        self.fail(
                            "/format/csvDelimiter",
                            "must be one ASCII character other than a quote or a line break",
                        );
                        None
                    }
                }),
        };
        let escape_formulas = self.flag(map.get("escapeFormulas"), "/format/escapeFormulas", true);
        let local_time = self.flag(map.get("localTime"), "/format/localTime", false);
        if local_time == Some(true) && extension.is_some_and(|e| e != Extension::Parquet) {
            self.fail(
                "/format/localTime",
                "applies to `parquet` files only (a CSV's, JSON's or workbook's times are local already)",
            );
            return None;
        }
        let pdf = match map.get("pdf") {
            None | Some(Value::Null) => Some(PdfPages::default()),
            Some(v) => self.pdf_pages(v),
        };
        if pdf.is_some_and(|p| p != PdfPages::default()) && extension.is_some_and(|e| e != Extension::Pdf) {
            self.fail("/format/pdf", "applies to `pdf` reports only");
            return None;
        }
        let csv_bom = self.flag(map.get("csvBom"), "/format/csvBom", false);
        let csv_decimal_comma = match map.get("csvDecimalSeparator") {
            None | Some(Value::Null) => Some(false),
            Some(v) => self.one_of(v, "/format/csvDecimalSeparator", &[(".", false), (",", true)]),
        };
        if csv_decimal_comma == Some(true) && csv_delimiter == Some(b',') {
            self.fail(
                "/format/csvDecimalSeparator",
                "cannot be `,` while `csvDelimiter` is `,` (numbers would split into two fields): set `csvDelimiter` to `;`",
            );
            return None;
        }
        Some(Format {
            extension: extension?,
            columns: columns?,
            timezone: timezone?,
            csv_delimiter: csv_delimiter?,
            escape_formulas: escape_formulas?,
            csv_bom: csv_bom?,
            csv_decimal_comma: csv_decimal_comma?,
            template: template?,
            filename: filename?,
            local_time: local_time?,
            pdf: pdf?,
        })
    }

    /// `format.pdf`: `pageSize` (`A4`, `letter`) and `orientation` (`portrait`, `landscape`).
    fn pdf_pages(&mut self, v: &Value) -> Option<PdfPages> {
        let map = self.object(v, "/format/pdf", &["pageSize", "orientation"])?;
        let size = match map.get("pageSize") {
            None | Some(Value::Null) => Some(PageSize::A4),
            Some(v) => {
                let sizes: Vec<(&str, PageSize)> = PageSize::ALL.iter().map(|s| (s.as_str(), *s)).collect();
                self.one_of(v, "/format/pdf/pageSize", &sizes)
            }
        };
        let landscape = match map.get("orientation") {
            None | Some(Value::Null) => Some(false),
            Some(v) => self.one_of(
                v,
                "/format/pdf/orientation",
                &[("portrait", false), ("landscape", true)],
            ),
        };
        Some(PdfPages {
            size: size?,
            landscape: landscape?,
        })
    }

    pub(super) fn columns(&mut self, v: &Value) -> Option<Vec<Column>> {
        let max = self.policy.limits.max_columns;
        let list = self.array(v, "/format/columns", 1, max)?;
        let mut columns = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, entry) in list.iter().enumerate() {
            let path = format!("/format/columns/{i}");
            let Some(map) = self.object(entry, &path, &["id", "label"]) else {
                ok = false;
                continue;
            };
            let id = self.required(map, &path, "id").and_then(|v| {
                let text = self.string(v, &format!("{path}/id"), 64)?;
                let id = ColumnId::parse(text);
                if id.is_none() {
                    let valid: Vec<&str> = ColumnId::ALL.iter().map(|c| c.as_str()).collect();
                    self.fail(
                        &format!("{path}/id"),
                        format!("unknown column `{text}`; valid ids: {}", valid.join(", ")),
                    );
                }
                id
            });
            let label = self
                .required(map, &path, "label")
                .and_then(|v| self.line(v, &format!("{path}/label"), 256));
            match (id, label) {
                (Some(id), Some(label)) => columns.push(Column {
                    id,
                    label: label.to_owned(),
                }),
                _ => ok = false,
            }
        }
        ok.then_some(columns)
    }

    pub(super) fn timezone(&mut self, v: &Value) -> Option<Tz> {
        let (name, path) = match v {
            Value::String(s) => (s.as_str(), "/format/timezone".to_owned()),
            Value::Object(_) => {
                let map = self.object(v, "/format/timezone", &["name"])?;
                match map.get("name") {
                    None | Some(Value::Null) => return Some(Tz::UTC),
                    Some(name) => (
                        self.string(name, "/format/timezone/name", 64)?,
                        "/format/timezone/name".to_owned(),
                    ),
                }
            }
            other => {
                self.fail(
                    "/format/timezone",
                    format!(
                        "must be an IANA zone name or {{\"name\": ...}}, found {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        if name.eq_ignore_ascii_case("utc") {
            return Some(Tz::UTC);
        }
        let tz = name.parse::<Tz>().ok();
        if tz.is_none() {
            self.fail(
                &path,
                format!("unknown timezone `{name}`; use an IANA name such as `Europe/Rome`"),
            );
        }
        tz
    }
}
