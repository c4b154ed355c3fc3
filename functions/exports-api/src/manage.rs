//! The owner's changes of an export once it exists: an edit (`PATCH /exports/{id}`, a JSON merge
//! patch checked like a create, guarded by `ETag`/`If-Match`), a pause and a resume of a
//! recurring export, and an extra job run now. Each is one conditional write of the export's next version; the schedule
//! follows it (a failure there is repaired by the reconciler or by the next trigger).

use chrono::{DateTime, Datelike, Utc};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use exporter_core::domain::job::{JobEnd, JobKey};
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::domain::{
    Export, ExportStatus, Extra, ExtraWindow, Problem, Recurrence, RunEvent, Schedule,
};

use crate::identity::Identity;
use crate::{body_json, check_channels, checked_request, json_response, visible, ApiError, Deps};

/// What an edit may change; `type` stays (a one-time export runs once when created).
const EDITABLE: [&str; 6] = [
    "items",
    "format",
    "notification",
    "periodicity",
    "periodStart",
    "tags",
];

/// The most skipped occurrences a resume records (the most recent ones).
const MAX_SKIPPED: u64 = 1000;

/// The export's JSON with its `ETag`.
pub(crate) fn with_etag(status: u16, export: &Export) -> Response<Body> {
    let mut response = json_response(status, &export.to_json());
    if let Ok(value) = export.etag().parse() {
        response.headers_mut().insert("etag", value);
    }
    response
}

/// `If-Match`, when sent, must name the stored version (`*` names any); else `412`.
fn check_if_match(request: &Request, export: &Export) -> Result<(), ApiError> {
    let Some(header) = request.headers().get("if-match") else {
        return Ok(());
    };
    let text = header.to_str().unwrap_or_default();
    let etag = export.etag();
    let matches = text
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag);
    if matches {
        Ok(())
    } else {
        Err(ApiError::Stale(etag))
    }
}

/// The recurring export's recurrence, or `409` for a one-time export.
fn recurrence_of(export: &Export, what: &str) -> Result<Recurrence, ApiError> {
    match export.request.schedule {
        Schedule::Recurring(recurrence) => Ok(recurrence),
        Schedule::OneTime => Err(ApiError::Conflict(format!(
            "a one-time export runs once, when it is created: it cannot be {what}; create another, or run it again with POST /exports/{}/runs",
            export.id
        ))),
    }
}

/// The caller's recurring export `id` to change, at the version `If-Match` names (when sent),
/// with its recurrence: `404`, `412`, or `409` for a one-time export.
async fn changing(
    deps: Deps<'_>,
    (who, id, request): (&Identity, &str, &Request),
    what: &str,
) -> Result<(Export, Recurrence), ApiError> {
    let export = visible(deps, who, id).await?;
    check_if_match(request, &export)?;
    let recurrence = recurrence_of(&export, what)?;
    Ok((export, recurrence))
}

/// Whether a pause or a resume moves `export` from `from` to `to`: `true` to change it,
/// `false` when it is at `to` already (the change is answered as done), else `409`.
fn moves(export: &Export, (from, to): (ExportStatus, ExportStatus), verb: &str) -> Result<bool, ApiError> {
    match export.status {
        status if status == from => Ok(true),
        status if status == to => Ok(false),
        other => Err(ApiError::Conflict(format!(
            "the export is {}: only a {} export {verb}",
            other.as_str(),
            from.as_str()
        ))),
    }
}

/// The first occurrence after `now` of `recurrence`, or `400` when it has none.
/// (Stored times are RFC 3339, four-digit years: one past 9999 could not be read back.)
pub(crate) fn next_of(recurrence: &Recurrence, now: DateTime<Utc>) -> Result<(u64, DateTime<Utc>), ApiError> {
    recurrence
        .next_after(now)
        .filter(|(_, at)| at.year() <= 9999)
        .ok_or_else(|| {
            ApiError::Invalid(vec![Problem::new(
                "/periodicity",
                "has no next occurrence before the year 10000 (with `periodStart`)",
            )])
        })
}

