//! PDF reports (`"extension": "pdf"`) through run-export on moto, read by tools nobody here
//! wrote: qpdf checks the document, pdffonts says its font is embedded, pdftoppm renders its
//! pages, pdftotext extracts its text, which must hold the title, the window in the export's
//! zone, every summary figure as this test computes it, and the rows of the autumn DST night in
//! Rome with the repeated hour told apart. A year of data makes a report of a page an item.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use exporter_core::domain::RunEvent;
use exporter_core::ports::JobHistory;
use integration_tests::{expected_value, number_text, quarter_means, someone, Fixture, READER_START};
use run_export::{handle, Outcome};

use super::charts::{pages, run, scratch, tool};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2025-10-26, the autumn DST day in Rome (25 hours): local midnight to local midnight.
const DAY_FROM: i64 = 1_761_429_600;
const DAY_TO: i64 = 1_761_519_600;
/// 03:00 CEST becomes 02:00 CET.
const DST_END: i64 = 1_761_440_400;

fn item(target: &str, label: &str, from: i64, to: i64, decimation: Option<Value>) -> Value {
    let mut params = json!({"target": {"value": target, "label": label}, "channelId": CHANNEL,
        "subtopic": "events.data", "from": from, "to": to});
    if let Some(d) = decimation {
        params["decimation"] = d;
    }
    json!({"params": params})
}

fn report_body(items: Vec<Value>, pdf: Value) -> Value {
    json!({
        "format": {"extension": "pdf", "timezone": "Europe/Rome", "pdf": pdf,
            "columns": [{"id": "time", "label": "Heure"}, {"id": "value", "label": "Valeur"}]},
        "type": "oneTime", "items": items,
        "notification": {"messages": []}
    })
}

/// Runs the export to its end; returns the job's download (the report) and the job.
async fn report_of(
    fx: &Fixture,
    alice: &[(String, String)],
    body: &Value,
) -> (Vec<u8>, exporter_core::domain::job::Job, RunEvent) {
    let event = fx.create_run(alice, body).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    let job = fx.store.job(&event.job()).await.expect("reads").expect("a job");
    let bytes = fx.download(alice, &event.export_id.to_string()).await;
    (bytes, job, event)
}

fn text_of(pdftotext: &Path, pdf: &Path) -> String {
    let out = Command::new(pdftotext)
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn checked(qpdf: &Path, pdffonts: &Path, pdf: &Path) {
    run(Command::new(qpdf).arg("--check").arg(pdf));
    let fonts = Command::new(pdffonts).arg(pdf).output().expect("pdffonts runs");
    let fonts = String::from_utf8_lossy(&fonts.stdout);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "no font: {fonts}");
    for row in rows {
        assert!(row.contains("DejaVuSans"), "{row}");
        // name type encoding emb sub uni: embedded, subset, with a Unicode map.
        let flags: Vec<&str> = row.split_whitespace().rev().take(5).collect();
        assert_eq!(
            flags[2..5],
            ["yes", "yes", "yes"],
            "embedded, subset, Unicode: {row}"
        );
    }
}

