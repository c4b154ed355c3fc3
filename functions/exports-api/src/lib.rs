//! The exports HTTP API (spec section 2): create, list, get, status, download and delete,
//! behind API Gateway's HTTP API. The handler translates: request in, domain and ports called,
//! response out; every expected failure is an `Ok` response mapped in [`error`].

pub mod config;
pub mod error;
pub mod identity;
mod manage;
mod preview;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use exporter_adapters::telemetry::names;
use exporter_core::domain::job::{Job, JobKey, JobStatus};
use exporter_core::domain::link::{LinkError, LinkSigner, Signature};
use exporter_core::domain::{
    Export, ExportId, ExportRequest, ExportStatus, ListQuery, Problem, RunEvent, Schedule,
};
use exporter_core::ports::{
    Caller, ChannelAccess, ChannelRead, Clock, ExportLifecycle, Exports, FileStore, JobEnds, JobHistory,
    RunLauncher, RunSchedules, SeriesReader,
};

pub use config::ApiConfig;
pub use error::ApiError;
pub use identity::Identity;

/// The keys the links of messages are checked with: those read at cold start, read again
/// (at most once a minute) when a link names a key they lack, so that a rotation (a new key put
/// first, which new notify containers sign with at once) never answers `404` in warm containers.
pub struct Links {
    keys: std::sync::RwLock<LinkSigner>,
    source: Option<std::sync::Arc<dyn exporter_core::ports::LinkKeys>>,
    read_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

/// How often at most the link keys are read again for a link naming a key not held.
const LINK_KEYS_REREAD: std::time::Duration = std::time::Duration::from_secs(60);

impl Links {
    /// Keys that never change (local runs, tests).
    pub fn fixed(keys: LinkSigner) -> Self {
        Self {
            keys: std::sync::RwLock::new(keys),
            source: None,
            read_at: std::sync::Mutex::new(None),
        }
    }

    /// Keys read at cold start, read again from `source` for an unknown key.
    pub fn kept_in(keys: LinkSigner, source: std::sync::Arc<dyn exporter_core::ports::LinkKeys>) -> Self {
        Self {
            source: Some(source),
            ..Self::fixed(keys)
        }
    }

