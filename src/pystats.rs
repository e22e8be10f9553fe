//! Python-compatible statistics: the exact results of CPython 3.11's
//! `statistics` module, `round()` and `float()` on the values pypss feeds them.
//!
//! pypss computes its scores with `statistics.mean`, `stdev`, `variance`,
//! `median` and `quantiles(n=100)`. Those functions sum *exactly* (as
//! fractions) and round once, so a naive `f64` sum drifts from them in the
//! last bits, and a last bit is enough to move a `round(x, 2)` across a tie.
//! No crate reproduces CPython's rounding points, so they are written here:
//! sums go into an exact fixed-point superaccumulator (every finite `f64` is
//! an integer multiple of 2^-1074), the few divisions and square roots at the
//! end run on big integers (`num-bigint`) and round once, as CPython does.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};

/// Exponent offset: a finite `f64` is `m * 2^(p - OFFSET)` with `p >= 0`.
const OFFSET: i32 = 1074;

/// Splits a finite, non-zero `f64` into `(negative, mantissa, p)` where the
/// value is `mantissa * 2^(p - 1074)`, `mantissa < 2^53`, `p >= 0`.
#[inline]
fn decompose(x: f64) -> (bool, u64, u32) {
    let bits = x.to_bits();
    let neg = bits >> 63 != 0;
    let exp = ((bits >> 52) & 0x7ff) as u32;
    let frac = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        (neg, frac, 0)
    } else {
        (neg, frac | (1u64 << 52), exp - 1)
    }
}

/// Exact sum of `f64` values and of their squares, in one pass.
///
/// Digit `k` of `sum` holds a signed multiple of `2^(32k - 1074)`; digit `k`
/// of `sq` a multiple of `2^(32k - 2148)`. Digits are `i128` and never carry
/// during accumulation: each addition adds at most 2^96 to a digit, so more
/// than 2^30 values fit before a digit could overflow — `add` refuses more.
#[derive(Clone)]
pub struct ExactSums {
    sum: Vec<i128>,
    sq: Vec<i128>,
    n: u64,
    with_squares: bool,
}

/// Largest count an [`ExactSums`] accepts (see its overflow bound).
pub const MAX_EXACT_COUNT: u64 = 1 << 30;

impl ExactSums {
    /// An empty accumulator; `with_squares` also keeps the sum of squares.
    pub fn new(with_squares: bool) -> Self {
        ExactSums { sum: vec![0; 66], sq: if with_squares { vec![0; 132] } else { Vec::new() }, n: 0, with_squares }
    }

    /// Sums every value of `xs`.
    pub fn of(xs: &[f64], with_squares: bool) -> Self {
        let mut acc = Self::new(with_squares);
        for &x in xs {
            acc.add(x);
        }
        acc
    }

    /// Adds one finite value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        debug_assert!(x.is_finite());
        self.n += 1;
        assert!(self.n <= MAX_EXACT_COUNT, "ExactSums holds at most 2^30 values");
        if x == 0.0 {
            return;
        }
        let (neg, m, p) = decompose(x);
        let k = (p / 32) as usize;
        let v = (m as i128) << (p % 32);
        if neg {
            self.sum[k] -= v;
        } else {
            self.sum[k] += v;
        }
        if self.with_squares {
            let p2 = 2 * p;
            let k2 = (p2 / 32) as usize;
            let s2 = p2 % 32;
            let m2 = (m as u128) * (m as u128);
            let lo = ((m2 & 0xffff_ffff_ffff_ffff) as i128) << s2;
            let hi = ((m2 >> 64) as i128) << s2;
            self.sq[k2] += lo;
            self.sq[k2 + 2] += hi;
        }
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.n
    }

    fn digits_to_bigint(digits: &[i128]) -> BigInt {
        let mut acc = BigInt::zero();
        // Horner's rule: digits may exceed 32 bits and be negative; the
        // additions carry between them.
        for &d in digits.iter().rev() {
            acc <<= 32;
            if d != 0 {
                acc += BigInt::from(d);
            }
        }
        acc
    }

    /// The exact sum, as an integer count of 2^-1074.
    pub fn sum_scaled(&self) -> BigInt {
        Self::digits_to_bigint(&self.sum)
    }

    /// The exact sum of squares, as an integer count of 2^-2148.
    pub fn sq_scaled(&self) -> BigInt {
        Self::digits_to_bigint(&self.sq)
    }

    /// `statistics.mean`: the exact mean, rounded once. `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let den = BigUint::from(self.n) << (OFFSET as usize);
        Some(ratio_to_f64(&self.sum_scaled(), &den))
    }

    /// `(n·Σx² − (Σx)²)`, exact, as a count of 2^-2148: `n` times the sum of
    /// squared deviations from the exact mean.
    fn n_times_ssd(&self) -> BigInt {
        let s = self.sum_scaled();
        BigInt::from(self.n) * self.sq_scaled() - &s * &s
    }

    /// `statistics.variance`: exact sample variance rounded once; `None` for n < 2.
    pub fn variance(&self) -> Option<f64> {
        assert!(self.with_squares);
        if self.n < 2 {
            return None;
        }
        let num = self.n_times_ssd();
        let den = (BigUint::from(self.n) * BigUint::from(self.n - 1)) << (2 * OFFSET as usize);
        Some(ratio_to_f64(&num, &den))
    }

    /// `statistics.stdev`: the correctly rounded square root of the exact
    /// sample variance (CPython 3.11's `_float_sqrt_of_frac`); `None` for n < 2.
    pub fn stdev(&self) -> Option<f64> {
        assert!(self.with_squares);
        if self.n < 2 {
            return None;
        }
        let num = self.n_times_ssd();
        let num = num.to_biguint().unwrap_or_default();
        let den = (BigUint::from(self.n) * BigUint::from(self.n - 1)) << (2 * OFFSET as usize);
        Some(float_sqrt_of_frac(num, den))
    }
}

