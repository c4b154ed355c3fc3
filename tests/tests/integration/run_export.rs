//! run-export end to end on moto with the local reader: one-time and recurring exports, files
//! downloaded through the API and checked cell by cell against values computed here; failure
//! paths that must leave no file behind; duplicates, leases and deleted exports.

use std::io::{Cursor, Read};

use async_trait::async_trait;
use calamine::{Data, DataType, Reader, Xlsx};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use serde_json::{json, Value};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use exporter_adapters::s3::S3Files;
use exporter_core::domain::job::{JobEnd, JobKey};
use exporter_core::domain::RunEvent;
use exporter_core::ports::{FileStore, GrowingFiles, JobEnds, JobLedger, StoreError};
use integration_tests::{expected_value, someone, Fixture, READER_START};
use run_export::{handle, Failure, Outcome};

const CHANNEL: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";

fn item(name: &str, from: i64, to: i64) -> Value {
    json!({"params": {"target": {"value": name}, "channelId": CHANNEL, "subtopic": "events.data", "from": from, "to": to}})
}

async fn created(fx: &Fixture, who: &[(String, String)], body: &Value) -> (String, DateTime<Utc>) {
    let (status, export) = fx.call("POST", "/exports", Some(body), who).await;
    assert_eq!(status, 201, "{export}");
    let id = export["id"].as_str().expect("an id").to_owned();
    let created_at = export["createdAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("createdAt");
    (id, created_at)
}

/// A one-time CSV export of `items` with a time column and no messages.
fn one_time_csv(items: Vec<Value>) -> Value {
    json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "t"}]},
        "type": "oneTime", "items": items,
        "notification": {"messages": []}
    })
}

fn event(id: &str, at: DateTime<Utc>) -> RunEvent {
    RunEvent {
        export_id: id.parse().expect("an export id"),
        scheduled_at: at,
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    }
}

async fn download(fx: &Fixture, who: &[(String, String)], id: &str) -> Vec<u8> {
    fx.download(who, id).await
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect()
}

fn rome(t: i64) -> String {
    Rome.timestamp_opt(t, 0)
        .single()
        .expect("an instant")
        .to_rfc3339()
}

#[tokio::test]
async fn a_one_time_export_of_two_items_gives_two_csv_files_in_a_zip_right_to_the_digit() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let from = READER_START + 86_400; // 2025-01-02T00:00Z
    let mut humidity = item("urn:dev:humidity", from, from + 6 * 3600);
    humidity["params"]["decimation"] = json!({"ds": "15m", "dsf": "avg"});
    let mut temperature = item("urn:dev:temperature", from, from + 3600);
    temperature["params"]["target"]["label"] = json!("temperature");
    temperature["filename"] = json!("raw.csv");
    let body = json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome", "columns": [
            {"id": "time", "label": "Time"}, {"id": "value", "label": "Value"},
            {"id": "name", "label": "Name"}, {"id": "count", "label": "Count"}]},
        "type": "oneTime",
        "items": [temperature, humidity],
        "notification": {"messages": []}
    });
    let (id, created_at) = created(&fx, &alice, &body).await;
    let (status, _) = fx
        .call("GET", &format!("/exports/{id}/download"), None, &alice)
        .await;
    assert_eq!(status, 404, "no file before the run");

    assert_eq!(
        handle(fx.run_deps(), event(&id, created_at)).await.expect("runs"),
        Outcome::Done
    );

    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "done");
    let job = &state["jobs"][0];
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["files"][0]["rows"], 60);
    assert_eq!(job["files"][1]["rows"], 24);
    assert!(job["files"][0]["key"]
        .as_str()
        .is_some_and(|k| k.ends_with("/raw.csv")));
    assert!(job["archive"]["key"]
        .as_str()
        .is_some_and(|k| k.ends_with(".zip")));
    // The two files, their zip, and the decimated item's series for the email's chart.
    let objects = fx.objects().await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert!(
        objects.iter().any(|k| k.ends_with("/.charts/item-1.json")),
        "{objects:?}"
    );

    let zip_bytes = download(&fx, &alice, &id).await;
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("a zip");
    assert_eq!(archive.len(), 2);
    let mut read = |name: &str| {
        let mut text = String::new();
        archive
            .by_name(name)
            .expect("in the zip")
            .read_to_string(&mut text)
            .expect("UTF-8");
        text
    };
    let raw = csv_rows(read("raw.csv").as_bytes());
    assert_eq!(raw[0], ["Time", "Value", "Name", "Count"]);
    assert_eq!(raw.len(), 61);
    for (i, row) in raw[1..].iter().enumerate() {
        let t = from + 60 * i as i64;
        let k = (t - READER_START) / 60;
        assert_eq!(
            row,
            &[
                rome(t),
                expected_value(k).to_string(),
                "temperature".into(),
                String::new()
            ]
        );
    }
    let stem = "urn_dev_humidity_20250102T000000Z_20250102T060000Z.csv";
    let decimated = csv_rows(read(stem).as_bytes());
    assert_eq!(decimated.len(), 25);
    for (b, row) in decimated[1..].iter().enumerate() {
        let start = from + 900 * b as i64;
        let values: Vec<f64> = (0..15)
            .map(|j| expected_value((start - READER_START) / 60 + j))
            .collect();
        let average = values.iter().sum::<f64>() / 15.0;
        assert_eq!(row[0], rome(start));
        assert!(
            (row[1].parse::<f64>().expect("a number") - average).abs() < 1e-9,
            "{row:?} vs {average}"
        );
        assert_eq!(row[2], "urn:dev:humidity");
        assert_eq!(row[3], "15");
    }
}

