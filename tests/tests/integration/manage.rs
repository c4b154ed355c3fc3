//! An export changed once it exists, on moto: an edit guarded by its `ETag` (a stale one is
//! `412`), an edit of the periodicity that moves the chain and the armed schedule (a trigger of
//! the old schedule runs nothing), a pause that stops everything (no schedule, a trigger runs
//! nothing, a sweep leaves it paused) and a resume that arms the next occurrence after now and
//! records what passed as skipped; a job whose export is edited between its legs fails naming it.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use exporter_core::domain::{ExportId, RunEvent};
use integration_tests::doubles::{At, HandOffs, Launches};
use integration_tests::{
    http_event, one_time_body, recurring_body, request, someone, status_and_json, Fixture,
};
use reconcile::ReconcileConfig;

/// One request through the API with `clock`, and `If-Match` when given: its status, `ETag` and
/// body.
async fn send(
    fx: &Fixture,
    clock: &At,
    (method, path): (&str, &str),
    body: Option<&Value>,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let text = body.map(Value::to_string);
    let mut event = http_event(method, path, text.as_deref(), &someone_fixed());
    if let Some(tag) = if_match {
        event["headers"]["if-match"] = json!(tag);
    }
    let deps = exports_api::Deps { clock, ..fx.deps() };
    let response = match exports_api::handle(deps, request(&event)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, json) = status_and_json(response);
    (status, etag, json)
}

/// One caller for a whole test (its exports are its own).
fn someone_fixed() -> Vec<(String, String)> {
    thread_local! {
        static WHO: Vec<(String, String)> = someone();
    }
    WHO.with(Clone::clone)
}

fn hours(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp() / 3600 * 3600, 0).expect("in range")
}

async fn create_hourly(fx: &Fixture, clock: &At) -> (ExportId, Value) {
    let mut body = recurring_body("PT1H");
    body["periodStart"] = json!(hours(clock.0).timestamp());
    let (status, _, export) = send(fx, clock, ("POST", "/exports"), Some(&body), None).await;
    assert_eq!(status, 201, "{export}");
    let id = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    (id, export)
}

#[tokio::test]
async fn an_edit_with_a_stale_etag_is_refused_and_a_fresh_one_applies() {
    let Some(fx) = Fixture::new().await else { return };
    let now = At(Utc::now());
    let (id, _) = create_hourly(&fx, &now).await;
    let path = format!("/exports/{id}");
    let (status, etag, export) = send(&fx, &now, ("GET", &path), None, None).await;
    assert_eq!((status, etag.as_deref()), (200, Some("\"1\"")), "{export}");

    // Two people read version 1; the first edit applies, the second is stale.
    let first = json!({"notification": {"messages": [{"policy": "onSuccess", "medium": "email",
        "title": "Hourly", "text": "{{downloadUrl}}"}]}, "tags": [{"label": "site", "value": "Rome"}]});
    let (status, etag, edited) = send(&fx, &now, ("PATCH", &path), Some(&first), Some("\"1\"")).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(edited["version"], 2);
    assert_eq!(edited["notification"]["messages"][0]["title"], "Hourly");
    assert_eq!(edited["tags"][0]["value"], "Rome");
    let second = json!({"tags": [{"label": "site", "value": "Milan"}]});
    let (status, etag, refused) = send(&fx, &now, ("PATCH", &path), Some(&second), Some("\"1\"")).await;
    assert_eq!(status, 412, "{refused}");
    assert_eq!(etag.as_deref(), Some("\"2\""), "the stored version is named");
    let (_, _, stored) = send(&fx, &now, ("GET", &path), None, None).await;
    assert_eq!(
        stored["tags"][0]["value"], "Rome",
        "the stale edit changed nothing"
    );

    // Checked like a create, every problem at its pointer; what an edit cannot change, named.
    let bad = json!({"type": "oneTime", "items": [{"params": {"target": {"value": "x"}}}],
        "format": {"extension": "pdff"}});
    let (status, _, problems) = send(&fx, &now, ("PATCH", &path), Some(&bad), None).await;
    assert_eq!(status, 400, "{problems}");
    assert!(problems.to_string().contains("\"/type\""), "{problems}");
    let bad = json!({"items": [{"params": {"target": {"value": "x"}}}], "format": {"extension": "pdff"}});
    let (status, _, problems) = send(&fx, &now, ("PATCH", &path), Some(&bad), None).await;
    assert_eq!(status, 400, "{problems}");
    let text = problems.to_string();
    assert!(
        text.contains("/items/0/params/channelId") && text.contains("/format/extension"),
        "{text}"
    );

    // A one-time export runs once: it is not edited.
    let (status, _, one) = send(&fx, &now, ("POST", "/exports"), Some(&one_time_body()), None).await;
    assert_eq!(status, 201, "{one}");
    let one_path = format!("/exports/{}", one["id"].as_str().expect("an id"));
    let (status, _, conflict) = send(&fx, &now, ("PATCH", &one_path), Some(&second), None).await;
    assert_eq!(status, 409, "{conflict}");
}

