//! Items in parallel. A job of several items, once claimed and allowed to run, is spread: the
//! job records its items' counters and gives its claim back, and the first `ITEM_FAN_OUT` items
//! are launched, each as an invocation of its own (`"item": i` in the event). An item run claims
//! its item (a lease, a leg, like a job's), writes its file (pausing and continuing as a job
//! does), then records its outcome on the job and counts it in one atomic write: while items are
//! left it launches the next one not yet launched; the last one zips the files, records the job,
//! settles the export and hands off to notify. An item that fails fails the job once (a write
//! conditional on the job still running), naming the item, and removes the job's files; an item
//! that finishes after that finds the job ended and removes its own.

use exporter_core::domain::files;
use exporter_core::domain::job::{Counted, ItemRun, JobStatus};
use exporter_core::domain::{Export, RunEvent, Schedule};

use crate::checkpoint::Checkpoint;
use crate::deps::Deps;
use crate::error::JobError;
use crate::pipeline::{self, ItemProgressed};
use crate::steps::{end_job, failed_end, hand_off, remove, settle, Outcome};
use exporter_adapters::failure::Failure;

/// Spreads a claimed job over its items' runs and launches the first of them.
pub(crate) async fn spread(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    occurrence: Option<u64>,
) -> Result<Outcome, Failure> {
    let items =
        u32::try_from(export.request.items.len()).map_err(|_| Failure::permanent("too many items"))?;
    let launched = deps.config.fan_out.clamp(1, items);
    if !deps.spread.spread_job(&event.job(), items, launched).await? {
        tracing::info!(export_id = %export.id, "job spread already; its items are under way");
        return Ok(Outcome::Duplicate);
    }
    tracing::info!(export_id = %export.id, items, launched, "job spread over its items");
    let first = RunEvent {
        occurrence,
        ..event.clone()
    };
    for item in 0..launched {
        launch(deps, &first, item, None).await;
    }
    Ok(Outcome::Spread)
}

fn digest(export: &Export) -> String {
    exporter_core::domain::record::definition_digest(&export.request)
}

