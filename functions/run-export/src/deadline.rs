//! The attempt's deadline as the reader sees it: a sink that stops taking points once the
//! attempt must stop, at the next boundary between pieces when the file can go on later.

use chrono::{DateTime, Utc};
use exporter_core::domain::series::Point;
use exporter_core::ports::{Cause, Clock, SliceSink};
use exporter_core::render::series::SeriesSink;

/// The attempt's time is up: reading stops here.
#[derive(Debug, thiserror::Error)]
#[error("the run's time is up")]
pub(crate) struct TimeUp;

/// The file's uploader failed: reading stops (the uploader says why).
#[derive(Debug, thiserror::Error)]
#[error("the file's upload stopped")]
pub(crate) struct UploadStopped;

/// The attempt's budget is spent at a place where the series can go on later.
#[derive(Debug, thiserror::Error)]
#[error("the run pauses to continue in a fresh invocation")]
pub(crate) struct Pause;

/// A sink that stops taking points once the attempt must stop working: at the next boundary
/// between pieces when the file can go on later, at once when it cannot.
pub(crate) struct Timed<'s> {
    pub(crate) inner: &'s mut dyn SeriesSink,
    /// Tells the file's uploader, at each boundary, that the file has grown: its full parts go
    /// up while the file is read ([`Sent::send_while_written`]). Closed when the uploader failed.
    pub(crate) written: tokio::sync::watch::Sender<()>,
    pub(crate) stop_at: Option<DateTime<Utc>>,
    pub(crate) clock: &'s dyn Clock,
    pub(crate) pausable: bool,
    /// Everything before this instant was taken, nothing after.
    pub(crate) until: Option<DateTime<Utc>>,
    /// Where this leg's read began (`None`: at the window's start): a leg pauses only at a
    /// boundary past it, so every leg moves on, however slow its start (a leg that paused
    /// where it began would be continued by one that does the same, for ever).
    pub(crate) from: Option<DateTime<Utc>>,
    /// Where the read ends: a boundary there is the read's last, never a place to pause (the
    /// next leg would have nothing left to read).
    pub(crate) to: DateTime<Utc>,
    /// The local file, and the most it may hold in one invocation: past it, a pausable series
    /// pauses (its full parts go up), so the function's local storage is never exhausted.
    pub(crate) local: (&'s std::path::Path, u64),
}

impl Timed<'_> {
    pub(crate) fn time_is_up(&self) -> bool {
        self.stop_at.is_some_and(|stop| self.clock.now() >= stop)
    }

    pub(crate) fn local_is_full(&self) -> bool {
        std::fs::metadata(self.local.0).is_ok_and(|m| m.len() >= self.local.1)
    }
}

#[async_trait::async_trait]
impl SliceSink for Timed<'_> {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        if !self.pausable && self.time_is_up() {
            return Err(Box::new(TimeUp));
        }
        self.inner.accept(points).await
    }

    async fn boundary(&mut self, until: DateTime<Utc>) -> Result<(), Cause> {
        self.until = Some(until);
        let moved_on = self.from.is_none_or(|from| until > from) && until < self.to;
        match (self.time_is_up() && moved_on, self.pausable) {
            (false, true) if self.local_is_full() => Err(Box::new(Pause)),
            // The uploader's error, once it hung up, is the one the job reports.
            (false, _) => self
                .written
                .send(())
                .map_err(|_| Box::new(UploadStopped) as Cause),
            (true, true) => Err(Box::new(Pause)),
            (true, false) => Err(Box::new(TimeUp)),
        }
    }
}
