//! The recurring chain on moto, with the schedules as moto stores them (it never fires them: the
//! tests fire the armed event themselves): occurrence identity is exact whatever the anchor's
//! fraction, the chain only moves forward, a trigger that is no occurrence is recorded and the
//! chain goes on, and occurrences that passed without their trigger are run (within the
//! lateness) or recorded as missed.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use exporter_core::domain::{ExportId, RunEvent};
use integration_tests::doubles::{At, Launches};
use integration_tests::{recurring_body, someone, Fixture};
use run_export::{handle, Outcome};

const HOUR: i64 = 3600;

/// The event the export's schedule would fire, as stored in moto.
async fn armed(fx: &Fixture, id: &ExportId) -> RunEvent {
    fx.armed_event(id).await.expect("an armed schedule")
}

/// An hourly export anchored `hours_ago` whole hours ago plus `fraction` of a second.
async fn hourly(fx: &Fixture, who: &[(String, String)], fraction: f64) -> (ExportId, Value) {
    let anchor = (Utc::now().timestamp() / HOUR - 3) * HOUR;
    let mut body = recurring_body("PT1H");
    body["periodStart"] = json!(anchor as f64 + fraction);
    body["items"][0]["params"]["period"] = json!("PT10M");
    let (status, export) = fx.call("POST", "/exports", Some(&body), who).await;
    assert_eq!(status, 201, "{export}");
    (
        export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id"),
        export,
    )
}

async fn next_run(fx: &Fixture, who: &[(String, String)], id: &ExportId) -> String {
    let (_, export) = fx.call("GET", &format!("/exports/{id}"), None, who).await;
    export["nextRunAt"].as_str().unwrap_or_default().to_owned()
}

fn millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test]
async fn a_fractional_anchor_runs_its_occurrences_and_keeps_its_chain() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    // What `Date.now() / 1000` gives: a fraction that is not whole milliseconds in binary.
    let (id, created) = hourly(&fx, &alice, 0.123).await;
    let first = armed(&fx, &id).await;
    let k = first.occurrence.expect("the event names its occurrence");
    assert_eq!(
        millis(first.scheduled_at),
        created["nextRunAt"].as_str().unwrap_or_default()
    );

    assert_eq!(
        handle(fx.run_deps(), first.clone()).await.expect("runs"),
        Outcome::Done
    );
    let second = armed(&fx, &id).await;
    assert_eq!(second.occurrence, Some(k + 1), "re-armed for the next occurrence");
    assert_eq!(second.scheduled_at - first.scheduled_at, TimeDelta::hours(1));
    assert_eq!(next_run(&fx, &alice, &id).await, millis(second.scheduled_at));

    // An event of before the index travelled with it: its time cut to the millisecond no longer
    // maps to the anchor's nanoseconds. It is recorded, and the chain stays armed.
    let legacy = RunEvent {
        occurrence: None,
        leg: None,
        item: None,
        ..second.clone()
    };
    assert_eq!(
        handle(fx.run_deps(), legacy).await.expect("runs"),
        Outcome::Failed
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    let recorded = state["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| {
            j["error"]
                .as_str()
                .is_some_and(|e| e.contains("is not an occurrence"))
        })
        .cloned();
    assert!(recorded.is_some(), "{state}");
    let still = armed(&fx, &id).await;
    assert_eq!(still.occurrence, Some(k + 1), "the chain goes on");
    assert_eq!(state["status"], "scheduled");
}

#[tokio::test]
async fn a_late_replay_of_an_earlier_trigger_never_moves_the_chain_back() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _) = hourly(&fx, &alice, 0.0).await;
    let k = armed(&fx, &id).await;
    assert_eq!(
        handle(fx.run_deps(), k.clone()).await.expect("runs"),
        Outcome::Done
    );
    let k1 = armed(&fx, &id).await;
    assert_eq!(
        handle(fx.run_deps(), k1.clone()).await.expect("runs"),
        Outcome::Done
    );
    let k2 = armed(&fx, &id).await;

    // Lambda's asynchronous retry, or a replay from the dead-letter queue, of run k.
    assert_eq!(
        handle(fx.run_deps(), k.clone()).await.expect("runs"),
        Outcome::Duplicate
    );
    assert_eq!(armed(&fx, &id).await, k2, "the schedule stays at k + 2");
    assert_eq!(next_run(&fx, &alice, &id).await, millis(k2.scheduled_at));
    assert_eq!(k2.occurrence, k.occurrence.map(|k| k + 2));
}

#[tokio::test]
async fn occurrences_that_passed_without_a_trigger_run_within_the_lateness_or_are_recorded_missed() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    fx.run_config.lateness = TimeDelta::hours(1);
    let alice = someone();
    let (id, _) = hourly(&fx, &alice, 0.0).await;
    let k = armed(&fx, &id).await;
    let first = k.occurrence.expect("an index");

    // The schedule fired two and a half hours late (the chain was broken meanwhile).
    let launches = Launches::default();
    let late = At(k.scheduled_at + TimeDelta::minutes(150));
    let deps = run_export::Deps {
        launcher: &launches,
        clock: &late,
        ..fx.run_deps()
    };
    assert_eq!(handle(deps, k.clone()).await.expect("runs"), Outcome::Done);

    // k + 1 is 90 minutes late: recorded missed; k + 2 is 30 minutes late: launched now.
    let launched = launches.take();
    assert_eq!(
        launched.iter().map(|e| e.occurrence).collect::<Vec<_>>(),
        [Some(first + 2)]
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    let missed: Vec<&Value> = state["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["error"].as_str().is_some_and(|e| e.starts_with("missed")))
        .collect();
    assert_eq!(missed.len(), 1, "{state}");
    assert_eq!(
        missed[0]["scheduledAt"],
        millis(k.scheduled_at + TimeDelta::hours(1))
    );
    assert_eq!(missed[0]["status"], "failed");
    // And the chain goes on from the first occurrence after the late clock.
    let next = armed(&fx, &id).await;
    assert_eq!(next.occurrence, Some(first + 3));
}

/// An occurrence with a fraction finer than the millisecond the store keeps: a re-arm of it
/// retried (the first attempt advanced the chain and died before arming) finds the chain where
/// it left it (`Same`, so it arms), not "behind" (which would leave the chain unarmed).
#[tokio::test]
async fn a_retried_rearm_of_a_sub_millisecond_occurrence_finds_the_chain_where_it_left_it() {
    use exporter_core::ports::{Advance, ExportRuns};
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _) = hourly(&fx, &alice, 0.000_250_5).await;
    let next = Utc::now() + TimeDelta::days(2) + TimeDelta::nanoseconds(250_500);
    let now = Utc::now();
    assert_eq!(
        fx.store
            .advance_next_run((&id, 1), next, now, &[])
            .await
            .expect("writes"),
        Advance::Advanced
    );
    assert_eq!(
        fx.store
            .advance_next_run((&id, 1), next, now, &[])
            .await
            .expect("writes"),
        Advance::Same,
        "the retry of the same re-arm"
    );
    assert_eq!(
        fx.store
            .advance_next_run((&id, 1), next - TimeDelta::hours(1), now, &[])
            .await
            .expect("writes"),
        Advance::Behind
    );
}
