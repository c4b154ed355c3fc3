//! The reconciler on moto: a chain whose re-arming failed past its retries is restarted; a job
//! whose attempt died is recorded failed, notified and its one-time export settled; orphan
//! schedules and unfinished creates are removed; quota counters are corrected from the records;
//! and a second sweep finds nothing left to repair.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use exporter_core::domain::job::{JobDetail, JobEnd, JobKey, JobStatus};
use exporter_core::domain::{ExportId, NotifyEvent, RunEvent};
use exporter_core::ports::{
    ExportLifecycle, FileStore, GrowingFiles, JobEnds, JobHistory, JobLedger, RunSchedules, Sweep,
};
use integration_tests::doubles::{Armed, At, HandOffs, ItemsRead, RunsInProcess};
use integration_tests::history::millis;
use integration_tests::{one_time_body, recurring_body, someone, Fixture};
use reconcile::{ReconcileConfig, Repairs};

async fn sweep(fx: &Fixture, notifier: &HandOffs) -> Repairs {
    let config = ReconcileConfig {
        grace: TimeDelta::minutes(1),
        ..ReconcileConfig::default()
    };
    let launcher = RunsInProcess(fx.run_deps());
    let deps = reconcile::Deps {
        files: &fx.files,
        uploads: &fx.files,
        sweep: &fx.store,
        exports: &fx.store,
        history: &fx.store,
        ends: &fx.store,
        spread: &fx.store,
        lifecycle: &fx.store,
        runs: &fx.store,
        schedules: &fx.schedules,
        launcher: &launcher,
        notifier,
        clock: &fx.clock,
        config: &config,
    };
    reconcile::handle(deps).await.expect("sweeps")
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

async fn set(fx: &Fixture, pk: String, sk: &str, name: &str, value: AttributeValue) {
    fx.dynamo
        .update_item()
        .table_name(&fx.table)
        .set_key(Some(key(pk, sk)))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", name)
        .expression_attribute_values(":v", value)
        .send()
        .await
        .expect("moto updates");
}

/// Whether the job's record is in the sweep's index (it has the index's key).
async fn in_sweep_index(fx: &Fixture, job: &JobKey) -> bool {
    fx.dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(key(
            format!("EXPORT#{}", job.export_id),
            &format!("JOB#{}", millis(job.scheduled_at)),
        )))
        .send()
        .await
        .expect("reads")
        .item
        .expect("the job")
        .contains_key("sweep")
}

async fn armed(fx: &Fixture, id: &ExportId) -> Option<RunEvent> {
    fx.armed_event(id).await
}

/// Creates a one-time export as `who`; its id, creation time and the key of its job.
async fn one_time_job(fx: &Fixture, who: &[(String, String)]) -> (ExportId, DateTime<Utc>, JobKey) {
    let (status, export) = fx.call("POST", "/exports", Some(&one_time_body()), who).await;
    assert_eq!(status, 201, "{export}");
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let at: DateTime<Utc> = export["createdAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("createdAt");
    let job = RunEvent {
        export_id: id,
        scheduled_at: at,
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    }
    .job();
    (id, at, job)
}

/// An hourly chain of `who` that began five hours ago (ten minutes an occurrence), with the
/// occurrence armed.
async fn hourly_chain(fx: &Fixture, who: &[(String, String)]) -> (ExportId, RunEvent) {
    let mut body = recurring_body("PT1H");
    body["periodStart"] = json!((Utc::now().timestamp() / 3600 - 5) * 3600);
    body["items"][0]["params"]["period"] = json!("PT10M");
    let (status, export) = fx.call("POST", "/exports", Some(&body), who).await;
    assert_eq!(status, 201, "{export}");
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    (id, armed(fx, &id).await.expect("armed"))
}

#[tokio::test]
async fn a_chain_whose_rearming_failed_is_restarted_and_a_second_sweep_finds_nothing() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, next) = hourly_chain(&fx, &alice).await;
    // Re-arming failed past every retry two hours ago: the schedule is gone, nextRunAt is past.
    fx.schedules.disarm(&id).await.expect("disarms");
    let stale = next.scheduled_at - TimeDelta::hours(2);
    set(
        &fx,
        format!("EXPORT#{id}"),
        "EXPORT",
        "nextRunAt",
        AttributeValue::S(millis(stale)),
    )
    .await;

    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(repairs.chains_restarted, 1, "{repairs:?}");
    let rearmed = armed(&fx, &id).await.expect("armed again");
    // The first occurrence still ahead: armable until its schedule, a minute after it, fires.
    let armable_after = Utc::now() - TimeDelta::seconds(60);
    let ahead = if next.scheduled_at - TimeDelta::hours(1) > armable_after {
        next.occurrence.map(|k| k - 1)
    } else {
        next.occurrence
    };
    assert_eq!(rearmed.occurrence, ahead, "at the first occurrence still ahead");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["nextRunAt"], millis(rearmed.scheduled_at), "{state}");
    // Occurrences after it that passed meanwhile are launched by that run, their jobs on record.
    let missed = state["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["scheduledAt"] == millis(stale)))
        .unwrap_or_else(|| panic!("the missed occurrence ran: {state}"));
    assert_eq!(missed["status"], "done", "{state}");

    assert_eq!(
        sweep(&fx, &hand_offs).await,
        Repairs::default(),
        "nothing left to repair"
    );
}

