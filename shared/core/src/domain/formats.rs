//! The file formats a request may choose, registered once: what the request calls each, the
//! extension and content type of the files written, and how a file in it goes on across
//! invocations. A new format is a variant of [`Extension`], an entry here, and its writer in
//! `render::writer` (and, when staged, its renderer from the stage in run-export): the compiler
//! points at each place, since every match on a format is exhaustive.

/// The output format of the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    Csv,
    /// The seed's `xls`: written as an Office Open XML workbook named `.xlsx`.
    Xls,
    Xlsx,
    /// One JSON array of row objects.
    Json,
    /// A JSON row object per line.
    Ndjson,
    /// Apache Parquet, typed columns.
    Parquet,
    /// A PDF report of the job: charts, summaries, short tables.
    Pdf,
}

impl Extension {
    /// As the request names it.
    pub fn as_str(self) -> &'static str {
        of(self).name
    }

    /// The extension of the files written.
    pub fn file_extension(self) -> &'static str {
        of(self).file_extension
    }

    /// The extension of an item's file: a report's items are files of their first rows (CSV),
    /// the report being the job's file.
    pub fn item_extension(self) -> &'static str {
        match self {
            Self::Pdf => "head.csv",
            other => other.file_extension(),
        }
    }
}

/// How a file in a format is written across invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// The file itself pauses and goes on: what the next leg writes is appended (CSV).
    Appended,
    /// Rows are staged while the job runs (the stage pauses and goes on) and the file is
    /// rendered from the stage at the end (workbooks, whose layout needs every row first).
    Staged,
}

/// A registered file format.
#[derive(Debug)]
pub struct FileFormat {
    pub extension: Extension,
    /// As the request names it (`format.extension`).
    pub name: &'static str,
    /// The extension of the files written.
    pub file_extension: &'static str,
    pub content_type: &'static str,
    pub continuation: Continuation,
}

/// Every format, as requests name them.
pub static FORMATS: [FileFormat; 7] = [
    FileFormat {
        extension: Extension::Csv,
        name: "csv",
        file_extension: "csv",
        content_type: "text/csv; charset=utf-8",
        continuation: Continuation::Appended,
    },
    // The seed's `xls`: written as an Office Open XML workbook named `.xlsx`.
    FileFormat {
        extension: Extension::Xls,
        name: "xls",
        file_extension: "xlsx",
        content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        continuation: Continuation::Staged,
    },
    FileFormat {
        extension: Extension::Xlsx,
        name: "xlsx",
        file_extension: "xlsx",
        content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        continuation: Continuation::Staged,
    },
    FileFormat {
        extension: Extension::Json,
        name: "json",
        file_extension: "json",
        content_type: "application/json",
        continuation: Continuation::Appended,
    },
    FileFormat {
        extension: Extension::Ndjson,
        name: "ndjson",
        file_extension: "ndjson",
        content_type: "application/x-ndjson",
        continuation: Continuation::Appended,
    },
    FileFormat {
        extension: Extension::Parquet,
        name: "parquet",
        file_extension: "parquet",
        content_type: "application/vnd.apache.parquet",
        continuation: Continuation::Staged,
    },
    // A report of the job's items: each item's file is its first rows (a CSV, written as it
    // goes, that the report's table shows); the report is drawn at the job's end from those and
    // the series and summaries the run kept.
    FileFormat {
        extension: Extension::Pdf,
        name: "pdf",
        file_extension: "pdf",
        content_type: "application/pdf",
        continuation: Continuation::Appended,
    },
];

/// The registered format of `extension`.
pub fn of(extension: Extension) -> &'static FileFormat {
    match FORMATS.iter().find(|f| f.extension == extension) {
        Some(format) => format,
        // Every variant is registered (a test holds to it): the first stands in.
        None => &FORMATS[0],
    }
}

/// The format a request names `name`, if any.
pub fn named(name: &str) -> Option<Extension> {
    FORMATS.iter().find(|f| f.name == name).map(|f| f.extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_registered_once_under_its_own_name() {
        for extension in [
            Extension::Csv,
            Extension::Xls,
            Extension::Xlsx,
            Extension::Json,
            Extension::Ndjson,
            Extension::Parquet,
            Extension::Pdf,
        ] {
            let format = of(extension);
            assert_eq!(format.extension, extension);
            assert_eq!(named(format.name), Some(extension));
            assert_eq!(FORMATS.iter().filter(|f| f.name == format.name).count(), 1);
        }
        assert_eq!(named("pdfa"), None);
        assert_eq!(of(Extension::Xls).file_extension, "xlsx");
        assert_eq!(of(Extension::Csv).continuation, Continuation::Appended);
        assert_eq!(of(Extension::Xlsx).continuation, Continuation::Staged);
    }
}
