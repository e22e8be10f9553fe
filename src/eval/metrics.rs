//! What a person reviewing alarms cares about: window precision, recall and
//! F1; AUC-PR of the PSS as a ranking; incident recall with a lead time; false
//! alarms per day; median detection delay.

use serde::Serialize;

use crate::domain::Incident;

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
    /// Incidents in the evaluated time range that some scorable window
    /// overlaps (with the lead): those an alarm could have caught.
    pub incidents: usize,
    pub incidents_caught: usize,
    /// Incidents in the range that no scorable window overlaps (all theirs
    /// too small, or none at all): not in `incidents`, counted here instead.
    pub incidents_unscorable: usize,
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

/// Whether window `w` overlaps incident `i` or the `lead` seconds before it
/// (where an alarm catches it).
fn overlaps(w: &Judged, i: &Incident, lead: f64) -> bool {
    w.start + w.seconds > i.start - lead && w.start < i.end
}

/// First start and last end of some windows.
fn time_range<'a>(ws: impl IntoIterator<Item = &'a Judged>) -> Option<(f64, f64)> {
    ws.into_iter().fold(None, |r, w| {
        let (a, b) = r.unwrap_or((w.start, w.start + w.seconds));
        Some((a.min(w.start), b.max(w.start + w.seconds)))
    })
}

/// The incidents in the time range of `windows` that no scorable window
/// overlaps (with the lead): no alarm could have caught them, so the
/// metrics leave them out, and a report should name them.
pub fn unscorable_incidents<'a>(windows: &[Judged], incidents: &'a [Incident], lead: f64) -> Vec<&'a Incident> {
    let Some((lo, hi)) = time_range(windows) else { return Vec::new() };
    incidents
        .iter()
        .filter(|i| i.end > lo && i.start < hi)
        .filter(|i| !windows.iter().any(|w| !w.skip && overlaps(w, i, lead)))
        .collect()
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
    evaluate_parts_ranked(parts, lead, None)
}

/// [`evaluate_parts`] with the AUC-PR given rather than computed: it depends
/// on the windows' scores, not on which alarm, so a search trying many
/// alarm rules on one scoring sorts the windows once.
pub fn evaluate_parts_ranked(parts: &[(&[Judged], &[Incident])], lead: f64, auc_pr: Option<f64>) -> Metrics {
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
            if auc_pr.is_none() {
                ranked.push((w.score, w.labeled));
            }
        }
        // Incidents inside this part's time range (all its windows, scorable
        // or not); those no scorable window overlaps are counted apart.
        let Some((plo, phi)) = time_range(windows) else { continue };
        if let Some((ulo, uhi)) = time_range(used.iter().copied()) {
            lo = lo.min(ulo);
            hi = hi.max(uhi);
        }
        let (inside, unscorable): (Vec<&Incident>, Vec<&Incident>) = incidents
            .iter()
            .filter(|i| i.end > plo && i.start < phi)
            .partition(|i| used.iter().any(|w| overlaps(w, i, lead)));
        m.incidents += inside.len();
        m.incidents_unscorable += unscorable.len();
        for i in &inside {
            let first = used
                .iter()
                .filter(|w| w.alarm && overlaps(w, i, lead))
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
            .filter(|w| !incidents.iter().any(|i| overlaps(w, i, lead)))
            .count();
    }
    m.labeled = tp + fneg;
    m.alarms = tp + fp;
    m.precision = if tp + fp > 0 { tp as f64 / (tp + fp) as f64 } else { 0.0 };
    m.recall = if tp + fneg > 0 { tp as f64 / (tp + fneg) as f64 } else { 0.0 };
    m.f1 = if m.precision + m.recall > 0.0 { 2.0 * m.precision * m.recall / (m.precision + m.recall) } else { 0.0 };
    m.auc_pr = auc_pr.unwrap_or_else(|| average_precision(&ranked));
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

    #[test]
    fn incidents_only_too_small_windows_cover_are_counted_apart() {
        let inc = |id: &str, start: f64, end: f64| Incident {
            id: id.into(),
            service: "s".into(),
            start,
            end,
            severity: String::new(),
            title: String::new(),
        };
        // 0–1200 s; windows 0–5 too small (a quiet night), the rest scorable.
        let mut ws: Vec<Judged> = (0..20).map(|k| w(k as f64 * 60.0, false, false, 0.0)).collect();
        for x in &mut ws[..6] {
            x.skip = true;
        }
        // "night" falls in the too-small windows at the start, "gap" inside
        // the range on the one too-small window 840–900, "day" on scorable ones.
        ws[14].skip = true;
        let incs = [inc("night", 60.0, 200.0), inc("gap", 845.0, 890.0), inc("day", 900.0, 1000.0)];
        let m = evaluate(&ws, &incs, 0.0);
        assert_eq!((m.incidents, m.incidents_unscorable, m.incidents_caught), (1, 2, 0));
        let names: Vec<&str> = unscorable_incidents(&ws, &incs, 0.0).iter().map(|i| i.id.as_str()).collect();
        assert_eq!(names, ["night", "gap"]);
        // With a lead reaching back into a scorable window, "gap" can be caught.
        assert_eq!(evaluate(&ws, &incs, 120.0).incidents_unscorable, 1);
    }
}
