//! The platform's reader API, in the operator's dialect ([`Dialect`]): `GET
//! {url}[/{domainId}]/channels/{id}/messages` with the service's credential in its scheme
//! (`Bearer`, `Thing`, `Client`), `from`/`to` half-open in the dialect's unit (Unix seconds, or
//! nanoseconds written as exact integers), `limit` at most the dialect's largest page, newest
//! first; Connhex's `format` picks a message table.
//!
//! An answer is never trusted blindly: a message whose time lies outside the window asked, or
//! is no instant in the dialect's unit, fails the read naming the likely cause (the unit, the
//! domain) instead of yielding a silently empty or wrong file; a read that finds nothing asks
//! for the series' newest message once and fails when its time is implausible in the unit
//! (a reader speaking another unit answers an empty window). A `401`/`403` is the service's
//! credential refused ([`ReadError::Refused`]), never retried.
//!
//! A series is read oldest first with bounded memory, and consistently while the platform ingests
//! late data: the window is cut by time into pieces that each fit in one answer (a piece whose
//! answer does not hold all its messages is cut again, in proportion to its total), so every
//! piece is one consistent snapshot and no message is read twice or missed because offsets
//! shifted under the reader. Pieces are fetched a few at a time (as many as [`Flow`] allows), each parsed and sorted oldest
//! first on other tasks, and handed over in order, so memory holds only the pieces in flight.
//! (A piece of more messages than a page within two milliseconds, which time cannot cut, is read
//! one publisher at a time: readers order by time alone, so offsets cannot page equal times.)
//! Timeouts, `5xx` and `429` are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; any other answer fails with the reader's message. The token is
//! never logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::flow::{Flow, DEFAULT_MAX_IN_FLIGHT};
use crate::support::{capped_body, capped_text, retry_after, BodyError, Retry, Secret};
use crate::telemetry::names;
use exporter_core::domain::dialect::{CredentialScheme, Dialect, TimeUnit};
use exporter_core::domain::series::Point;
use exporter_core::domain::timestamp::rfc3339;
use exporter_core::ports::{ReadError, SeriesQuery, SeriesReader, SliceSink};

pub use exporter_core::page::{parse_owned, parse_page, OwnedPage, Page, PageError, PagePoints};

/// The largest page accepted by default, decompressed: pages of 1000 messages are a few hundred
/// kilobytes, so this only stops an answer that is not a page (a gzip bomb, a runaway proxy).
pub const DEFAULT_PAGE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// The reader client.
#[derive(Clone, Debug)]
pub struct HttpReader {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    dialect: Dialect,
    scheme: CredentialScheme,
    /// The page size asked for; the dialect's largest page when unset.
    page_limit: Option<u32>,
    max_page_bytes: usize,
    retry: Retry,
    /// The most pieces in flight; how many are is adapted to the reader ([`Flow`]).
    max_in_flight: usize,
    /// The most pages fetched (or being fetched) ahead of the sink: with the largest page a
    /// page may be, the most memory a read holds in pages.
    max_pages_held: usize,
}

/// A read's requests under way, held to what its flow controller allows; shared with the tasks
/// fetching its pieces. Only a request holds a pass: parsing a page, waiting for an older piece
/// to be handed over, or a retry's pause do not, so the reader always has as many requests as
/// the flow allows. Passes are a semaphore's permits (a freed one goes straight to the request
/// waiting longest), as many as the flow allows: more are added when it grows, and when it
/// shrinks the surplus is taken out as permits come back.
struct Gate {
    /// The flow, the permits in circulation, and those owed back (to take out when returned).
    state: Mutex<(Flow, usize, usize)>,
    permits: tokio::sync::Semaphore,
    tally: Mutex<Tally>,
}

/// What a read's requests did, logged at its end (debug): how many answers, their mean
/// latency, and the pages in flight on average (Little's law: the answers' time over the read's).
#[derive(Debug, Default)]
struct Tally {
    answers: u64,
    latency: Duration,
}

type SharedFlow = Arc<Gate>;

/// A request's place under the gate, given back when dropped (or taken out, when owed).
struct Pass<'g>(&'g Gate, Option<tokio::sync::SemaphorePermit<'g>>);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let owed = self.0.state.lock().map(|mut state| {
            let owed = state.2 > 0;
            if owed {
                state.2 -= 1;
            }
            owed
        });
        if let (Ok(true), Some(permit)) = (owed, self.1.take()) {
            permit.forget();
        }
    }
}

impl Gate {
    fn new(max: usize) -> Self {
        let flow = Flow::new(max);
        let allowed = flow.allowed();
        Self {
            state: Mutex::new((flow, allowed, 0)),
            permits: tokio::sync::Semaphore::new(allowed),
            tally: Mutex::default(),
        }
    }

