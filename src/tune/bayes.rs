//! Bayesian optimization: a Gaussian-process surrogate (Matérn 5/2 kernel)
//! with expected improvement, after a random (Latin hypercube) initial design.
//! Seeded: the same seed gives the same sequence of candidates.
//!
//! The GP is small and exact, on `ndarray` with `linfa-linalg`'s Cholesky
//! and triangular solves (pure Rust, already in the build through linfa).
//! `egobox-ego` was not taken: a candidate is evaluated in microseconds
//! (re-scoring stored window features), there are at most a few hundred
//! points, and the objective is a step function of the parameters, so its
//! machinery (mixtures of experts, its own optimizers) buys nothing and a
//! large build. Kernel hyperparameters are chosen by marginal likelihood on a
//! grid (a step objective makes gradient fits of them brittle). The inner
//! maximization of EI is dense sampling plus perturbations of the best points,
//! then `argmin`'s Nelder–Mead polishing the best candidate (EI is smooth
//! between samples; a derivative-free local search is the fitting tool).

use argmin::core::{CostFunction, Executor};
use argmin::solver::neldermead::NelderMead;
use linfa_linalg::cholesky::Cholesky;
use linfa_linalg::triangular::{SolveTriangular, UPLO};
use ndarray::{Array1, Array2, ArrayView1, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// A fitted GP over points of the unit cube (targets standardized).
struct Gp {
    x: Array2<f64>,
    /// `K⁻¹ z`.
    alpha: Array1<f64>,
    /// The inverse of the lower Cholesky factor of `K + noise·I`: the
    /// posterior variance of many points is then one matrix product.
    linv: Array2<f64>,
    lengthscale: f64,
    mean: f64,
    std: f64,
}

/// Matérn 5/2 of a squared distance.
fn matern52(d2: f64, l: f64) -> f64 {
    let r = (5.0 * d2).sqrt() / l;
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

/// Squared distances between the rows of `x` (exact differences).
fn sq_dists_exact(x: &Array2<f64>) -> Array2<f64> {
    let d = |a: ArrayView1<'_, f64>, b: ArrayView1<'_, f64>| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
    Array2::from_shape_fn((x.nrows(), x.nrows()), |(i, j)| d(x.row(i), x.row(j)))
}

/// Squared distances between the rows of `a` and of `b`, through one matrix
/// product (`|a|² + |b|² − 2 a·b`, clamped at 0): for many candidates.
fn sq_dists(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let an: Array1<f64> = a.rows().into_iter().map(|r| r.dot(&r)).collect();
    let bn: Array1<f64> = b.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut d = a.dot(&b.t());
    for ((i, j), v) in d.indexed_iter_mut() {
        *v = (an[i] + bn[j] - 2.0 * *v).max(0.0);
    }
    d
}

impl Gp {
    /// The log marginal likelihood and `K⁻¹ z` of these hyperparameters
    /// (squared distances `d2` between the points); `None` when the kernel
    /// matrix is not positive definite.
    fn likelihood(d2: &Array2<f64>, z: &Array1<f64>, l: f64, noise: f64) -> Option<(f64, Array2<f64>, Array1<f64>)> {
        let n = z.len();
        let k = d2.mapv(|v| matern52(v, l)) + Array2::<f64>::eye(n) * (noise + 1e-9);
        let chol = k.cholesky().ok()?;
        let zc = z.view().insert_axis(Axis(1));
        let y = chol.solve_triangular(&zc, UPLO::Lower).ok()?;
        let alpha = chol.t().solve_triangular(&y, UPLO::Upper).ok()?.column(0).to_owned();
        let logdet = chol.diag().iter().map(|d| d.ln()).sum::<f64>() * 2.0;
        Some((-0.5 * z.dot(&alpha) - 0.5 * logdet, chol, alpha))
    }

    /// The GP with these hyperparameters on standardized targets `z`.
    #[cfg(test)]
    fn with(x: &Array2<f64>, z: &Array1<f64>, lengthscale: f64, noise: f64) -> Option<(f64, Gp)> {
        let (lml, chol, alpha) = Gp::likelihood(&sq_dists_exact(x), z, lengthscale, noise)?;
        Some((lml, Gp::from_factor(x, chol, alpha, lengthscale)?))
    }

    fn from_factor(x: &Array2<f64>, chol: Array2<f64>, alpha: Array1<f64>, lengthscale: f64) -> Option<Gp> {
        let linv = chol.solve_triangular(&Array2::<f64>::eye(x.nrows()), UPLO::Lower).ok()?;
        Some(Gp { x: x.clone(), alpha, linv, lengthscale, mean: 0.0, std: 1.0 })
    }

    /// Fits the GP; lengthscale and noise by log marginal likelihood on a grid.
    fn fit(x: &Array2<f64>, y: &[f64]) -> Gp {
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = if var > 1e-18 { var.sqrt() } else { 1.0 };
        let z: Array1<f64> = y.iter().map(|v| (v - mean) / std).collect();
        let d = (x.ncols().max(1) as f64).sqrt(); // distances grow with the dimension
        let d2 = sq_dists_exact(x);
        let mut best: Option<(f64, f64, Array2<f64>, Array1<f64>)> = None;
        for l in [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5] {
            for noise in [1e-6, 1e-3, 1e-2, 1e-1] {
                if let Some((lml, chol, alpha)) = Gp::likelihood(&d2, &z, l * d, noise) {
                    if best.as_ref().is_none_or(|b| lml > b.0) {
                        best = Some((lml, l * d, chol, alpha));
                    }
                }
            }
        }
        let (_, l, chol, alpha) = best.expect("a jittered kernel matrix is positive definite");
        let mut gp = Gp::from_factor(x, chol, alpha, l).expect("a Cholesky factor has a non-zero diagonal");
        gp.mean = mean;
        gp.std = std;
        gp
    }

    /// Posterior mean and standard deviation at each row of `p` (in
    /// objective units).
    fn predict(&self, p: &Array2<f64>) -> Vec<(f64, f64)> {
        let ks = sq_dists(&self.x, p).mapv(|v| matern52(v, self.lengthscale)); // n × m
        let mu = ks.t().dot(&self.alpha);
        let v = self.linv.dot(&ks);
        let explained = v.map(|t| t * t).sum_axis(Axis(0));
        mu.iter()
            .zip(&explained)
            .map(|(m, e)| (self.mean + self.std * m, self.std * (1.0 - e).max(1e-12).sqrt()))
            .collect()
    }
}

/// Standard normal CDF, through `libm`'s `erf`.
fn norm_cdf(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Expected improvement over `best` (maximization), with exploration `xi`.
fn expected_improvement(mu: f64, sigma: f64, best: f64, xi: f64) -> f64 {
    if sigma <= 0.0 {
        return 0.0;
    }
    let z = (mu - best - xi) / sigma;
    (mu - best - xi) * norm_cdf(z) + sigma * norm_pdf(z)
}

/// Minus the expected improvement at a point (clamped into the cube), for
/// argmin's minimizers.
#[derive(Clone, Copy)]
struct NegEi<'a> {
    gp: &'a Gp,
    best: f64,
    xi: f64,
}

impl NegEi<'_> {
    fn at(&self, p: &[f64]) -> f64 {
        let row = Array2::from_shape_vec((1, p.len()), p.iter().map(|v| v.clamp(0.0, 1.0)).collect()).expect("one row");
        let (mu, sigma) = self.gp.predict(&row)[0];
        -expected_improvement(mu, sigma, self.best, self.xi)
    }
}

impl CostFunction for NegEi<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.at(p))
    }
}

