//! The domain's plain types, upstream of storage, evaluation and reports:
//! labeled incidents, windows with their labels, and pypss's run-history
//! rows, and windows with their features (declared once, below). They depend
//! on nothing else in pss.

use serde::{Deserialize, Serialize};

/// pypss's five sub-scores, 0–1, in pypss's order (timing, memory, errors,
/// branching, concurrency) — or one value per sub-score, such as its alarm
/// threshold. The one shape every score, window, history row and alarm
/// rule uses; JSON keys are pypss's `breakdown` keys.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SubScores {
    pub timing_stability: f64,
    pub memory_stability: f64,
    pub error_volatility: f64,
    pub branching_entropy: f64,
    pub concurrency_chaos: f64,
}

impl SubScores {
    /// pypss's keys and short codes (`ts`, `ms`, `ev`, `be`, `cc`: its history
    /// columns and `w_*` / `alert_threshold_*` suffixes), in [`Self::to_array`] order.
    pub const KEYS: [(&'static str, &'static str); 5] = [
        ("timing_stability", "ts"),
        ("memory_stability", "ms"),
        ("error_volatility", "ev"),
        ("branching_entropy", "be"),
        ("concurrency_chaos", "cc"),
    ];

    /// From values in pypss's order.
    pub const fn from_array(v: [f64; 5]) -> SubScores {
        let [timing_stability, memory_stability, error_volatility, branching_entropy, concurrency_chaos] = v;
        SubScores { timing_stability, memory_stability, error_volatility, branching_entropy, concurrency_chaos }
    }

    /// The values in pypss's order.
    pub const fn to_array(&self) -> [f64; 5] {
        [
            self.timing_stability,
            self.memory_stability,
            self.error_volatility,
            self.branching_entropy,
            self.concurrency_chaos,
        ]
    }

    /// Each value through `f`.
    pub fn map(&self, f: impl FnMut(f64) -> f64) -> SubScores {
        SubScores::from_array(self.to_array().map(f))
    }

    /// The values with pypss's keys and short codes, in pypss's order.
    pub fn entries(&self) -> [(&'static str, &'static str, f64); 5] {
        let v = self.to_array();
        std::array::from_fn(|i| (Self::KEYS[i].0, Self::KEYS[i].1, v[i]))
    }
}

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
#[serde(into = "HistoryRecord", from = "HistoryRecord")]
pub struct HistoryRow {
    pub id: i64,
    pub timestamp: f64,
    pub pss: f64,
    pub sub: SubScores,
    pub meta: serde_json::Value,
}

/// [`HistoryRow`] as pypss's table and exports spell it (flat `ts` … `cc`).
#[derive(Serialize, Deserialize)]
struct HistoryRecord {
    id: i64,
    timestamp: f64,
    pss: f64,
    ts: f64,
    ms: f64,
    ev: f64,
    be: f64,
    cc: f64,
    meta: serde_json::Value,
}

impl From<HistoryRow> for HistoryRecord {
    fn from(r: HistoryRow) -> Self {
        let [ts, ms, ev, be, cc] = r.sub.to_array();
        HistoryRecord { id: r.id, timestamp: r.timestamp, pss: r.pss, ts, ms, ev, be, cc, meta: r.meta }
    }
}

impl From<HistoryRecord> for HistoryRow {
    fn from(r: HistoryRecord) -> Self {
        let sub = SubScores::from_array([r.ts, r.ms, r.ev, r.be, r.cc]);
        HistoryRow { id: r.id, timestamp: r.timestamp, pss: r.pss, sub, meta: r.meta }
    }
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

/// How a module is shown to a person: pypss stores a trace without a module
/// (`module: null`) under Python's `str(None)`, "None"; reports, documents
/// and the board say "(no module)". JSON keeps pypss's key.
pub fn module_label(name: &str) -> &str {
    if name == "None" {
        "(no module)"
    } else {
        name
    }
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
    /// Rounded to two decimals, as pypss reports them.
    pub sub: SubScores,
    pub features: Features,
    /// Custom metrics' scores with the weights they had, in the order they
    /// were configured; empty without custom metrics. The PSS includes them.
    #[serde(default)]
    pub custom: Vec<CustomValue>,
}

/// One custom metric's score in a window, and its weight in the window's PSS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomValue {
    pub code: String,
    /// 0–1, before rounding.
    pub score: f64,
    pub weight: f64,
    /// The statistic behind the score when `alpha` or `gamma` decays it
    /// (pypss's IO, DB, NET, GC): rescoring under other parameters uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
}

/// A custom metric's statistic and the scoring parameter that decays it
/// into its score, `exp(-rate × statistic)` (`score::custom::decay_score`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decay {
    pub statistic: f64,
    pub rate: Rate,
}

/// The scoring parameters pypss's built-in metrics decay by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    Alpha,
    Gamma,
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
            sub: SubScores::default(),
            features,
            custom: Vec::new(),
        }
    }

    /// The stored columns of a window after its key, in order: its counts and
    /// scores, then [`Features::NAMES`].
    pub const SCORE_COLUMNS: [&'static str; 9] = ["traces", "errors", "too_small", "pss", "ts", "ms", "ev", "be", "cc"];

    /// Every stored column after the key, comma-separated (for SQL): the
    /// scores, the features, then the custom scores (JSON); built once.
    pub fn value_columns() -> &'static str {
        static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            Window::SCORE_COLUMNS
                .iter()
                .chain(Features::NAMES.iter())
                .chain(std::iter::once(&"custom"))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        });
        &COLUMNS
    }
}
