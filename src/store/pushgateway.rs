//! pypss's `storage_backend = "prometheus"`: a run's scores pushed to a
//! Prometheus Pushgateway (`storage_uri = "host:port"`) as pypss pushes
//! them: gauges `pypss_score`, `pypss_ts` … `pypss_cc` under job `pypss`,
//! replacing the job's previous values (HTTP PUT). There is no history to
//! read back, as with pypss.

use crate::domain::SubScores;

/// Why a push failed (the gateway's address is not a secret).
#[derive(Debug, thiserror::Error)]
#[error("Pushgateway {gateway}: {msg}")]
pub struct PushError {
    pub gateway: String,
    pub msg: String,
}

/// The text exposition pypss's `prometheus_client` registry produces.
pub fn exposition(pss: f64, sub: &SubScores) -> String {
    let help = [
        ("pypss_score", "Python Program Stability Score", pss),
        ("pypss_ts", "Timing Stability Score", sub.timing_stability),
        ("pypss_ms", "Memory Stability Score", sub.memory_stability),
        ("pypss_ev", "Error Volatility Score", sub.error_volatility),
        ("pypss_be", "Branching Entropy Score", sub.branching_entropy),
        ("pypss_cc", "Concurrency Chaos Score", sub.concurrency_chaos),
    ];
    help.iter()
        .map(|(name, text, v)| {
            format!("# HELP {name} {text}\n# TYPE {name} gauge\n{name} {}\n", crate::pystats::py_repr(*v))
        })
        .collect()
}

/// Pushes a run's scores to the gateway at `uri` (`host:port`, or a URL).
pub fn push(uri: &str, pss: f64, sub: &SubScores) -> Result<(), PushError> {
    let base = if uri.contains("://") { uri.to_string() } else { format!("http://{uri}") };
    let url = format!("{}/metrics/job/pypss", base.trim_end_matches('/'));
    let bad = |msg: String| PushError { gateway: uri.to_string(), msg };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let r = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(exposition(pss, sub))
        .send()
        .map_err(|e| bad(if e.is_connect() { "connection refused or unreachable".into() } else { e.to_string() }))?;
    if !r.status().is_success() {
        return Err(bad(format!("HTTP {}: {}", r.status().as_u16(), r.text().unwrap_or_default().trim())));
    }
    Ok(())
}
