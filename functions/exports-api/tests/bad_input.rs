//! Bad input never gets past validation: a table of bad bodies, each answered 4xx naming the
//! field, with nothing stored, scheduled or launched; and arbitrary JSON never causes a 5xx or
//! a panic. The ports are recording doubles: validation must not reach them.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use exporter_core::domain::job::{Job, JobEnd, JobKey};
use exporter_core::domain::{Export, ExportId, ExportStatus, RunEvent};
use exporter_core::ports::{
    AccessError, Caller, ChannelAccess, ChannelRead, Clock, ExportLifecycle, Exports, FileError, FileStore,
    JobEnds, JobHistory, LaunchError, ReadError, RunLauncher, RunSchedules, ScheduleError, SeriesQuery,
    SeriesReader, SliceSink, StoreError,
};
use exports_api::{handle, ApiConfig, Deps};

/// Ports that record every call and accept it.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<&'static str>>,
}

impl Recorder {
    fn note(&self, call: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Exports for Recorder {
    async fn get(&self, _: &ExportId) -> Result<Option<Export>, StoreError> {
        self.note("get");
        Ok(None)
    }
    async fn list_by_owner(&self, _: &str) -> Result<Vec<Export>, StoreError> {
        self.note("list");
        Ok(Vec::new())
    }
}

#[async_trait]
impl ExportLifecycle for Recorder {
    async fn insert(&self, _: &Export, _: u32) -> Result<(), StoreError> {
        self.note("insert");
        Ok(())
    }
    async fn activate(
        &self,
        _: &ExportId,
        _: ExportStatus,
        _: Option<DateTime<Utc>>,
        _: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.note("activate");
        Ok(())
    }
    async fn discard(&self, _: &Export, _: DateTime<Utc>) -> Result<(), StoreError> {
        self.note("discard");
        Ok(())
    }
    async fn soft_delete(
        &self,
        _: &ExportId,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Export, StoreError> {
        self.note("soft_delete");
        Err(StoreError::NotFound)
    }
    async fn revise(&self, _: &Export, _: bool) -> Result<bool, StoreError> {
        self.note("revise");
        Ok(true)
    }
}

#[async_trait]
impl SeriesReader for Recorder {
    async fn read(&self, _: &SeriesQuery, _: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        self.note("read");
        Ok(0)
    }
}

#[async_trait]
impl JobEnds for Recorder {
    async fn finish_job(&self, _: &JobKey, _: &JobEnd) -> Result<bool, StoreError> {
        self.note("finish_job");
        Ok(true)
    }
    async fn record_unrun(&self, _: &JobKey, _: &JobEnd) -> Result<(), StoreError> {
        self.note("record_unrun");
        Ok(())
    }
    async fn handed_off(&self, _: &JobKey) -> Result<(), StoreError> {
        self.note("handed_off");
        Ok(())
    }
    async fn stop_handing_off(&self, _: &JobKey) -> Result<(), StoreError> {
        self.note("stop_handing_off");
        Ok(())
    }
}

#[async_trait]
impl JobHistory for Recorder {
    async fn jobs(&self, _: &ExportId) -> Result<Vec<Job>, StoreError> {
        self.note("jobs");
        Ok(Vec::new())
    }
    async fn job(&self, _: &JobKey) -> Result<Option<Job>, StoreError> {
        self.note("job");
        Ok(None)
    }
    async fn recent_jobs(
        &self,
        _: &ExportId,
        _: Option<DateTime<Utc>>,
        _: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.note("recent_jobs");
        Ok(Vec::new())
    }
}

#[async_trait]
impl ChannelAccess for Recorder {
    async fn may_read(&self, _: &Caller<'_>, _: &ChannelRead<'_>) -> Result<bool, AccessError> {
        self.note("may_read");
        Ok(true)
    }
}

#[async_trait]
impl FileStore for Recorder {
    async fn put(&self, _: &str, _: &Path, _: &str) -> Result<u64, FileError> {
        self.note("put");
        Ok(0)
    }
    async fn remove(&self, _: &str) -> Result<(), FileError> {
        self.note("remove");
        Ok(())
    }
    async fn remove_all(&self, _: &str) -> Result<u64, FileError> {
        self.note("remove_all");
        Ok(0)
    }
    async fn presign(&self, _: &str, _: std::time::Duration) -> Result<String, FileError> {
        self.note("presign");
        Ok("https://example.com/file".into())
    }
    async fn read(&self, _: &str) -> Result<Vec<u8>, FileError> {
        self.note("read");
        Ok(Vec::new())
    }
    async fn put_bytes(&self, _: &str, _: Vec<u8>) -> Result<(), FileError> {
        self.note("put_bytes");
        Ok(())
    }
}

#[async_trait]
impl RunSchedules for Recorder {
    async fn arm(&self, _: &RunEvent) -> Result<(), ScheduleError> {
        self.note("arm");
        Ok(())
    }
    async fn disarm(&self, _: &ExportId) -> Result<(), ScheduleError> {
        self.note("disarm");
        Ok(())
    }
    async fn armed(&self) -> Result<Vec<ExportId>, ScheduleError> {
        self.note("armed");
        Ok(Vec::new())
    }
}

#[async_trait]
impl RunLauncher for Recorder {
    async fn launch(&self, _: &RunEvent) -> Result<(), LaunchError> {
        self.note("launch");
        Ok(())
    }
}

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
    }
}

/// A `POST /exports` event as API Gateway sends it; `base64` marks a body it had to encode.
fn event_with(body: Option<&str>, base64: bool) -> lambda_http::Request {
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/exports", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "POST", "path": "/exports", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"sub": "alice", "scope": "exporter:exports:create"}, "scopes": null}},
        },
        "body": body, "isBase64Encoded": base64,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_default()
}

