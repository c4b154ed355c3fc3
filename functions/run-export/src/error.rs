//! Why a job failed.

use exporter_core::ports::{FileError, ReadError};
use exporter_core::render::RenderError;

/// Why a job failed; its text is what the job record shows.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The export's definition changed while the job ran (the reason says how to run it again).
    #[error("{0}")]
    Edited(String),
    #[error("item {item}: reading `{name}` failed: {source}")]
    Read {
        item: usize,
        name: String,
        #[source]
        source: ReadError,
    },
    #[error("item {item}: writing the file failed: {source}")]
    Render {
        item: usize,
        #[source]
        source: RenderError,
    },
    #[error("storing the file failed: {0}")]
    File(#[from] FileError),
    #[error("a temporary file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "item {item}: more than {cap} rows, the most {what}; export it as CSV, JSON or NDJSON (no \
         such limit), or decimate it"
    )]
    TooManyRows {
        item: usize,
        cap: u64,
        what: &'static str,
    },
    #[error("item {0}: its window is out of range")]
    Window(usize),
    #[error(
        "ran out of time after {rows} rows of item {item}: the export takes longer than one run may \
         (the function's timeout less RUN_DEADLINE_MARGIN_SECONDS); a shorter window or a decimation helps"
    )]
    OutOfTime { item: usize, rows: u64 },
    #[error(
        "ran out of time zipping the job's {files} files ({bytes} bytes) in one run: the zip takes \
         longer than one run may (the function's timeout less RUN_DEADLINE_MARGIN_SECONDS); fewer \
         or smaller items help"
    )]
    ZipOutOfTime { files: usize, bytes: u64 },
    #[error("drawing the job's report failed: {0}")]
    Report(String),
}

impl JobError {
    /// The class of the failure, for a metric's dimension (a few fixed names).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Read { source, .. } => match source {
                ReadError::Refused(_) => "readerRefused",
                ReadError::Exhausted(_) => "readerUnavailable",
                ReadError::Permanent(_) => "readerFailed",
                ReadError::Sink(_) => "render",
            },
            Self::Render { .. } => "render",
            Self::File(_) => "files",
            Self::Io(_) => "io",
            Self::TooManyRows { .. } => "tooManyRows",
            Self::Window(_) => "window",
            Self::OutOfTime { .. } => "outOfTime",
            Self::ZipOutOfTime { .. } => "zipOutOfTime",
            Self::Report(_) => "report",
            Self::Edited(_) => "edited",
        }
    }
}
