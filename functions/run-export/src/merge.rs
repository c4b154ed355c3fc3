//! The targets of a wide item read as one stream: each target's series is read on its own (all
//! at once, through the reader's usual pieces), handed over in batches through a bounded
//! channel, and merged oldest first (at one time, targets in their order) into the sink. Memory
//! is bounded by the channels: a target read ahead of the others waits for them.

use std::collections::VecDeque;

use async_trait::async_trait;
use tokio::sync::mpsc;

use exporter::domain::series::Point;
use exporter::ports::{Cause, ReadError, SeriesQuery, SeriesReader, SliceSink};

/// Batches (a reader's slices) a target may have read ahead of the merge.
const AHEAD: usize = 4;

/// Hands a target's slices to the merge.
struct Channel(mpsc::Sender<Vec<Point<'static>>>);

#[derive(Debug, thiserror::Error)]
#[error("the merge of the item's targets stopped")]
struct MergeStopped;

#[async_trait]
impl SliceSink for Channel {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        let batch = points.iter().map(Point::to_owned_point).collect();
        self.0
            .send(batch)
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
    let (senders, receivers): (Vec<_>, Vec<_>) = queries.iter().map(|_| mpsc::channel(AHEAD)).unzip();
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
    mut receivers: Vec<mpsc::Receiver<Vec<Point<'static>>>>,
    sink: &mut (dyn SliceSink + Send),
) -> Result<u64, ReadError> {
    let mut heads: Vec<VecDeque<Point<'static>>> = receivers.iter().map(|_| VecDeque::new()).collect();
    let mut open = vec![true; receivers.len()];
    let mut merged = 0u64;
    let mut batch = Vec::new();
    loop {
        // Every target still being read must show its next point before any is merged.
        for (k, receiver) in receivers.iter_mut().enumerate() {
            while open[k] && heads[k].is_empty() {
                match receiver.recv().await {
                    Some(points) => heads[k].extend(points),
                    None => open[k] = false,
                }
            }
        }
        let front = |k: usize, heads: &[VecDeque<Point<'static>>]| heads[k].front().map(|p| (p.time_ns, k));
        let Some((_, first)) = (0..heads.len()).filter_map(|k| front(k, &heads)).min() else {
            break;
        };
        // The others' earliest: `first`'s points up to it go together.
        let limit = (0..heads.len())
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
        merged += batch.len() as u64;
        sink.accept(&batch).await.map_err(ReadError::Sink)?;
    }
    Ok(merged)
}
