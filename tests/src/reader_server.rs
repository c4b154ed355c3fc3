//! A local reader API of the project's own, speaking the upstream contract in any dialect of the
//! family from one switch ([`ReaderConfig::dialect`]): `GET [/{domainId}]/channels/{id}/messages
//! ?subtopic=&name=&publisher=&from=&to=&limit=&offset=[&format=]`, newest first, `limit` at most
//! the dialect's largest page, half-open `[from, to)` in the dialect's unit (Unix seconds, or
//! integer nanoseconds), `{"total","offset","limit","messages"}` with the dialect's field names
//! (snake_case for Mainflux and Magistrala, camelCase for Connhex), its error shape
//! (`{"error","message"}`, `{"message"}`, `{"error"}`), its credential schemes, and, for
//! Magistrala, a page narrowed to the devices a user may read ([`ReaderConfig::grant_devices`]).
//! `4xx` on bad parameters. Like the real readers it orders by time only: with
//! [`ReaderConfig::shuffle_ties`], messages of equal time come in another order on every request. Its data is generated, deterministically and without storage: every
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
use exporter_core::domain::dialect::{Dialect, TimeUnit};
use serde_json::{json, Value};

/// The domain every channel is in on a Magistrala reader, unless [`ReaderConfig::domains`] says
/// otherwise.
pub const LOCAL_DOMAIN: &str = "5b1e7f0a-3c2d-4e6f-8a9b-0c1d2e3f4a5b";

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
    /// The policy endpoint's answers: subjects (`*`: anyone not listed) and the channels each
    /// may read (`*`: all).
    pub policy: Mutex<HashMap<String, Vec<String>>>,
    /// The dialect spoken.
    pub dialect: Dialect,
    /// Channels in a domain other than [`LOCAL_DOMAIN`] (Magistrala).
    pub domains: Mutex<HashMap<String, String>>,
    /// Users' tokens that may read only some devices (publishers) of every channel they may
    /// read: their pages are narrowed to those (Magistrala answers `200`, not `403`).
    pub devices: Mutex<HashMap<String, Vec<String>>>,
    /// Messages of other tables than the default one (Connhex's `format`), newest first.
    pub tables: HashMap<String, Vec<Value>>,
    /// Serve messages of equal time in an order that changes with every request, as a reader
    /// ordering by time alone may.
    pub shuffle_ties: bool,
    /// Requests that asked for one publisher.
    pub by_publisher: AtomicU64,
    /// Answer every message whatever `from`/`to` ask (a reader that ignores the window).
    pub ignore_window: bool,
    /// SenML names the policy endpoint refuses to anyone (a metric kept from callers).
    pub denied_names: Mutex<Vec<String>>,
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
            dialect: Dialect::default(),
            domains: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
            tables: HashMap::new(),
            shuffle_ties: false,
            by_publisher: AtomicU64::new(0),
            ignore_window: false,
            denied_names: Mutex::new(Vec::new()),
        }
    }

    /// Speaks `dialect`.
    pub fn speaking(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Lets a user's token read only these devices (publishers) of the channels it may read.
    pub fn grant_devices(&self, token: &str, publishers: &[&str]) {
        set(&self.devices, token, publishers);
    }

    /// Serves `messages` as the table `format=name` selects (Connhex).
    pub fn with_table(mut self, name: &str, mut messages: Vec<Value>) -> Self {
        messages.sort_by_key(|m| std::cmp::Reverse(time_ns(m)));
        self.tables.insert(name.to_owned(), messages);
        self
    }

    /// Lets a user's bearer token read these channels (`*`: all).
    pub fn grant(&self, token: &str, channels: &[&str]) {
        set(&self.grants, token, channels);
    }

    /// Tells the policy endpoint that `subject` may read these channels (`*`: all); none revokes.
    pub fn allow(&self, subject: &str, channels: &[&str]) {
        set(&self.policy, subject, channels);
    }

    /// Serves these messages (SenML records as the reader answers them) instead of generated ones.
    pub fn with_messages(mut self, mut messages: Vec<Value>) -> Self {
        messages.sort_by_key(|m| std::cmp::Reverse(time_ns(m)));
        self.recorded = Some(messages);
        self
    }
}