#[tokio::test]
async fn an_edit_of_the_periodicity_moves_the_chain_and_the_armed_schedule() {
    let Some(fx) = Fixture::new().await else { return };
    let now = At(Utc::now());
    let (id, created) = create_hourly(&fx, &now).await;
    let old = fx.armed_event(&id).await.expect("armed");
    assert_eq!(
        Some(old.scheduled_at),
        created["nextRunAt"].as_str().and_then(|t| t.parse().ok())
    );

    let patch = json!({"periodicity": "P1D"});
    let (status, _, edited) = send(
        &fx,
        &now,
        ("PATCH", &format!("/exports/{id}")),
        Some(&patch),
        None,
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let anchor = hours(now.0);
    let next_day = anchor + TimeDelta::days(1);
    assert_eq!(edited["periodicity"], "P1D");
    assert_eq!(
        edited["nextRunAt"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok()),
        Some(next_day)
    );
    let armed = fx.armed_event(&id).await.expect("armed");
    assert_eq!((armed.scheduled_at, armed.occurrence), (next_day, Some(1)));

    // The old schedule's trigger (already on its way) runs nothing and leaves the new chain.
    let outcome = run_export::handle(fx.run_deps(), old).await.expect("runs");
    assert_eq!(outcome, run_export::Outcome::Skipped);
    let armed = fx.armed_event(&id).await.expect("armed");
    assert_eq!(armed.scheduled_at, next_day);
    let (_, _, status) = send(&fx, &now, ("GET", &format!("/exports/{id}/status")), None, None).await;
    let jobs = status["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{status}");
    assert_eq!(jobs[0]["status"], "failed", "on record as not run: {status}");
    assert!(
        jobs[0]["error"].as_str().is_some_and(|e| e.contains("edited")),
        "{status}"
    );
    assert_eq!(jobs[0]["attempts"], 0, "never run");
}

#[tokio::test]
async fn a_paused_export_never_runs_and_resumes_at_the_next_occurrence_recording_what_it_skipped() {
    let Some(fx) = Fixture::new().await else { return };
    let start = At(Utc::now());
    let (id, _) = create_hourly(&fx, &start).await;
    let trigger = fx.armed_event(&id).await.expect("armed");
    let (status, _, paused) = send(&fx, &start, ("POST", &format!("/exports/{id}/pause")), None, None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["nextRunAt"], Value::Null);
    assert!(fx.armed_event(&id).await.is_none(), "nothing armed");

    // A trigger on its way runs nothing; a sweep leaves the export paused and unarmed.
    let outcome = run_export::handle(fx.run_deps(), trigger).await.expect("runs");
    assert_eq!(outcome, run_export::Outcome::Skipped);
    let launched = Launches::default();
    let hand_offs = HandOffs::default();
    let config = ReconcileConfig {
        grace: TimeDelta::minutes(1),
        ..ReconcileConfig::default()
    };
    reconcile::handle(fx.reconcile_deps(&launched, &hand_offs, &config))
        .await
        .expect("sweeps");
    assert!(fx.armed_event(&id).await.is_none(), "the sweep armed nothing");
    assert!(launched.take().is_empty(), "the sweep launched nothing");
    let (status, _, again) = send(&fx, &start, ("POST", &format!("/exports/{id}/pause")), None, None).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("paused")),
        "pausing twice is one pause"
    );
    // A run now while paused is the owner's: it runs.
    let queue = Launches::default();
    let api = exports_api::Deps {
        clock: &start,
        launcher: &queue,
        ..fx.deps()
    };
    let window = json!({"from": 1_767_225_600, "to": 1_767_229_200});
    let runs = format!("/exports/{id}/runs");
    let (status, accepted) = Fixture::call_with(api, "POST", &runs, Some(&window), &someone_fixed()).await;
    assert_eq!(status, 202, "{accepted}");
    let extra = queue.take().pop().expect("launched");
    let outcome = run_export::handle(fx.run_deps(), extra).await.expect("runs");
    assert_eq!(
        outcome,
        run_export::Outcome::Done,
        "an extra job of a paused export runs"
    );

    // Five hours and a half later it resumes: armed at the next hour after then; the five hours
    // that passed are on record as skipped.
    let later = At(start.0 + TimeDelta::minutes(330));
    let (status, _, resumed) = send(
        &fx,
        &later,
        ("POST", &format!("/exports/{id}/resume")),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "scheduled");
    let next = hours(later.0) + TimeDelta::hours(1);
    let armed: RunEvent = fx.armed_event(&id).await.expect("armed");
    assert_eq!(armed.scheduled_at, next);
    let (_, _, status) = send(&fx, &later, ("GET", &format!("/exports/{id}/status")), None, None).await;
    let jobs: Vec<&Value> = status["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["status"] != "done")
        .collect();
    assert!(
        (5..=6).contains(&jobs.len()) && jobs.iter().all(|j| j["status"] == "skipped"),
        "{status}"
    );
    let newest: DateTime<Utc> = jobs[0]["scheduledAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a time");
    assert_eq!(
        newest,
        next - TimeDelta::hours(1),
        "up to the last occurrence before the resume"
    );
}

