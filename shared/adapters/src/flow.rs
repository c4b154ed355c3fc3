//! How many of the reader's pages a read keeps in flight, adapted to the reader (additive
//! increase, multiplicative decrease, as TCP's congestion control): it starts small, doubles
//! each round trip until the first sign of load (slow start), then grows by about one page per
//! round trip while answers come back no slower than twice the fastest seen,
//! shrinks by a quarter when they slow down further (the reader is queueing), and halves on a
//! `429` or `5xx`, remembering where that happened: past that ceiling it grows sixteen times more
//! slowly, so it probes for room rather than hitting the limit again every few round trips. It
//! stays between one page and the configured most, so a read's memory is bounded by the most,
//! whatever the window.

use std::time::Duration;

/// The pages in flight a read starts with.
pub const START_IN_FLIGHT: usize = 2;
/// The most pages in flight by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// The controller of one read.
#[derive(Clone, Debug)]
pub struct Flow {
    window: f64,
    max: f64,
    /// The fastest answer seen: what the reader takes when it does not queue.
    fastest: Option<Duration>,
    /// Just below where the reader last pushed back.
    ceiling: Option<f64>,
    /// Until the first sign of load (a slow answer, a `429` or `5xx`), the window grows by a
    /// page per answer (doubling each round trip, as TCP's slow start), not per round trip.
    slow_start: bool,
}

impl Flow {
    /// Starts at [`START_IN_FLIGHT`] (or `max` when lower); never more than `max`, never less
    /// than one.
    pub fn new(max: usize) -> Self {
        let max = max.max(1) as f64;
        Self {
            window: (START_IN_FLIGHT as f64).min(max),
            max,
            fastest: None,
            ceiling: None,
            slow_start: true,
        }
    }

    /// How many pages may be in flight now.
    pub fn allowed(&self) -> usize {
        self.window.floor().clamp(1.0, self.max) as usize
    }

    /// An answer came back after `latency`.
    pub fn answered(&mut self, latency: Duration) {
        let fastest = *self.fastest.get_or_insert(latency);
        if latency < fastest {
            self.fastest = Some(latency);
        }
        // Answers slower than twice the fastest (and slower than a few milliseconds, below which
        // the clock's noise decides) mean the reader queues them: fewer in flight.
        if latency > fastest * 2 && latency > Duration::from_millis(5) {
            self.window = (self.window * 0.75).max(1.0);
            self.slow_start = false;
        } else {
            let step = match self.ceiling {
                Some(ceiling) if self.window >= ceiling => 1.0 / (16.0 * self.window),
                _ if self.slow_start => 1.0,
                _ => 1.0 / self.window,
            };
            self.window = (self.window + step).min(self.max);
        }
    }

    /// The reader answered `429` or `5xx`: half as many in flight.
    pub fn throttled(&mut self) {
        self.ceiling = Some((self.window - 1.0).max(1.0));
        self.window = (self.window / 2.0).max(1.0);
        self.slow_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_latency_holds_and_stays_within_its_bounds() {
        let mut flow = Flow::new(8);
        assert_eq!(flow.allowed(), 2);
        for _ in 0..200 {
            flow.answered(Duration::from_millis(20));
        }
        assert_eq!(flow.allowed(), 8, "up to the most");
        for _ in 0..10 {
            flow.throttled();
        }
        assert_eq!(flow.allowed(), 1, "never below one");
        let mut one = Flow::new(1);
        one.answered(Duration::from_millis(1));
        assert_eq!(one.allowed(), 1);
    }

    #[test]
    fn backs_off_when_answers_slow_down_and_halves_on_throttling() {
        let mut flow = Flow::new(16);
        for _ in 0..100 {
            flow.answered(Duration::from_millis(20));
        }
        let before = flow.allowed();
        flow.answered(Duration::from_millis(100));
        assert!(flow.allowed() < before, "{} < {before}", flow.allowed());
        let before = flow.allowed();
        flow.throttled();
        assert_eq!(flow.allowed(), (before / 2).max(1));
    }

    #[test]
    fn starts_slowly_then_doubles_each_round_trip_until_the_reader_shows_load() {
        let mut flow = Flow::new(64);
        // A round trip: as many answers as pages in flight.
        let round_trip = |flow: &mut Flow, latency: u64| {
            for _ in 0..flow.allowed() {
                flow.answered(Duration::from_millis(latency));
            }
        };
        round_trip(&mut flow, 20);
        assert_eq!(flow.allowed(), 4);
        round_trip(&mut flow, 20);
        assert_eq!(flow.allowed(), 8);
        flow.throttled();
        let after = flow.allowed();
        round_trip(&mut flow, 20);
        assert!(
            flow.allowed() <= after + 1,
            "a page per round trip after the first sign of load"
        );
    }
}