    fn held(&self) -> LinkSigner {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Checks a link's signature, reading the keys again once when it names one not held.
    pub async fn verify(
        &self,
        id: &ExportId,
        job_id: &str,
        signature: &Signature,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LinkError> {
        let held = self.held();
        if held.knows(&signature.key) {
            return held.verify(id, job_id, signature, now);
        }
        let Some(source) = &self.source else {
            return Err(LinkError::Invalid);
        };
        let due = match self.read_at.lock() {
            Ok(mut read_at) => {
                let due = read_at.is_none_or(|at| at.elapsed() >= LINK_KEYS_REREAD);
                if due {
                    *read_at = Some(std::time::Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if !due {
            return Err(LinkError::Invalid);
        }
        match source.current().await {
            Ok(fresh) => {
                tracing::info!(
                    key = signature.key,
                    "a link names a key not held: the link keys were read again"
                );
                let verdict = fresh.verify(id, job_id, signature, now);
                if let Ok(mut keys) = self.keys.write() {
                    *keys = fresh;
                }
                verdict
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the link keys again; the link is answered 404");
                Err(LinkError::Invalid)
            }
        }
    }
}

/// What the handler needs, borrowed from the composition root (or a test): exports to read and
/// to create and delete, jobs to read, the triggers, download links.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub exports: &'a dyn Exports,
    pub lifecycle: &'a dyn ExportLifecycle,
    pub history: &'a dyn JobHistory,
    /// Records occurrences skipped while an export was paused.
    pub ends: &'a dyn JobEnds,
    /// The platform's reader, for a preview's first page.
    pub reader: &'a dyn SeriesReader,
    /// Who may export which channel.
    pub access: &'a dyn ChannelAccess,
    pub schedules: &'a dyn RunSchedules,
    pub launcher: &'a dyn RunLauncher,
    pub files: &'a dyn FileStore,
    pub clock: &'a dyn Clock,
    pub config: &'a ApiConfig,
}

/// The actions of spec section 2.
pub mod actions {
    pub const CREATE: &str = "exporter:exports:create";
    pub const LIST: &str = "exporter:exports:list";
    pub const GET: &str = "exporter:exports:get";
    pub const DOWNLOAD: &str = "exporter:exports:download";
    pub const DELETE: &str = "exporter:exports:delete";
    /// Edit, pause and resume.
    pub const UPDATE: &str = "exporter:exports:update";
    /// Run an extra job now.
    pub const RUN: &str = "exporter:exports:run";
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Handles one HTTP request; never fails (errors become responses).
pub async fn handle(deps: Deps<'_>, request: Request) -> Result<Response<Body>, std::convert::Infallible> {
    let response = route(deps, &request)
        .await
        .unwrap_or_else(ApiError::into_response);
    let route = parse_route(request.uri().path()).map_or("other", |r| r.template());
    let status = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(
        names::API_REQUESTS,
        "route" => format!("{} {route}", method_name(request.method())),
        "status" => status
    )
    .increment(1);
    Ok(response)
}

enum Route {
    /// A signed link from a message: no login, the signature is the credential.
    Link(String, String),
    Exports,
    Export(String),
    Status(String),
    Download(String),
    Pause(String),
    Resume(String),
    Runs(String),
    Preview,
}

/// The method as a metric names it: one of a few.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

impl Route {
    /// The route's path with its parameters named: a few values, for a metric's dimension.
    fn template(&self) -> &'static str {
        match self {
            Route::Link(..) => "/links/{exportId}/{jobId}",
            Route::Exports => "/exports",
            Route::Export(_) => "/exports/{id}",
            Route::Status(_) => "/exports/{id}/status",
            Route::Download(_) => "/exports/{id}/download",
            Route::Pause(_) => "/exports/{id}/pause",
            Route::Resume(_) => "/exports/{id}/resume",
            Route::Runs(_) => "/exports/{id}/runs",
            Route::Preview => "/exports/preview",
        }
    }
}

fn parse_route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["exports"] => Some(Route::Exports),
        ["exports", "preview"] => Some(Route::Preview),
        ["exports", id] => Some(Route::Export((*id).to_owned())),
        ["exports", id, "status"] => Some(Route::Status((*id).to_owned())),
        ["exports", id, "download"] => Some(Route::Download((*id).to_owned())),
        ["exports", id, "pause"] => Some(Route::Pause((*id).to_owned())),
        ["exports", id, "resume"] => Some(Route::Resume((*id).to_owned())),
        ["exports", id, "runs"] => Some(Route::Runs((*id).to_owned())),
        ["links", export, job] => Some(Route::Link((*export).to_owned(), (*job).to_owned())),
        _ => None,
    }
}

async fn route(deps: Deps<'_>, request: &Request) -> Result<Response<Body>, ApiError> {
    let route = parse_route(request.uri().path());
    if let Some(Route::Link(export, job)) = &route {
        return match request.method() {
            &Method::GET => link(deps, export, job, request).await,
            _ => Err(ApiError::MethodNotAllowed("GET")),
        };
    }
    let who = Identity::of(request, deps.config.local_identity).ok_or(ApiError::MissingIdentity)?;
    let route = route.ok_or(ApiError::NotFound)?;
    let method = request.method();
    let allow = |action: &'static str| {
        if who.may(action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(action))
        }
    };
    match (route, method) {
        (Route::Exports, &Method::POST) => {
            allow(actions::CREATE)?;
            create(deps, &who, request).await
        }
        (Route::Exports, &Method::GET) => {
            allow(actions::LIST)?;
            list(deps, &who, request).await
        }
        (Route::Exports, _) => Err(ApiError::MethodNotAllowed("GET, POST")),
        (Route::Export(id), &Method::GET) => {
            allow(actions::GET)?;
            let export = visible(deps, &who, &id).await?;
            Ok(manage::with_etag(200, &export))
        }
        (Route::Export(id), &Method::DELETE) => {
            allow(actions::DELETE)?;
            delete(deps, &who, &id).await
        }
        (Route::Export(id), &Method::PATCH) => {
            allow(actions::UPDATE)?;
            manage::edit(deps, &who, &id, request).await
        }
        (Route::Export(_), _) => Err(ApiError::MethodNotAllowed("GET, PATCH, DELETE")),
        (Route::Pause(id), &Method::POST) => {
            allow(actions::UPDATE)?;
            manage::pause(deps, &who, &id, request).await
        }
        (Route::Resume(id), &Method::POST) => {
            allow(actions::UPDATE)?;
            manage::resume(deps, &who, &id, request).await
        }
        (Route::Preview, &Method::POST) => {
            allow(actions::CREATE)?;
            preview::preview(deps, &who, request).await
        }
        (Route::Preview, _) => Err(ApiError::MethodNotAllowed("POST")),
        (Route::Runs(id), &Method::POST) => {
            allow(actions::RUN)?;
            manage::run_now(deps, &who, &id, request).await
        }
        (Route::Pause(_) | Route::Resume(_) | Route::Runs(_), _) => Err(ApiError::MethodNotAllowed("POST")),
        (Route::Status(id), &Method::GET) => {
            allow(actions::GET)?;
            status(deps, &who, &id, request).await
        }
        (Route::Download(id), &Method::GET) => {
            allow(actions::DOWNLOAD)?;
            download(deps, &who, &id).await
        }
        (Route::Status(_) | Route::Download(_) | Route::Link(..), _) => {
            Err(ApiError::MethodNotAllowed("GET"))
        }
    }
}

/// The caller's export with this id, or `404` (missing, another user's, deleted, not armed).
pub(crate) async fn visible(deps: Deps<'_>, who: &Identity, id: &str) -> Result<Export, ApiError> {
    let id: ExportId = id.parse().map_err(|_| ApiError::NotFound)?;
    match deps.exports.get(&id).await? {
        Some(export) if export.owner == who.sub && export.is_visible() => Ok(export),
        _ => Err(ApiError::NotFound),
    }
}

pub(crate) fn body_json(deps: Deps<'_>, request: &Request) -> Result<Value, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let limit = deps.config.max_body_bytes;
    if bytes.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Invalid(vec![Problem::new(
            "",
            "a JSON body is required",
        )]));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Invalid(vec![Problem::new(
            "",
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )])
    })
}

