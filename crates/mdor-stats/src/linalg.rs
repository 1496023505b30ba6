//! Small dense linear algebra for information matrices: Cholesky factorisation, solve and inverse.
//!
//! Matrices are square, row-major `Vec<f64>` of side `p` (a handful of covariates), so plain loops
//! are fast enough and keep the crate free of a linear-algebra dependency.

use crate::error::StatsError;

/// Covariate columns centred and scaled to unit standard deviation, with the original means and
/// standard deviations.
pub(crate) struct Standardised {
    /// Standardised values, row-major in the input's row order.
    pub x: Vec<f64>,
    /// Column means in the covariates' units.
    pub mean: Vec<f64>,
    /// Column standard deviations (divisor `n`) in the covariates' units; may underflow to zero
    /// for subnormal columns, which callers report as overflow when converting back.
    pub sd: Vec<f64>,
}

/// Standardises the `p` columns of a row-major matrix of finite values.
///
/// Each column is first divided by its largest absolute value, so that neither huge nor subnormal
/// values overflow or underflow while the mean and variance are accumulated. A constant column
/// gives [`StatsError::Singular`].
pub(crate) fn standardise(values: &[f64], p: usize) -> Result<Standardised, StatsError> {
    let n = values.len().checked_div(p).unwrap_or(0);
    let mut x = vec![0.0; values.len()];
    let mut mean = vec![0.0; p];
    let mut sd = vec![0.0; p];
    if p == 0 {
        return Ok(Standardised { x, mean, sd });
    }
    // Row by row, all columns at once: one sequential pass per statistic.
    let mut largest = vec![0.0f64; p];
    for row in values.chunks_exact(p) {
        for (l, v) in largest.iter_mut().zip(row) {
            *l = l.max(v.abs());
        }
    }
    if let Some(k) = largest.iter().position(|&l| l == 0.0) {
        return Err(StatsError::Singular { covariate: k });
    }
    // Scaling by the largest magnitude first keeps the sums of squares finite for any finite
    // covariate; multiplying by reciprocals keeps it to one division per column.
    let inverse_largest: Vec<f64> = largest.iter().map(|l| 1.0 / l).collect();
    let mut scaled_mean = vec![0.0; p];
    for row in values.chunks_exact(p) {
        for k in 0..p {
            scaled_mean[k] += row[k] * inverse_largest[k];
        }
    }
    scaled_mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut scaled_variance = vec![0.0; p];
    for row in values.chunks_exact(p) {
        for k in 0..p {
            scaled_variance[k] += (row[k] * inverse_largest[k] - scaled_mean[k]).powi(2);
        }
    }
    let mut inverse_sd = vec![0.0; p];
    for k in 0..p {
        let scaled_sd = (scaled_variance[k] / n as f64).sqrt();
        if scaled_sd <= 1e-14 {
            return Err(StatsError::Singular { covariate: k });
        }
        inverse_sd[k] = 1.0 / scaled_sd;
        mean[k] = scaled_mean[k] * largest[k];
        sd[k] = scaled_sd * largest[k];
    }
    for (target, row) in x.chunks_exact_mut(p).zip(values.chunks_exact(p)) {
        for k in 0..p {
            target[k] = (row[k] * inverse_largest[k] - scaled_mean[k]) * inverse_sd[k];
        }
    }
    Ok(Standardised { x, mean, sd })
}

/// The lower-triangular Cholesky factor `L` of a symmetric positive-definite matrix `a = L Lᵀ`.
///
/// Fails with [`StatsError::Singular`] naming the first column whose pivot is not clearly
/// positive (relative to the matrix's diagonal scale).
pub(crate) fn cholesky(a: &[f64], p: usize) -> Result<Vec<f64>, StatsError> {
    let mut l = vec![0.0; p * p];
    let scale = (0..p).map(|i| a[i * p + i].abs()).fold(0.0, f64::max);
    for j in 0..p {
        let mut diagonal = a[j * p + j];
        for k in 0..j {
            diagonal -= l[j * p + k] * l[j * p + k];
        }
        let too_small = diagonal <= 1e-12 * scale.max(f64::MIN_POSITIVE);
        if diagonal.is_nan() || too_small || !diagonal.is_finite() {
            return Err(StatsError::Singular { covariate: j });
        }
        let root = diagonal.sqrt();
        l[j * p + j] = root;
        for i in (j + 1)..p {
            let mut sum = a[i * p + j];
            for k in 0..j {
                sum -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = sum / root;
        }
    }
    Ok(l)
}

/// Solves `L Lᵀ x = b` given the Cholesky factor `l`.
pub(crate) fn cholesky_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; p];
    for i in 0..p {
        let mut sum = b[i];
        for k in 0..i {
            sum -= l[i * p + k] * y[k];
        }
        y[i] = sum / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let mut sum = y[i];
        for k in (i + 1)..p {
            sum -= l[k * p + i] * x[k];
        }
        x[i] = sum / l[i * p + i];
    }
    x
}

/// The inverse of `L Lᵀ` given the Cholesky factor `l`.
pub(crate) fn cholesky_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inverse = vec![0.0; p * p];
    let mut unit = vec![0.0; p];
    for j in 0..p {
        unit.iter_mut().for_each(|u| *u = 0.0);
        unit[j] = 1.0;
        let column = cholesky_solve(l, p, &unit);
        for i in 0..p {
            inverse[i * p + j] = column[i];
        }
    }
    inverse
}

/// The quadratic form `bᵀ A⁻¹ b` for symmetric positive-definite `A`.
pub(crate) fn quadratic_form_inverse(a: &[f64], p: usize, b: &[f64]) -> Result<f64, StatsError> {
    let l = cholesky(a, p)?;
    let x = cholesky_solve(&l, p, b);
    Ok(b.iter().zip(&x).map(|(u, v)| u * v).sum())
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_the_identity() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        let inv = cholesky_inverse(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                let identity = if i == j { 1.0 } else { 0.0 };
                assert!((product - identity).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn a_rank_deficient_matrix_names_the_dependent_column() {
        let a = [1.0, 2.0, 2.0, 4.0];
        assert_eq!(cholesky(&a, 2), Err(StatsError::Singular { covariate: 1 }));
    }
}