/// Polishes `start` with Nelder–Mead on −EI (a simplex of side `step`);
/// returns the better of the two and its EI.
fn polish(neg: &NegEi<'_>, start: &[f64], start_ei: f64, step: f64) -> (Vec<f64>, f64) {
    let mut simplex = vec![start.to_vec()];
    for k in 0..start.len() {
        let mut v = start.to_vec();
        v[k] = if v[k] + step <= 1.0 { v[k] + step } else { v[k] - step };
        simplex.push(v);
    }
    let solver = NelderMead::new(simplex);
    let res = Executor::new(*neg, solver).configure(|s| s.max_iters(40)).run();
    match res.ok().and_then(|r| r.state.best_param.clone().map(|p| (p, r.state.best_cost))) {
        Some((p, cost)) if -cost > start_ei => (p.iter().map(|v| v.clamp(0.0, 1.0)).collect(), -cost),
        _ => (start.to_vec(), start_ei),
    }
}

/// One evaluated point.
#[derive(Debug, Clone)]
pub struct Trial {
    pub x: Vec<f64>,
    pub value: f64,
}

/// Maximizes `f` over the unit cube of dimension `dim` with `budget`
/// evaluations: `initial` first points (`start` points first, then a Latin
/// hypercube), the rest chosen by expected improvement. `on_trial` sees each
/// evaluation (for progress).
pub fn maximize(
    dim: usize,
    budget: usize,
    start: &[Vec<f64>],
    seed: u64,
    f: &mut dyn FnMut(&[f64]) -> f64,
    on_trial: &mut dyn FnMut(usize, f64),
) -> Vec<Trial> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let initial = (budget / 3).clamp(start.len().max(2), budget.max(1));
    let mut trials: Vec<Trial> = Vec::with_capacity(budget);
    let mut design: Vec<Vec<f64>> = start.iter().take(initial).cloned().collect();
    let lhs_n = initial - design.len();
    if lhs_n > 0 {
        // Latin hypercube: one point per stratum in every dimension.
        let mut cols: Vec<Vec<f64>> = (0..dim)
            .map(|_| {
                let mut c: Vec<f64> = (0..lhs_n).map(|k| (k as f64 + rng.random::<f64>()) / lhs_n as f64).collect();
                for i in (1..c.len()).rev() {
                    let j = rng.random_range(0..=i);
                    c.swap(i, j);
                }
                c
            })
            .collect();
        for k in 0..lhs_n {
            design.push(cols.iter_mut().map(|c| c[k]).collect());
        }
    }
    for x in design {
        let value = f(&x);
        on_trial(trials.len(), value);
        trials.push(Trial { x, value });
    }
    while trials.len() < budget {
        let xs = Array2::from_shape_fn((trials.len(), dim), |(i, j)| trials[i].x[j]);
        let ys: Vec<f64> = trials.iter().map(|t| t.value).collect();
        let gp = Gp::fit(&xs, &ys);
        let best = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Candidates: uniform samples and perturbations of the best points.
        let mut order: Vec<usize> = (0..trials.len()).collect();
        order.sort_by(|&a, &b| trials[b].value.total_cmp(&trials[a].value));
        let mut cands: Vec<Vec<f64>> = (0..2000).map(|_| (0..dim).map(|_| rng.random::<f64>()).collect()).collect();
        for &i in order.iter().take(5) {
            for scale in [0.02, 0.08, 0.2] {
                for _ in 0..150 {
                    let step = |v: &f64| (v + scale * rng.sample::<f64, _>(StandardNormal)).clamp(0.0, 1.0);
                    let c = trials[i].x.iter().map(step).collect();
                    cands.push(c);
                }
            }
        }
        let grid = Array2::from_shape_fn((cands.len(), dim), |(i, j)| cands[i][j]);
        let xi = 0.01 * gp.std.max(1e-9);
        let (mut pick, mut pick_ei) = (0, f64::NEG_INFINITY);
        for (k, (mu, sigma)) in gp.predict(&grid).into_iter().enumerate() {
            let ei = expected_improvement(mu, sigma, best, xi);
            if ei > pick_ei {
                pick_ei = ei;
                pick = k;
            }
        }
        let (x, _) = polish(&NegEi { gp: &gp, best, xi }, &cands[pick], pick_ei, 0.02);
        let value = f(&x);
        on_trial(trials.len(), value);
        trials.push(Trial { x, value });
    }
    trials
}

