//! What must hold in the soak: bounds of each invocation (local disk, heap), no job overdue
//! after a sweep, and at the end every record, schedule, file and message true.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use exporter_adapters::scheduler::schedule_name;
use exporter_core::domain::job::{JobKey, JobStatus};
use exporter_core::domain::request::Item;
use exporter_core::domain::{ExportId, ExportStatus, RunEvent, Schedule};
use exporter_core::ports::{FileStore, JobHistory, JobSpread, RunSchedules, Sweep};
use integration_tests::reader_server::LatePoint;
use integration_tests::Fixture;

/// The heap in use and its peak since the last reset (the soak's process: runs, the local
/// reader and chat servers), to bound what one invocation holds.
pub(super) struct CountingAlloc;

pub(super) static HEAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
pub(super) static HEAP_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let now = HEAP.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
pub(super) static ALLOCATOR: CountingAlloc = CountingAlloc;

/// The CSVs a fault-free run may write for `[from, to)` of a wide item of the fixture's series
/// (a value a minute, the same for any name), in Rome's time (computed independently here): a
/// row per time any target has, with each target's value (or its change, none for its first),
/// or a row per five minutes with each target's highest. Each target is read on its own, so a
/// point that arrived late during the reads (`late`) is in any subset of the targets' series:
/// one file per way it can be.
pub(super) fn wide_files(
    item: &Item,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    late: &[LatePoint],
) -> Vec<String> {
    let targets = item.targets();
    let labels: Vec<&str> = targets.iter().map(|(n, l)| l.unwrap_or(n.as_str())).collect();
    let at = |t: i64| {
        chrono_tz::Europe::Rome
            .timestamp_opt(t, 0)
            .single()
            .expect("an instant")
            .to_rfc3339()
    };
    let minutes: Vec<(i64, f64)> = (from.timestamp()..to.timestamp())
        .step_by(60)
        .map(|t| {
            (
                t,
                integration_tests::expected_value((t - integration_tests::READER_START) / 60),
            )
        })
        .collect();
    let late: Vec<&LatePoint> = late
        .iter()
        .filter(|p| (from.timestamp()..to.timestamp()).contains(&p.time))
        .collect();
    assert!(
        late.len() <= 4,
        "too many late points in one window to try every way"
    );
    let mut files = Vec::new();
    for seen in 0u32..1 << (late.len() * targets.len()) {
        // Each target's cells by time: its value, its change, or its bucket's highest.
        let cells: Vec<BTreeMap<i64, String>> = (0..targets.len())
            .map(|k| {
                let mut points = minutes.clone();
                for (j, p) in late.iter().enumerate() {
                    if seen & (1 << (k * late.len() + j)) != 0 {
                        points.push((p.time, p.value));
                    }
                }
                points.sort_by_key(|p| p.0);
                match (item.decimation, item.transform) {
                    (Some(_), _) => {
                        let mut highest: BTreeMap<i64, f64> = BTreeMap::new();
                        for (t, v) in points {
                            let h = highest.entry(t - t.rem_euclid(300)).or_insert(f64::NEG_INFINITY);
                            *h = h.max(v);
                        }
                        highest.into_iter().map(|(t, v)| (t, v.to_string())).collect()
                    }
                    (None, Some(_)) => {
                        let mut previous: Option<f64> = None;
                        points
                            .into_iter()
                            .map(|(t, v)| {
                                let change = previous.map(|p| (v - p).to_string()).unwrap_or_default();
                                previous = Some(v);
                                (t, change)
                            })
                            .collect()
                    }
                    (None, None) => points.into_iter().map(|(t, v)| (t, v.to_string())).collect(),
                }
            })
            .collect();
        let times: std::collections::BTreeSet<i64> = cells.iter().flat_map(|c| c.keys().copied()).collect();
        let mut file = format!("Time,{}\r\n", labels.join(","));
        for t in times {
            let row: Vec<&str> = cells
                .iter()
                .map(|c| c.get(&t).map_or("", String::as_str))
                .collect();
            file += &format!("{},{}\r\n", at(t), row.join(","));
        }
        files.push(file);
    }
    files
}

