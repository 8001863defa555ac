//! Ridge regression on standardized features, with the penalty chosen by k-fold
//! cross-validation, solved in whichever of the primal (d × d) or dual (n × n) forms is smaller.

use crate::error::{Error, Result};

/// A fitted linear head: `y = bias + Σ w_j (x_j − mean_j) / scale_j`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ridge {
    pub weight: Vec<f32>,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub bias: f64,
    pub lambda: f64,
}

impl Ridge {
    /// The prediction for one feature vector (length `weight.len()`).
    pub fn predict(&self, x: &[f32]) -> f64 {
        let mut y = self.bias;
        for (((w, xj), m), s) in self.weight.iter().zip(x).zip(&self.mean).zip(&self.scale) {
            y += *w as f64 * ((xj - m) / s) as f64;
        }
        y
    }
}

/// Penalties tried (multiplied by the number of training rows).
const LAMBDAS: [f64; 7] = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0];

/// Fits ridge regression of `y` on `x` (rows of equal length). The penalty is the one of
/// [`LAMBDAS`] (× n) with the least squared error in `folds`-fold cross-validation (in row
/// order, every `folds`-th row held out). Returns the head fitted on all rows and the
/// out-of-fold predictions of the chosen penalty.
pub fn fit(x: &[Vec<f32>], y: &[f64], folds: usize) -> Result<(Ridge, Vec<f64>)> {
    let n = x.len();
    if n < 2 || n != y.len() {
        return Err(Error::invalid(format!(
            "ridge needs at least 2 rows with one target each, got {n} rows and {} targets",
            y.len()
        )));
    }
    let d = x[0].len();
    if d == 0
        || x.iter()
            .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::invalid(
            "feature rows must be non-empty, of equal length and finite",
        ));
    }
    let folds = folds.clamp(2, n);
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for &l in &LAMBDAS {
        let mut oof = vec![0.0; n];
        for f in 0..folds {
            let train: Vec<usize> = (0..n).filter(|i| i % folds != f).collect();
            let test: Vec<usize> = (0..n).filter(|i| i % folds == f).collect();
            let head = fit_rows(x, y, &train, l)?;
            for &i in &test {
                oof[i] = head.predict(&x[i]);
            }
        }
        let sse: f64 = oof.iter().zip(y).map(|(p, t)| (p - t) * (p - t)).sum();
        if best.as_ref().is_none_or(|b| sse < b.1) {
            best = Some((l, sse, oof));
        }
    }
    let (lambda, _, oof) = best.ok_or_else(|| Error::invalid("no penalty could be fitted"))?;
    let all: Vec<usize> = (0..n).collect();
    Ok((fit_rows(x, y, &all, lambda)?, oof))
}