/// A body checked as a request (every problem, with its pointer), and its messages' recipients
/// against the deployment's rules; `now` is the default anchor of a recurrence.
pub(crate) fn checked_request(
    deps: Deps<'_>,
    who: &Identity,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<ExportRequest, ApiError> {
    let parsed = ExportRequest::parse(body, now, &deps.config.policy).map_err(ApiError::Invalid)?;
    let relayed = deps
        .config
        .recipients
        .check(&parsed.messages, who.email.as_deref());
    if relayed.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::Invalid(relayed))
    }
}

async fn create(deps: Deps<'_>, who: &Identity, request: &Request) -> Result<Response<Body>, ApiError> {
    let body = body_json(deps, request)?;
    let now = deps.clock.now();
    let parsed = checked_request(deps, who, &body, now)?;
    // The first run, computed before anything is stored so an impossible one is a 400.
    let (status, first_run, occurrence) = match parsed.schedule {
        Schedule::OneTime => (ExportStatus::Queued, now, None),
        Schedule::Recurring(recurrence) => {
            let (k, at) = manage::next_of(&recurrence, now)?;
            (ExportStatus::Scheduled, at, Some(k))
        }
    };
    check_channels(deps, who, &parsed).await?;
    let id = ExportId::new_random();
    let mut export = Export {
        id,
        owner: who.sub.clone(),
        owner_email: who.email.clone(),
        request: parsed,
        status: ExportStatus::Creating,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        next_run_at: None,
        version: 1,
    };
    deps.lifecycle
        .insert(&export, deps.config.max_queued_per_user)
        .await?;
    let event = RunEvent {
        export_id: id,
        scheduled_at: first_run,
        occurrence,
        leg: None,
        item: None,
        extra: None,
    };
    let next_run_at = matches!(export.request.schedule, Schedule::Recurring(_)).then_some(first_run);
    match export.request.schedule {
        // Queued before it is launched: a run never finds its export still `creating` (it
        // would skip it), and a launch that fails takes the record away again.
        Schedule::OneTime => {
            deps.lifecycle
                .activate(&id, status, None, now)
                .await
                .inspect_err(|_| {
                    tracing::error!(export_id = %id, "could not mark an export queued");
                })?;
            if let Err(e) = deps.launcher.launch(&event).await {
                discard(deps, &export).await;
                return Err(e.into());
            }
        }
        // Armed before it is marked scheduled: a crash in between leaves it `creating`, which
        // never runs and which the reconciler removes with its schedule.
        Schedule::Recurring(_) => {
            if let Err(e) = deps.schedules.arm(&event).await {
                discard(deps, &export).await;
                return Err(e.into());
            }
            if let Err(e) = deps.lifecycle.activate(&id, status, next_run_at, now).await {
                if let Err(disarm) = deps.schedules.disarm(&id).await {
                    tracing::error!(export_id = %id, error = %disarm, "could not remove the schedule of a failed create");
                }
                discard(deps, &export).await;
                return Err(e.into());
            }
        }
    }
    export.status = status;
    export.next_run_at = next_run_at;
    tracing::info!(export_id = %id, owner = %who.sub, status = status.as_str(), "export created");
    Ok(json_response(201, &export.to_json()))
}