/// The CSV a fault-free run writes for `[from, to)` of the fixture's series: a header, and a
/// row a minute in Rome's time with the local reader's value (computed independently here).
/// `late` are the points that arrived late (during reads): each row of the window, with whether
/// it is a late one (a file holds it when it arrived before its slice was read).
pub(super) fn expected_rows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    late: &[LatePoint],
) -> Vec<(String, bool)> {
    let mut points: Vec<(i64, f64, bool)> = Vec::new();
    let mut t = from.timestamp();
    while t < to.timestamp() {
        let value = integration_tests::expected_value((t - integration_tests::READER_START) / 60);
        points.push((t, value, false));
        t += 60;
    }
    points.extend(
        late.iter()
            .filter(|p| (from.timestamp()..to.timestamp()).contains(&p.time))
            .map(|p| (p.time, p.value, true)),
    );
    points.sort_by_key(|p| p.0);
    points
        .into_iter()
        .map(|(t, value, late)| {
            let local = chrono_tz::Europe::Rome
                .timestamp_opt(t, 0)
                .single()
                .expect("an instant");
            (format!("{},{value}", local.to_rfc3339()), late)
        })
        .collect()
}

/// The local disk a run may fill in one invocation (`RUN_MAX_LOCAL_BYTES`), scaled down:
/// smaller than a one-time export's three files together.
pub(super) const LOCAL_DISK: u64 = 48 * 1024;
/// The most heap one invocation may add (the run, and the local reader serving it).
pub(super) const HEAP_BOUND: usize = 64 * 1024 * 1024;

/// What invocations held, and the checks made while the soak ran.
#[derive(Default)]
pub(super) struct Bounds {
    pub(super) disk: u64,
    pub(super) heap: usize,
    pub(super) invocations: usize,
    pub(super) overdue_checks: usize,
}

impl Bounds {
    /// Runs `run`, measuring the peak of the local disk under `dir` and of the heap it added.
    pub(super) async fn measure<F: std::future::Future>(
        &self,
        dir: &std::path::Path,
        run: F,
    ) -> (F::Output, u64, usize) {
        let base = HEAP.load(Ordering::SeqCst);
        HEAP_PEAK.store(base, Ordering::SeqCst);
        let (out, disk) = integration_tests::peak_disk(dir, run).await;
        (out, disk, HEAP_PEAK.load(Ordering::SeqCst).saturating_sub(base))
    }

    /// An invocation's peaks: within the configured bounds.
    pub(super) fn note(&mut self, disk: u64, heap: usize) {
        // The local file of one item (up to the configured bound, then it pauses), and the tail
        // it carried over from the leg before (less than a part, here less than a file).
        assert!(
            disk <= 2 * LOCAL_DISK + 64 * 1024,
            "an invocation held {disk} bytes of local disk"
        );
        assert!(heap <= HEAP_BOUND, "an invocation added {heap} bytes of heap");
        self.disk = self.disk.max(disk);
        self.heap = self.heap.max(heap);
        self.invocations += 1;
    }

    /// Right after a sweep: no job is left unfinished an hour past its lease and the grace
    /// (the sweep ended it, or relaunched what goes on). Spread jobs are their items'.
    pub(super) async fn no_job_overdue(&mut self, fx: &Fixture, now: DateTime<Utc>, grace: TimeDelta) {
        // Read from the table itself, not from the sweep's index the sweep read: a job missing
        // from the index is what this must catch.
        use aws_sdk_dynamodb::types::AttributeValue;
        let before = (now - grace - TimeDelta::hours(1)).timestamp();
        let mut pages = fx
            .dynamo
            .scan()
            .table_name(&fx.table)
            .filter_expression(
                "begins_with(sk, :job) AND #status IN (:waiting, :running) AND leaseUntil < :before \
                 AND attribute_not_exists(#items)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#items", "items")
            .expression_attribute_values(":job", AttributeValue::S("JOB#".into()))
            .expression_attribute_values(
                ":waiting",
                AttributeValue::S(JobStatus::NotProcessed.as_str().into()),
            )
            .expression_attribute_values(
                ":running",
                AttributeValue::S(JobStatus::InProgress.as_str().into()),
            )
            .expression_attribute_values(":before", AttributeValue::N(before.to_string()))
            .into_paginator()
            .send();
        let mut overdue = Vec::new();
        while let Some(page) = pages.next().await {
            for item in page.expect("scans").items() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).cloned();
                overdue.push((
                    text("pk"),
                    text("sk"),
                    text("status"),
                    number("leg"),
                    number("attempts"),
                    number("leaseUntil"),
                ));
            }
        }
        assert!(
            overdue.is_empty(),
            "jobs left unfinished past their lease and the grace: {overdue:?}"
        );
        self.overdue_checks += 1;
    }
}

