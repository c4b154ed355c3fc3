//! Exported files read back by clients nobody here wrote: pandas (`read_csv` with the options as
//! set, `read_excel`) and openpyxl, in the project's virtualenv (`tests/clients/check_files.py`),
//! on the autumn DST day in Rome; the CSV's bytes checked here (byte-order mark, CRLF).

use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use serde_json::{json, Value};

use integration_tests::{expected_value, quarter_means, someone, Fixture, READER_START};
use run_export::{handle, Outcome};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2025-10-26, the autumn DST day in Rome (25 hours): local midnight to local midnight.
const DAY_FROM: i64 = 1_761_429_600;
const DAY_TO: i64 = 1_761_519_600;
/// 03:00 CEST becomes 02:00 CET.
const DST_END: i64 = 1_761_440_400;

/// The project's Python with pandas and openpyxl; `None` (said loudly) without them, and a
/// failure under `CI=true`.
pub(crate) fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python3");
    let ready = Command::new(&python)
        .args(["-c", "import pandas, openpyxl, pyarrow, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    let message =
        "pandas, openpyxl, pyarrow and duckdb are not in .venv; `make test` (scripts/stack.sh) installs them";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("NOT RUN: {message}");
    None
}

/// Runs the checker on `specs`; fails the test with what it printed when a check failed.
pub(crate) fn read_back(python: &PathBuf, specs: &Value) {
    let spec = write(specs.to_string().as_bytes(), "spec.json");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/check_files.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&spec)
        .output()
        .expect("python runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{said}");
    assert!(
        out.status.success(),
        "the clients read the files otherwise:\n{said}"
    );
    // Kept when a check fails, to look at; removed when all passed.
    let paths = specs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str());
    for path in paths.chain([spec.as_str()]) {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn export_of(fx: &Fixture, body: &Value) -> (String, Vec<u8>) {
    let alice = someone();
    let event = fx.create_run(&alice, body).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    let id = event.export_id.to_string();
    let bytes = fx.download(&alice, &id).await;
    (id, bytes)
}

fn utc(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("in range")
}

fn offset_text(t: i64) -> &'static str {
    if t < DST_END {
        "+02:00"
    } else {
        "+01:00"
    }
}

#[tokio::test]
async fn pandas_reads_a_csv_with_a_bom_a_decimal_comma_and_semicolons_as_written() {
    let Some(python) = python() else { return };
    let Some(fx) = Fixture::new().await else { return };
    let body = json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Heure"}, {"id": "value", "label": "Température"},
                        {"id": "utcOffset", "label": "Décalage"}],
            "csvDelimiter": ";", "csvDecimalSeparator": ",", "csvBom": true},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "temperature"}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": DAY_FROM, "to": DAY_TO}}],
        "notification": {"messages": []}
    });
    let (_, bytes) = export_of(&fx, &body).await;
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "the file starts with the BOM");
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    assert_eq!(
        text.matches('\n').count(),
        1501,
        "a header and a row a minute for 25 hours"
    );
    assert_eq!(text.matches("\r\n").count(), 1501, "every record ends with CRLF");
    assert!(
        text.starts_with("Heure;Température;Décalage\r\n"),
        "{}",
        &text[..60]
    );
    let times: Vec<i64> = (DAY_FROM..DAY_TO).step_by(60).collect();
    let spec = json!([{
        "kind": "csv", "path": write(&bytes, "day.csv"), "sep": ";", "decimal": ",", "encoding": "utf-8-sig",
        "columns": ["Heure", "Température", "Décalage"],
        "time_column": "Heure",
        "times_utc": times.iter().map(|t| utc(*t).format("%Y-%m-%dT%H:%M:%SZ").to_string()).collect::<Vec<_>>(),
        "value_column": "Température",
        "values": times.iter().map(|t| expected_value((t - READER_START) / 60)).collect::<Vec<_>>(),
        "extra": {"Décalage": times.iter().map(|t| offset_text(*t)).collect::<Vec<_>>()},
    }]);
    read_back(&python, &spec);
}