    /// Waits until one more request may go.
    async fn enter(&self) -> Pass<'_> {
        // The semaphore is never closed.
        Pass(self, self.permits.acquire().await.ok())
    }

    /// Brings the permits in circulation to what the flow allows now.
    fn adjust(&self, change: impl FnOnce(&mut Flow)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state.0);
            let allowed = state.0.allowed();
            let current = state.1;
            if allowed > current {
                let more = allowed - current;
                // Owed permits first: they need not be taken out any more.
                let cancelled = more.min(state.2);
                state.2 -= cancelled;
                self.permits.add_permits(more - cancelled);
            } else if allowed < current {
                let fewer = current - allowed;
                let taken = self.permits.forget_permits(fewer);
                state.2 += fewer - taken;
            }
            state.1 = allowed;
        }
    }

    fn answered(&self, latency: Duration) {
        self.adjust(|flow| flow.answered(latency));
        if let Ok(mut tally) = self.tally.lock() {
            tally.answers += 1;
            tally.latency += latency;
        }
    }

    fn throttled(&self) {
        self.adjust(Flow::throttled);
    }
}

/// A piece on its way: fetched and parsed on another task.
type PieceTask = tokio::task::JoinHandle<Result<Piece, ReadError>>;

/// What reading one piece of the window gave.
enum Piece {
    /// Every message of the piece, in one answer: a consistent snapshot; the piece's end.
    Whole(OwnedPage, DateTime<Utc>),
    /// More messages than one answer holds (the piece and how many): read it in smaller pieces.
    Split(DateTime<Utc>, DateTime<Utc>, u64),
    /// More messages than a page within a width time cannot cut: read by offsets.
    Dense(DateTime<Utc>, DateTime<Utc>, u64),
}

/// The pieces still to hand over, oldest first: the first few fetched on other tasks, the rest
/// waiting or not cut yet. Dropped early (an error), it stops the tasks.
#[derive(Default)]
struct Pieces(VecDeque<Slot>);

enum Slot {
    /// A piece to fetch.
    Waiting(DateTime<Utc>, DateTime<Utc>),
    /// A range known to hold this many messages, cut into pieces of about a page as they are
    /// fetched.
    Uncut(DateTime<Utc>, DateTime<Utc>, u64),
    /// A piece being fetched; whether it was cut from a range by estimate.
    Fetching(PieceTask, bool),
}

impl Drop for Pieces {
    fn drop(&mut self) {
        for slot in &self.0 {
            if let Slot::Fetching(task, _) = slot {
                task.abort();
            }
        }
    }
}

/// A range of the window and how many messages it holds (known, or estimated).
type Range = (DateTime<Utc>, DateTime<Utc>, u64);

/// How full a piece cut from a range is meant to be, as a share of a page, were its messages
/// spread evenly: it starts at nineteen twentieths and moves towards [`Cutter::FULLEST`] while
/// pieces fit in one answer, and drops by a tenth when one does not (its messages are bunched,
/// and a piece that overflows costs a round trip more).
#[derive(Debug)]
struct Cutter {
    fill: f64,
    page: u64,
}

impl Cutter {
    const FIRST: f64 = 0.95;
    const FULLEST: f64 = 0.998;
    const EMPTIEST: f64 = 0.5;

    fn new(page: u32) -> Self {
        Self {
            fill: Self::FIRST,
            page: u64::from(page.max(1)),
        }
    }

    fn fitted(&mut self) {
        self.fill += (Self::FULLEST - self.fill) * 0.1;
    }

    fn overflowed(&mut self) {
        self.fill = (self.fill * 0.9).max(Self::EMPTIEST);
    }

    /// Cuts the first piece off `[from, to)`, which holds `total` messages; the rest, if any,
    /// with the messages it is estimated to hold.
    fn cut(&self, (from, to, total): Range) -> ((DateTime<Utc>, DateTime<Utc>), Option<Range>) {
        let per_piece = (self.page as f64 * self.fill).max(1.0);
        let width = (to - from).num_nanoseconds().unwrap_or(i64::MAX) as f64;
        let step = (width * per_piece / total.max(1) as f64) as i64;
        let step = chrono::TimeDelta::nanoseconds(step).max(narrowest() / 2);
        let end = from.checked_add_signed(step).map_or(to, |end| end.min(to));
        if end >= to || total as f64 <= per_piece {
            return ((from, to), None);
        }
        let left = total.saturating_sub(per_piece as u64).max(1);
        ((from, end), Some((end, to, left)))
    }
}

/// How many times the most requests in flight a read keeps under way: answers that come back
/// before an older slow one wait for it, so the reader still has requests to answer.
const LOOK_AHEAD: usize = 3;

