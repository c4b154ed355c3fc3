//! The end-to-end benchmark (`make bench`): run-export's handler, in this release-built
//! process, on the local stack (moto) and a local reader in a process of its own that takes a
//! set latency per answer (`READER_URL`, `READER_LATENCY_MS`). For each size, a one-time CSV
//! export of that many points (a point a second) runs to its end; printed: time, points per
//! second against the reader-bound limit (pages in flight x 1000 / latency), the share of it,
//! and the process's peak RSS; an unreported export of 300,001 points warms the stack up first. `--continue SIZE BUDGET_S` runs one export with a budget per
//! invocation, invocations one after the other, and prints their number. Figures only.
//!   e2e-bench SIZE... [--continue SIZE BUDGET_S]

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use exporter_adapters::reader::HttpReader;
use exporter_adapters::support::Secret;
use exporter_core::domain::job::JobStatus;
use exporter_core::domain::RunEvent;
use exporter_core::ports::{JobHistory, ReadError, SeriesQuery, SeriesReader, SliceSink};
use integration_tests::doubles::{HandOffs, Launches};
use integration_tests::{someone, Fixture, READER_START};
use run_export::{handle, RunConfig};

/// The points of the export that warms the stack up (a file of two parts), not reported.
const WARM_UP_POINTS: i64 = 300_001;

/// The reader, timed: how long its reads took (the rest of a run is writing the file's last
/// bytes and storing it).
struct Clocked(HttpReader, std::sync::Mutex<std::time::Duration>);

#[async_trait::async_trait]
impl SeriesReader for Clocked {
    async fn read(&self, query: &SeriesQuery, sink: &mut (dyn SliceSink + Send)) -> Result<u64, ReadError> {
        let started = Instant::now();
        let read = self.0.read(query, sink).await;
        if let Ok(mut total) = self.1.lock() {
            *total += started.elapsed();
        }
        read
    }
}

impl Clocked {
    fn take(&self) -> f64 {
        self.1
            .lock()
            .map(|mut t| std::mem::take(&mut *t).as_secs_f64())
            .unwrap_or_default()
    }
}

