//! The typed formats against moto, on the autumn DST day in Rome, each run with a budget that
//! makes it continue across invocations: JSON and NDJSON parsed back and equal cell by cell to
//! the CSV of the same export; Parquet equal byte for byte to the file of a run that never
//! stopped, and read back by DuckDB and by pandas on pyarrow (`tests/clients/check_files.py`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use serde_json::{json, Value};

use integration_tests::doubles::Launches;
use integration_tests::{expected_value, quarter_means, someone, Fixture, READER_START};

use super::clients::{python, read_back, write};
use super::continuation::{files_of, run_budgeted, run_whole, twin_reading};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
/// 2025-10-26, the autumn DST day in Rome (25 hours): local midnight to local midnight.
const DAY_FROM: i64 = 1_761_429_600;
const DAY_TO: i64 = 1_761_519_600;
/// 03:00 CEST becomes 02:00 CET.
const DST_END: i64 = 1_761_440_400;

/// The DST day raw (a point a minute) and as 15-minute means, in `extension`.
fn body(extension: &str) -> Value {
    let item = |name: &str| {
        json!({"params": {"target": {"value": name}, "channelId": CHANNEL, "subtopic": "events.data",
            "from": DAY_FROM, "to": DAY_TO}})
    };
    let mut decimated = item("urn:dev:b");
    decimated["params"]["decimation"] = json!({"ds": "15m", "dsf": "avg"});
    json!({
        "format": {"extension": extension, "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Heure"}, {"id": "value", "label": "Valeur"},
                        {"id": "utcOffset", "label": "Décalage"}, {"id": "count", "label": "n"},
                        {"id": "name", "label": "Nom"}]},
        "type": "oneTime", "items": [item("urn:dev:a"), decimated],
        "notification": {"messages": []}
    })
}

/// An export's item files (named `.extension`), in name order, without their extension.
async fn item_files(
    fx: &Fixture,
    id: &exporter_core::domain::ExportId,
    extension: &str,
) -> BTreeMap<String, Vec<u8>> {
    files_of(fx, id)
        .await
        .into_iter()
        // Not the email charts' series (`.charts/item-N.json`).
        .filter(|(name, _)| !name.starts_with("item-"))
        .filter_map(|(name, bytes)| Some((name.strip_suffix(&format!(".{extension}"))?.to_owned(), bytes)))
        .collect()
}

/// A CSV file's header and rows, as text.
fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("a record").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Checks that a JSON value holds the CSV's cell: `null` for an empty one, the same number
/// (exactly: integers as written), the same text or boolean.
fn same_cell(json: &Value, csv: &str, at: &str) {
    match json {
        Value::Null => assert_eq!(csv, "", "{at}: null for an empty cell"),
        Value::Number(n) if n.is_u64() => assert_eq!(n.to_string(), csv, "{at}"),
        Value::Number(n) => {
            let parsed: f64 = csv
                .parse()
                .unwrap_or_else(|_| panic!("{at}: `{csv}` is a number"));
            assert_eq!(n.as_f64(), Some(parsed), "{at}: the CSV's number exactly");
        }
        Value::String(s) => assert_eq!(s, csv, "{at}"),
        Value::Bool(b) => assert_eq!(b.to_string(), csv, "{at}"),
        other => panic!("{at}: unexpected {other}"),
    }
}