/// The narrowest piece time still cuts.
fn narrowest() -> chrono::TimeDelta {
    chrono::TimeDelta::milliseconds(2)
}

/// Parses a page's body on the blocking pool.
async fn parse_in_background(body: bytes::Bytes, unit: TimeUnit) -> Result<OwnedPage, ReadError> {
    let page = tokio::task::spawn_blocking(move || parse_owned(Vec::from(body), unit))
        .await
        .map_err(|e| ReadError::Permanent(format!("parsing a page stopped: {e}")))?
        .map_err(|e| ReadError::Permanent(format!("the reader's answer is not a page: {e}")))?;
    metrics::counter!(names::POINTS_READ).increment(page.get().points.len() as u64);
    Ok(page)
}

/// The earliest instant a reader's message is believed to have, and the first past the latest:
/// a time outside is a time read in the wrong unit (nanoseconds read as seconds fall past the
/// latest, seconds read as nanoseconds in January 1970).
fn plausible() -> std::ops::Range<i64> {
    // 1990-01-01 to 2200-01-01.
    631_152_000_000_000_000..7_258_118_400_000_000_000
}

/// Checks that a page of the window `[from, to)` holds only messages of it, with times that
/// are instants in the dialect's unit; else fails naming the likely cause.
fn check_page(
    page: &OwnedPage,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    dialect: Dialect,
) -> Result<(), ReadError> {
    let p = page.get();
    let unit = dialect.time_unit().as_str();
    let unplaced = p.messages.saturating_sub(p.points.len() as u64 + p.null_times);
    if unplaced > 0 {
        return Err(ReadError::Permanent(format!(
            "{unplaced} of the reader's messages have a time that is no instant in Unix {unit} (READER_DIALECT={dialect} reads {unit}); the reader likely speaks another time unit"
        )));
    }
    // Readers compare times as doubles (a microsecond's slack covers their rounding: a message
    // a few nanoseconds from a piece's edge may fall on either side of it, but on one only).
    let (lo, hi) = (
        nanos(from).saturating_sub(SLACK_NS),
        nanos(to).saturating_add(SLACK_NS),
    );
    let outside = p.points.iter().find(|point| !(lo..hi).contains(&point.time_ns));
    if let Some(point) = outside {
        let at = DateTime::from_timestamp_nanos(point.time_ns);
        let cause = if plausible().contains(&point.time_ns) {
            "the reader ignored the window, or the item's domain or channel is not what it reads"
        } else {
            "the reader likely speaks another time unit"
        };
        return Err(ReadError::Permanent(format!(
            "the reader answered a message at {} (its time read as Unix {unit}, READER_DIALECT={dialect}) for the window [{}, {}): {cause}",
            rfc3339(at),
            rfc3339(from),
            rfc3339(to)
        )));
    }
    Ok(())
}

/// How far outside a window asked a message may be: readers compare `from`/`to` as doubles,
/// which at today's times are a quarter of a microsecond apart.
const SLACK_NS: i64 = 1_000;

/// The instant a reader's time would be, read in the other unit (`None` past the range).
fn in_other_unit(time_ns: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        // The number written was `time_ns / 1e9` seconds; as nanoseconds it is that many.
        TimeUnit::Seconds => Some(time_ns / 1_000_000_000),
        TimeUnit::Nanoseconds => time_ns.checked_mul(1_000_000_000),
    }
}

/// An instant as Unix nanoseconds (saturating far outside what a reader holds).
fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// Hands a parsed page's points to the sink; returns how many there were.
async fn deliver(page: &OwnedPage, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
    let points = &page.get().points;
    sink.accept(points).await.map_err(ReadError::Sink)?;
    Ok(points.len() as u64)
}

/// A window bound as the dialect's reader takes it.
fn bound(t: DateTime<Utc>, unit: TimeUnit) -> String {
    match unit {
        TimeUnit::Seconds => unix_seconds(t),
        TimeUnit::Nanoseconds => nanos(t).max(0).to_string(),
    }
}

/// Unix seconds with up to nine decimals, as a seconds reader's `from`/`to` take them.
fn unix_seconds(t: DateTime<Utc>) -> String {
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        t.timestamp().to_string()
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}", t.timestamp(), fraction.trim_end_matches('0'))
    }
}

impl HttpReader {
    /// A client for the reader at `base_url` in the default dialect, sending `token` as a
    /// bearer token.
    pub fn new(base_url: impl Into<String>, token: Secret) -> Result<Self, ReadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ReadError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token,
            dialect: Dialect::default(),
            scheme: CredentialScheme::default(),
            page_limit: None,
            max_page_bytes: DEFAULT_PAGE_MAX_BYTES,
            retry: Retry::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_pages_held: LOOK_AHEAD * DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// Refuses pages larger than `bytes` once decompressed.
    pub fn with_max_page_bytes(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes;
        self
    }