/// Checks every item's channel for the caller (each distinct read once), before anything is
/// stored: a denied item is a `403` at its pointer, a checker that cannot answer a `503`.
pub(crate) async fn check_channels(
    deps: Deps<'_>,
    who: &Identity,
    request: &ExportRequest,
) -> Result<(), ApiError> {
    let caller = Caller {
        subject: &who.sub,
        credential: who.credential.as_deref(),
    };
    let mut decided: HashMap<ChannelRead<'_>, bool> = HashMap::new();
    let mut denied = Vec::new();
    for (index, item) in request.items.iter().enumerate() {
        for read in ChannelRead::of_item(item) {
            let allowed = match decided.get(&read) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = deps.access.may_read(&caller, &read).await?;
                    decided.insert(read, allowed);
                    allowed
                }
            };
            if !allowed {
                denied.push(Problem::new(
                    format!("/items/{index}/params/channelId"),
                    format!(
                        "you may not read channel {} (subtopic `{}`, name `{}`)",
                        read.channel, read.subtopic, read.name
                    ),
                ));
            }
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        tracing::warn!(owner = %who.sub, denied = denied.len(), "export refused: channel access denied");
        Err(ApiError::ChannelDenied(denied))
    }
}

/// Removes an export whose trigger failed, so no live export is left without one.
async fn discard(deps: Deps<'_>, export: &Export) {
    if let Err(e) = deps.lifecycle.discard(export, deps.clock.now()).await {
        // It stays in `creating`: invisible to the API and never run.
        tracing::error!(export_id = %export.id, error = %e, "could not discard an unarmed export");
    }
}

async fn list(deps: Deps<'_>, who: &Identity, request: &Request) -> Result<Response<Body>, ApiError> {
    let params = request.query_string_parameters();
    let query = ListQuery::parse(params.iter()).map_err(ApiError::Invalid)?;
    let exports = deps.exports.list_by_owner(&who.sub).await?;
    Ok(json_response(200, &query.apply(exports).to_json()))
}

async fn delete(deps: Deps<'_>, who: &Identity, id: &str) -> Result<Response<Body>, ApiError> {
    let export = visible(deps, who, id).await?;
    let now: DateTime<Utc> = deps.clock.now();
    let expires_at = now + deps.config.retention;
    let deleted = deps
        .lifecycle
        .soft_delete(&export.id, &who.sub, now, expires_at)
        .await?;
    if matches!(deleted.request.schedule, Schedule::Recurring(_)) {
        if let Err(e) = deps.schedules.disarm(&deleted.id).await {
            // Harmless if left: run-export does nothing for a deleted export.
            tracing::warn!(export_id = %deleted.id, error = %e, "could not remove the schedule of a deleted export");
        }
    }
    tracing::info!(export_id = %deleted.id, owner = %who.sub, "export deleted");
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn status(
    deps: Deps<'_>,
    who: &Identity,
    id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let export = visible(deps, who, id).await?;
    let (limit, before) = jobs_page(request)?;
    let now = deps.clock.now();
    let page = deps.history.recent_jobs(&export.id, before, limit + 1).await?;
    let more = page.len() > limit;
    let jobs: Vec<&Job> = page.iter().take(limit).collect();
    let next_before = if more {
        jobs.last().map(|j| j.job_id.clone())
    } else {
        None
    };
    let body = serde_json::json!({
        "exportId": export.id.to_string(),
        "type": export.request.export_type().as_str(),
        "status": export.status.as_str(),
        "nextRunAt": export.next_run_at.map(exporter_core::domain::timestamp::rfc3339),
        "jobs": jobs.iter().map(|j| j.to_json(now)).collect::<Vec<_>>(),
        "nextBefore": next_before,
    });
    Ok(json_response(200, &body))
}

/// The largest page of jobs `status` answers.
pub const MAX_JOBS_PAGE: usize = 100;

/// `pageSize` (1 to 100, default 20) and `before` (a job id: jobs scheduled before it) of the
/// status route; jobs come newest first.
fn jobs_page(request: &Request) -> Result<(usize, Option<DateTime<Utc>>), ApiError> {
    let params = request.query_string_parameters();
    let mut problems = Vec::new();
    let mut limit = 20;
    let mut before = None;
    for (name, value) in params.iter() {
        match name {
            "pageSize" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_JOBS_PAGE).contains(&n) => limit = n,
                _ => problems.push(Problem::new(
                    "/query/pageSize",
                    format!("must be a whole number from 1 to {MAX_JOBS_PAGE}"),
                )),
            },
            "before" => match JobKey::of_job_id(ExportId::new_random(), value) {
                Some(key) => before = Some(key.scheduled_at),
                None => problems.push(Problem::new(
                    "/query/before",
                    "must be a job id such as 20261201T000000000Z (the page's `nextBefore`)",
                )),
            },
            other => problems.push(Problem::new(
                format!("/query/{other}"),
                format!("unknown parameter `{other}`; expected pageSize or before"),
            )),
        }
    }
    if problems.is_empty() {
        Ok((limit, before))
    } else {
        Err(ApiError::Invalid(problems))
    }
}