#[tokio::test]
async fn openpyxl_and_pandas_read_a_finished_workbook_with_its_chart() {
    let Some(python) = python() else { return };
    let Some(fx) = Fixture::new().await else { return };
    let label = "Hall/B [north]: température moyenne*";
    let body = json!({
        "format": {"extension": "xlsx", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Heure"}, {"id": "value", "label": "Moyenne"},
                        {"id": "utcOffset", "label": "Décalage"}, {"id": "count", "label": "Points"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "temperature", "label": label}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": DAY_FROM, "to": DAY_TO,
            "decimation": {"ds": "15m", "dsf": "avg"}}}],
        "notification": {"messages": []}
    });
    let (id, bytes) = export_of(&fx, &body).await;
    // A bucket every quarter of an hour of the 25-hour day, each the mean of its 15 points.
    let starts: Vec<i64> = (DAY_FROM..DAY_TO).step_by(900).collect();
    assert_eq!(starts.len(), 100);
    let means = quarter_means(&starts);
    let local = |t: i64| {
        Rome.from_utc_datetime(&utc(t).naive_utc())
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let locals: Vec<String> = starts.iter().map(|t| local(*t)).collect();
    assert_eq!(
        locals.iter().filter(|l| l.ends_with("T02:30:00")).count(),
        2,
        "the repeated hour shows twice in local time"
    );
    let sheet = "Hall_B _north__ température moy";
    let spec = json!([{
        "kind": "xlsx", "path": write(&bytes, "day.xlsx"),
        "sheets": [sheet, "Hall_B _north__ températu chart"], "data_sheet": sheet,
        "columns": ["Heure", "Moyenne", "Décalage", "Points"],
        "time_column": "Heure", "local_times": locals,
        "value_column": "Moyenne", "values": means,
        "extra": {"Décalage": starts.iter().map(|t| offset_text(*t)).collect::<Vec<_>>(),
                  "Points": starts.iter().map(|_| "15").collect::<Vec<_>>()},
        "chart": true,
        "title": format!("{label} (export {id})"),
    }]);
    read_back(&python, &spec);
}

#[tokio::test]
async fn a_raw_workbook_has_no_chart_and_sheets_named_after_the_senml_name() {
    let Some(python) = python() else { return };
    let Some(fx) = Fixture::new().await else { return };
    let from = DAY_FROM;
    let to = DAY_FROM + 3600;
    let body = json!({
        "format": {"extension": "xlsx", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"}, {"id": "name", "label": "Name"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "urn:dev:ow:10e2073a01080063:temperature"}, "channelId": CHANNEL,
            "subtopic": "events.data", "from": from, "to": to}}],
        "notification": {"messages": []}
    });
    let (id, bytes) = export_of(&fx, &body).await;
    let times: Vec<i64> = (from..to).step_by(60).collect();
    let name = "urn:dev:ow:10e2073a01080063:temperature";
    let spec = json!([{
        "kind": "xlsx", "path": write(&bytes, "raw.xlsx"),
        "sheets": ["urn_dev_ow_10e2073a01080063_tem"], "data_sheet": "urn_dev_ow_10e2073a01080063_tem",
        "columns": ["Time", "Value", "Name"],
        "time_column": "Time",
        "local_times": times.iter().map(|t| Rome.from_utc_datetime(&utc(*t).naive_utc()).format("%Y-%m-%dT%H:%M:%S").to_string()).collect::<Vec<_>>(),
        "value_column": "Value",
        "values": times.iter().map(|t| expected_value((t - READER_START) / 60)).collect::<Vec<_>>(),
        "extra": {"Name": times.iter().map(|_| name).collect::<Vec<_>>()},
        "chart": false,
        "title": format!("{name} (export {id})"),
    }]);
    read_back(&python, &spec);
}

/// Writes `bytes` to a file that outlives the test's checks (in the target directory).
pub(crate) fn write(bytes: &[u8], name: &str) -> String {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("clients-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("the file written");
    path.to_string_lossy().into_owned()
}