#[tokio::test]
async fn a_job_whose_attempt_died_is_failed_notified_and_its_export_settled() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _, job) = one_time_job(&fx, &alice).await;
    // An attempt claimed it an hour ago, started, and died; no retry came.
    let then = Utc::now() - TimeDelta::hours(1);
    fx.start_job_at(&job, then).await;

    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(repairs.jobs_abandoned, 1, "{repairs:?}");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "failed", "{state}");
    assert_eq!(state["jobs"][0]["status"], "failed");
    assert!(state["jobs"][0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("crashed or timed out")));
    let sent: Vec<NotifyEvent> = hand_offs.0.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        sent,
        [NotifyEvent {
            export_id: id,
            job_id: job.job_id()
        }],
        "onFailure goes out"
    );
    assert_eq!(fx.queued(&alice[0].1).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_one_time_job_recorded_by_an_attempt_that_died_before_settling_is_settled_and_handed_off() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _, job) = one_time_job(&fx, &alice).await;
    // An attempt ran the job an hour ago and recorded it done, then died before settling its
    // export and handing off; no retry came.
    let then = Utc::now() - TimeDelta::hours(1);
    fx.start_job_at(&job, then).await;
    fx.end_job_at(&job, then, JobStatus::Done, None).await;
    // It died before removing what a retry of a later leg would have needed.
    let resume = format!(
        "{}/.resume/leg-1.json",
        exporter_core::domain::files::job_prefix(&id, &job.job_id())
    );
    fx.files.put_bytes(&resume, b"{}".to_vec()).await.expect("stores");
    let begun = format!(
        "{}/again.csv",
        exporter_core::domain::files::job_prefix(&id, &job.job_id())
    );
    fx.files.begin(&begun, "text/csv").await.expect("begins");

    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert!(
        !fx.objects().await.contains(&resume),
        "a done job's resume files are removed when it is handed off"
    );
    assert_eq!(
        fx.open_uploads().await,
        0,
        "and files its attempts began are abandoned"
    );
    assert_eq!(repairs.exports_settled, 1, "{repairs:?}");
    assert_eq!(repairs.jobs_handed_off, 1, "{repairs:?}");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "done", "{state}");
    assert_eq!(
        fx.queued(&alice[0].1).await.as_deref(),
        Some("0"),
        "its quota slot is back"
    );
    // notify runs for the job handed to it (as the asynchronous invoke would run it).
    let handed: Vec<_> = hand_offs.0.lock().map(|h| h.clone()).unwrap_or_default();
    assert_eq!(handed.len(), 1);
    fx.notify_job(handed[0].export_id, handed[0].job_id.clone()).await;
    assert_eq!(
        sweep(&fx, &hand_offs).await,
        Repairs::default(),
        "nothing left to repair"
    );
}

