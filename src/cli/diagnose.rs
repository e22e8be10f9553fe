//! `pss diagnose` and `pss report`: documents for incident reviews.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::{print, warn, CmdResult, Failure};
use crate::config::Config;
use crate::diagnose::incident::{diagnose, narrate, DiagnoseParams, Diagnosis, Subject};
use crate::diagnose::llm::{LlmParams, Provider};
use crate::diagnose::render;
use crate::diagnose::source::SourcePolicy;
use crate::diagnose::trace_file::diagnose_files;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DocFormat {
    Markdown,
    Html,
    Json,
}

/// What every diagnosis command shares: LLM and output options.
#[derive(Args, Debug, Clone)]
pub struct DocArgs {
    /// LLM for the narrative (the rule-based diagnosis is always there).
    /// Default, as pypss: openai when an API key is given (--api-key or
    /// OPENAI_API_KEY), else none.
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,
    /// Model name (default: config llm_openai_model / llm_ollama_model).
    #[arg(long)]
    pub model: Option<String>,
    /// API root: OpenAI-compatible `.../v1`, or the Ollama server (default: config llm_base_url / llm_ollama_url).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// API key for OpenAI-compatible providers (never printed or written).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Exit 1 when the LLM part fails (default: the report says it failed, exit 0).
    #[arg(long)]
    pub require_llm: bool,
    #[arg(long, value_enum, default_value_t = DocFormat::Markdown)]
    pub format: DocFormat,
    /// Write here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Configuration file (default: pypss.toml or pyproject.toml here).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the slowest function's source only under this directory (default:
    /// config source_root; else the current directory for --trace-file, and
    /// nothing for a history, whose traces may have come over the network).
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(after_help = "With --history and --incident: the incident against a baseline (the same hours on earlier \
days without an incident, else the healthy period before it), the score timeline, the onset, the window detector \
(models/<service>/window-detector.json when pss-tune has promoted one, else one trained on the history), patterns, \
modules, exceptions, anomalous traces and the rule-based diagnosis; with --provider, an LLM narrative.\n\
With --trace-file: pypss's diagnose on a trace file (scores, advisor, the slowest function's source, the narrative).\n\n\
Exit codes: 0 done (also when the LLM part failed, unless --require-llm); 1 --require-llm and the LLM failed; 2 bad input.")]
pub struct DiagnoseArgs {
    /// History database.
    #[arg(long, value_name = "DB", requires = "incident", conflicts_with = "trace_file")]
    pub history: Option<PathBuf>,
    /// Incident id (from `pss incidents list`).
    #[arg(long)]
    pub incident: Option<String>,
    /// Trace file(s) to diagnose instead (pypss's `diagnose TRACE_FILE`).
    #[arg(long, value_name = "FILE", required_unless_present = "history")]
    pub trace_file: Vec<String>,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

/// How the history is read for evidence.
#[derive(Args, Debug, Clone)]
pub struct EvidenceArgs {
    /// Window length (as ingested; default: the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// A window-level detector file (default: models/<service>/window-detector.json if present).
    #[arg(long, value_name = "FILE")]
    pub detector: Option<PathBuf>,
    /// Seed of the detectors trained for the report.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Args, Debug)]
#[command(after_help = "The same document as `pss diagnose --incident`, for any period of a service.")]
pub struct ReportArgs {
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    #[arg(long)]
    pub service: String,
    /// Start (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub from: String,
    /// End.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    #[command(flatten)]
    pub doc: DocArgs,
}

fn detector_for(
    service: &str,
    explicit: &Option<PathBuf>,
) -> Result<Option<crate::detect::model::DetectorModel>, Failure> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => {
            let p = PathBuf::from("models").join(service).join("window-detector.json");
            if !p.is_file() {
                return Ok(None);
            }
            p
        }
    };
    crate::detect::model::DetectorModel::load(&path).map(Some).map_err(|e| Failure::input(e.to_string()))
}

