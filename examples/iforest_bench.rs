//! Times isolation-forest fit + score on a CSV of features (last column: 0/1
//! label) and prints seconds and ROC AUC. Driven by benches/iforest.py.
use std::time::Instant;

use pss::detect::iforest::{roc_auc, IsolationForestParams};

fn main() {
    let path = std::env::args().nth(1).expect("usage: iforest_bench FILE.csv");
    let text = std::fs::read_to_string(&path).expect("readable CSV");
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().expect("number")).collect();
        let (l, f) = v.split_last().expect("columns");
        labels.push(*l == 1.0);
        rows.extend_from_slice(f);
    }
    let d = rows.len() / labels.len();
    let x = ndarray::Array2::from_shape_vec((labels.len(), d), rows).expect("shape");
    let t0 = Instant::now();
    let f = IsolationForestParams { n_estimators: 100, max_samples: 256, seed: 0, ..Default::default() }
        .check()
        .expect("params")
        .fit(&x.view())
        .expect("fit");
    let fit = t0.elapsed().as_secs_f64();
    let s = f.score(&x.view());
    eprintln!("fit {fit:.4} s, score {:.4} s", t0.elapsed().as_secs_f64() - fit);
    let secs = t0.elapsed().as_secs_f64();
    println!("{secs} {}", roc_auc(&s, &labels));
}
