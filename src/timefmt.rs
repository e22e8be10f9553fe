//! Times on the command line and in files: epoch seconds or RFC 3339.

use chrono::{DateTime, NaiveDate};

/// Parses epoch seconds (`1795680000`, `1795680000.5`), RFC 3339
/// (`2026-11-26T10:00:00Z`, `2026-11-26T10:00:00+01:00`) or a date
/// (`2026-11-26`, midnight UTC).
pub fn parse_time(s: &str) -> Option<f64> {
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9);
    }
    // "2026-11-26 10:00:00Z" (a space instead of the T).
    if t.len() > 10 && t.as_bytes()[10] == b' ' {
        let mut u = t.to_string();
        u.replace_range(10..11, "T");
        if let Ok(d) = DateTime::parse_from_rfc3339(&u) {
            return Some(d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64);
    }
    None
}

/// `2026-11-26 10:00:00Z`.
pub fn format_time(t: f64) -> String {
    match DateTime::from_timestamp(t.floor() as i64, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => format!("{t}"),
    }
}

/// `2026-11-26T10:00:00Z` (RFC 3339, as Alertmanager's API wants it).
pub fn format_rfc3339(t: f64) -> String {
    format_time(t).replace(' ', "T")
}

/// `90d`, `2h`, `45m`, `30s`: the largest whole unit.
pub fn format_duration(secs: f64) -> String {
    for (unit, n) in [("d", 86400.0), ("h", 3600.0), ("m", 60.0)] {
        if secs >= n && (secs / n).fract() == 0.0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// A duration as a person reads it: "0.4 s", "19 s", "8 min 11 s",
/// "2 h 5 min", "1 d 3 h" — rounded to what matters at that scale.
pub fn human_duration(secs: f64) -> String {
    let s = secs.abs();
    if !s.is_finite() {
        return "–".into();
    }
    if s < 9.95 && s.fract() != 0.0 {
        return format!("{s:.1} s");
    }
    let t = s.round() as u64;
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a} {ua}")
        } else {
            format!("{a} {ua} {b} {ub}")
        }
    };
    match t {
        0..=59 => format!("{t} s"),
        60..=3599 => pair(t / 60, "min", t % 60, "s"),
        3600..=86399 => {
            let m = (t + 30) / 60;
            pair(m / 60, "h", m % 60, "min")
        }
        _ => {
            let h = (t + 1800) / 3600;
            pair(h / 24, "d", h % 24, "h")
        }
    }
}

/// Seconds since the epoch: the process clock, read here and passed down
/// (the store and the library's computations take times, not a clock).
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_read_them() {
        assert_eq!(human_duration(18.610000133514404), "19 s");
        assert_eq!(human_duration(491.385999917984), "8 min 11 s");
        assert_eq!(human_duration(23.307999849319458), "23 s");
        assert_eq!(human_duration(0.42), "0.4 s");
        assert_eq!(human_duration(300.0), "5 min");
        assert_eq!(human_duration(7500.0), "2 h 5 min");
        assert_eq!(human_duration(97200.0), "1 d 3 h");
        assert_eq!(human_duration(-60.0), "1 min");
    }

    #[test]
    fn forms() {
        assert_eq!(parse_time("1795680000"), Some(1795680000.0));
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Some(60.0));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_time("1970-01-02"), Some(86400.0));
        assert_eq!(parse_time("1970-01-01 00:00:10Z"), Some(10.0));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_time(60.0), "1970-01-01 00:01:00Z");
    }
}
