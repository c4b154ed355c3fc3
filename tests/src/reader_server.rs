//! A local reader API of the project's own, speaking the upstream contract (spec section 6):
//! `GET /channels/{id}/messages?subtopic=&name=&from=&to=&limit=&offset=` with a bearer token,
//! newest first, `limit` at most 1000, half-open `[from, to)`, `{"total","offset","limit","messages"}`,
//! `4xx` on bad parameters. Its data is generated, deterministically and without storage: every
//! `step_seconds` from `start` on, each (channel, subtopic, name) has one point. Names ending in
//! `onoff` carry `boolValue`; others carry `value = 20 + (k mod 1000) / 8` where `k = t / step`.
//! Tokens other than the service's are users' (see [`ReaderConfig::grant`]): each reads only the
//! channels granted to it, as the platform's own authorisation would decide. `GET /access` is a
//! policy endpoint of the same platform (see [`ReaderConfig::allow`]).
//! Or it serves recorded messages (see [`ReaderConfig::recorded`], loaded by [`load_messages`]):
//! those of the channel, matching `subtopic` and `name` when given, in `[from, to)`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the server serves and how it misbehaves.
#[derive(Debug)]
pub struct ReaderConfig {
    pub token: String,
    /// Unix seconds of the first point of every series.
    pub start: i64,
    pub step_seconds: i64,
    /// Answer this status to every request (a reader that is down).
    pub always_fail: Option<u16>,
    /// Answer `500` to this many requests before behaving.
    pub fail_first: AtomicU32,
    /// Requests served, failures included.
    pub requests: AtomicU64,
    /// Messages to serve instead of generated ones, newest first.
    pub recorded: Option<Vec<Value>>,
    /// Late messages the platform ingests while a read is under way: after this many requests,
    /// they join the recorded ones (newest first, as ever).
    pub late: Mutex<Option<(u64, Vec<Value>)>>,
    /// Late points of the generated series: each joins it (for every channel and name, as the
    /// generated points do) once this many requests were served.
    pub late_points: Mutex<Vec<LatePoint>>,
    /// How long each answer takes (a reader far away).
    pub latency: std::time::Duration,
    /// Answer `429` to a request that arrives while this many are being answered already (a
    /// reader that sheds load).
    pub throttle_above: Option<u64>,
    /// Requests answered `429` for load.
    pub throttled: AtomicU64,
    /// Compress answers for clients that accept gzip (a reader behind a compressing proxy).
    pub gzip: bool,
    /// Answers sent compressed.
    pub compressed: AtomicU64,
    /// Requests being answered now, and the most there were at once.
    pub in_flight: AtomicU64,
    pub most_in_flight: AtomicU64,
    /// Answer every request with a gzip-compressed body of this many bytes once decompressed
    /// (a gzip bomb: a small answer that grows without bound).
    pub bomb_bytes: Option<usize>,
    /// Users' bearer tokens and the channels each may read (`*`: all), as the platform decides;
    /// `token` (the service's) reads every channel. Another token is `401`, a channel not
    /// granted `403`.
    pub grants: Mutex<HashMap<String, Vec<String>>>,
    /// The policy endpoint's answers: subjects and the channels each may read (`*`: all).
    pub policy: Mutex<HashMap<String, Vec<String>>>,
}

/// A point the platform ingests late, stamped between the generated ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatePoint {
    /// It arrives once more requests than this were served.
    pub after_request: u64,
    pub time: i64,
    pub value: f64,
}

/// Counts a request as in flight while it lives.
struct Answering<'a>(&'a ReaderConfig);

