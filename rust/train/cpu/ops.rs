//! Row-wise element-wise kernels (forward and backward), parallel over rows with rayon.
//!
//! All matrices are row-major `[rows, width]` slices; accumulation is in f32 except the
//! forward RMS statistic, summed in f64 as ggml does (so the norm has llama.cpp's bits).

use rayon::prelude::*;

/// `y = x · inv_rms(x) · w` per row of width `w.len()`; stores `1/rms` per row in `inv`.
pub fn rmsnorm_fwd(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], inv: &mut [f32]) {
    let d = w.len();
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(inv.par_iter_mut())
        .for_each(|((yr, xr), iv)| {
            // Sum of squares in f64 and the mean rounded to f32, as ggml computes it: the
            // same bits as llama.cpp, so quantized products see the same inputs.
            let ss: f64 = xr.iter().map(|v| (v * v) as f64).sum();
            let mean = (ss / d as f64) as f32;
            let r = 1.0 / (mean + eps).sqrt();
            *iv = r;
            for ((o, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
                *o = xv * r * wv;
            }
        });
}

/// Backward of [`rmsnorm_fwd`] w.r.t. `x` (the weight is frozen): `dx += J^T dy`.
pub fn rmsnorm_bwd(x: &[f32], w: &[f32], inv: &[f32], dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    dx.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(dy.par_chunks(d))
        .zip(inv.par_iter())
        .for_each(|(((dxr, xr), dyr), &r)| {
            // xhat = x r; g = dy w; dx = r (g - xhat mean(g xhat))
            let mut dot = 0f32;
            for ((&xv, &dv), &wv) in xr.iter().zip(dyr).zip(w) {
                dot += dv * wv * xv * r;
            }
            let mean = dot / d as f32;
            for (((o, &xv), &dv), &wv) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
                *o += r * (dv * wv - xv * r * mean);
            }
        });
}

/// Adds `b` to every row of `x` (row width `b.len()`).
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    x.par_chunks_mut(b.len()).for_each(|r| {
        for (v, &bv) in r.iter_mut().zip(b) {
            *v += bv;
        }
    });
}

/// `out = silu(g) · u` element-wise.
pub fn swiglu_fwd(g: &[f32], u: &[f32], out: &mut [f32]) {
    const CH: usize = 4096;
    out.par_chunks_mut(CH)
        .zip(g.par_chunks(CH))
        .zip(u.par_chunks(CH))
        .for_each(|((o, g), u)| {
            for ((o, &gv), &uv) in o.iter_mut().zip(g).zip(u) {
                *o = gv / (1.0 + (-gv).exp()) * uv;
            }
        });
}

/// Backward of [`swiglu_fwd`]: overwrites `dg` and `du` from `dout`.
pub fn swiglu_bwd(g: &[f32], u: &[f32], dout: &[f32], dg: &mut [f32], du: &mut [f32]) {
    const CH: usize = 4096;
    dg.par_chunks_mut(CH)
        .zip(du.par_chunks_mut(CH))
        .zip(g.par_chunks(CH))
        .zip(u.par_chunks(CH))
        .zip(dout.par_chunks(CH))
        .for_each(|((((dg, du), g), u), d)| {
            for i in 0..dg.len() {
                let s = 1.0 / (1.0 + (-g[i]).exp());
                let silu = g[i] * s;
                du[i] = d[i] * silu;
                dg[i] = d[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            }
        });
}

/// In-place softmax of one row restricted to its first `n` entries (the rest are set to 0).
/// Returns nothing; uses the max-subtraction trick.
pub fn softmax_prefix(row: &mut [f32], n: usize) {
    let mx = row[..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    for v in &mut row[..n] {
        *v = (*v - mx).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    for v in &mut row[..n] {
        *v *= inv;
    }
    for v in &mut row[n..] {
        *v = 0.0;
    }
}
