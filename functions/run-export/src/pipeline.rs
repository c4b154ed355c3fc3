//! The work of one job: each item read, decimated, rendered to a temporary file and uploaded;
//! a zip when there are several; the job's files removed again if anything fails.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use tempfile::NamedTempFile;

use exporter::domain::decimation::Decimator;
use exporter::domain::export::rfc3339;
use exporter::domain::job::{FileRecord, ItemWindow, JobDetail};
use exporter::domain::request::{Extension, Item};
use exporter::domain::{Export, Schedule, Window};
use exporter::ports::{FileError, FileStore, ReadError, SeriesQuery};
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
        // Leave nothing half-done: the job's completed files go too.
        for file in detail.files.iter().chain(detail.archive.iter()) {
            if let Err(e) = deps.files.delete(&file.key).await {
                tracing::error!(key = %file.key, error = %e, "could not remove a file of a failed job");
            }
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
    let prefix = format!("exports/{}/{job_id}", export.id);
    let mut names = HashSet::new();
    for (index, item) in export.request.items.iter().enumerate() {
        let window = match (export.request.schedule, occurrence) {
            (Schedule::Recurring(recurrence), Some(k)) => item.span.recurring_window(&recurrence, k),
            _ => item.span.one_time_window(scheduled_at, format.timezone),
        }
        .ok_or(JobError::Window(index))?;
        detail.windows.push(ItemWindow {
            from: window.from.map(rfc3339),
            to: rfc3339(window.to),
        });
        let name = unique(&mut names, file_stem(item, &window));
        let (file, rows, warnings) = render_item(deps, export, index, item, window).await?;
        detail.warnings.extend(warnings);
        let key = format!("{prefix}/{name}.{extension}");
        let bytes = upload_file(
            deps.files,
            &key,
            file.path(),
            content_type(format.extension),
            deps.config.part_size,
        )
        .await?;
        detail.files.push(FileRecord { key, rows, bytes });
        written.push((file, format!("{name}.{extension}")));
    }
    if written.len() > 1 {
        let archive = zip_files(deps, written)?;
        let key = format!("{prefix}/export-{job_id}.zip");
        let bytes = upload_file(
            deps.files,
            &key,
            archive.path(),
            "application/zip",
            deps.config.part_size,
        )
        .await?;
        let rows = detail.files.iter().map(|f| f.rows).sum();
        detail.archive = Some(FileRecord { key, rows, bytes });
    }
    Ok(())
}

fn content_type(extension: Extension) -> &'static str {
    match extension {
        Extension::Csv => "text/csv; charset=utf-8",
        Extension::Xls | Extension::Xlsx => {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        }
    }
}

/// A safe file name: the item's `filename`, or its label (else SenML name) and window.
fn file_stem(item: &Item, window: &Window) -> String {
    let stem = match &item.filename {
        Some(name) => {
            let name = name.as_str();
            let lower = name.to_ascii_lowercase();
            [".csv", ".xlsx", ".xls"]
                .iter()
                .find(|ext| lower.ends_with(*ext))
                .map_or(name, |ext| &name[..name.len() - ext.len()])
                .to_owned()
        }
        None => {
            let subject = item.label.as_deref().unwrap_or(item.target.as_str());
            let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
            match window.from {
                Some(from) => format!("{subject}_{}_{}", stamp(from), stamp(window.to)),
                None => format!("{subject}_until_{}", stamp(window.to)),
            }
        }
    };
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let safe = safe.trim_matches('.').to_owned();
    if safe.is_empty() {
        "export".to_owned()
    } else {
        safe
    }
}

fn unique(taken: &mut HashSet<String>, stem: String) -> String {
    let mut name = stem.clone();
    let mut n = 2;
    while !taken.insert(name.to_ascii_lowercase()) {
        name = format!("{stem}-{n}");
        n += 1;
    }
    name
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
            CsvFile::new(file.reopen()?, format.csv_delimiter, format.timezone, &labels).map_err(render)?,
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
    deps.reader
        .read(&query, &mut sink)
        .await
        .map_err(|source| match source {
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

/// Uploads a local file to `key` in parts of `part_size`; aborts the upload on any failure, so
/// the key never holds a partial file. Returns the file's size.
pub async fn upload_file(
    files: &dyn FileStore,
    key: &str,
    path: &Path,
    content_type: &str,
    part_size: usize,
) -> Result<u64, JobError> {
    let upload = files.begin(key, content_type).await?;
    let sent = send_parts(files, key, &upload, path, part_size).await;
    match sent {
        Ok((tags, bytes)) => match files.complete(key, &upload, tags).await {
            Ok(()) => Ok(bytes),
            Err(e) => {
                abort(files, key, &upload).await;
                Err(e.into())
            }
        },
        Err(e) => {
            abort(files, key, &upload).await;
            Err(e)
        }
    }
}

async fn abort(files: &dyn FileStore, key: &str, upload: &str) {
    if let Err(e) = files.abort(key, upload).await {
        tracing::error!(key, error = %e, "could not abort a multipart upload; the bucket's lifecycle rule will");
    }
}

async fn send_parts(
    files: &dyn FileStore,
    key: &str,
    upload: &str,
    path: &Path,
    part_size: usize,
) -> Result<(Vec<String>, u64), JobError> {
    let mut source = File::open(path)?;
    let mut tags = Vec::new();
    let mut total = 0u64;
    loop {
        let mut part = Vec::with_capacity(part_size);
        (&mut source).take(part_size as u64).read_to_end(&mut part)?;
        if part.is_empty() && !tags.is_empty() {
            break;
        }
        let last = part.len() < part_size;
        total += part.len() as u64;
        let number = tags.len() as i32 + 1;
        tags.push(files.part(key, upload, number, part).await?);
        if last {
            break;
        }
    }
    Ok((tags, total))
}
