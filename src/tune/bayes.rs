//! Bayesian optimization: a Gaussian-process surrogate (Matérn 5/2 kernel)
//! with expected improvement, after a random (Latin hypercube) initial design.
//! Seeded: the same seed gives the same sequence of candidates.
//!
//! Written here rather than on `egobox-ego`: a candidate is evaluated in
//! microseconds (re-scoring stored window features), there are at most a few
//! hundred points, and the objective is a step function of the parameters
//! (alarm metrics). A small exact GP with a fitted noise term, whose kernel
//! hyperparameters are chosen by marginal likelihood on a grid, keeps every
//! step visible and seeded, and adds no numerical stack to the build. The
//! inner optimization (maximizing EI) is dense random sampling plus local
//! perturbations of the best points, the usual practice for cheap surrogates.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fitted GP over points of the unit cube.
struct Gp {
    x: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    chol: Vec<Vec<f64>>,
    lengthscale: f64,
    mean: f64,
    std: f64,
}

fn matern52(a: &[f64], b: &[f64], l: f64) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let r = (5.0 * d2).sqrt() / l;
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

/// Lower Cholesky factor of a symmetric positive definite matrix.
fn cholesky(k: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = k.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|p| l[i][p] * l[j][p]).sum();
            if i == j {
                let d = k[i][i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (k[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

fn solve_lower(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|j| l[i][j] * y[j]).sum::<f64>()) / l[i][i];
    }
    y
}

fn solve_upper_t(l: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let n = y.len();
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|j| l[j][i] * x[j]).sum::<f64>()) / l[i][i];
    }
    x
}

impl Gp {
    /// Fits the GP; lengthscale and noise by log marginal likelihood on a grid.
    fn fit(x: &[Vec<f64>], y: &[f64]) -> Gp {
        let n = y.len();
        let mean = y.iter().sum::<f64>() / n as f64;
        let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let std = if var > 1e-18 { var.sqrt() } else { 1.0 };
        let z: Vec<f64> = y.iter().map(|v| (v - mean) / std).collect();
        let d = x.first().map(|p| p.len()).unwrap_or(1) as f64;
        let mut best: Option<(f64, Gp)> = None;
        for &l in &[0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5] {
            let l = l * d.sqrt(); // distances grow with the dimension
            for &noise in &[1e-6, 1e-3, 1e-2, 1e-1] {
                let k: Vec<Vec<f64>> = (0..n)
                    .map(|i| {
                        (0..n).map(|j| matern52(&x[i], &x[j], l) + if i == j { noise + 1e-9 } else { 0.0 }).collect()
                    })
                    .collect();
                let Some(chol) = cholesky(&k) else { continue };
                let a = solve_upper_t(&chol, &solve_lower(&chol, &z));
                let fit: f64 = z.iter().zip(&a).map(|(p, q)| p * q).sum();
                let logdet: f64 = chol.iter().enumerate().map(|(i, r)| r[i].ln()).sum::<f64>() * 2.0;
                let lml = -0.5 * fit - 0.5 * logdet;
                if best.as_ref().is_none_or(|b| lml > b.0) {
                    best = Some((lml, Gp { x: x.to_vec(), alpha: a, chol, lengthscale: l, mean, std }));
                }
            }
        }
        best.map(|b| b.1).expect("a jittered kernel matrix is positive definite")
    }

    /// Posterior mean and standard deviation at `p` (in objective units).
    fn predict(&self, p: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self.x.iter().map(|q| matern52(p, q, self.lengthscale)).collect();
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.chol, &k);
        let var = (1.0 - v.iter().map(|t| t * t).sum::<f64>()).max(1e-12);
        (self.mean + self.std * mu, self.std * var.sqrt())
    }
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| < 1.5e-7).
fn norm_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
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
        let xs: Vec<Vec<f64>> = trials.iter().map(|t| t.x.clone()).collect();
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
                    let c = trials[i]
                        .x
                        .iter()
                        .map(|&v| {
                            // Box–Muller normal step.
                            let u1: f64 = rng.random::<f64>().max(1e-300);
                            let u2: f64 = rng.random();
                            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                            (v + scale * z).clamp(0.0, 1.0)
                        })
                        .collect();
                    cands.push(c);
                }
            }
        }
        let mut pick = &cands[0];
        let mut pick_ei = f64::NEG_INFINITY;
        for c in &cands {
            let (mu, sigma) = gp.predict(c);
            let ei = expected_improvement(mu, sigma, best, 0.01 * gp.std.max(1e-9));
            if ei > pick_ei {
                pick_ei = ei;
                pick = c;
            }
        }
        let x = pick.clone();
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
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_cdf(1.96) - 0.9750021).abs() < 1e-6);
        assert!((norm_cdf(-1.0) - 0.1586553).abs() < 1e-6);
    }
}
