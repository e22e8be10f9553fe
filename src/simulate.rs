//! A labeled history to learn from: realistic pypss traces for a few
//! services (diurnal load, heavy-tailed latencies, background errors, GC
//! sawtooth memory, event-loop lag) with injected incidents of several kinds
//! and their true start and end. Seeded: the same parameters give the same
//! bytes.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::domain::Incident;

/// Simulation parameters.
#[derive(Debug, Clone)]
pub struct SimulateParams {
    pub days: f64,
    pub services: usize,
    pub seed: u64,
    /// Mean traces per minute per service at the daily peak.
    pub rate: f64,
    /// Epoch seconds of the first trace.
    pub start: f64,
    /// Incidents per service per day, on average.
    pub incidents_per_day: f64,
}

impl Default for SimulateParams {
    fn default() -> Self {
        SimulateParams {
            days: 14.0,
            services: 3,
            seed: 7,
            rate: 30.0,
            start: 1_793_491_200.0, // 2026-11-01T00:00:00Z
            incidents_per_day: 0.5,
        }
    }
}

impl SimulateParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<(), String> {
        if !(self.days > 0.0 && self.days <= 366.0) {
            return Err(format!("days must be in (0, 366], got {}", self.days));
        }
        if self.services == 0 || self.services > SERVICES.len() {
            return Err(format!("services must be 1 to {}, got {}", SERVICES.len(), self.services));
        }
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(format!("rate must be in (0, 10000] traces per minute, got {}", self.rate));
        }
        if !(self.incidents_per_day >= 0.0 && self.incidents_per_day <= 24.0) {
            return Err(format!("incidents per day must be in [0, 24], got {}", self.incidents_per_day));
        }
        Ok(())
    }
}

const SERVICES: [&str; 6] = ["checkout", "search", "payments", "inventory", "auth", "notifications"];
const MODULES: [(&str, &[&str], f64); 4] = [
    ("api", &["handle_request", "validate", "serialize"], -4.2),
    ("db", &["query", "commit"], -3.6),
    ("cache", &["get", "set"], -6.0),
    ("worker", &["process_job", "flush"], -3.0),
];

/// The kinds of injected incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    LatencyRegression,
    ErrorBurst,
    MemoryLeak,
    LockContention,
    DependencyOutage,
}

impl IncidentKind {
    const ALL: [IncidentKind; 5] = [
        IncidentKind::LatencyRegression,
        IncidentKind::ErrorBurst,
        IncidentKind::MemoryLeak,
        IncidentKind::LockContention,
        IncidentKind::DependencyOutage,
    ];

    fn title(self, module: &str) -> String {
        match self {
            IncidentKind::LatencyRegression => format!("latency regression in {module}"),
            IncidentKind::ErrorBurst => format!("error burst in {module}"),
            IncidentKind::MemoryLeak => format!("memory leak in {module}"),
            IncidentKind::LockContention => format!("lock contention in {module}"),
            IncidentKind::DependencyOutage => format!("dependency outage behind {module}"),
        }
    }
}

/// One planned incident with what it affects.
#[derive(Debug, Clone)]
struct Planned {
    incident: Incident,
    kind: IncidentKind,
    module: usize,
}

/// What a simulation wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateReport {
    pub files: Vec<PathBuf>,
    pub incidents_file: PathBuf,
    pub traces: u64,
    pub incidents: usize,
}

fn lognormal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mu + sigma * z).exp()
}

fn pareto(rng: &mut ChaCha8Rng, alpha: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    u.powf(-1.0 / alpha)
}

fn plan_incidents(rng: &mut ChaCha8Rng, p: &SimulateParams, service: &str, si: usize) -> Vec<Planned> {
    let span = p.days * 86400.0;
    let n = ((p.days * p.incidents_per_day).round() as usize).max(usize::from(p.incidents_per_day > 0.0));
    let mut out: Vec<Planned> = Vec::new();
    let mut tries = 0;
    while out.len() < n && tries < 1000 {
        tries += 1;
        let len = rng.random_range(10.0..60.0) * 60.0;
        // Leave the first two hours as a clean baseline.
        let start = (p.start + 7200.0 + rng.random::<f64>() * (span - 7200.0 - len)).floor();
        let end = start + len;
        if out.iter().any(|o| start < o.incident.end + 3600.0 && o.incident.start < end + 3600.0) {
            continue;
        }
        let kind = IncidentKind::ALL[(si + out.len()) % IncidentKind::ALL.len()];
        let module = rng.random_range(0..MODULES.len());
        let severity = if len > 40.0 * 60.0 { "sev2" } else { "sev3" };
        out.push(Planned {
            incident: Incident {
                id: format!("{service}-{}", out.len() + 1),
                service: service.to_string(),
                start,
                end,
                severity: severity.into(),
                title: kind.title(&format!("{service}.{}", MODULES[module].0)),
            },
            kind,
            module,
        });
    }
    out.sort_by(|a, b| a.incident.start.total_cmp(&b.incident.start));
    for (i, o) in out.iter_mut().enumerate() {
        o.incident.id = format!("{service}-{}", i + 1);
    }
    out
}