/// The process's peak resident set, in MiB (Linux's `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create(fx: &Fixture, who: &[(String, String)], points: i64) -> RunEvent {
    let body = json!({
        "format": {"extension": "csv", "timezone": "Europe/Rome",
            "columns": [{"id": "time", "label": "Time"}, {"id": "value", "label": "Value"}]},
        "type": "oneTime",
        "items": [{"params": {"target": {"value": "urn:dev:bench"}, "channelId": "0115c85d-ef3e-4de9-9732-d0c5c4f2c482",
            "subtopic": "events.data", "from": READER_START, "to": READER_START + points}}],
        "notification": {"messages": []}
    });
    let (status, export) = fx.call("POST", "/exports", Some(&body), who).await;
    assert_eq!(status, 201, "{export}");
    RunEvent {
        export_id: export["id"].as_str().and_then(|i| i.parse().ok()).expect("an id"),
        scheduled_at: export["createdAt"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .expect("createdAt"),
        occurrence: None,
        leg: None,
        item: None,
        extra: None,
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let continued = args.iter().position(|a| a == "--continue").map(|at| {
        let rest: Vec<String> = args.drain(at..).skip(1).collect();
        let size: i64 = rest
            .first()
            .and_then(|s| s.parse().ok())
            .expect("--continue SIZE BUDGET_S");
        let budget: i64 = rest
            .get(1)
            .and_then(|s| s.parse().ok())
            .expect("--continue SIZE BUDGET_S");
        (size, budget)
    });
    let sizes: Vec<i64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let fx = Fixture::new()
        .await
        .expect("the local stack runs (scripts/stack.sh up)");
    let url = std::env::var("READER_URL").expect("READER_URL: a local reader (scripts/bench.sh starts one)");
    let token = std::env::var("READER_TOKEN").unwrap_or_else(|_| "local-reader-token".into());
    let latency_ms: f64 = env_or("READER_LATENCY_MS", 20.0);
    let in_flight: usize = env_or("READER_MAX_IN_FLIGHT", 8);
    let reader = Clocked(
        // Pages of 1000, whatever the default dialect's largest: the limits below count them.
        HttpReader::new(url.clone(), Secret::new(token.clone()))
            .expect("a reader client")
            .with_page_limit(1000)
            .with_max_in_flight(in_flight),
        std::sync::Mutex::default(),
    );
    let limit = in_flight as f64 * 1000.0 / (latency_ms / 1000.0);
    // What one page actually takes from this reader, one request at a time: the set latency,
    // plus the timer's rounding and the loopback's round trip.
    let answer_ms = {
        let client = reqwest::Client::new();
        let page = format!(
            "{url}/channels/0115c85d-ef3e-4de9-9732-d0c5c4f2c482/messages?subtopic=events.data&name=x&from={READER_START}&to={}&limit=1000",
            READER_START + 1000
        );
        let started = Instant::now();
        for _ in 0..20 {
            let _ = client
                .get(&page)
                .bearer_auth(&token)
                .send()
                .await
                .and_then(|r| r.error_for_status());
        }
        started.elapsed().as_secs_f64() * 1000.0 / 20.0
    };
    let measured_limit = in_flight as f64 * 1000.0 / (answer_ms / 1000.0);
    let alice = someone();
    let queue = Launches::default();
    let hand_offs = HandOffs::default();
    let work = std::env::var("WORK_DIR").ok().map(Into::into);
    println!(
        "reader: {latency_ms} ms an answer set ({answer_ms:.1} ms measured), at most {in_flight} pages in flight: a limit of {limit:.0} points/s ({measured_limit:.0} with the measured answer time)"
    );
    // A first, unreported export warms the stack up: moto loads each API's code on its first
    // call, and the first multipart upload alone took a tenth of a second more.
    let warm_up = std::iter::once(WARM_UP_POINTS).filter(|_| !sizes.is_empty());
    for points in warm_up.chain(sizes.iter().copied()) {
        let event = create(&fx, &alice, points).await;
        let config = RunConfig {
            work_dir: work.clone(),
            ..fx.run_config.clone()
        };
        let deps = run_export::Deps {
            launcher: &queue,
            notifier: &hand_offs,
            config: &config,
            reader: &reader,
            ..fx.run_deps()
        };
        let started = Instant::now();
        handle(deps, event.clone()).await.expect("runs");
        let reading = reader.take();
        let took = started.elapsed();
        let job = fx.store.job(&event.job()).await.ok().flatten().expect("a job");
        assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
        let rows = job.detail.files.first().map_or(0, |f| f.rows);
        assert_eq!(rows, points as u64, "every point a row");
        if points == WARM_UP_POINTS {
            continue;
        }
        let rate = points as f64 / took.as_secs_f64();
        let read_rate = points as f64 / reading;
        println!(
            "e2e {points} points to CSV: {:.2} s, {rate:.0} points/s ({:.0}% of the reader-bound limit, {:.0}% of the measured one); reading {reading:.2} s, {read_rate:.0} points/s ({:.0}%, {:.0}%), the rest {:.2} s (claiming the job; after the last page, the last part, completing the upload, recording the job); {:.1} MiB file, peak RSS {:.1} MiB",
            took.as_secs_f64(),
            100.0 * rate / limit,
            100.0 * rate / measured_limit,
            100.0 * read_rate / limit,
            100.0 * read_rate / measured_limit,
            took.as_secs_f64() - reading,
            job.detail.files[0].bytes as f64 / 1048576.0,
            peak_rss_mib()
        );
    }
    if let Some((points, budget)) = continued {
        let event = create(&fx, &alice, points).await;
        let config = RunConfig {
            work_dir: work.clone(),
            budget: Some(TimeDelta::seconds(budget)),
            ..fx.run_config.clone()
        };
        let deps = run_export::Deps {
            launcher: &queue,
            notifier: &hand_offs,
            config: &config,
            reader: &reader,
            ..fx.run_deps()
        };
        let started = Instant::now();
        let mut invocations = 0;
        let mut pending = vec![event.clone()];
        while let Some(next) = pending.pop() {
            invocations += 1;
            handle(deps, next).await.expect("runs");
            pending.extend(queue.take());
        }
        let took = started.elapsed();
        let job = fx.store.job(&event.job()).await.ok().flatten().expect("a job");
        assert_eq!(job.status, JobStatus::Done, "{:?}", job.detail.error);
        println!(
            "e2e {points} points to CSV with a budget of {budget} s an invocation: {:.1} s, {invocations} invocations, {:.0} points/s, {:.1} MiB file, peak RSS {:.1} MiB",
            took.as_secs_f64(),
            points as f64 / took.as_secs_f64(),
            job.detail.files[0].bytes as f64 / 1048576.0,
            peak_rss_mib()
        );
    }
}
