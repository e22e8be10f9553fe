//! Quiet hours: consecutive windows too small to score alone are joined —
//! until they hold `min_window_traces` application traces or span
//! `pool_max_windows` windows — and the span is scored as one window. One
//! definition for the backtest and live alerting.

use crate::store::TimeRange;

/// A run of too-small windows being joined.
#[derive(Debug, Clone)]
pub struct Pool {
    min_rows: f64,
    /// Longest span, seconds; 0 turns pooling off.
    max_span: f64,
    run: Vec<(f64, f64, f64)>,
}

impl Pool {
    pub fn new(min_rows: u64, max_windows: usize, seconds: f64) -> Pool {
        Pool { min_rows: min_rows as f64, max_span: max_windows as f64 * seconds, run: Vec::new() }
    }

    /// Takes the next window (in time order): its span `[start, end)`, its
    /// application traces, whether it is too small alone. Returns the spans
    /// completed by it, to score before the window itself (when it is not too small).
    pub fn offer(&mut self, start: f64, end: f64, rows: f64, too_small: bool) -> Vec<TimeRange> {
        if self.max_span <= 0.0 {
            return Vec::new();
        }
        if !too_small {
            return self.take().into_iter().collect();
        }
        let mut out = Vec::new();
        if self.run.first().is_some_and(|f| end - f.0 > self.max_span) {
            out.extend(self.take());
        }
        self.run.push((start, end, rows));
        if self.run.iter().map(|r| r.2).sum::<f64>() >= self.min_rows {
            out.extend(self.take());
        }
        out
    }

    /// The run in hand, ended now (the end of the data).
    pub fn take(&mut self) -> Option<TimeRange> {
        let r = match (self.run.first(), self.run.last()) {
            (Some(f), Some(l)) => Some(TimeRange { from: f.0, to: l.1 }),
            _ => None,
        };
        self.run.clear();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_until_enough_traces_or_the_longest_span() {
        let mut p = Pool::new(10, 3, 60.0);
        let w = |k: f64| (k * 60.0, k * 60.0 + 60.0);
        let (a, b) = w(0.0);
        assert!(p.offer(a, b, 4.0, true).is_empty());
        let (a, b) = w(1.0);
        assert!(p.offer(a, b, 4.0, true).is_empty());
        let (a, b) = w(2.0);
        assert_eq!(p.offer(a, b, 4.0, true), vec![TimeRange { from: 0.0, to: 180.0 }], "12 traces");
        // Too few even over three windows: the span is cut at three.
        for k in 3..6 {
            let (a, b) = w(k as f64);
            assert!(p.offer(a, b, 1.0, true).is_empty());
        }
        let (a, b) = w(6.0);
        assert_eq!(p.offer(a, b, 1.0, true), vec![TimeRange { from: 180.0, to: 360.0 }]);
        // A busy window ends the run in hand.
        let (a, b) = w(7.0);
        assert_eq!(p.offer(a, b, 50.0, false), vec![TimeRange { from: 360.0, to: 420.0 }]);
        assert!(Pool::new(10, 0, 60.0).offer(0.0, 60.0, 1.0, true).is_empty(), "off");
    }
}