/// Writes `revised` (the next version of the export read); `412` when another change came
/// first.
async fn revise(deps: Deps<'_>, revised: &Export, moves_chain: bool) -> Result<(), ApiError> {
    if deps.lifecycle.revise(revised, moves_chain).await? {
        Ok(())
    } else {
        let stored = deps.exports.get(&revised.id).await?;
        Err(match stored {
            Some(export) if export.deleted_at.is_none() => ApiError::Stale(export.etag()),
            _ => ApiError::NotFound,
        })
    }
}

/// Arms `event`; a failure is logged, not answered: the change is stored, and the reconciler
/// (or the old trigger, which finds the new definition) arms the chain again.
async fn arm(deps: Deps<'_>, event: &RunEvent) {
    if let Err(e) = deps.schedules.arm(event).await {
        tracing::error!(export_id = %event.export_id, error = %e, "could not arm the changed export; the reconciler arms it");
    }
}

/// `PATCH /exports/{id}`: a JSON merge patch (RFC 7396) of the request as the API prints it,
/// limited to what an edit may change, checked exactly like a create (every problem, with its
/// pointer). A change of the schedule (periodicity, start, timezone) moves the chain to the next
/// occurrence after now of the edited definition; the jobs already recorded stay.
pub(crate) async fn edit(
    deps: Deps<'_>,
    who: &Identity,
    id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (export, before) = changing(deps, (who, id, request), "edited").await?;
    let patch = body_json(deps, request)?;
    let Value::Object(fields) = &patch else {
        return Err(ApiError::Invalid(vec![Problem::new(
            "",
            "must be a JSON object: a merge patch (RFC 7396) of the export",
        )]));
    };
    if fields.is_empty() {
        return Err(ApiError::Invalid(vec![Problem::new(
            "",
            format!("an edit changes at least one of {}", EDITABLE.join(", ")),
        )]));
    }
    let refused: Vec<Problem> = fields
        .keys()
        .filter(|k| !EDITABLE.contains(&k.as_str()))
        .map(|k| {
            Problem::new(
                format!("/{k}"),
                match k.as_str() {
                    "type" => "cannot be changed: create another export".to_owned(),
                    "id" | "status" | "createdAt" | "updatedAt" | "deletedAt" | "nextRunAt" | "version" => {
                        "is kept by the service and cannot be changed".to_owned()
                    }
                    _ => format!(
                        "is not a field an edit changes; it changes {}",
                        EDITABLE.join(", ")
                    ),
                },
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::Invalid(refused));
    }
    let mut merged = export.request.to_json();
    json_patch::merge(&mut merged, &patch);
    let now = deps.clock.now();
    let parsed = checked_request(deps, who, &merged, now)?;
    check_channels(deps, who, &parsed).await?;
    let Schedule::Recurring(after) = parsed.schedule else {
        return Err(ApiError::Internal(
            "an edit made a recurring export one-time".into(),
        ));
    };
    // A paused export stays paused (it arms when resumed); a new schedule moves the chain.
    let moved = export.status == ExportStatus::Scheduled && after != before;
    let export_next = export.next_run_at;
    let next = if moved { Some(next_of(&after, now)?) } else { None };
    let revised = Export {
        request: parsed,
        updated_at: now,
        version: export.version + 1,
        next_run_at: next.map(|(_, at)| at).or(export.next_run_at),
        ..export
    };
    revise(deps, &revised, moved).await?;
    if let Some((k, at)) = next {
        arm(deps, &RunEvent::occurrence(revised.id, k, at)).await;
        // An occurrence due before the edit whose trigger had not come yet (it settles, or is
        // retried) is replaced: it goes on record as not run.
        if let Some(due) = export_next.filter(|t| *t <= now) {
            let job = JobKey {
                export_id: revised.id,
                scheduled_at: due,
            };
            let end = JobEnd::failed(
                "not run: its export's schedule was edited before its trigger came".into(),
                exporter_core::domain::job::JobDetail::default(),
                now,
                deps.config.retention,
            );
            if let Err(e) = deps.ends.record_unrun(&job, &end).await {
                tracing::warn!(export_id = %revised.id, error = %e, "could not record the occurrence an edit replaced");
            }
        }
    }
    tracing::info!(export_id = %revised.id, version = revised.version, moved, "export edited");
    Ok(with_etag(200, &revised))
}

/// `POST /exports/{id}/pause`: a scheduled recurring export stops; nothing is armed, nothing
/// runs, the reconciler leaves it alone.
pub(crate) async fn pause(
    deps: Deps<'_>,
    who: &Identity,
    id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (export, _) = changing(deps, (who, id, request), "paused").await?;
    if !moves(&export, (ExportStatus::Scheduled, ExportStatus::Paused), "pauses")? {
        return Ok(with_etag(200, &export));
    }
    let now = deps.clock.now();
    let revised = Export {
        status: ExportStatus::Paused,
        next_run_at: None,
        updated_at: now,
        version: export.version + 1,
        ..export
    };
    revise(deps, &revised, true).await?;
    if let Err(e) = deps.schedules.disarm(&revised.id).await {
        // A trigger that fires anyway finds the export paused and runs nothing.
        tracing::warn!(export_id = %revised.id, error = %e, "could not remove the schedule of a paused export; the reconciler removes it");
    }
    tracing::info!(export_id = %revised.id, "export paused");
    Ok(with_etag(200, &revised))
}

/// `POST /exports/{id}/resume`: a paused export arms at its next occurrence after now; the
/// occurrences that passed without a job (while it was paused) are recorded `skipped` (the most
/// recent [`MAX_SKIPPED`]), not caught up.
pub(crate) async fn resume(
    deps: Deps<'_>,
    who: &Identity,
    id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (export, recurrence) = changing(deps, (who, id, request), "resumed").await?;
    if !moves(
        &export,
        (ExportStatus::Paused, ExportStatus::Scheduled),
        "resumes",
    )? {
        return Ok(with_etag(200, &export));
    }
    let now = deps.clock.now();
    let (k, at) = next_of(&recurrence, now)?;
    let revised = Export {
        status: ExportStatus::Scheduled,
        next_run_at: Some(at),
        updated_at: now,
        version: export.version + 1,
        ..export
    };
    revise(deps, &revised, true).await?;
    arm(deps, &RunEvent::occurrence(revised.id, k, at)).await;
    // From the occurrence after the newest one on record (an occurrence due just before the
    // pause whose trigger never came has no job either), else after the create.
    let newest = deps
        .history
        .recent_jobs(&revised.id, None, crate::MAX_JOBS_PAGE)
        .await?
        .into_iter()
        .find(|j| recurrence.index_of(j.scheduled_at).is_some())
        .map_or(revised.created_at, |j| j.scheduled_at);
    let first = recurrence.next_after(newest).map_or(k, |(first, _)| first);
    let end = JobEnd::skipped(now, deps.config.retention);
    for j in first.max(k.saturating_sub(MAX_SKIPPED))..k {
        let Some(scheduled_at) = recurrence.occurrence(j) else {
            continue;
        };
        let job = JobKey {
            export_id: revised.id,
            scheduled_at,
        };
        if let Err(e) = deps.ends.record_unrun(&job, &end).await {
            tracing::warn!(export_id = %revised.id, occurrence = j, error = %e, "could not record a skipped occurrence");
        }
    }
    tracing::info!(export_id = %revised.id, skipped = k.saturating_sub(first), "export resumed");
    Ok(with_etag(200, &revised))
}

/// `POST /exports/{id}/runs`: an extra job of the export now, outside its chain, for the window
/// given (`from`/`to`, Unix seconds, both or neither, not in the future), else for its latest
/// occurrence's (a recurring export) or its items' own as of now (a one-time export). Counted
/// against the owner's budgets and notified like any job; `202` with the job's id.
pub(crate) async fn run_now(
    deps: Deps<'_>,
    who: &Identity,
    id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let export = visible(deps, who, id).await?;
    let now = deps.clock.now();
    // Job ids (and the trigger's time) are to the millisecond; one that is an occurrence's
    // moves a millisecond on, so that the extra job is never taken for the chain's.
    let mut scheduled_at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    if let Schedule::Recurring(recurrence) = export.request.schedule {
        if recurrence.index_of(scheduled_at).is_some() {
            scheduled_at += chrono::TimeDelta::milliseconds(1);
        }
    }
    let window = extra_window(deps, request, now)?;
    let occurrence =
        match (window, export.request.schedule) {
            (Some(_), _) | (None, Schedule::OneTime) => None,
            (None, Schedule::Recurring(recurrence)) => match next_of(&recurrence, now)?.0.checked_sub(1) {
                Some(k) if k >= 1 => Some(k),
                _ => return Err(ApiError::Conflict(
                    "no occurrence of this export has passed yet: give the window to run, `from` and `to`"
                        .into(),
                )),
            },
        };
    let event = RunEvent {
        export_id: export.id,
        scheduled_at,
        occurrence,
        leg: None,
        item: None,
        extra: Some(Extra { window }),
    };
    deps.launcher.launch(&event).await?;
    tracing::info!(export_id = %export.id, job_id = event.job_id(), "extra job launched");
    let body = serde_json::json!({
        "exportId": export.id.to_string(),
        "jobId": event.job_id(),
        "scheduledAt": rfc3339(scheduled_at),
        "occurrence": occurrence,
        "window": window.map(|w| serde_json::json!({"from": rfc3339(w.from), "to": rfc3339(w.to)})),
    });
    Ok(json_response(202, &body))
}

/// The window of a run now: an empty body, or `{"from", "to"}` in Unix seconds, `from`
/// before `to`, `to` not after now.
fn extra_window(
    deps: Deps<'_>,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Option<ExtraWindow>, ApiError> {
    let empty = match request.body() {
        Body::Empty => true,
        Body::Text(text) => text.trim().is_empty(),
        Body::Binary(bytes) => bytes.iter().all(u8::is_ascii_whitespace),
        _ => true,
    };
    if empty {
        return Ok(None);
    }
    let body = body_json(deps, request)?;
    let Value::Object(fields) = &body else {
        return Err(ApiError::Invalid(vec![Problem::new(
            "",
            "must be a JSON object: {\"from\", \"to\"} in Unix seconds, or empty",
        )]));
    };
    let mut problems: Vec<Problem> = fields
        .keys()
        .filter(|k| !["from", "to"].contains(&k.as_str()))
        .map(|k| Problem::new(format!("/{k}"), "unknown field; expected `from` and `to`"))
        .collect();
    let mut time = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => None,
        Some(value) => {
            let at = value
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0).round() as i64));
            if at.is_none() {
                problems.push(Problem::new(
                    format!("/{name}"),
                    "must be Unix seconds (a number from 0)",
                ));
            }
            at
        }
    };
    let (from, to) = (time("from"), time("to"));
    match (from, to) {
        (Some(from), Some(to)) if from >= to => problems.push(Problem::new(
            "/to",
            "must be later than `from` (the window is [from, to))",
        )),
        (Some(_), Some(to)) if to > now => problems.push(Problem::new(
            "/to",
            "must not be in the future: a run now reads what was stored",
        )),
        // Both or neither: both numbers, or both null (no window).
        (Some(_), None) => problems.push(Problem::new("/to", "is required with `from` (both or neither)")),
        (None, Some(_)) => problems.push(Problem::new("/from", "is required with `to` (both or neither)")),
        (None, None) if fields.contains_key("from") != fields.contains_key("to") => {
            let missing = if fields.contains_key("from") {
                "/to"
            } else {
                "/from"
            };
            problems.push(Problem::new(
                missing,
                "is required with the other end of the window (both or neither)",
            ))
        }
        _ => {}
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    Ok(from.zip(to).map(|(from, to)| ExtraWindow { from, to }))
}