#[tokio::test]
async fn a_failed_job_whose_attempt_died_before_removing_its_files_has_them_removed_when_handed() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, _, job) = one_time_job(&fx, &alice).await;
    // An attempt recorded the job failed an hour ago and died before removing what its earlier
    // legs had stored and handing the job off; no retry came.
    let then = Utc::now() - TimeDelta::hours(1);
    fx.start_job_at(&job, then).await;
    let prefix = exporter_core::domain::files::job_prefix(&id, &job.job_id());
    let stored = format!("{prefix}/temperature.csv");
    let resume = format!("{prefix}/.resume/leg-1.json");
    fx.files
        .put_bytes(&stored, b"Time,Value\r\n".to_vec())
        .await
        .expect("stores");
    fx.files.put_bytes(&resume, b"{}".to_vec()).await.expect("stores");
    fx.end_job_at(&job, then, JobStatus::Failed, Some("storing the file failed"))
        .await;
    // A file of another job of the same export stays.
    let other = format!("exports/{id}/20200101T000000000Z/temperature.csv");
    fx.files.put_bytes(&other, b"x".to_vec()).await.expect("stores");

    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    let objects = fx.objects().await;
    assert!(
        !objects.iter().any(|k| k.starts_with(&format!("{prefix}/"))),
        "nothing of the failed job stays: {objects:?}"
    );
    assert!(objects.contains(&other), "another job's file stays: {objects:?}");
    assert_eq!(repairs.failed_files_removed, 2, "{repairs:?}");
    assert_eq!(repairs.jobs_handed_off, 1, "{repairs:?}");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "failed", "{state}");
}

#[tokio::test]
async fn a_one_time_export_whose_launch_was_lost_is_launched_again() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    // The create's launch went to the stack's run-export, which knows nothing of this
    // fixture's table: as if the invoke was lost (its every attempt failed, or the create died
    // between queueing the export and launching it). It stays queued, holding its quota slot.
    let (status, export) = fx.call("POST", "/exports", Some(&one_time_body()), &alice).await;
    assert_eq!(status, 201);
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let hand_offs = HandOffs::default();
    assert_eq!(
        sweep(&fx, &hand_offs).await.one_time_launched,
        0,
        "within the grace, a launch may still be under way"
    );
    let then = Utc::now() - TimeDelta::hours(1);
    set(
        &fx,
        format!("EXPORT#{id}"),
        "EXPORT",
        "createdAt",
        AttributeValue::S(millis(then)),
    )
    .await;

    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(repairs.one_time_launched, 1, "{repairs:?}");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["status"], "done", "it ran: {state}");
    assert_eq!(state["jobs"].as_array().map(Vec::len), Some(1), "{state}");
    assert_eq!(fx.queued(&alice[0].1).await.as_deref(), Some("0"));
    assert_eq!(
        sweep(&fx, &hand_offs).await,
        Repairs::default(),
        "nothing left to repair"
    );
}