    /// Speaks `dialect` (route, unit, largest page, subtopics as its reader stores them).
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Presents the credential in `scheme` (`Bearer <token>`, `Thing <key>`, `Client <secret>`).
    pub fn with_credential_scheme(mut self, scheme: CredentialScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets the page size (at least one; at most the dialect's largest page, as upstream allows).
    pub fn with_page_limit(mut self, page_limit: u32) -> Self {
        self.page_limit = Some(page_limit.max(1));
        self
    }

    /// The page size asked for.
    fn limit(&self) -> u32 {
        let largest = self.dialect.largest_page();
        self.page_limit.unwrap_or(largest).min(largest)
    }

    /// The route of a series' messages.
    fn url(&self, query: &SeriesQuery) -> Result<String, ReadError> {
        let path = self
            .dialect
            .messages_path(query.domain.as_deref(), &query.channel)
            .map_err(ReadError::Permanent)?;
        Ok(format!("{}{path}", self.base_url))
    }

    /// Sets the most pieces a read keeps in flight (at least one).
    /// Holds at most `pages` pages (fetched, or being fetched) ahead of the sink, however many
    /// requests may be in flight: the memory bound in pages, `pages` times the largest page.
    pub fn with_max_pages_held(mut self, pages: usize) -> Self {
        self.max_pages_held = pages.max(1);
        self
    }

    pub fn with_max_in_flight(mut self, pages: usize) -> Self {
        self.max_in_flight = pages.max(1);
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// One page's raw bytes, retried as the module says.
    async fn page(
        &self,
        query: &SeriesQuery,
        (from, to, offset): (DateTime<Utc>, DateTime<Utc>, u64),
        flow: &SharedFlow,
    ) -> Result<bytes::Bytes, ReadError> {
        let unit = self.dialect.time_unit();
        self.get(
            query,
            &[
                ("from", bound(from, unit)),
                ("to", bound(to, unit)),
                ("limit", self.limit().to_string()),
                ("offset", offset.to_string()),
            ],
            flow,
        )
        .await
    }

    /// One answer of the series' route with these parameters besides the series' own.
    async fn get(
        &self,
        query: &SeriesQuery,
        extra: &[(&str, String)],
        flow: &SharedFlow,
    ) -> Result<bytes::Bytes, ReadError> {
        let url = self.url(query)?;
        let mut params = vec![("subtopic", query.subtopic.clone()), ("name", query.name.clone())];
        if let Some(table) = &query.table {
            params.push(("format", table.clone()));
        }
        params.extend(extra.iter().cloned());
        let credential = format!("{} {}", self.scheme.as_str(), self.token.expose());
        let mut attempt = 0;
        loop {
            let pass = flow.enter().await;
            let started = std::time::Instant::now();
            let sent = self
                .http
                .get(&url)
                .query(&params)
                .header(reqwest::header::AUTHORIZATION, &credential)
                .send()
                .await;
            let (wait, why) = match sent {
                Ok(response) if response.status().is_success() => {
                    match capped_body(response, self.max_page_bytes).await {
                        Ok(body) => {
                            flow.answered(started.elapsed());
                            metrics::counter!(names::READER_PAGES).increment(1);
                            crate::telemetry::reader_latency(started.elapsed().as_secs_f64() * 1000.0);
                            return Ok(body);
                        }
                        Err(BodyError::TooLarge(max)) => {
                            return Err(ReadError::Permanent(format!(
                                "the reader's answer is larger than {max} bytes once decompressed (READER_PAGE_MAX_BYTES); a smaller READER_PAGE_LIMIT may help"
                            )))
                        }
                        Err(e) => (None, format!("{e}")),
                    }
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let message = reader_message(capped_text(response, 64 * 1024).await);
                    let why = format!("the reader answered {status}: {message}");
                    if matches!(status.as_u16(), 401 | 403) {
                        // A 401 is the credential itself refused (a 403 may be one channel).
                        if status.as_u16() == 401 {
                            metrics::counter!(names::READER_REFUSED).increment(1);
                        }
                        tracing::error!(
                            status = status.as_u16(),
                            reason = %message,
                            "the reader refused the service's credential (READER_TOKEN); no export can read until it is replaced"
                        );
                        return Err(ReadError::Refused(format!(
                            "{why} (replace READER_TOKEN, or check READER_CREDENTIAL_SCHEME and that the credential may read this channel)"
                        )));
                    }
                    if status.as_u16() == 404 && self.dialect.has_domains() {
                        return Err(ReadError::Permanent(format!(
                            "{why}: the reader knows no such channel in domain {} (check the item's domainId and channelId)",
                            query.domain.as_deref().unwrap_or("-")
                        )));
                    }
                    if status.as_u16() == 400 && message.contains("limit") {
                        return Err(ReadError::Permanent(format!(
                            "{why} (READER_DIALECT={} asks for pages of {}: check READER_DIALECT, or set READER_PAGE_LIMIT to what the reader takes)",
                            self.dialect,
                            self.limit()
                        )));
                    }
                    if status.is_server_error() || status.as_u16() == 429 {
                        flow.throttled();
                        (retry_after.map(|d| d.min(self.retry.cap)), why)
                    } else {
                        return Err(ReadError::Permanent(why));
                    }
                }
                Err(e) => (None, format!("the reader did not answer: {}", without_url(&e))),
            };
            drop(pass);
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(ReadError::Exhausted(why));
            }
            metrics::counter!(names::READER_RETRIES).increment(1);
            let delay = wait.unwrap_or_else(|| self.retry.delay(attempt));
            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, reason = %why, "retrying the reader");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The reader's own message, shortened: Mainflux sends `{"error","message"}`, Magistrala
/// `{"message"}`, either may send no body at all (a bare `500`).
fn reader_message(body: String) -> String {
    let value = serde_json::from_str::<serde_json::Value>(&body).ok();
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|e| e.as_str())
            .filter(|e| !e.is_empty())
    };
    let message = match (field("error"), field("message")) {
        (Some(error), Some(message)) if error != message => format!("{error}: {message}"),
        (Some(one), _) | (None, Some(one)) => one.to_owned(),
        (None, None) if body.trim().is_empty() => "(no message)".to_owned(),
        (None, None) => body,
    };
    message.chars().take(300).collect()
}

/// A transport error's text without its URL (whose query is harmless, but keep logs lean).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

impl HttpReader {
    /// After a read that found nothing: asks for the series' newest message, whatever its time,
    /// and fails when that time is implausible in the dialect's unit (a reader speaking another
    /// unit reads the window asked as another, empty, one). An empty window of a reader in the
    /// right unit stays empty.
    async fn probe(&self, query: &SeriesQuery, flow: &SharedFlow) -> Result<(), ReadError> {
        let unit = self.dialect.time_unit();
        let body = self.get(query, &[("limit", "1".to_owned())], flow).await?;
        let page = parse_in_background(body, unit).await?;
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        check_page(&page, (epoch, DateTime::<Utc>::MAX_UTC), self.dialect)?;
        // A time implausible in the unit but plausible in the other is the other unit; one
        // implausible in both is a device's bad clock, which says nothing of the unit.
        let mismatch = |t: i64| {
            !plausible().contains(&t) && in_other_unit(t, unit).is_some_and(|o| plausible().contains(&o))
        };
        match page.get().points.first() {
            Some(newest) if mismatch(newest.time_ns) => Err(ReadError::Permanent(format!(
                "the window holds no message, and the series' newest message is at {} read as Unix {} (READER_DIALECT={}): the reader likely speaks another time unit",
                rfc3339(DateTime::from_timestamp_nanos(newest.time_ns)),
                unit.as_str(),
                self.dialect
            ))),
            _ => Ok(()),
        }
    }

    /// Reads `[from, to)` in one answer when it holds every message of it; else says how to cut it.
    async fn piece(
        &self,
        query: &SeriesQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        flow: &SharedFlow,
    ) -> Result<Piece, ReadError> {
        let unit = self.dialect.time_unit();
        let page = parse_in_background(self.page(query, (from, to, 0), flow).await?, unit).await?;
        check_page(&page, (from, to), self.dialect)?;
        let (total, offset, messages) = {
            let p = page.get();
            (p.total, p.offset, p.messages)
        };
        if offset == 0 && messages >= total {
            return Ok(Piece::Whole(page, to));
        }
        let width = to - from;
        if width <= narrowest() {
            return Ok(Piece::Dense(from, to, total));
        }
        Ok(Piece::Split(from, to, total))
    }

    /// Reads a piece too dense to cut by time (more messages than a page within the narrowest
    /// width, as when many messages share one whole second). Readers order by time alone, so
    /// paging such a piece by offset could repeat or skip messages of equal time; it is read
    /// one publisher at a time instead, each in one answer where it fits, the publishers learnt
    /// from the piece's pages until their counts add up to the piece's; then the piece's total
    /// is asked again, and the piece read again if messages arrived meanwhile. Its messages are
    /// handed over together, in [`Point::order`].
    async fn dense(
        &self,
        query: &SeriesQuery,
        (from, to, mut total): (DateTime<Utc>, DateTime<Utc>, u64),
        sink: &mut (dyn SliceSink + Send),
        flow: &SharedFlow,
    ) -> Result<u64, ReadError> {
        let unit = self.dialect.time_unit();
        for _ in 0..DENSE_ROUNDS {
            let pages = self.by_publisher(query, (from, to, total), flow).await?;
            let counted: u64 = pages.iter().map(|p| p.get().points.len() as u64).sum();
            let now = parse_in_background(self.page(query, (from, to, 0), flow).await?, unit).await?;
            let now_total = now.get().total;
            if counted == total && now_total == total {
                let mut points: Vec<Point<'_>> = pages
                    .iter()
                    .flat_map(|p| p.get().points.iter().cloned())
                    .collect();
                points.sort_by(|a, b| a.order(b));
                for slice in points.chunks(self.limit() as usize) {
                    sink.accept(slice).await.map_err(ReadError::Sink)?;
                }
                return Ok(counted);
            }
            // Messages arrived (or went) while the piece was read: read it whole again.
            total = now_total;
        }
        Err(ReadError::Exhausted(format!(
            "messages kept arriving at {} while its {total} messages were read one publisher at a time",
            rfc3339(from)
        )))
    }

    /// The pages of every publisher of a dense piece of `total` messages, the publishers learnt
    /// from the piece's pages (a few rounds at most: a page may show other messages of equal
    /// time on another request) until their counts add up to `total`.
    async fn by_publisher(
        &self,
        query: &SeriesQuery,
        (from, to, total): (DateTime<Utc>, DateTime<Utc>, u64),
        flow: &SharedFlow,
    ) -> Result<Vec<OwnedPage>, ReadError> {
        let limit = u64::from(self.limit());
        let unit = self.dialect.time_unit();
        let pages_of_piece = total.div_ceil(limit).max(1);
        let mut read: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut pages: Vec<OwnedPage> = Vec::new();
        let mut counted = 0u64;
        let mut scanned = 0u64;
        while counted < total {
            if scanned >= pages_of_piece * DENSE_ROUNDS {
                return Err(ReadError::Permanent(format!(
                    "could not read the {total} messages at {} exactly: {counted} found across {} publishers (messages of one time are told apart by publisher)",
                    rfc3339(from),
                    read.len()
                )));
            }
            let offset = (scanned % pages_of_piece) * limit;
            scanned += 1;
            let page = parse_in_background(self.page(query, (from, to, offset), flow).await?, unit).await?;
            check_page(&page, (from, to), self.dialect)?;
            let mut found: Vec<String> = Vec::new();
            for point in &page.get().points {
                if !read.contains(point.publisher.as_ref())
                    && !found.iter().any(|p| p == point.publisher.as_ref())
                {
                    found.push(point.publisher.to_string());
                }
            }
            for publisher in found {
                if publisher.is_empty() {
                    return Err(ReadError::Permanent(format!(
                        "more than {limit} messages share the time {}, some without a publisher: a reader ordering by time alone cannot page them exactly",
                        rfc3339(from)
                    )));
                }
                let (count, mut of_publisher) = self
                    .publisher_pages(query, (from, to, total), &publisher, flow)
                    .await?;
                counted += count;
                pages.append(&mut of_publisher);
                read.insert(publisher);
            }
        }
        Ok(pages)
    }

    /// Every message of one publisher in a dense piece: one answer where they fit, else pages
    /// by offset, which is exact only while no time runs across two pages (checked). Returns
    /// how many, and the pages.
    async fn publisher_pages(
        &self,
        query: &SeriesQuery,
        (from, to, piece_total): (DateTime<Utc>, DateTime<Utc>, u64),
        publisher: &str,
        flow: &SharedFlow,
    ) -> Result<(u64, Vec<OwnedPage>), ReadError> {
        let limit = u64::from(self.limit());
        let unit = self.dialect.time_unit();
        let fetch = |offset: u64| {
            let extra = [
                ("publisher", publisher.to_owned()),
                ("from", bound(from, unit)),
                ("to", bound(to, unit)),
                ("limit", limit.to_string()),
                ("offset", offset.to_string()),
            ];
            async move {
                let page = parse_in_background(self.get(query, &extra, flow).await?, unit).await?;
                check_page(&page, (from, to), self.dialect)?;
                Ok::<_, ReadError>(page)
            }
        };
        let first = fetch(0).await?;
        let (total, messages) = (first.get().total, first.get().messages);
        if total > piece_total.saturating_mul(2) {
            // A count that ignores the publisher would page the whole piece, or worse, forever.
            return Err(ReadError::Permanent(format!(
                "the reader counted {total} messages of publisher {publisher} at {} where the time holds {piece_total}: it does not filter by publisher, so messages of one time cannot be read exactly",
                rfc3339(from)
            )));
        }
        let mut pages = vec![first];
        if messages < total {
            for k in 1..total.div_ceil(limit) {
                pages.push(fetch(k * limit).await?);
            }
            // Newest first: a page's oldest time equal to the next page's newest is a run of
            // equal times cut by offsets.
            let cut = pages.windows(2).find_map(|pair| {
                let older_edge = pair[0].get().points.first()?.time_ns;
                let newer_edge = pair[1].get().points.last()?.time_ns;
                (older_edge == newer_edge).then_some(older_edge)
            });
            if let Some(at) = cut {
                return Err(ReadError::Permanent(format!(
                    "more than {limit} messages of publisher {publisher} share the time {}: a reader ordering by time alone cannot page them exactly",
                    rfc3339(DateTime::from_timestamp_nanos(at))
                )));
            }
        }
        let count = pages.iter().map(|p| p.get().points.len() as u64).sum();
        Ok((count, pages))
    }
}

/// How many times a dense piece's pages are scanned for publishers before giving up.
const DENSE_ROUNDS: u64 = 3;

#[async_trait]
impl SeriesReader for HttpReader {
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        // A window with nothing in it (a read resumed at its very end) is read as empty: cut,
        // it would be cut for ever.
        if query.window.from.is_some_and(|from| from >= query.window.to) {
            return Ok(0);
        }
        let mut pieces = Pieces::default();
        pieces
            .0
            .push_back(Slot::Waiting(query.window.from.unwrap_or(epoch), query.window.to));
        let mut total_points = 0u64;
        let flow: SharedFlow = Arc::new(Gate::new(self.max_in_flight));
        let mut cutter = Cutter::new(self.limit());
        let began = std::time::Instant::now();
        loop {
            // The oldest pieces are fetched and parsed on other tasks while the sink writes: up
            // to LOOK_AHEAD times the most requests in flight are under way (memory is bounded
            // by that; a slow answer at the head then does not stall the others), their requests
            // held by the gate to what the flow allows.
            let mut at = 0;
            let ahead = (LOOK_AHEAD * self.max_in_flight).min(self.max_pages_held);
            while at < ahead && at < pieces.0.len() {
                let piece = match pieces.0[at] {
                    Slot::Waiting(from, to) => Some((from, to, false)),
                    Slot::Uncut(from, to, total) => {
                        let ((from, end), rest) = cutter.cut((from, to, total));
                        if let Some((end, to, left)) = rest {
                            pieces.0.insert(at + 1, Slot::Uncut(end, to, left));
                        }
                        Some((from, end, true))
                    }
                    Slot::Fetching(..) => None,
                };
                if let Some((from, to, cut)) = piece {
                    let (reader, query, flow) = (self.clone(), query.clone(), flow.clone());
                    pieces.0[at] = Slot::Fetching(
                        tokio::spawn(async move { reader.piece(&query, from, to, &flow).await }),
                        cut,
                    );
                }
                at += 1;
            }
            let Some(slot) = pieces.0.pop_front() else { break };
            let Slot::Fetching(task, cut) = slot else { continue };
            let piece = task
                .await
                .map_err(|e| ReadError::Permanent(format!("reading a page stopped: {e}")))??;
            match piece {
                Piece::Whole(page, to) => {
                    if cut {
                        cutter.fitted();
                    }
                    total_points += deliver(&page, sink).await?;
                    sink.boundary(to).await.map_err(ReadError::Sink)?;
                }
                Piece::Split(from, to, total) => {
                    if cut {
                        cutter.overflowed();
                    }
                    pieces.0.push_front(Slot::Uncut(from, to, total));
                }
                Piece::Dense(from, to, total) => {
                    total_points += self.dense(query, (from, to, total), sink, &flow).await?;
                    sink.boundary(to).await.map_err(ReadError::Sink)?;
                }
            }
        }
        if total_points == 0 {
            self.probe(query, &flow).await?;
        }
        if let Ok(tally) = flow.tally.lock() {
            tracing::debug!(
                points = total_points,
                answers = tally.answers,
                mean_latency_ms = tally.latency.as_secs_f64() * 1000.0 / tally.answers.max(1) as f64,
                mean_in_flight = tally.latency.as_secs_f64() / began.elapsed().as_secs_f64().max(1e-9),
                "read done"
            );
        }
        Ok(total_points)
    }

    /// One request when the window's messages fit in a page; else a second for its oldest
    /// page (the first answer, newest first, tells how many it holds).
    async fn first_page(
        &self,
        query: &SeriesQuery,
        sink: &mut (dyn SliceSink + Send),
    ) -> Result<u64, ReadError> {
        let from = query.window.from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let to = query.window.to;
        if from >= to {
            return Ok(0);
        }
        let flow: SharedFlow = Arc::new(Gate::new(1));
        let unit = self.dialect.time_unit();
        let newest = parse_in_background(self.page(query, (from, to, 0), &flow).await?, unit).await?;
        check_page(&newest, (from, to), self.dialect)?;
        let (total, messages) = (newest.get().total, newest.get().messages);
        let page = if messages >= total {
            newest
        } else {
            let offset = total.saturating_sub(u64::from(self.limit()));
            let oldest =
                parse_in_background(self.page(query, (from, to, offset), &flow).await?, unit).await?;
            check_page(&oldest, (from, to), self.dialect)?;
            oldest
        };
        deliver(&page, sink).await?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_camel_and_snake_case_fields() {
        let body = br#"{"total":2,"offset":0,"limit":10,"messages":[
            {"channel":"c","name":"n","time":1.5,"stringValue":"s","boolValue":true,"valueSum":3,"updateTime":7},
            {"channel":"c","name":"n","time":2,"string_value":"t","bool_value":false,"data_value":"d","update_time":8,"extra":1}]}"#;
        let page = parse_page(body).expect("a page");
        let points = page.points;
        assert_eq!(points[0].time_ns, 1_500_000_000);
        assert_eq!(points[0].string_value.as_deref(), Some("s"));
        assert_eq!(points[0].bool_value, Some(true));
        assert_eq!(points[0].sum, Some(3.0));
        assert_eq!(points[0].update_time, Some(7.0));
        assert_eq!(points[1].string_value.as_deref(), Some("t"));
        assert_eq!(points[1].data_value.as_deref(), Some("d"));
        assert_eq!(points[1].bool_value, Some(false));
    }