#[tokio::test]
async fn a_recurring_export_to_xlsx_covers_the_dst_day_with_23_hourly_rows() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let midnight = |d: u32| {
        let date = NaiveDate::from_ymd_opt(2025, 3, d).expect("a date");
        Rome.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .single()
            .expect("unambiguous")
    };
    let anchor = midnight(27).timestamp();
    let mut series = item("urn:dev:temperature", 0, 0);
    series["params"]["decimation"] = json!({"ds": "1h", "dsf": "avg"});
    let body = json!({
        "format": {"extension": "xls", "timezone": {"name": "Europe/Rome"}, "columns": [
            {"id": "time", "label": "Hour"}, {"id": "value", "label": "Average"}, {"id": "count", "label": "Points"}]},
        "type": "recurring", "periodicity": "P1D", "periodStart": anchor,
        "items": [series],
        "notification": {"messages": []}
    });
    let (id, _) = created(&fx, &alice, &body).await;
    // t_3 is 2025-03-30T00:00 Rome; its window [t_2, t_3) is 29 March. Run t_4: 30 March, 23 hours.
    let t4 = midnight(31).with_timezone(&Utc);
    assert_eq!(
        handle(fx.run_deps(), event(&id, t4)).await.expect("runs"),
        Outcome::Done
    );
    // Re-armed before exporting, for the next occurrence that can still fire: the first midnight
    // in Rome after now (t_5 is long past: a schedule at a past time would never fire).
    let (_, export) = fx.call("GET", &format!("/exports/{id}"), None, &alice).await;
    // (An occurrence is armable until its schedule, a minute after it, would fire.)
    let now_in_rome = (Utc::now() - TimeDelta::seconds(60)).with_timezone(&Rome);
    let next_midnight = Rome
        .from_local_datetime(
            &(now_in_rome.date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight"),
        )
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc);
    assert_eq!(
        export["nextRunAt"],
        next_midnight.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    );

    let bytes = download(&fx, &alice, &id).await;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("an xlsx");
    // Named after the item (made valid), with its chart on a sheet of its own.
    assert_eq!(
        book.sheet_names(),
        ["urn_dev_temperature", "urn_dev_temperature chart"]
    );
    let sheet = book.worksheet_range("urn_dev_temperature").expect("a sheet");
    assert_eq!(sheet.height(), 24, "header and 23 hours");
    assert_eq!(sheet.get((0, 0)), Some(&Data::String("Hour".into())));
    let day_start = midnight(30).timestamp();
    let mut local_hours = Vec::new();
    for hour in 0..23 {
        let start = day_start + hour * 3600;
        let time = sheet
            .get((hour as usize + 1, 0))
            .and_then(|d| d.as_datetime())
            .expect("a date-time");
        assert_eq!(
            time,
            Rome.timestamp_opt(start, 0)
                .single()
                .expect("an instant")
                .naive_local()
        );
        local_hours.push(time.format("%H").to_string());
        let k0 = (start - READER_START) / 60;
        let average = (0..60).map(|j| expected_value(k0 + j)).sum::<f64>() / 60.0;
        let got = sheet
            .get((hour as usize + 1, 1))
            .and_then(|d| d.get_float())
            .expect("a number");
        assert!((got - average).abs() < 1e-9, "hour {hour}: {got} vs {average}");
        assert_eq!(sheet.get((hour as usize + 1, 2)), Some(&Data::Float(60.0)));
    }
    assert!(
        !local_hours.contains(&"02".to_owned()),
        "02:00 does not exist on 30 March in Rome"
    );
}