#[tokio::test]
async fn orphan_schedules_unfinished_creates_and_wrong_counters_are_repaired() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let create = |body: serde_json::Value| {
        let fx = &fx;
        let alice = &alice;
        async move {
            let (status, export) = fx.call("POST", "/exports", Some(&body), alice).await;
            assert_eq!(status, 201, "{export}");
            export["id"]
                .as_str()
                .and_then(|i| i.parse::<ExportId>().ok())
                .expect("an id")
        }
    };
    // Deleted without its schedule removed (the delete's disarm failed).
    let deleted = create(recurring_body("P1D")).await;
    fx.store
        .soft_delete(&deleted, &alice[0].1, Utc::now(), Utc::now() + TimeDelta::days(7))
        .await
        .expect("deletes");
    // A create that crashed between arming and marking it scheduled, an hour ago.
    let unfinished = create(recurring_body("P1D")).await;
    set(
        &fx,
        format!("EXPORT#{unfinished}"),
        "EXPORT",
        "status",
        AttributeValue::S("creating".into()),
    )
    .await;
    let long_ago = millis(Utc::now() - TimeDelta::hours(1));
    set(
        &fx,
        format!("EXPORT#{unfinished}"),
        "EXPORT",
        "createdAt",
        AttributeValue::S(long_ago),
    )
    .await;
    // One live export, and a counter that drifted.
    let live = create(recurring_body("P1D")).await;
    set(
        &fx,
        format!("OWNER#{}", alice[0].1),
        "QUOTA",
        "queued",
        AttributeValue::N("7".into()),
    )
    .await;

    let repairs = sweep(&fx, &HandOffs::default()).await;
    assert_eq!(repairs.schedules_removed, 2, "{repairs:?}");
    assert_eq!(repairs.creating_discarded, 1, "{repairs:?}");
    assert!(armed(&fx, &deleted).await.is_none());
    assert!(armed(&fx, &unfinished).await.is_none());
    assert!(armed(&fx, &live).await.is_some(), "the live chain is left alone");
    let gone = fx
        .dynamo
        .get_item()
        .table_name(&fx.table)
        .set_key(Some(key(format!("EXPORT#{unfinished}"), "EXPORT")))
        .send()
        .await
        .expect("reads");
    assert!(gone.item().is_none(), "the unfinished create is discarded");

    // The discard moved the counter: a sweep within the minute leaves it (the index may lag
    // the change); the next one after corrects it from the records.
    assert_eq!(sweep(&fx, &HandOffs::default()).await.quotas_corrected, 0);
    set(
        &fx,
        format!("OWNER#{}", alice[0].1),
        "QUOTA",
        "touchedAt",
        AttributeValue::N((Utc::now() - TimeDelta::minutes(2)).timestamp().to_string()),
    )
    .await;
    let repairs = sweep(&fx, &HandOffs::default()).await;
    assert_eq!(repairs.quotas_corrected, 1, "{repairs:?}");
    assert_eq!(fx.queued(&alice[0].1).await.as_deref(), Some("1"));
    assert_eq!(sweep(&fx, &HandOffs::default()).await, Repairs::default());
}

#[tokio::test]
async fn a_counter_is_touched_at_the_writers_time_so_a_sweep_on_that_clock_leaves_a_fresh_one_alone() {
    let Some(fx) = Fixture::new().await else { return };
    // The API's clock is ahead of the wall's (as the soak's is, or a host's drifts): the
    // counter it moves is fresh on that clock, and a sweep reading it on that clock leaves it.
    let ahead = At(Utc::now() + TimeDelta::hours(2));
    let api = exports_api::Deps {
        clock: &ahead,
        ..fx.deps()
    };
    let who = someone();
    let mut body = recurring_body("PT1H");
    body["periodStart"] = json!(ahead.0.timestamp() / 3600 * 3600);
    let (status, export) = Fixture::call_with(api, "POST", "/exports", Some(&body), &who).await;
    assert_eq!(status, 201, "{export}");
    let owner = &who[0].1;
    let settled = |counters: Vec<(String, i64)>| counters.iter().any(|(o, _)| o == owner);
    let just_before = fx
        .store
        .quotas(ahead.0 - TimeDelta::minutes(1))
        .await
        .expect("reads");
    assert!(
        !settled(just_before),
        "a counter moved a moment ago on the writer's clock is not settled yet"
    );
    let after = fx
        .store
        .quotas(ahead.0 + TimeDelta::minutes(1))
        .await
        .expect("reads");
    assert!(settled(after), "settled once the minute has passed");
}

#[tokio::test]
async fn a_job_given_back_after_a_short_outage_waits_the_grace_before_a_sweep_fails_it() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (_, _, job) = one_time_job(&fx, &alice).await;
    // An attempt claimed it, met an outage of a dependency and gave it back for the runtime's
    // retry (about a minute later); the sweep comes first.
    let now = Utc::now();
    assert!(fx
        .store
        .open_job(&job, now, now + TimeDelta::minutes(15))
        .await
        .expect("claims"));
    fx.store.start_job(&job, now).await.expect("starts");
    fx.store.release_job(&job, now).await.expect("gives back");
    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(
        repairs.jobs_abandoned, 0,
        "a job given back is the retry's first: {repairs:?}"
    );
    let stored = fx.store.job(&job).await.expect("reads").expect("a job");
    assert_eq!(stored.status, JobStatus::InProgress);
    assert!(
        hand_offs.0.lock().map(|s| s.is_empty()).unwrap_or(false),
        "no onFailure"
    );
    // And the retry takes it at once.
    let later = now + TimeDelta::seconds(61);
    assert!(fx
        .store
        .open_job(&job, later, later + TimeDelta::minutes(15))
        .await
        .expect("claims"));
}

