//! The pipeline benchmark's Rust side (see `scripts/bench.sh`, which also runs DuckDB):
//!
//! - `pipeline-bench generate N DIR`: N points as reader pages of 1000 (`page-NNNNNN.json`,
//!   page 0 newest, messages newest first, as the reader serves them), one per second from
//!   2026-03-01 in one series, so 10M points cross the 2026 DST change in Rome.
//! - `pipeline-bench csv DIR raw|buckets OUT`: the export pipeline over the pages, oldest
//!   first, to CSV in Europe/Rome (`buckets`: 15-minute avg and stddev); prints the figures.
//! - `pipeline-bench xlsx DIR OUT`: raw rows to XLSX, staged then rendered as run-export does.
//! - `pipeline-bench parse DIR`: the page parser alone, on one thread, pages read beforehand.
//! - `pipeline-bench format DIR json|ndjson|parquet|pdf OUT`: raw rows in the format, as
//!   run-export writes it (a Parquet file staged then rendered in two passes; a report from
//!   its head, series and summary); prints the time and the process's peak RSS.
//!
//! The pipeline is the service's own code: `parse_owned` (as the reader client parses pages),
//! `SeriesRenderer`, the writers. As in the reader client, two pages are parsed at a time on
//! other threads while the renderer writes the one before them, in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use exporter_core::domain::decimation::Decimator;
use exporter_core::domain::request::{Aggregate, ColumnId};
use exporter_core::domain::TimeUnit;
use exporter_core::page::parse_owned;
use exporter_core::render::csv_file::CsvFile;
use exporter_core::render::parquet_file::Kind;
use exporter_core::render::series::SeriesRenderer;
use exporter_core::render::stage::{render_stage, StageFile};
use exporter_core::render::xlsx_file::XlsxFile;
use exporter_core::render::{ItemContext, RowWriter};

const START: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
const PAGE: u64 = 1000;
const PARSERS: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => generate(args[2].parse()?, Path::new(&args[3])),
        Some("csv") => run(Path::new(&args[2]), &args[3], Path::new(&args[4]), false),
        Some("xlsx") => run(Path::new(&args[2]), "raw", Path::new(&args[3]), true),
        Some("parse") => parse_only(Path::new(&args[2])),
        Some("format") => format_run(Path::new(&args[2]), &args[3], Path::new(&args[4])),
        _ => Err(
            "usage: pipeline-bench generate N DIR | csv DIR raw|buckets OUT | xlsx DIR OUT | parse DIR"
                .into(),
        ),
    }
}

fn generate(points: u64, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let pages = points.div_ceil(PAGE);
    for page in 0..pages {
        let mut out = BufWriter::new(File::create(dir.join(format!("page-{page:06}.json")))?);
        write!(
            out,
            "{{\"total\":{points},\"offset\":{},\"limit\":{PAGE},\"messages\":[",
            page * PAGE
        )?;
        let newest = points - 1 - page * PAGE;
        let count = PAGE.min(newest + 1);
        for i in 0..count {
            let k = newest - i;
            if i > 0 {
                out.write_all(b",")?;
            }
            let value = 20.0 + ((k * 7919) % 10_000) as f64 / 100.0;
            write!(
                out,
                "{{\"channel\":\"0115c85d-ef3e-4de9-9732-d0c5c4f2c482\",\"subtopic\":\"events.data\",\
                 \"publisher\":\"3d5e8a9c-7f1b-4e2a-9c6d-1b2a3c4d5e6f\",\"protocol\":\"mqtt\",\
                 \"name\":\"urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:temperature\",\"unit\":\"Cel\",\
                 \"time\":{},\"value\":{value}}}",
                START + k as i64
            )?;
        }
        out.write_all(b"]}")?;
    }
    Ok(())
}

fn pages(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    pages.sort();
    pages.reverse(); // oldest page first
    Ok(pages)
}

/// The item the benchmarks' pages belong to.
fn bench_context() -> ItemContext {
    ItemContext {
        label: None,
        target: "urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:temperature".into(),
        channel: "0115c85d-ef3e-4de9-9732-d0c5c4f2c482".into(),
        subtopic: "events.data".into(),
    }
}

