//! What the functions tell an operator: JSON log lines and metrics in CloudWatch's embedded
//! metric format (one document per invocation, written to stdout with the logs; CloudWatch
//! turns it into metrics, and locally it is a log line like the others).
//!
//! Metrics are recorded with the `metrics` crate's macros where things happen; a function's
//! composition root installs the recorder ([`init`]) and flushes it after each invocation
//! ([`Telemetry::flush`]), with the invocation's request id and what it worked on as
//! properties (searchable in the log, never dimensions). Dimensions stay few: the function's
//! name, and per metric a label of a small, fixed set (an outcome, a reason class, a medium, a
//! route, a status, a repair kind).

use std::sync::atomic::{AtomicU32, Ordering};

use metrics::Unit;

/// The most values of one histogram the recorder keeps between flushes (its limit is 100;
/// past it each value is dropped with an error line).
const HISTOGRAM_VALUES: u32 = 90;

/// Reader latencies that may still be recorded before the next flush.
static LATENCIES_LEFT: AtomicU32 = AtomicU32::new(HISTOGRAM_VALUES);

/// Records a reader page's latency, for the first pages of an invocation (a long read's
/// hundreds of pages would overflow the recorder; the first ninety tell its latency).
pub fn reader_latency(ms: f64) {
    let left = LATENCIES_LEFT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if left.is_ok() {
        metrics::histogram!(names::READER_LATENCY).record(ms);
    }
}

/// The metrics' namespace (`METRICS_NAMESPACE`, default `SenmlExporter`).
pub const DEFAULT_NAMESPACE: &str = "SenmlExporter";

/// The names of the metrics, with their units and what they count.
pub mod names {
    /// Invocations of run-export, by `outcome` (done, failed, continued, spread, itemDone,
    /// duplicate, skipped, retryable, permanent).
    pub const RUNS: &str = "Runs";
    /// Jobs that failed, by `reason` (a class: readerRefused, readerFailed, readerUnavailable,
    /// render, files, tooManyRows, outOfTime, zipOutOfTime, refused, window, io).
    pub const JOBS_FAILED: &str = "JobsFailed";
    /// An invocation's time, in milliseconds.
    pub const RUN_DURATION: &str = "RunDuration";
    /// Seconds left before the invocation's deadline when it ended (runs near their timeout).
    pub const TIME_LEFT: &str = "TimeLeft";
    /// Legs a job took (on its end).
    pub const JOB_LEGS: &str = "JobLegs";
    /// Rows and bytes of the files a done job wrote.
    pub const ROWS_WRITTEN: &str = "RowsWritten";
    pub const BYTES_WRITTEN: &str = "BytesWritten";
    /// The reader: pages answered, their latency (ms, the first ninety pages of an invocation),
    /// points parsed, retries, and refusals of the service's credential (401).
    pub const READER_PAGES: &str = "ReaderPages";
    pub const READER_LATENCY: &str = "ReaderLatency";
    pub const POINTS_READ: &str = "PointsRead";
    pub const READER_RETRIES: &str = "ReaderRetries";
    pub const READER_REFUSED: &str = "ReaderRefused";
    /// Messages by `medium` and `result` (sent, failed).
    pub const MESSAGES: &str = "Messages";
    /// API requests by `route` and `status` (the status class: 2xx, 4xx, 5xx).
    pub const API_REQUESTS: &str = "ApiRequests";
    /// The reconciler's repairs by `kind`, and all of them in one figure per sweep that ended
    /// (a value of one invocation, zero included).
    pub const REPAIRS: &str = "Repairs";
    pub const REPAIRS_TOTAL: &str = "RepairsTotal";
}

/// The recorder of one function's process.
pub struct Telemetry {
    collector: Option<&'static metrics_cloudwatch_embedded::Collector>,
}

/// Sets up JSON logs on stdout (filtered by `RUST_LOG`, default `info`) and the metrics
/// recorder of `function` (its name is the one dimension every metric has).
pub fn init(function: &'static str) -> Telemetry {
    crate::config::init_tracing();
    let namespace =
        crate::config::optional("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("Function", function)
        .init();
    let collector = match collector {
        Ok(collector) => Some(collector),
        Err(e) => {
            tracing::error!(error = %e, "metrics are off: the recorder could not be installed");
            None
        }
    };
    describe();
    Telemetry { collector }
}

/// The units of the metrics that are not counts.
fn describe() {
    use names::*;
    metrics::describe_histogram!(RUN_DURATION, Unit::Milliseconds, "an invocation's time");
    metrics::describe_histogram!(TIME_LEFT, Unit::Seconds, "time left before the deadline");
    metrics::describe_histogram!(READER_LATENCY, Unit::Milliseconds, "a reader page's latency");
    metrics::describe_counter!(BYTES_WRITTEN, Unit::Bytes, "bytes of the files written");
}

impl Telemetry {
    /// Writes what the invocation `request_id` recorded as one document, with `properties`
    /// (what it worked on: an export, a job), and starts afresh.
    pub fn flush(&self, request_id: &str, properties: &[(&str, String)]) {
        let Some(collector) = self.collector else { return };
        collector.set_property("requestId", request_id.to_owned());
        for (name, value) in properties {
            collector.set_property(name.to_string(), value.clone());
        }
        // One document, written whole under the lock: no log line lands inside it.
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::error!(error = %e, "could not write the invocation's metrics");
        }
        LATENCIES_LEFT.store(HISTOGRAM_VALUES, Ordering::Relaxed);
        for (name, _) in properties {
            collector.remove_property(*name);
        }
    }
}
