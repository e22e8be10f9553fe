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
