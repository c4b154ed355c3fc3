//! The contract of the reader seam (`SeriesReader`), as one check every backend runs: a backend
//! that breaks it loses data silently, or, when it never says where reading may stop, loses
//! streaming upload and continuation (a run cannot pause without a boundary). Given a window
//! and the instants the backend's source holds in it, a read must:
//! - give every point of the window once, oldest first, none outside `[from, to)`, and return
//!   how many it gave;
//! - say where reading may stop (`boundary(until)`) at least once when it gives points in more
//!   than one slice, each boundary later than the one before, after every point given before
//!   it and at or before every point given after it, never past `to`;
//! - go on from any boundary: a read of `[until, to)` gives exactly the points after it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use exporter_core::domain::series::Point;
use exporter_core::domain::Window;
use exporter_core::ports::{Cause, SeriesQuery, SeriesReader, SliceSink};

/// What a read gave: each slice's points (as Unix nanoseconds) and the boundaries between.
#[derive(Debug, Default)]
pub struct Recorded {
    pub slices: Vec<Vec<i64>>,
    pub boundaries: Vec<(usize, DateTime<Utc>)>,
}

impl Recorded {
    fn points(&self) -> Vec<i64> {
        self.slices.iter().flatten().copied().collect()
    }
}

#[async_trait]
impl SliceSink for Recorded {
    async fn accept(&mut self, points: &[Point<'_>]) -> Result<(), Cause> {
        self.slices.push(points.iter().map(|p| p.time_ns).collect());
        Ok(())
    }

    async fn boundary(&mut self, until: DateTime<Utc>) -> Result<(), Cause> {
        let given = self.slices.iter().map(Vec::len).sum();
        self.boundaries.push((given, until));
        Ok(())
    }
}

/// Checks `reader` against the contract for `query`, whose window holds the points at
/// `expected` (Unix nanoseconds, oldest first). Says what was broken.
pub async fn conforms(
    reader: &dyn SeriesReader,
    query: &SeriesQuery,
    expected: &[i64],
) -> Result<(), String> {
    let mut recorded = Recorded::default();
    let count = reader
        .read(query, &mut recorded)
        .await
        .map_err(|e| format!("the read failed: {e}"))?;
    let points = recorded.points();
    if count != points.len() as u64 {
        return Err(format!("returned {count} but gave {} points", points.len()));
    }
    if points != expected {
        return Err(format!(
            "gave {} points, not the window's {} once each oldest first (first given {:?}, expected {:?})",
            points.len(),
            expected.len(),
            points.first(),
            expected.first()
        ));
    }
    let from = query
        .window
        .from
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(i64::MIN);
    let to = query.window.to.timestamp_nanos_opt().unwrap_or(i64::MAX);
    if let Some(outside) = points.iter().find(|t| **t < from || **t >= to) {
        return Err(format!("gave a point at {outside} ns, outside the window"));
    }
    let slices = recorded.slices.iter().filter(|s| !s.is_empty()).count();
    if slices > 1 && recorded.boundaries.is_empty() {
        return Err(format!(
            "gave {slices} slices and never said where reading may stop (no boundary): a run could never pause"
        ));
    }
    let mut last: Option<DateTime<Utc>> = None;
    for (given, until) in &recorded.boundaries {
        let until_ns = until.timestamp_nanos_opt().unwrap_or(i64::MAX);
        if last.is_some_and(|l| *until <= l) {
            return Err(format!("boundary {until} is not after the one before"));
        }
        if until_ns > to {
            return Err(format!("boundary {until} is past the window's end"));
        }
        if points[..*given].iter().any(|t| *t >= until_ns) {
            return Err(format!("boundary {until} comes before points given ahead of it"));
        }
        if points[*given..].iter().any(|t| *t < until_ns) {
            return Err(format!("points given after boundary {until} are older than it"));
        }
        last = Some(*until);
    }
    // Going on from a boundary in the middle gives exactly the rest.
    if let Some((given, until)) = recorded.boundaries.get(recorded.boundaries.len() / 2) {
        let rest = SeriesQuery {
            window: Window {
                from: Some(*until),
                to: query.window.to,
            },
            ..query.clone()
        };
        let mut again = Recorded::default();
        reader
            .read(&rest, &mut again)
            .await
            .map_err(|e| format!("the read going on from {until} failed: {e}"))?;
        if again.points() != points[*given..] {
            return Err(format!(
                "going on from boundary {until} gave {} points, not the {} after it",
                again.points().len(),
                points.len() - given
            ));
        }
    }
    Ok(())
}
