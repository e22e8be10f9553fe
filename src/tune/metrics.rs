//! What a person reviewing alarms cares about: window precision, recall and
//! F1; AUC-PR of the PSS as a ranking; incident recall with a lead time; false
//! alarms per day; median detection delay.

use serde::Serialize;

use crate::store::Incident;

/// One evaluated window: its time, whether it alarmed, whether it is labeled,
/// and its anomaly score (higher = worse; `1 - pss_raw`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub start: f64,
    pub seconds: f64,
    pub alarm: bool,
    pub labeled: bool,
    /// Excluded from window metrics (too small to score).
    pub skip: bool,
    pub score: f64,
}

/// Alarm quality over a set of windows and incidents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub windows: usize,
    pub labeled: usize,
    pub alarms: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Average precision of the score as a ranking of labeled windows.
    pub auc_pr: f64,
    pub incidents: usize,
    pub incidents_caught: usize,
    pub incident_recall: f64,
    /// Alarms on windows that overlap no incident nor its lead, per day.
    pub false_alarms_per_day: f64,
    /// Median of (first alarm − incident start) over caught incidents, seconds
    /// (negative: before the start). `None` when none was caught.
    pub median_delay_s: Option<f64>,
}

/// Average precision (area under the precision–recall curve, step-wise):
/// the mean of the precision at each labeled window, ranking by `score`
/// (ties broken pessimistically: unlabeled first).
pub fn average_precision(items: &[(f64, bool)]) -> f64 {
    let positives = items.iter().filter(|x| x.1).count();
    if positives == 0 {
        return 0.0;
    }
    let mut v: Vec<(f64, bool)> = items.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let (mut tp, mut sum) = (0usize, 0.0);
    for (k, &(_, pos)) in v.iter().enumerate() {
        if pos {
            tp += 1;
            sum += tp as f64 / (k + 1) as f64;
        }
    }
    sum / positives as f64
}

/// Computes every metric for one service's windows and incidents. `lead`
/// seconds before an incident's start count as catching it (and do not count
/// as false alarms).
pub fn evaluate(windows: &[Judged], incidents: &[Incident], lead: f64) -> Metrics {
    evaluate_parts(&[(windows, incidents)], lead)
}

/// Computes every metric over several services at once: each part is one
/// service's windows with that service's incidents, so an alarm in one
/// service never catches (or excuses) another's incident. Window counts and
/// incidents add up; AUC-PR ranks all windows together; false alarms per day
/// are over the whole time range (alarms a person would see in a day).
pub fn evaluate_parts(parts: &[(&[Judged], &[Incident])], lead: f64) -> Metrics {
    let mut m = Metrics::default();
    let (mut tp, mut fp, mut fneg, mut false_alarms) = (0usize, 0usize, 0usize, 0usize);
    let mut ranked = Vec::new();
    let mut delays = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(windows, incidents) in parts {
        let used: Vec<&Judged> = windows.iter().filter(|w| !w.skip).collect();
        m.windows += used.len();
        for w in &used {
            match (w.alarm, w.labeled) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
            ranked.push((w.score, w.labeled));
        }
        // Incidents inside this part's evaluated time range.
        let (plo, phi) = match (used.first(), used.last()) {
            (Some(a), Some(b)) => (a.start, b.start + b.seconds),
            _ => continue,
        };
        lo = lo.min(plo);
        hi = hi.max(phi);
        let inside: Vec<&Incident> = incidents.iter().filter(|i| i.end > plo && i.start < phi).collect();
        m.incidents += inside.len();
        for i in &inside {
            let first = used
                .iter()
                .filter(|w| w.alarm && w.start + w.seconds > i.start - lead && w.start < i.end)
                .map(|w| w.start.max(i.start - lead))
                .fold(f64::INFINITY, f64::min);
            if first.is_finite() {
                m.incidents_caught += 1;
                delays.push(first - i.start);
            }
        }
        false_alarms += used
            .iter()
            .filter(|w| w.alarm && !w.labeled)
            .filter(|w| !incidents.iter().any(|i| w.start + w.seconds > i.start - lead && w.start < i.end))
            .count();
    }
    m.labeled = tp + fneg;
    m.alarms = tp + fp;
    m.precision = if tp + fp > 0 { tp as f64 / (tp + fp) as f64 } else { 0.0 };
    m.recall = if tp + fneg > 0 { tp as f64 / (tp + fneg) as f64 } else { 0.0 };
    m.f1 = if m.precision + m.recall > 0.0 { 2.0 * m.precision * m.recall / (m.precision + m.recall) } else { 0.0 };
    m.auc_pr = average_precision(&ranked);
    m.incident_recall = if m.incidents > 0 { m.incidents_caught as f64 / m.incidents as f64 } else { 0.0 };
    delays.sort_by(f64::total_cmp);
    m.median_delay_s = match delays.len() {
        0 => None,
        n if n % 2 == 1 => Some(delays[n / 2]),
        n => Some((delays[n / 2 - 1] + delays[n / 2]) / 2.0),
    };
    // At least an hour in the denominator: a short range must not extrapolate
    // one alarm into dozens per day.
    let days = if hi > lo { ((hi - lo) / 86400.0).max(1.0 / 24.0) } else { 1.0 / 24.0 };
    m.false_alarms_per_day = false_alarms as f64 / days;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: f64, alarm: bool, labeled: bool, score: f64) -> Judged {
        Judged { start, seconds: 60.0, alarm, labeled, skip: false, score }
    }

    #[test]
    fn average_precision_of_perfect_and_reversed_rankings() {
        assert_eq!(average_precision(&[(0.9, true), (0.8, true), (0.1, false)]), 1.0);
        let rev = average_precision(&[(0.9, false), (0.8, false), (0.1, true)]);
        assert!((rev - 1.0 / 3.0).abs() < 1e-12);
        // Ties rank unlabeled first: no credit for a constant score.
        assert_eq!(average_precision(&[(0.5, true), (0.5, false)]), 0.5);
    }

    #[test]
    fn window_and_incident_metrics() {
        let inc = Incident {
            id: "i".into(),
            service: "s".into(),
            start: 600.0,
            end: 780.0,
            severity: String::new(),
            title: String::new(),
        };
        // Windows of 60 s from 0 to 1200 s; the incident covers windows 600, 660, 720.
        let mut ws: Vec<Judged> = (0..20).map(|k| w(k as f64 * 60.0, false, (10..13).contains(&k), 0.0)).collect();
        ws[9].alarm = true; // 540: within the 5-minute lead → catches early, not a false alarm
        ws[10].alarm = true; // 600: a true positive
        ws[2].alarm = true; // 120: a false alarm
        let m = evaluate(&ws, std::slice::from_ref(&inc), 300.0);
        assert_eq!(m.alarms, 3);
        assert!((m.precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.incidents_caught, 1);
        assert_eq!(m.median_delay_s, Some(-60.0));
        // 1 false alarm over 20 minutes; the rate is taken over at least an hour → 24 per day.
        assert!((m.false_alarms_per_day - 24.0).abs() < 1e-9);
        let m0 = evaluate(&ws, std::slice::from_ref(&inc), 0.0);
        assert_eq!(m0.median_delay_s, Some(0.0));
    }
}