/// Writes `<service>.jsonl` per service and `incidents.csv` into `dir`.
pub fn simulate(p: &SimulateParams, dir: &Path) -> std::io::Result<SimulateReport> {
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut files = Vec::new();
    let mut all_incidents = Vec::new();
    let mut traces = 0u64;
    for (si, service) in SERVICES.iter().take(p.services).enumerate() {
        let planned = plan_incidents(&mut rng, p, service, si);
        let path = dir.join(format!("{service}.jsonl"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let minutes = (p.days * 1440.0) as u64;
        let mut line = String::with_capacity(512);
        let base_mem = 150_000_000.0 + si as f64 * 40_000_000.0;
        for minute in 0..minutes {
            let t0 = p.start + minute as f64 * 60.0;
            let hour = ((t0 - p.start) / 3600.0) % 24.0;
            // Diurnal load: a peak in the afternoon, a trough at night.
            let load = p.rate * (0.55 + 0.45 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin());
            let n = (load * rng.random_range(0.8..1.2)).round().max(1.0) as u64;
            let active: Vec<&Planned> =
                planned.iter().filter(|x| t0 + 60.0 > x.incident.start && t0 < x.incident.end).collect();
            for k in 0..n {
                let ts = t0 + (k as f64 + rng.random::<f64>()) * 60.0 / n as f64;
                let m = rng.random_range(0..MODULES.len());
                let (mname, funcs, mu) = MODULES[m];
                let mut dur = lognormal(&mut rng, mu, 0.45);
                if rng.random::<f64>() < 0.01 {
                    dur *= pareto(&mut rng, 1.6);
                }
                let mut cpu_share = rng.random_range(0.4..0.95);
                let mut err_p = 0.004;
                let mut exc = ("ValueError", "invalid request payload");
                // Memory: a slow sawtooth (GC) plus noise.
                let gc = ((t0 - p.start) % 1800.0) / 1800.0;
                let mut mem = base_mem + gc * 30_000_000.0 + rng.random_range(0.0..4_000_000.0);
                for inc in active.iter().filter(|x| ts >= x.incident.start && ts < x.incident.end) {
                    // Effects ramp up over the first fifth of the incident.
                    let ramp = ((ts - inc.incident.start) / ((inc.incident.end - inc.incident.start) * 0.2)).min(1.0);
                    let here = m == inc.module;
                    match inc.kind {
                        IncidentKind::LatencyRegression if here => dur *= 1.0 + 4.0 * ramp,
                        IncidentKind::ErrorBurst if here => {
                            err_p = 0.004 + 0.35 * ramp;
                            exc = ("TimeoutError", "upstream call timed out");
                        }
                        IncidentKind::MemoryLeak => {
                            mem += (ts - inc.incident.start) / 60.0 * 6_000_000.0;
                        }
                        IncidentKind::LockContention if here => {
                            let extra = dur * rng.random_range(0.0..12.0) * ramp;
                            dur += extra;
                            cpu_share *= 0.2;
                        }
                        IncidentKind::DependencyOutage if here || rng.random::<f64>() < 0.3 => {
                            err_p = 0.004 + 0.6 * ramp;
                            exc = ("ConnectionError", "connection refused by dependency");
                            if rng.random::<f64>() < 0.5 {
                                dur = 2.0 + rng.random_range(0.0..0.05); // client timeout
                            }
                        }
                        _ => {}
                    }
                }
                let err = rng.random::<f64>() < err_p;
                let cpu = dur * cpu_share;
                let func = funcs[rng.random_range(0..funcs.len())];
                line.clear();
                let _ = write!(
                    line,
                    r#"{{"trace_id": "{ts:.6}-{}", "name": "{func}", "filename": "/srv/{service}/{mname}.py", "lineno": {}, "module": "{service}.{mname}", "duration": {dur:?}, "cpu_time": {cpu:?}, "wait_time": {:?}, "memory": {}, "memory_diff": {}, "error": {err}, "exception_type": {}, "exception_message": {}, "branch_tag": {}, "timestamp": {ts:?}}}"#,
                    rng.random_range(0..1_000_000u32),
                    10 + m * 40,
                    (dur - cpu).max(0.0),
                    mem as u64,
                    rng.random_range(-200_000i64..400_000),
                    if err { format!("\"{}\"", exc.0) } else { "null".into() },
                    if err { format!("\"{}\"", exc.1) } else { "null".into() },
                    if mname == "cache" {
                        if rng.random::<f64>() < 0.85 {
                            "\"hit\""
                        } else {
                            "\"miss\""
                        }
                    } else {
                        "null"
                    },
                );
                line.push('\n');
                out.write_all(line.as_bytes())?;
                traces += 1;
            }
            // Event-loop lag every 30 s.
            for k in 0..2 {
                let ts = t0 + k as f64 * 30.0;
                let mut lag = -0.003 * rng.random::<f64>().max(1e-12).ln();
                if active
                    .iter()
                    .any(|x| x.kind == IncidentKind::LockContention && ts >= x.incident.start && ts < x.incident.end)
                {
                    lag *= 8.0;
                }
                line.clear();
                let _ = write!(
                    line,
                    r#"{{"system_metric": true, "name": "event_loop", "module": "{service}.runtime", "timestamp": {ts:?}, "metadata": {{"lag": {lag:?}, "active_tasks": {}, "churn_rate": {:?}}}}}"#,
                    rng.random_range(5..60u32),
                    rng.random_range(0.5..4.0f64)
                );
                line.push('\n');
                out.write_all(line.as_bytes())?;
                traces += 1;
            }
        }
        out.flush()?;
        files.push(path);
        all_incidents.extend(planned.into_iter().map(|x| x.incident));
    }
    let incidents_file = dir.join("incidents.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&incidents_file)?);
    writeln!(f, "id,service,start,end,severity,title")?;
    for i in &all_incidents {
        writeln!(f, "{},{},{},{},{},{}", i.id, i.service, rfc3339(i.start), rfc3339(i.end), i.severity, i.title)?;
    }
    f.flush()?;
    Ok(SimulateReport { files, incidents_file, traces, incidents: all_incidents.len() })
}

fn rfc3339(t: f64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}
