//! `pss detect series` and `pss ml-detect`.

use std::io::Write;

use super::{MlDetectArgs, SeriesArgs};
use crate::cli::{print, CmdResult, Failure};
use crate::detect::iforest::IsolationForestParams;
use crate::detect::model::{trace_features, DetectorParams};
use crate::detect::series::{parse_views, score_series, SeriesParams};
use crate::detect::series_csv::read_series;
use crate::detect::Fit;

/// A CSV field, quoted when it must be.
fn csv_field(t: &str) -> String {
    if t.contains(',') || t.contains('"') {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

pub(super) fn series(a: SeriesArgs) -> CmdResult {
    let name = a.file.display().to_string();
    let s = read_series(&a.file, &a.timestamp_col, &a.value_col).map_err(|e| Failure::input(e.to_string()))?;
    let views = parse_views(&a.views).map_err(|e| Failure::input(format!("--views: {e}")))?;
    let p = SeriesParams { views, window: a.window, seed: a.seed, ..SeriesParams::default() }
        .check()
        .map_err(|e| Failure::input(e.to_string()))?;
    let scores = score_series(&s.values, &p);
    let err = |e: std::io::Error| Failure::output(format!("{}: {e}", a.output.display()));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&a.output).map_err(err)?);
    writeln!(w, "timestamp,value,anomaly_score").map_err(err)?;
    for ((t, v), sc) in s.timestamps.iter().zip(&s.raw_values).zip(&scores) {
        writeln!(w, "{},{},{sc}", csv_field(t.as_deref().unwrap_or("")), v.as_deref().unwrap_or("").trim())
            .map_err(err)?;
    }
    w.flush().map_err(err)?;
    let top = scores.iter().copied().fold(0.0, f64::max);
    print(&format!("scored {} points of {name} (max score {top:.3}) → {}\n", scores.len(), a.output.display()))
}

/// `pss ml-detect`: pypss's command (an isolation forest on pypss's four
/// standardized trace features), with pypss's output lines.
pub fn ml_detect(a: MlDetectArgs) -> CmdResult {
    let keep = crate::trace::ColumnOptions { timestamps: false, names: true, memory_diff: true };
    let load = |f: &str| crate::trace::read_all(&[crate::trace::Source::from_arg(f)], "unknown", keep);
    let mut out = format!("📊 Loading baseline traces from {}...\n", a.baseline_file);
    let (base, _) = load(&a.baseline_file)?;
    if base.stage.is_empty() {
        print(&out)?;
        return Err(Failure::check("⚠️  No traces found in baseline file. Cannot train ML model."));
    }
    out += &format!("   Loaded {} baseline traces.\n", base.len());
    out += "🔍 Initializing and fitting PatternDetector model...\n";
    let params = IsolationForestParams {
        n_estimators: 100,
        max_samples: 256,
        contamination: Some(a.contamination),
        extended: false,
        seed: a.random_state,
        bounded: false,
    };
    let model = DetectorParams::traces(params, "baseline")
        .check()
        .and_then(|p| p.fit(&trace_features(&base)))
        .map_err(|e| Failure::check(format!("Error fitting ML model: {e}")))?;
    out += "   Model fitted successfully to baseline traces.\n";
    out += &format!("\n🔬 Loading target traces from {} for anomaly detection...\n", a.target_file);
    let (target, _) = load(&a.target_file)?;
    if target.stage.is_empty() {
        out += "⚠️  No traces found in target file. Nothing to analyze.\n";
        return print(&out);
    }
    out += &format!("   Loaded {} target traces.\n", target.len());
    out += "\n🔎 Predicting anomalies...\n";
    let scores = model.score(&trace_features(&target));
    let t = model.forest.threshold.unwrap_or(0.5);
    let mut any = false;
    for (i, s) in scores.iter().enumerate() {
        if *s >= t {
            any = true;
            // pypss prints -decision_function: the score above the threshold.
            out += &format!("  ❌ Anomaly detected in '{}' (Score: {:.2})\n", target.names.get(target.name[i]), s - t);
        }
    }
    out += if any {
        "\nSummary: Anomalies were detected.\n"
    } else {
        "✅ No significant anomalies detected in target traces.\n"
    };
    print(&out)
}