/// Records the runs the sweep launches, without running them.
#[derive(Default)]
struct Launched(std::sync::Mutex<Vec<RunEvent>>);

#[async_trait::async_trait]
impl exporter_core::ports::RunLauncher for Launched {
    async fn launch(&self, event: &RunEvent) -> Result<(), exporter_core::ports::LaunchError> {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(event.clone());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_long_job_whose_earlier_legs_were_retried_goes_on_while_its_own_leg_has_attempts_left() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, at, job) = one_time_job(&fx, &alice).await;
    let then = Utc::now() - TimeDelta::hours(1);
    fx.start_job_at(&job, then).await;
    assert!(fx.store.checkpoint_job(&job, 1, then).await.expect("checkpoints"));
    // A job of many legs whose earlier legs met transient faults (49 attempts so far), and whose
    // current leg's one attempt died: its leg has attempts left.
    let pk = format!("EXPORT#{id}");
    let sk = format!("JOB#{}", millis(at));
    set(&fx, pk.clone(), &sk, "attempts", AttributeValue::N("50".into())).await;
    set(&fx, pk, &sk, "legFrom", AttributeValue::N("49".into())).await;
    let launched = Launched::default();
    let hand_offs = HandOffs::default();
    let config = ReconcileConfig {
        grace: TimeDelta::minutes(1),
        ..ReconcileConfig::default()
    };
    let repairs = reconcile::handle(fx.reconcile_deps(&launched, &hand_offs, &config))
        .await
        .expect("sweeps");
    assert_eq!(repairs.jobs_abandoned, 0, "{repairs:?}");
    assert_eq!(repairs.jobs_continued, 1, "{repairs:?}");
    let resumed = launched.0.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].leg, Some(1), "from its checkpoint");
}

/// A job that paused at its checkpoint gives its claim back for the continuation it launched:
/// a sweep right after must leave it alone for the grace (the continuation may sit in Lambda's
/// queue), not launch a second continuation at once; a grace later, with none come, it does.
#[tokio::test]
async fn a_job_paused_at_its_checkpoint_waits_the_grace_before_a_sweep_continues_it() {
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (_, _, job) = one_time_job(&fx, &alice).await;
    let now = Utc::now();
    assert!(fx
        .store
        .open_job(&job, now, now + TimeDelta::minutes(15))
        .await
        .expect("claims"));
    fx.store.start_job(&job, now).await.expect("starts");
    assert!(fx.store.checkpoint_job(&job, 1, now).await.expect("checkpoints"));
    let hand_offs = HandOffs::default();
    let config = ReconcileConfig {
        grace: TimeDelta::minutes(20),
        ..ReconcileConfig::default()
    };
    let launched = Launched::default();
    let repairs = reconcile::handle(fx.reconcile_deps(&launched, &hand_offs, &config))
        .await
        .expect("sweeps");
    assert_eq!(
        repairs.jobs_continued, 0,
        "a paused job is no stalled one: {repairs:?}"
    );
    assert!(launched.0.lock().map(|l| l.is_empty()).unwrap_or(false));
    // Twenty-one minutes later its continuation never came: the sweep launches it.
    let later = integration_tests::doubles::At(now + TimeDelta::minutes(21));
    let deps = reconcile::Deps {
        clock: &later,
        ..fx.reconcile_deps(&launched, &hand_offs, &config)
    };
    let repairs = reconcile::handle(deps).await.expect("sweeps");
    assert_eq!(repairs.jobs_continued, 1, "{repairs:?}");
    assert_eq!(repairs.jobs_abandoned, 0, "{repairs:?}");
}