/// `statistics.mean` of a slice of finite floats.
pub fn mean(xs: &[f64]) -> Option<f64> {
    ExactSums::of(xs, false).mean()
}

/// `statistics.stdev` of a slice of finite floats.
pub fn stdev(xs: &[f64]) -> Option<f64> {
    ExactSums::of(xs, true).stdev()
}

/// `statistics.variance` of 0/1 integers with `k` ones among `n`: exactly
/// `k(n−k) / (n(n−1))`, rounded once (CPython converts the int result's
/// fraction to float).
pub fn variance_of_bools(k: u64, n: u64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let num = BigInt::from(k) * BigInt::from(n - k);
    let den = BigUint::from(n) * BigUint::from(n - 1);
    Some(ratio_to_f64(&num, &den))
}

/// Python's `int / int` (true division): the exact quotient rounded once to
/// the nearest `f64`, ties to even, with subnormals; overflow gives ±inf
/// (where CPython raises `OverflowError`).
pub fn ratio_to_f64(num: &BigInt, den: &BigUint) -> f64 {
    assert!(!den.is_zero(), "ratio_to_f64: zero denominator");
    if num.is_zero() {
        return 0.0;
    }
    let neg = num.sign() == Sign::Minus;
    let a = num.magnitude();
    let mag = biguint_ratio_to_f64(a, den);
    if neg {
        -mag
    } else {
        mag
    }
}

fn biguint_ratio_to_f64(a: &BigUint, b: &BigUint) -> f64 {
    // Scale so the integer quotient has at least 55 bits; the remainder is
    // the sticky bit.
    let e = a.bits() as i64 - b.bits() as i64;
    let s = 55 - e; // quotient q = floor(a * 2^s / b) has 55 or 56 bits
    let (q, r) = if s >= 0 { (a << (s as usize)).div_rem(b) } else { a.div_rem(&(b << ((-s) as usize))) };
    let sticky = !r.is_zero();
    round_scaled(&q, sticky, -s)
}

/// Rounds `q · 2^scale` (with `sticky` meaning "a little more than that") to
/// the nearest `f64`, ties to even.
fn round_scaled(q: &BigUint, sticky: bool, scale: i64) -> f64 {
    let l = q.bits() as i64; // value in [2^(l-1+scale), 2^(l+scale))
    if l == 0 {
        return 0.0;
    }
    let top = l - 1 + scale; // exponent of the leading bit
    let ulp = (top - 52).max(-1074);
    let drop = ulp - scale; // low bits of q to drop
    let (mut kept, half_or_more, exact_half) = if drop <= 0 {
        (q << ((-drop) as usize), false, false)
    } else {
        let drop = drop as u64;
        let kept = q >> drop;
        let rem_mask_bit = |i: u64| q.bit(i);
        let half = rem_mask_bit(drop - 1);
        // Is everything below the half bit zero?
        let low_zero = q.trailing_zeros().map(|tz| tz >= drop - 1).unwrap_or(true) && !sticky;
        (kept, half, half && low_zero)
    };
    if half_or_more {
        let round_up = if exact_half { kept.bit(0) } else { true };
        if round_up {
            kept += 1u32;
        }
    }
    // kept * 2^ulp; kept <= 2^53 so it converts exactly.
    let k = kept.to_u64().expect("at most 54 bits");
    ldexp_exact(k as f64, ulp)
}

