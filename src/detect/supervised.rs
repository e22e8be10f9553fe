//! A supervised window classifier for when labels are plentiful: a random
//! forest of `smartcore` decision trees, each grown on a stratified bootstrap
//! of the rows and a random subset of the features, whose scores are the mean
//! of the trees' class-1 probabilities.
//!
//! smartcore's own `RandomForestClassifier` only returns majority votes (no
//! probabilities), and a ranking score is what AUC-PR and alarm thresholds
//! need; so the bagging is done here over smartcore's trees, which do expose
//! `predict_proba`.

use ndarray::Array2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifier, DecisionTreeClassifierParameters};

/// Hyperparameters of the forest.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomForestParams {
    pub n_trees: usize,
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    /// Features per tree (0: the square root of the feature count, at least 2).
    pub features_per_tree: usize,
    pub seed: u64,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        RandomForestParams { n_trees: 100, max_depth: 8, min_samples_leaf: 2, features_per_tree: 0, seed: 7 }
    }
}

/// Why a forest could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum SupervisedError {
    #[error("invalid hyperparameter: {0}")]
    Param(String),
    #[error("need labeled and unlabeled rows to learn from ({positives} labeled of {rows})")]
    OneClass { positives: usize, rows: usize },
    #[error("decision tree: {0}")]
    Tree(String),
}

type Tree = DecisionTreeClassifier<f64, i32, DenseMatrix<f64>, Vec<i32>>;

/// A trained forest.
#[derive(Debug)]
pub struct RandomForest {
    trees: Vec<(Vec<usize>, Tree)>,
}

fn matrix(x: &Array2<f64>, rows: &[usize], cols: &[usize]) -> Result<DenseMatrix<f64>, SupervisedError> {
    let mut v = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        for &c in cols {
            v.push(x[[r, c]]);
        }
    }
    DenseMatrix::new(rows.len(), cols.len(), v, false).map_err(|e| SupervisedError::Tree(e.to_string()))
}

/// Rows with their labels: what the supervised forest learns from.
#[derive(Debug, Clone, Copy)]
pub struct LabeledRows<'a> {
    pub x: &'a Array2<f64>,
    pub y: &'a [bool],
}

/// [`RandomForestParams`] that passed [`RandomForestParams::check`].
#[derive(Debug, Clone)]
pub struct CheckedRandomForestParams(RandomForestParams);

impl RandomForestParams {
    /// Validates the hyperparameters.
    pub fn check(self) -> Result<CheckedRandomForestParams, SupervisedError> {
        if self.n_trees == 0 {
            return Err(SupervisedError::Param("n_trees must be at least 1".into()));
        }
        if self.max_depth == 0 {
            return Err(SupervisedError::Param("max_depth must be at least 1".into()));
        }
        Ok(CheckedRandomForestParams(self))
    }
}

impl<'a> super::Fit<LabeledRows<'a>> for CheckedRandomForestParams {
    type Model = RandomForest;
    type Error = SupervisedError;

    /// Trains on the rows with their labels.
    fn fit(&self, data: &LabeledRows<'a>) -> Result<RandomForest, SupervisedError> {
        let p = &self.0;
        let LabeledRows { x, y } = *data;
        let pos: Vec<usize> = (0..y.len()).filter(|&i| y[i]).collect();
        let neg: Vec<usize> = (0..y.len()).filter(|&i| !y[i]).collect();
        if pos.is_empty() || neg.is_empty() {
            return Err(SupervisedError::OneClass { positives: pos.len(), rows: y.len() });
        }
        let d = x.ncols();
        let m =
            if p.features_per_tree == 0 { ((d as f64).sqrt().round() as usize).max(2) } else { p.features_per_tree }
                .min(d);
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut trees = Vec::with_capacity(p.n_trees);
        for t in 0..p.n_trees {
            // Stratified bootstrap: both classes in every tree, in their proportions.
            let mut rows: Vec<usize> = (0..pos.len()).map(|_| pos[rng.random_range(0..pos.len())]).collect();
            rows.extend((0..neg.len()).map(|_| neg[rng.random_range(0..neg.len())]));
            let mut cols = sample(&mut rng, d, m).into_vec();
            cols.sort_unstable();
            let labels: Vec<i32> = rows.iter().map(|&r| i32::from(y[r])).collect();
            let params = DecisionTreeClassifierParameters::default()
                .with_max_depth(p.max_depth)
                .with_min_samples_leaf(p.min_samples_leaf);
            let params = DecisionTreeClassifierParameters { seed: Some(p.seed.wrapping_add(t as u64)), ..params };
            let tree = Tree::fit(&matrix(x, &rows, &cols)?, &labels, params)
                .map_err(|e| SupervisedError::Tree(e.to_string()))?;
            trees.push((cols, tree));
        }
        Ok(RandomForest { trees })
    }
}

impl RandomForest {
    /// The probability that each row is labeled (mean over trees), in [0, 1].
    pub fn predict_proba(&self, x: &Array2<f64>) -> Result<Vec<f64>, SupervisedError> {
        let rows: Vec<usize> = (0..x.nrows()).collect();
        let mut sum = vec![0.0; x.nrows()];
        for (cols, tree) in &self.trees {
            let p = tree.predict_proba(&matrix(x, &rows, cols)?).map_err(|e| SupervisedError::Tree(e.to_string()))?;
            // Classes are sorted and both are in every bootstrap: column 1 is "labeled".
            for (i, s) in sum.iter_mut().enumerate() {
                *s += *p.get((i, 1));
            }
        }
        let n = self.trees.len() as f64;
        Ok(sum.into_iter().map(|s| s / n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_learnable_label_and_is_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 400;
        let mut v = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let a: f64 = rng.random();
            let b: f64 = rng.random();
            v.extend([a, b, rng.random::<f64>()]);
            y.push(a + 0.3 * b > 0.9 || i % 97 == 0);
        }
        let x = Array2::from_shape_vec((n, 3), v).unwrap();
        use crate::detect::Fit;
        let p = RandomForestParams { n_trees: 30, features_per_tree: 3, ..Default::default() }.check().unwrap();
        let f = p.fit(&LabeledRows { x: &x, y: &y }).unwrap();
        let s = f.predict_proba(&x).unwrap();
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        let auc = crate::detect::iforest::roc_auc(&s, &y);
        assert!(auc > 0.95, "auc {auc}");
        assert_eq!(s, p.fit(&LabeledRows { x: &x, y: &y }).unwrap().predict_proba(&x).unwrap());
        assert!(matches!(p.fit(&LabeledRows { x: &x, y: &vec![false; n] }), Err(SupervisedError::OneClass { .. })));
    }
}