#[tokio::test]
async fn a_reader_failing_forever_fails_the_job_with_its_message_and_leaves_no_file() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.break_reader(500, 2).await;
    let alice = someone();
    let body = one_time_csv(vec![
        item("urn:dev:a", READER_START, READER_START + 600),
        item("urn:dev:b", READER_START, READER_START + 600),
    ]);
    let (id, created_at) = created(&fx, &alice, &body).await;
    assert_eq!(
        handle(fx.run_deps(), event(&id, created_at)).await.expect("runs"),
        Outcome::Failed
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "failed");
    assert_eq!(state["jobs"][0]["status"], "failed");
    let error = state["jobs"][0]["error"].as_str().expect("an error");
    assert!(error.contains("reader database unavailable"), "{error}");
    assert!(fx.objects().await.is_empty());
    assert_eq!(
        fx.call("GET", &format!("/exports/{id}/download"), None, &alice)
            .await
            .0,
        404
    );
}

/// S3 whose connection drops on the second part of any multipart upload.
#[derive(Debug)]
struct FailingSecondPart;

impl Intercept for FailingSecondPart {
    fn name(&self) -> &'static str {
        "FailingSecondPart"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.request().uri().contains("partNumber=2") {
            return Err("connection reset".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_s3_failure_in_the_middle_of_an_upload_aborts_it_and_fails_the_job() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    // A small first item (uploaded whole), then one of about 7 MiB: two parts.
    let body = json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "t"}, {"id": "value", "label": "v"}, {"id": "channel", "label": "c"}]},
        "type": "oneTime",
        "items": [item("urn:dev:small", READER_START, READER_START + 600), item("urn:dev:big", READER_START, READER_START + 80 * 86_400)],
        "notification": {"messages": []}
    });
    let (id, created_at) = created(&fx, &alice, &body).await;
    let failing_s3 = fx.s3.config().to_builder().interceptor(FailingSecondPart).build();
    let failing =
        S3Files::new(aws_sdk_s3::Client::from_conf(failing_s3), &fx.bucket).with_part_size(5 * 1024 * 1024);
    // Files are not sent while written (a piece is larger than any of them): each is stored
    // whole by the file store, whose own upload fails at its second part.
    let whole = S3Files::new(fx.s3.clone(), &fx.bucket).with_part_size(8 * 1024 * 1024);
    let deps = run_export::Deps {
        files: &failing,
        pieces: &failing,
        uploads: &whole,
        ..fx.run_deps()
    };
    assert_eq!(
        handle(deps, event(&id, created_at)).await.expect("runs"),
        Outcome::Failed
    );
    assert!(fx.objects().await.is_empty(), "no file of a failed job may stay");
    assert_eq!(fx.open_uploads().await, 0, "the upload must be aborted");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert!(
        state["jobs"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("upload part")),
        "{state}"
    );
}

#[tokio::test]
async fn the_same_trigger_twice_gives_one_job_and_one_set_of_files() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let body = one_time_csv(vec![item("urn:dev:a", READER_START, READER_START + 600)]);
    let (id, created_at) = created(&fx, &alice, &body).await;
    assert_eq!(
        handle(fx.run_deps(), event(&id, created_at)).await.expect("runs"),
        Outcome::Done
    );
    let files = fx.objects().await;
    // As if the attempt had died between recording its job and removing what a retry of a
    // later leg would have needed: the duplicate removes it.
    let job_id = event(&id, created_at).job_id();
    let resume = format!(
        "{}/.resume/leg-1.json",
        exporter_core::domain::files::job_prefix(&id.parse().expect("an id"), &job_id)
    );
    fx.files.put_bytes(&resume, b"{}".to_vec()).await.expect("stores");
    // And an attempt that died had begun the file again, never finishing it.
    let begun = format!(
        "{}/again.csv",
        exporter_core::domain::files::job_prefix(&id.parse().expect("an id"), &job_id)
    );
    fx.files.begin(&begun, "text/csv").await.expect("begins");
    assert_eq!(
        handle(fx.run_deps(), event(&id, created_at)).await.expect("runs"),
        Outcome::Duplicate
    );
    assert_eq!(
        fx.objects().await,
        files,
        "one set of files, and no resume file left"
    );
    assert_eq!(fx.open_uploads().await, 0, "no file left begun");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["jobs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_trigger_after_delete_does_nothing() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _) = created(&fx, &alice, &integration_tests::recurring_body("P1D")).await;
    assert_eq!(
        fx.call("DELETE", &format!("/exports/{id}"), None, &alice).await.0,
        204
    );
    let at = Utc::now() + TimeDelta::days(1);
    assert_eq!(
        handle(fx.run_deps(), event(&id, at)).await.expect("runs"),
        Outcome::Skipped
    );
    assert!(fx.objects().await.is_empty());
    let jobs: Vec<_> = fx
        .items()
        .await
        .into_iter()
        .filter(|i| i.get("jobId").is_some())
        .collect();
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn an_expired_job_answers_410_on_download() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.run_config.retention = TimeDelta::zero();
    let alice = someone();
    let body = one_time_csv(vec![item("urn:dev:a", READER_START, READER_START + 600)]);
    let (id, created_at) = created(&fx, &alice, &body).await;
    assert_eq!(
        handle(fx.run_deps(), event(&id, created_at)).await.expect("runs"),
        Outcome::Done
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["jobs"][0]["status"], "expired");
    assert_eq!(
        fx.call("GET", &format!("/exports/{id}/download"), None, &alice)
            .await
            .0,
        410
    );
}

