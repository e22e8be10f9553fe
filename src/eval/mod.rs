//! Evaluation, shared by tuning and detection: the time split, windows as
//! the metrics see them (labels, alarms, ranking scores), and the
//! alarm-quality metrics (window precision/recall/F1, AUC-PR, incident
//! recall, false alarms per day, detection delay), service by service.

pub mod metrics;

pub use metrics::{evaluate, evaluate_parts, Judged, Metrics};

use crate::config::{AlertParams, ScoreParams};
use crate::domain::{Incident, LabeledWindow};
use crate::score::rescore::{alarms, rescore};
use metrics::evaluate_parts_ranked;

/// Windows split by time: the latest `validation` share of the range is held
/// out. One definition for tuning and detector evaluation.
pub struct Split<'d> {
    /// (first window start, last window end), epoch seconds.
    pub range: (f64, f64),
    /// Windows starting at or after this are validation.
    pub split_at: f64,
    pub train: Vec<&'d LabeledWindow>,
    pub val: Vec<&'d LabeledWindow>,
}

/// Splits windows by time (see [`Split`]); `None` when there are none.
pub fn time_split(windows: &[LabeledWindow], validation: f64) -> Option<Split<'_>> {
    let mut ws: Vec<&LabeledWindow> = windows.iter().collect();
    ws.sort_by(|a, b| a.window.start.total_cmp(&b.window.start));
    let (first, last) = (ws.first()?, ws.last()?);
    let range = (first.window.start, last.window.start + last.window.seconds);
    let split_at = range.0 + (1.0 - validation) * (range.1 - range.0);
    let (train, val) = ws.into_iter().partition(|w| w.window.start < split_at);
    Some(Split { range, split_at, train, val })
}

/// Metrics of judged windows (`judged[k]` is `ws[k]`'s), service by service
/// (see [`evaluate_parts`](metrics::evaluate_parts)).
pub fn evaluate_windows(ws: &[&LabeledWindow], judged: &[Judged], incidents: &[Incident], lead: f64) -> Metrics {
    ByService::new(ws, incidents).evaluate(judged, lead, None)
}

/// A set of windows grouped by service, each group with its service's
/// incidents: built once for windows that are judged many times.
pub(crate) struct ByService {
    /// Per service (in name order): indices into the windows, incidents.
    groups: Vec<(Vec<usize>, Vec<Incident>)>,
}

impl ByService {
    pub(crate) fn new(ws: &[&LabeledWindow], incidents: &[Incident]) -> Self {
        // Windows come grouped by service: compare with the last name first.
        let mut services: Vec<&str> = Vec::new();
        for w in ws {
            let s = w.window.service.as_str();
            if services.last() != Some(&s) && !services.contains(&s) {
                services.push(s);
            }
        }
        services.sort_unstable();
        let groups = services
            .iter()
            .map(|s| {
                let idx = (0..ws.len()).filter(|&k| ws[k].window.service == *s).collect();
                (idx, incidents.iter().filter(|i| i.service == *s).cloned().collect())
            })
            .collect();
        ByService { groups }
    }

    /// Metrics of `judged` (indexed like the windows); `auc_pr` when known.
    pub(crate) fn evaluate(&self, judged: &[Judged], lead: f64, auc_pr: Option<f64>) -> Metrics {
        let parts: Vec<Vec<Judged>> =
            self.groups.iter().map(|(idx, _)| idx.iter().map(|&k| judged[k]).collect()).collect();
        let refs: Vec<(&[Judged], &[Incident])> =
            parts.iter().zip(&self.groups).map(|(j, (_, i))| (j.as_slice(), i.as_slice())).collect();
        evaluate_parts_ranked(&refs, lead, auc_pr)
    }
}

/// The incidents no scorable window of their service overlaps, with the
/// lead (all its windows too small, or none): the metrics leave them out,
/// and the reports name them.
pub fn unscorable(ws: &[&LabeledWindow], incidents: &[Incident], lead: f64) -> Vec<Incident> {
    let mut out = Vec::new();
    for (idx, mine) in ByService::new(ws, incidents).groups {
        let judged: Vec<Judged> = idx.iter().map(|&k| unjudged(ws[k], 0.0)).collect();
        out.extend(metrics::unscorable_incidents(&judged, &mine, lead).into_iter().cloned());
    }
    out
}