/// Records an item launched and launches its run (leg `leg`); a failure is logged, and the
/// reconciler launches it later.
async fn launch(deps: Deps<'_>, event: &RunEvent, item: u32, leg: Option<u32>) {
    let run = RunEvent {
        leg,
        item: Some(item),
        ..event.clone()
    };
    let launched = match deps
        .spread
        .launch_item(&event.job(), item, deps.clock.now())
        .await
    {
        Ok(()) => deps.launcher.launch(&run).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = launched {
        tracing::error!(export_id = %event.export_id, item, error, "could not launch an item's run; the reconciler will");
    }
}

/// The checkpoint of item `item`'s leg `leg`.
fn checkpoint_key(prefix: &str, item: u32, leg: u32) -> String {
    format!("{prefix}/.resume/item-{item}/leg-{leg}.json")
}

/// One item's run (or one leg of it).
pub(crate) async fn run(deps: Deps<'_>, event: RunEvent, item: u32) -> Result<Outcome, Failure> {
    let Some(export) = deps.exports.get(&event.export_id).await? else {
        tracing::info!(export_id = %event.export_id, "export missing; nothing to run");
        return Ok(Outcome::Skipped);
    };
    // An item run relaunched by the reconciler names no occurrence: its time does (kept to the
    // millisecond: the occurrence at or just after it, as an anchor may have a finer fraction).
    let event = match export.request.schedule {
        Schedule::Recurring(recurrence) if event.occurrence.is_none() => RunEvent {
            occurrence: recurrence
                .next_after(event.scheduled_at - chrono::TimeDelta::milliseconds(1))
                .map(|(k, _)| k),
            ..event
        },
        _ => event,
    };
    let leg = event.leg.unwrap_or(0);
    let now = deps.clock.now();
    if !deps
        .items
        .claim_item(&event.job(), item, leg, now, now + deps.config.lease)
        .await?
    {
        return after_duplicate(deps, &export, &event, item).await;
    }
    let ran = run_claimed(deps, &export, &event, item, leg).await;
    if ran.is_err() {
        if let Err(e) = deps.items.release_item(&event.job(), item).await {
            tracing::error!(export_id = %export.id, item, error = %e, "could not give the item back; the reconciler relaunches it once its lease passes");
        }
    }
    ran
}

/// A duplicate item event: nothing to do, unless every item is done and the job still waits
/// for its end (the last item's run died before ending it): then this one ends it; or the job
/// failed (an attempt that stored this item after another failed the job may have died before
/// removing it): then what is under its prefix goes again.
async fn after_duplicate(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    item: u32,
) -> Result<Outcome, Failure> {
    let job = deps.history.job(&event.job()).await?;
    if job.as_ref().is_some_and(|j| j.status == JobStatus::Failed) {
        remove(
            deps,
            &format!("{}/", files::job_prefix(&export.id, &event.job_id())),
        )
        .await;
        return Ok(Outcome::Duplicate);
    }
    let waiting = job.is_some_and(|j| {
        j.status == JobStatus::InProgress && j.spread.is_some_and(|s| s.left == 0 && s.items > 0)
    });
    if waiting {
        tracing::warn!(export_id = %export.id, item, "every item is done and the job never ended; ending it");
        return finish(deps, export, event, Fresh::Yes).await;
    }
    tracing::info!(export_id = %export.id, item, "item held by another attempt, done, or stale; ignored");
    Ok(Outcome::Duplicate)
}

async fn run_claimed(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    item: u32,
    leg: u32,
) -> Result<Outcome, Failure> {
    let job = event.job();
    let job_id = event.job_id();
    let prefix = files::job_prefix(&export.id, &job_id);
    let (status, spread) = match deps.history.job(&job).await? {
        Some(j) => (Some(j.status), j.spread),
        None => (None, None),
    };
    let spread = spread.filter(|_| status == Some(JobStatus::InProgress));
    let Some(spread) = spread else {
        // Another item failed the job meanwhile: nothing under its prefix is served, and an
        // earlier attempt of this item may have stored its file and died before removing it.
        // A job that ended otherwise keeps its files; only what this item left for a retry goes.
        if status == Some(JobStatus::Failed) {
            remove(deps, &format!("{prefix}/")).await;
        } else {
            remove(deps, &format!("{prefix}/.resume/item-{item}")).await;
        }
        return Ok(Outcome::Skipped);
    };
    if spread.done.contains(&item) {
        // An earlier attempt counted the item and died before marking its run done: the run is
        // marked now, never run again (a second run's failure would fail a job whose items all
        // succeeded), and the job ends when nothing is left.
        let outcomes = deps.spread.item_outcomes(&job).await?;
        if let Some((_, outcome)) = outcomes.into_iter().find(|(i, _)| *i == item) {
            deps.items
                .item_done(&job, item, &outcome, deps.clock.now())
                .await?;
        }
        return if spread.left == 0 {
            finish(deps, export, event, Fresh::Yes).await
        } else {
            Ok(Outcome::ItemDone)
        };
    }
    let resume = if leg > 0 {
        let bytes = deps
            .files
            .read(&checkpoint_key(&prefix, item, leg))
            .await
            .map_err(|e| Failure::Retryable(Box::new(e)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::permanent(format!(
                "the checkpoint of item {item}'s leg {leg} is unreadable: {e}"
            ))
        })?
    } else {
        Checkpoint {
            occurrence: event.occurrence,
            definition: Some(digest(export)),
            ..Checkpoint::default()
        }
    };
    let ran = pipeline::run_item(
        deps,
        export,
        &job_id,
        event.scheduled_at,
        item as usize,
        resume,
        leg,
    )
    .await;
    match ran {
        Ok(ItemProgressed::Paused(checkpoint)) => {
            let next = leg + 1;
            let bytes = serde_json::to_vec(&checkpoint).map_err(|e| Failure::permanent(e.to_string()))?;
            deps.files
                .put_bytes(&checkpoint_key(&prefix, item, next), bytes)
                .await
                .map_err(|e| Failure::Retryable(Box::new(e)))?;
            if !deps
                .items
                .checkpoint_item(&job, item, next, deps.clock.now())
                .await?
            {
                tracing::warn!(export_id = %export.id, item, leg, "another attempt moved the item on; this one stops");
                return Ok(Outcome::Duplicate);
            }
            // Another item may have failed the job while this one ran: no sweep relaunches an
            // item of an ended job, so if the next leg's launch were lost what this leg left
            // would stay. It goes now, with whatever else is under the job's prefix.
            let ended = deps.history.job(&job).await?.map(|j| j.status);
            if ended == Some(JobStatus::Failed) {
                tracing::info!(export_id = %export.id, item, leg, "the job failed while this item ran; its files go");
                remove(deps, &format!("{prefix}/")).await;
                return Ok(Outcome::Skipped);
            }
            launch(deps, event, item, Some(next)).await;
            Ok(Outcome::Continued)
        }
        Ok(ItemProgressed::Done(outcome)) => match deps
            .items
            .item_done(&job, item, &outcome, deps.clock.now())
            .await?
        {
            Counted::Left(0) => finish(deps, export, event, Fresh::No).await,
            Counted::Left(left) => {
                tracing::info!(export_id = %export.id, item, left, "item done");
                if let Some(next) = deps.spread.next_item(&job, spread.items).await? {
                    let first = RunEvent {
                        leg: None,
                        item: None,
                        ..event.clone()
                    };
                    launch(deps, &first, next, None).await;
                }
                Ok(Outcome::ItemDone)
            }
            Counted::Already => Ok(Outcome::ItemDone),
            Counted::JobEnded => {
                remove(deps, &outcome.file.key).await;
                remove(deps, &format!("{prefix}/.resume/item-{item}")).await;
                remove(deps, &files::chart_key(&export.id, &job_id, item as usize)).await;
                Ok(Outcome::Skipped)
            }
        },
        Err(error) => fail(deps, export, event, item, &error).await,
    }
}

/// Ends a spread job whose items are all done: its files zipped, its record written, its
/// export settled, notify handed the job. One finisher at a time: the run claims the job's
/// finisher ([`ItemRun::finisher`]); a second (a duplicate event, the reconciler's) finds it
/// held and does nothing. A finisher that fails gives its claim back for the runtime's retry.
async fn finish(deps: Deps<'_>, export: &Export, event: &RunEvent, fresh: Fresh) -> Result<Outcome, Failure> {
    let job_id = event.job_id();
    let items =
        u32::try_from(export.request.items.len()).map_err(|_| Failure::permanent("too many items"))?;
    let finisher = ItemRun::finisher(items);
    let now = deps.clock.now();
    if !deps
        .items
        .claim_item(&event.job(), finisher, 0, now, now + deps.config.lease)
        .await?
    {
        tracing::info!(export_id = %export.id, job_id, "another run is ending the job; this one stops");
        return Ok(Outcome::Duplicate);
    }
    let finished = finish_claimed(deps, export, event, fresh).await;
    if finished.is_err() || matches!(finished, Ok(Outcome::Continued)) {
        if let Err(e) = deps.items.release_item(&event.job(), finisher).await {
            tracing::error!(export_id = %export.id, job_id, error = %e, "could not give the finisher's claim back; the reconciler relaunches it once its lease passes");
        }
    }
    finished
}

/// Whether the invocation ending a spread job did nothing else before (so its zip had the
/// invocation's whole time).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    No,
}