/// Random search with the same budget (the baseline Bayesian optimization
/// must beat), from its own seeded stream; `start` points are evaluated first.
pub fn random_search(
    dim: usize,
    budget: usize,
    start: &[Vec<f64>],
    seed: u64,
    f: &mut dyn FnMut(&[f64]) -> f64,
) -> Vec<Trial> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed);
    let mut out = Vec::with_capacity(budget);
    for x in start.iter().take(budget) {
        out.push(Trial { x: x.clone(), value: f(x) });
    }
    while out.len() < budget {
        let x: Vec<f64> = (0..dim).map(|_| rng.random::<f64>()).collect();
        let value = f(&x);
        out.push(Trial { x, value });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

    #[test]
    fn finds_the_peak_of_a_smooth_function_better_than_random() {
        // A narrow peak at (0.7, 0.2, 0.5): BO should get much closer.
        let target = [0.7, 0.2, 0.5];
        let mut f = |x: &[f64]| -> f64 { -x.iter().zip(target).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() };
        let bo = maximize(3, 30, &[], 1, &mut f, &mut |_, _| {});
        let rs = random_search(3, 30, &[], 1, &mut f);
        let best = |t: &[Trial]| t.iter().map(|t| t.value).fold(f64::NEG_INFINITY, f64::max);
        assert!(best(&bo) > best(&rs), "bo {} rs {}", best(&bo), best(&rs));
        assert!(best(&bo) > -0.01, "{}", best(&bo));
    }

    #[test]
    fn is_reproducible() {
        let mut f = |x: &[f64]| x[0] - x[1];
        let a = maximize(2, 12, &[], 7, &mut f, &mut |_, _| {});
        let b = maximize(2, 12, &[], 7, &mut f, &mut |_, _| {});
        assert_eq!(a.iter().map(|t| t.value).collect::<Vec<_>>(), b.iter().map(|t| t.value).collect::<Vec<_>>());
    }

    #[test]
    fn normal_cdf() {
        assert_relative_eq!(norm_cdf(0.0), 0.5);
        assert_relative_eq!(norm_cdf(1.96), 0.9750021048517795, max_relative = 1e-12);
        assert_relative_eq!(norm_cdf(-1.0), 0.15865525393145707, max_relative = 1e-12);
    }

    /// The posterior of two observations in one dimension, against the
    /// closed form with the 2×2 inverse written out.
    #[test]
    fn posterior_matches_the_closed_form() {
        let (l, noise) = (0.4, 0.01);
        let x = array![[0.2], [0.7]];
        let z = array![1.0, -0.5];
        let (_, gp) = Gp::with(&x, &z, l, noise).unwrap();
        let k = |a: f64, b: f64| {
            let r = 5f64.sqrt() * (a - b).abs() / l;
            (1.0 + r + r * r / 3.0) * (-r).exp()
        };
        let (a, c) = (1.0 + noise + 1e-9, k(0.2, 0.7));
        let det = a * a - c * c;
        let inv = [[a / det, -c / det], [-c / det, a / det]];
        for p in [0.0, 0.2, 0.45, 0.9] {
            let ks = [k(p, 0.2), k(p, 0.7)];
            let w = [inv[0][0] * ks[0] + inv[0][1] * ks[1], inv[1][0] * ks[0] + inv[1][1] * ks[1]];
            let mean = w[0] * z[0] + w[1] * z[1];
            let var = 1.0 - (w[0] * ks[0] + w[1] * ks[1]);
            let (mu, sd) = gp.predict(&array![[p]])[0];
            assert_relative_eq!(mu, mean, epsilon = 1e-12);
            assert_relative_eq!(sd, var.max(1e-12).sqrt(), epsilon = 1e-9);
        }
    }

    #[test]
    fn polishing_never_loses_expected_improvement() {
        let x = array![[0.1, 0.1], [0.5, 0.5], [0.9, 0.2]];
        let gp = Gp::fit(&x, &[0.0, 1.0, 0.3]);
        let neg = NegEi { gp: &gp, best: 1.0, xi: 0.01 };
        let start = [0.45, 0.55];
        let ei = -neg.at(&start);
        let (p, better) = polish(&neg, &start, ei, 0.02);
        assert!(better >= ei && p.iter().all(|v| (0.0..=1.0).contains(v)), "{better} < {ei}");
        assert_relative_eq!(-neg.at(&p), better, epsilon = 1e-12);
    }
}