impl<'a> Answering<'a> {
    fn new(config: &'a ReaderConfig) -> Self {
        let now = config.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        config.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(config)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ReaderConfig {
    pub fn new(token: &str, start: i64, step_seconds: i64) -> Self {
        Self {
            token: token.to_owned(),
            start,
            step_seconds,
            always_fail: None,
            fail_first: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            recorded: None,
            late: Mutex::new(None),
            late_points: Mutex::new(Vec::new()),
            latency: std::time::Duration::ZERO,
            throttle_above: None,
            throttled: AtomicU64::new(0),
            gzip: false,
            compressed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            most_in_flight: AtomicU64::new(0),
            bomb_bytes: None,
            grants: Mutex::new(HashMap::new()),
            policy: Mutex::new(HashMap::new()),
        }
    }

    /// Lets a user's bearer token read these channels (`*`: all).
    pub fn grant(&self, token: &str, channels: &[&str]) {
        if let Ok(mut grants) = self.grants.lock() {
            grants.insert(
                token.to_owned(),
                channels.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
    }

    /// Tells the policy endpoint that `subject` may read these channels (`*`: all); none revokes.
    pub fn allow(&self, subject: &str, channels: &[&str]) {
        if let Ok(mut policy) = self.policy.lock() {
            policy.insert(
                subject.to_owned(),
                channels.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
    }

    /// Serves these messages (SenML records as the reader answers them) instead of generated ones.
    pub fn with_messages(mut self, mut messages: Vec<Value>) -> Self {
        messages.sort_by(|a, b| time_of(b).total_cmp(&time_of(a)));
        self.recorded = Some(messages);
        self
    }
}

fn time_of(message: &Value) -> f64 {
    message["time"].as_f64().unwrap_or(0.0)
}

/// Messages from a file: a JSON array of SenML messages, or a reader answer
/// (`{"messages": [...]}`), so a page saved from a real reader can be served again.
pub fn load_messages(text: &str) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let messages = match value {
        Value::Array(messages) => messages,
        Value::Object(mut page) => match page.remove("messages") {
            Some(Value::Array(messages)) => messages,
            _ => return Err("an object must have a \"messages\" array".into()),
        },
        _ => return Err("expected an array of messages or a reader answer".into()),
    };
    match messages.iter().position(|m| !m["time"].is_number()) {
        Some(i) => Err(format!("message {i} has no numeric \"time\"")),
        None => Ok(messages),
    }
}

/// Starts the server on a free loopback port; returns its base URL and shared state.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start(config: ReaderConfig) -> (String, Arc<ReaderConfig>) {
    start_on(config, "127.0.0.1:0").await
}

/// Starts the server on `address`.
///
/// # Panics
/// When the address cannot be bound.
pub async fn start_on(config: ReaderConfig, address: &str) -> (String, Arc<ReaderConfig>) {
    let state = Arc::new(config);
    let app = Router::new()
        .route("/channels/{channel}/messages", get(messages))
        .route("/access", get(access))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Who presents the request's bearer token.
enum Reader {
    Service,
    User(Vec<String>),
    Unknown,
}

fn reader_of(config: &ReaderConfig, headers: &HeaderMap) -> Reader {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Reader::Unknown;
    };
    if token == config.token {
        return Reader::Service;
    }
    match config.grants.lock().ok().and_then(|g| g.get(token).cloned()) {
        Some(channels) => Reader::User(channels),
        None => Reader::Unknown,
    }
}

fn may(channels: &[String], channel: &str) -> bool {
    channels.iter().any(|c| c == "*" || c == channel)
}

/// The policy endpoint: `GET /access?subject=&channel=&action=read` with the service's token;
/// `204` allowed, `403` not.
async fn access(
    State(config): State<Arc<ReaderConfig>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    config.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = config.always_fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "policy store unavailable");
    }
    if !matches!(reader_of(&config, &headers), Reader::Service) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid credentials provided",
        );
    }
    let (Some(subject), Some(channel)) = (params.get("subject"), params.get("channel")) else {
        return error(StatusCode::BAD_REQUEST, "subject and channel are required");
    };
    let allowed = config
        .policy
        .lock()
        .ok()
        .and_then(|p| p.get(subject).cloned())
        .is_some_and(|channels| may(&channels, channel));
    if allowed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::FORBIDDEN, "not allowed")
    }
}

/// Unix seconds of a parameter: `Ok(None)` when absent, `Err(())` when malformed.
fn seconds(text: Option<&String>) -> Result<Option<f64>, ()> {
    match text {
        None => Ok(None),
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Some)
            .ok_or(()),
    }
}

