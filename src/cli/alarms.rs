//! `pss alarms`: replay stored windows through an alarm policy and print
//! the episodes that would have paged.

use std::path::PathBuf;

use clap::Args;

use super::{print, CmdResult, Failure};
use crate::alarm::backtest::{run, Backtest, Replay};
use crate::alarm::AlarmPolicy;
use crate::config::Config;
use crate::timefmt::format_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlarmFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
#[command(after_help = "Replays the service's stored windows — and each module's — through the policy and prints \
the episodes that would have paged: one per run of alarming windows, after persistence (fire after k of n \
windows) and hysteresis (resolve after m clean ones). Quiet hours: windows with too few traces are pooled with \
their neighbours and scored over the longer span.\n\n\
Policy: --policy FILE, else models/<service>/pss-tuned.toml, else models/all/pss-tuned.toml (what pss-tune \
promoted), else the configuration (pss.toml / pypss.toml / pyproject.toml, or pypss's defaults). Policy keys go \
in [pss.alarm]: module_pss, fire_after, fire_window, resolve_after, pool_max_windows, detector_quantile (the \
service's promoted window detector as a rule: alarm at this quantile of its training scores), score_rules \
(false: the PSS and sub-score thresholds do not page); a policy file with a key pss does not know is refused.\n\n\
CSV columns: service,module,start,end,peak,rules (epoch seconds; module empty for the service-level rules; \
rules joined by +).\n\nExit codes: 0 done (also when nothing fires); 2 unknown service, window length never \
ingested, or a bad policy file.")]
pub struct AlarmsArgs {
    /// History database.
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    #[arg(long)]
    pub service: String,
    /// Policy file (see below for the default).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Window length (as ingested; default: the one length the history holds).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// From (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// To.
    #[arg(long)]
    pub to: Option<String>,
    /// An episode catches an incident it overlaps from this long before the
    /// incident's start (default: two windows).
    #[arg(long, value_name = "DURATION")]
    pub lead: Option<String>,
    #[arg(long, value_enum, default_value_t = AlarmFormat::Table)]
    pub format: AlarmFormat,
}

/// The policy in force and its file: the flag's, else the promoted one,
/// else the configuration's.
pub fn policy_for(
    flag: &Option<PathBuf>,
    service: &str,
    cfg: &Config,
) -> Result<(AlarmPolicy, Option<PathBuf>), Failure> {
    AlarmPolicy::in_force(flag.as_deref(), service, cfg, std::path::Path::new("models"))
        .map_err(|e| Failure::input(e.to_string()))
}

/// `pss alarms`.
pub fn run_alarms(a: AlarmsArgs) -> CmdResult {
    let (mut policy, _) = policy_for(&a.policy, &a.service, &Config::discover(None)?)?;
    let store = crate::store::open(&a.history)?;
    let cfg = Config::default();
    let window = super::read_window(&a.window, &cfg, &*store, std::slice::from_ref(&a.service))?;
    let detector = policy.attach_promoted(&*store, &a.service, window)?;
    let b = Backtest {
        service: a.service.clone(),
        window_seconds: window,
        from: super::history_time_arg("from", &a.from)?,
        to: super::history_time_arg("to", &a.to)?,
        unknown_module: cfg.unknown_module.clone(),
        lead: match &a.lead {
            Some(l) => super::duration_arg("lead", l, false)?,
            None => 2.0 * window,
        },
    };
    let r = run(&*store, &policy, &b).map_err(|e| Failure::input(e.to_string()))?;
    print(&match a.format {
        AlarmFormat::Csv => csv(&r),
        AlarmFormat::Json => serde_json::to_string_pretty(&r).expect("a replay serializes") + "\n",
        AlarmFormat::Table => table(&r, &policy, &detector),
    })
}

fn csv(r: &Replay) -> String {
    let mut out = String::from("service,module,start,end,peak,rules\n");
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    for e in &r.episodes {
        out += &format!(
            "{},{},{},{},{},{}\n",
            field(&e.service),
            field(&e.module),
            e.span.start,
            e.span.end,
            e.span.peak,
            e.span.rules.join("+")
        );
    }
    out
}

fn table(r: &Replay, p: &AlarmPolicy, detector: &crate::alarm::DetectorSource) -> String {
    let days = r.seconds / 86400.0;
    let service = r.episodes.iter().filter(|e| e.module.is_empty()).count();
    let mut out = format!(
        "Policy {} — fire after {} of {} windows, resolve after {} clean; module rule {}; quiet windows pooled over \
         up to {}; {}.\n",
        p.source,
        p.persistence.fire_after,
        p.persistence.fire_window,
        p.persistence.resolve_after,
        p.module_pss.map_or("off".to_string(), |t| format!("PSS < {t}")),
        p.pool_max_windows,
        detector
    );
    out += &format!(
        "{} episode{} ({} service-level, {} module-level) over {:.2} days: {:.1} per day. {} windows, {} too small \
         alone; {} quiet spans pooled, {} still too small.\n",
        r.episodes.len(),
        if r.episodes.len() == 1 { "" } else { "s" },
        service,
        r.episodes.len() - service,
        days,
        if days > 0.0 { r.episodes.len() as f64 / days } else { 0.0 },
        r.windows,
        r.too_small,
        r.pooled,
        r.pooled_too_small
    );
    let j = &r.judged;
    if j.incidents > 0 {
        out += &format!(
            "Incidents caught: {} of {}; false-alarm episodes: {} ({:.1} per day); median delay {}; alarming {:.0} % \
             of the time.\n",
            j.caught.len(),
            j.incidents,
            j.false_episodes,
            j.false_per_day,
            j.median_delay.map_or("-".to_string(), |d| format!("{d:+.0} s")),
            j.alarming_share * 100.0
        );
    }
    if r.episodes.is_empty() {
        return out;
    }
    let module_w = r.episodes.iter().map(|e| e.module.len()).max().unwrap_or(0).max(6);
    out += &format!("\n{:<21} {:>9} {:<module_w$} {:>5}  RULES\n", "START", "DURATION", "MODULE", "PEAK");
    for e in &r.episodes {
        out += &format!(
            "{:<21} {:>9} {:<module_w$} {:>5.0}  {}\n",
            format_time(e.span.start),
            crate::timefmt::format_duration(e.span.end - e.span.start),
            if e.module.is_empty() { "-" } else { &e.module },
            e.span.peak,
            e.span.rules.join("+")
        );
    }
    out
}