/// Records the files (and zips) of every job done so far, with their export.
pub(super) async fn remember_done(fx: &Fixture, seen: &mut BTreeMap<String, ExportId>) {
    for export in fx.store.every_export().await.expect("scans") {
        for job in fx.store.jobs(&export.id).await.expect("jobs") {
            if job.status != JobStatus::Done {
                continue;
            }
            for file in job.detail.files.iter().chain(job.detail.archive.as_ref()) {
                seen.insert(file.key.clone(), export.id);
            }
        }
    }
}

/// The invariants at the end of the soak, each counted as it is checked.
/// A chain its owner paused (`from`), and resumed (`to`) unless it stayed paused.
#[derive(Clone, Copy, Debug)]
pub(super) struct Paused {
    pub id: ExportId,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

pub(super) async fn hold(
    fx: &Fixture,
    now: DateTime<Utc>,
    late: &[LatePoint],
    (done_seen, paused): (&BTreeMap<String, ExportId>, Option<Paused>),
) -> BTreeMap<&'static str, usize> {
    let mut checked = BTreeMap::<&str, usize>::new();
    let exports = fx.store.every_export().await.expect("scans");
    let armed: HashSet<ExportId> = fx.schedules.armed().await.expect("lists").into_iter().collect();
    for export in &exports {
        let jobs = fx.store.jobs(&export.id).await.expect("jobs");
        for job in &jobs {
            let runs = match &job.spread {
                Some(_) => fx
                    .store
                    .item_runs(&JobKey {
                        export_id: export.id,
                        scheduled_at: job.scheduled_at,
                    })
                    .await
                    .expect("item runs"),
                None => Vec::new(),
            };
            assert!(
                matches!(
                    job.status,
                    JobStatus::Done | JobStatus::Failed | JobStatus::Expired | JobStatus::Skipped
                ),
                "{}: job {} left {:?}: attempts {}, leg {}, spread {:?}, item runs {runs:?}",
                export.id,
                job.job_id,
                job.status,
                job.attempts,
                job.leg,
                job.spread
            );
            assert!(
                job.status != JobStatus::Failed || job.detail.error.is_some(),
                "a failure has its reason"
            );
            *checked
                .entry("jobs finished, failures with their reason")
                .or_default() += 1;
        }
        let live = export.deleted_at.is_none();
        // A paused chain ran nothing while paused: its occurrences then are on record skipped;
        // still paused, it is not armed.
        if let Some(p) = paused.filter(|p| p.id == export.id && live) {
            for job in &jobs {
                if job.scheduled_at > p.from && p.to.is_none_or(|to| job.scheduled_at <= to) {
                    assert_eq!(
                        job.status,
                        JobStatus::Skipped,
                        "{}: job {} ran while its export was paused",
                        export.id,
                        job.job_id
                    );
                    *checked
                        .entry("occurrences while paused skipped, none run")
                        .or_default() += 1;
                }
            }
            if p.to.is_none() {
                assert_eq!(export.status, ExportStatus::Paused);
                assert!(!armed.contains(&export.id), "{}: a paused chain armed", export.id);
                *checked.entry("paused chains not armed").or_default() += 1;
            }
        }
        if live && export.request.schedule == Schedule::OneTime && export.status != ExportStatus::Creating {
            let job = jobs
                .first()
                .unwrap_or_else(|| panic!("{}: a one-time export never ran", export.id));
            let settled = match job.status {
                JobStatus::Done => ExportStatus::Done,
                _ => ExportStatus::Failed,
            };
            assert_eq!(export.status, settled, "{}: settled as its job ended", export.id);
            *checked
                .entry("one-time exports settled as their job")
                .or_default() += 1;
        }
        match export.request.schedule {
            Schedule::Recurring(recurrence) if live && export.status == ExportStatus::Scheduled => {
                let (first, _) = recurrence
                    .next_after(export.created_at)
                    .expect("a first occurrence");
                let (next, at) = recurrence
                    .next_after(now - TimeDelta::seconds(60))
                    .expect("a next occurrence");
                let scheduled: HashSet<DateTime<Utc>> = jobs.iter().map(|j| j.scheduled_at).collect();
                for k in first..next {
                    let t = recurrence.occurrence(k).expect("in range");
                    let t = DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range");
                    assert!(
                        scheduled.contains(&t),
                        "{}: occurrence {k} ({t}) has no job; created {}, next run {:?}, jobs {:?}",
                        export.id,
                        export.created_at,
                        export.next_run_at,
                        jobs.iter()
                            .map(|j| (j.scheduled_at.to_string(), j.status, j.detail.error.clone()))
                            .collect::<Vec<_>>()
                    );
                    *checked.entry("due occurrences with exactly one job").or_default() += 1;
                }
                assert!(armed.contains(&export.id), "{}: live chain not armed", export.id);
                let schedule = fx
                    .scheduler
                    .get_schedule()
                    .group_name(&fx.group)
                    .name(schedule_name(&export.id))
                    .send()
                    .await
                    .expect("armed");
                let event: RunEvent =
                    serde_json::from_str(schedule.target().and_then(|t| t.input()).expect("an input"))
                        .expect("an event");
                assert_eq!(
                    event.occurrence,
                    Some(next),
                    "{}: armed at its true next occurrence",
                    export.id
                );
                assert_eq!(
                    export.next_run_at.map(|t| t.timestamp_millis()),
                    Some(at.timestamp_millis())
                );
                *checked
                    .entry("live chains armed at their true next occurrence")
                    .or_default() += 1;
            }
            _ => {
                assert!(
                    !armed.contains(&export.id),
                    "{}: a schedule outlives its export",
                    export.id
                );
                *checked
                    .entry("finished or deleted exports without a schedule")
                    .or_default() += 1;
            }
        }
    }
    // Files: every one belongs to a done job, and each done job's file holds its whole window
    // (ten minutes of a chain's occurrence, a day for a one-time export) byte for byte as a
    // fault-free run writes it: every point once, in order, and each late point either in it
    // (it arrived before its slice was read) or not (it came after), never twice or misplaced.
    let done_files: HashSet<String> = {
        let mut keys = HashSet::new();
        for export in &exports {
            for job in fx.store.jobs(&export.id).await.expect("jobs") {
                if job.status != JobStatus::Done {
                    continue;
                }
                // A row a minute of the window, and the late points it held.
                let whole = |from: DateTime<Utc>, to: DateTime<Utc>| {
                    usize::try_from((to - from).num_minutes()).unwrap_or(0)
                };
                // A decimated item's series for the email's chart stays beside the files.
                for (index, item) in export.request.items.iter().enumerate() {
                    if item.decimation.is_some() {
                        keys.insert(exporter_core::domain::files::chart_key(
                            &export.id,
                            &job.job_id,
                            index,
                        ));
                    }
                }
                if let Some(archive) = &job.detail.archive {
                    // Opened: it holds each item's file, byte for byte, and nothing else.
                    let zip = fx.files.read(&archive.key).await.expect("the zip");
                    let mut entries = zip_entries(&zip, &archive.key);
                    let mut files = Vec::new();
                    for file in &job.detail.files {
                        files.push(fx.files.read(&file.key).await.expect("an item's file"));
                    }
                    entries.sort();
                    files.sort();
                    assert!(
                        entries == files,
                        "{}: the zip holds its items' files",
                        archive.key
                    );
                    keys.insert(archive.key.clone());
                    *checked
                        .entry("zips opened, each holding its items' files byte for byte")
                        .or_default() += 1;
                }
                for (index, file) in job.detail.files.iter().enumerate() {
                    let window = &job.detail.windows[index];
                    let from: DateTime<Utc> = window
                        .from
                        .as_deref()
                        .and_then(|t| t.parse().ok())
                        .expect("a start");
                    let to: DateTime<Utc> = window.to.parse().expect("an end");
                    let bytes = fx.files.read(&file.key).await.expect("the file");
                    let workbook = file.key.ends_with(".xlsx");
                    // A workbook is opened and its data sheet read as the CSV it must equal.
                    let got = if workbook {
                        workbook_as_csv(&bytes, &file.key)
                    } else {
                        String::from_utf8_lossy(&bytes).into_owned()
                    };
                    let item = &export.request.items[index];
                    if item.is_wide() {
                        let candidates = wide_files(item, (from, to), late);
                        assert!(
                            candidates.contains(&got),
                            "{}: {got:?} is none of {candidates:?}",
                            file.key
                        );
                        assert_eq!(
                            file.rows,
                            got.lines().count() as u64 - 1,
                            "{}: rows recorded",
                            file.key
                        );
                        *checked.entry("wide files (raw, deltas, decimated)").or_default() += 1;
                        keys.insert(file.key.clone());
                        continue;
                    }
                    let held: HashSet<&str> = got.lines().collect();
                    let rows: Vec<String> = expected_rows(from, to, late)
                        .into_iter()
                        .filter(|(row, late)| !late || held.contains(row.as_str()))
                        .map(|(row, _)| row)
                        .collect();
                    let late_held = rows.len().saturating_sub(whole(from, to));
                    let expected = format!("Time,Value\r\n{}\r\n", rows.join("\r\n"));
                    assert_eq!(got, expected, "{}", file.key);
                    assert_eq!(file.rows, rows.len() as u64, "{}: rows recorded", file.key);
                    *checked
                        .entry(if workbook {
                            "workbooks opened, their cells equal to a fault-free run"
                        } else {
                            "files equal to a fault-free run, byte for byte"
                        })
                        .or_default() += 1;
                    *checked.entry("late points in files, once each").or_default() += late_held;
                    keys.insert(file.key.clone());
                }
            }
        }
        keys
    };
    for key in fx.objects().await {
        if !done_files.contains(&key) {
            let mut found = Vec::new();
            for export in &exports {
                for job in fx.store.jobs(&export.id).await.expect("jobs") {
                    if key.contains(&job.job_id) && key.contains(&export.id.to_string()) {
                        found.push(format!(
                            "{:?} attempts {} error {:?} deleted {:?}",
                            job.status, job.attempts, job.detail.error, export.deleted_at
                        ));
                    }
                }
            }
            panic!("{key}: a file of no done job; its job: {found:?}");
        }
        *checked.entry("stored files of done jobs only").or_default() += 1;
    }
    // Messages: each done job's success message and each failed job's failure message went out
    // once, or its failure is recorded; a job that never ran (recorded missed) sends nothing.
    let posts: Vec<String> = fx
        .chat_state
        .captured()
        .into_iter()
        .filter(|c| c.path.starts_with("/slack/soak") && c.answered == 200)
        .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
        .collect();
    for export in exports.iter().filter(|e| !e.request.messages.is_empty()) {
        for job in fx.store.jobs(&export.id).await.expect("jobs") {
            let posted = |outcome: &str| {
                posts
                    .iter()
                    .filter(|t| t.contains(&format!("{outcome} job {} of {}", job.job_id, export.id)))
                    .count()
            };
            let message = match job.status {
                JobStatus::Done => 0,
                JobStatus::Failed if job.attempts == 0 => {
                    assert_eq!(
                        posted("failed") + posted("ok"),
                        0,
                        "{}: recorded missed, never sent",
                        job.job_id
                    );
                    *checked.entry("missed occurrences silent").or_default() += 1;
                    continue;
                }
                JobStatus::Failed if export.deleted_at.is_none() => 1,
                _ => continue,
            };
            let sent = posted(if message == 0 { "ok" } else { "failed" });
            let recorded = job
                .deliveries
                .iter()
                .find(|d| d.message == message)
                .map(|d| d.status.as_str());
            match recorded {
                Some("sent") => assert_eq!(sent, 1, "{}: sent once", job.job_id),
                Some("failed") => assert_eq!(sent, 0, "{}: a recorded failure was not sent", job.job_id),
                other => panic!(
                    "{} of {}: message neither sent nor recorded failed: {other:?}; attempts {}, deleted {:?}, deliveries {:?}",
                    job.job_id, export.id, job.attempts, export.deleted_at, job.deliveries
                ),
            }
            *checked
                .entry("messages sent once or recorded failed")
                .or_default() += 1;
        }
    }
    // The files of every job ever seen done are still there (unless its export was deleted).
    let stored: HashSet<String> = fx.objects().await.into_iter().collect();
    for (key, id) in done_seen {
        let deleted = exports.iter().any(|e| e.id == *id && e.deleted_at.is_some());
        assert!(
            deleted || stored.contains(key),
            "{key}: a done job's file was deleted"
        );
        *checked.entry("done jobs' files never deleted").or_default() += 1;
    }
    let open = fx.open_upload_keys().await;
    if !open.is_empty() {
        let mut found = Vec::new();
        for export in &exports {
            for job in fx.store.jobs(&export.id).await.expect("jobs") {
                if open
                    .iter()
                    .any(|key| key.contains(&job.job_id) && key.contains(&export.id.to_string()))
                {
                    found.push(format!(
                        "{:?} attempts {} leg {} spread {:?} error {:?} deleted {:?} items {}",
                        job.status,
                        job.attempts,
                        job.leg,
                        job.spread,
                        job.detail.error,
                        export.deleted_at,
                        export.request.items.len()
                    ));
                }
            }
        }
        panic!("uploads left open: {open:?}; their jobs: {found:?}");
    }
    *checked.entry("no multipart upload left open").or_default() += 1;
    let mut queued: BTreeMap<String, i64> = BTreeMap::new();
    for export in exports
        .iter()
        .filter(|e| e.deleted_at.is_none() && e.status.counts_against_quota())
    {
        *queued.entry(export.owner.clone()).or_default() += 1;
    }
    for (owner, counter) in fx
        .store
        .quotas(Utc::now() + TimeDelta::days(1))
        .await
        .expect("counters")
    {
        assert_eq!(
            counter,
            queued.get(&owner).copied().unwrap_or(0),
            "{owner}'s counter"
        );
        *checked.entry("quota counters equal to the records").or_default() += 1;
    }
    checked
}

