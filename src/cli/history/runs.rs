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
            // As pypss writes it: Python's csv module (CRLF, fields quoted
            // when they need it), `meta` as `json.dumps` writes it, floats in
            // Python's repr, and click's newline after it all.
            let mut out = String::from("id,timestamp,pss,ts,ms,ev,be,cc,meta\r\n");
            for r in &rows {
                let meta = py_json(&r.meta).replace('"', "\"\"");
                let [ts, ms, ev, be, cc] = r.sub.to_array();
                out += &format!(
                    "{},{:?},{:?},{ts:?},{ms:?},{ev:?},{be:?},{cc:?},\"{meta}\"\r\n",
                    r.id, r.timestamp, r.pss
                );
            }
            print(&(out + "\n"))
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

/// A JSON value as Python's `json.dumps` writes it by default: `", "` and
/// `": "` separators, non-ASCII escaped as `\uXXXX` (surrogate pairs past
/// the BMP), floats in Python's repr. serde_json writes compact UTF-8.
fn py_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format!("{f:?}"),
            _ => n.to_string(),
        },
        Value::String(s) => {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o += "\\\"",
                    '\\' => o += "\\\\",
                    '\n' => o += "\\n",
                    '\r' => o += "\\r",
                    '\t' => o += "\\t",
                    '\u{8}' => o += "\\b",
                    '\u{c}' => o += "\\f",
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            o += &format!("\\u{unit:04x}");
                        }
                    }
                    c => o.push(c),
                }
            }
            o + "\""
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_json(&Value::String(k.clone())), py_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_as_python_dumps_it() {
        let v =
            serde_json::json!({"trace_file": "t.json", "n": 3, "x": 0.5, "s": "é\u{1F600}\n\"", "a": [1, null, true]});
        assert_eq!(
            super::py_json(&v),
            r#"{"trace_file": "t.json", "n": 3, "x": 0.5, "s": "\u00e9\ud83d\ude00\n\"", "a": [1, null, true]}"#
        );
    }
}