#[tokio::test]
async fn json_and_ndjson_continued_across_invocations_hold_the_csv_cell_for_cell() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.slow_reader(Duration::from_millis(25), 60, 50).await;
    let alice = someone();
    let queue = Launches::default();
    let csv_event = fx.create_run(&alice, &body("csv")).await;
    run_whole(&fx, &queue, &csv_event).await;
    let csvs = item_files(&fx, &csv_event.export_id, "csv").await;
    assert_eq!(csvs.len(), 2, "{:?}", csvs.keys());

    for extension in ["json", "ndjson"] {
        let event = fx.create_run(&alice, &body(extension)).await;
        run_budgeted(&fx, &queue, &event).await;
        let files = item_files(&fx, &event.export_id, extension).await;
        assert_eq!(files.keys().collect::<Vec<_>>(), csvs.keys().collect::<Vec<_>>());
        // The job's download is the zip of its items' files, each byte for byte.
        let zip = fx.download(&alice, &event.export_id.to_string()).await;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
        assert_eq!(archive.len(), files.len());
        for (name, bytes) in &files {
            let mut entry = archive
                .by_name(&format!("{name}.{extension}"))
                .expect("in the zip");
            let mut held = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut held).expect("read");
            assert!(held == *bytes, "{name}.{extension}: the zip holds the file");
        }
        for (name, bytes) in &files {
            let text = std::str::from_utf8(bytes).expect("UTF-8");
            let rows: Vec<Value> = if extension == "json" {
                serde_json::from_str::<Vec<Value>>(text).expect("one JSON array")
            } else {
                assert!(text.ends_with('\n') && !text.contains("\n\n"));
                text.lines()
                    .map(|line| serde_json::from_str(line).expect("a JSON object a line"))
                    .collect()
            };
            let (header, csv) = csv_rows(&csvs[name]);
            // Keys in the CSV's order (the parsed objects do not keep it: the text does).
            let first = text.find('{').map_or("", |at| &text[at..]);
            let places: Vec<usize> = header
                .iter()
                .map(|label| first.find(&format!("\"{label}\":")).expect("the key"))
                .collect();
            assert!(places.is_sorted(), "{name}: keys in the CSV's order: {places:?}");
            assert_eq!(
                rows.len(),
                csv.len(),
                "{extension} {name}: as many rows as the CSV"
            );
            assert!(rows.len() >= 100, "{name}: {} rows", rows.len());
            for (i, (row, cells)) in rows.iter().zip(&csv).enumerate() {
                let object = row.as_object().expect("a row is an object");
                assert_eq!(object.len(), header.len(), "a key per column");
                for (label, cell) in header.iter().zip(cells) {
                    same_cell(
                        &object[label],
                        cell,
                        &format!("{extension} {name} row {i} {label}"),
                    );
                }
            }
            // The repeated hour, told apart by its offset.
            let twice = rows
                .iter()
                .filter(|r| r["Heure"].as_str().is_some_and(|t| t.contains("T02:30:00")))
                .count();
            let at: Vec<&Value> = rows
                .iter()
                .filter(|r| r["Heure"].as_str().is_some_and(|t| t.contains("T02:30:00")))
                .map(|r| &r["Heure"])
                .collect();
            assert_eq!(twice, 2, "{name}: 02:30 twice, at +02:00 and +01:00: {at:?}");
        }
    }
}

fn utc(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("in range")
}

#[tokio::test]
async fn a_continued_parquet_file_equals_an_uninterrupted_one_and_duckdb_and_pyarrow_read_it() {
    let Some(python) = python() else { return };
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let latency = Duration::from_millis(25);
    fx.slow_reader(latency, 60, 50).await;
    let alice = someone();
    let queue = Launches::default();
    let mut request = body("parquet");
    request["format"]["localTime"] = json!(true);
    let event = fx.create_run(&alice, &request).await;
    run_budgeted(&fx, &queue, &event).await;

    let other = twin_reading(&fx, &event.export_id, (latency, 60, 50)).await;
    run_whole(&other, &queue, &event).await;
    let expected = item_files(&other, &event.export_id, "parquet").await;
    let got = item_files(&fx, &event.export_id, "parquet").await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(
            got[name] == *bytes,
            "{name}: byte for byte the file of a run that never stopped"
        );
    }

    let raw_times: Vec<i64> = (DAY_FROM..DAY_TO).step_by(60).collect();
    let starts: Vec<i64> = (DAY_FROM..DAY_TO).step_by(900).collect();
    let means = quarter_means(&starts);
    let offset = |t: &i64| if *t < DST_END { "+02:00" } else { "+01:00" };
    let local = |t: &i64| {
        Rome.from_utc_datetime(&utc(*t).naive_utc())
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let spec = |name: &str, times: &[i64], values: Vec<f64>, counts: Option<Vec<i64>>, nom: &str| {
        json!({
            "kind": "parquet", "path": write(&got[name], &format!("{name}.parquet")),
            "columns": ["Heure", "Heure (local)", "Valeur", "Décalage", "n", "Nom"],
            "types": {"Heure": "timestamp[ns, tz=UTC]", "Heure (local)": "timestamp[ns]", "Valeur": "double",
                      "Décalage": "string", "n": "int64", "Nom": "string"},
            "timezone": "Europe/Rome",
            "times_utc": times.iter().map(|t| utc(*t).format("%Y-%m-%dT%H:%M:%SZ").to_string()).collect::<Vec<_>>(),
            "local_times": times.iter().map(local).collect::<Vec<_>>(),
            "values": values,
            "counts": counts,
            "extra": {"Décalage": times.iter().map(offset).collect::<Vec<_>>(),
                      "Nom": times.iter().map(|_| nom).collect::<Vec<_>>()},
        })
    };
    let names: Vec<&String> = got.keys().collect();
    let specs = json!([
        spec(
            names[0],
            &raw_times,
            raw_times
                .iter()
                .map(|t| expected_value((t - READER_START) / 60))
                .collect(),
            None,
            "urn:dev:a"
        ),
        spec(
            names[1],
            &starts,
            means,
            Some(starts.iter().map(|_| 15).collect()),
            "urn:dev:b"
        ),
    ]);
    read_back(&python, &specs);
}