#[tokio::test]
async fn a_job_whose_export_is_edited_between_its_legs_fails_naming_the_edit() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // Pages of ten points a minute apart, each answer 5 ms: an hour's job has six boundaries.
    fx.slow_reader(std::time::Duration::from_millis(5), 60, 10).await;
    let now = At(Utc::now());
    let (status, _, export) = send(
        &fx,
        &now,
        ("POST", "/exports"),
        Some(&recurring_body("PT1H")),
        None,
    )
    .await;
    assert_eq!(status, 201, "{export}");
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let event = fx.armed_event(&id).await.expect("armed");
    // A leg's budget of nothing: the job pauses after its first boundary.
    let queue = Launches::default();
    let config = run_export::RunConfig {
        budget: Some(TimeDelta::milliseconds(1)),
        max_legs: 1000,
        ..fx.run_config.clone()
    };
    let deps = run_export::Deps {
        launcher: &queue,
        config: &config,
        ..fx.run_deps()
    };
    // Until a leg of the job has run and paused (an invocation out of budget before it starts
    // hands its trigger on as it is).
    let mut next = event;
    let continuation = loop {
        let outcome = run_export::handle(deps, next).await.expect("runs");
        assert_eq!(outcome, run_export::Outcome::Continued, "the job pauses");
        next = queue.take().pop().expect("a continuation");
        if next.leg.is_some() {
            break next;
        }
    };
    let patch = json!({"format": {"columns": [{"id": "time", "label": "When"}, {"id": "value", "label": "Reading"}]}});
    let (status, _, edited) = send(
        &fx,
        &now,
        ("PATCH", &format!("/exports/{id}")),
        Some(&patch),
        None,
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let (_, _, stored) = send(&fx, &now, ("GET", &format!("/exports/{id}")), None, None).await;
    assert_eq!(stored["format"]["columns"][0]["label"], "When", "{stored}");
    // The next leg, with time to run.
    let unhurried = run_export::Deps {
        launcher: &queue,
        ..fx.run_deps()
    };
    let outcome = run_export::handle(unhurried, continuation).await.expect("runs");
    assert_eq!(outcome, run_export::Outcome::Failed);
    let (_, _, status) = send(&fx, &now, ("GET", &format!("/exports/{id}/status")), None, None).await;
    let job = &status["jobs"][0];
    assert_eq!(job["status"], "failed", "{status}");
    assert!(
        job["error"].as_str().is_some_and(|e| e.contains("edited")),
        "{job}"
    );
    assert_eq!(job["version"], 1, "the version it ran with");
}

