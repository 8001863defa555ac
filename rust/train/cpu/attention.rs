//! Causal grouped-query attention on head-major buffers (`[heads, T, head_dim]`), forward and
//! backward, parallel over (kv-group, sequence) tasks, in causal tiles of query rows (keys past
//! the tile are skipped). Probabilities are recomputed in backward.

use rayon::prelude::*;

use super::gemm::{gemm_st, Mat, MatMut};
use super::ops::softmax_range;

/// Geometry shared by the attention kernels.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Total tokens T over all sequences.
    pub n_tokens: usize,
    /// Scores are `q·k · scale`.
    pub scale: f32,
    /// Query i sees keys `i + 1 − window ..= i` (0: all keys `0 ..= i`).
    pub window: usize,
}

impl AttnShape {
    /// First key row `i` (a sequence index) sees.
    fn first_key(&self, i: usize) -> usize {
        if self.window == 0 {
            0
        } else {
            (i + 1).saturating_sub(self.window)
        }
    }
}

/// Splits each head's `[T, hd]` block of `buf` into per-sequence pieces.
fn split_heads<'a>(
    buf: &'a mut [f32],
    heads: usize,
    seqs: &[(usize, usize)],
    hd: usize,
    t: usize,
) -> Vec<Vec<&'a mut [f32]>> {
    let mut out = Vec::with_capacity(heads);
    for head in buf.chunks_mut(t * hd).take(heads) {
        let mut pieces = Vec::with_capacity(seqs.len());
        let mut rest = head;
        for &(_, len) in seqs {
            let (a, b) = rest.split_at_mut(len * hd);
            pieces.push(a);
            rest = b;
        }
        out.push(pieces);
    }
    out
}

/// Query rows per causal tile: a tile of rows `[i0, i1)` only attends to keys `[0, i1)`.
const TILE: usize = 128;

/// Causal probabilities of query rows `[i0, i1)` over keys `[0, i1)` into `p` (`[i1 - i0, i1]`),
/// 0 for keys outside each row's window.
fn probs_tile(sh: &AttnShape, q: &[f32], k: &[f32], i0: usize, i1: usize, p: &mut [f32]) {
    let hd = sh.head_dim;
    let (rb, nk) = (i1 - i0, i1);
    let p = &mut p[..rb * nk];
    gemm_st(
        sh.scale,
        Mat::new(&q[i0 * hd..i1 * hd], rb, hd),
        Mat::new(&k[..nk * hd], nk, hd).t(),
        0.0,
        MatMut::new(p, rb, nk),
    );
    for r in 0..rb {
        let i = i0 + r;
        softmax_range(&mut p[r * nk..(r + 1) * nk], sh.first_key(i), i + 1);
    }
}

/// `out_h = softmax(q_h k_gᵀ · scale + causal window) v_g` for every head h (group
/// g = h / (n_head/n_kv)).
///
/// `seqs` lists `(offset, len)` of each sequence in token order (contiguous, covering T).
pub fn attention_fwd(
    sh: AttnShape,
    seqs: &[(usize, usize)],
    qh: &[f32],
    kh: &[f32],
    vh: &[f32],
    out_h: &mut [f32],
) {
    let (hd, t) = (sh.head_dim, sh.n_tokens);
    let rep = sh.n_head / sh.n_head_kv;
    let outs = split_heads(out_h, sh.n_head, seqs, hd, t);
    let tasks: Vec<(usize, usize, &mut [f32])> = outs
        .into_iter()
        .enumerate()
        .flat_map(|(h, ps)| ps.into_iter().enumerate().map(move |(s, p)| (h, s, p)))
        .collect();
    tasks
        .into_par_iter()
        .for_each_init(Vec::new, |s_buf, (h, s, out)| {
            let (off, len) = seqs[s];
            let g = h / rep;
            let q = &qh[(h * t + off) * hd..][..len * hd];
            let k = &kh[(g * t + off) * hd..][..len * hd];
            let v = &vh[(g * t + off) * hd..][..len * hd];
            s_buf.resize(len.min(TILE) * len, 0.0);
            for i0 in (0..len).step_by(TILE) {
                let i1 = (i0 + TILE).min(len);
                let (rb, nk) = (i1 - i0, i1);
                probs_tile(&sh, q, k, i0, i1, s_buf);
                gemm_st(
                    1.0,
                    Mat::new(&s_buf[..rb * nk], rb, nk),
                    Mat::new(&v[..nk * hd], nk, hd),
                    0.0,
                    MatMut::new(&mut out[i0 * hd..i1 * hd], rb, hd),
                );
            }
        });
}

