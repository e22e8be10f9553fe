//! pypss's `StabilityAdvisor`: rule-based summary, observations and
//! recommendations from a score's breakdown, with the same thresholds and text.

use serde::Serialize;

use crate::config::AdvisorParams;
use crate::score::Score;

/// The advisor's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub summary: String,
    pub diagnosis: Vec<String>,
    pub advice: Vec<String>,
}

/// Runs pypss's advisor rules, in pypss's order, on a score.
pub fn advise(score: &Score, p: &AdvisorParams) -> Advice {
    let b = &score.breakdown;
    let pss = score.pss as f64;
    let mut d: Vec<String> = Vec::new();
    let mut a: Vec<String> = Vec::new();
    let (ts, ms, ev, be, cc) = if score.empty {
        // pypss reads the integer zeros of an empty report.
        (0.0, 0.0, 0.0, 0.0, 0.0)
    } else {
        (b.timing_stability, b.memory_stability, b.error_volatility, b.branching_entropy, b.concurrency_chaos)
    };

    let threshold = p.metric_score_critical + 0.1;
    if ts < threshold && ms < threshold {
        d.push("Correlated volatility in Timing and Memory.".into());
        a.push("High memory usage might be causing Garbage Collection pauses. Profile memory allocation.".into());
    }
    if ts < p.metric_score_critical {
        d.push("Severe latency jitter detected (High variance or heavy tail).".into());
        a.push("Check for blocking I/O operations in your hot path.".into());
        a.push("Consider implementing a timeout budget or circuit breaker.".into());
    } else if ts < p.metric_score_warning {
        d.push("Moderate timing inconsistency.".into());
        a.push("Investigate potential resource contention (CPU/Disk) causing sporadic delays.".into());
    }
    if ms < p.metric_score_critical {
        d.push("Critical memory instability (spikes or rapid growth).".into());
        a.push("Potential memory leak or inefficient large object allocation detected.".into());
    } else if ms < p.metric_score_warning {
        d.push("Memory usage is fluctuating more than expected.".into());
        a.push("Review data processing batch sizes; they might be inconsistent.".into());
    }
    if ev < p.error_critical {
        d.push("High Error Volatility: Failures are bursty and unpredictable.".into());
        a.push("Suggests external dependency failures or race conditions.".into());
    } else if ev < p.error_warning {
        d.push("Occasional errors are impacting stability.".into());
    }
    if be < p.entropy_threshold {
        d.push("High Branching Entropy: Execution paths are highly unpredictable.".into());
        a.push("Code flow is data-dependent to an extreme degree. Ensure all edge cases are tested.".into());
    }
    if cc < p.metric_score_critical {
        d.push("Severe Concurrency Chaos: Thread/Process wait times are highly inconsistent.".into());
        a.push("High contention on locks or shared resources detected. Review critical sections.".into());
    } else if cc < p.metric_score_warning {
        d.push("Mild locking overhead detected.".into());
    }

    let summary = if pss >= p.threshold_excellent {
        "🚀 System is performing with exceptional stability. Rock solid."
    } else if pss >= p.threshold_good {
        "✅ System is stable, but shows minor signs of variance in specific areas."
    } else if pss >= p.threshold_warning {
        "⚠️ System is exhibiting significant flakiness. Reliability is at risk."
    } else {
        "🔥 System is critically unstable. Immediate remediation required."
    };
    Advice { summary: summary.into(), diagnosis: d, advice: a }
}

/// The summary as words for HTML: its level ("Excellent", "Stable", "At
/// risk", "Critical") and its text without pypss's leading emoji, which
/// Debian's Chromium draws as a missing glyph. Text and JSON keep pypss's
/// summary as it is.
pub fn summary_in_words(summary: &str) -> (&'static str, &str) {
    let level = match summary.chars().next() {
        Some('🚀') => "Excellent",
        Some('✅') => "Stable",
        Some('⚠') => "At risk",
        Some('🔥') => "Critical",
        _ => "",
    };
    (level, summary.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()))
}

/// pypss's `generate_advisor_report` text block.
pub fn render_text(adv: &Advice) -> String {
    let bullets = |v: &[String]| v.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n");
    format!(
        "\n🧠 AI Stability Diagnosis\n=========================\n{}\n\n🔍 Observations:\n{}\n\n💡 Recommendations:\n{}\n",
        adv.summary,
        bullets(&adv.diagnosis),
        bullets(&adv.advice)
    )
}
