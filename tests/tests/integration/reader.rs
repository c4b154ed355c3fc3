//! The reader client against the project's local reader: paging, slicing, order, retries and
//! permanent failures, exactly as the upstream contract behaves.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;

use exporter_adapters::reader::HttpReader;
use exporter_adapters::support::{Retry, Secret};
use exporter_core::domain::series::Point;
use exporter_core::domain::Window;
use exporter_core::ports::{Cause, ReadError, SeriesQuery, SeriesReader, SliceSink};
use integration_tests::reader_server::{start, ReaderConfig};

const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[derive(Default)]
struct Collect {
    times: Vec<i64>,
    values: Vec<Option<f64>>,
    largest_slice: usize,
}

#[async_trait]
impl SliceSink for Collect {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.largest_slice = self.largest_slice.max(points.len());
        self.times
            .extend(points.iter().map(|p| p.time_ns / 1_000_000_000));
        self.values.extend(points.iter().map(|p| p.value));
        Ok(())
    }
}

fn query(from: i64, to: i64) -> SeriesQuery {
    SeriesQuery {
        domain: None,
        channel: "0115c85d-ef3e-4de9-9732-d0c5c4f2c482".into(),
        subtopic: "events.data".into(),
        name: "urn:dev:temperature".into(),
        table: None,
        window: Window {
            from: DateTime::from_timestamp(from, 0),
            to: DateTime::from_timestamp(to, 0).unwrap_or_default(),
        },
    }
}

/// Reads `[from, to)` from the reader at `url` (token `t0k3n`) in pages of `limit` and slices of
/// at most `slice` points; returns how many points the client counted and what the sink got.
async fn read_through(url: &str, limit: u32, from: i64, to: i64) -> (u64, Collect) {
    let reader = HttpReader::new(url, Secret::new("t0k3n"))
        .expect("client")
        .with_page_limit(limit)
        .with_retry(quick());
    let mut sink = Collect::default();
    let read = reader.read(&query(from, to), &mut sink).await.expect("read");
    (read, sink)
}

/// A point a minute over `[from, to)`, as the local reader serves them at a step of 60 s.
fn every_minute(from: i64, to: i64) -> Vec<i64> {
    (from..to).step_by(60).collect()
}