/// How jobs end, except that recording a job's end fails (DynamoDB unavailable) the first time.
struct FinishFailsOnce<'a> {
    ends: &'a dyn JobEnds,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl JobEnds for FinishFailsOnce<'_> {
    async fn finish_job(&self, job: &JobKey, end: &JobEnd) -> Result<bool, StoreError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        self.ends.finish_job(job, end).await
    }
    async fn record_unrun(&self, job: &JobKey, end: &JobEnd) -> Result<(), StoreError> {
        self.ends.record_unrun(job, end).await
    }
    async fn handed_off(&self, job: &JobKey) -> Result<(), StoreError> {
        self.ends.handed_off(job).await
    }
    async fn stop_handing_off(&self, job: &JobKey) -> Result<(), StoreError> {
        self.ends.stop_handing_off(job).await
    }
}

#[tokio::test]
async fn an_attempt_stopped_by_an_error_gives_its_job_back_and_the_retry_runs_it() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let body = one_time_csv(vec![item("urn:dev:a", READER_START, READER_START + 600)]);
    let (id, created_at) = created(&fx, &alice, &body).await;
    let ends = FinishFailsOnce {
        ends: &fx.store,
        failed: false.into(),
    };
    let deps = run_export::Deps {
        ends: &ends,
        ..fx.run_deps()
    };
    assert!(matches!(
        handle(deps, event(&id, created_at)).await,
        Err(Failure::Retryable(_))
    ));
    // The runtime retries a minute later, well within the lease: the job was given back.
    assert_eq!(
        handle(deps, event(&id, created_at)).await.expect("runs"),
        Outcome::Done
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["jobs"].as_array().map(Vec::len), Some(1), "{state}");
    assert_eq!(state["jobs"][0]["status"], "done", "{state}");
    assert_eq!(state["jobs"][0]["attempts"], 2, "{state}");
    assert_eq!(state["status"], "done", "{state}");
    let job = fx
        .items()
        .await
        .into_iter()
        .find(|i| i.get("jobId").is_some())
        .expect("the job's record");
    assert_eq!(
        job.get("attempts")
            .and_then(|a| a.as_n().ok())
            .map(String::as_str),
        Some("2")
    );
    let step = fx.reader_state.step_seconds as usize;
    assert_eq!(
        csv_rows(&download(&fx, &alice, &id).await).len(),
        1 + 600 / step,
        "a header and every point of the ten minutes"
    );
}

/// Claims the job of a one-time export for an attempt that started at `started` and holds it
/// until `lease_until`, as an attempt does before it reads anything.
async fn claimed(
    fx: &Fixture,
    alice: &[(String, String)],
    started: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> (String, DateTime<Utc>) {
    let body = one_time_csv(vec![item("urn:dev:a", READER_START, READER_START + 600)]);
    let (id, created_at) = created(fx, alice, &body).await;
    let job = event(&id, created_at).job();
    assert!(fx
        .store
        .open_job(&job, started, lease_until)
        .await
        .expect("claims"));
    fx.store.start_job(&job, started).await.expect("starts");
    (id, created_at)
}

#[tokio::test]
async fn a_crashed_attempt_is_taken_over_only_once_its_lease_has_passed() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let now = Utc::now();

    let (running, at) = claimed(
        &fx,
        &alice,
        now - TimeDelta::minutes(10),
        now + TimeDelta::minutes(5),
    )
    .await;
    assert_eq!(
        handle(fx.run_deps(), event(&running, at)).await.expect("runs"),
        Outcome::Duplicate,
        "an attempt within its lease keeps its job"
    );
    assert!(fx.objects().await.is_empty());

    let (crashed, at) = claimed(
        &fx,
        &alice,
        now - TimeDelta::minutes(17),
        now - TimeDelta::minutes(1),
    )
    .await;
    assert_eq!(
        handle(fx.run_deps(), event(&crashed, at)).await.expect("runs"),
        Outcome::Done,
        "a retry takes over a job whose lease has passed"
    );
    assert_eq!(fx.objects().await.len(), 1);
    let (_, state) = fx
        .call("GET", &format!("/exports/{crashed}/status"), None, &alice)
        .await;
    assert_eq!(state["jobs"][0]["attempts"], 2, "{state}");
    assert_eq!(
        handle(fx.run_deps(), event(&crashed, at)).await.expect("runs"),
        Outcome::Duplicate,
        "a finished job is never run again"
    );
    assert_eq!(fx.objects().await.len(), 1);
}