/// Sets who may read what in one of the server's tables of rights.
fn set(table: &Mutex<HashMap<String, Vec<String>>>, who: &str, what: &[&str]) {
    if let Ok(mut table) = table.lock() {
        table.insert(who.to_owned(), what.iter().map(|w| (*w).to_owned()).collect());
    }
}

/// A message's time as exact Unix nanoseconds: an integer past 10^15 is nanoseconds (a
/// Magistrala reader's), any other number Unix seconds, read from its decimal text.
pub fn time_ns(message: &Value) -> i64 {
    ns_of(&message["time"])
}

/// A time as exact Unix nanoseconds (see [`time_ns`]).
fn ns_of(time: &Value) -> i64 {
    match time.as_i64() {
        Some(ns) if ns.abs() > 1_000_000_000_000_000 => ns,
        _ => seconds_text_ns(&time.to_string()).unwrap_or(0),
    }
}

/// Unix seconds written in decimal (`1767225600.25`, `1.7672256e9`) as nanoseconds.
fn seconds_text_ns(text: &str) -> Option<i64> {
    if text.contains(['e', 'E']) {
        let v: f64 = text.parse().ok()?;
        return Some((v * 1e9).round() as i64);
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let negative = whole.starts_with('-');
    let whole: i64 = whole.parse().ok()?;
    let mut digits: String = fraction.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    whole
        .checked_mul(1_000_000_000)?
        .checked_add(if negative { -nanos } else { nanos })
}

/// A bound of a request in the dialect's unit, as nanoseconds: `Ok(None)` when absent,
/// `Err(())` when malformed.
fn bound_ns(text: Option<&String>, unit: TimeUnit) -> Result<Option<i64>, ()> {
    let Some(text) = text else { return Ok(None) };
    let ns = match unit {
        TimeUnit::Seconds => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0 && *v < 9.2e9)
            .and_then(|_| seconds_text_ns(text)),
        // Magistrala parses them as unsigned integers.
        TimeUnit::Nanoseconds => text.parse::<u64>().ok().and_then(|v| i64::try_from(v).ok()),
    };
    ns.map(Some).ok_or(())
}

/// A message as the dialect serves it: its time in the dialect's unit, its field names in the
/// dialect's case.
fn in_dialect(message: &Value, dialect: Dialect) -> Value {
    let Value::Object(fields) = message else {
        return message.clone();
    };
    let snake = dialect != Dialect::Connhex;
    let mut out = serde_json::Map::with_capacity(fields.len());
    for (key, value) in fields {
        let key = match (key.as_str(), snake) {
            ("stringValue", true) => "string_value",
            ("boolValue", true) => "bool_value",
            ("dataValue", true) => "data_value",
            ("updateTime", true) => "update_time",
            ("string_value", false) => "stringValue",
            ("bool_value", false) => "boolValue",
            ("data_value", false) => "dataValue",
            ("update_time", false) => "updateTime",
            (other, _) => other,
        };
        out.insert(key.to_owned(), value.clone());
    }
    let ns = time_ns(message);
    out.insert("time".into(), time_json(ns, dialect.time_unit()));
    let update = if snake { "update_time" } else { "updateTime" };
    if let Some(time) = out.get(update).filter(|v| v.is_number()) {
        let ns = ns_of(time);
        out.insert(update.into(), time_json(ns, dialect.time_unit()));
    }
    Value::Object(out)
}