/// Answers a page, taking `latency` in all (the time to build the answer included, so that a
/// benchmark's reader-bound limit is what it says).
async fn messages(
    state: State<Arc<ReaderConfig>>,
    channel: Path<String>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    let started = tokio::time::Instant::now();
    let config = state.0.clone();
    config.requests.fetch_add(1, Ordering::SeqCst);
    let _answering = Answering::new(&config);
    let answer = messages_now(state, channel, headers, params).await;
    sleep_precisely_until(started + config.latency).await;
    answer
}

/// Sleeps until `deadline` to within a few tens of microseconds: Tokio's timer counts whole
/// milliseconds and fires up to one late (an answer set to take 20 ms took 21 to 22), so the
/// last millisecond is slept by the operating system's timer, on the blocking pool.
async fn sleep_precisely_until(deadline: tokio::time::Instant) {
    let coarse = deadline.checked_sub(std::time::Duration::from_millis(2));
    if let Some(coarse) = coarse.filter(|c| *c > tokio::time::Instant::now()) {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

async fn messages_now(
    State(config): State<Arc<ReaderConfig>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if config
        .throttle_above
        .is_some_and(|most| config.in_flight.load(Ordering::SeqCst) > most)
    {
        config.throttled.fetch_add(1, Ordering::SeqCst);
        return error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    }
    if let Some(status) = config.always_fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "reader database unavailable");
    }
    if let Some(size) = config.bomb_bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![b' '; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            if encoder.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
        let body = encoder.finish().unwrap_or_default();
        return (
            [("content-type", "application/json"), ("content-encoding", "gzip")],
            body,
        )
            .into_response();
    }
    if config.fail_first.load(Ordering::SeqCst) > 0 {
        config.fail_first.fetch_sub(1, Ordering::SeqCst);
        return error(StatusCode::INTERNAL_SERVER_ERROR, "temporary failure");
    }
    match reader_of(&config, &headers) {
        Reader::Service => {}
        Reader::User(channels) if may(&channels, &channel) => {}
        Reader::User(_) => {
            return error(
                StatusCode::FORBIDDEN,
                "failed to perform authorization over the entity",
            )
        }
        Reader::Unknown => {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid credentials provided",
            )
        }
    }
    if uuid::Uuid::try_parse(&channel).is_err() {
        return error(StatusCode::BAD_REQUEST, "invalid channel id");
    }
    let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
        None => 10,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000"),
    };
    let offset = match params.get("offset").map(|o| o.parse::<u64>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid offset parameter"),
    };
    let (from, to) = match (seconds(params.get("from")), seconds(params.get("to"))) {
        (Ok(f), Ok(t)) => (f.unwrap_or(0.0), t.unwrap_or(4e9)),
        (Err(()), _) => return error(StatusCode::BAD_REQUEST, "invalid from parameter"),
        (_, Err(())) => return error(StatusCode::BAD_REQUEST, "invalid to parameter"),
    };
    let subtopic = params.get("subtopic").cloned().unwrap_or_default();
    let name = params.get("name").cloned().unwrap_or_default();
    if let Some(recorded) = &config.recorded {
        let served = config.requests.load(Ordering::SeqCst);
        let arrived: Vec<Value> = match config.late.lock() {
            Ok(late) => late
                .as_ref()
                .filter(|(after, _)| served > *after)
                .map(|(_, messages)| messages.clone())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut all: Vec<&Value> = recorded.iter().chain(arrived.iter()).collect();
        all.sort_by(|a, b| time_of(b).total_cmp(&time_of(a)));
        let matching: Vec<&Value> = all
            .into_iter()
            .filter(|m| {
                m["channel"] == channel.as_str()
                    && (subtopic.is_empty() || m["subtopic"] == subtopic.as_str())
                    && (name.is_empty() || m["name"] == name.as_str())
                    && (from..to).contains(&time_of(m))
            })
            .collect();
        let page: Vec<&Value> = matching
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .copied()
            .collect();
        return answer(
            &config,
            &headers,
            &json!({"total": matching.len(), "offset": offset, "limit": limit, "messages": page}),
        );
    }
    // Point k is at start + k * step; those in [from, to) are k in [first, end).
    let step = config.step_seconds as f64;
    let first = ((from - config.start as f64) / step).ceil().max(0.0) as u64;
    let end = ((to - config.start as f64) / step).ceil().max(0.0) as u64;
    let total = end.saturating_sub(first);
    let generated = |k: u64| Generated {
        channel: &channel,
        subtopic: &subtopic,
        publisher: "3d5e8a9c-7f1b-4e2a-9c6d-1b2a3c4d5e6f",
        protocol: "mqtt",
        name: &name,
        unit: if name.ends_with("onoff") { "" } else { "Cel" },
        time: (config.start + k as i64 * config.step_seconds) as f64,
        value: (!name.ends_with("onoff")).then(|| 20.0 + (k % 1000) as f64 / 8.0),
        bool_value: name.ends_with("onoff").then(|| k.is_multiple_of(3)),
    };
    let served = config.requests.load(Ordering::SeqCst);
    let arrived: Vec<LatePoint> = config
        .late_points
        .lock()
        .map(|points| {
            points
                .iter()
                .filter(|p| served > p.after_request && (from..to).contains(&(p.time as f64)))
                .copied()
                .collect()
        })
        .unwrap_or_default();
    if !arrived.is_empty() {
        // Late points in the window: the whole window, merged and sorted, newest first.
        let mut all: Vec<Value> = (first..end)
            .map(generated)
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect();
        all.extend(arrived.iter().map(|p| {
            json!({"channel": channel, "subtopic": subtopic, "publisher": "3d5e8a9c-7f1b-4e2a-9c6d-1b2a3c4d5e6f",
                "protocol": "mqtt", "name": name, "unit": "Cel", "time": p.time as f64, "value": p.value})
        }));
        all.sort_by(|a, b| time_of(b).total_cmp(&time_of(a)));
        let total = all.len();
        let page: Vec<Value> = all
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .collect();
        return answer(
            &config,
            &headers,
            &json!({"total": total, "offset": offset, "limit": limit, "messages": page}),
        );
    }
    let messages: Vec<Generated> = (0..limit)
        .map_while(|i| {
            let index = offset + i;
            (index < total).then(|| end - 1 - index) // newest first
        })
        .map(generated)
        .collect();
    answer(
        &config,
        &headers,
        &GeneratedPage {
            total,
            offset,
            limit,
            messages,
        },
    )
}

