//! pypss 1.3.1's alert rules (`pypss/alerts/rules.py`), evaluated in its
//! order: the five sub-score rules, the regression rule, then each custom
//! rule.

use super::{Alert, AlertConfig, PyNum, Severity};
use crate::domain::SubScores;

/// A report as the rules read it: pypss's `{"pss": int, "breakdown": {..}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreView {
    pub pss: f64,
    /// Rounded to two decimals, as in pypss's report.
    pub breakdown: SubScores,
}

/// One module's scores (pypss's `module_scores[name]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleView {
    pub module: String,
    pub scores: ScoreView,
}

/// A condition of a custom rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub metric: String,
    pub operator: &'static str,
    pub value: f64,
}

/// One of `custom_alert_rules`.
#[derive(Debug, Clone)]
pub struct CustomRule {
    pub name: String,
    pub enabled: bool,
    pub severity: Severity,
    pub conditions: Vec<Condition>,
    /// A Python `re.match` pattern (anchored at the start) on module names.
    pub module_pattern: Option<String>,
    matcher: Option<regex::Regex>,
}

const OPERATORS: [&str; 5] = ["<", "<=", ">", ">=", "=="];

impl CustomRule {
    /// Parses one rule table; an unknown severity or operator, or a bad
    /// pattern, is an error (pypss would raise, or silently skip the condition).
    pub fn parse(v: &toml::Value) -> Result<CustomRule, String> {
        let t = v.as_table().ok_or("expected a table with name, severity, conditions")?;
        let name = t.get("name").and_then(|x| x.as_str()).unwrap_or("Custom Rule").to_string();
        let enabled = t.get("enabled").and_then(|x| x.as_bool()).unwrap_or(true);
        let sev = t.get("severity").and_then(|x| x.as_str()).unwrap_or("warning");
        let severity = Severity::parse(sev).ok_or(format!("severity '{sev}': expected info, warning or critical"))?;
        let mut conditions = Vec::new();
        for (i, c) in t.get("conditions").and_then(|x| x.as_array()).into_iter().flatten().enumerate() {
            let metric = c.get("metric").and_then(|x| x.as_str());
            let op = c.get("operator").and_then(|x| x.as_str()).unwrap_or("");
            let operator = *OPERATORS
                .iter()
                .find(|o| **o == op)
                .ok_or(format!("conditions[{i}]: operator '{op}': expected one of {}", OPERATORS.join(" ")))?;
            let value = match c.get("value") {
                None => 0.0,
                Some(toml::Value::Integer(n)) => *n as f64,
                Some(toml::Value::Float(f)) => *f,
                Some(toml::Value::String(s)) => crate::pystats::py_float_from_str(s)
                    .ok_or(format!("conditions[{i}]: value '{s}' is not a number"))?,
                Some(other) => {
                    return Err(format!("conditions[{i}]: value must be a number, found {}", other.type_str()))
                }
            };
            let Some(metric) = metric else {
                return Err(format!("conditions[{i}]: metric must be a string (pss or a sub-score name)"));
            };
            conditions.push(Condition { metric: metric.to_string(), operator, value });
        }
        let module_pattern = t.get("module_pattern").and_then(|x| x.as_str()).map(str::to_string);
        let matcher = match &module_pattern {
            Some(p) => Some(regex::Regex::new(&format!("^(?:{p})")).map_err(|e| format!("module_pattern '{p}': {e}"))?),
            None => None,
        };
        Ok(CustomRule { name, enabled, severity, conditions, module_pattern, matcher })
    }

    fn holds(&self, s: &ScoreView) -> bool {
        let metric = |k: &str| -> f64 {
            if k == "pss" {
                return s.pss;
            }
            s.breakdown.entries().iter().find(|e| e.0 == k).map_or(0.0, |e| e.2)
        };
        self.conditions.iter().all(|c| {
            let v = metric(&c.metric);
            match c.operator {
                "<" => v < c.value,
                "<=" => v <= c.value,
                ">" => v > c.value,
                ">=" => v >= c.value,
                _ => v == c.value,
            }
        })
    }
}

/// pypss's five sub-score rules: (name, breakdown key, severity).
const METRIC_RULES: [(&str, usize, Severity); 5] = [
    ("Timing Stability Surge", 0, Severity::Warning),
    ("Memory Stability Spike", 1, Severity::Warning),
    ("Error Burst", 2, Severity::Critical),
    ("Entropy Anomaly", 3, Severity::Warning),
    ("Concurrency Variance Spike", 4, Severity::Warning),
];

