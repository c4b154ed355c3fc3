//! The platform's reader API (spec section 6): `GET {url}/channels/{id}/messages` with a bearer
//! token, `from`/`to` half-open in Unix seconds, `limit` at most 1000, newest first.
//!
//! A series is read oldest first with bounded memory: the window is cut into slices of at most
//! `max_slice_points` points (halving a slice that holds more, which also keeps offsets small);
//! a slice's pages are fetched from the oldest (highest offset), a few at a time, each parsed and
//! sorted oldest first on other tasks and handed over in order, so memory holds only the pages
//! in flight. Timeouts, `5xx` and `429` are retried with exponential backoff and full jitter,
//! honouring `Retry-After`; any other answer fails with the reader's message. The token is
//! never logged.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{ReadError, SeriesQuery, SeriesReader, SliceSink};
use crate::support::{capped_body, capped_text, retry_after, BodyError, Retry, Secret};

pub use crate::page::{parse_owned, parse_page, OwnedPage, Page, PageError, PagePoints};

/// Messages per page by default: the most upstream serves.
pub const DEFAULT_PAGE_LIMIT: u32 = 1000;
/// The most points held at once by default; larger slices of a window are halved.
pub const DEFAULT_SLICE_POINTS: u64 = 50_000;

/// The largest page accepted by default, decompressed: pages of 1000 messages are a few hundred
/// kilobytes, so this only stops an answer that is not a page (a gzip bomb, a runaway proxy).
pub const DEFAULT_PAGE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Pages fetched and parsed at once while the sink writes an older one.
const PAGES_IN_FLIGHT: usize = 4;

/// The reader client.
#[derive(Clone, Debug)]
pub struct HttpReader {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    page_limit: u32,
    max_slice_points: u64,
    max_page_bytes: usize,
    retry: Retry,
}

/// A page on its way: fetched (unless it was already) and parsed on another task.
type PageTask = tokio::task::JoinHandle<Result<OwnedPage, ReadError>>;

/// The pages being fetched and parsed, oldest first; dropped early (an error), it stops them.
#[derive(Default)]
struct InFlight(VecDeque<PageTask>);

impl InFlight {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn push(&mut self, task: PageTask) {
        self.0.push_back(task);
    }

    fn pop(&mut self) -> Option<PageTask> {
        self.0.pop_front()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Parses a page's body on the blocking pool.
async fn parse_in_background(body: bytes::Bytes) -> Result<OwnedPage, ReadError> {
    tokio::task::spawn_blocking(move || parse_owned(Vec::from(body)))
        .await
        .map_err(|e| ReadError::Permanent(format!("parsing a page stopped: {e}")))?
        .map_err(|e| ReadError::Permanent(format!("the reader's answer is not a page: {e}")))
}

/// Waits for a page and hands its points to the sink; returns how many there were.
async fn deliver(task: PageTask, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
    let page = task
        .await
        .map_err(|e| ReadError::Permanent(format!("reading a page stopped: {e}")))??;
    let points = &page.get().0;
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
            max_slice_points: DEFAULT_SLICE_POINTS,
            max_page_bytes: DEFAULT_PAGE_MAX_BYTES,
            retry: Retry::default(),
        })
    }

    /// Refuses pages larger than `bytes` once decompressed.
    pub fn with_max_page_bytes(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes;
        self
    }

    /// Sets the page size (at most 1000, as upstream allows) and the largest slice held at once.
    pub fn with_paging(mut self, page_limit: u32, max_slice_points: u64) -> Self {
        self.page_limit = page_limit.clamp(1, DEFAULT_PAGE_LIMIT);
        self.max_slice_points = max_slice_points.max(u64::from(self.page_limit));
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
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        offset: u64,
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
                        Ok(body) => return Ok(body),
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
                        (retry_after.map(|d| d.min(self.retry.cap)), why)
                    } else {
                        return Err(ReadError::Permanent(why));
                    }
                }
                Err(e) => (None, format!("the reader did not answer: {}", without_url(&e))),
            };
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

#[async_trait]
impl SeriesReader for HttpReader {
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let mut pending = vec![(query.window.from.unwrap_or(epoch), query.window.to)];
        let mut total_points = 0u64;
        while let Some((from, to)) = pending.pop() {
            if from >= to {
                continue;
            }
            let first = self.page(query, from, to, 0).await?;
            let page = parse_page(&first)
                .map_err(|e| ReadError::Permanent(format!("the reader's answer is not a page: {e}")))?;
            let total = page.total;
            let width = to - from;
            if total > self.max_slice_points && width > chrono::TimeDelta::milliseconds(2) {
                // Too many points to hold: read the older half first, then the newer.
                let middle = from + width / 2;
                pending.push((middle, to));
                pending.push((from, middle));
                continue;
            }
            drop(page);
            // Upstream answers `limit` messages a page, newest first, so the oldest page has the
            // highest offset. Pages are fetched and parsed a few at a time on other tasks, from
            // the oldest, and handed to the sink in order: the reader's latency, the parsing
            // and the writing overlap, and memory holds only the pages in flight.
            let limit = u64::from(self.page_limit);
            let mut offsets = (1..total.div_ceil(limit.max(1))).rev().map(|k| k * limit);
            let mut in_flight = InFlight::default();
            let mut newest = Some(first);
            loop {
                while in_flight.len() < PAGES_IN_FLIGHT {
                    if let Some(offset) = offsets.next() {
                        let reader = self.clone();
                        let (query, from, to) = (query.clone(), from, to);
                        in_flight.push(tokio::spawn(async move {
                            let body = reader.page(&query, from, to, offset).await?;
                            parse_in_background(body).await
                        }));
                    } else if let Some(body) = newest.take() {
                        in_flight.push(tokio::spawn(parse_in_background(body)));
                    } else {
                        break;
                    }
                }
                let Some(next) = in_flight.pop() else { break };
                total_points += deliver(next, sink).await?;
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
