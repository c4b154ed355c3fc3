//! The exports API through its real adapters on moto (DynamoDB, EventBridge Scheduler) and
//! cargo lambda watch (Lambda Invoke): storage, schedules, ownership, limits and failure paths.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use exporter_adapters::scheduler::EventBridgeSchedules;
use integration_tests::{
    one_time_body, recurring_body, someone, Fixture, RUN_EXPORT_ARN, SCHEDULER_ROLE_ARN,
};

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn creates_reads_lists_shows_status_and_deletes_a_recurring_export() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut body = recurring_body("P1D");
    body["periodStart"] = json!(1_767_222_000); // 2026-01-01T00:00 in Europe/Rome

    let (status, created) = fx.call("POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["deletedAt"], Value::Null);
    assert_eq!(created["status"], "scheduled");
    assert_eq!(created["format"]["timezone"], json!({"name": "Europe/Rome"}));
    assert_eq!(created["createdAt"], created["updatedAt"]);
    // The next occurrence is the next local midnight in Rome.
    let next: DateTime<Utc> = created["nextRunAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("nextRunAt");
    let local = next.with_timezone(&chrono_tz::Europe::Rome);
    assert_eq!(local.format("%H:%M:%S").to_string(), "00:00:00");
    assert!(next > Utc::now() && next - Utc::now() <= chrono::TimeDelta::hours(25));

    // The stored item.
    let items = fx.items().await;
    let stored = items
        .iter()
        .find(|i| text(i, "sk") == "EXPORT")
        .expect("the export item");
    assert_eq!(text(stored, "pk"), format!("EXPORT#{id}"));
    assert_eq!(text(stored, "owner"), alice[0].1);
    assert_eq!(text(stored, "ownerEmail"), "someone@example.com");
    assert_eq!(text(stored, "status"), "scheduled");
    assert_eq!(text(stored, "type"), "recurring");
    let record: Value = serde_json::from_str(&text(stored, "record")).expect("record JSON");
    assert_eq!(record["version"], 1);
    assert_eq!(record["recurrence"]["every"], "P1D");
    assert_eq!(record["recurrence"]["anchor"], "2025-12-31T23:00:00Z");

    // The armed schedule: a one-time at() in UTC, flexible window off, input = the run event.
    let schedule = fx
        .scheduler
        .get_schedule()
        .name(format!("export-{id}"))
        .group_name(&fx.group)
        .send()
        .await
        .expect("the schedule exists");
    // A minute after the occurrence (the settle delay), so late-stamped data has arrived.
    let expected_at = format!(
        "at({})",
        (next + chrono::TimeDelta::seconds(60)).format("%Y-%m-%dT%H:%M:%S")
    );
    assert_eq!(schedule.schedule_expression(), Some(expected_at.as_str()));
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode().as_str()),
        Some("OFF")
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), RUN_EXPORT_ARN);
    assert_eq!(target.role_arn(), SCHEDULER_ROLE_ARN);
    assert_eq!(
        target.retry_policy().and_then(|r| r.maximum_retry_attempts()),
        Some(10)
    );
    assert!(target.dead_letter_config().and_then(|d| d.arn()).is_some());
    let input: Value = serde_json::from_str(target.input().expect("an input")).expect("JSON input");
    // The occurrence's index travels with its time: t_k, k days after 1 January in Rome.
    let k = (local.date_naive() - chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date")).num_days();
    assert_eq!(
        input,
        json!({"exportId": id, "scheduledAt": created["nextRunAt"], "occurrence": k})
    );

    // Read, list, status.
    let (status, got) = fx.call("GET", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!((status, &got), (200, &created));
    let (status, list) = fx.call("GET", "/exports", None, &alice).await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["results"][0], created);
    let (status, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(status, 200);
    assert_eq!(state["status"], "scheduled");
    assert_eq!(state["jobs"], json!([]));

    // Delete: 204, schedule removed, then 404 everywhere; deleting twice is 404.
    let (status, _) = fx.call("DELETE", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!(status, 204);
    let gone = fx
        .scheduler
        .get_schedule()
        .name(format!("export-{id}"))
        .group_name(&fx.group)
        .send()
        .await;
    assert!(gone.is_err(), "the schedule must be removed");
    for path in [format!("/exports/{id}"), format!("/exports/{id}/status")] {
        assert_eq!(fx.call("GET", &path, None, &alice).await.0, 404, "{path}");
    }
    assert_eq!(
        fx.call("DELETE", &format!("/exports/{id}"), None, &alice).await.0,
        404
    );
    assert_eq!(fx.call("GET", "/exports", None, &alice).await.1["total"], 0);
    // Soft delete: the record stays, with deletedAt.
    let items = fx.items().await;
    let stored = items
        .iter()
        .find(|i| text(i, "sk") == "EXPORT")
        .expect("still stored");
    assert!(!text(stored, "deletedAt").is_empty());
}

#[tokio::test]
async fn a_one_time_export_is_launched_at_once_without_a_schedule() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (status, created) = fx.call("POST", "/exports", Some(&one_time_body()), &alice).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["nextRunAt"], Value::Null);
    // No schedule for a one-time export.
    let schedules = fx
        .scheduler
        .list_schedules()
        .group_name(&fx.group)
        .send()
        .await
        .expect("lists");
    assert!(schedules.schedules().is_empty());
}

