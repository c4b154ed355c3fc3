//! The platform's reader API (spec section 6): `GET {url}/channels/{id}/messages` with a bearer
//! token, `from`/`to` half-open in Unix seconds, `limit` at most 1000, newest first.
//!
//! A series is read oldest first with bounded memory, and consistently while the platform ingests
//! late data: the window is cut by time into pieces that each fit in one answer (a piece whose
//! answer does not hold all its messages is cut again, in proportion to its total), so every
//! piece is one consistent snapshot and no message is read twice or missed because offsets
//! shifted under the reader. Pieces are fetched a few at a time (as many as [`Flow`] allows), each parsed and sorted oldest
//! first on other tasks, and handed over in order, so memory holds only the pieces in flight.
//! (A piece of more messages than a page within two milliseconds, which time cannot cut, is read
//! by offsets.) Timeouts, `5xx` and `429` are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; any other answer fails with the reader's message. The token is
//! never logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::flow::{Flow, DEFAULT_MAX_IN_FLIGHT};
use crate::ports::{ReadError, SeriesQuery, SeriesReader, SliceSink};
use crate::support::{capped_body, capped_text, retry_after, BodyError, Retry, Secret};

pub use crate::page::{parse_owned, parse_page, OwnedPage, Page, PageError, PagePoints};

/// Messages per page by default: the most upstream serves.
pub const DEFAULT_PAGE_LIMIT: u32 = 1000;
/// The largest page accepted by default, decompressed: pages of 1000 messages are a few hundred
/// kilobytes, so this only stops an answer that is not a page (a gzip bomb, a runaway proxy).
pub const DEFAULT_PAGE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// The reader client.
#[derive(Clone, Debug)]
pub struct HttpReader {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    page_limit: u32,
    max_page_bytes: usize,
    retry: Retry,
    /// The most pieces in flight; how many are is adapted to the reader ([`Flow`]).
    max_in_flight: usize,
}

/// A read's requests under way, held to what its flow controller allows; shared with the tasks
/// fetching its pieces. Only a request holds a pass: parsing a page, waiting for an older piece
/// to be handed over, or a retry's pause do not, so the reader always has as many requests as
/// the flow allows.
struct Gate {
    state: Mutex<(Flow, usize)>,
    freed: tokio::sync::Notify,
}

type SharedFlow = Arc<Gate>;

/// A request's place under the gate, given back when dropped.
struct Pass<'g>(&'g Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.1 = state.1.saturating_sub(1);
        }
        self.0.freed.notify_waiters();
    }
}

impl Gate {
    fn new(max: usize) -> Self {
        Self {
            state: Mutex::new((Flow::new(max), 0)),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Waits until one more request may go.
    async fn enter(&self) -> Pass<'_> {
        loop {
            let freed = self.freed.notified();
            if let Ok(mut state) = self.state.lock() {
                if state.1 < state.0.allowed() {
                    state.1 += 1;
                    return Pass(self);
                }
            }
            freed.await;
        }
    }

    fn answered(&self, latency: Duration) {
        if let Ok(mut state) = self.state.lock() {
            state.0.answered(latency);
        }
        // The flow may allow more now.
        self.freed.notify_waiters();
    }

    fn throttled(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0.throttled();
        }
    }
}

/// A piece on its way: fetched and parsed on another task.
type PieceTask = tokio::task::JoinHandle<Result<Piece, ReadError>>;

/// What reading one piece of the window gave.
enum Piece {
    /// Every message of the piece, in one answer: a consistent snapshot; the piece's end.
    Whole(OwnedPage, DateTime<Utc>),
    /// More messages than one answer holds: read these parts of it instead, in order.
    Split(Vec<(DateTime<Utc>, DateTime<Utc>)>),
    /// More messages than a page within a width time cannot cut: read by offsets.
    Dense(DateTime<Utc>, DateTime<Utc>, u64),
}

/// The pieces still to hand over, oldest first: the first few fetched on other tasks, the rest
/// waiting. Dropped early (an error), it stops the tasks.
#[derive(Default)]
struct Pieces(VecDeque<Slot>);

enum Slot {
    Waiting(DateTime<Utc>, DateTime<Utc>),
    Fetching(PieceTask),
}

impl Drop for Pieces {
    fn drop(&mut self) {
        for slot in &self.0 {
            if let Slot::Fetching(task) = slot {
                task.abort();
            }
        }
    }
}

/// The narrowest piece time still cuts.
fn narrowest() -> chrono::TimeDelta {
    chrono::TimeDelta::milliseconds(2)
}

/// Parses a page's body on the blocking pool.
async fn parse_in_background(body: bytes::Bytes) -> Result<OwnedPage, ReadError> {
    tokio::task::spawn_blocking(move || parse_owned(Vec::from(body)))
        .await
        .map_err(|e| ReadError::Permanent(format!("parsing a page stopped: {e}")))?
        .map_err(|e| ReadError::Permanent(format!("the reader's answer is not a page: {e}")))
}

/// Hands a parsed page's points to the sink; returns how many there were.
async fn deliver(page: &OwnedPage, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
    let points = &page.get().points;
    sink.accept(points).await.map_err(ReadError::Sink)?;
    Ok(points.len() as u64)
}

