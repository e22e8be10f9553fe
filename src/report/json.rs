//! JSON report: `pss` and `breakdown` exactly as pypss's `render_report_json`
//! (integer zeros for an empty report), then pss's additional keys.

use serde_json::{json, Map, Value};

use super::model::Report;
use crate::score::Score;

/// pypss's report object for one score: `{"pss": .., "breakdown": {..}}`.
pub fn score_value(s: &Score) -> Value {
    let mut b = Map::new();
    for (key, _, v) in s.breakdown.entries() {
        let v = if s.empty { Value::from(0) } else { Value::from(v) };
        b.insert(key.to_string(), v);
    }
    // pypss's `breakdown.update(custom_scores)`: codes after the five.
    for m in &s.custom {
        b.insert(m.code.clone(), Value::from(m.rounded()));
    }
    json!({ "pss": s.pss, "breakdown": Value::Object(b) })
}

/// The report as a JSON value.
pub fn to_value(r: &Report) -> Value {
    let mut root = match score_value(&r.score) {
        Value::Object(m) => m,
        _ => unreachable!("score_value returns an object"),
    };
    let mut groups = Map::new();
    for g in &r.groups {
        let mut v = score_value(&g.score);
        if let Value::Object(m) = &mut v {
            m.insert("traces".into(), g.traces.into());
            m.insert("errors".into(), g.errors.into());
        }
        groups.insert(g.key.clone(), v);
    }
    let key = match r.group_by {
        crate::score::GroupBy::Module => "modules",
        crate::score::GroupBy::Name => "names",
    };
    root.insert(key.into(), Value::Object(groups));
    root.insert(
        "advisor".into(),
        json!({ "summary": r.advice.summary, "diagnosis": r.advice.diagnosis, "advice": r.advice.advice }),
    );
    root.insert("traces".into(), (r.traces + r.system_traces).into());
    root.insert("system_traces".into(), r.system_traces.into());
    root.insert("errors".into(), r.errors.into());
    root.insert("skipped".into(), r.skipped.total().into());
    root.insert("skipped_by_reason".into(), serde_json::to_value(r.skipped).expect("plain struct"));
    root.insert("not_measured".into(), serde_json::to_value(r.unmeasured).expect("plain struct"));
    root.insert("latency".into(), serde_json::to_value(&r.latency).expect("plain struct"));
    root.insert("memory".into(), serde_json::to_value(&r.memory).expect("plain struct"));
    root.insert("exceptions".into(), serde_json::to_value(&r.exceptions).expect("plain struct"));
    root.insert(
        "files".into(),
        Value::Array(r.files.iter().map(|(p, f, t)| json!({"path": p, "format": f, "threads": t})).collect()),
    );
    root.insert("config_source".into(), r.config_source.clone().into());
    root.insert("pss_version".into(), env!("CARGO_PKG_VERSION").into());
    Value::Object(root)
}

/// Renders the JSON report (two-space indent, as pypss's `json.dumps(indent=2)`).
pub fn render(r: &Report) -> String {
    serde_json::to_string_pretty(&to_value(r)).expect("serializable") + "\n"
}
