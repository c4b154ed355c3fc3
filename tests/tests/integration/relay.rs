//! Nobody's relay, on moto with the local chat endpoints: messages go only to the caller's own
//! address and what the operator allows (refused at create, and again before sending, for
//! records stored before the rule); and each owner's daily budgets of runs and messages hold,
//! also under concurrent creates and runs.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde_json::{json, Value};

use exporter_core::domain::job::JobKey;
use exporter_core::ports::{Budgets, JobLedger, Spend};
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use run_export::{handle, Outcome};

fn with_messages(mut body: Value, messages: Value) -> Value {
    body["notification"]["messages"] = messages;
    body
}

fn email(target: Option<&str>) -> Value {
    let mut m =
        json!({"policy": "onSuccess", "medium": "email", "title": "Export", "text": "{{downloadUrl}}"});
    if let Some(target) = target {
        m["target"] = json!(target);
    }
    m
}

#[tokio::test]
async fn email_goes_only_to_the_caller_and_to_what_the_operator_allows() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone(); // someone@example.com; the fixture allows the domain example.com
    let stranger = with_messages(
        one_time_body(),
        json!([email(None), email(Some("victim@elsewhere.example"))]),
    );
    let (status, refused) = fx.call("POST", "/exports", Some(&stranger), &alice).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["path"], "/notification/messages/1/target");
    assert!(
        refused["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("your own email address")),
        "{refused}"
    );
    assert!(fx.items().await.is_empty(), "nothing stored");

    let allowed = with_messages(
        one_time_body(),
        json!([
            email(None),
            email(Some("someone@example.com")),
            email(Some("ops@example.com"))
        ]),
    );
    let (status, body) = fx.call("POST", "/exports", Some(&allowed), &alice).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_telegram_chat_off_the_allow_list_is_refused() {
    let Some(fx) = Fixture::new().await else { return };
    let telegram = |chat: &str| json!([{"policy": "onFailure", "medium": "telegram", "title": "t", "text": "x", "target": chat}]);
    let (status, refused) = fx
        .call(
            "POST",
            "/exports",
            Some(&with_messages(one_time_body(), telegram("-100999"))),
            &someone(),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["path"], "/notification/messages/0/target");
    let (status, _) = fx
        .call(
            "POST",
            "/exports",
            Some(&with_messages(one_time_body(), telegram("42"))),
            &someone(),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_stored_record_that_relays_is_not_sent() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let body = with_messages(one_time_body(), json!([email(Some("ops@example.com"))]));
    let event = fx.create_run(&alice, &body).await;
    // As if stored before the rule: the record's target rewritten to a stranger.
    let key = [
        ("pk", AttributeValue::S(format!("EXPORT#{}", event.export_id))),
        ("sk", AttributeValue::S("EXPORT".into())),
    ];
    let item = fx
        .dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(
            key.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        ))
        .send()
        .await
        .expect("moto reads");
    let record = item
        .item()
        .and_then(|i| i.get("record"))
        .and_then(|v| v.as_s().ok())
        .expect("a record")
        .replace("ops@example.com", "victim@elsewhere.example");
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .set_key(Some(
            key.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        ))
        .update_expression("SET #r = :r")
        .expression_attribute_names("#r", "record")
        .expression_attribute_values(":r", AttributeValue::S(record))
        .send()
        .await
        .expect("moto updates");

    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    let summary = fx.notify_job(event.export_id, event.job_id()).await;
    assert_eq!((summary.sent, summary.failed), (0, 1));
    let message = fx.first_notification(&alice, event.export_id).await;
    let reason = message["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not allowed"), "{message}");
}

