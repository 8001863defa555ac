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

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044715;

/// `gelu(x)` with the tanh approximation, in f32 as ggml writes it.
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// `gelu(x)` as llama.cpp's CPU backend computes it: 0 below −10, `x` above 10, otherwise
/// the tanh GELU of `x` rounded to f16, from a table of f16 values.
pub fn gelu_tanh_like_ggml(x: f32) -> f32 {
    use super::actquant::round_to_f16;
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        round_to_f16(gelu_tanh(round_to_f16(x)))
    }
}

/// `d gelu_tanh(x) / dx`.
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let t = (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF_A * x * x)
}

/// `out = gelu_tanh(g) · u` element-wise; with `like_ggml`, the GELU as llama.cpp's CPU
/// backend computes it ([`gelu_tanh_like_ggml`], parity checks only).
pub fn geglu_fwd(g: &[f32], u: &[f32], out: &mut [f32], like_ggml: bool) {
    const CH: usize = 4096;
    let f = if like_ggml {
        gelu_tanh_like_ggml
    } else {
        gelu_tanh
    };
    out.par_chunks_mut(CH)
        .zip(g.par_chunks(CH))
        .zip(u.par_chunks(CH))
        .for_each(|((o, g), u)| {
            for ((o, &gv), &uv) in o.iter_mut().zip(g).zip(u) {
                *o = f(gv) * uv;
            }
        });
}

/// Backward of [`geglu_fwd`] (exact tanh GELU): overwrites `dg` and `du` from `dout`.
pub fn geglu_bwd(g: &[f32], u: &[f32], dout: &[f32], dg: &mut [f32], du: &mut [f32]) {
    const CH: usize = 4096;
    dg.par_chunks_mut(CH)
        .zip(du.par_chunks_mut(CH))
        .zip(g.par_chunks(CH))
        .zip(u.par_chunks(CH))
        .zip(dout.par_chunks(CH))
        .for_each(|((((dg, du), g), u), d)| {
            for i in 0..dg.len() {
                du[i] = d[i] * gelu_tanh(g[i]);
                dg[i] = d[i] * u[i] * gelu_tanh_grad(g[i]);
            }
        });
}

/// In-place softmax of one row over entries `lo .. n` (the rest are set to 0).
pub fn softmax_range(row: &mut [f32], lo: usize, n: usize) {
    let mx = row[lo..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    for v in &mut row[lo..n] {
        *v = (*v - mx).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    for v in &mut row[lo..n] {
        *v *= inv;
    }
    for v in &mut row[..lo] {
        *v = 0.0;
    }
    for v in &mut row[n..] {
        *v = 0.0;
    }
}