/// A chain's recent jobs fill more than one page of a query (DynamoDB stops a page at 1 MB):
/// the look-back reads them all, so no occurrence that ran is taken for one that never did.
#[tokio::test]
async fn a_chains_recent_jobs_are_read_whole_past_a_page() {
    let Some(fx) = Fixture::new().await else { return };
    let id = ExportId::new_random();
    let start = Utc::now() - TimeDelta::hours(1);
    // 40 jobs of about 60 KB each: more than 2 MB, two or three pages.
    for k in 0..40 {
        let job = JobKey {
            export_id: id,
            scheduled_at: start + TimeDelta::minutes(k),
        };
        let end = JobEnd {
            status: JobStatus::Failed,
            detail: JobDetail {
                error: Some("x".repeat(60_000)),
                ..JobDetail::default()
            },
            finished_at: job.scheduled_at,
            expires_at: None,
        };
        fx.store.record_unrun(&job, &end).await.expect("records");
    }
    let jobs = fx.store.recent_jobs(&id, None, 1440).await.expect("reads");
    assert_eq!(jobs.len(), 40, "every job of the chain");
    assert!(
        jobs.windows(2).all(|w| w[0].scheduled_at > w[1].scheduled_at),
        "newest first"
    );
    let older = fx
        .store
        .recent_jobs(&id, Some(start + TimeDelta::minutes(10)), 5)
        .await
        .expect("reads");
    let minutes: Vec<i64> = older
        .iter()
        .map(|j| (j.scheduled_at - start).num_minutes())
        .collect();
    assert_eq!(minutes, [9, 8, 7, 6, 5]);
}

