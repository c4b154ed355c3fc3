//! The targets of a wide item read as one stream: each target's series is read on its own (all
//! at once, through the reader's usual pieces), handed over in batches through a bounded
//! channel, and merged oldest first (at one time, targets in their order) into the sink. Memory
//! is bounded by the channels: a target read ahead of the others waits for them.
//!
//! Boundaries: after any target's piece, the merge tells the sink the earliest time it has not
//! merged yet (every target's next point, or the end of what it read), when every point merged
//! so far is earlier: every point before it was taken and none after, so all targets can be
//! read again from there in another invocation.

use std::collections::VecDeque;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use exporter_core::domain::series::Point;
use exporter_core::ports::{Cause, ReadError, SeriesQuery, SeriesReader, SliceSink};

/// Batches (a reader's slices) a target may have read ahead of the merge.
const AHEAD: usize = 4;

/// What a target's read hands to the merge.
enum Slice {
    Points(Vec<Point<'static>>),
    /// Every point of the target before this instant was handed over, none after.
    Boundary(DateTime<Utc>),
}

/// Hands a target's slices to the merge.
struct Channel(mpsc::Sender<Slice>);

#[derive(Debug, thiserror::Error)]
#[error("the merge of the item's targets stopped")]
struct MergeStopped;

#[async_trait]
impl SliceSink for Channel {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        let batch = points.iter().map(Point::to_owned_point).collect();
        self.0
            .send(Slice::Points(batch))
            .await
            .map_err(|_| Box::new(MergeStopped) as Cause)
    }

    async fn boundary(&mut self, until: DateTime<Utc>) -> Result<(), Cause> {
        self.0
            .send(Slice::Boundary(until))
            .await
            .map_err(|_| Box::new(MergeStopped) as Cause)
    }
}

/// Reads every query's series and merges them, oldest first, into `sink`; returns the points.
pub(crate) async fn read_merged(
    reader: &dyn SeriesReader,
    queries: &[SeriesQuery],
    sink: &mut (dyn SliceSink + Send),
) -> Result<u64, ReadError> {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        queries.iter().map(|_| mpsc::channel::<Slice>(AHEAD)).unzip();
    let reads =
        futures::future::try_join_all(queries.iter().zip(senders).map(|(query, sender)| async move {
            let mut channel = Channel(sender);
            reader.read(query, &mut channel).await
            // The channel is dropped here: the merge sees this target end.
        }));
    let merge = merge(receivers, sink);
    let (_, merged) = futures::future::try_join(reads, merge).await?;
    Ok(merged)
}

/// Merges the targets' batches into `sink`, oldest first.
async fn merge(
    mut receivers: Vec<mpsc::Receiver<Slice>>,
    sink: &mut (dyn SliceSink + Send),
) -> Result<u64, ReadError> {
    let targets = receivers.len();
    let mut heads: Vec<VecDeque<Point<'static>>> = (0..targets).map(|_| VecDeque::new()).collect();
    // Each target's progress when its head is empty: the end of what it read (`None`: nothing
    // said yet), or done.
    let mut reached: Vec<Option<DateTime<Utc>>> = vec![None; targets];
    let mut open = vec![true; targets];
    let mut merged = 0u64;
    let mut last: Option<i64> = None;
    let mut told: Option<DateTime<Utc>> = None;
    let mut batch = Vec::new();
    loop {
        // Every target still being read must show its next point before any is merged.
        let mut crossed = false;
        for (k, receiver) in receivers.iter_mut().enumerate() {
            while open[k] && heads[k].is_empty() {
                match receiver.recv().await {
                    Some(Slice::Points(points)) => heads[k].extend(points),
                    Some(Slice::Boundary(until)) => {
                        reached[k] = Some(until);
                        crossed = true;
                    }
                    None => open[k] = false,
                }
            }
        }
        if crossed {
            // The earliest time not merged yet: each target's next point, or where a finished
            // one's reading ended (a target that read nothing yet holds it back).
            let next = (0..targets)
                .map(|k| match heads[k].front() {
                    Some(point) => Some(DateTime::from_timestamp_nanos(point.time_ns)),
                    None if open[k] => reached[k],
                    None => reached[k].or(Some(DateTime::<Utc>::MAX_UTC)),
                })
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().min());
            if let Some(until) = next.filter(|u| {
                u < &DateTime::<Utc>::MAX_UTC
                    && told.is_none_or(|t| *u > t)
                    && last.is_none_or(|l| l < u.timestamp_nanos_opt().unwrap_or(i64::MAX))
            }) {
                sink.boundary(until).await.map_err(ReadError::Sink)?;
                told = Some(until);
            }
        }
        let front = |k: usize, heads: &[VecDeque<Point<'static>>]| heads[k].front().map(|p| (p.time_ns, k));
        let Some((_, first)) = (0..targets).filter_map(|k| front(k, &heads)).min() else {
            break;
        };
        // The others' earliest: `first`'s points up to it go together.
        let limit = (0..targets)
            .filter(|k| *k != first)
            .filter_map(|k| front(k, &heads))
            .min();
        batch.clear();
        while let Some(point) = heads[first].front() {
            if limit.is_some_and(|(t, k)| (point.time_ns, first) > (t, k)) {
                break;
            }
            batch.extend(heads[first].pop_front());
        }
        last = batch.last().map(|p| p.time_ns).or(last);
        merged += batch.len() as u64;
        sink.accept(&batch).await.map_err(ReadError::Sink)?;
    }
    Ok(merged)
}