/// `pss diagnose`.
pub fn run(a: DiagnoseArgs) -> CmdResult {
    let cfg = Config::discover(a.doc.config.as_deref())?;
    let d = match (&a.history, &a.incident) {
        (Some(db), Some(id)) => {
            let store = crate::store::open(db)?;
            let inc = store.incidents(None)?.into_iter().find(|i| &i.id == id).ok_or_else(|| {
                Failure::input(format!(
                    "{}: no incident '{id}' (see pss incidents list --history {})",
                    db.display(),
                    db.display()
                ))
            })?;
            let source = SourcePolicy::from_config(&cfg, a.doc.source_root.clone(), None);
            history_diagnosis(&*store, Subject::incident(&inc), &cfg, &a.evidence, source)?
        }
        _ => {
            let here = std::env::current_dir().ok();
            diagnose_files(&a.trace_file, &cfg, &SourcePolicy::from_config(&cfg, a.doc.source_root.clone(), here))?
        }
    };
    finish(d, &a.doc, &cfg)
}

/// `pss report`.
pub fn report(a: ReportArgs) -> CmdResult {
    let cfg = Config::discover(a.doc.config.as_deref())?;
    let from = super::history_time_arg("from", &Some(a.from.clone()))?.unwrap_or(0.0);
    let to = super::history_time_arg("to", &Some(a.to.clone()))?.unwrap_or(0.0);
    if to <= from {
        return Err(Failure::input(format!("--to {} must be after --from {}", a.to, a.from)));
    }
    let store = crate::store::open(&a.history)?;
    let source = SourcePolicy::from_config(&cfg, a.doc.source_root.clone(), None);
    let d = history_diagnosis(&*store, Subject::period(&a.service, from, to), &cfg, &a.evidence, source)?;
    finish(d, &a.doc, &cfg)
}

fn history_diagnosis(
    store: &dyn Store,
    subject: Subject,
    cfg: &Config,
    e: &EvidenceArgs,
    source: SourcePolicy,
) -> Result<Diagnosis, Failure> {
    let w = super::read_window(&e.window, cfg, store, std::slice::from_ref(&subject.service))?;
    let model = detector_for(&subject.service, &e.detector)?;
    let p = DiagnoseParams { window_seconds: w, detector: model, seed: e.seed, baseline_days: 7, source };
    diagnose(store, subject, cfg, &p).map_err(|e| Failure::input(e.to_string()))
}

/// Adds the narrative when asked, renders, writes; decides the exit code.
fn finish(mut d: Diagnosis, a: &DocArgs, cfg: &Config) -> CmdResult {
    let mut llm_failed = None;
    let provider = a.provider.unwrap_or(if a.api_key.is_some() { Provider::Openai } else { Provider::None });
    if provider != Provider::None {
        let p = LlmParams::from_config(provider, a.model.clone(), a.base_url.clone(), a.api_key.clone(), cfg);
        if std::io::stderr().is_terminal() {
            eprintln!("asking {:?} model {}…", p.provider, p.model);
        }
        llm_failed = narrate(&mut d, &p, cfg.llm_prompt_budget_chars());
        if let Some(e) = &llm_failed {
            warn(&format!("the LLM part failed: {e}"));
        }
    }
    let text = match a.format {
        DocFormat::Markdown => render::markdown(&d),
        DocFormat::Html => render::html(&d),
        DocFormat::Json => serde_json::to_string_pretty(&d).expect("a diagnosis serializes") + "\n",
    };
    match &a.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| Failure::output(format!("{}: {e}", path.display())))?;
            print(&format!("wrote {}\n", path.display()))?;
        }
        None => print(&text)?,
    }
    match llm_failed {
        Some(e) if a.require_llm => Err(Failure { code: 1, message: format!("--require-llm: {e}") }),
        _ => Ok(()),
    }
}
