//! The work of one job: each item read, decimated, rendered to a temporary file and uploaded;
//! a zip when there are several; the job's files removed again if anything fails.

use std::io::{Seek, Write};

use chrono::{DateTime, Utc};
use tempfile::NamedTempFile;

use exporter::domain::decimation::Decimator;
use exporter::domain::export::rfc3339;
use exporter::domain::files;
use exporter::domain::job::{FileRecord, ItemWindow, JobDetail};
use exporter::domain::request::{Extension, Item};
use exporter::domain::series::Point;
use exporter::domain::{Export, Schedule, Window};
use exporter::ports::{Cause, Clock, FileError, ReadError, SeriesQuery, SliceSink};
use exporter::render::csv_file::CsvFile;
use exporter::render::series::SeriesRenderer;
use exporter::render::xlsx_file::XlsxFile;
use exporter::render::{ItemContext, RenderError, RowWriter};

use crate::Deps;

/// Why a job failed; its text is what the job record shows.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
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
    #[error("item {0}: its window is out of range")]
    Window(usize),
    #[error(
        "ran out of time after {rows} rows of item {item}: the export takes longer than one run may \
         (the function's timeout less RUN_DEADLINE_MARGIN_SECONDS); a shorter window or a decimation helps"
    )]
    OutOfTime { item: usize, rows: u64 },
}

/// The attempt's time is up: reading stops here.
#[derive(Debug, thiserror::Error)]
#[error("the run's time is up")]
struct TimeUp;

/// A sink that stops taking points once the attempt must stop working.
struct Timed<'s> {
    inner: &'s mut SeriesRenderer,
    stop_at: Option<DateTime<Utc>>,
    clock: &'s dyn Clock,
}

impl Timed<'_> {
    fn time_is_up(&self) -> bool {
        self.stop_at.is_some_and(|stop| self.clock.now() >= stop)
    }
}

#[async_trait::async_trait]
impl SliceSink for Timed<'_> {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        if self.time_is_up() {
            return Err(Box::new(TimeUp));
        }
        self.inner.accept(points).await
    }
}

/// Runs the job; on failure returns what was recorded so far and the error.
pub(crate) async fn run_job(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    occurrence: Option<u64>,
) -> Result<JobDetail, (JobDetail, JobError)> {
    let mut detail = JobDetail::default();
    let mut written: Vec<(NamedTempFile, String)> = Vec::new();
    let result = export_items(
        deps,
        export,
        job_id,
        scheduled_at,
        occurrence,
        &mut detail,
        &mut written,
    )
    .await;
    if let Err(error) = result {
        // Leave nothing half-done: every file under the job's prefix goes, this attempt's and
        // any an earlier attempt of the same job left before it failed.
        let prefix = format!("{}/", files::job_prefix(&export.id, job_id));
        if let Err(e) = deps.files.remove_all(&prefix).await {
            tracing::error!(prefix, error = %e, "could not remove the files of a failed job; they expire with the bucket's lifecycle rule");
        }
        detail.files.clear();
        detail.archive = None;
        return Err((detail, error));
    }
    Ok(detail)
}

async fn export_items(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    occurrence: Option<u64>,
    detail: &mut JobDetail,
    written: &mut Vec<(NamedTempFile, String)>,
) -> Result<(), JobError> {
    let format = &export.request.format;
    let extension = format.extension.file_extension();
    let prefix = files::job_prefix(&export.id, job_id);
    let mut names = files::Names::default();
    for (index, item) in export.request.items.iter().enumerate() {
        if deps.stop_at.is_some_and(|stop| deps.clock.now() >= stop) {
            return Err(JobError::OutOfTime { item: index, rows: 0 });
        }
        let window = match (export.request.schedule, occurrence) {
            (Schedule::Recurring(recurrence), Some(k)) => item.span.recurring_window(&recurrence, k),
            _ => item.span.one_time_window(scheduled_at, format.timezone),
        }
        .ok_or(JobError::Window(index))?;
        detail.windows.push(ItemWindow {
            from: window.from.map(rfc3339),
            to: rfc3339(window.to),
        });
        let name = names.unique(files::file_stem(item, &window));
        let (file, rows, warnings) = render_item(deps, export, index, item, window).await?;
        detail.warnings.extend(warnings);
        let key = format!("{prefix}/{name}.{extension}");
        let bytes = deps
            .files
            .put(&key, file.path(), files::content_type(format.extension))
            .await?;
        detail.files.push(FileRecord { key, rows, bytes });
        written.push((file, format!("{name}.{extension}")));
    }
    if written.len() > 1 {
        let archive = zip_files(deps, written)?;
        let key = files::archive_key(&export.id, job_id);
        let bytes = deps
            .files
            .put(&key, archive.path(), files::ZIP_CONTENT_TYPE)
            .await?;
        let rows = detail.files.iter().map(|f| f.rows).sum();
        detail.archive = Some(FileRecord { key, rows, bytes });
    }
    Ok(())
}

