//! The work of one job: each item read, decimated, rendered to a temporary file and uploaded;
//! a zip when there are several; the job's files removed again if anything fails.
//!
//! A CSV job whose invocation's budget runs out pauses at the next boundary between the
//! reader's pieces (everything before it written, nothing after): the file's full parts go to a
//! multipart upload, the bytes after them to a tail object, and a [`Checkpoint`] says where each
//! item stands (the decimator's open bucket included). The next leg reads the tail back, goes on
//! writing after it from the boundary, and completes the upload: the file is byte for byte the
//! one a run that never stopped writes.

use std::io::{Seek, SeekFrom, Write};

use chrono::{DateTime, Utc};
use futures::future::Either;
use tempfile::NamedTempFile;

use exporter_core::domain::files;
use exporter_core::domain::formats::{self, Continuation};
use exporter_core::domain::job::{FileRecord, ItemOutcome, ItemWindow, JobDetail};
use exporter_core::domain::request::{Extension, Item};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{Export, ExtraWindow, Schedule, Window};
use exporter_core::ports::{FileError, ReadError, SeriesQuery, Upload};
use exporter_core::render::item::Layout;
use exporter_core::render::parquet_file::{Kinds, ParquetFile};
use exporter_core::render::series::SeriesSink;
use exporter_core::render::stage::render_stage;
use exporter_core::render::xlsx_file::XlsxFile;
use exporter_core::render::WriterArgs;
use exporter_core::render::{RenderError, RowWriter};

use crate::archive::archive;
use crate::checkpoint::{checkpoint_key, Checkpoint, ItemProgress, Progress, UploadRecord};
use crate::deadline::{Pause, TimeUp, Timed, UploadStopped};
use crate::deps::Deps;
use crate::error::JobError;
use crate::job_report::store_report;
use crate::look::{look, look_name};
use crate::upload::Sent;

/// Runs the job from `resume` (or from its start) in leg `leg`; on failure returns what was
/// recorded so far and the error, the job's files removed.
pub(crate) async fn run_job(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    mut checkpoint: Checkpoint,
    leg: u32,
) -> Result<Progress, (JobDetail, JobError)> {
    let occurrence = checkpoint.occurrence;
    let result = export_items(
        deps,
        export,
        job_id,
        (scheduled_at, occurrence),
        &mut checkpoint,
        leg,
    )
    .await;
    let prefix = files::job_prefix(&export.id, job_id);
    match result {
        // The checkpoints, tails and stages stay until the job is recorded (the caller removes
        // them then): a retry of a leg that dies before serves from them.
        Ok(true) => Ok(Progress::Done(checkpoint.detail)),
        Ok(false) => Ok(Progress::Paused(Box::new(checkpoint))),
        Err(error) => {
            // Leave nothing half-done: every file under the job's prefix goes, this attempt's and
            // any an earlier attempt or leg of the same job left, open uploads included.
            if let Err(e) = deps.files.remove_all(&format!("{prefix}/")).await {
                tracing::error!(prefix, error = %e, "could not remove the files of a failed job; they expire with the bucket's lifecycle rule");
            }
            let mut detail = checkpoint.detail;
            detail.files.clear();
            detail.archive = None;
            Err((detail, error))
        }
    }
}

