//! The domain's plain types, upstream of storage, evaluation and reports:
//! labeled incidents, windows with their labels, and pypss's run-history
//! rows, and windows with their features (declared once, below). They depend
//! on nothing else in pss.

use serde::{Deserialize, Serialize};

/// Where the slowest regular trace of a set ran (diagnosis shows its source).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowestTrace {
    pub filename: String,
    pub lineno: i64,
    pub duration: f64,
    pub module: String,
    pub name: String,
}

/// A labeled incident: a time range of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub service: String,
    /// Epoch seconds.
    pub start: f64,
    /// Epoch seconds; `end > start`.
    pub end: f64,
    pub severity: String,
    pub title: String,
}

/// One row of pypss's `pss_history` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub id: i64,
    pub timestamp: f64,
    pub pss: f64,
    pub ts: f64,
    pub ms: f64,
    pub ev: f64,
    pub be: f64,
    pub cc: f64,
    pub meta: serde_json::Value,
}

/// A window with its incident label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabeledWindow {
    pub window: Window,
    /// The id of an incident of the same service overlapping the window.
    pub incident: Option<String>,
}

/// pypss's `check_regression`: a warning when `current` is more than
/// `threshold_drop` below the mean PSS of `recent` runs.
pub fn check_regression(current: f64, recent: &[HistoryRow], limit: usize, threshold_drop: f64) -> Option<String> {
    if recent.is_empty() {
        return None;
    }
    let avg = recent.iter().map(|h| h.pss).sum::<f64>() / recent.len() as f64;
    if current < avg - threshold_drop {
        Some(format!(
            "⚠️  REGRESSION DETECTED: Current PSS ({current:.1}) is significantly lower than the {limit}-run average ({avg:.1})."
        ))
    } else {
        None
    }
}

/// Declares the window features once: the struct, its names (the column
/// names in the store and in exports), and conversions to and from arrays in
/// that order. Adding a feature is one line here; the store's schema needs a
/// migration adding its column.
macro_rules! window_features {
    ($( $(#[doc = $doc:literal])* $name:ident ),+ $(,)?) => {
        /// Raw per-window features (names are the column names in the store
        /// and in exports).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
        pub struct Features {
            $( $(#[doc = $doc])* pub $name: f64, )+
        }

        impl Features {
            /// How many features a window has.
            pub const COUNT: usize = [$( stringify!($name) ),+].len();

            /// Feature names, in the order of [`Features::values`].
            pub const NAMES: [&'static str; Features::COUNT] = [$( stringify!($name) ),+];

            /// Values in the order of [`Features::NAMES`].
            pub fn values(&self) -> [f64; Features::COUNT] {
                [$( self.$name ),+]
            }

            /// Builds from values in the order of [`Features::NAMES`].
            pub fn from_values(v: &[f64; Features::COUNT]) -> Features {
                let mut it = v.iter().copied();
                Features { $( $name: it.next().unwrap_or_default() ),+ }
            }
        }
    };
}

window_features! {
    lat_mean,
    lat_p50,
    lat_p95,
    lat_p99,
    lat_cv,
    tail_ratio,
    mem_median,
    mem_peak,
    /// Least-squares slope of memory against time, bytes per second.
    mem_slope,
    error_rate,
    /// Variance-to-mean ratio of the 0/1 error series.
    error_vmr,
    error_longest_run,
    wait_mean,
    wait_cv,
    /// Distinct branch tags.
    tag_count,
    /// Shannon entropy of branch tags, bits.
    tag_entropy,
    /// Mean event-loop lag of system traces (0 when none).
    lag_mean,
    /// Sample standard deviation of memory (pypss's `statistics.stdev`).
    mem_std,
    /// Regular (non-system) traces with every value converted.
    rows,
    /// Branching Entropy sub-score before rounding (it has no parameters).
    be_raw,
    /// System traces with a lag reading.
    lag_count,
}

/// One scored window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub service: String,
    /// `""` for the whole service.
    pub module: String,
    pub start: f64,
    pub seconds: f64,
    pub traces: u64,
    pub errors: u64,
    /// Fewer than `min_window_traces` traces: kept, never alarms.
    pub too_small: bool,
    pub pss: f64,
    pub ts: f64,
    pub ms: f64,
    pub ev: f64,
    pub be: f64,
    pub cc: f64,
    pub features: Features,
}

impl Window {
    /// A whole-service window with these features and no scores yet (zero
    /// counts and sub-scores): for windows built from statistics rather than
    /// stored traces (pypss's tuning sets, synthetic histories, tests).
    pub fn unscored(service: &str, start: f64, seconds: f64, features: Features) -> Window {
        Window {
            service: service.to_string(),
            module: String::new(),
            start,
            seconds,
            traces: 0,
            errors: 0,
            too_small: false,
            pss: 0.0,
            ts: 0.0,
            ms: 0.0,
            ev: 0.0,
            be: 0.0,
            cc: 0.0,
            features,
        }
    }

    /// The stored columns of a window after its key, in order: its counts and
    /// scores, then [`Features::NAMES`].
    pub const SCORE_COLUMNS: [&'static str; 9] = ["traces", "errors", "too_small", "pss", "ts", "ms", "ev", "be", "cc"];

    /// Every stored column after the key, comma-separated (for SQL); built once.
    pub fn value_columns() -> &'static str {
        static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            Window::SCORE_COLUMNS.iter().chain(Features::NAMES.iter()).copied().collect::<Vec<_>>().join(", ")
        });
        &COLUMNS
    }
}