/// Ridge on the rows `rows` with penalty `lambda_per_row × rows.len()`.
fn fit_rows(x: &[Vec<f32>], y: &[f64], rows: &[usize], lambda_per_row: f64) -> Result<Ridge> {
    let n = rows.len();
    let d = x[rows[0]].len();
    let mut mean = vec![0f64; d];
    for &i in rows {
        for j in 0..d {
            mean[j] += x[i][j] as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for &i in rows {
        for j in 0..d {
            let t = x[i][j] as f64 - mean[j];
            var[j] += t * t;
        }
    }
    let scale: Vec<f64> = var
        .iter()
        .map(|v| {
            let s = (v / n as f64).sqrt();
            if s > 1e-12 {
                s
            } else {
                1.0
            }
        })
        .collect();
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|&i| {
            (0..d)
                .map(|j| (x[i][j] as f64 - mean[j]) / scale[j])
                .collect()
        })
        .collect();
    let y_mean = rows.iter().map(|&i| y[i]).sum::<f64>() / n as f64;
    let yc: Vec<f64> = rows.iter().map(|&i| y[i] - y_mean).collect();
    let lambda = lambda_per_row * n as f64;
    let w: Vec<f64> = if n <= d {
        // Dual: α = (Z Zᵀ + λI)⁻¹ y, w = Zᵀ α.
        let mut k = vec![0f64; n * n];
        for a in 0..n {
            for b in 0..=a {
                let v: f64 = z[a].iter().zip(&z[b]).map(|(p, q)| p * q).sum();
                k[a * n + b] = v;
                k[b * n + a] = v;
            }
            k[a * n + a] += lambda;
        }
        let alpha = solve_spd(&mut k, n, &yc)?;
        (0..d)
            .map(|j| (0..n).map(|a| z[a][j] * alpha[a]).sum())
            .collect()
    } else {
        // Primal: w = (Zᵀ Z + λI)⁻¹ Zᵀ y.
        let mut g = vec![0f64; d * d];
        let mut rhs = vec![0f64; d];
        for (r, zr) in z.iter().enumerate() {
            for p in 0..d {
                rhs[p] += zr[p] * yc[r];
                for q in 0..=p {
                    g[p * d + q] += zr[p] * zr[q];
                }
            }
        }
        for p in 0..d {
            for q in 0..p {
                g[q * d + p] = g[p * d + q];
            }
            g[p * d + p] += lambda;
        }
        solve_spd(&mut g, d, &rhs)?
    };
    Ok(Ridge {
        weight: w.iter().map(|&v| v as f32).collect(),
        mean: mean.iter().map(|&v| v as f32).collect(),
        scale: scale.iter().map(|&v| v as f32).collect(),
        bias: y_mean,
        lambda: lambda_per_row,
    })
}

/// Solves `a x = b` for a symmetric positive definite `a` (n × n, row-major, overwritten by
/// its Cholesky factor).
fn solve_spd(a: &mut [f64], n: usize, b: &[f64]) -> Result<Vec<f64>> {
    for j in 0..n {
        let mut s = a[j * n + j];
        for k in 0..j {
            s -= a[j * n + k] * a[j * n + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return Err(Error::invalid("the ridge system is not positive definite"));
        }
        let l = s.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Ok(y)
}

/// Spearman's rank correlation of two equally long lists (ties get their mean rank); `None`
/// for fewer than two pairs or a constant list.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let mut cov = 0.0;
    let (mut va, mut vb) = (0.0, 0.0);
    for i in 0..a.len() {
        cov += (ra[i] - ma) * (rb[i] - mb);
        va += (ra[i] - ma) * (ra[i] - ma);
        vb += (rb[i] - mb) * (rb[i] - mb);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// The mean of Spearman's ρ within each cross-validation fold (rows `i` with `i % folds == f`),
/// between out-of-fold predictions and observations. Pooling the folds' predictions into one ρ
/// is biased: a head that predicts little more than its training folds' mean gives each fold a
/// constant offset, and the offsets alone rank the folds against each other (anti-correlated
/// with their observed means). Folds with fewer than 3 rows or an undefined ρ are skipped;
/// `None` when none is left.
pub fn fold_spearman(pred: &[f64], obs: &[f64], folds: usize) -> Option<f64> {
    if pred.len() != obs.len() || folds == 0 {
        return None;
    }
    let per_fold: Vec<f64> = (0..folds)
        .filter_map(|f| {
            let rows: Vec<usize> = (0..pred.len()).filter(|i| i % folds == f).collect();
            if rows.len() < 3 {
                return None;
            }
            let p: Vec<f64> = rows.iter().map(|&i| pred[i]).collect();
            let o: Vec<f64> = rows.iter().map(|&i| obs[i]).collect();
            spearman(&p, &o)
        })
        .collect();
    (!per_fold.is_empty()).then(|| per_fold.iter().sum::<f64>() / per_fold.len() as f64)
}

fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean_rank;
        }
        i = j + 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_spearman_is_not_fooled_by_fold_offsets() {
        // Within each fold the predictions rank the observations perfectly, but the fold whose
        // observations are low got the high predictions (its training fold's mean was high).
        let (mut pred, mut obs) = (Vec::new(), Vec::new());
        for k in 0..4 {
            pred.extend([0.1 * (k + 1) as f64, 5.0 + 0.1 * (k + 1) as f64]);
            obs.extend([10.0 + k as f64, k as f64]);
        }
        assert!(spearman(&pred, &obs).unwrap() < 0.0);
        assert!((fold_spearman(&pred, &obs, 2).unwrap() - 1.0).abs() < 1e-12);
        // Folds of fewer than 3 rows say nothing.
        assert_eq!(fold_spearman(&pred[..4], &obs[..4], 2), None);
        assert_eq!(fold_spearman(&pred, &obs[..3], 2), None);
    }

    fn data(n: usize, d: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
        // y = 2 x0 − x1 + 3 + small deterministic noise
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let row: Vec<f32> = (0..d)
                .map(|j| (((i * 31 + j * 17) % 23) as f32 - 11.0) / 7.0)
                .collect();
            y.push(2.0 * row[0] as f64 - row[1] as f64 + 3.0 + ((i % 5) as f64 - 2.0) * 0.01);
            x.push(row);
        }
        (x, y)
    }

    #[test]
    fn recovers_a_linear_rule_in_both_forms() {
        for (n, d) in [(60, 4), (12, 40)] {
            let (x, y) = data(n, d);
            let (head, oof) = fit(&x, &y, 5).unwrap();
            let r = spearman(&oof, &y).unwrap();
            assert!(r > 0.8, "n {n} d {d}: out-of-fold spearman {r}");
            if n > d {
                assert!((head.predict(&x[0]) - y[0]).abs() < 0.1);
            }
        }
    }

    #[test]
    fn spearman_of_monotone_and_reversed_lists() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&a, &[10.0, 20.0, 25.0, 100.0]), Some(1.0));
        assert_eq!(spearman(&a, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&a, &[1.0, 1.0, 1.0, 1.0]), None);
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(fit(&[vec![1.0]], &[1.0], 5).is_err());
        assert!(fit(&[vec![1.0], vec![f32::NAN]], &[1.0, 2.0], 2).is_err());
        assert!(fit(&[vec![1.0], vec![1.0, 2.0]], &[1.0, 2.0], 2).is_err());
    }
}