/// Exports the items from where `checkpoint` stands; `false` when it paused (the checkpoint
/// then says where it stands), `true` when every file (and the zip) is stored.
async fn export_items(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    (scheduled_at, occurrence): (DateTime<Utc>, Option<u64>),
    checkpoint: &mut Checkpoint,
    leg: u32,
) -> Result<bool, JobError> {
    let prefix = files::job_prefix(&export.id, job_id);
    let plan = plan(export, job_id, scheduled_at, (occurrence, checkpoint.window))?;
    let may_pause = leg < deps.config.max_legs;
    // Whether this invocation wrote (some of) an item before the zip.
    let wrote_items = checkpoint.detail.files.len() < plan.len() || checkpoint.current.is_some();
    let first = checkpoint.detail.files.len();
    for (index, (item, window, name)) in plan.iter().enumerate().skip(first) {
        let progress = checkpoint.current.take().filter(|p| p.index == index);
        // A leg's first item starts unless the invocation's own limit has passed (its budget
        // may be spent on a slow start: the item's read then pauses at its first boundary, so
        // every leg moves on); a later one only within the budget.
        let stop = if index == first {
            deps.deadline
        } else {
            deps.stop_at
        };
        if progress.is_none() && stop.is_some_and(|stop| deps.clock.now() >= stop) {
            if may_pause {
                return Ok(false);
            }
            return Err(JobError::OutOfTime { item: index, rows: 0 });
        }
        if checkpoint.detail.windows.len() <= index {
            checkpoint.detail.windows.push(ItemWindow {
                from: window.from.map(rfc3339),
                to: rfc3339(window.to),
            });
        }
        let key = format!("{prefix}/{name}");
        let target = Target {
            index,
            key: &key,
            tail_key: format!("{prefix}/.resume/item-{index}-leg-{}.tail", leg + 1),
            stage_key: format!("{prefix}/.resume/item-{index}.stage"),
            stored_key: format!("{prefix}/.resume/item-{index}.stored.json"),
            chart_key: files::chart_key(&export.id, job_id, index),
            created_at: scheduled_at,
            may_pause,
        };
        match render_item(deps, export, item, *window, target, progress).await? {
            Rendered::Paused(progress) => {
                checkpoint.current = Some(*progress);
                return Ok(false);
            }
            Rendered::Stored { record, warnings } => {
                checkpoint.detail.warnings.extend(warnings);
                checkpoint.detail.files.push(record);
                if leg > 0 {
                    // The leg's checkpoint now says the item is stored: a retry of this leg
                    // (the attempt dying later in it) goes on after the item rather than
                    // resuming an upload that is complete.
                    let bytes = serde_json::to_vec(&*checkpoint).map_err(std::io::Error::other)?;
                    deps.files.put_bytes(&checkpoint_key(&prefix, leg), bytes).await?;
                }
            }
        }
    }
    if export.request.format.extension == Extension::Pdf {
        // A report is the job's one file, whatever its items (it takes a moment: no pause).
        let items: Vec<(&Item, Window)> = plan.iter().map(|(item, window, _)| (*item, *window)).collect();
        let report = store_report(
            deps,
            export,
            (job_id, scheduled_at),
            &items,
            &checkpoint.detail.files,
        )
        .await?;
        checkpoint.detail.archive = Some(report);
        return Ok(true);
    }
    if plan.len() > 1 {
        // The zip cannot pause: it runs to the invocation's deadline (not its budget). It gets
        // a fresh invocation when this one wrote items and is out of time, or runs out while
        // zipping; one that had an invocation to itself fails the job.
        let out_of_time = deps.deadline.is_some_and(|stop| deps.clock.now() >= stop);
        if out_of_time && may_pause && wrote_items {
            return Ok(false);
        }
        let names: Vec<String> = plan.into_iter().map(|(_, _, name)| name).collect();
        match archive(deps, export, job_id, &checkpoint.detail.files, &names).await {
            Ok(zip) => checkpoint.detail.archive = Some(zip),
            Err(JobError::ZipOutOfTime { .. }) if may_pause && wrote_items => return Ok(false),
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// Each item with its window and its file's name: the same in every leg and every item run,
/// computed from the request alone.
fn plan<'e>(
    export: &'e Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    (occurrence, extra): (Option<u64>, Option<ExtraWindow>),
) -> Result<Vec<(&'e Item, Window, String)>, JobError> {
    let format = &export.request.format;
    let extension = format.extension.item_extension();
    let mut names = files::Names::default();
    let mut plan = Vec::new();
    for (index, item) in export.request.items.iter().enumerate() {
        let window = match (extra, export.request.schedule, occurrence) {
            (Some(w), _, _) => Some(Window {
                from: Some(w.from),
                to: w.to,
            }),
            (None, Schedule::Recurring(recurrence), Some(k)) => item.span.recurring_window(&recurrence, k),
            _ => item.span.one_time_window(scheduled_at, format.timezone),
        }
        .ok_or(JobError::Window(index))?;
        // The export's `filename` names a job's one file (an item's own names it first).
        let stem = match (&format.filename, &item.filename, export.request.items.len()) {
            (Some(named), None, 1) => files::job_stem(named, &export.id, job_id),
            _ => files::file_stem(item, &window),
        };
        let name = format!("{}.{extension}", names.unique(stem));
        plan.push((item, window, name));
    }
    Ok(plan)
}

/// What became of one item's run in this invocation.
pub(crate) enum ItemProgressed {
    Done(ItemOutcome),
    Paused(Box<Checkpoint>),
}

/// Runs item `index` of a spread job from `resume` (or from its start) in leg `leg`. On
/// failure, the job's files are for the caller to remove (once, by whoever fails the job).
pub(crate) async fn run_item(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    index: usize,
    resume: Checkpoint,
    leg: u32,
) -> Result<ItemProgressed, JobError> {
    if let Some(reason) = crate::edited_since(export, &resume) {
        return Err(JobError::Edited(reason));
    }
    let occurrence = resume.occurrence;
    let definition = resume.definition.clone();
    let extra = resume.window;
    let plan = plan(export, job_id, scheduled_at, (occurrence, extra))?;
    let (item, window, name) = plan.get(index).ok_or(JobError::Window(index))?;
    let prefix = files::job_prefix(&export.id, job_id);
    let key = format!("{prefix}/{name}");
    let target = Target {
        index,
        key: &key,
        tail_key: format!("{prefix}/.resume/item-{index}-leg-{}.tail", leg + 1),
        stage_key: format!("{prefix}/.resume/item-{index}.stage"),
        stored_key: format!("{prefix}/.resume/item-{index}.stored.json"),
        chart_key: files::chart_key(&export.id, job_id, index),
        created_at: scheduled_at,
        may_pause: leg < deps.config.max_legs,
    };
    let progress = resume.current.filter(|p| p.index == index);
    match render_item(deps, export, item, *window, target, progress).await? {
        Rendered::Paused(progress) => Ok(ItemProgressed::Paused(Box::new(Checkpoint {
            occurrence,
            detail: JobDetail::default(),
            current: Some(*progress),
            definition,
            window: extra,
        }))),
        Rendered::Stored { record, warnings, .. } => Ok(ItemProgressed::Done(ItemOutcome {
            window: ItemWindow {
                from: window.from.map(rfc3339),
                to: rfc3339(window.to),
            },
            file: record,
            warnings,
        })),
    }
}

/// The job of a spread job's items, once the last is done: their windows, files and warnings
/// in item order, and the zip of their files.
pub(crate) async fn assemble(
    deps: Deps<'_>,
    export: &Export,
    job_id: &str,
    scheduled_at: DateTime<Utc>,
    occurrence: Option<u64>,
    outcomes: Vec<(u32, ItemOutcome)>,
) -> Result<JobDetail, JobError> {
    // An extra job never spreads: a spread job's items have their own windows.
    let plan = plan(export, job_id, scheduled_at, (occurrence, None))?;
    let items: Vec<(&Item, Window)> = plan.iter().map(|(item, window, _)| (*item, *window)).collect();
    let names: Vec<String> = plan.iter().map(|(_, _, name)| name.clone()).collect();
    let mut detail = JobDetail::default();
    for (_, outcome) in outcomes {
        detail.windows.push(outcome.window);
        detail.files.push(outcome.file);
        detail.warnings.extend(outcome.warnings);
    }
    if detail.files.len() != names.len() {
        return Err(JobError::Window(detail.files.len()));
    }
    if export.request.format.extension == Extension::Pdf {
        detail.archive =
            Some(store_report(deps, export, (job_id, scheduled_at), &items, &detail.files).await?);
    } else if names.len() > 1 {
        detail.archive = Some(archive(deps, export, job_id, &detail.files, &names).await?);
    }
    Ok(detail)
}

pub(crate) fn temp_file(deps: Deps<'_>) -> Result<NamedTempFile, JobError> {
    Ok(match &deps.config.work_dir {
        Some(dir) => NamedTempFile::new_in(dir)?,
        None => NamedTempFile::new()?,
    })
}

/// Renders an item's workbook from its whole stage; returns it with the number of text cells
/// cut.
fn file_from_stage(
    deps: Deps<'_>,
    export: &Export,
    item: &Item,
    labels: &[&str],
    target: &Target<'_>,
    stage: NamedTempFile,
) -> Result<(NamedTempFile, u64), JobError> {
    let render = |source| JobError::Render {
        item: target.index,
        source,
    };
    let format = &export.request.format;
    // Each staged format renders its file from the stage here (exhaustive: a new format says
    // how, or that it is not staged).
    let mut writer = match format.extension {
        Extension::Xls | Extension::Xlsx => {
            XlsxFile::with_look(format.timezone, labels, look(deps, export, item))
                .map_err(render)?
                .created_at(target.created_at)
        }
        Extension::Parquet => {
            // Two passes: the columns' types, then the rows.
            let mut kinds = Kinds::default();
            render_stage(stage.reopen()?, &mut kinds).map_err(render)?;
            let file = temp_file(deps)?;
            let mut parquet = ParquetFile::new(
                std::io::BufWriter::with_capacity(256 * 1024, file.reopen()?),
                (labels, &kinds.of(&Layout::of(format, item).kinds)),
                format.timezone,
                format.local_time,
            )
            .map_err(render)?;
            render_stage(stage.reopen()?, &mut parquet).map_err(render)?;
            parquet
                .finish()
                .and_then(|mut out| Ok(out.flush()?))
                .map_err(render)?;
            return Ok((file, 0));
        }
        Extension::Csv | Extension::Json | Extension::Ndjson | Extension::Pdf => {
            return Err(render(RenderError::Io(std::io::Error::other(
                "a text file is written as it goes, never staged",
            ))))
        }
    };
    render_stage(stage.reopen()?, &mut writer).map_err(render)?;
    let cut = writer.cut();
    let mut file = temp_file(deps)?;
    Box::new(writer).finish_into(file.as_file_mut()).map_err(render)?;
    Ok((file, cut))
}

/// The most rows an item's staged file may hold, and what holds it (said when a job goes past
/// it): a workbook's `XLSX_MAX_ROWS`, a Parquet file's `PARQUET_MAX_ROWS`.
fn staged_cap(deps: Deps<'_>, extension: Extension, columns: usize) -> (u64, &'static str) {
    match extension {
        // Set for five columns: a wider file's stage holds proportionally fewer rows, so that
        // the stage stays in the function's local storage.
        Extension::Parquet => (
            deps.config.parquet_max_rows.saturating_mul(5) / columns.max(5) as u64,
            "a Parquet export of its columns may hold here (PARQUET_MAX_ROWS, for five columns)",
        ),
        _ => (
            deps.config.xlsx_max_rows,
            "an Excel export may hold here (XLSX_MAX_ROWS)",
        ),
    }
}

/// The warning of a workbook's text cells cut to what a cell holds, when there are any.
fn cut_warning(index: usize, cut: u64) -> Option<String> {
    (cut > 0).then(|| {
        format!(
            "item {index}: {cut} text cells longer than a spreadsheet cell holds ({} characters) were cut, ending with `{}`",
            exporter_core::render::xlsx_file::MAX_CELL_CHARS,
            exporter_core::render::xlsx_file::CELL_CUT_MARKER
        )
    })
}

/// An item's file whose every piece is sent, as its leg stores it before finishing the file:
/// `resumed` is the file as the leg's checkpoint had it (what tells this leg's record apart).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredItemRecord")]
struct StoredItem {
    resumed: Option<Upload>,
    upload: Option<Upload>,
    rows: u64,
    bytes: u64,
    warnings: Vec<String>,
    /// Written by an earlier version, which kept the multipart upload's id and parts instead.
    #[serde(skip)]
    earlier: bool,
}

/// A stored item as written now, or by an earlier version (so that a leg retried across a
/// deployment still finds what its earlier attempt sent).
#[derive(serde::Deserialize)]
struct StoredItemRecord {
    #[serde(default)]
    resumed: Option<Upload>,
    upload: Option<UploadRecord>,
    #[serde(default)]
    parts: Vec<(i32, String)>,
    rows: u64,
    bytes: u64,
    warnings: Vec<String>,
}

impl From<StoredItemRecord> for StoredItem {
    fn from(record: StoredItemRecord) -> Self {
        let (upload, earlier) = match record.upload {
            Some(UploadRecord::Handle(upload)) => (Some(upload), false),
            Some(UploadRecord::MultipartId(id)) => (
                Some(exporter_adapters::s3::upload_of_multipart(
                    id,
                    record.parts,
                    record.bytes,
                )),
                true,
            ),
            None => (None, false),
        };
        Self {
            resumed: record.resumed,
            upload,
            rows: record.rows,
            bytes: record.bytes,
            warnings: record.warnings,
            earlier,
        }
    }
}

impl StoredItem {
    /// Whether this record is of the leg resuming `upload`: written now, by the file as the
    /// checkpoint had it; by an earlier version, by the multipart upload it belongs to.
    fn resumes(&self, upload: &Upload) -> bool {
        match (&self.upload, self.earlier) {
            (Some(stored), true) => exporter_adapters::s3::same_multipart(stored, upload),
            _ => self.resumed.as_ref() == Some(upload),
        }
    }
}

/// The stored item an earlier attempt of this leg left for the upload `progress` resumes, if
/// any (a missing or unreadable record: none, the item goes on from its checkpoint).
async fn stored_before(
    deps: Deps<'_>,
    target: &Target<'_>,
    progress: Option<&ItemProgress>,
) -> Option<StoredItem> {
    let upload = progress?.upload.as_ref()?;
    let bytes = deps.files.read(&target.stored_key).await.ok()?;
    serde_json::from_slice::<StoredItem>(&bytes)
        .ok()
        .filter(|stored| stored.resumes(upload))
}

/// Where an item's file goes.
struct Target<'k> {
    index: usize,
    key: &'k str,
    /// Where the bytes after the uploaded parts go when the item pauses.
    tail_key: String,
    /// Where a workbook's stage goes when it is larger than a part.
    stage_key: String,
    /// What the file is once its last part is sent, before its upload completes.
    stored_key: String,
    /// Where a decimated series' buckets go for the email's chart.
    chart_key: String,
    /// The workbook's creation time: the job's, so that it renders the same in any leg.
    created_at: DateTime<Utc>,
    /// Whether the job may continue in another leg.
    may_pause: bool,
}

/// What became of an item in this invocation.
enum Rendered {
    /// Its file is stored (and kept locally when this invocation wrote all of it, for the zip).
    Stored {
        record: FileRecord,
        warnings: Vec<String>,
    },
    Paused(Box<ItemProgress>),
}

/// Renders one item, from `progress` when an earlier leg began it, into a temporary file, and
/// stores it; or pauses it when the budget runs out.
async fn render_item(
    deps: Deps<'_>,
    export: &Export,
    item: &Item,
    window: Window,
    target: Target<'_>,
    progress: Option<ItemProgress>,
) -> Result<Rendered, JobError> {
    let shape = Shape::of(export, item);
    if let Some(stored) = stored_before(deps, &target, progress.as_ref()).await {
        return finish_stored(deps, export, item, &shape, &target, stored).await;
    }
    let mut building = build_sink(deps, export, item, window, &target, &shape, progress.as_ref()).await?;
    let upload = progress.and_then(|p| p.upload);
    let resumed = upload.clone();
    // A staged format's pieces are its stage's, under a key of their own.
    let mut sent = Sent {
        key: if shape.staged {
            &target.stage_key
        } else {
            target.key
        },
        upload,
        local: 0,
    };
    let read = read_while_uploading(deps, &target, &mut building, &mut sent, shape.content_type).await?;
    finish_file(deps, export, item, &shape, &target, building, sent, resumed, read).await
}

/// What an item's file looks like: its layout (targets, columns and headers), and its format's
/// content type and continuation.
struct Shape {
    layout: Layout,
    /// Rendered from a stage at the end (a workbook), not appended as it goes.
    staged: bool,
    content_type: &'static str,
}

impl Shape {
    fn of(export: &Export, item: &Item) -> Self {
        let format = &export.request.format;
        Self {
            layout: Layout::of(format, item),
            staged: formats::of(format.extension).continuation == Continuation::Staged,
            content_type: files::item_content_type(format.extension),
        }
    }

    fn labels(&self) -> Vec<&str> {
        self.layout.labels()
    }
}

/// The item whose every piece an earlier attempt of this leg sent before dying around the
/// finish: its file (or a workbook's stage, then the workbook rendered from it again) finished.
async fn finish_stored(
    deps: Deps<'_>,
    export: &Export,
    item: &Item,
    shape: &Shape,
    target: &Target<'_>,
    mut stored: StoredItem,
) -> Result<Rendered, JobError> {
    // An earlier attempt of this leg sent every part and died around the completion: of
    // the file, or of a workbook's stage (then the workbook is rendered from it again).
    Sent {
        key: if shape.staged {
            &target.stage_key
        } else {
            target.key
        },
        upload: stored.upload.take(),
        local: 0,
    }
    .complete(deps)
    .await?;
    let bytes = if shape.staged {
        let mut stage = temp_file(deps)?;
        deps.pieces.download(&target.stage_key, stage.path()).await?;
        stage.rewind()?;
        let (file, cut) = file_from_stage(deps, export, item, &shape.labels(), target, stage)?;
        stored.warnings.extend(cut_warning(target.index, cut));
        deps.files
            .put(target.key, file.path(), shape.content_type)
            .await?
    } else {
        stored.bytes
    };
    Ok(Rendered::Stored {
        record: FileRecord {
            key: target.key.to_owned(),
            rows: stored.rows,
            bytes,
        },
        warnings: stored.warnings,
    })
}

/// An item's file being written: the local file (with the tail an earlier leg left), the
/// renderer feeding it, and the reads that fill it.
struct Building {
    file: NamedTempFile,
    /// Bytes of the tail carried over from the leg before.
    carried: u64,
    sink: Box<dyn SeriesSink>,
    queries: Vec<SeriesQuery>,
}

/// Builds the sink an item's points go into: the local file (the tail of `progress` first),
/// the format's writer, the renderer (a series' or a wide item's, with its decimation, fill,
/// delta and chart, resumed where `progress` left them), and the reads from where it stopped.
async fn build_sink(
    deps: Deps<'_>,
    export: &Export,
    item: &Item,
    window: Window,
    target: &Target<'_>,
    shape: &Shape,
    progress: Option<&ItemProgress>,
) -> Result<Building, JobError> {
    let format = &export.request.format;
    let mut file = temp_file(deps)?;
    let mut carried = 0u64;
    if let Some(tail) = progress.and_then(|p| p.tail.as_deref()) {
        let bytes = deps.files.read(tail).await?;
        carried = bytes.len() as u64;
        file.write_all(&bytes)?;
        file.flush()?;
    }
    let render = |source| JobError::Render {
        item: target.index,
        source,
    };
    let mut out = file.reopen()?;
    out.seek(SeekFrom::End(0))?;
    let writer = exporter_core::render::writer(WriterArgs {
        out,
        format,
        labels: &shape.labels(),
        resumed_rows: progress.map(|p| p.paused.rows),
        max_staged_rows: staged_cap(deps, format.extension, shape.labels().len()).0,
    })
    .map_err(render)?;
    let sink = exporter_core::render::item::sink(
        format,
        item,
        (&shape.layout, window),
        writer,
        progress.map(|p| &p.paused),
    );
    let from = match progress {
        Some(p) => Some(DateTime::from_timestamp_nanos(p.from_ns)),
        None => window.from,
    };
    let queries: Vec<SeriesQuery> = shape
        .layout
        .targets
        .iter()
        .map(|(name, _)| SeriesQuery {
            domain: item.domain_id.map(|d| d.to_string()),
            channel: item.channel_id.to_string(),
            subtopic: item.subtopic.as_str().to_owned(),
            table: item.table.map(|t| t.as_str().to_owned()),
            name: name.clone(),
            window: Window { from, to: window.to },
        })
        .collect();
    Ok(Building {
        file,
        carried,
        sink,
        queries,
    })
}

/// Reads the item's series into its sink while the file's full pieces go up (the reading side
/// never waits for them, one piece at a time): once reading ends, the uploader sends what is
/// ready and stops; when reading failed, or the uploader fails, the other side is dropped at
/// once (the job's files, the open upload included, are removed as it fails). Returns the
/// read's outcome and, when it paused, where.
async fn read_while_uploading(
    deps: Deps<'_>,
    target: &Target<'_>,
    building: &mut Building,
    sent: &mut Sent<'_>,
    content_type: &str,
) -> Result<(Result<u64, ReadError>, Option<DateTime<Utc>>), JobError> {
    let (written, told) = tokio::sync::watch::channel(());
    let mut timed = Timed {
        pausable: target.may_pause && building.sink.pausable(),
        written,
        inner: building.sink.as_mut(),
        stop_at: deps.stop_at,
        clock: deps.clock,
        until: None,
        from: building.queries.first().and_then(|q| q.window.from),
        to: building
            .queries
            .iter()
            .map(|q| q.window.to)
            .max()
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        // The tail carried over (less than a part) does not count: each leg writes its share.
        local: (
            building.file.path(),
            building.carried.saturating_add(deps.config.max_local_bytes),
        ),
    };
    let path = building.file.path().to_owned();
    let queries = &building.queries;
    // The file's full parts go up while it is read (the reading side never waits for them),
    // one at a time. Once reading ends, the uploader sends what is ready and stops; when it
    // ended in failure, or the uploader fails, the other side is dropped at once (the job's
    // files, the open upload included, are removed as it fails).
    let read = {
        let reading = std::pin::pin!(async move {
            let read = match queries.as_slice() {
                [query] => deps.reader.read(query, &mut timed).await,
                several => crate::merge::read_merged(deps.reader, several, &mut timed).await,
            };
            (read, timed.until)
        });
        let uploading = std::pin::pin!(sent.send_while_written(deps, &path, content_type, told));
        match futures::future::select(reading, uploading).await {
            Either::Left(((read, until), uploading)) => {
                // Done or paused, the file goes on; an uploader that hung up says why.
                let goes_on = match &read {
                    Ok(_) => true,
                    Err(ReadError::Sink(cause)) => cause.is::<Pause>() || cause.is::<UploadStopped>(),
                    Err(_) => false,
                };
                if goes_on {
                    uploading.await?;
                }
                (read, until)
            }
            // The uploader ends before the reading side only when it fails.
            Either::Right((uploaded, reading)) => {
                uploaded?;
                reading.await
            }
        }
    };
    Ok(read)
}

/// What became of the item once its read ended: paused (the pieces sent, the rest kept as the
/// tail, the renderer's state saved), failed (the reason sorted), or done: the file finished
/// (its pieces' record stored before the finish, so that a retry finds it), a workbook
/// rendered from its stage, and the chart's series stored.
#[allow(clippy::too_many_arguments)]
async fn finish_file(
    deps: Deps<'_>,
    export: &Export,
    item: &Item,
    shape: &Shape,
    target: &Target<'_>,
    building: Building,
    mut sent: Sent<'_>,
    resumed: Option<Upload>,
    (read, until): (Result<u64, ReadError>, Option<DateTime<Utc>>),
) -> Result<Rendered, JobError> {
    let index = target.index;
    let format = &export.request.format;
    let render = |source| JobError::Render { item: index, source };
    let Building { mut file, sink, .. } = building;
    let content_type = shape.content_type;
    let rows = sink.rows();
    match read {
        Err(ReadError::Sink(cause)) if cause.is::<Pause>() => {
            let from_ns = until
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or(JobError::Window(index))?;
            let paused = sink.pause().map_err(render)?;
            let tail = sent
                .send(
                    deps,
                    file.as_file_mut(),
                    false,
                    files::item_content_type(format.extension),
                )
                .await?;
            let tail = match tail {
                Some(bytes) => {
                    deps.files.put_bytes(&target.tail_key, bytes).await?;
                    Some(target.tail_key.clone())
                }
                None => None,
            };
            return Ok(Rendered::Paused(Box::new(ItemProgress {
                index,
                from_ns,
                paused,
                upload: sent.upload,
                tail,
            })));
        }
        Err(source) => {
            return Err(match source {
                ReadError::Sink(cause) if cause.is::<TimeUp>() => JobError::OutOfTime { item: index, rows },
                ReadError::Sink(cause) if cause.is::<FileError>() => match cause.downcast::<FileError>() {
                    Ok(e) => JobError::File(*e),
                    Err(other) => JobError::Render {
                        item: index,
                        source: RenderError::Io(std::io::Error::other(other)),
                    },
                },
                ReadError::Sink(cause) => match cause.downcast::<RenderError>() {
                    Ok(source) => match *source {
                        RenderError::TooManyRows(cap) => JobError::TooManyRows {
                            item: index,
                            cap,
                            what: staged_cap(deps, format.extension, shape.labels().len()).1,
                        },
                        source => JobError::Render { item: index, source },
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
            })
        }
        Ok(_) => {}
    }
    let mut rendered = sink.finish(file.as_file_mut()).map_err(render)?;
    let lines = rendered.chart.take().unwrap_or_default();
    // A report is drawn from the series: always stored for one, and it must be.
    let reported = format.extension == Extension::Pdf;
    if reported || lines.iter().any(|line| !line.points.is_empty()) {
        // A line per target, named as its value column is headed (a single series: the item).
        let names = shape
            .layout
            .targets
            .iter()
            .map(|(name, label)| label.clone().unwrap_or_else(|| name.clone()));
        let series = files::ChartSeries {
            label: look_name(item),
            timezone: format.timezone.name().to_owned(),
            lines: names.zip(lines).map(|(name, points)| points.line(name)).collect(),
        };
        let stored = match serde_json::to_vec(&series) {
            Ok(json) => deps.files.put_bytes(&target.chart_key, json).await,
            Err(e) => Err(FileError::Unavailable(
                "encode the chart's series".into(),
                Box::new(e),
            )),
        };
        if let (Err(e), true) = (&stored, reported) {
            return Err(JobError::File(FileError::Unavailable(
                format!("store the series of item {index} for the report: {e}"),
                Box::new(std::io::Error::other(e.to_string())),
            )));
        }
        if let Err(e) = stored {
            // The email goes without its chart; the file is what matters.
            tracing::warn!(key = target.chart_key, error = %e, "could not store a chart's series");
        }
    }
    let mut warnings = Vec::new();
    if rendered.rows == 0 && rendered.skipped == 0 {
        // An empty window is a legitimate file, but nobody should take it for data.
        warnings.push(format!(
            "item {index}: 0 points read; the file holds its header only (the reader has no message of this channel, subtopic and name in the window)"
        ));
    }
    if rendered.skipped > 0 {
        warnings.push(format!(
            "item {index}: {} points with neither a number nor a boolean were skipped",
            rendered.skipped
        ));
    }
    // Begun in an earlier leg, the rest goes as the last parts. What the file (or a workbook's
    // stage) is goes into the leg's store before the upload completes, so that a retry of this
    // leg after the completion (the attempt dying right after it, or while rendering the
    // workbook) finds it stored, not an upload to resume that S3 no longer knows.
    let completed = if sent.upload.is_some() {
        sent.send(deps, file.as_file_mut(), true, content_type).await?;
        let stored = StoredItem {
            resumed,
            upload: sent.upload.clone(),
            rows: rendered.rows,
            bytes: sent.uploaded(),
            warnings: warnings.clone(),
            earlier: false,
        };
        let json = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        deps.files.put_bytes(&target.stored_key, json).await?;
        sent.complete(deps).await?;
        Some(sent.uploaded())
    } else {
        None
    };
    let bytes = if shape.staged {
        // The stage is whole: in the store (larger than a part), or in the local file. The
        // stage stays (under `.resume/`) until the job is recorded: a retry of this leg may
        // render from it again.
        let stage = if completed.is_some() {
            let mut whole = temp_file(deps)?;
            deps.pieces.download(&target.stage_key, whole.path()).await?;
            whole.rewind()?;
            whole
        } else {
            file.rewind()?;
            file
        };
        let (workbook, cut) = file_from_stage(deps, export, item, &shape.labels(), target, stage)?;
        warnings.extend(cut_warning(index, cut));
        file = workbook;
        deps.files.put(target.key, file.path(), content_type).await?
    } else {
        match completed {
            Some(bytes) => bytes,
            None => deps.files.put(target.key, file.path(), content_type).await?,
        }
    };
    // The local file goes now (dropped): the zip reads the stored one.
    drop(file);
    Ok(Rendered::Stored {
        record: FileRecord {
            key: target.key.to_owned(),
            rows: rendered.rows,
            bytes,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_item_of_an_earlier_version_is_found_by_its_multipart_upload() {
        // As an earlier version stored it before completing the upload.
        let earlier = serde_json::json!({
            "upload": "upload-7",
            "parts": [[1, "t1"], [2, "t2"]],
            "rows": 10,
            "bytes": 12_000_000,
            "warnings": []
        });
        let stored: StoredItem = serde_json::from_value(earlier).expect("reads");
        let upload = stored.upload.clone().expect("its upload");
        assert_eq!(upload.size(), 12_000_000);
        // The checkpoint the leg resumed had fewer parts of the same upload.
        let resumed =
            exporter_adapters::s3::upload_of_multipart("upload-7".into(), vec![(1, "t1".into())], 6_000_000);
        assert!(stored.resumes(&resumed));
        let other =
            exporter_adapters::s3::upload_of_multipart("upload-8".into(), vec![(1, "t1".into())], 6_000_000);
        assert!(!stored.resumes(&other));
        // As written now: found by the file as the checkpoint had it, and only by it.
        let now = StoredItem {
            resumed: Some(resumed.clone()),
            upload: Some(upload),
            rows: 10,
            bytes: 12_000_000,
            warnings: Vec::new(),
            earlier: false,
        };
        let read: StoredItem =
            serde_json::from_slice(&serde_json::to_vec(&now).expect("writes")).expect("reads");
        assert!(read.resumes(&resumed));
        assert!(!read.resumes(&other));
    }
}