fn event(body: Option<&str>) -> lambda_http::Request {
    event_with(body, false)
}

async fn send(ports: &Recorder, request: lambda_http::Request) -> (u16, Value) {
    let config = ApiConfig::default();
    let deps = Deps {
        exports: ports,
        lifecycle: ports,
        history: ports,
        ends: ports,
        reader: ports,
        access: ports,
        schedules: ports,
        launcher: ports,
        files: ports,
        clock: &FixedClock,
        config: &config,
    };
    let response = match handle(deps, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let body = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

async fn post(ports: &Recorder, body: Option<&str>) -> (u16, Value) {
    send(ports, event(body)).await
}

fn valid() -> Value {
    json!({
        "format": {"extension": "csv", "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"}], "timezone": {}},
        "type": "oneTime",
        "items": [{"params": {
            "target": {"value": "urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:onoff", "label": "onoff"},
            "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482", "subtopic": "events.data",
            "from": 1_767_225_600, "to": 1_767_312_000,
            "decimation": {"ds": "15m", "dsf": "avg"}
        }, "filename": "report"}],
        "notification": {"messages": [{"policy": "onSuccess", "medium": "email", "title": "t", "text": "x"}]}
    })
}

fn recurring() -> Value {
    let mut body = valid();
    body["type"] = json!("recurring");
    body["periodicity"] = json!("P1D");
    body["items"][0]["params"]["from"] = json!(0);
    body["items"][0]["params"]["to"] = json!(0);
    body
}

/// `base` with the value at `pointer` set (`Some`) or removed (`None`).
fn with(mut base: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(target) = base.pointer_mut(parent) {
        match (target, value) {
            (Value::Object(map), Some(v)) => {
                map.insert(key.to_owned(), v);
            }
            (Value::Object(map), None) => {
                map.remove(key);
            }
            (Value::Array(list), Some(v)) => {
                if let Some(slot) = key.parse::<usize>().ok().and_then(|i| list.get_mut(i)) {
                    *slot = v;
                }
            }
            _ => {}
        }
    }
    base
}