async fn finish_claimed(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    fresh: Fresh,
) -> Result<Outcome, Failure> {
    let job_id = event.job_id();
    let outcomes = deps.spread.item_outcomes(&event.job()).await?;
    match pipeline::assemble(
        deps,
        export,
        &job_id,
        event.scheduled_at,
        event.occurrence,
        outcomes,
    )
    .await
    {
        Ok(detail) => end_job(deps, export, event, &job_id, JobStatus::Done, detail).await,
        // The last item's run ran out of time zipping: a fresh invocation ends the job (its
        // claim given back by the caller), with the whole time for the zip.
        Err(JobError::ZipOutOfTime { .. }) if fresh == Fresh::No => {
            tracing::info!(export_id = %export.id, job_id, "out of time for the zip; a fresh invocation ends the job");
            // The claim goes back first, so that the fresh invocation can take it.
            let items = u32::try_from(export.request.items.len()).unwrap_or(u32::MAX);
            if let Err(e) = deps
                .items
                .release_item(&event.job(), ItemRun::finisher(items))
                .await
            {
                tracing::error!(export_id = %export.id, job_id, error = %e, "could not give the finisher's claim back; the reconciler relaunches it once its lease passes");
            }
            launch(deps, event, event.item.unwrap_or(0), None).await;
            Ok(Outcome::Continued)
        }
        // The store failing while zipping fails this attempt, not the job: its files are
        // whole, and the retry (or the sweep's finisher) zips them again.
        Err(error @ JobError::File(_)) => {
            tracing::warn!(export_id = %export.id, job_id, error = %error, "zipping the job's files failed; the retry zips them again");
            Err(Failure::Retryable(Box::new(error)))
        }
        Err(error) => fail(deps, export, event, 0, &error).await,
    }
}

/// Fails a spread job because of item `item` (once: the first failure wins), removing the job's
/// files; a later failure only removes what is left.
async fn fail(
    deps: Deps<'_>,
    export: &Export,
    event: &RunEvent,
    item: u32,
    error: &JobError,
) -> Result<Outcome, Failure> {
    let job_id = event.job_id();
    let reason = error.to_string();
    let reason = if reason.starts_with("item ") {
        reason
    } else {
        format!("item {item}: {reason}")
    };
    tracing::warn!(export_id = %export.id, job_id, reason, "job failed");
    let end = failed_end(deps, reason);
    let finished_at = end.finished_at;
    // Once: the job's end is recorded only while it is under way, so the first failure wins.
    let first = deps.ends.finish_job(&event.job(), &end).await?;
    if !first {
        // The job ended already. Failed by another item (its removal may be why this one
        // failed): what is left goes. Done (a finisher ended it while this run failed): its
        // files are the export's, and only this item's own checkpoints go.
        let ended = deps.history.job(&event.job()).await?.map(|j| j.status);
        let prefix = files::job_prefix(&export.id, &job_id);
        if ended == Some(JobStatus::Failed) {
            remove(deps, &format!("{prefix}/")).await;
        } else {
            remove(deps, &format!("{prefix}/.resume/item-{item}")).await;
        }
        return Ok(Outcome::Skipped);
    }
    metrics::counter!(exporter_adapters::telemetry::names::JOBS_FAILED, "reason" => error.class())
        .increment(1);
    remove(deps, &format!("{}/", files::job_prefix(&export.id, &job_id))).await;
    settle(deps, export, JobStatus::Failed, finished_at).await?;
    hand_off(deps, export, &job_id).await?;
    Ok(Outcome::Failed)
}