#[tokio::test]
async fn a_report_of_the_autumn_dst_day_holds_every_figure_and_reads_in_the_zone() {
    let (Some(qpdf), Some(pdftoppm), Some(pdftotext), Some(pdffonts)) = (
        tool("qpdf"),
        tool("pdftoppm"),
        tool("pdftotext"),
        tool("pdffonts"),
    ) else {
        return;
    };
    let Some(fx) = Fixture::new().await else { return };
    // The night's two hours around the change, raw (a point a minute), and the day's quarters.
    let night = (DST_END - 5400, DST_END + 3600);
    let body = report_body(
        vec![
            item(
                "temperature",
                "Hall B",
                DAY_FROM,
                DAY_TO,
                Some(json!({"ds": "15m", "dsf": "avg"})),
            ),
            item("humidity", "Hall B humidity", night.0, night.1, None),
        ],
        json!({"pageSize": "A4", "orientation": "portrait"}),
    );
    let mut body = body;
    body["notification"]["messages"] = json!([{"policy": "onSuccess", "medium": "email",
        "title": "Report", "text": "{{rows}} rows", "target": "reports@example.com"}]);
    let alice = someone();
    let (bytes, job, event) = report_of(&fx, &alice, &body).await;
    assert!(bytes.starts_with(b"%PDF-"), "the download is the report");
    // The email carries the report, as a PDF.
    let summary = fx.notify_job(event.export_id, job.job_id.clone()).await;
    assert_eq!(summary.sent, 1);
    let message_id = fx.first_notification(&alice, event.export_id).await["providerMessageId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let raw = fx.sent_email(&message_id).await.expect("moto has the email");
    assert!(
        raw.contains("Content-Type: application/pdf"),
        "{}",
        &raw[..raw.len().min(2000)]
    );
    assert!(raw.contains(".pdf"), "the attachment is named as the report");
    let report = job.detail.archive.as_ref().expect("the report is the job's file");
    assert!(report.key.ends_with(".pdf"), "{}", report.key);
    assert_eq!(job.detail.files.len(), 2);
    assert!(job.detail.files.iter().all(|f| f.key.ends_with(".head.csv")));

    let dir = scratch("report");
    let pdf = dir.join("report.pdf");
    std::fs::write(&pdf, &bytes).expect("written");
    checked(&qpdf, &pdffonts, &pdf);
    let rendered = pages(&pdftoppm, &pdf, 40);
    assert!((2..=8).contains(&rendered.len()), "{} pages", rendered.len());
    let (width, height, rgb) = &rendered[0];
    let ink = rgb.chunks(3).filter(|p| p.iter().any(|c| *c < 200)).count();
    assert!(ink * 50 > (*width * *height) as usize, "the first page is drawn");
    let text = text_of(&pdftotext, &pdf);

    // The decimated item: a mean of 15 minutes each quarter of the 25-hour day.
    let starts: Vec<i64> = (DAY_FROM..DAY_TO).step_by(900).collect();
    let means = quarter_means(&starts);
    // The raw item: a point a minute.
    let times: Vec<i64> = (night.0..night.1).step_by(60).collect();
    let values: Vec<f64> = times
        .iter()
        .map(|t| expected_value((t - READER_START) / 60))
        .collect();
    let figures = |values: &[f64]| {
        let sum = values.iter().fold(0.0, |s, v| s + v);
        [
            values.len().to_string(),
            number_text(values.iter().copied().reduce(f64::min)),
            number_text(values.iter().copied().reduce(f64::max)),
            number_text(Some(sum / values.len() as f64)),
        ]
    };
    let mut expected: Vec<String> = vec![
        "Hall B and Hall B humidity".into(),
        "From 2025-10-26 00:00:00 +02:00 to 2025-10-27 00:00:00 +01:00 (Europe/Rome)".into(),
        // First and last bucket, and the first and last point of the night.
        "2025-10-26 00:00:00 +02:00".into(),
        "2025-10-26 23:45:00 +01:00".into(),
        "2025-10-26 01:30:00 +02:00".into(),
        "2025-10-26 02:59:00 +01:00".into(),
        // The repeated hour, twice, told apart (the night's table).
        "2025-10-26 02:30:00 +02:00".into(),
        "2025-10-26 02:30:00 +01:00".into(),
        "Data (150 rows)".into(),
    ];
    expected.extend(figures(&means));
    expected.extend(figures(&values));
    for figure in &expected {
        assert!(
            text.contains(figure.as_str()),
            "`{figure}` is not in the report's text:\n{text}"
        );
    }
    assert!(text.contains("Page 1 of "), "page numbers");
    if std::env::var_os("KEEP_CHARTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_year_of_raw_points_makes_a_report_of_a_page_in_landscape_letter() {
    let (Some(qpdf), Some(pdftotext), Some(pdffonts), Some(pdfinfo)) =
        (tool("qpdf"), tool("pdftotext"), tool("pdffonts"), tool("pdfinfo"))
    else {
        return;
    };
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // A point every 5 minutes for a year: 105,120 rows.
    fx.slow_reader(Duration::ZERO, 300, 10_000).await;
    let body = report_body(
        vec![item(
            "temperature",
            "Hall B",
            DAY_FROM,
            DAY_FROM + 365 * 86_400,
            None,
        )],
        json!({"pageSize": "letter", "orientation": "landscape"}),
    );
    let (bytes, job, _) = report_of(&fx, &someone(), &body).await;
    assert_eq!(job.detail.files[0].rows, 105_120);
    let dir = scratch("report-year");
    let pdf = dir.join("year.pdf");
    std::fs::write(&pdf, &bytes).expect("written");
    checked(&qpdf, &pdffonts, &pdf);
    let info = Command::new(pdfinfo).arg(&pdf).output().expect("pdfinfo runs");
    let info = String::from_utf8_lossy(&info.stdout);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Pages:"), "1", "{info}");
    assert!(info.contains("792 x 612 pts"), "landscape letter: {info}");
    let text = text_of(&pdftotext, &pdf);
    assert!(text.contains("105120"), "the count: {text}");
    assert!(
        text.contains("105120 rows: more than the 200 a report lists"),
        "{text}"
    );
    assert!(bytes.len() < 300_000, "{} bytes for a year", bytes.len());
    if std::env::var_os("KEEP_CHARTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