#[tokio::test]
async fn a_run_now_over_a_past_window_gives_the_file_of_a_one_time_export_of_that_window() {
    let Some(fx) = Fixture::new().await else { return };
    let now = At(Utc::now());
    let who = someone_fixed();
    // The one-time export of a day (the fixture's reader serves a point a minute).
    let reference = fx.exported_text(&who, &one_time_body()).await;
    assert!(reference.lines().count() > 1000, "a day of points");

    let (id, _) = create_hourly(&fx, &now).await;
    let armed = fx.armed_event(&id).await.expect("armed");
    let queue = Launches::default();
    let api = exports_api::Deps {
        clock: &now,
        launcher: &queue,
        ..fx.deps()
    };
    let runs = format!("/exports/{id}/runs");
    let window = json!({"from": 1_767_225_600, "to": 1_767_312_000});
    let (status, accepted) = Fixture::call_with(api, "POST", &runs, Some(&window), &who).await;
    assert_eq!(status, 202, "{accepted}");
    let event = queue.take().pop().expect("launched");
    assert_eq!(accepted["jobId"], event.job_id());
    let outcome = run_export::handle(fx.run_deps(), event).await.expect("runs");
    assert_eq!(outcome, run_export::Outcome::Done);
    let file = String::from_utf8(fx.download(&who, &id.to_string()).await).expect("UTF-8");
    assert_eq!(file, reference, "byte for byte the one-time export's file");
    // Outside the chain: the armed occurrence is the same, the job on record is the extra one.
    assert_eq!(fx.armed_event(&id).await, Some(armed));
    let (_, _, status) = send(&fx, &now, ("GET", &format!("/exports/{id}/status")), None, None).await;
    let jobs = status["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{status}");
    assert_eq!(
        (jobs[0]["status"].as_str(), jobs[0]["version"].as_u64()),
        (Some("done"), Some(1))
    );

    // Windows that cannot run: half a window, a future end, and no window before any
    // occurrence has passed.
    for (body, pointer) in [
        (json!({"from": 1_767_225_600}), "/to"),
        (
            json!({"from": 1_767_225_600, "to": now.0.timestamp() + 3600}),
            "/to",
        ),
        (json!({"from": 5, "to": 4}), "/to"),
        (json!({"form": 5}), "/form"),
    ] {
        let (status, problems) = Fixture::call_with(api, "POST", &runs, Some(&body), &who).await;
        assert_eq!(status, 400, "{body}: {problems}");
        assert!(
            problems.to_string().contains(&format!("\"{pointer}\"")),
            "{body}: {problems}"
        );
    }
    let (status, conflict) = Fixture::call_with(api, "POST", &runs, None, &who).await;
    assert_eq!(status, 409, "{conflict}");
    assert!(queue.take().is_empty(), "nothing launched for a refused run");
}

#[tokio::test]
async fn a_preview_shows_the_first_rows_of_the_real_files_and_stores_nothing() {
    let Some(fx) = Fixture::new().await else { return };
    let who = someone_fixed();
    // Three days a minute apart (more than a page of the reader's), raw and in quarter hours.
    let mut body = one_time_body();
    body["items"][0]["params"]["to"] = json!(1_767_225_600 + 3 * 86_400);
    let mut decimated = body["items"][0].clone();
    decimated["params"]["decimation"] = json!({"ds": "15m", "dsf": "avg"});
    body["items"].as_array_mut().expect("items").push(decimated);
    body["format"]["columns"] = json!([{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"},
        {"id": "count", "label": "Points"}]);
    let (status, preview) =
        Fixture::call_with(fx.deps(), "POST", "/exports/preview", Some(&body), &who).await;
    assert_eq!(status, 200, "{preview}");
    assert!(fx.objects().await.is_empty(), "nothing stored");
    let (_, listed) = fx.call("GET", "/exports", None, &who).await;
    assert_eq!(listed["total"], 0, "no export created");

    // The real job's files, item by item.
    let event = fx.create_run(&who, &body).await;
    let outcome = run_export::handle(fx.run_deps(), event.clone())
        .await
        .expect("runs");
    assert_eq!(outcome, run_export::Outcome::Done);
    let bytes = fx.download(&who, &event.export_id.to_string()).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    for index in 0..2 {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_index(index).expect("an entry"), &mut text)
            .expect("text");
        let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.expect("a record").iter().map(str::to_owned).collect())
            .collect();
        let item = &preview["items"][index];
        let shown: Vec<Vec<String>> = serde_json::from_value(item["rows"].clone()).expect("rows");
        assert_eq!(item["columns"], json!(rows[0]), "item {index}: the header");
        assert_eq!(shown.len(), 20, "item {index}: the documented maximum");
        assert_eq!(shown[..], rows[1..21], "item {index}: the file's first rows");
        let count = item["rowCount"].as_u64().expect("a count");
        let real = (rows.len() - 1) as u64;
        assert!(
            count.abs_diff(real) <= real / 50,
            "item {index}: {count} suggested, {real} written"
        );
        assert_eq!(
            item["exact"], false,
            "item {index}: the window holds more than a page"
        );
    }
}

#[tokio::test]
async fn a_preview_of_a_recurring_export_not_begun_reads_nothing_and_shows_no_rows() {
    let Some(fx) = Fixture::new().await else { return };
    let who = someone_fixed();
    // Its first occurrence in the year 3000: past what a reader reads (nanoseconds end in 2262).
    let mut body = integration_tests::recurring_body("P1D");
    body["periodStart"] = json!(32_503_680_000_i64);
    let (status, preview) =
        Fixture::call_with(fx.deps(), "POST", "/exports/preview", Some(&body), &who).await;
    assert_eq!(status, 200, "{preview}");
    let item = &preview["items"][0];
    assert_eq!(item["messages"], 0);
    assert_eq!(item["rows"], json!([]));
    assert!(
        item["window"]["to"]
            .as_str()
            .is_some_and(|t| t.starts_with("3000-")),
        "{item}"
    );
}