/// `x · 2^e` for an `x` whose result needs no rounding (or overflows to inf).
fn ldexp_exact(mut x: f64, mut e: i64) -> f64 {
    while e > 0 {
        let step = e.min(1000);
        x *= f64::from_bits(((1023 + step) as u64) << 52);
        e -= step;
        if x.is_infinite() {
            return x;
        }
    }
    while e < 0 {
        // Scale down in steps that keep the value normal until the last one.
        let step = (-e).min(1000);
        if step < 1022 {
            let f = f64::from_bits(((1023 - step) as u64) << 52);
            x *= f;
        }
        e += step;
    }
    x
}

fn integer_sqrt_of_frac_rto(n: &BigUint, m: &BigUint) -> BigUint {
    let a = (n / m).sqrt();
    let odd = &a * &a * m != *n;
    if odd {
        a | BigUint::one()
    } else {
        a
    }
}

/// CPython's `_float_sqrt_of_frac(n, m)`: the square root of `n/m` as a
/// correctly rounded float, after reducing the fraction as `Fraction` does.
pub fn float_sqrt_of_frac(n: BigUint, m: BigUint) -> f64 {
    if n.is_zero() {
        return 0.0;
    }
    let g = n.gcd(&m);
    let (n, m) = (n / &g, m / &g);
    const SQRT_BIT_WIDTH: i64 = 2 * 53 + 3;
    let q = (n.bits() as i64 - m.bits() as i64 - SQRT_BIT_WIDTH).div_euclid(2);
    if q >= 0 {
        let numerator = integer_sqrt_of_frac_rto(&n, &(m << (2 * q as usize))) << (q as usize);
        biguint_ratio_to_f64(&numerator, &BigUint::one())
    } else {
        let numerator = integer_sqrt_of_frac_rto(&(n << ((-2 * q) as usize)), &m);
        let denominator = BigUint::one() << ((-q) as usize);
        biguint_ratio_to_f64(&numerator, &denominator)
    }
}

/// Python's `round(x)` for a float: nearest integer, ties to even.
pub fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// Python's `round(x, 2)`: the exact binary value rounded to two decimals,
/// ties to even (only exact binary ties count), then back to the nearest float.
pub fn py_round2(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 || x.abs() >= 4503599627370496.0 {
        return x; // integers (and inf/nan) are returned unchanged
    }
    let (neg, m, p) = decompose(x);
    let e = p as i64 - OFFSET as i64; // x = m * 2^e
    if e >= 0 {
        return x;
    }
    let shift = (-e) as u32;
    let hundred_m = (m as u128) * 100; // < 2^60
    let k: u128 = if shift >= 127 {
        0
    } else {
        let q = hundred_m >> shift;
        let rem = hundred_m - (q << shift);
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    let v: f64 = if k == 0 { 0.0 } else { format!("{k}e-2").parse().expect("valid float literal") };
    if neg {
        -v
    } else {
        v
    }
}

/// `statistics.median` (sorts; the even case averages the two middle values
/// in floating point, as CPython does). `None` when empty.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let (_, &mut hi, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(hi);
    }
    // The lower middle is the largest of the left part.
    let lo = xs[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo + hi) / 2.0)
}

/// Selected cut points of `statistics.quantiles(xs, n=100)` (the exclusive
/// method), `indices` into its 99-element result. Uses selection instead of
/// a full sort: each cut point needs two order statistics. `None` for fewer
/// than two values.
pub fn percentiles(xs: &mut [f64], indices: &[usize]) -> Option<Vec<f64>> {
    let ld = xs.len();
    if ld < 2 {
        return None;
    }
    const N: i128 = 100;
    let m = ld as i128 + 1;
    // Order statistics needed, by 0-based rank.
    let mut plans = Vec::with_capacity(indices.len());
    let mut ranks = Vec::new();
    for &idx in indices {
        let i = idx as i128 + 1;
        let mut j = i * m / N;
        j = j.clamp(1, ld as i128 - 1);
        let delta = i * m - j * N;
        plans.push((j as usize, delta));
        ranks.push(j as usize - 1);
        ranks.push(j as usize);
    }
    ranks.sort_unstable();
    ranks.dedup();
    let values = order_statistics(xs, &ranks);
    let at = |r: usize| values[ranks.binary_search(&r).expect("rank planned")];
    Some(
        plans
            .into_iter()
            .map(|(j, delta)| {
                let a = at(j - 1);
                let b = at(j);
                (a * (N - delta) as f64 + b * delta as f64) / N as f64
            })
            .collect(),
    )
}