    #[test]
    fn pieces_grow_towards_a_full_page_while_they_fit_and_shrink_when_one_does_not() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).expect("in range");
        let mut cutter = Cutter::new(1000);
        // A million messages, one a second: the first piece is cut at nineteen twentieths.
        let ((from, end), rest) = cutter.cut((at(0), at(1_000_000), 1_000_000));
        assert_eq!((from, end), (at(0), at(950)));
        assert_eq!(rest, Some((at(950), at(1_000_000), 999_050)));
        for _ in 0..100 {
            cutter.fitted();
        }
        let ((_, end), _) = cutter.cut((at(0), at(1_000_000), 1_000_000));
        assert!((at(997)..=at(998)).contains(&end), "{end}");
        cutter.overflowed();
        let ((_, end), _) = cutter.cut((at(0), at(1_000_000), 1_000_000));
        assert!((at(898)..=at(899)).contains(&end), "{end}");
        for _ in 0..100 {
            cutter.overflowed();
        }
        let ((_, end), _) = cutter.cut((at(0), at(1_000_000), 1_000_000));
        assert_eq!(end, at(500), "never below half a page");
        // A range that fits is one piece; a piece is never cut narrower than time can.
        assert_eq!(cutter.cut((at(0), at(10), 400)), ((at(0), at(10)), None));
        let ((from, end), _) = cutter.cut((at(0), at(1), 1_000_000_000));
        assert_eq!(end - from, narrowest() / 2);
    }

    #[test]
    fn every_dialects_error_shape_gives_its_message() {
        // Mainflux 0.13, Magistrala 0.14: `{"error","message"}`; Magistrala >= 0.15: `{"message"}`.
        assert_eq!(
            reader_message(r#"{"error":"entity not found","message":"failed to read"}"#.into()),
            "entity not found: failed to read"
        );
        assert_eq!(
            reader_message(r#"{"message":"failed to authenticate"}"#.into()),
            "failed to authenticate"
        );
        assert_eq!(
            reader_message(r#"{"error":"invalid limit"}"#.into()),
            "invalid limit"
        );
        assert_eq!(reader_message(String::new()), "(no message)");
        assert_eq!(reader_message("bad gateway".into()), "bad gateway");
    }

    #[test]
    fn window_bounds_go_out_in_the_dialects_unit() {
        let t = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("in range");
        assert_eq!(bound(t, TimeUnit::Seconds), "1767225600.123456789");
        assert_eq!(bound(t, TimeUnit::Nanoseconds), "1767225600123456789");
        assert_eq!(bound(DateTime::<Utc>::UNIX_EPOCH, TimeUnit::Nanoseconds), "0");
    }

    #[test]
    fn reader_times_keep_their_fraction() {
        let t = DateTime::from_timestamp(1_767_225_600, 250_000_000).expect("in range");
        assert_eq!(unix_seconds(t), "1767225600.25");
        assert_eq!(
            unix_seconds(DateTime::from_timestamp(5, 0).expect("in range")),
            "5"
        );
    }
}
