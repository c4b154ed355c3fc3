//! The smaller losses, on moto: a retry that finds its job finished hands off to notify; a
//! one-time export deleted while it runs gives its quota back once, and the counter never
//! blocks a delete; an export left `creating` never runs; deleted exports and failed jobs
//! expire; the status route pages jobs newest first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use exporter_core::domain::{ExportId, ExportStatus, NotifyEvent, RunEvent};
use exporter_core::ports::{ExportRuns, Exports, JobNotifier, LaunchError};
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use run_export::{handle, Failure, Outcome};

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

async fn item(fx: &Fixture, pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    fx.dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .expect("moto reads")
        .item()
        .cloned()
        .unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

async fn created(fx: &Fixture, who: &[(String, String)], body: &Value) -> (ExportId, RunEvent) {
    let (status, export) = fx.call("POST", "/exports", Some(body), who).await;
    assert_eq!(status, 201, "{export}");
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let at: DateTime<Utc> = export["createdAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("createdAt");
    (
        id,
        RunEvent {
            export_id: id,
            scheduled_at: at,
            occurrence: None,
            leg: None,
            item: None,
            extra: None,
        },
    )
}

/// A notifier whose first hand-off fails.
#[derive(Default)]
struct FirstHandOffFails(AtomicU32);

#[async_trait]
impl JobNotifier for FirstHandOffFails {
    async fn job_ended(&self, _: &NotifyEvent) -> Result<(), LaunchError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(LaunchError::Unavailable("throttled".into()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_retry_that_finds_its_job_finished_hands_off_to_notify() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, event) = created(&fx, &alice, &one_time_body()).await;
    let notifier = FirstHandOffFails::default();
    let deps = run_export::Deps {
        notifier: &notifier,
        ..fx.run_deps()
    };
    assert!(
        matches!(handle(deps, event.clone()).await, Err(Failure::Retryable(_))),
        "a lost hand-off is retried"
    );
    assert_eq!(handle(deps, event).await.expect("runs"), Outcome::Duplicate);
    assert_eq!(notifier.0.load(Ordering::SeqCst), 2, "the retry handed off again");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(
        (state["status"].as_str(), state["jobs"][0]["status"].as_str()),
        (Some("done"), Some("done"))
    );
}

#[tokio::test]
async fn a_one_time_export_deleted_while_it_runs_gives_its_quota_back_once() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let quota = || item(&fx, format!("OWNER#{}", alice[0].1), "QUOTA");
    let (id, _) = created(&fx, &alice, &one_time_body()).await;
    assert_eq!(number(&quota().await, "queued"), Some(1));
    // The run read the export before its owner deleted it, and settles it after.
    let running = fx.store.get(&id).await.expect("reads").expect("the export");
    let (status, _) = fx.call("DELETE", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!(status, 204);
    assert_eq!(number(&quota().await, "queued"), Some(0));
    fx.store
        .settle_one_time(&running, ExportStatus::Done, Utc::now())
        .await
        .expect("settles");
    assert_eq!(number(&quota().await, "queued"), Some(0), "given back once");
    let settled = item(&fx, format!("EXPORT#{id}"), "EXPORT").await;
    assert_eq!(
        settled
            .get("status")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("done")
    );

    // A counter at zero (a record lost, say) never blocks a delete.
    let (other, _) = created(&fx, &alice, &one_time_body()).await;
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .set_key(Some(key(format!("OWNER#{}", alice[0].1), "QUOTA")))
        .update_expression("SET queued = :zero")
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .send()
        .await
        .expect("moto updates");
    let (status, body) = fx
        .call("DELETE", &format!("/exports/{other}"), None, &alice)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(number(&quota().await, "queued"), Some(0));
}

#[tokio::test]
async fn an_export_left_creating_never_runs() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (status, export) = fx
        .call("POST", "/exports", Some(&recurring_body("PT1H")), &alice)
        .await;
    assert_eq!(status, 201);
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    // As a crash between arming and marking it scheduled leaves it.
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .set_key(Some(key(format!("EXPORT#{id}"), "EXPORT")))
        .update_expression("SET #s = :creating")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":creating", AttributeValue::S("creating".into()))
        .send()
        .await
        .expect("moto updates");
    let event = fx.armed_event(&id).await.expect("armed");
    assert_eq!(
        handle(fx.run_deps(), event).await.expect("runs"),
        Outcome::Skipped
    );
    assert!(
        fx.items().await.iter().all(|i| !i.contains_key("jobId")),
        "no job for an invisible export"
    );
}

#[tokio::test]
async fn deleted_exports_and_failed_jobs_expire() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let alice = someone();
    fx.break_reader(400, 1).await;
    let (id, event) = created(&fx, &alice, &one_time_body()).await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Failed
    );
    let job = item(
        &fx,
        format!("EXPORT#{id}"),
        &format!("JOB#{}", event.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
    )
    .await;
    let week = (Utc::now() + TimeDelta::days(7)).timestamp();
    assert!(
        number(&job, "expiresAt").is_some_and(|t| (t - week).abs() < 120),
        "{job:?}"
    );

    let (status, _) = fx.call("DELETE", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!(status, 204);
    let deleted = item(&fx, format!("EXPORT#{id}"), "EXPORT").await;
    assert!(
        number(&deleted, "expiresAt").is_some_and(|t| (t - week).abs() < 120),
        "{deleted:?}"
    );
}

#[tokio::test]
async fn the_status_route_pages_jobs_newest_first() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (status, export) = fx
        .call("POST", "/exports", Some(&recurring_body("PT1H")), &alice)
        .await;
    assert_eq!(status, 201);
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let mut fired = Vec::new();
    for _ in 0..3 {
        let event = fx.armed_event(&id).await.expect("armed");
        assert_eq!(
            handle(fx.run_deps(), event.clone()).await.expect("runs"),
            Outcome::Done
        );
        fired.push(event.job_id());
    }
    let (status, page) = fx
        .call("GET", &format!("/exports/{id}/status?pageSize=2"), None, &alice)
        .await;
    assert_eq!(status, 200, "{page}");
    let ids = |page: &Value| -> Vec<String> {
        page["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["jobId"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&page), [fired[2].clone(), fired[1].clone()]);
    assert_eq!(page["nextBefore"], json!(fired[1]));
    let (_, rest) = fx
        .call(
            "GET",
            &format!("/exports/{id}/status?pageSize=2&before={}", fired[1]),
            None,
            &alice,
        )
        .await;
    assert_eq!(ids(&rest), [fired[0].clone()]);
    assert_eq!(rest["nextBefore"], Value::Null);
    let (status, refused) = fx
        .call("GET", &format!("/exports/{id}/status?pageSize=0"), None, &alice)
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["path"], "/query/pageSize");
}
