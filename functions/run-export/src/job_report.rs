//! The job's PDF report, once every item is stored: each item's series and summary (kept by the
//! run beside the job's files) and its first rows (its file) read back, the report drawn
//! ([`crate::report`]) and stored as the job's file, the one a download and a message give.

use chrono::{DateTime, Utc};

use exporter_core::domain::files::{self, ChartSeries};
use exporter_core::domain::job::FileRecord;
use exporter_core::domain::request::Item;
use exporter_core::domain::{Export, Window};
use exporter_core::ports::FileError;

use crate::deps::Deps;
use crate::error::JobError;
use crate::look::look_name;
use crate::pipeline::temp_file;
use exporter_core::render::report::{render, Branding, Report, ReportItem, REPORT_TABLE_ROWS};

fn unavailable(what: String, e: impl std::error::Error + Send + Sync + 'static) -> JobError {
    JobError::File(FileError::Unavailable(what, Box::new(e)))
}

/// The head of an item's file: its header and rows, as text.
fn head(bytes: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), csv::Error> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = reader.headers()?.iter().map(str::to_owned).collect();
    let mut rows = Vec::new();
    for record in reader.records().take(REPORT_TABLE_ROWS as usize) {
        rows.push(record?.iter().map(str::to_owned).collect());
    }
    Ok((header, rows))
}

/// What an item's values are, as its heading says.
fn what(item: &Item) -> String {
    match item.decimation {
        Some(d) => format!("{} of every {}", d.dsf.as_str(), d.ds),
        None => "raw values".to_owned(),
    }
}

/// The report's title: the items' labels (else their SenML names).
fn title(items: &[(&Item, Window)]) -> String {
    let names: Vec<String> = items.iter().map(|(item, _)| look_name(item)).collect();
    match names.as_slice() {
        [] => "Export".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// Draws and stores the job's report from its stored items; returns its record.
pub(crate) async fn store_report(
    deps: Deps<'_>,
    export: &Export,
    (job_id, scheduled_at): (&str, DateTime<Utc>),
    items: &[(&Item, Window)],
    records: &[FileRecord],
) -> Result<FileRecord, JobError> {
    let format = &export.request.format;
    let mut report = Report {
        title: title(items),
        tz: format.timezone,
        made_ns: scheduled_at.timestamp_nanos_opt().unwrap_or_default(),
        export_id: export.id.to_string(),
        job_id: job_id.to_owned(),
        pages: format.pdf,
        items: Vec::with_capacity(items.len()),
    };
    for (index, ((item, window), record)) in items.iter().zip(records).enumerate() {
        let key = files::chart_key(&export.id, job_id, index);
        let series = deps.files.read(&key).await?;
        let series: ChartSeries =
            serde_json::from_slice(&series).map_err(|e| unavailable(format!("read {key}"), e))?;
        let bytes = deps.files.read(&record.key).await?;
        let head = head(&bytes).map_err(|e| unavailable(format!("read {}", record.key), e))?;
        report.items.push(ReportItem {
            title: look_name(item),
            what: what(item),
            window: (
                window.from.and_then(|f| f.timestamp_nanos_opt()),
                window.to.timestamp_nanos_opt().unwrap_or(i64::MAX),
            ),
            lines: series.lines,
            rows: record.rows,
            head,
        });
    }
    let look = &deps.config.report;
    let logo = match &look.logo_key {
        Some(key) => match deps.files.read(key).await {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                // The report goes without the logo: the data is what matters.
                tracing::warn!(key, error = %e, "could not read the report's logo");
                None
            }
        },
        None => None,
    };
    let brand = Branding {
        logo,
        colour: look.colour,
        footer: look.footer.clone(),
    };
    // A logo is decoded only when the document is written: one that cannot be goes, with a
    // warning, and the report is drawn without it.
    let pdf = match render(&report, &brand) {
        Ok(pdf) => pdf,
        Err(e) if brand.logo.is_some() => {
            tracing::warn!(error = %e, "the report could not be drawn with its logo; drawn without it");
            render(&report, &Branding { logo: None, ..brand }).map_err(JobError::Report)?
        }
        Err(e) => return Err(JobError::Report(e)),
    };
    let key = files::report_key(&export.id, job_id, format.filename.as_ref());
    let mut file = temp_file(deps)?;
    std::io::Write::write_all(file.as_file_mut(), &pdf)?;
    let bytes = deps
        .files
        .put(&key, file.path(), files::content_type(format.extension))
        .await?;
    Ok(FileRecord {
        key,
        rows: records.iter().map(|r| r.rows).sum(),
        bytes,
    })
}
