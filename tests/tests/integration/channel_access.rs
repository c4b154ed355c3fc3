//! Channel access on moto and the local reader (which decides, as the platform would, what each
//! user's token may read, and serves a policy endpoint): a caller exports only the channels the
//! platform lets them read, a denial names the item and stores nothing, a checker that cannot
//! answer is a `503` with nothing stored, and with a policy endpoint every run re-checks, so a
//! revoked access fails the next run, sends its `onFailure` message and keeps the chain armed.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use exporter_adapters::access::{PolicyAccess, ReaderAccess};
use exporter_adapters::scheduler::schedule_name;
use exporter_adapters::support::Secret;
use exporter_core::domain::{ExportId, RunEvent};
use integration_tests::{
    one_time_body, presenting, reader_server, recurring_body, someone, Fixture, READER_START, READER_TOKEN,
};
use run_export::{handle, Outcome};

const CHANNEL_A: &str = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
const CHANNEL_B: &str = "b7f3d1c2-5e4a-4f6b-8c9d-0a1b2c3d4e5f";

fn on_channel(body: &mut Value, item: usize, channel: &str) {
    body["items"][item]["params"]["channelId"] = json!(channel);
}

/// The owners of the table's export items.
async fn owners(fx: &Fixture) -> Vec<String> {
    fx.items()
        .await
        .iter()
        .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("EXPORT"))
        .filter_map(|i| i.get("owner").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

#[tokio::test]
async fn user_a_cannot_export_user_bs_channel() {
    let Some(fx) = Fixture::new().await else { return };
    fx.reader_state.grant("token-a", &[CHANNEL_A]);
    fx.reader_state.grant("token-b", &[CHANNEL_B]);
    let (a, b) = (presenting("token-a"), presenting("token-b"));

    let mut body = one_time_body();
    on_channel(&mut body, 0, CHANNEL_B);
    let (status, refused) = fx.call("POST", "/exports", Some(&body), &a).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "Channel access denied");
    assert_eq!(refused["details"][0]["path"], "/items/0/params/channelId");
    assert!(
        refused["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(CHANNEL_B)),
        "{refused}"
    );

    let (status, created) = fx.call("POST", "/exports", Some(&body), &b).await;
    assert_eq!(status, 201, "B reads their own channel: {created}");
    assert_eq!(owners(&fx).await, vec![b[0].1.clone()], "nothing stored for A");
}

#[tokio::test]
async fn a_denied_item_is_named_by_its_pointer_and_nothing_is_stored_or_armed() {
    let Some(fx) = Fixture::new().await else { return };
    fx.reader_state.grant("token-a", &[CHANNEL_A]);
    let a = presenting("token-a");
    let mut body = recurring_body("P1D");
    let second = body["items"][0].clone();
    body["items"] = json!([second.clone(), second]);
    on_channel(&mut body, 1, CHANNEL_B);

    let (status, refused) = fx.call("POST", "/exports", Some(&body), &a).await;
    assert_eq!(status, 403, "{refused}");
    let paths: Vec<&str> = refused["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(paths, ["/items/1/params/channelId"]);
    assert!(fx.items().await.is_empty(), "no export, no quota counted");
    let schedules = fx
        .scheduler
        .list_schedules()
        .group_name(&fx.group)
        .send()
        .await
        .expect("moto lists");
    assert!(schedules.schedules().is_empty(), "nothing armed");
}

#[tokio::test]
async fn a_request_without_a_credential_is_refused_when_the_platform_decides() {
    let Some(fx) = Fixture::new().await else { return };
    let mut anonymous = someone();
    anonymous.retain(|(k, _)| k != "authorization");
    let (status, refused) = fx
        .call("POST", "/exports", Some(&one_time_body()), &anonymous)
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(fx.items().await.is_empty());
}

#[tokio::test]
async fn a_checker_that_cannot_answer_is_a_503_with_nothing_stored() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let mut down = reader_server::ReaderConfig::new(READER_TOKEN, READER_START, 60);
    down.always_fail = Some(500);
    let (url, _) = reader_server::start(down).await;
    fx.access =
        Box::new(ReaderAccess::new(url, exporter_core::domain::Dialect::default()).expect("a client"));

    let (status, answer) = fx
        .call("POST", "/exports", Some(&one_time_body()), &someone())
        .await;
    assert_eq!(status, 503, "{answer}");
    assert!(fx.items().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn with_a_policy_endpoint_a_revoked_access_fails_the_next_run_and_keeps_the_chain() {
    let Some(fx) = Fixture::new().await else { return };
    let policy = PolicyAccess::new(
        format!(
            "{}/access?subject={{subject}}&channel={{channel}}&action={{action}}",
            fx.reader_url
        ),
        Secret::new(READER_TOKEN),
    )
    .expect("a client");
    let alice = someone();
    let sub = alice[0].1.clone();
    fx.reader_state.allow(&sub, &[CHANNEL_A]);

    let mut body = recurring_body("PT1H");
    body["periodStart"] = json!(READER_START);
    body["items"][0]["params"]["period"] = json!("PT10M");
    body["notification"]["messages"] = json!([{
        "policy": "onFailure", "medium": "slack", "title": "Export {{status}}", "text": "{{error}}",
        "target": format!("{}/slack/revoked", fx.chat_url)
    }]);
    let api = exports_api::Deps {
        access: &policy,
        ..fx.deps()
    };
    let created_at = Utc::now().timestamp();
    let (status, created) = Fixture::call_with(api, "POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{created}");
    let id: ExportId = created["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("an export id");
    let event = |k: i64| RunEvent {
        export_id: id,
        scheduled_at: DateTime::from_timestamp(READER_START + k * 3600, 0).expect("in range"),
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    };
    let runs = run_export::Deps {
        access: Some(&policy),
        ..fx.run_deps()
    };

    assert_eq!(handle(runs, event(1)).await.expect("runs"), Outcome::Done);

    fx.reader_state.allow(&sub, &[]);
    let second = event(2);
    assert_eq!(handle(runs, second.clone()).await.expect("runs"), Outcome::Failed);

    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    let failed = &state["jobs"][0]; // newest first
    assert_eq!(failed["status"], "failed", "{state}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("revoked") && e.contains(CHANNEL_A)),
        "{state}"
    );
    assert!(
        failed["files"].as_array().is_some_and(Vec::is_empty),
        "nothing read: {state}"
    );
    // The chain stays armed, at the next occurrence that can still fire: the next full hour,
    // never before the one the create armed (the first after the create, which within a minute
    // after a full hour is the next one).
    let hour = 3600;
    // (An occurrence is armable until its schedule, the run's settle delay after it, would fire.)
    let armable_after = Utc::now().timestamp() - fx.run_config.settle.num_seconds();
    let next = DateTime::from_timestamp((armable_after.max(created_at) / hour + 1) * hour, 0)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert_eq!(state["nextRunAt"], next, "{state}");
    let schedule = fx
        .scheduler
        .get_schedule()
        .group_name(&fx.group)
        .name(schedule_name(&id))
        .send()
        .await
        .expect("the schedule is still there");
    assert!(schedule
        .schedule_expression()
        .is_some_and(|e| e.starts_with("at(")));

    // The job's onFailure message says why.
    let summary = fx.notify_job(id, second.job_id()).await;
    assert_eq!(summary.sent, 1);
    let posted = fx
        .chat_state
        .captured()
        .into_iter()
        .find(|c| c.path.starts_with("/slack/revoked"))
        .expect("the onFailure message was posted");
    assert!(
        posted.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("revoked")),
        "{:?}",
        posted.body
    );
}

#[tokio::test]
async fn every_target_of_a_wide_item_is_checked_not_only_the_first() {
    let Some(fx) = Fixture::new().await else { return };
    let policy = PolicyAccess::new(
        format!(
            "{}/access?subject={{subject}}&channel={{channel}}&name={{name}}&action={{action}}",
            fx.reader_url
        ),
        Secret::new(READER_TOKEN),
    )
    .expect("a client");
    let alice = someone();
    fx.reader_state.allow(&alice[0].1, &[CHANNEL_A]);
    if let Ok(mut denied) = fx.reader_state.denied_names.lock() {
        denied.push("urn:dev:secret".into());
    }
    let mut body = one_time_body();
    body["items"][0]["params"]["channelId"] = json!(CHANNEL_A);
    body["items"][0]["params"]["target"] = json!({"value": "urn:dev:temperature,urn:dev:secret"});
    body["format"]["columns"] = json!([{"id": "time", "label": "t"}, {"id": "value", "label": "v"}]);
    let api = exports_api::Deps {
        access: &policy,
        ..fx.deps()
    };
    let (status, answer) = Fixture::call_with(api, "POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("urn:dev:secret"), "{answer}");
    assert!(fx.items().await.is_empty(), "nothing stored");
}