/// A time as the unit's reader writes it: an integer of nanoseconds, or Unix seconds.
fn time_json(ns: i64, unit: TimeUnit) -> Value {
    match unit {
        TimeUnit::Nanoseconds => json!(ns),
        TimeUnit::Seconds => {
            let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
            if nanos == 0 {
                json!(secs as f64)
            } else {
                json!(format!("{secs}.{nanos:09}").parse::<f64>().unwrap_or(0.0))
            }
        }
    }
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
        .route("/{domain}/channels/{channel}/messages", get(domain_messages))
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

/// An error as the dialect's reader answers it: Mainflux `{"error","message"}`, Magistrala
/// `{"message"}` (and a bare `500`), Connhex `{"error"}`.
fn error_in(dialect: Dialect, status: StatusCode, message: &str) -> Response {
    match dialect {
        Dialect::Mainflux => (
            status,
            Json(json!({"error": message, "message": "failed to read messages"})),
        )
            .into_response(),
        Dialect::Magistrala if status == StatusCode::INTERNAL_SERVER_ERROR => status.into_response(),
        Dialect::Magistrala => (status, Json(json!({"message": message}))).into_response(),
        Dialect::Connhex => error(status, message),
    }
}

/// Who presents the request's credential.
enum Reader {
    Service,
    /// A user: the channels they may read, and the devices, when only some.
    User(Vec<String>, Option<Vec<String>>),
    Unknown,
}

fn reader_of(config: &ReaderConfig, headers: &HeaderMap) -> Reader {
    let Some((scheme, token)) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return Reader::Unknown;
    };
    let scheme_taken = config
        .dialect
        .credential_schemes()
        .iter()
        .any(|s| s.as_str() == scheme);
    if token == config.token && scheme_taken {
        return Reader::Service;
    }
    if scheme != "Bearer" {
        return Reader::Unknown;
    }
    match config.grants.lock().ok().and_then(|g| g.get(token).cloned()) {
        Some(channels) => {
            let devices = config
                .devices
                .lock()
                .ok()
                .and_then(|d| d.get(token).cloned())
                .filter(|_| config.dialect.narrows_by_device());
            Reader::User(channels, devices)
        }
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
    // A channel lives in one domain: the endpoint answers for it there only.
    if config.dialect.has_domains() && params.get("domain") != Some(&home_domain(&config, channel)) {
        return error(StatusCode::NOT_FOUND, "no such channel in this domain");
    }
    let name_denied = params.get("name").is_some_and(|name| {
        config
            .denied_names
            .lock()
            .is_ok_and(|denied| denied.iter().any(|d| d == name))
    });
    let allowed = !name_denied
        && config
            .policy
            .lock()
            .ok()
            .and_then(|p| p.get(subject).or_else(|| p.get("*")).cloned())
            .is_some_and(|channels| may(&channels, channel));
    if allowed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::FORBIDDEN, "not allowed")
    }
}

/// Answers a page on the route without a domain.
async fn messages(
    state: State<Arc<ReaderConfig>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    timed(state, None, channel, headers, params).await
}

/// The Magistrala route, `/{domainId}/channels/{id}/messages`.
async fn domain_messages(
    state: State<Arc<ReaderConfig>>,
    Path((domain, channel)): Path<(String, String)>,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    timed(state, Some(domain), channel, headers, params).await
}