/// Evaluates every rule on a report: `history` is the stored runs' PSS,
/// latest first (read before this run was saved), `modules` the per-module
/// scores; `now` stamps the alerts.
pub fn evaluate(
    cfg: &AlertConfig,
    report: &ScoreView,
    history: &[f64],
    modules: &[ModuleView],
    now: f64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let b = report.breakdown.to_array();
    let th = cfg.thresholds.to_array();
    for (name, k, severity) in METRIC_RULES {
        if b[k] < th[k] {
            out.push(Alert {
                rule_name: name.into(),
                severity,
                message: format!("{name} detected. Score {:.2} is below threshold {:.2}.", b[k], th[k]),
                metric_name: SubScores::KEYS[k].0.into(),
                current_value: PyNum::Float(b[k]),
                threshold: PyNum::Float(th[k]),
                timestamp: now,
                module: None,
            });
        }
    }
    let recent = &history[..history.len().min(cfg.regression_history_limit)];
    if !recent.is_empty() {
        let avg = recent.iter().sum::<f64>() / recent.len() as f64;
        let drop = cfg.regression_threshold_drop;
        if report.pss < avg - drop {
            out.push(Alert {
                rule_name: "Stability Regression".into(),
                severity: Severity::Critical,
                message: format!(
                    "Regression detected! PSS {:.1} is significantly lower than average {avg:.1} (-{}).",
                    report.pss,
                    crate::pystats::py_repr(drop)
                ),
                metric_name: "pss".into(),
                current_value: PyNum::Float(report.pss),
                threshold: PyNum::Float(avg - drop),
                timestamp: now,
                module: None,
            });
        }
    }
    for rule in cfg.custom.iter().filter(|r| r.enabled && !r.conditions.is_empty()) {
        let alert = |message: String, module: Option<String>| Alert {
            rule_name: rule.name.clone(),
            severity: rule.severity,
            message,
            metric_name: "custom".into(),
            current_value: PyNum::Int(0),
            threshold: PyNum::Int(0),
            timestamp: now,
            module,
        };
        match &rule.matcher {
            Some(re) => {
                for m in modules.iter().filter(|m| re.is_match(&m.module) && rule.holds(&m.scores)) {
                    out.push(alert(
                        format!("{}: Module '{}' matched conditions.", rule.name, m.module),
                        Some(m.module.clone()),
                    ));
                }
            }
            None if rule.holds(report) => {
                out.push(alert(format!("{}: Global metrics matched conditions.", rule.name), None));
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg(text: &str) -> AlertConfig {
        AlertConfig::from_config(&Config::from_toml_str(text, "pypss.toml").unwrap()).unwrap()
    }

    #[test]
    fn pypss_rules_in_order_with_its_messages() {
        let c = cfg("[pypss]\nalerts_enabled = true\n[[pypss.custom_alert_rules]]\nname = \"Low\"\nseverity = \"critical\"\nconditions = [{metric = \"pss\", operator = \"<\", value = 80}]\n[[pypss.custom_alert_rules]]\nname = \"DB\"\nmodule_pattern = \"app\\\\.db\"\nconditions = [{metric = \"timing_stability\", operator = \"<=\", value = 0.5}]\n");
        let r = ScoreView { pss: 70.0, breakdown: SubScores::from_array([0.69, 0.9, 0.79, 1.0, 0.7]) };
        let modules = vec![
            ModuleView {
                module: "app.db".into(),
                scores: ScoreView { pss: 50.0, breakdown: SubScores::from_array([0.5; 5]) },
            },
            ModuleView {
                module: "app.dbx".into(),
                scores: ScoreView { pss: 50.0, breakdown: SubScores::from_array([0.5; 5]) },
            },
            ModuleView {
                module: "x.app.db".into(),
                scores: ScoreView { pss: 50.0, breakdown: SubScores::from_array([0.5; 5]) },
            },
        ];
        let a = evaluate(&c, &r, &[90.0, 85.0], &modules, 1.0);
        let names: Vec<&str> = a.iter().map(|x| x.rule_name.as_str()).collect();
        // cc 0.70 is not below 0.70 (strict); regression: 70 < 87.5 - 10.
        assert_eq!(names, ["Timing Stability Surge", "Error Burst", "Stability Regression", "Low", "DB", "DB"]);
        assert_eq!(a[0].message, "Timing Stability Surge detected. Score 0.69 is below threshold 0.70.");
        assert_eq!(a[1].severity, Severity::Critical);
        assert_eq!(a[2].message, "Regression detected! PSS 70.0 is significantly lower than average 87.5 (-10.0).");
        assert_eq!(a[3].message, "Low: Global metrics matched conditions.");
        // re.match anchors at the start only: app.dbx matches too, x.app.db does not.
        assert_eq!(a[4].dedup_key(), "DB:app.db");
        assert_eq!(a[5].message, "DB: Module 'app.dbx' matched conditions.");
    }

    #[test]
    fn a_bad_rule_or_url_names_its_key() {
        for (text, key) in [
            ("[pypss]\n[[pypss.custom_alert_rules]]\nname = \"x\"\nseverity = \"urgent\"\n", "custom_alert_rules[0]"),
            (
                "[pypss]\n[[pypss.custom_alert_rules]]\nconditions = [{metric = \"pss\", operator = \"!=\", value = 1}]\n",
                "custom_alert_rules[0]",
            ),
            ("[pypss]\nalerts_slack_webhook = \"hooks.slack.com/secret\"\n", "alerts_slack_webhook"),
        ] {
            let e = AlertConfig::from_config(&Config::from_toml_str(text, "pypss.toml").unwrap()).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(!e.to_string().contains("secret"), "a webhook URL is never echoed: {e}");
        }
    }
}