/// Every entry of the zip `bytes`, read whole.
fn zip_entries(bytes: &[u8], key: &str) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{key}: not a zip: {e}"));
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("an entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("its bytes");
            content
        })
        .collect()
}

/// A workbook's first sheet as the CSV a fault-free run writes: text as it is, numbers as
/// the shortest decimal, date-times as RFC 3339 times in Rome (in the repeated autumn hour, the
/// first instant not before the row above's: the rows are in time order).
fn workbook_as_csv(bytes: &[u8], key: &str) -> String {
    use calamine::{Data, DataType, Reader, Xlsx};
    use chrono::SubsecRound;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("{key}: not a workbook: {e}"));
    let first = book.sheet_names().first().cloned().expect("a sheet");
    let sheet = book.worksheet_range(&first).expect("its cells");
    let mut text = String::new();
    let mut last: Option<chrono::DateTime<chrono_tz::Tz>> = None;
    for row in sheet.rows() {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| match cell {
                Data::String(s) => s.clone(),
                Data::Float(v) => v.to_string(),
                Data::Int(v) => v.to_string(),
                Data::Empty => String::new(),
                other => {
                    let local = other
                        .as_datetime()
                        .unwrap_or_else(|| panic!("{key}: an unexpected cell {other:?}"))
                        .round_subsecs(0);
                    let instant = match chrono_tz::Europe::Rome.from_local_datetime(&local) {
                        chrono::LocalResult::Single(t) => t,
                        chrono::LocalResult::Ambiguous(early, late) => {
                            if last.is_some_and(|l| l > early) {
                                late
                            } else {
                                early
                            }
                        }
                        chrono::LocalResult::None => panic!("{key}: {local} is no time in Rome"),
                    };
                    last = Some(instant);
                    instant.to_rfc3339()
                }
            })
            .collect();
        text += &cells.join(",");
        text += "\r\n";
    }
    text
}
