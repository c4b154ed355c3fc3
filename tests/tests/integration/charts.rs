//! What people see of a workbook's chart: the workbook of a decimated export (on moto, through
//! run-export) opened by LibreOffice Calc headless and printed to PDF, its chart page rendered
//! to PNG by pdftoppm, and the line's pixels measured. A chart whose points all land on one x
//! (a line chart over a date axis groups by day) is a vertical stroke: a few pixel columns. A
//! right one spans the plot. For a day of 15-minute buckets, a week of hours and a year of days.
//! LibreOffice and poppler come from the project's setup (`scripts/setup-tools.sh`); under
//! `CI=true` a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use integration_tests::{someone, Fixture};
use run_export::{handle, Outcome};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2025-10-26 00:00 in Rome, the autumn DST day.
const DAY_FROM: i64 = 1_761_429_600;

/// The path of `program`, when installed; `None` (said loudly) without it, and a failure under
/// `CI=true`.
pub(crate) fn tool(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let message = format!("{program} is not installed; `make test` (scripts/setup-tools.sh) installs it");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("NOT RUN: {message}");
    }
    found
}

/// A fresh directory under the target directory.
pub(crate) fn scratch(what: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a directory");
    dir
}

/// Runs a command to its end; fails the test with what it said when it fails.
pub(crate) fn run(command: &mut Command) {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `document` converted by LibreOffice headless to PDF in `dir` (a profile of its own, so that
/// conversions may run at once).
pub(crate) fn to_pdf(soffice: &Path, document: &Path, dir: &Path) -> PathBuf {
    let profile = format!("file://{}", dir.join("profile").display());
    run(Command::new(soffice)
        .arg(format!("-env:UserInstallation={profile}"))
        .args(["--headless", "--norestore", "--convert-to", "pdf", "--outdir"])
        .arg(dir)
        .arg(document));
    let pdf = dir.join(document.with_extension("pdf").file_name().expect("a name"));
    assert!(pdf.is_file(), "no PDF at {}", pdf.display());
    pdf
}

/// Every page of `pdf` as an RGB image (width, height, pixels), at `dpi`.
pub(crate) fn pages(pdftoppm: &Path, pdf: &Path, dpi: u32) -> Vec<(u32, u32, Vec<u8>)> {
    let dir = pdf.parent().expect("a directory");
    let prefix = dir.join("page");
    run(Command::new(pdftoppm)
        .args(["-png", "-r", &dpi.to_string()])
        .arg(pdf)
        .arg(&prefix));
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(path).expect("a page"),
            ));
            let mut reader = decoder.read_info().expect("a PNG");
            let mut pixels = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut pixels).expect("a frame");
            pixels.truncate(info.buffer_size());
            let channels = info.color_type.samples();
            let rgb = pixels
                .chunks(channels)
                .flat_map(|p| {
                    if channels >= 3 {
                        [p[0], p[1], p[2]]
                    } else {
                        [p[0]; 3]
                    }
                })
                .collect();
            (info.width, info.height, rgb)
        })
        .collect()
}

/// The pixel columns of a page holding a coloured (not grey) pixel: where a series' line is.
fn coloured_columns((width, _, rgb): &(u32, u32, Vec<u8>)) -> Vec<u32> {
    let mut columns = vec![false; *width as usize];
    for (i, p) in rgb.chunks(3).enumerate() {
        let (max, min) = (
            p.iter().max().copied().unwrap_or(0),
            p.iter().min().copied().unwrap_or(0),
        );
        if max - min > 60 {
            columns[i % *width as usize] = true;
        }
    }
    (0..*width).filter(|x| columns[*x as usize]).collect()
}

async fn workbook(fx: &Fixture, body: &Value) -> Vec<u8> {
    let alice = someone();
    let event = fx.create_run(&alice, body).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    fx.download(&alice, &event.export_id.to_string()).await
}

fn decimated(from: i64, to: i64, ds: &str) -> Value {
    json!({
        "format": {"extension": "xlsx", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Mean"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "temperature", "label": "Hall B"}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": from, "to": to, "decimation": {"ds": ds, "dsf": "avg"}}}],
        "notification": {"messages": []}
    })
}

#[tokio::test]
async fn the_workbook_chart_spans_its_plot_for_a_day_of_quarters_a_week_of_hours_and_a_year_of_days() {
    let (Some(soffice), Some(pdftoppm)) = (tool("soffice"), tool("pdftoppm")) else {
        return;
    };
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point every 5 minutes: a year of them is 105,120 points, read in pages of 10,000.
    fx.slow_reader(Duration::ZERO, 300, 10_000).await;
    let cases = [
        (
            "day of 15-minute buckets",
            decimated(DAY_FROM, DAY_FROM + 90_000, "15m"),
        ),
        ("week of hours", decimated(DAY_FROM, DAY_FROM + 7 * 86_400, "1h")),
        ("year of days", decimated(DAY_FROM, DAY_FROM + 365 * 86_400, "1d")),
    ];
    for (what, body) in cases {
        let bytes = workbook(&fx, &body).await;
        let dir = scratch("chart");
        let path = dir.join("export.xlsx");
        std::fs::write(&path, &bytes).expect("written");
        let pdf = to_pdf(&soffice, &path, &dir);
        let rendered = pages(&pdftoppm, &pdf, 50);
        // The chart sheet is the last one printed.
        let page = rendered.last().expect("a page");
        let columns = coloured_columns(page);
        let width = page.0;
        let span = columns.last().zip(columns.first()).map_or(0, |(l, f)| l - f);
        println!(
            "{what}: {} pages, the line in {} of {width} pixel columns, spanning {span}",
            rendered.len(),
            columns.len()
        );
        assert!(
            span * 2 > width && columns.len() as u32 * 5 > width * 2,
            "{what}: the line spans {span} of {width} pixel columns and fills {} (kept in {})",
            columns.len(),
            dir.display()
        );
        if std::env::var_os("KEEP_CHARTS").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