/// Unix seconds with up to nine decimals, as the reader's `from`/`to` take them.
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
    /// A client for the reader at `base_url`, sending `token` as a bearer token.
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
            page_limit: DEFAULT_PAGE_LIMIT,
            max_page_bytes: DEFAULT_PAGE_MAX_BYTES,
            retry: Retry::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// Refuses pages larger than `bytes` once decompressed.
    pub fn with_max_page_bytes(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes;
        self
    }

    /// Sets the page size (at most 1000, as upstream allows).
    pub fn with_page_limit(mut self, page_limit: u32) -> Self {
        self.page_limit = page_limit.clamp(1, DEFAULT_PAGE_LIMIT);
        self
    }

    /// Sets the most pieces a read keeps in flight (at least one).
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
        let url = format!("{}/channels/{}/messages", self.base_url, query.channel);
        let params = [
            ("subtopic", query.subtopic.clone()),
            ("name", query.name.clone()),
            ("from", unix_seconds(from)),
            ("to", unix_seconds(to)),
            ("limit", self.page_limit.to_string()),
            ("offset", offset.to_string()),
        ];
        let mut attempt = 0;
        loop {
            let pass = flow.enter().await;
            let started = std::time::Instant::now();
            let sent = self
                .http
                .get(&url)
                .query(&params)
                .bearer_auth(self.token.expose())
                .send()
                .await;
            let (wait, why) = match sent {
                Ok(response) if response.status().is_success() => {
                    match capped_body(response, self.max_page_bytes).await {
                        Ok(body) => {
                            flow.answered(started.elapsed());
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
            let delay = wait.unwrap_or_else(|| self.retry.delay(attempt));
            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, reason = %why, "retrying the reader");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The reader's own message: `{"error": "..."}` when it sends one, else the text, shortened.
fn reader_message(body: String) -> String {
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(body);
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
    /// Reads `[from, to)` in one answer when it holds every message of it; else says how to cut it.
    async fn piece(
        &self,
        query: &SeriesQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        flow: &SharedFlow,
    ) -> Result<Piece, ReadError> {
        let page = parse_in_background(self.page(query, (from, to, 0), flow).await?).await?;
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
        // Parts of about nineteen twentieths of a page each, were the messages spread evenly: most then
        // fit in one answer, and a denser one is cut again.
        let per_part = (u64::from(self.page_limit) * 19 / 20).max(1);
        let parts = total.div_ceil(per_part).clamp(2, 1 << 20);
        let step = (width / i32::try_from(parts).unwrap_or(i32::MAX)).max(narrowest() / 2);
        let mut cuts = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + step).min(to);
            cuts.push((start, end));
            start = end;
        }
        Ok(Piece::Split(cuts))
    }

    /// Reads a piece too dense to cut by time page by page by offset, oldest page first.
    async fn dense(
        &self,
        query: &SeriesQuery,
        (from, to, total): (DateTime<Utc>, DateTime<Utc>, u64),
        sink: &mut (dyn SliceSink + Send),
        flow: &SharedFlow,
    ) -> Result<u64, ReadError> {
        let limit = u64::from(self.page_limit).max(1);
        let mut read = 0;
        for k in (0..total.div_ceil(limit)).rev() {
            let page = parse_in_background(self.page(query, (from, to, k * limit), flow).await?).await?;
            read += deliver(&page, sink).await?;
        }
        Ok(read)
    }
}

#[async_trait]
impl SeriesReader for HttpReader {
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let mut pieces = Pieces::default();
        pieces
            .0
            .push_back(Slot::Waiting(query.window.from.unwrap_or(epoch), query.window.to));
        let mut total_points = 0u64;
        let flow: SharedFlow = Arc::new(Gate::new(self.max_in_flight));
        loop {
            // The oldest pieces are fetched and parsed on other tasks while the sink writes: up
            // to twice the most requests in flight are under way (memory is bounded by that),
            // their requests held by the gate to what the flow allows.
            for slot in pieces.0.iter_mut().take(2 * self.max_in_flight) {
                if let Slot::Waiting(from, to) = *slot {
                    let (reader, query, flow) = (self.clone(), query.clone(), flow.clone());
                    *slot = Slot::Fetching(tokio::spawn(async move {
                        reader.piece(&query, from, to, &flow).await
                    }));
                }
            }
            let Some(slot) = pieces.0.pop_front() else { break };
            let Slot::Fetching(task) = slot else { continue };
            let piece = task
                .await
                .map_err(|e| ReadError::Permanent(format!("reading a page stopped: {e}")))??;
            match piece {
                Piece::Whole(page, to) => {
                    total_points += deliver(&page, sink).await?;
                    sink.boundary(to).await.map_err(ReadError::Sink)?;
                }
                Piece::Split(parts) => {
                    for (from, to) in parts.into_iter().rev() {
                        if from < to {
                            pieces.0.push_front(Slot::Waiting(from, to));
                        }
                    }
                }
                Piece::Dense(from, to, total) => {
                    total_points += self.dense(query, (from, to, total), sink, &flow).await?;
                    sink.boundary(to).await.map_err(ReadError::Sink)?;
                }
            }
        }
        Ok(total_points)
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
    fn reader_times_keep_their_fraction() {
        let t = DateTime::from_timestamp(1_767_225_600, 250_000_000).expect("in range");
        assert_eq!(unix_seconds(t), "1767225600.25");
        assert_eq!(
            unix_seconds(DateTime::from_timestamp(5, 0).expect("in range")),
            "5"
        );
    }
}