#[tokio::test]
async fn the_seed_example_and_the_valid_bodies_are_accepted() {
    let seed = include_str!("../../../tests/data/seed-body.json");
    for body in [seed.to_owned(), valid().to_string(), recurring().to_string()] {
        let ports = Recorder::default();
        let (status, answer) = post(&ports, Some(&body)).await;
        assert_eq!(status, 201, "{answer}");
    }
}

#[tokio::test]
async fn bad_bodies_are_refused_with_the_field_and_nothing_is_written() {
    let items = |n: usize| Value::Array(vec![json!({"params": {}}); n]);
    let slack = with(valid(), "/notification/messages/0/medium", Some(json!("slack")));
    let undecimated = with(valid(), "/items/0/params/decimation", None);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing format", with(valid(), "/format", None), 400, "/format"),
        ("missing type", with(valid(), "/type", None), 400, "/type"),
        ("missing items", with(valid(), "/items", None), 400, "/items"),
        (
            "missing notification",
            with(valid(), "/notification", None),
            400,
            "/notification",
        ),
        (
            "missing messages",
            with(valid(), "/notification/messages", None),
            400,
            "/notification/messages",
        ),
        (
            "missing target",
            with(valid(), "/items/0/params/target", None),
            400,
            "/items/0/params/target",
        ),
        (
            "missing channel",
            with(valid(), "/items/0/params/channelId", None),
            400,
            "/items/0/params/channelId",
        ),
        (
            "missing column label",
            with(valid(), "/format/columns/0/label", None),
            400,
            "/format/columns/0/label",
        ),
        (
            "format is a string",
            with(valid(), "/format", Some(json!("csv"))),
            400,
            "/format",
        ),
        (
            "type is a number",
            with(valid(), "/type", Some(json!(1))),
            400,
            "/type",
        ),
        (
            "items is an object",
            with(valid(), "/items", Some(json!({}))),
            400,
            "/items",
        ),
        (
            "from is a string",
            with(valid(), "/items/0/params/from", Some(json!("yesterday"))),
            400,
            "/items/0/params/from",
        ),
        (
            "title is a number",
            with(valid(), "/notification/messages/0/title", Some(json!(7))),
            400,
            "/notification/messages/0/title",
        ),
        (
            "periodStart is a string",
            with(recurring(), "/periodStart", Some(json!("now"))),
            400,
            "/periodStart",
        ),
        (
            // Its first run would fall after 9999: stored, it could not be read back.
            "first occurrence after the year 9999",
            with(recurring(), "/periodStart", Some(json!(253_402_300_799i64))),
            400,
            "/periodicity",
        ),
        (
            "typo perodicity",
            with(valid(), "/perodicity", Some(json!("P1D"))),
            400,
            "/perodicity",
        ),
        (
            "typo in format",
            with(valid(), "/format/extention", Some(json!("csv"))),
            400,
            "/format/extention",
        ),
        (
            "typo in params",
            with(valid(), "/items/0/params/chanelId", Some(json!("x"))),
            400,
            "/items/0/params/chanelId",
        ),
        (
            "bad type",
            with(valid(), "/type", Some(json!("weekly"))),
            400,
            "/type",
        ),
        (
            "bad extension",
            with(valid(), "/format/extension", Some(json!("docx"))),
            400,
            "/format/extension",
        ),
        (
            "bad dsf",
            with(valid(), "/items/0/params/decimation/dsf", Some(json!("median"))),
            400,
            "/items/0/params/decimation/dsf",
        ),
        (
            "bad policy",
            with(valid(), "/notification/messages/0/policy", Some(json!("always"))),
            400,
            "/notification/messages/0/policy",
        ),
        (
            "unknown medium",
            with(valid(), "/notification/messages/0/medium", Some(json!("pigeon"))),
            400,
            "/notification/messages/0/medium",
        ),
        (
            "periodicity P",
            with(recurring(), "/periodicity", Some(json!("P"))),
            400,
            "/periodicity",
        ),
        (
            "periodicity PT",
            with(recurring(), "/periodicity", Some(json!("PT"))),
            400,
            "/periodicity",
        ),
        (
            "periodicity 1D",
            with(recurring(), "/periodicity", Some(json!("1D"))),
            400,
            "/periodicity",
        ),
        (
            "periodicity P1.5Y",
            with(recurring(), "/periodicity", Some(json!("P1.5Y"))),
            400,
            "/periodicity",
        ),
        (
            "periodicity P0D",
            with(recurring(), "/periodicity", Some(json!("P0D"))),
            400,
            "/periodicity",
        ),
        (
            "periodicity under a minute",
            with(recurring(), "/periodicity", Some(json!("PT59S"))),
            400,
            "/periodicity",
        ),
        (
            "recurring without periodicity",
            with(recurring(), "/periodicity", None),
            400,
            "/periodicity",
        ),
        (
            "oneTime with periodicity",
            with(valid(), "/periodicity", Some(json!("P1D"))),
            400,
            "/periodicity",
        ),
        (
            "period P1.5D",
            with(valid(), "/items/0/params/period", Some(json!("P1.5D"))),
            400,
            "/items/0/params/period",
        ),
        (
            "from after to",
            with(valid(), "/items/0/params/from", Some(json!(1_767_400_000))),
            400,
            "/items/0/params/to",
        ),
        (
            "negative from",
            with(valid(), "/items/0/params/from", Some(json!(-5))),
            400,
            "/items/0/params/from",
        ),
        (
            "recurring with from",
            with(recurring(), "/items/0/params/from", Some(json!(1_767_225_600))),
            400,
            "/items/0/params/from",
        ),
        (
            "bad URN",
            with(valid(), "/items/0/params/target/value", Some(json!("urn:x"))),
            400,
            "/items/0/params/target/value",
        ),
        (
            "bad UUID",
            with(
                valid(),
                "/items/0/params/channelId",
                Some(json!("0115c85d-ef3e-4de9-9732")),
            ),
            400,
            "/items/0/params/channelId",
        ),
        (
            "wildcard subtopic",
            with(valid(), "/items/0/params/subtopic", Some(json!("events.*"))),
            400,
            "/items/0/params/subtopic",
        ),
        (
            "ds 0m",
            with(valid(), "/items/0/params/decimation/ds", Some(json!("0m"))),
            400,
            "/items/0/params/decimation/ds",
        ),
        (
            "ds 15",
            with(valid(), "/items/0/params/decimation/ds", Some(json!("15"))),
            400,
            "/items/0/params/decimation/ds",
        ),
        (
            "ds 15x",
            with(valid(), "/items/0/params/decimation/ds", Some(json!("15x"))),
            400,
            "/items/0/params/decimation/ds",
        ),
        (
            "ds m",
            with(valid(), "/items/0/params/decimation/ds", Some(json!("m"))),
            400,
            "/items/0/params/decimation/ds",
        ),
        (
            "ds 25h",
            with(valid(), "/items/0/params/decimation/ds", Some(json!("25h"))),
            400,
            "/items/0/params/decimation/ds",
        ),
        (
            "decimation without dsf",
            with(valid(), "/items/0/params/decimation/dsf", None),
            400,
            "/items/0/params/decimation/dsf",
        ),
        (
            "unknown timezone",
            with(valid(), "/format/timezone", Some(json!("Mars/Olympus_Mons"))),
            400,
            "/format/timezone",
        ),
        (
            "unknown timezone name",
            with(
                valid(),
                "/format/timezone",
                Some(json!({"name": "Europe/Atlantis"})),
            ),
            400,
            "/format/timezone/name",
        ),
        (
            "empty columns",
            with(valid(), "/format/columns", Some(json!([]))),
            400,
            "/format/columns",
        ),
        (
            "unknown column",
            with(valid(), "/format/columns/0/id", Some(json!("colour"))),
            400,
            "/format/columns/0/id",
        ),
        (
            "count without decimation",
            with(undecimated, "/format/columns/1/id", Some(json!("count"))),
            400,
            "/format/columns/1/id",
        ),
        (
            "two-character delimiter",
            with(valid(), "/format/csvDelimiter", Some(json!(";;"))),
            400,
            "/format/csvDelimiter",
        ),
        (
            "more labels than targets",
            with(
                valid(),
                "/items/0/params/target",
                Some(json!({"value": "urn:dev:a,urn:dev:b", "label": "a,b,c"})),
            ),
            400,
            "/items/0/params/target/label",
        ),
        (
            "a target named twice",
            with(
                valid(),
                "/items/0/params/target",
                Some(json!({"value": "urn:dev:a,urn:dev:a"})),
            ),
            400,
            "/items/0/params/target/value",
        ),
        (
            "an empty target among several",
            with(
                valid(),
                "/items/0/params/target",
                Some(json!({"value": "urn:dev:a,"})),
            ),
            400,
            "/items/0/params/target/value",
        ),
        (
            "a name column in a wide file",
            with(
                with(
                    valid(),
                    "/items/0/params/target",
                    Some(json!({"value": "urn:dev:a,urn:dev:b"})),
                ),
                "/format/columns/1/id",
                Some(json!("name")),
            ),
            400,
            "/format/columns/1/id",
        ),
        (
            "unknown fill",
            with(valid(), "/items/0/params/decimation/fill", Some(json!("linear"))),
            400,
            "/items/0/params/decimation/fill",
        ),
        (
            "unknown transform",
            with(valid(), "/items/0/params/transform", Some(json!("rate"))),
            400,
            "/items/0/params/transform",
        ),
        (
            "decimal comma with a comma delimiter",
            with(valid(), "/format/csvDecimalSeparator", Some(json!(","))),
            400,
            "/format/csvDecimalSeparator",
        ),
        (
            "decimal separator not a point or a comma",
            with(valid(), "/format/csvDecimalSeparator", Some(json!("·"))),
            400,
            "/format/csvDecimalSeparator",
        ),
        (
            "byte-order mark not a boolean",
            with(valid(), "/format/csvBom", Some(json!("yes"))),
            400,
            "/format/csvBom",
        ),
        (
            "filename with a path",
            with(valid(), "/items/0/filename", Some(json!("../etc/passwd"))),
            400,
            "/items/0/filename",
        ),
        (
            "filename with a folder",
            with(valid(), "/items/0/filename", Some(json!("reports/a.csv"))),
            400,
            "/items/0/filename",
        ),
        (
            "email target not an email",
            with(
                valid(),
                "/notification/messages/0/target",
                Some(json!("not-an-email")),
            ),
            400,
            "/notification/messages/0/target",
        ),
        (
            "slack target off the allow-list",
            with(
                slack,
                "/notification/messages/0/target",
                Some(json!("https://evil.example/hook")),
            ),
            400,
            "/notification/messages/0/target",
        ),
        (
            "no items",
            with(valid(), "/items", Some(json!([]))),
            400,
            "/items",
        ),
        (
            "thousands of items",
            with(valid(), "/items", Some(items(3000))),
            400,
            "/items",
        ),
        ("a JSON array", json!([1, 2]), 400, ""),
        ("JSON null", Value::Null, 400, ""),
    ];
    assert!(cases.len() >= 40);
    for (name, body, status, path) in cases {
        let ports = Recorder::default();
        let (got, answer) = post(&ports, Some(&body.to_string())).await;
        assert_eq!(got, status, "{name}: {answer}");
        let details = answer["details"].as_array().cloned().unwrap_or_default();
        let paths: Vec<&str> = details.iter().filter_map(|p| p["path"].as_str()).collect();
        assert!(paths.contains(&path), "{name}: expected {path} in {paths:?}");
        let messages_named = details
            .iter()
            .all(|p| p["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(messages_named, "{name}: {answer}");
        assert!(
            ports.calls().is_empty(),
            "{name}: nothing may be written, saw {:?}",
            ports.calls()
        );
    }
}

#[tokio::test]
async fn raw_bodies_that_are_not_requests_are_refused() {
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    for (name, body, status) in [
        ("not JSON", Some("format=csv"), 400),
        ("truncated JSON", Some("{\"format\": "), 400),
        ("empty body", Some(""), 400),
        ("no body", None, 400),
        ("over the size limit", Some(big.as_str()), 413),
    ] {
        let ports = Recorder::default();
        let (got, answer) = post(&ports, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert!(answer["error"].is_string(), "{name}");
        assert!(ports.calls().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_400() {
    // API Gateway base64-encodes a body that is not text; lambda_http decodes it to bytes.
    let ports = Recorder::default();
    let (status, answer) = send(&ports, event_with(Some("//4q3L4+CA=="), true)).await; // ff fe 2a dc be 3e 08
    assert_eq!(status, 400, "{answer}");
    assert!(ports.calls().is_empty());
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let mut body = with(valid(), "/type", Some(json!("weekly")));
    body = with(body, "/format/extension", Some(json!("docx")));
    body = with(body, "/items/0/params/decimation/ds", Some(json!("0m")));
    let (status, answer) = post(&Recorder::default(), Some(&body.to_string())).await;
    assert_eq!(status, 400);
    assert_eq!(answer["details"].as_array().map(Vec::len), Some(3), "{answer}");
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("format"),
        Just("type"),
        Just("items"),
        Just("params"),
        Just("target"),
        Just("value"),
        Just("channelId"),
        Just("from"),
        Just("to"),
        Just("period"),
        Just("periodicity"),
        Just("decimation"),
        Just("ds"),
        Just("dsf"),
        Just("columns"),
        Just("id"),
        Just("label"),
        Just("timezone"),
        Just("name"),
        Just("notification"),
        Just("messages"),
        Just("medium"),
        Just("filename"),
        Just("x"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("P1D"),
            Just("15m"),
            Just("oneTime"),
            Just("recurring"),
            Just("csv"),
            Just("urn:a:b"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(names.clone().prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body with one place replaced by arbitrary JSON.
fn mutated_valid() -> impl Strategy<Value = Value> {
    let pointers = prop_oneof![
        Just("/format"),
        Just("/format/timezone"),
        Just("/format/columns/0"),
        Just("/items/0/params"),
        Just("/items/0/params/from"),
        Just("/items/0/params/decimation"),
        Just("/notification/messages/0"),
        Just("/type"),
        Just("/periodicity"),
        Just("/items/0/filename"),
    ];
    (pointers, arbitrary_json()).prop_map(|(pointer, v)| with(valid(), pointer, Some(v)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_json_never_gives_a_5xx(body in prop_oneof![arbitrary_json(), mutated_valid()]) {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        prop_assert!(runtime.is_ok());
        if let Ok(runtime) = runtime {
            let (status, answer) = runtime.block_on(post(&Recorder::default(), Some(&body.to_string())));
            prop_assert!(status == 201 || (400..500).contains(&status), "{}: {} for {}", status, answer, body);
        }
    }
}

#[tokio::test]
async fn a_body_of_thousands_of_unknown_keys_gets_a_bounded_answer() {
    let ports = Recorder::default();
    let keys: Vec<String> = (0..14_000).map(|i| format!("\"unknown{i:05}\":0")).collect();
    let body = format!("{{{}}}", keys.join(","));
    assert!(body.len() < 256 * 1024 && body.len() > 200 * 1024);
    let (status, answer) = post(&ports, Some(&body)).await;
    assert_eq!(status, 400);
    let details = answer["details"].as_array().expect("details");
    assert_eq!(details.len(), 101, "a hundred problems and a count of the rest");
    assert!(answer.to_string().len() < 32 * 1024, "the answer stays small");
    assert!(ports.calls().is_empty());
}