fn quick() -> Retry {
    Retry {
        attempts: 4,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn reads_a_day_oldest_first_in_bounded_slices() {
    let (url, _) = start(ReaderConfig::new("t0k3n", START, 60)).await;
    let (read, sink) = read_through(&url, 100, START, START + 86_400).await;
    assert_eq!(read, 1440);
    assert_eq!(sink.times, every_minute(START, START + 86_400));
    assert!(
        sink.largest_slice <= 300,
        "a slice held {} points",
        sink.largest_slice
    );
    // value = 20 + (k mod 1000) / 8, computed here independently of the server.
    assert_eq!(sink.values[0], Some(20.0));
    assert_eq!(sink.values[1001], Some(20.125));
}

#[tokio::test]
async fn windows_are_half_open() {
    let (url, _) = start(ReaderConfig::new("t", START, 60)).await;
    let reader = HttpReader::new(&url, Secret::new("t")).expect("client");
    let mut sink = Collect::default();
    reader
        .read(&query(START, START + 600), &mut sink)
        .await
        .expect("read");
    assert_eq!(sink.times.first(), Some(&START));
    assert_eq!(sink.times.last(), Some(&(START + 540)));
    assert_eq!(sink.times.len(), 10);
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let config = ReaderConfig::new("t", START, 60);
    config.fail_first.store(2, Ordering::SeqCst);
    let (url, state) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new("t"))
        .expect("client")
        .with_retry(quick());
    let mut sink = Collect::default();
    reader
        .read(&query(START, START + 600), &mut sink)
        .await
        .expect("read after retries");
    assert_eq!(sink.times.len(), 10);
    assert_eq!(state.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_reader_failing_forever_gives_up_with_its_message() {
    let mut config = ReaderConfig::new("t", START, 60);
    config.always_fail = Some(500);
    let (url, state) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new("t"))
        .expect("client")
        .with_retry(quick());
    let error = reader
        .read(&query(START, START + 600), &mut Collect::default())
        .await
        .expect_err("fails");
    assert!(matches!(error, ReadError::Exhausted(_)), "{error:?}");
    assert!(
        error.to_string().contains("reader database unavailable"),
        "{error}"
    );
    assert_eq!(state.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_refused_credential_fails_at_once_saying_so_and_the_token_is_not_shown() {
    let (url, state) = start(ReaderConfig::new("right", START, 60)).await;
    let reader = HttpReader::new(&url, Secret::new("wrong-secret"))
        .expect("client")
        .with_retry(quick());
    let error = reader
        .read(&query(START, START + 600), &mut Collect::default())
        .await
        .expect_err("fails");
    assert!(matches!(error, ReadError::Refused(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("the reader refused the service's credential"),
        "{text}"
    );
    assert!(
        text.contains("invalid credentials") && text.contains("READER_TOKEN"),
        "{text}"
    );
    assert!(!format!("{error:?} {reader:?}").contains("wrong-secret"));
    assert_eq!(state.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn recorded_messages_are_served_by_channel_subtopic_name_and_window_newest_first() {
    let channel = "0115c85d-ef3e-4de9-9732-d0c5c4f2c482";
    let mut messages = Vec::new();
    for k in 0..25 {
        // Out of order on purpose, with other series mixed in.
        let t = START + ((k * 7) % 25) * 60;
        messages.push(serde_json::json!({"channel": channel, "subtopic": "events.data", "name": "urn:dev:temperature", "unit": "Cel", "time": t, "value": k}));
        messages.push(serde_json::json!({"channel": channel, "subtopic": "events.other", "name": "urn:dev:temperature", "time": t, "value": -1}));
        messages.push(serde_json::json!({"channel": channel, "subtopic": "events.data", "name": "urn:dev:humidity", "time": t, "value": -2}));
    }
    let file = serde_json::to_string(&serde_json::json!({"total": 75, "messages": messages})).expect("JSON");
    let loaded = integration_tests::reader_server::load_messages(&file).expect("a reader answer loads");
    let (url, _) = start(ReaderConfig::new("t0k3n", START, 60).with_messages(loaded)).await;
    let (read, sink) = read_through(&url, 4, START + 60, START + 20 * 60).await;
    assert_eq!(read, 19);
    assert_eq!(
        sink.times,
        every_minute(START + 60, START + 20 * 60),
        "oldest first, half-open window, one series"
    );
    assert!(sink.values.iter().all(|v| v.is_some_and(|v| v >= 0.0)));
    assert!(integration_tests::reader_server::load_messages("[{\"value\": 1}]").is_err());
}

#[tokio::test]
async fn pages_are_fetched_a_few_at_a_time_and_handed_over_in_order() {
    let mut config = ReaderConfig::new("t0k3n", START, 60);
    config.latency = Duration::from_millis(40);
    let (url, state) = start(config).await;
    let (read, sink) = read_through(&url, 100, START, START + 86_400).await;
    assert_eq!(read, 1440);
    assert_eq!(
        sink.times,
        every_minute(START, START + 86_400),
        "oldest first across pages fetched out of order"
    );
    let most = state.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} requests at once");
}

/// Reads ten days of minutes in pages of 100 with at most `max` pieces in flight; returns the
/// times read.
async fn read_adaptively(url: &str, max: usize) -> Vec<i64> {
    let reader = HttpReader::new(url, Secret::new("t0k3n"))
        .expect("client")
        .with_page_limit(100)
        .with_max_in_flight(max)
        .with_retry(Retry {
            attempts: 10,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
        });
    let mut sink = Collect::default();
    let read = reader
        .read(&query(START, START + 10 * 86_400), &mut sink)
        .await
        .expect("read");
    assert_eq!(read, 14_400);
    sink.times
}

#[tokio::test]
async fn pages_in_flight_grow_while_latency_holds_up_to_the_most_and_no_further() {
    let mut config = ReaderConfig::new("t0k3n", START, 60);
    config.latency = Duration::from_millis(20);
    let (url, state) = start(config).await;
    let times = read_adaptively(&url, 6).await;
    assert_eq!(times, every_minute(START, START + 10 * 86_400));
    let most = state.most_in_flight.load(Ordering::SeqCst);
    assert!(
        (5..=6).contains(&most),
        "grew from 2 towards the most of 6: {most}"
    );
}

#[tokio::test]
async fn the_adaptive_reader_backs_off_a_reader_that_answers_429_under_load_and_stays_within_its_bounds() {
    let mut config = ReaderConfig::new("t0k3n", START, 60);
    config.latency = Duration::from_millis(10);
    config.throttle_above = Some(3);
    let (url, state) = start(config).await;
    let times = read_adaptively(&url, 8).await;
    assert_eq!(
        times,
        every_minute(START, START + 10 * 86_400),
        "every point once, in order"
    );
    let most = state.most_in_flight.load(Ordering::SeqCst);
    let throttled = state.throttled.load(Ordering::SeqCst);
    let requests = state.requests.load(Ordering::SeqCst);
    println!("adaptive: {requests} requests, {throttled} answered 429, at most {most} at once");
    assert!(most <= 8, "within the most: {most}");
    assert!(
        throttled * 10 < requests,
        "it backs off rather than hammering: {throttled} of {requests} answered 429"
    );
}

#[tokio::test]
async fn compressed_answers_are_asked_for_and_read() {
    let mut config = ReaderConfig::new("t0k3n", START, 60);
    config.gzip = true;
    let (url, state) = start(config).await;
    let (read, sink) = read_through(&url, 100, START, START + 3600).await;
    assert_eq!(read, 60);
    assert_eq!(sink.times, every_minute(START, START + 3600));
    assert_eq!(sink.values[1], Some(20.125));
    assert!(
        state.compressed.load(Ordering::SeqCst) > 0,
        "the client asks for gzip"
    );
}

#[tokio::test]
async fn a_gzip_bomb_fails_the_read_by_its_size_and_never_fills_memory() {
    let mut config = ReaderConfig::new("t", START, 60);
    config.bomb_bytes = Some(256 * 1024 * 1024);
    let (url, _) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new("t"))
        .expect("client")
        .with_retry(quick())
        .with_max_page_bytes(1024 * 1024);
    let mut sink = Collect::default();
    let error = reader
        .read(&query(START, START + 3600), &mut sink)
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, ReadError::Permanent(m) if m.contains("larger than 1048576 bytes")),
        "{error}"
    );
}

#[tokio::test]
async fn late_data_arriving_during_a_read_is_never_read_twice_nor_shifts_others_out() {
    // 2,000 recorded messages a minute apart; after the third request the platform ingests four
    // late ones stamped inside the window, near its end (newest first, so they shift offsets).
    let message = |t: i64| {
        serde_json::json!({"channel": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482", "subtopic": "events.data",
                           "name": "urn:dev:temperature", "time": t as f64, "value": (t - START) as f64})
    };
    let original: Vec<i64> = (0..2000).map(|k| START + 60 * k).collect();
    let config =
        ReaderConfig::new("t0k3n", START, 60).with_messages(original.iter().map(|t| message(*t)).collect());
    let late: Vec<i64> = (0..4).map(|k| START + 60 * 1990 + 30 + k).collect();
    if let Ok(mut slot) = config.late.lock() {
        *slot = Some((3, late.iter().map(|t| message(*t)).collect()));
    }
    let (url, state) = start(config).await;
    let (read, sink) = read_through(&url, 100, START, START + 60 * 2000).await;
    assert!(
        state.requests.load(Ordering::SeqCst) > 3,
        "the late data arrived during the read"
    );
    assert!(
        sink.times.windows(2).all(|w| w[0] < w[1]),
        "oldest first, nothing twice: {:?}",
        sink.times.windows(2).find(|w| w[0] >= w[1])
    );
    let got: std::collections::BTreeSet<i64> = sink.times.iter().copied().collect();
    assert!(
        original.iter().all(|t| got.contains(t)),
        "no original message dropped"
    );
    assert_eq!(read as usize, sink.times.len());
    assert!(
        sink.times.len() == 2000 || sink.times.len() == 2004,
        "{}",
        sink.times.len()
    );
}

/// A sink that writes slowly, noting how many requests the reader had made at each slice.
struct Slow {
    state: std::sync::Arc<integration_tests::reader_server::ReaderConfig>,
    requests_at: Vec<u64>,
}

#[async_trait]
impl SliceSink for Slow {
    async fn accept(&mut self, _: &[Point<'_>]) -> Result<(), Cause> {
        self.requests_at.push(self.state.requests.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(())
    }
}

/// Pages wait for a slow sink: the reader holds at most its budget of pages (fetched or being
/// fetched) ahead of the sink, whatever its requests in flight would allow, so its memory is
/// that many of the largest pages at most.
#[tokio::test]
async fn pages_held_ahead_of_a_slow_sink_stay_within_the_budget() {
    let mut config = ReaderConfig::new("t0k3n", START, 60);
    config.latency = Duration::from_millis(1);
    let (url, state) = start(config).await;
    let reader = HttpReader::new(&url, Secret::new("t0k3n"))
        .expect("client")
        .with_page_limit(100)
        .with_max_in_flight(8)
        .with_max_pages_held(3);
    let mut sink = Slow {
        state: state.clone(),
        requests_at: Vec::new(),
    };
    let read = reader
        .read(&query(START, START + 86_400), &mut sink)
        .await
        .expect("read");
    assert_eq!(read, 1440);
    for (delivered, requests) in sink.requests_at.iter().enumerate() {
        // The page being delivered, and three held ahead of it (a count request per read too).
        assert!(
            *requests <= delivered as u64 + 1 + 3 + 1,
            "{requests} requests made when the sink took its page {delivered}: {:?}",
            sink.requests_at
        );
    }
}
