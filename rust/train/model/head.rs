//! The vocabulary projection with log-softmax, in row chunks (never a whole `[T, vocab]` matrix).

use rayon::prelude::*;

use crate::train::cpu::{gemm, Mat, MatMut};

/// Log-probabilities of `targets` given final hidden states.
///
/// `xf`: `[T, d]` normalised hidden states; `w`: `[V, d]` dense output projection; `rows`:
/// `(row of xf, target id)`; writes `out[i] = log softmax(xf[row_i] wᵀ)[target_i]`.
/// `chunk` rows are projected at a time (scratch `chunk × V` floats). When `argmax` is
/// non-empty (same length as `rows`) it receives the most probable token of each row.
#[allow(clippy::too_many_arguments)]
pub fn logprobs(
    xf: &[f32],
    d: usize,
    w: &[f32],
    v: usize,
    rows: &[(usize, u32)],
    chunk: usize,
    out: &mut [f32],
    argmax: &mut [u32],
) {
    let mut xc = vec![0f32; chunk * d];
    let mut logits = vec![0f32; chunk * v];
    for (ci, rs) in rows.chunks(chunk).enumerate() {
        let c = rs.len();
        chunk_logits(xf, d, rs, w, v, &mut xc[..c * d], &mut logits[..c * v]);
        out[ci * chunk..ci * chunk + c]
            .par_iter_mut()
            .zip(logits.par_chunks(v))
            .zip(rs.par_iter())
            .for_each(|((o, lg), &(_, tgt))| {
                *o = lg[tgt as usize] - logsumexp(lg);
            });
        if !argmax.is_empty() {
            argmax[ci * chunk..ci * chunk + c]
                .par_iter_mut()
                .zip(logits.par_chunks(v))
                .for_each(|(a, lg)| {
                    let mut best = 0;
                    for (j, &x) in lg.iter().enumerate() {
                        if x > lg[best] {
                            best = j;
                        }
                    }
                    *a = best as u32;
                });
        }
    }
}

/// Backward of [`logprobs`]: `dxf[row] += Σ dlogp · (e_target − softmax)ᵀ w`.
#[allow(clippy::too_many_arguments)]
pub fn logprobs_bwd(
    xf: &[f32],
    d: usize,
    w: &[f32],
    v: usize,
    rows: &[(usize, u32)],
    dlogp: &[f32],
    chunk: usize,
    dxf: &mut [f32],
) {
    let mut xc = vec![0f32; chunk * d];
    let mut dxc = vec![0f32; chunk * d];
    let mut logits = vec![0f32; chunk * v];
    for (ci, rs) in rows.chunks(chunk).enumerate() {
        let c = rs.len();
        let g = &dlogp[ci * chunk..ci * chunk + c];
        chunk_logits(xf, d, rs, w, v, &mut xc[..c * d], &mut logits[..c * v]);
        logits[..c * v]
            .par_chunks_mut(v)
            .zip(rs.par_iter())
            .zip(g.par_iter())
            .for_each(|((lg, &(_, tgt)), &gi)| {
                let lse = logsumexp(lg);
                for x in lg.iter_mut() {
                    *x = -gi * (*x - lse).exp();
                }
                lg[tgt as usize] += gi;
            });
        gemm(
            1.0,
            Mat::new(&logits[..c * v], c, v),
            Mat::new(w, v, d),
            0.0,
            MatMut::new(&mut dxc[..c * d], c, d),
        );
        for (i, &(row, _)) in rs.iter().enumerate() {
            for (a, &b) in dxf[row * d..(row + 1) * d]
                .iter_mut()
                .zip(&dxc[i * d..(i + 1) * d])
            {
                *a += b;
            }
        }
    }
}

/// Logits `[c, v]` of the `c = rs.len()` scored rows: gathers their hidden states into `xc`
/// (`[c, d]`) and multiplies by the output projection `w` (`[v, d]`).
fn chunk_logits(
    xf: &[f32],
    d: usize,
    rs: &[(usize, u32)],
    w: &[f32],
    v: usize,
    xc: &mut [f32],
    logits: &mut [f32],
) {
    let c = rs.len();
    gather(xf, d, rs, xc);
    gemm(
        1.0,
        Mat::new(xc, c, d),
        Mat::new(w, v, d).t(),
        0.0,
        MatMut::new(logits, c, v),
    );
}

fn gather(xf: &[f32], d: usize, rs: &[(usize, u32)], xc: &mut [f32]) {
    for (dst, &(row, _)) in xc.chunks_mut(d).zip(rs) {
        dst.copy_from_slice(&xf[row * d..(row + 1) * d]);
    }
}

/// `log Σ exp(x)` with f64 accumulation.
pub fn logsumexp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
    m + s.ln() as f32
}