/// A window as the metrics see it, with `score` and no alarm yet.
pub(crate) fn unjudged(lw: &LabeledWindow, score: f64) -> Judged {
    Judged {
        start: lw.window.start,
        seconds: lw.window.seconds,
        alarm: false,
        labeled: lw.incident.is_some(),
        skip: lw.window.too_small,
        score,
    }
}

/// Judges windows under a configuration: its alarm rule, and `1 - pss_raw`
/// as the ranking score.
pub fn judge(ws: &[&LabeledWindow], score: &ScoreParams, alert: &AlertParams) -> Vec<Judged> {
    ws.iter()
        .map(|lw| {
            let r = rescore(&lw.window, score);
            Judged { alarm: alarms(&lw.window, &r, alert), ..unjudged(lw, 1.0 - r.pss_raw) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, Window};

    /// A whole-service window of `service` at `start` with this PSS.
    fn lw(service: &str, start: f64, pss: f64, too_small: bool, incident: Option<&str>) -> LabeledWindow {
        // Only the error rate moves the re-scored PSS (about 87 for a stored
        // 30–40, 99 for 95): enough to put windows on both sides of a cut at 90.
        let rate = ((100.0 - pss) / 100.0).clamp(0.0, 1.0);
        let features = Features { rows: 100.0, error_rate: rate, be_raw: 1.0, ..Default::default() };
        let window = Window { traces: 100, too_small, pss, ..Window::unscored(service, start, 60.0, features) };
        LabeledWindow { window, incident: incident.map(str::to_string) }
    }

    fn incident(id: &str, service: &str, start: f64, end: f64) -> Incident {
        Incident { id: id.into(), service: service.into(), start, end, severity: String::new(), title: String::new() }
    }

    #[test]
    fn the_split_holds_out_the_latest_share_by_time() {
        let ws: Vec<_> = (0..10).rev().map(|k| lw("s", k as f64 * 60.0, 90.0, false, None)).collect();
        let sp = time_split(&ws, 0.3).unwrap();
        assert_eq!(sp.range, (0.0, 600.0));
        assert_eq!(sp.split_at, 420.0);
        assert_eq!(sp.train.len(), 7);
        assert!(
            sp.val.iter().all(|w| w.window.start >= 420.0)
                && sp.train.windows(2).all(|p| p[0].window.start < p[1].window.start)
        );
        assert!(time_split(&[], 0.3).is_none());
    }

    #[test]
    fn judging_applies_the_alarm_rule_and_ranks_by_the_raw_pss() {
        let ws =
            [lw("s", 0.0, 95.0, false, None), lw("s", 60.0, 40.0, false, Some("i")), lw("s", 120.0, 40.0, true, None)];
        let refs: Vec<_> = ws.iter().collect();
        let alert = AlertParams { pss: 90.0, sub: crate::domain::SubScores::default() };
        let j = judge(&refs, &ScoreParams::default(), &alert);
        assert_eq!(j.iter().map(|x| x.alarm).collect::<Vec<_>>(), [false, true, false], "too small never alarms");
        assert!(j[1].score > j[0].score, "worse windows rank higher");
        assert!(j[2].skip && j[1].labeled);
    }

    #[test]
    fn metrics_are_per_service_and_unscorable_incidents_are_named() {
        // An alarm in `a` does not catch `b`'s incident at the same time.
        let ws = [
            lw("a", 0.0, 30.0, false, None),
            lw("b", 0.0, 95.0, false, Some("b-1")),
            lw("b", 600.0, 95.0, true, Some("b-2")),
        ];
        let refs: Vec<_> = ws.iter().collect();
        let incidents = [incident("b-1", "b", 0.0, 60.0), incident("b-2", "b", 600.0, 660.0)];
        let alert = AlertParams { pss: 90.0, sub: crate::domain::SubScores::default() };
        let m = evaluate_windows(&refs, &judge(&refs, &ScoreParams::default(), &alert), &incidents, 0.0);
        assert_eq!((m.incidents, m.incidents_caught), (1, 0));
        let un: Vec<_> = unscorable(&refs, &incidents, 0.0).into_iter().map(|i| i.id).collect();
        assert_eq!(un, ["b-2"], "every window over it is too small");
    }
}