#[tokio::test]
async fn lists_with_filters_sorting_and_pages() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut ids = Vec::new();
    for (i, body) in [
        recurring_body("PT1H"),
        one_time_body(),
        recurring_body("P1W"),
        one_time_body(),
        recurring_body("P1M"),
    ]
    .iter()
    .enumerate()
    {
        let (status, created) = fx.call("POST", "/exports", Some(body), &alice).await;
        assert_eq!(status, 201, "export {i}: {created}");
        ids.push(created["id"].as_str().expect("id").to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await; // distinct createdAt
    }
    let get = |query: &str| {
        let path = format!("/exports?{query}");
        let (fx, alice) = (&fx, &alice);
        async move { fx.call("GET", &path, None, alice).await }
    };
    let ids_of = |list: &Value| -> Vec<String> {
        list["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|e| e["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };

    let (_, newest_first) = get("pageSize=2").await;
    assert_eq!(newest_first["total"], 5);
    assert_eq!(ids_of(&newest_first), [ids[4].clone(), ids[3].clone()]);
    let (_, page3) = get("pageSize=2&page=3").await;
    assert_eq!(ids_of(&page3), [ids[0].clone()]);
    let (_, oldest_first) = get("sort=createdAt&pageSize=100").await;
    assert_eq!(ids_of(&oldest_first), ids);
    let (_, recurring) = get("type=recurring&sort=createdAt").await;
    assert_eq!(
        ids_of(&recurring),
        [ids[0].clone(), ids[2].clone(), ids[4].clone()]
    );
    let (_, queued) = get("status=queued&sort=createdAt").await;
    assert_eq!(ids_of(&queued), [ids[1].clone(), ids[3].clone()]);
    let (_, chosen) = get(&format!("ids={},{}&sort=createdAt", ids[1], ids[2])).await;
    assert_eq!(ids_of(&chosen), [ids[1].clone(), ids[2].clone()]);
    let (_, none_yet) = get("to=2020-01-01T00:00:00Z").await;
    assert_eq!(none_yet["total"], 0);
    let (_, all_since) = get("from=1700000000").await;
    assert_eq!(all_since["total"], 5);

    let (status, bad) = get("pageSize=0&sort=size&colour=red").await;
    assert_eq!(status, 400);
    let paths: Vec<&str> = bad["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    for expected in ["/query/pageSize", "/query/sort", "/query/colour"] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
    // Another user sees none of them.
    assert_eq!(fx.call("GET", "/exports", None, &someone()).await.1["total"], 0);
}

#[tokio::test]
async fn another_users_export_is_not_found_never_forbidden() {
    let Some(fx) = Fixture::new().await else { return };
    let (alice, bob) = (someone(), someone());
    let (_, created) = fx
        .call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
        .await;
    let id = created["id"].as_str().expect("id");
    for (method, path) in [
        ("GET", format!("/exports/{id}")),
        ("GET", format!("/exports/{id}/status")),
        ("GET", format!("/exports/{id}/download")),
        ("DELETE", format!("/exports/{id}")),
    ] {
        let (status, body) = fx.call(method, &path, None, &bob).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    assert_eq!(
        fx.call("GET", &format!("/exports/{id}"), None, &alice).await.0,
        200
    );
}

#[tokio::test]
async fn identity_and_permissions_come_from_the_token() {
    let Some(fx) = Fixture::new().await else { return };
    let (status, body) = fx
        .call(
            "GET",
            "/exports",
            None,
            &[("scope".into(), "exporter:exports:list".into())],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("Missing user identity id"))
    );
    let reader = vec![
        ("sub".to_owned(), "reader".to_owned()),
        ("scope".to_owned(), "exporter:exports:list".to_owned()),
    ];
    let (status, body) = fx.call("POST", "/exports", Some(&one_time_body()), &reader).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["details"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("exporter:exports:create")));
    let listed_by_permissions = vec![
        ("sub".to_owned(), "p".to_owned()),
        ("permissions".to_owned(), "[exporter:exports:list]".to_owned()),
    ];
    assert_eq!(
        fx.call("GET", "/exports", None, &listed_by_permissions).await.0,
        200
    );
    assert_eq!(fx.call("PUT", "/exports", None, &someone()).await.0, 405);
    assert_eq!(fx.call("GET", "/elsewhere", None, &someone()).await.0, 404);
    assert!(fx.items().await.is_empty(), "nothing may be written");
}

#[tokio::test]
async fn over_the_queued_limit_answers_429_until_one_is_deleted() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.config.max_queued_per_user = 2;
    let alice = someone();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, created) = fx
            .call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
            .await;
        assert_eq!(status, 201);
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    let (status, body) = fx
        .call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("Maximum number of queued exports reached"))
    );
    // Another user has a quota of their own.
    assert_eq!(
        fx.call("POST", "/exports", Some(&recurring_body("P1D")), &someone())
            .await
            .0,
        201
    );
    assert_eq!(
        fx.call("DELETE", &format!("/exports/{}", ids[0]), None, &alice)
            .await
            .0,
        204
    );
    assert_eq!(
        fx.call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
            .await
            .0,
        201
    );
    assert_eq!(fx.call("GET", "/exports", None, &alice).await.1["total"], 2);
}