/// `302` to a presigned URL of the latest finished job's file; `404` before there is one,
/// `410` once it has expired.
async fn download(deps: Deps<'_>, who: &Identity, id: &str) -> Result<Response<Body>, ApiError> {
    let export = visible(deps, who, id).await?;
    let now = deps.clock.now();
    // Newest first, page by page, until a finished one: most exports find it on the first page.
    let mut before = None;
    let latest = loop {
        let page = deps
            .history
            .recent_jobs(&export.id, before, MAX_JOBS_PAGE)
            .await?;
        if let Some(job) = page
            .iter()
            .find(|j| matches!(j.status_at(now), JobStatus::Done | JobStatus::Expired))
        {
            break job.clone();
        }
        match page.last() {
            Some(oldest) if page.len() == MAX_JOBS_PAGE => before = Some(oldest.scheduled_at),
            _ => return Err(ApiError::NoFileYet),
        }
    };
    if latest.status_at(now) == JobStatus::Expired {
        return Err(ApiError::Expired);
    }
    let file = latest.download().ok_or(ApiError::NoFileYet)?;
    redirect(deps, &file.key).await
}

/// A signed link from a message: `404` for a bad or unknown signature (as for no link at all),
/// `410` past its expiry or once the files have expired, else `302` to a fresh presigned URL of
/// the job's file, valid `download_url_ttl`. Presigned now, with the API's own credentials, so
/// the link holds for as long as it says whatever the signing function's credentials did.
async fn link(
    deps: Deps<'_>,
    export: &str,
    job_id: &str,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let signer = deps.config.links.as_ref().ok_or(ApiError::NotFound)?;
    let id: ExportId = export.parse().map_err(|_| ApiError::NotFound)?;
    let params = request.query_string_parameters();
    let text = |name: &str| params.first(name).map(str::to_owned).ok_or(ApiError::NotFound);
    let signature = Signature {
        expires: text("expires")?.parse().map_err(|_| ApiError::NotFound)?,
        key: text("key")?,
        signature: text("signature")?,
    };
    let now = deps.clock.now();
    signer
        .verify(&id, job_id, &signature, now)
        .await
        .map_err(|e| match e {
            LinkError::Invalid => ApiError::NotFound,
            LinkError::Expired => ApiError::LinkExpired,
        })?;
    match deps.exports.get(&id).await? {
        Some(export) if export.deleted_at.is_none() => {}
        _ => return Err(ApiError::NotFound),
    }
    let jobs = deps.history.jobs(&id).await?;
    let job = jobs
        .iter()
        .find(|j| j.job_id == job_id)
        .ok_or(ApiError::NotFound)?;
    match job.status_at(now) {
        JobStatus::Done => {}
        JobStatus::Expired => return Err(ApiError::Expired),
        _ => return Err(ApiError::NotFound),
    }
    let file = job.download().ok_or(ApiError::NotFound)?;
    redirect(deps, &file.key).await
}

/// `302` to a presigned URL of `key`, valid `download_url_ttl`.
async fn redirect(deps: Deps<'_>, key: &str) -> Result<Response<Body>, ApiError> {
    let url = deps
        .files
        .presign(key, deps.config.download_url_ttl)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::FOUND;
    let location =
        lambda_http::http::HeaderValue::from_str(&url).map_err(|e| ApiError::Internal(Box::new(e)))?;
    response.headers_mut().insert("location", location);
    Ok(response)
}