#[tokio::test]
async fn a_sweep_reads_the_live_exports_and_the_open_jobs_never_the_history() {
    use exporter_adapters::dynamodb::DynamoStore;
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    // A table of its own, read through a client that counts what DynamoDB reads.
    let table = format!("sweep-{}", ExportId::new_random());
    DynamoStore::create_table(&fx.dynamo, &table)
        .await
        .expect("creates");
    let read = ItemsRead::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(
        fx.dynamo.config().to_builder().interceptor(read.clone()).build(),
    );
    let store = DynamoStore::new(counted.clone(), &table);
    // Two live exports, as the API wrote them (a chain ahead, a one-time export), written
    // before the index: the one-time pass gives them their key.
    let mut live = Vec::new();
    let first_pass = Utc::now();
    for (n, body) in [recurring_body("P1D"), one_time_body()].into_iter().enumerate() {
        if n == 1 {
            // The first pass, while the deployment rolls out: the code it replaces still writes
            // records without the key.
            store
                .index_for_sweeps(first_pass, std::time::Duration::from_secs(60))
                .await
                .expect("indexes");
        }
        let (status, export) = fx.call("POST", "/exports", Some(&body), &alice).await;
        assert_eq!(status, 201, "{export}");
        let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
        let item = fx
            .dynamo
            .get_item()
            .table_name(&fx.table)
            .set_key(Some(key(format!("EXPORT#{id}"), "EXPORT")))
            .send()
            .await
            .expect("reads")
            .item
            .expect("the export");
        let mut item = item;
        item.remove("sweep");
        fx.dynamo
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .expect("writes");
        live.push((id, export));
    }
    // A pass that begins after the deployment has settled finds the record written meanwhile,
    // and ends the work.
    let settled = first_pass + TimeDelta::minutes(31);
    store
        .index_for_sweeps(settled, std::time::Duration::from_secs(60))
        .await
        .expect("indexes");
    read.take();
    store
        .index_for_sweeps(
            settled + TimeDelta::minutes(5),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("once done, a read");
    assert_eq!(read.take(), 0, "no scan once the work is done");

    let launches = integration_tests::doubles::Launches::default();
    let hand_offs = HandOffs::default();
    let schedules = Armed(vec![live[0].0]);
    let config = ReconcileConfig::default();
    let once = || reconcile::handle(fx.reconcile_deps_on(&store, &schedules, &launches, &hand_offs, &config));
    read.take();
    assert_eq!(once().await.expect("sweeps"), Repairs::default());
    let alone = read.take();
    assert!(alone >= 2, "the live exports are read: {alone}");

    // A history of 120 deleted exports and 480 ended, handed and notified jobs.
    let (_, template) = &live[0];
    let template_item = counted
        .get_item()
        .table_name(&table)
        .set_key(Some(key(format!("EXPORT#{}", live[0].0), "EXPORT")))
        .send()
        .await
        .expect("reads")
        .item
        .expect("the export");
    assert!(
        template_item.contains_key("sweep"),
        "the pass gave it its key: {template}"
    );
    let history: Vec<_> = (0..120)
        .flat_map(|n| integration_tests::history::history_of(&template_item, n))
        .collect();
    integration_tests::history::put_all(&fx.dynamo, &table, history).await;
    assert_eq!(once().await.expect("sweeps"), Repairs::default());
    assert_eq!(
        read.take(),
        alone,
        "600 records of history add nothing to what a sweep reads"
    );
    fx.dynamo
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("drops");
}

#[tokio::test]
async fn an_occurrence_whose_every_attempt_died_after_the_chain_moved_on_is_launched() {
    use exporter_core::ports::{Advance, ExportRuns};
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let (id, next) = hourly_chain(&fx, &alice).await;
    // The trigger of the armed occurrence came two hours late; its attempt moved the chain
    // past it, then died, and so did every retry: no job was ever opened.
    let missed = next.scheduled_at;
    let moved_at = Utc::now() - TimeDelta::hours(2);
    let passed = [JobKey {
        export_id: id,
        scheduled_at: missed,
    }];
    assert_eq!(
        fx.store
            .advance_next_run((&id, 1), missed + TimeDelta::hours(1), moved_at, &passed)
            .await
            .expect("writes"),
        Advance::Advanced
    );
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    assert_eq!(state["jobs"][0]["status"], "notProcessed", "on record: {state}");
    assert_eq!(state["jobs"][0]["attempts"], 0, "{state}");

    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(repairs.occurrences_launched, 1, "{repairs:?}");
    assert_eq!(repairs.jobs_abandoned, 0, "{repairs:?}");
    let (_, state) = fx
        .call("GET", &format!("/exports/{id}/status"), None, &alice)
        .await;
    let job = state["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["scheduledAt"] == millis(missed)))
        .unwrap_or_else(|| panic!("the missed occurrence: {state}"));
    assert_eq!(job["status"], "done", "it ran: {state}");
    assert_eq!(job["attempts"], 1, "{state}");
    assert_eq!(
        sweep(&fx, &hand_offs).await.occurrences_launched,
        0,
        "launched once"
    );
}

#[tokio::test]
async fn an_occurrence_never_attempted_past_the_lateness_is_recorded_missed_without_a_message() {
    use exporter_core::ports::ExportRuns;
    let Some(fx) = Fixture::new().await else { return };
    let alice = someone();
    let mut body = recurring_body("PT1H");
    let start = (Utc::now().timestamp() / 3600 - 5) * 3600;
    body["periodStart"] = json!(start);
    body["items"][0]["params"]["period"] = json!("PT10M");
    let (status, export) = fx.call("POST", "/exports", Some(&body), &alice).await;
    assert_eq!(status, 201, "{export}");
    let id: ExportId = export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id");
    let next = armed(&fx, &id).await.expect("armed");
    // Four hours ago, an attempt passed an occurrence and died, with every retry.
    let missed = DateTime::from_timestamp(start + 3600, 0).expect("a time");
    let passed = [JobKey {
        export_id: id,
        scheduled_at: missed,
    }];
    fx.store
        .advance_next_run(
            (&id, 1),
            next.scheduled_at,
            Utc::now() - TimeDelta::hours(4),
            &passed,
        )
        .await
        .expect("writes");
    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    assert_eq!(repairs.occurrences_missed, 1, "{repairs:?}");
    assert_eq!(repairs.occurrences_launched, 0, "{repairs:?}");
    let job = fx.store.job(&passed[0]).await.expect("reads").expect("the job");
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.detail.error.unwrap_or_default();
    assert!(error.starts_with("missed:"), "{error}");
    assert!(
        hand_offs.0.lock().map(|h| h.is_empty()).unwrap_or(false),
        "a missed occurrence sends nothing"
    );
    assert_eq!(sweep(&fx, &hand_offs).await.occurrences_missed, 0, "once");
    // Nothing hands it to notify later: not the pass that indexes older records, not a sweep,
    // not a late trigger of it (a duplicate).
    fx.store
        .index_for_sweeps(Utc::now(), std::time::Duration::from_secs(60))
        .await
        .expect("indexes");
    assert_eq!(sweep(&fx, &hand_offs).await.jobs_handed_off, 0);
    let late = run_export::Deps {
        notifier: &hand_offs,
        ..fx.run_deps()
    };
    assert_eq!(
        run_export::handle(late, RunEvent::occurrence(id, 1, missed))
            .await
            .expect("runs"),
        run_export::Outcome::Duplicate
    );
    assert!(
        hand_offs.0.lock().map(|h| h.is_empty()).unwrap_or(false),
        "a missed occurrence never sends anything"
    );
}

#[tokio::test]
async fn a_job_leaves_the_sweeps_index_once_handed_off_and_notified_in_either_order() {
    use exporter_core::ports::DeliveryLog;
    let Some(fx) = Fixture::new().await else { return };
    let now = Utc::now();
    for notify_first in [true, false] {
        let job = JobKey {
            export_id: ExportId::new_random(),
            scheduled_at: now,
        };
        assert!(fx
            .store
            .open_job(&job, now, now + TimeDelta::minutes(15))
            .await
            .expect("opens"));
        assert!(in_sweep_index(&fx, &job).await, "a job under way is work");
        let end = JobEnd::failed("boom".into(), JobDetail::default(), now, TimeDelta::days(7));
        assert!(fx.store.finish_job(&job, &end).await.expect("ends"));
        assert!(
            in_sweep_index(&fx, &job).await,
            "an ended job not yet notified is work"
        );
        if notify_first {
            fx.store.notified(&job, true).await.expect("marks");
            assert!(in_sweep_index(&fx, &job).await, "not handed off yet");
            fx.store.handed_off(&job).await.expect("marks");
        } else {
            fx.store.handed_off(&job).await.expect("marks");
            assert!(in_sweep_index(&fx, &job).await, "not notified yet");
            fx.store.notified(&job, true).await.expect("marks");
        }
        assert!(
            !in_sweep_index(&fx, &job).await,
            "handed off and notified: out of the index"
        );
        // A later notify run that found a message still being sent puts it back.
        fx.store.notified(&job, false).await.expect("marks");
        assert!(in_sweep_index(&fx, &job).await, "back in the index");
    }
}

#[tokio::test]
async fn a_job_notify_never_finished_is_handed_for_a_day_then_given_up_and_leaves_the_index() {
    use exporter_core::ports::DeliveryLog;
    let Some(fx) = Fixture::new().await else { return };
    // Three jobs whose messages notify never finished: one ended an hour ago, one two days
    // ago whose notify run left a message `sending` (it died holding it), and one two days ago
    // never handed at all (the sweeps could not run for a day).
    let mut jobs = Vec::new();
    for (ended, notify_ran) in [
        (TimeDelta::hours(1), true),
        (TimeDelta::days(2), true),
        (TimeDelta::days(2), false),
    ] {
        let then = Utc::now() - ended;
        let job = JobKey {
            export_id: ExportId::new_random(),
            scheduled_at: then,
        };
        assert!(fx
            .store
            .open_job(&job, then, then + TimeDelta::minutes(15))
            .await
            .expect("opens"));
        let end = JobEnd::failed("boom".into(), JobDetail::default(), then, TimeDelta::days(7));
        assert!(fx.store.finish_job(&job, &end).await.expect("ends"));
        if notify_ran {
            fx.store.handed_off(&job).await.expect("marks");
            let claimed = fx
                .store
                .claim_delivery(&job, 0, then, then + TimeDelta::seconds(330))
                .await
                .expect("claims");
            assert!(claimed);
            fx.store.notified(&job, false).await.expect("marks");
        }
        jobs.push(job);
    }
    let hand_offs = HandOffs::default();
    let repairs = sweep(&fx, &hand_offs).await;
    let handed: Vec<ExportId> = hand_offs
        .0
        .lock()
        .map(|h| h.iter().map(|e| e.export_id).collect())
        .unwrap_or_default();
    assert!(
        handed.contains(&jobs[0].export_id),
        "the hour-old job is handed again"
    );
    assert!(
        !handed.contains(&jobs[1].export_id),
        "the two-day-old job notify left unfinished is not handed again"
    );
    assert!(
        !in_sweep_index(&fx, &jobs[1]).await,
        "given up, it leaves the sweep's index rather than being read by every sweep until it expires"
    );
    assert!(
        handed.contains(&jobs[2].export_id),
        "a job never handed is handed, however late"
    );
    assert!(repairs.hand_offs_dropped >= 1, "{repairs:?}");
}
