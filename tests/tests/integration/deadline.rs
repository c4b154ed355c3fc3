//! A run that reaches its invocation's deadline and may not continue stops cleanly, on moto with a slow local reader:
//! the job is recorded failed saying how far it got, no file is left, and a one-time export
//! gives its quota back; nothing is left `inProgress`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use exporter_adapters::reader::HttpReader;
use exporter_adapters::support::{Retry, Secret};
use exporter_core::domain::RunEvent;
use integration_tests::{one_time_body, reader_server, someone, Fixture, READER_START, READER_TOKEN};
use run_export::{handle, Outcome};

#[tokio::test]
async fn a_run_that_reaches_its_deadline_stops_cleanly_and_says_how_far_it_got() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let mut slow = reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60);
    slow.latency = Duration::from_millis(40);
    let (url, _) = reader_server::start(slow).await;
    fx.reader = HttpReader::new(url, Secret::new(READER_TOKEN))
        .expect("a reader client")
        .with_page_limit(100)
        .with_retry(Retry::default());
    let alice = someone();
    let mut body = one_time_body();
    body["items"][0]["params"]["from"] = json!(READER_START);
    // 14,400 points, 144 pages: longer to read than the deadline leaves even at the most pages in
    // flight, and the deadline long enough to get somewhere on a loaded machine.
    body["items"][0]["params"]["to"] = json!(READER_START + 10 * 86_400);
    let (status, export) = fx.call("POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{export}");
    let event = RunEvent {
        export_id: export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id"),
        scheduled_at: export["createdAt"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .expect("createdAt"),
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    };
    // A job that may not continue (RUN_MAX_CONTINUATIONS=0) ends when its time is up.
    fx.run_config.max_legs = 0;
    let deps = run_export::Deps {
        stop_at: Some(Utc::now() + TimeDelta::milliseconds(700)),
        ..fx.run_deps()
    };
    assert_eq!(handle(deps, event.clone()).await.expect("runs"), Outcome::Failed);

    let (_, state) = fx
        .call(
            "GET",
            &format!("/exports/{}/status", event.export_id),
            None,
            &alice,
        )
        .await;
    let job = &state["jobs"][0];
    assert_eq!(job["status"], "failed", "{state}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("ran out of time after ") && error.contains(" rows of item 0"),
        "{error}"
    );
    let rows: u64 = error["ran out of time after ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a row count");
    assert!(
        rows > 0 && rows < 14_400,
        "it got somewhere, not everywhere: {rows}"
    );
    assert!(fx.objects().await.is_empty(), "no file is left");
    assert_eq!(state["status"], "failed", "the one-time export is settled");
    let quota = fx
        .items()
        .await
        .into_iter()
        .find(|i| i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("QUOTA"))
        .and_then(|i| i.get("queued").and_then(|v| v.as_n().ok()).cloned());
    assert_eq!(quota.as_deref(), Some("0"), "its quota slot is back");
}