#[tokio::test]
async fn a_failure_to_create_the_schedule_leaves_no_live_export_behind() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    // Point the schedules at a group that does not exist: Scheduler refuses to create them.
    fx.schedules = EventBridgeSchedules::new(fx.scheduler.clone(), Fixture::settings("no-such-group"));
    fx.config.max_queued_per_user = 1;
    let alice = someone();
    let (status, body) = fx
        .call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        !body.to_string().contains("no-such-group"),
        "internal details must not leak: {body}"
    );
    assert_eq!(fx.call("GET", "/exports", None, &alice).await.1["total"], 0);
    let exports: Vec<_> = fx
        .items()
        .await
        .into_iter()
        .filter(|i| text(i, "sk") == "EXPORT")
        .collect();
    assert!(exports.is_empty(), "no export may stay stored: {exports:?}");
    // The quota was given back: with a limit of one, the next create (now armable) succeeds.
    fx.schedules = EventBridgeSchedules::new(fx.scheduler.clone(), Fixture::settings(&fx.group));
    assert_eq!(
        fx.call("POST", "/exports", Some(&recurring_body("P1D")), &alice)
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn an_export_stored_before_versioned_records_still_reads() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut body = recurring_body("P1D");
    body["periodStart"] = json!(1_767_222_000);
    let (status, created) = fx.call("POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();

    // Rewrite the item as the service stored it before version 1: the API's request JSON.
    let mut v0 = created.clone();
    for field in ["id", "status", "createdAt", "updatedAt", "deletedAt", "nextRunAt"] {
        v0.as_object_mut().expect("an object").remove(field);
    }
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .key("pk", AttributeValue::S(format!("EXPORT#{id}")))
        .key("sk", AttributeValue::S("EXPORT".into()))
        .update_expression("SET #request = :v0 REMOVE #record")
        .expression_attribute_names("#request", "request")
        .expression_attribute_names("#record", "record")
        .expression_attribute_values(":v0", AttributeValue::S(v0.to_string()))
        .send()
        .await
        .expect("moto updates");

    let (status, read) = fx.call("GET", &format!("/exports/{id}"), None, &alice).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, created, "a version 0 record reads as it was created");
}