fn run(dir: &Path, mode: &str, out: &Path, xlsx: bool) -> Result<(), Box<dyn std::error::Error>> {
    let tz = chrono_tz::Europe::Rome;
    let pages = pages(dir)?;
    let context = bench_context();
    let started = Instant::now();
    let mut renderers: Vec<(SeriesRenderer, File)> = Vec::new();
    let buckets = mode == "buckets";
    let functions: &[Aggregate] = if buckets {
        &[Aggregate::Avg, Aggregate::Stddev]
    } else {
        &[Aggregate::Avg]
    };
    for (i, function) in functions.iter().enumerate() {
        let path = if functions.len() > 1 {
            out.with_extension(format!("{i}.csv"))
        } else {
            out.to_path_buf()
        };
        let file = File::create(&path)?;
        let (columns, labels): (Vec<ColumnId>, Vec<&str>) = if buckets {
            (
                vec![ColumnId::Time, ColumnId::Value, ColumnId::Count],
                vec!["time", function.as_str(), "count"],
            )
        } else {
            (
                vec![ColumnId::Time, ColumnId::Value, ColumnId::Name, ColumnId::Unit],
                vec!["time", "value", "name", "unit"],
            )
        };
        // A workbook goes as run-export writes it: rows staged, then rendered from the stage.
        let writer: Box<dyn RowWriter + Send> = if xlsx {
            Box::new(StageFile::new(
                File::create(out.with_extension("stage"))?,
                0,
                u64::MAX,
            ))
        } else {
            Box::new(CsvFile::new(file.try_clone()?, Default::default(), tz, &labels)?)
        };
        let decimator =
            buckets.then(|| Decimator::new(tz, "15m".parse().unwrap_or_else(|_| unreachable!()), *function));
        renderers.push((
            SeriesRenderer::new(writer, columns, context.clone(), decimator),
            file,
        ));
    }
    let mut points_read = 0u64;
    // Two parsers take alternate pages; the renderer takes their pages back in order.
    let mut parsers = Vec::new();
    let mut queues = Vec::new();
    for first in 0..PARSERS {
        let (parsed, ready) = std::sync::mpsc::sync_channel(2);
        let mine: Vec<PathBuf> = pages.iter().skip(first).step_by(PARSERS).cloned().collect();
        parsers.push(std::thread::spawn(move || -> Result<(), String> {
            for page in mine {
                let bytes = std::fs::read(&page).map_err(|e| e.to_string())?;
                let owned = parse_owned(bytes, TimeUnit::Seconds).map_err(|e| e.to_string())?;
                if parsed.send(owned).is_err() {
                    break; // the renderer stopped
                }
            }
            Ok(())
        }));
        queues.push(ready);
    }
    for i in 0..pages.len() {
        let Ok(page) = queues[i % PARSERS].recv() else {
            break; // a parser failed: its error is reported below
        };
        let points = &page.get().points;
        points_read += points.len() as u64;
        for (renderer, _) in &mut renderers {
            renderer.push(points)?;
        }
    }
    for parser in parsers {
        parser.join().map_err(|_| "a parser panicked")??;
    }
    let mut rows = 0;
    for (renderer, mut file) in renderers {
        rows += renderer.finish(&mut file)?.rows;
        if xlsx {
            let labels = ["time", "value", "name", "unit"];
            let mut workbook = XlsxFile::new(tz, &labels)?;
            render_stage(File::open(out.with_extension("stage"))?, &mut workbook)?;
            Box::new(workbook).finish_into(&mut file)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{mode:8} {}: {points_read} points, {rows} rows in {seconds:.2} s = {:.0} points/s, peak RSS {:.1} MiB",
        if xlsx { "xlsx" } else { "csv" },
        points_read as f64 / seconds,
        peak_rss_mib()
    );
    Ok(())
}

/// Feeds every page's points, oldest first, to `renderer`; returns how many there were.
fn feed(pages: &[PathBuf], renderer: &mut SeriesRenderer) -> Result<u64, Box<dyn std::error::Error>> {
    let mut points = 0;
    for page in pages {
        let owned = parse_owned(std::fs::read(page)?, TimeUnit::Seconds)?;
        points += owned.get().points.len() as u64;
        renderer.push(&owned.get().points)?;
    }
    Ok(points)
}

/// Raw rows to `extension`'s file at `out`, as run-export writes it.
fn format_run(dir: &Path, extension: &str, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use exporter_core::domain::request::{ExportRequest, Policy};
    use exporter_core::render::parquet_file::{Kinds, ParquetFile};
    use exporter_core::render::report::{render, Branding, Report, ReportItem};
    let tz = chrono_tz::Europe::Rome;
    let pages = pages(dir)?;
    let body = format!(
        r#"{{"format": {{"extension": "{extension}", "timezone": "Europe/Rome",
            "columns": [{{"id": "time", "label": "time"}}, {{"id": "value", "label": "value"}},
                        {{"id": "name", "label": "name"}}, {{"id": "unit", "label": "unit"}}]}},
            "type": "oneTime", "notification": {{"messages": []}},
            "items": [{{"params": {{"target": {{"value": "t"}}, "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482",
                "subtopic": "events.data", "from": 1, "to": 2}}}}]}}"#
    );
    let request = ExportRequest::parse(
        &serde_json::from_str(&body)?,
        chrono::Utc::now(),
        &Policy::default(),
    )
    .map_err(|p| format!("{p:?}"))?;
    let format = &request.format;
    let labels = ["time", "value", "name", "unit"];
    let columns = vec![ColumnId::Time, ColumnId::Value, ColumnId::Name, ColumnId::Unit];
    let context = bench_context();
    let started = Instant::now();
    let staged = extension == "parquet";
    let first = if staged {
        out.with_extension("stage")
    } else if extension == "pdf" {
        out.with_extension("head.csv")
    } else {
        out.to_path_buf()
    };
    let writer = exporter_core::render::writer(exporter_core::render::WriterArgs {
        out: File::create(&first)?,
        format,
        labels: &labels,
        resumed_rows: None,
        max_staged_rows: u64::MAX,
    })?;
    let mut renderer = SeriesRenderer::new(writer, columns, context, None);
    if extension == "pdf" {
        renderer = renderer.with_chart(None);
    }
    let points = feed(&pages, &mut renderer)?;
    let mut sink = File::create(if staged || extension == "pdf" {
        out.with_extension("unused")
    } else {
        out.to_path_buf()
    })?;
    let rendered = renderer.finish(&mut sink)?;
    match extension {
        "parquet" => {
            let mut kinds = Kinds::default();
            render_stage(File::open(&first)?, &mut kinds)?;
            let kinds = kinds.of(&[Kind::Time, Kind::Double, Kind::Text, Kind::Text]);
            let mut file =
                ParquetFile::new(BufWriter::new(File::create(out)?), (&labels, &kinds), tz, false)?;
            render_stage(File::open(&first)?, &mut file)?;
            file.finish()?.flush()?;
        }
        "pdf" => {
            let head = std::fs::read_to_string(&first)?;
            let mut lines = head
                .lines()
                .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>());
            let header = lines.next().unwrap_or_default();
            let line = rendered
                .chart
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.line("temperature".into()))
                .collect();
            let report = Report {
                title: "temperature".into(),
                tz,
                made_ns: START * 1_000_000_000,
                export_id: "bench".into(),
                job_id: "bench".into(),
                pages: format.pdf,
                items: vec![ReportItem {
                    title: "temperature".into(),
                    what: "raw values".into(),
                    window: (
                        Some(START * 1_000_000_000),
                        (START + points as i64) * 1_000_000_000,
                    ),
                    lines: line,
                    rows: rendered.rows,
                    head: (header, lines.collect()),
                }],
            };
            std::fs::write(out, render(&report, &Branding::default())?)?;
        }
        _ => {}
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(out)?.len();
    println!(
        "{extension:8} raw: {points} points, {} rows in {seconds:.2} s = {:.0} points/s, a file of {:.0} KiB, peak RSS {:.1} MiB",
        rendered.rows,
        points as f64 / seconds,
        bytes as f64 / 1024.0,
        peak_rss_mib()
    );
    for stray in [out.with_extension("stage"), out.with_extension("unused")] {
        let _ = std::fs::remove_file(stray);
    }
    Ok(())
}

/// The parser alone, on one thread, over pages already in memory: its share of the pipeline.
fn parse_only(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let bodies = pages(dir)?
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut points = 0;
    for body in bodies {
        points += parse_owned(body, TimeUnit::Seconds)?.get().points.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "parse    one thread: {points} points in {seconds:.3} s = {:.0} points/s, {:.0} MB/s",
        points as f64 / seconds,
        bytes as f64 / seconds / 1e6
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