/// Values at the given sorted, distinct 0-based ranks, by recursive selection.
fn order_statistics(xs: &mut [f64], ranks: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; ranks.len()];
    fn go(xs: &mut [f64], base: usize, ranks: &[usize], out: &mut [f64]) {
        if ranks.is_empty() {
            return;
        }
        let mid = ranks.len() / 2;
        let r = ranks[mid] - base;
        let (left, v, right) = xs.select_nth_unstable_by(r, f64::total_cmp);
        out[mid] = *v;
        let (lo_r, hi_r) = ranks.split_at(mid);
        let (lo_o, hi_o) = out.split_at_mut(mid);
        go(left, base, lo_r, lo_o);
        go(right, base + r + 1, &hi_r[1..], &mut hi_o[1..]);
    }
    go(xs, 0, ranks, &mut out);
    out
}

/// CPython 3.11's built-in `sum()` over a mix of ints and floats: ints are
/// added exactly until the first float, then everything is added in `f64`
/// left to right. Returns the total as a number.
pub fn py_builtin_sum(values: &[Num]) -> Num {
    let mut int_total: i128 = 0;
    let mut iter = values.iter();
    for v in iter.by_ref() {
        match *v {
            Num::Int(i) => int_total += i as i128,
            Num::Float(f) => {
                // int + float: the int is converted (rounded) and added.
                let mut f_total = int_to_f64(int_total) + f;
                for rest in iter.by_ref() {
                    f_total += match *rest {
                        Num::Int(i) => i as f64,
                        Num::Float(g) => g,
                    };
                }
                return Num::Float(f_total);
            }
        }
    }
    Num::Int(int_total as i64)
}

fn int_to_f64(i: i128) -> f64 {
    ratio_to_f64(&BigInt::from(i), &BigUint::one())
}

/// Python's `total / count` for the result of [`py_builtin_sum`].
pub fn py_div_count(total: Num, count: usize) -> f64 {
    match total {
        Num::Int(i) => ratio_to_f64(&BigInt::from(i), &BigUint::from(count)),
        Num::Float(f) => f / count as f64,
    }
}

/// A JSON number as Python sees it: an `int` or a `float`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// An integer literal (booleans count as 0/1, as in Python).
    Int(i64),
    /// A float literal.
    Float(f64),
}