/// Answers a page, taking `latency` in all (the time to build the answer included, so that a
/// benchmark's reader-bound limit is what it says).
async fn timed(
    state: State<Arc<ReaderConfig>>,
    domain: Option<String>,
    channel: String,
    headers: HeaderMap,
    params: Query<HashMap<String, String>>,
) -> Response {
    let started = tokio::time::Instant::now();
    let config = state.0.clone();
    config.requests.fetch_add(1, Ordering::SeqCst);
    let _answering = Answering::new(&config);
    let answer = messages_now(state, domain, channel, headers, params).await;
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
    domain: Option<String>,
    channel: String,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let dialect = config.dialect;
    let fail = |status: StatusCode, message: &str| error_in(dialect, status, message);
    if config
        .throttle_above
        .is_some_and(|most| config.in_flight.load(Ordering::SeqCst) > most)
    {
        config.throttled.fetch_add(1, Ordering::SeqCst);
        return fail(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    }
    if let Some(status) = config.always_fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return fail(status, "reader database unavailable");
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
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "temporary failure");
    }
    // The route is the dialect's: a domain where it has them, none where it does not.
    if domain.is_some() != dialect.has_domains() {
        return fail(StatusCode::NOT_FOUND, "page not found");
    }
    let narrowed_to = match reader_of(&config, &headers) {
        Reader::Service => None,
        Reader::User(channels, _) if !may(&channels, &channel) => {
            return fail(
                StatusCode::FORBIDDEN,
                "failed to perform authorization over the entity",
            )
        }
        Reader::User(_, devices) => devices,
        Reader::Unknown => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "missing or invalid credentials provided",
            )
        }
    };
    if uuid::Uuid::try_parse(&channel).is_err() {
        return fail(StatusCode::BAD_REQUEST, "invalid channel id");
    }
    if let Some(domain) = &domain {
        if *domain != home_domain(&config, &channel) {
            return fail(StatusCode::NOT_FOUND, "entity not found");
        }
    }
    let largest = u64::from(dialect.largest_page());
    let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
        None => 10,
        Some(Ok(l)) if (1..=largest).contains(&l) => l,
        Some(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                &format!("limit must be between 1 and {largest}"),
            )
        }
    };
    let offset = match params.get("offset").map(|o| o.parse::<u64>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return fail(StatusCode::BAD_REQUEST, "invalid offset parameter"),
    };
    let unit = dialect.time_unit();
    let (from, to) = match (
        bound_ns(params.get("from"), unit),
        bound_ns(params.get("to"), unit),
    ) {
        _ if config.ignore_window => (i64::MIN, i64::MAX),
        // Without `to`, the data ends in 2096 (a reader has no message of the far future).
        (Ok(f), Ok(t)) => (f.unwrap_or(0), t.unwrap_or(4_000_000_000_000_000_000)),
        (Err(()), _) => return fail(StatusCode::BAD_REQUEST, "invalid from parameter"),
        (_, Err(())) => return fail(StatusCode::BAD_REQUEST, "invalid to parameter"),
    };
    let subtopic = params.get("subtopic").cloned().unwrap_or_default();
    let name = params.get("name").cloned().unwrap_or_default();
    let publisher = params.get("publisher").cloned();
    if publisher.is_some() {
        config.by_publisher.fetch_add(1, Ordering::SeqCst);
    }
    let table = params.get("format").filter(|t| t.as_str() != "messages");
    if table.is_some() && !dialect.has_message_tables() {
        return fail(StatusCode::BAD_REQUEST, "unknown format");
    }
    let served = config.requests.load(Ordering::SeqCst);
    let recorded = match table {
        Some(table) => Some(config.tables.get(table).map(Vec::as_slice).unwrap_or_default()),
        None => config.recorded.as_deref(),
    };
    let step_ns = config.step_seconds * 1_000_000_000;
    let start_ns = config.start * 1_000_000_000;
    let publisher_ok = |p: &str| {
        publisher.as_deref().is_none_or(|wanted| wanted == p)
            && narrowed_to
                .as_ref()
                .is_none_or(|devices| devices.iter().any(|d| d == p))
    };
    let late_points: Vec<LatePoint> = config
        .late_points
        .lock()
        .map(|points| {
            points
                .iter()
                .filter(|p| served > p.after_request)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let filtered = recorded.is_some()
        || publisher.is_some()
        || narrowed_to.is_some()
        || late_points
            .iter()
            .any(|p| (from..to).contains(&(p.time * 1_000_000_000)));
    if !filtered {
        // Point k is at start + k * step; those in [from, to) are k in [first, end).
        let first = ceil_div(from.saturating_sub(start_ns).max(0), step_ns);
        let end = ceil_div(to.saturating_sub(start_ns).max(0), step_ns);
        let total = end.saturating_sub(first) as u64;
        let messages: Vec<Generated> = (0..limit)
            .map_while(|i| {
                let index = offset + i;
                (index < total).then(|| end as u64 - 1 - index) // newest first
            })
            .map(|k| generated(&config, &channel, &subtopic, &name, k))
            .collect();
        return answer(
            &config,
            &headers,
            &GeneratedPage {
                total,
                offset,
                limit,
                messages,
            },
        );
    }
    // Recorded messages (or the generated ones with late points, filtered): every matching
    // message of the window, newest first.
    let mut all: Vec<Value> = match recorded {
        Some(recorded) => {
            let arrived: Vec<Value> = match config.late.lock() {
                Ok(late) => late
                    .as_ref()
                    .filter(|(after, _)| served > *after)
                    .map(|(_, messages)| messages.clone())
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            recorded
                .iter()
                .chain(arrived.iter())
                .filter(|m| {
                    m["channel"] == channel.as_str()
                        && (subtopic.is_empty() || m["subtopic"] == subtopic.as_str())
                        && (name.is_empty() || m["name"] == name.as_str())
                        && (from..to).contains(&time_ns(m))
                })
                .cloned()
                .collect()
        }
        None => {
            let first = ceil_div(from.saturating_sub(start_ns).max(0), step_ns);
            let end = ceil_div(to.saturating_sub(start_ns).max(0), step_ns);
            let mut all: Vec<Value> = (first..end)
                .map(|k| generated(&config, &channel, &subtopic, &name, k as u64))
                .filter_map(|m| serde_json::to_value(m).ok())
                .map(|mut m| {
                    // Back to the recorded form: seconds and camelCase.
                    m["time"] = json!(time_of_generated(&config, &m));
                    m
                })
                .collect();
            all.extend(
                late_points
                    .iter()
                    .filter(|p| (from..to).contains(&(p.time * 1_000_000_000)))
                    .map(|p| {
                        json!({"channel": channel, "subtopic": subtopic, "publisher": GENERATED_PUBLISHER,
                            "protocol": "mqtt", "name": name, "unit": "Cel", "time": p.time as f64, "value": p.value})
                    }),
            );
            all
        }
    };
    all.retain(|m| publisher_ok(m["publisher"].as_str().unwrap_or_default()));
    all.sort_by_key(|m| std::cmp::Reverse(time_ns(m)));
    if config.shuffle_ties {
        shuffle_ties(&mut all, served);
    }
    let total = all.len();
    let page: Vec<Value> = all
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|m| in_dialect(m, dialect))
        .collect();
    answer(
        &config,
        &headers,
        &json!({"total": total, "offset": offset, "limit": limit, "messages": page}),
    )
}

/// The domain a channel lives in (Magistrala).
fn home_domain(config: &ReaderConfig, channel: &str) -> String {
    config
        .domains
        .lock()
        .ok()
        .and_then(|d| d.get(channel).cloned())
        .unwrap_or_else(|| LOCAL_DOMAIN.to_owned())
}

/// `a / b` rounded up, for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// The publisher of every generated message.
pub const GENERATED_PUBLISHER: &str = "3d5e8a9c-7f1b-4e2a-9c6d-1b2a3c4d5e6f";

/// A generated message's time in Unix seconds, read back from the dialect's form.
fn time_of_generated(config: &ReaderConfig, message: &Value) -> f64 {
    match config.dialect.time_unit() {
        TimeUnit::Seconds => message["time"].as_f64().unwrap_or(0.0),
        TimeUnit::Nanoseconds => (message["time"].as_i64().unwrap_or(0) / 1_000_000_000) as f64,
    }
}

/// Point `k` of the generated series.
fn generated<'a>(
    config: &ReaderConfig,
    channel: &'a str,
    subtopic: &'a str,
    name: &'a str,
    k: u64,
) -> Generated<'a> {
    let onoff = name.ends_with("onoff");
    let camel = config.dialect == Dialect::Connhex;
    let bool_value = onoff.then(|| k.is_multiple_of(3));
    let seconds = config.start + k as i64 * config.step_seconds;
    Generated {
        channel,
        subtopic,
        publisher: GENERATED_PUBLISHER,
        protocol: "mqtt",
        name,
        unit: if onoff { "" } else { "Cel" },
        time: match config.dialect.time_unit() {
            TimeUnit::Seconds => GeneratedTime::Seconds(seconds as f64),
            TimeUnit::Nanoseconds => GeneratedTime::Nanoseconds(seconds * 1_000_000_000),
        },
        value: (!onoff).then(|| 20.0 + (k % 1000) as f64 / 8.0),
        bool_camel: bool_value.filter(|_| camel),
        bool_snake: bool_value.filter(|_| !camel),
    }
}

/// Puts every run of messages of equal time (in a list sorted by time) in an order drawn from
/// `seed`: a reader ordering by time alone may serve ties differently on every request.
fn shuffle_ties(messages: &mut [Value], seed: u64) {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut start = 0;
    while start < messages.len() {
        let t = time_ns(&messages[start]);
        let mut end = start + 1;
        while end < messages.len() && time_ns(&messages[end]) == t {
            end += 1;
        }
        for i in (start + 1..end).rev() {
            let j = start + (next() % (i - start + 1) as u64) as usize;
            messages.swap(i, j);
        }
        start = end;
    }
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
    time: GeneratedTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(rename = "boolValue", skip_serializing_if = "Option::is_none")]
    bool_camel: Option<bool>,
    #[serde(rename = "bool_value", skip_serializing_if = "Option::is_none")]
    bool_snake: Option<bool>,
}

/// A generated time in the dialect's unit.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum GeneratedTime {
    Seconds(f64),
    Nanoseconds(i64),
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