/// Renders one item into a temporary file; returns it, its row count and warnings.
async fn render_item(
    deps: Deps<'_>,
    export: &Export,
    index: usize,
    item: &Item,
    window: Window,
) -> Result<(NamedTempFile, u64, Vec<String>), JobError> {
    let format = &export.request.format;
    let labels: Vec<&str> = format.columns.iter().map(|c| c.label.as_str()).collect();
    let mut file = match &deps.config.work_dir {
        Some(dir) => NamedTempFile::new_in(dir)?,
        None => NamedTempFile::new()?,
    };
    let render = |source| JobError::Render { item: index, source };
    let writer: Box<dyn RowWriter + Send> = match format.extension {
        Extension::Csv => Box::new(
            CsvFile::new(
                file.reopen()?,
                format.csv_delimiter,
                format.timezone,
                &labels,
                format.escape_formulas,
            )
            .map_err(render)?,
        ),
        Extension::Xls | Extension::Xlsx => {
            Box::new(XlsxFile::new(format.timezone, &labels).map_err(render)?)
        }
    };
    let context = ItemContext {
        label: item.label.clone(),
        target: item.target.as_str().to_owned(),
        channel: item.channel_id.to_string(),
        subtopic: item.subtopic.as_str().to_owned(),
    };
    let columns = format.columns.iter().map(|c| c.id).collect();
    let decimator = item
        .decimation
        .map(|d| Decimator::new(format.timezone, d.ds, d.dsf));
    let mut sink = SeriesRenderer::new(writer, columns, context, decimator);
    let query = SeriesQuery {
        channel: item.channel_id.to_string(),
        subtopic: item.subtopic.as_str().to_owned(),
        name: item.target.as_str().to_owned(),
        window,
    };
    let mut timed = Timed {
        inner: &mut sink,
        stop_at: deps.stop_at,
        clock: deps.clock,
    };
    let read = deps.reader.read(&query, &mut timed).await;
    let rows = sink.rows();
    read.map_err(|source| match source {
        ReadError::Sink(cause) if cause.is::<TimeUp>() => JobError::OutOfTime { item: index, rows },
        ReadError::Sink(cause) => match cause.downcast::<RenderError>() {
            Ok(source) => JobError::Render {
                item: index,
                source: *source,
            },
            Err(other) => JobError::Render {
                item: index,
                source: RenderError::Io(std::io::Error::other(other)),
            },
        },
        source => JobError::Read {
            item: index,
            name: item.target.as_str().to_owned(),
            source,
        },
    })?;
    let rendered = sink.finish(file.as_file_mut()).map_err(render)?;
    let mut warnings = Vec::new();
    if rendered.skipped > 0 {
        warnings.push(format!(
            "item {index}: {} points with neither a number nor a boolean were skipped",
            rendered.skipped
        ));
    }
    if rendered.cut > 0 {
        warnings.push(format!(
            "item {index}: {} text cells longer than a spreadsheet cell holds ({} characters) were cut, ending with `{}`",
            rendered.cut,
            exporter::render::xlsx_file::MAX_CELL_CHARS,
            exporter::render::xlsx_file::CELL_CUT_MARKER
        ));
    }
    Ok((file, rendered.rows, warnings))
}

/// Zips the job's files into a temporary file.
fn zip_files(deps: Deps<'_>, files: &mut [(NamedTempFile, String)]) -> Result<NamedTempFile, JobError> {
    let archive = match &deps.config.work_dir {
        Some(dir) => NamedTempFile::new_in(dir)?,
        None => NamedTempFile::new()?,
    };
    let mut zip = zip::ZipWriter::new(archive.reopen()?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (file, name) in files.iter_mut() {
        zip.start_file(name.as_str(), options)
            .map_err(std::io::Error::other)?;
        let source = file.as_file_mut();
        source.rewind()?;
        std::io::copy(source, &mut zip)?;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()?;
    Ok(archive)
}