/// Backward of [`attention_fwd`]: overwrites `dq_h`, `dk_h`, `dv_h` from `dout_h`.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    sh: AttnShape,
    seqs: &[(usize, usize)],
    qh: &[f32],
    kh: &[f32],
    vh: &[f32],
    dout_h: &[f32],
    dq_h: &mut [f32],
    dk_h: &mut [f32],
    dv_h: &mut [f32],
) {
    let (hd, t) = (sh.head_dim, sh.n_tokens);
    let rep = sh.n_head / sh.n_head_kv;
    let scale = sh.scale;
    let mut dqs = split_heads(dq_h, sh.n_head, seqs, hd, t);
    let dks = split_heads(dk_h, sh.n_head_kv, seqs, hd, t);
    let dvs = split_heads(dv_h, sh.n_head_kv, seqs, hd, t);
    // One task per (group, sequence): it owns dK/dV of that group and dQ of the group's heads.
    let mut tasks = Vec::with_capacity(sh.n_head_kv * seqs.len());
    let mut dq_iters: Vec<_> = dqs.drain(..).map(|v| v.into_iter()).collect();
    for (g, (dk_g, dv_g)) in dks.into_iter().zip(dvs).enumerate() {
        for (s, (dk, dv)) in dk_g.into_iter().zip(dv_g).enumerate() {
            let dq: Vec<&mut [f32]> = (0..rep)
                .filter_map(|r| dq_iters[g * rep + r].next())
                .collect();
            tasks.push((g, s, dk, dv, dq));
        }
    }
    tasks.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(p_buf, dp_buf), (g, s, dk, dv, dq)| {
            let (off, len) = seqs[s];
            let k = &kh[(g * t + off) * hd..][..len * hd];
            let v = &vh[(g * t + off) * hd..][..len * hd];
            p_buf.resize(len.min(TILE) * len, 0.0);
            dp_buf.resize(len.min(TILE) * len, 0.0);
            dk.fill(0.0);
            dv.fill(0.0);
            for (r, dq) in dq.into_iter().enumerate() {
                let h = g * rep + r;
                let q = &qh[(h * t + off) * hd..][..len * hd];
                let dout = &dout_h[(h * t + off) * hd..][..len * hd];
                for i0 in (0..len).step_by(TILE) {
                    let i1 = (i0 + TILE).min(len);
                    let (rb, nk) = (i1 - i0, i1);
                    probs_tile(&sh, q, k, i0, i1, p_buf);
                    let p = &p_buf[..rb * nk];
                    let d_o = &dout[i0 * hd..i1 * hd];
                    // dV[0..i1] += Pᵀ dO
                    gemm_st(
                        1.0,
                        Mat::new(p, rb, nk).t(),
                        Mat::new(d_o, rb, hd),
                        1.0,
                        MatMut::new(&mut dv[..nk * hd], nk, hd),
                    );
                    // dP = dO V[0..i1]ᵀ
                    let dp = &mut dp_buf[..rb * nk];
                    gemm_st(
                        1.0,
                        Mat::new(d_o, rb, hd),
                        Mat::new(&v[..nk * hd], nk, hd).t(),
                        0.0,
                        MatMut::new(dp, rb, nk),
                    );
                    // dS = P ∘ (dP − rowsum(P ∘ dP)), times the score scale
                    for row in 0..rb {
                        let n = i0 + row + 1;
                        let lo = sh.first_key(i0 + row);
                        let pr = &p[row * nk..(row + 1) * nk];
                        let dr = &mut dp[row * nk..(row + 1) * nk];
                        let dot: f32 = pr[lo..n].iter().zip(&dr[lo..n]).map(|(a, b)| a * b).sum();
                        for j in 0..nk {
                            dr[j] = if (lo..n).contains(&j) {
                                pr[j] * (dr[j] - dot) * scale
                            } else {
                                0.0
                            };
                        }
                    }
                    // dQ[i0..i1] = dS K[0..i1] ; dK[0..i1] += dSᵀ Q[i0..i1]
                    gemm_st(
                        1.0,
                        Mat::new(dp, rb, nk),
                        Mat::new(&k[..nk * hd], nk, hd),
                        0.0,
                        MatMut::new(&mut dq[i0 * hd..i1 * hd], rb, hd),
                    );
                    gemm_st(
                        1.0,
                        Mat::new(dp, rb, nk).t(),
                        Mat::new(&q[i0 * hd..i1 * hd], rb, hd),
                        1.0,
                        MatMut::new(&mut dk[..nk * hd], nk, hd),
                    );
                }
            }
        },
    );
}

/// `[T, heads·hd]` token-major → `[heads, T, hd]` head-major.
pub fn to_head_major(x: &[f32], heads: usize, hd: usize, out: &mut [f32]) {
    let t = x.len() / (heads * hd);
    out.par_chunks_mut(t * hd).enumerate().for_each(|(h, o)| {
        for (i, row) in o.chunks_mut(hd).enumerate() {
            row.copy_from_slice(&x[i * heads * hd + h * hd..][..hd]);
        }
    });
}

/// `[heads, T, hd]` head-major → `[T, heads·hd]` token-major.
pub fn to_token_major(x: &[f32], heads: usize, hd: usize, out: &mut [f32]) {
    let t = x.len() / (heads * hd);
    out.par_chunks_mut(heads * hd)
        .enumerate()
        .for_each(|(i, row)| {
            for h in 0..heads {
                row[h * hd..(h + 1) * hd].copy_from_slice(&x[(h * t + i) * hd..][..hd]);
            }
        });
}