/// A generated message, serialized as the reader sends it (built without a map per message, so
/// that the server's own work stays small beside the latency it is set to take).
#[derive(serde::Serialize)]
struct Generated<'a> {
    channel: &'a str,
    subtopic: &'a str,
    publisher: &'static str,
    protocol: &'static str,
    name: &'a str,
    unit: &'static str,
    time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(rename = "boolValue", skip_serializing_if = "Option::is_none")]
    bool_value: Option<bool>,
}

#[derive(serde::Serialize)]
struct GeneratedPage<'a> {
    total: u64,
    offset: u64,
    limit: u64,
    messages: Vec<Generated<'a>>,
}

/// A page as JSON, gzip-compressed when the server is set to and the client accepts it.
fn answer(config: &ReaderConfig, headers: &HeaderMap, page: &impl serde::Serialize) -> Response {
    let accepts_gzip = headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if !(config.gzip && accepts_gzip) {
        return Json(page).into_response();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed = serde_json::to_vec(page)
        .map_err(std::io::Error::other)
        .and_then(|body| encoder.write_all(&body))
        .and_then(|()| encoder.finish());
    match compressed {
        Ok(body) => {
            config.compressed.fetch_add(1, Ordering::SeqCst);
            (
                [("content-type", "application/json"), ("content-encoding", "gzip")],
                body,
            )
                .into_response()
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "compression failed"),
    }
}