#[tokio::test]
async fn a_recurring_export_shorter_than_the_deployments_minimum_is_refused() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.config.policy.min_periodicity_seconds = 3600;
    let (status, refused) = fx
        .call("POST", "/exports", Some(&recurring_body("PT30M")), &someone())
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"][0]["path"], "/periodicity");
    assert_eq!(
        refused["details"][0]["message"],
        "must be at least PT1H on this deployment"
    );
    let (status, _) = fx
        .call("POST", "/exports", Some(&recurring_body("PT1H")), &someone())
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn concurrent_runs_never_spend_more_than_the_daily_budget() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.run_config.max_runs_per_day = 2;
    let alice = someone();
    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(fx.create_run(&alice, &one_time_body()).await);
    }
    let runs = events.iter().map(|e| handle(fx.run_deps(), e.clone()));
    let outcomes: Vec<Outcome> = futures_outcomes(runs).await;
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Done).count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Failed).count(),
        3,
        "{outcomes:?}"
    );
    let failed = events[outcomes
        .iter()
        .position(|o| *o == Outcome::Failed)
        .expect("one failed")]
    .export_id;
    let (_, state) = fx
        .call("GET", &format!("/exports/{failed}/status"), None, &alice)
        .await;
    assert!(
        state["jobs"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("budget of 2 runs a day")),
        "{state}"
    );
}

async fn futures_outcomes(
    runs: impl Iterator<Item = impl std::future::Future<Output = Result<Outcome, run_export::Failure>>>,
) -> Vec<Outcome> {
    let handles: Vec<_> = runs.collect();
    let mut outcomes = Vec::new();
    // Polled together, so the budget's conditional writes race as concurrent runs' would.
    for result in join_all(handles).await {
        outcomes.push(result.expect("runs"));
    }
    outcomes
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test]
async fn a_retried_attempt_spends_its_budget_once() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let first = fx.create_run(&alice, &one_time_body()).await;
    let second = fx.create_run(&alice, &one_time_body()).await;
    for event in [&first, &second] {
        let job = event.job();
        assert!(fx
            .store
            .open_job(&job, Utc::now(), Utc::now())
            .await
            .expect("claims"));
    }
    let (store, owner) = (&fx.store, alice[0].1.as_str());
    let spend = |job: JobKey| async move { store.spend(owner, &job, Spend::Run, Utc::now(), 1).await };
    assert!(spend(first.job()).await.expect("spends"));
    assert!(
        spend(first.job()).await.expect("spends"),
        "the same job again: spent already"
    );
    assert!(
        !spend(second.job()).await.expect("answers"),
        "another job: the budget of 1 is used"
    );
}

#[tokio::test]
async fn messages_past_the_daily_budget_are_recorded_not_sent() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.notify_config.max_messages_per_day = 1;
    let alice = someone();
    let slack = |n: u32| {
        json!({"policy": "onSuccess", "medium": "slack", "title": "t", "text": "x",
               "target": format!("{}/slack/budget/{n}", fx.chat_url)})
    };
    let event = fx
        .create_run(
            &alice,
            &with_messages(one_time_body(), json!([slack(1), slack(2)])),
        )
        .await;
    assert_eq!(
        handle(fx.run_deps(), event.clone()).await.expect("runs"),
        Outcome::Done
    );
    let summary = fx.notify_job(event.export_id, event.job_id()).await;
    assert_eq!((summary.sent, summary.failed), (1, 1));
    let posted = fx
        .chat_state
        .captured()
        .into_iter()
        .filter(|c| c.path.starts_with("/slack/budget/"))
        .count();
    assert_eq!(posted, 1, "one message went out");
    let (_, state) = fx
        .call(
            "GET",
            &format!("/exports/{}/status", event.export_id),
            None,
            &alice,
        )
        .await;
    let reasons: Vec<&str> = state["jobs"][0]["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(|n| n["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("budget of 1 messages a day")),
        "{state}"
    );
}

#[tokio::test]
async fn concurrent_creates_never_overshoot_the_quota() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.config.max_queued_per_user = 3;
    let alice = someone();
    let body = recurring_body("P1D");
    let creates = (0..8)
        .map(|_| fx.call("POST", "/exports", Some(&body), &alice))
        .collect();
    let statuses: Vec<u16> = join_all(creates).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5, "{statuses:?}");
}
