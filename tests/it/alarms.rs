//! `pss alarms` end to end: the backtest on the shipped history, its CSV
//! contract, and its refusals.

use crate::common::{err, ok, pss, shipped_history};

#[test]
fn backtest_on_the_shipped_history_prints_episodes_in_the_csv_contract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shipped_history(d, &["checkout"]);
    std::fs::write(
        d.join("policy.toml"),
        "[pypss]\nalert_threshold_ts = 0\nalert_threshold_ms = 0\nalert_threshold_ev = 0\nalert_threshold_be = 0\n\
         alert_threshold_cc = 0\n[pss]\nalert_threshold_pss = 50\n[pss.alarm]\nmodule_pss = 40\nfire_after = 2\n\
         fire_window = 3\nresolve_after = 2\n",
    )
    .unwrap();
    let csv = ok(&pss(
        d,
        &["alarms", "--history", "h.db", "--service", "checkout", "--policy", "policy.toml", "--format", "csv"],
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("service,module,start,end,peak,rules"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(!rows.is_empty(), "the shipped history has incidents: something pages");
    for r in &rows {
        assert_eq!(r.len(), 6, "{r:?}");
        assert_eq!(r[0], "checkout");
        let (start, end): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!(end > start && (end - start) % 300.0 == 0.0, "whole 5-minute windows: {r:?}");
        assert!(r[5].split('+').all(|x| ["pss", "ts", "ms", "ev", "be", "cc", "module_pss"].contains(&x)), "{r:?}");
        assert_eq!(r[1].is_empty(), r[5] != "module_pss", "module rows carry the module rule only: {r:?}");
    }
    // The table says the same, with a summary.
    let table = ok(&pss(d, &["alarms", "--history", "h.db", "--service", "checkout", "--policy", "policy.toml"]));
    assert!(table.contains(&format!("{} episode", rows.len())) && table.contains("per day"), "{table}");
    assert!(rows.len() > 1, "a run of windows below 50 pages more than once in three days");
    // Persistence pages less than a window-by-window rule.
    let eager_policy =
        std::fs::read_to_string(d.join("policy.toml")).unwrap().replace("fire_after = 2", "fire_after = 1");
    std::fs::write(d.join("eager.toml"), eager_policy).unwrap();
    let eager = ok(&pss(
        d,
        &["alarms", "--history", "h.db", "--service", "checkout", "--policy", "eager.toml", "--format", "csv"],
    ));
    // Every episode that needed 2 of 3 windows lies inside one that needed 1.
    let spans = |s: &str| -> Vec<(f64, f64)> {
        s.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|r| r[1].is_empty())
            .map(|r| (r[2].parse().unwrap(), r[3].parse().unwrap()))
            .collect()
    };
    let eager = spans(&eager);
    for (s, e) in spans(&csv) {
        assert!(eager.iter().any(|&(a, b)| a <= s && b >= e), "({s}, {e}) is in no eager episode: {eager:?}");
    }
    // Nothing fires: a header-only CSV, exit 0.
    std::fs::write(
        d.join("never.toml"),
        "[pypss]\nalert_threshold_ts = 0\nalert_threshold_ms = 0\nalert_threshold_ev = 0\nalert_threshold_be = 0\nalert_threshold_cc = 0\n[pss]\nalert_threshold_pss = 0\n",
    )
    .unwrap();
    let none = ok(&pss(
        d,
        &["alarms", "--history", "h.db", "--service", "checkout", "--policy", "never.toml", "--format", "csv"],
    ));
    assert_eq!(none, "service,module,start,end,peak,rules\n");
    // Refusals: exit 2 with a reason.
    let e = err(&pss(d, &["alarms", "--history", "h.db", "--service", "nope"]));
    assert!(e.contains("no service 'nope'"), "{e}");
    let e = err(&pss(d, &["alarms", "--history", "h.db", "--service", "checkout", "--window", "7m"]));
    assert!(e.contains("no windows of 420 s"), "{e}");
    std::fs::write(d.join("typo.toml"), "[pss.alarm]\nfire_aftr = 2\n").unwrap();
    let e = err(&pss(d, &["alarms", "--history", "h.db", "--service", "checkout", "--policy", "typo.toml"]));
    assert!(e.contains("alarm_fire_aftr"), "{e}");
}
