//! `pss history`: pypss's run-history table and exports.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::open;
use crate::cli::{print, CmdResult};
use crate::config::Config;
use crate::timefmt::format_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryExport {
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// History database (default: config `storage_uri`, pypss's pypss_history.db;
    /// `--db-path` is pypss's name for it).
    #[arg(long, value_name = "DB", visible_alias = "db-path")]
    pub history: Option<PathBuf>,
    /// Number of runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Only the last N days.
    #[arg(long)]
    pub days: Option<f64>,
    /// Only runs stored for this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Export instead of a table.
    #[arg(long, value_enum)]
    pub export: Option<HistoryExport>,
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The history database from `--history` or the config's `storage_uri`
/// (which names the Pushgateway when `storage_backend = "prometheus"`: then
/// pypss's default database file).
pub fn history_path(arg: &Option<PathBuf>, cfg: &Config) -> PathBuf {
    arg.clone().unwrap_or_else(|| {
        PathBuf::from(if cfg.pushes_to_prometheus() { "pypss_history.db".to_string() } else { cfg.storage_uri() })
    })
}

/// Runs `pss history`: pypss's table and exports.
pub fn history(a: HistoryArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let path = history_path(&a.history, &cfg);
    let rows = if path.exists() {
        let since = a.days.map(|d| crate::timefmt::now() - d * 86400.0);
        open(&path)?.history(a.limit, since, a.service.as_deref())?
    } else {
        // As pypss: no database is no history (exit 0); said on stderr so a
        // mistyped path is noticed. Nothing is created.
        crate::cli::warn(&format!("{}: no history database there (nothing stored yet?)", path.display()));
        Vec::new()
    };
    match a.export {
        Some(HistoryExport::Json) => print(&(serde_json::to_string_pretty(&rows).expect("serializable") + "\n")),
        Some(HistoryExport::Csv) => {
            let mut out = String::from("id,timestamp,pss,ts,ms,ev,be,cc,meta\n");
            for r in &rows {
                let meta = r.meta.to_string().replace('"', "\"\"");
                let [ts, ms, ev, be, cc] = r.sub.to_array();
                // Python's float repr, as pypss's csv module writes it (64.0, not 64).
                out +=
                    &format!("{},{:?},{:?},{ts:?},{ms:?},{ev:?},{be:?},{cc:?},\"{meta}\"\n", r.id, r.timestamp, r.pss);
            }
            print(&out)
        }
        None => {
            if rows.is_empty() {
                return print("No history found.\n");
            }
            let mut out = format!("\n📜 Historical PSS Trends (Last {} runs)\n", a.limit);
            out += &"=".repeat(60);
            out += &format!(
                "\n{:<20} | {:<5} | {:<4} | {:<4} | {:<4} | {:<4} | {:<4}\n",
                "Timestamp", "PSS", "TS", "MS", "EV", "BE", "CC"
            );
            out += &"-".repeat(60);
            out.push('\n');
            for r in &rows {
                let [ts, ms, ev, be, cc] = r.sub.to_array();
                out += &format!(
                    "{:<20} | {:<5} | {ts:.2} | {ms:.2} | {ev:.2} | {be:.2} | {cc:.2}\n",
                    format_time(r.timestamp).trim_end_matches('Z'),
                    r.pss as i64,
                );
            }
            out += &"=".repeat(60);
            out.push('\n');
            print(&out)
        }
    }
}