impl Num {
    /// The value as `f64` (ints rounded to nearest).
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Python's `repr()` / `str()` of a float: the shortest digits that read
/// back, with `.0` on integral values and scientific notation below 1e-4
/// and from 1e16 (`1e-05`, `1e+16`), `inf`, `nan`.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        return format!("{x:?}");
    }
    // Rust's `{:e}` has the shortest mantissa; Python writes the exponent
    // with a sign and at least two digits.
    let s = format!("{x:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Python's `float(s)` for a string: surrounding whitespace, `_` between
/// digits, `inf`/`infinity`/`nan` in any case. `None` where Python raises
/// `ValueError`.
pub fn py_float_from_str(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c.is_whitespace());
    let (sign, body) = match t.as_bytes().first() {
        Some(b'+') => (1.0, &t[1..]),
        Some(b'-') => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    // Validate: digitpart ["." [digitpart]] | "." digitpart, then optional
    // exponent; a digitpart is digits with single '_' between digits.
    let b = body.as_bytes();
    let mut i = 0;
    let mut clean = String::with_capacity(b.len() + 1);
    if sign < 0.0 {
        clean.push('-');
    }
    let digitpart = |i: &mut usize, clean: &mut String| -> bool {
        let start = *i;
        while *i < b.len() {
            if b[*i].is_ascii_digit() {
                clean.push(b[*i] as char);
                *i += 1;
            } else if b[*i] == b'_'
                && *i > start
                && b[*i - 1].is_ascii_digit()
                && *i + 1 < b.len()
                && b[*i + 1].is_ascii_digit()
            {
                *i += 1;
            } else {
                break;
            }
        }
        *i > start
    };
    let int_part = digitpart(&mut i, &mut clean);
    let mut frac_part = false;
    if i < b.len() && b[i] == b'.' {
        clean.push('.');
        i += 1;
        frac_part = digitpart(&mut i, &mut clean);
    }
    if !int_part && !frac_part {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        clean.push('e');
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            clean.push(b[i] as char);
            i += 1;
        }
        if !digitpart(&mut i, &mut clean) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    clean.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (x, want) in [
            (0.7, "0.7"),
            (10.0, "10.0"),
            (85.0, "85.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e20, "-2.5e+20"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(py_repr(x), want);
        }
    }

    #[test]
    fn mean_is_exact_then_rounded() {
        // Built-in sum returns 0 here; statistics.mean does not.
        let xs = [1e50, 1.0, -1e50];
        assert_eq!(mean(&xs), Some(1.0 / 3.0));
        assert_eq!(mean(&[0.1, 0.2, 0.3]), Some(0.2));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn stdev_matches_cpython_examples() {
        // Examples from CPython's statistics docstrings.
        assert_eq!(stdev(&[1.5, 2.5, 2.5, 2.75, 3.25, 4.75]), Some(1.0810874155219827));
        let v = ExactSums::of(&[2.75, 1.75, 1.25, 0.25, 0.5, 1.25, 3.5], true).variance();
        assert_eq!(v, Some(1.3720238095238095));
        assert_eq!(stdev(&[1.0]), None);
        assert_eq!(stdev(&[2.0, 2.0]), Some(0.0));
    }

    #[test]
    fn subnormal_and_huge_values_are_exact() {
        let tiny = f64::from_bits(1);
        assert_eq!(mean(&[tiny, tiny]), Some(tiny));
        assert_eq!(mean(&[1e308, 1e308]), Some(1e308));
        assert_eq!(mean(&[-3.0, 1.0]), Some(-1.0));
    }

    #[test]
    fn round2_uses_exact_binary_ties() {
        assert_eq!(py_round2(0.125), 0.12); // exact tie, to even
        assert_eq!(py_round2(0.375), 0.38);
        assert_eq!(py_round2(2.675), 2.67); // 2.675 is below the tie in binary
        assert_eq!(py_round2(0.005), 0.01); // 0.005 is above the tie in binary
        assert_eq!(py_round2(-0.001).to_bits(), (-0.0f64).to_bits());
        assert_eq!(py_round2(1.0), 1.0);
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
    }

    #[test]
    fn quantiles_exclusive_method() {
        // statistics.quantiles([1, 2], n=100)[49] == 1.5, [94] extrapolates.
        let mut xs = vec![2.0, 1.0];
        let q = percentiles(&mut xs, &[49, 94]).unwrap();
        assert_eq!(q[0], 1.5);
        assert_eq!(q[1], (1.0 * (100.0 - 185.0) + 2.0 * 185.0) / 100.0);
        let mut one = vec![1.0];
        assert!(percentiles(&mut one, &[49]).is_none());
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn python_float_strings() {
        assert_eq!(py_float_from_str(" 1_000.5 "), Some(1000.5));
        assert_eq!(py_float_from_str("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(py_float_from_str("nan").unwrap().is_nan());
        assert_eq!(py_float_from_str("1__0"), None);
        assert_eq!(py_float_from_str("_1"), None);
        assert_eq!(py_float_from_str("."), None);
        assert_eq!(py_float_from_str("1e"), None);
        assert_eq!(py_float_from_str(".5"), Some(0.5));
        assert_eq!(py_float_from_str("5."), Some(5.0));
        assert_eq!(py_float_from_str("0x10"), None);
    }

    #[test]
    fn builtin_sum_switches_to_float() {
        let s = py_builtin_sum(&[Num::Int(1), Num::Int(2), Num::Float(0.5), Num::Int(1)]);
        assert_eq!(s, Num::Float(4.5));
        assert_eq!(py_div_count(Num::Int(1), 3), 1.0 / 3.0);
    }

    #[test]
    fn bool_variance_exact() {
        // variance([1, 0, 0]) == 1/3
        assert_eq!(variance_of_bools(1, 3), Some(1.0 / 3.0));
        assert_eq!(variance_of_bools(0, 1), None);
    }
}
