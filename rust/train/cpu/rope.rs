//! Rotary position embeddings as llama.cpp applies them: "normal" (adjacent pairs, used for
//! `llama` with GGUF-permuted Q/K) or "NeoX" (pairs `i, i + d/2`, used for `qwen2`).

use rayon::prelude::*;

/// Precomputed cos/sin for positions `0..max_pos` and `head_dim / 2` frequencies.
#[derive(Clone, Debug)]
pub struct RopeTable {
    half: usize,
    neox: bool,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// θ_i = base^(−2i/head_dim); angles computed in f64 and rounded once.
    pub fn new(head_dim: usize, base: f32, max_pos: usize, neox: bool) -> Self {
        let half = head_dim / 2;
        let mut cos = vec![0f32; max_pos * half];
        let mut sin = vec![0f32; max_pos * half];
        for p in 0..max_pos {
            for i in 0..half {
                // ggml computes theta = p * base^(-2i/d) iteratively in f32; f64 is closer to exact.
                let theta = p as f64 * (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
                cos[p * half + i] = theta.cos() as f32;
                sin[p * half + i] = theta.sin() as f32;
            }
        }
        RopeTable {
            half,
            neox,
            cos,
            sin,
        }
    }

    /// The cos and sin tables (`[max_pos, head_dim / 2]` each), for device copies.
    #[cfg_attr(not(feature = "cuda-train"), allow(dead_code))]
    pub fn tables(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates `x` (`[T, n_heads * head_dim]`) in place; row `t` has position `pos[t]`.
    /// With `inverse`, applies the transpose rotation (the backward pass).
    pub fn apply(&self, x: &mut [f32], n_heads: usize, pos: &[u32], inverse: bool) {
        let hd = self.half * 2;
        let width = n_heads * hd;
        x.par_chunks_mut(width)
            .zip(pos.par_iter())
            .for_each(|(row, &p)| {
                let c = &self.cos[p as usize * self.half..][..self.half];
                let s = &self.sin[p as usize * self.half..][..self.half];
                for h in row.chunks_mut(hd) {
                    for i in 0..self.half {
                        let (i0, i1) = if self.neox {
                            (i, i + self.half)
                        } else {
                            (2 * i, 2 * i + 1)
                        };
                        let (a, b) = (h[i0], h[i1]);
                        let sn = if inverse { -s[i] } else { s[i] };
                        h[i0] = a * c[i] - b * sn;
                        h[i1] = a * sn + b * c[i];
                    }
                }
            });
    }
}
