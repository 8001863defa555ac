//! The CPU side of the compute seam: host `Vec<f32>` buffers, frozen weights dequantized to
//! f32 one block at a time, the GEMM and kernels of this folder on the caller's rayon pool.

use rayon::prelude::*;

use super::actquant::{round_activations, round_q8_1_with_sum_error, ActRounding};
use super::attention::{attention_bwd, attention_fwd, to_head_major, to_token_major, AttnShape};
use super::ops::{
    add_bias, geglu_bwd, geglu_fwd, rmsnorm_bwd, rmsnorm_fwd, swiglu_bwd, swiglu_fwd,
};
use super::rope::RopeTable;
use super::{gemm, Mat, MatMut};
use crate::train::backend::{Backend, HeadScratch, Norm};
use crate::train::error::{Result, TrainError};
use crate::train::lora::{LoraTarget, LoraWeights};
use crate::train::model::layout::Layout;
use crate::train::model::Tap;
use crate::train::weights::{FfnAct, GgmlType, GgufModel, HyperParams, LayerWeights, QTensor};

/// The CPU backend over a loaded model; cheap to build per call (it borrows everything).
pub(crate) struct CpuBackend<'a> {
    pub model: &'a GgufModel,
    /// Round the inputs of frozen-weight products as llama.cpp's CPU backend does (parity
    /// checks only; see [`super::actquant`]).
    pub round_acts_like_llama: bool,
    /// Diagnostics callback over block intermediates.
    pub tap: Option<&'a Tap>,
    /// Scored rows projected at a time.
    pub row_chunk: usize,
    /// Vocabulary rows of the output projection dequantized at a time.
    pub vocab_chunk: usize,
    /// Tokens whose MLP runs at a time (0 = all).
    pub mlp_chunk: usize,
}

/// A block's weight matrices dequantized to f32 (reused buffer, one block at a time).
#[derive(Default)]
pub(crate) struct DenseLayer {
    w: [Vec<f32>; 7],
}

impl DenseLayer {
    fn get(&self, t: LoraTarget) -> &[f32] {
        &self.w[t.index()]
    }
}

/// Per-call data of a batch on the CPU.
pub(crate) struct CpuBatch {
    rope: RopeTable,
    /// The table of sliding-window layers when their base differs.
    rope_swa: Option<RopeTable>,
    pos: Vec<u32>,
    seqs: Vec<(usize, usize)>,
    tokens: Vec<u32>,
    scored: Vec<(usize, u32)>,
}

/// Head-major copies of Q, K, V and the attention output, and their gradients.
#[derive(Default)]
pub(crate) struct CpuAttnCache {
    qh: Vec<f32>,
    kh: Vec<f32>,
    vh: Vec<f32>,
    att_h: Vec<f32>,
    datt_h: Vec<f32>,
    dqh: Vec<f32>,
    dkh: Vec<f32>,
    dvh: Vec<f32>,
}

fn sized(v: &mut Vec<f32>, n: usize) -> &mut Vec<f32> {
    v.resize(n, 0.0);
    v
}

/// The frozen weight of `t` in a block.
pub(crate) fn layer_weight(lw: &LayerWeights, t: LoraTarget) -> &QTensor {
    [
        &lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down,
    ][t.index()]
}

/// Dequantizes rows `r0 .. r0 + out.len() / cols` of `w` into `out`, in parallel.
fn dequant_rows_par(w: &QTensor, r0: usize, out: &mut [f32]) -> Result<()> {
    const ROWS: usize = 256;
    out.par_chunks_mut(ROWS * w.cols)
        .enumerate()
        .try_for_each(|(i, o)| w.dequant_rows(r0 + i * ROWS, o))
}

impl CpuBackend<'_> {
    fn attn_shape(&self, l: usize, n: usize) -> AttnShape {
        let hp = &self.model.hp;
        AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            n_tokens: n,
            scale: hp.attn_scale,
            window: hp.window(l),
        }
    }

    fn norm(&self, w: Norm) -> Result<&[f32]> {
        let (m, name) = (self.model, w.name());
        let v = match w {
            Norm::Attn(l) => Some(&m.layers[l].attn_norm[..]),
            Norm::Ffn(l) => Some(&m.layers[l].ffn_norm[..]),
            Norm::Output => Some(&m.output_norm[..]),
            Norm::QHead(l) => m.layers[l].q_norm.as_deref(),
            Norm::KHead(l) => m.layers[l].k_norm.as_deref(),
            Norm::AttnPost(l) => m.layers[l].attn_post_norm.as_deref(),
            Norm::FfnPost(l) => m.layers[l].ffn_post_norm.as_deref(),
        };
        v.ok_or_else(|| TrainError::config(format!("the model has no {name} weights")))
    }

    /// The scored rows of `xf`, gathered (`[rows, d]`), rounded like llama.cpp if asked.
    fn gather_scored(&self, batch: &CpuBatch, xf: &[f32]) -> Vec<f32> {
        let d = self.model.hp.n_embd;
        let mut xs = vec![0f32; batch.scored.len() * d];
        xs.par_chunks_mut(d)
            .zip(batch.scored.par_iter())
            .for_each(|(dst, &(row, _))| dst.copy_from_slice(&xf[row * d..(row + 1) * d]));
        if self.round_acts_like_llama {
            let r = ActRounding::for_weight(self.model.output_weight().ty);
            round_activations(&mut xs, d, r);
        }
        xs
    }

    fn chunks(&self) -> (usize, usize) {
        let v = self.model.hp.n_vocab;
        (self.row_chunk.max(1), self.vocab_chunk.clamp(1, v))
    }

    /// The output projection's logits of the gathered rows `xs` (`[r, d]`), tile by tile: each
    /// vocabulary chunk is dequantized once, then multiplied with every row chunk, and `f`
    /// receives the tile. Never holds more than one chunk of weights and one tile of logits.
    /// Returns the bytes of that weight and logits scratch.
    fn logit_tiles(
        &self,
        xs: &[f32],
        r: usize,
        mut f: impl FnMut(LogitTile<'_>) -> Result<()>,
    ) -> Result<(usize, usize)> {
        let (d, v) = (self.model.hp.n_embd, self.model.hp.n_vocab);
        let w = self.model.output_weight();
        let (rc, vc) = self.chunks();
        let mut wd = vec![0f32; vc * d];
        let mut logits = vec![0f32; rc.min(r) * vc];
        for v0 in (0..v).step_by(vc) {
            let cv = vc.min(v - v0);
            dequant_rows_par(w, v0, &mut wd[..cv * d])?;
            for r0 in (0..r).step_by(rc) {
                let cr = rc.min(r - r0);
                let lg = &mut logits[..cr * cv];
                gemm(
                    1.0,
                    Mat::new(&xs[r0 * d..(r0 + cr) * d], cr, d),
                    Mat::new(&wd[..cv * d], cv, d).t(),
                    0.0,
                    MatMut::new(lg, cr, cv),
                );
                f(LogitTile {
                    v0,
                    cv,
                    r0,
                    cr,
                    logits: lg,
                    weight: &wd[..cv * d],
                })?;
            }
        }
        Ok((wd.capacity() * 4, logits.capacity() * 4))
    }
}

/// One tile of [`CpuBackend::logit_tiles`]: scored rows `r0..r0 + cr` against vocabulary
/// entries `v0..v0 + cv`; `logits` is row-major `[cr, cv]`, `weight` the chunk's dequantized
/// rows `[cv, d]`.
struct LogitTile<'a> {
    v0: usize,
    cv: usize,
    r0: usize,
    cr: usize,
    logits: &'a mut [f32],
    weight: &'a [f32],
}

/// Running log-sum-exp, target logit, argmax and (optionally) `Σ e^(x−max)·x` of one row
/// over vocabulary chunks.
#[derive(Clone, Copy)]
struct RowStats {
    max: f32,
    sum: f64,
    /// `Σ e^(x − max) · x`, for the entropy (when tracked).
    zsum: f64,
    target: f32,
    best: f32,
    best_id: u32,
}

impl RowStats {
    const EMPTY: RowStats = RowStats {
        max: f32::NEG_INFINITY,
        sum: 0.0,
        zsum: 0.0,
        target: 0.0,
        best: f32::NEG_INFINITY,
        best_id: 0,
    };

    /// Folds the logits of vocabulary ids `v0 .. v0 + lg.len()` into the running values.
    fn update(&mut self, lg: &[f32], v0: usize, target: u32, entropy: bool) {
        let m = lg.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (s, z) = if entropy {
            lg.iter().fold((0f64, 0f64), |(s, z), &x| {
                let e = ((x - m) as f64).exp();
                (s + e, z + e * x as f64)
            })
        } else {
            (lg.iter().map(|&x| ((x - m) as f64).exp()).sum(), 0.0)
        };
        if m > self.max {
            let f = ((self.max - m) as f64).exp();
            self.sum = self.sum * f + s;
            self.zsum = self.zsum * f + z;
            self.max = m;
        } else {
            let f = ((m - self.max) as f64).exp();
            self.sum += s * f;
            self.zsum += z * f;
        }
        let t = target as usize;
        if (v0..v0 + lg.len()).contains(&t) {
            self.target = lg[t - v0];
        }
        for (j, &x) in lg.iter().enumerate() {
            if x > self.best {
                self.best = x;
                self.best_id = (v0 + j) as u32;
            }
        }
    }

    fn lse(&self) -> f32 {
        self.max + self.sum.ln() as f32
    }

    /// `H = lse − E[x]` of the row's softmax (valid when tracked).
    fn entropy(&self) -> f32 {
        (self.max as f64 + self.sum.ln() - self.zsum / self.sum) as f32
    }
}

impl Backend for CpuBackend<'_> {
    type Buf = Vec<f32>;
    type Layer = DenseLayer;
    type Lora = LoraWeights;
    type Batch = CpuBatch;
    type AttnCache = CpuAttnCache;
    type Ckpt = Vec<f32>;

    fn hp(&self) -> &HyperParams {
        &self.model.hp
    }

    fn batch(&self, lay: &Layout) -> Result<CpuBatch> {
        let hp = &self.model.hp;
        let table = |base: f32| RopeTable::new(hp.head_dim, base, lay.max_len, hp.rope_neox);
        let swa = (0..hp.n_layer).any(|l| hp.is_swa(l)) && hp.rope_base_swa != hp.rope_base;
        Ok(CpuBatch {
            rope: table(hp.rope_base),
            rope_swa: swa.then(|| table(hp.rope_base_swa)),
            pos: lay.pos.clone(),
            seqs: lay.seqs.clone(),
            tokens: lay.tokens.clone(),
            scored: lay.scored.clone(),
        })
    }

    fn resize(&self, b: &mut Vec<f32>, n: usize) -> Result<()> {
        b.resize(n, 0.0);
        Ok(())
    }

    fn bytes(&self, b: &Vec<f32>) -> usize {
        b.capacity() * 4
    }

    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>) -> Result<()> {
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy_rows(
        &self,
        src: &Vec<f32>,
        src_row: usize,
        dst: &mut Vec<f32>,
        dst_row: usize,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        let n = rows * width;
        let (s0, d0) = (src_row * width, dst_row * width);
        if s0 + n > src.len() || d0 + n > dst.len() {
            return Err(TrainError::shape(
                "row copy",
                (s0 + n, d0 + n),
                (src.len(), dst.len()),
            ));
        }
        dst[d0..d0 + n].copy_from_slice(&src[s0..s0 + n]);
        Ok(())
    }

    fn ckpt_resize(&self, c: &mut Vec<f32>, n: usize) -> Result<()> {
        self.resize(c, n)
    }

    fn ckpt_bytes(&self, c: &Vec<f32>) -> usize {
        c.capacity() * 4
    }

    fn ckpt_store(
        &self,
        src: &Vec<f32>,
        c: &mut Vec<f32>,
        row0: usize,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        self.copy_rows(src, 0, c, row0, rows, width)
    }

    fn ckpt_load(
        &self,
        c: &Vec<f32>,
        row0: usize,
        dst: &mut Vec<f32>,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        self.copy_rows(c, row0, dst, 0, rows, width)
    }

    fn mlp_chunk(&self) -> usize {
        self.mlp_chunk
    }

    fn fill_zero(&self, b: &mut Vec<f32>) -> Result<()> {
        b.fill(0.0);
        Ok(())
    }

    fn add(&self, dst: &mut Vec<f32>, src: &Vec<f32>) -> Result<()> {
        const CH: usize = 1 << 14;
        dst.par_chunks_mut(CH)
            .zip(src.par_chunks(CH))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, &y)| *x += y));
        Ok(())
    }

    fn to_host(&self, b: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(b.clone())
    }

    fn embed(&self, batch: &CpuBatch, out: &mut Vec<f32>) -> Result<()> {
        let d = self.model.hp.n_embd;
        let scale = self.model.hp.embd_scale;
        for (row, &t) in out.chunks_mut(d).zip(&batch.tokens) {
            self.model.tok_embd.dequant_rows(t as usize, row)?;
            if scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Ok(())
    }

    fn load_layer(&self, l: usize, dst: &mut DenseLayer) -> Result<()> {
        let lw = &self.model.layers[l];
        for (t, w) in LoraTarget::ALL.into_iter().zip(dst.w.iter_mut()) {
            let q = layer_weight(lw, t);
            sized(w, q.rows * q.cols);
            q.dequant_into(w)?;
        }
        Ok(())
    }

    fn layer_bytes(&self, layer: &DenseLayer) -> usize {
        layer.w.iter().map(|v| v.capacity() * 4).sum()
    }

    fn rmsnorm_fwd(
        &self,
        w: Norm,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        inv: &mut Vec<f32>,
    ) -> Result<()> {
        rmsnorm_fwd(x, self.norm(w)?, self.model.hp.rms_eps, y, inv);
        Ok(())
    }

    fn rmsnorm_bwd(
        &self,
        w: Norm,
        x: &Vec<f32>,
        inv: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        rmsnorm_bwd(x, self.norm(w)?, inv, dy, dx);
        Ok(())
    }

    fn add_bias(&self, l: usize, t: LoraTarget, x: &mut Vec<f32>) -> Result<()> {
        let lw = &self.model.layers[l];
        let b = match t {
            LoraTarget::Q => &lw.bq,
            LoraTarget::K => &lw.bk,
            LoraTarget::V => &lw.bv,
            _ => &None,
        };
        if let Some(b) = b {
            add_bias(x, b);
        }
        Ok(())
    }

    fn linear(
        &self,
        layer: &DenseLayer,
        l: usize,
        t: LoraTarget,
        lora: Option<&LoraWeights>,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        u: &mut Vec<f32>,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (din, dout) = t.dims(hp);
        let n = x.len() / din;
        let wq = layer_weight(&self.model.layers[l], t);
        let rounded;
        let mut sum_error = None;
        let x_base = match ActRounding::for_weight(wq.ty) {
            r if self.round_acts_like_llama && r != ActRounding::None => {
                let mut v = x.clone();
                if wq.ty == GgmlType::Q4_1 {
                    sum_error = Some(round_q8_1_with_sum_error(&mut v, din));
                } else {
                    round_activations(&mut v, din, r);
                }
                rounded = v;
                &rounded[..]
            }
            _ => &x[..],
        };
        gemm(
            1.0,
            Mat::new(x_base, n, din),
            Mat::new(layer.get(t), dout, din).t(),
            0.0,
            MatMut::new(y, n, dout),
        );
        if let (Some(err), Some(mins)) = (sum_error, wq.q4_1_block_mins()) {
            let nb = din / 32;
            gemm(
                1.0,
                Mat::new(&err, n, nb),
                Mat::new(&mins, dout, nb).t(),
                1.0,
                MatMut::new(y, n, dout),
            );
        }
        if let Some((a, b)) = lora.and_then(|lo| lo.pair(l, t)) {
            let r = a.len() / din;
            let s = lora.map_or(0.0, |lo| lo.scaling());
            let u = sized(u, n * r);
            gemm(
                1.0,
                Mat::new(x, n, din),
                Mat::new(a, r, din).t(),
                0.0,
                MatMut::new(u, n, r),
            );
            gemm(
                s,
                Mat::new(u, n, r),
                Mat::new(b, dout, r).t(),
                1.0,
                MatMut::new(y, n, dout),
            );
        }
        Ok(())
    }

    fn linear_bwd(
        &self,
        layer: &DenseLayer,
        l: usize,
        t: LoraTarget,
        lora: Option<&LoraWeights>,
        x: &Vec<f32>,
        u: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        accumulate: bool,
        du: &mut Vec<f32>,
        grads: &mut LoraWeights,
    ) -> Result<()> {
        let (din, dout) = t.dims(&self.model.hp);
        let n = x.len() / din;
        let beta = if accumulate { 1.0 } else { 0.0 };
        gemm(
            1.0,
            Mat::new(dy, n, dout),
            Mat::new(layer.get(t), dout, din),
            beta,
            MatMut::new(dx, n, din),
        );
        let (Some(lora), Some((ga, gb))) = (lora, grads.pair_mut(l, t)) else {
            return Ok(());
        };
        let Some((a, b)) = lora.pair(l, t) else {
            return Ok(());
        };
        let r = a.len() / din;
        let s = lora.scaling();
        // dB += s dyᵀ u
        gemm(
            s,
            Mat::new(dy, n, dout).t(),
            Mat::new(u, n, r),
            1.0,
            MatMut::new(gb, dout, r),
        );
        // du = s dy B ; dA += duᵀ x ; dx += du A
        let du = sized(du, n * r);
        gemm(
            s,
            Mat::new(dy, n, dout),
            Mat::new(b, dout, r),
            0.0,
            MatMut::new(du, n, r),
        );
        gemm(
            1.0,
            Mat::new(du, n, r).t(),
            Mat::new(x, n, din),
            1.0,
            MatMut::new(ga, r, din),
        );
        gemm(
            1.0,
            Mat::new(du, n, r),
            Mat::new(a, r, din),
            1.0,
            MatMut::new(dx, n, din),
        );
        Ok(())
    }

    fn rope(
        &self,
        batch: &CpuBatch,
        l: usize,
        x: &mut Vec<f32>,
        n_heads: usize,
        inverse: bool,
    ) -> Result<()> {
        let table = match &batch.rope_swa {
            Some(t) if self.model.hp.is_swa(l) => t,
            _ => &batch.rope,
        };
        table.apply(x, n_heads, &batch.pos, inverse);
        Ok(())
    }

    fn attention_fwd(
        &self,
        batch: &CpuBatch,
        l: usize,
        q: &Vec<f32>,
        k: &Vec<f32>,
        v: &Vec<f32>,
        out: &mut Vec<f32>,
        c: &mut CpuAttnCache,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let n = batch.pos.len();
        let (qd, kvd, hd) = (hp.q_dim(), hp.kv_dim(), hp.head_dim);
        to_head_major(q, hp.n_head, hd, sized(&mut c.qh, n * qd));
        to_head_major(k, hp.n_head_kv, hd, sized(&mut c.kh, n * kvd));
        to_head_major(v, hp.n_head_kv, hd, sized(&mut c.vh, n * kvd));
        attention_fwd(
            self.attn_shape(l, n),
            &batch.seqs,
            &c.qh,
            &c.kh,
            &c.vh,
            sized(&mut c.att_h, n * qd),
        );
        to_token_major(&c.att_h, hp.n_head, hd, out);
        Ok(())
    }

    fn attention_bwd(
        &self,
        batch: &CpuBatch,
        l: usize,
        _q: &Vec<f32>,
        _k: &Vec<f32>,
        _v: &Vec<f32>,
        dout: &Vec<f32>,
        c: &mut CpuAttnCache,
        dq: &mut Vec<f32>,
        dk: &mut Vec<f32>,
        dv: &mut Vec<f32>,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let n = batch.pos.len();
        let (qd, kvd, hd) = (hp.q_dim(), hp.kv_dim(), hp.head_dim);
        to_head_major(dout, hp.n_head, hd, sized(&mut c.datt_h, n * qd));
        attention_bwd(
            self.attn_shape(l, n),
            &batch.seqs,
            &c.qh,
            &c.kh,
            &c.vh,
            &c.datt_h,
            sized(&mut c.dqh, n * qd),
            sized(&mut c.dkh, n * kvd),
            sized(&mut c.dvh, n * kvd),
        );
        to_token_major(&c.dqh, hp.n_head, hd, dq);
        to_token_major(&c.dkh, hp.n_head_kv, hd, dk);
        to_token_major(&c.dvh, hp.n_head_kv, hd, dv);
        Ok(())
    }

    fn attn_cache_bytes(&self, c: &CpuAttnCache) -> usize {
        [
            &c.qh, &c.kh, &c.vh, &c.att_h, &c.datt_h, &c.dqh, &c.dkh, &c.dvh,
        ]
        .iter()
        .map(|v| v.capacity() * 4)
        .sum()
    }

    fn glu_fwd(&self, act: FfnAct, g: &Vec<f32>, u: &Vec<f32>, out: &mut Vec<f32>) -> Result<()> {
        match act {
            FfnAct::Silu => swiglu_fwd(g, u, out),
            FfnAct::GeluTanh => geglu_fwd(g, u, out, self.round_acts_like_llama),
        }
        Ok(())
    }

    fn glu_bwd(
        &self,
        act: FfnAct,
        g: &Vec<f32>,
        u: &Vec<f32>,
        dout: &Vec<f32>,
        dg: &mut Vec<f32>,
        du: &mut Vec<f32>,
    ) -> Result<()> {
        match act {
            FfnAct::Silu => swiglu_bwd(g, u, dout, dg, du),
            FfnAct::GeluTanh => geglu_bwd(g, u, dout, dg, du),
        }
        Ok(())
    }

    fn head_fwd(
        &self,
        batch: &CpuBatch,
        xf: &Vec<f32>,
        logp: &mut [f32],
        lse: &mut Vec<f32>,
        mut argmax: Option<&mut [u32]>,
        mut entropy: Option<&mut [f32]>,
    ) -> Result<HeadScratch> {
        let r = batch.scored.len();
        if logp.len() != r || lse.len() != r {
            return Err(TrainError::shape(
                "head outputs",
                r,
                (logp.len(), lse.len()),
            ));
        }
        if entropy.as_ref().is_some_and(|e| e.len() != r) {
            return Err(TrainError::shape(
                "head entropies",
                r,
                entropy.as_ref().map_or(0, |e| e.len()),
            ));
        }
        let want_ent = entropy.is_some();
        let xs = self.gather_scored(batch, xf);
        let mut stats = vec![RowStats::EMPTY; r];
        let (weight_bytes, logits_bytes) = self.logit_tiles(&xs, r, |t| {
            stats[t.r0..t.r0 + t.cr]
                .par_iter_mut()
                .zip(t.logits.par_chunks(t.cv))
                .zip(batch.scored[t.r0..t.r0 + t.cr].par_iter())
                .for_each(|((st, row), &(_, tgt))| st.update(row, t.v0, tgt, want_ent));
            Ok(())
        })?;
        for (i, st) in stats.iter().enumerate() {
            let s = st.lse();
            lse[i] = s;
            logp[i] = st.target - s;
            if let Some(a) = argmax.as_deref_mut() {
                a[i] = st.best_id;
            }
            if let Some(e) = entropy.as_deref_mut() {
                e[i] = st.entropy();
            }
        }
        Ok(HeadScratch {
            weight: weight_bytes,
            logits: logits_bytes + xs.capacity() * 4,
        })
    }

    fn head_bwd(
        &self,
        batch: &CpuBatch,
        xf: &Vec<f32>,
        lse: &Vec<f32>,
        dlogp: &[f32],
        dxf: &mut Vec<f32>,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (d, r) = (hp.n_embd, batch.scored.len());
        if dlogp.len() != r || lse.len() != r {
            return Err(TrainError::shape(
                "head gradient",
                r,
                (dlogp.len(), lse.len()),
            ));
        }
        let xs = self.gather_scored(batch, xf);
        let mut dxs = vec![0f32; r * d];
        self.logit_tiles(&xs, r, |t| {
            let (v0, cv, r0, cr) = (t.v0, t.cv, t.r0, t.cr);
            // ∂logp/∂logits = e_target − softmax, times dlogp.
            t.logits
                .par_chunks_mut(cv)
                .zip(batch.scored[r0..r0 + cr].par_iter())
                .zip(dlogp[r0..r0 + cr].par_iter().zip(&lse[r0..r0 + cr]))
                .for_each(|((row, &(_, tgt)), (&g, &s))| {
                    for x in row.iter_mut() {
                        *x = -g * (*x - s).exp();
                    }
                    let t = tgt as usize;
                    if (v0..v0 + cv).contains(&t) {
                        row[t - v0] += g;
                    }
                });
            gemm(
                1.0,
                Mat::new(t.logits, cr, cv),
                Mat::new(t.weight, cv, d),
                1.0,
                MatMut::new(&mut dxs[r0 * d..(r0 + cr) * d], cr, d),
            );
            Ok(())
        })?;
        for (src, &(row, _)) in dxs.chunks(d).zip(&batch.scored) {
            for (a, &b) in dxf[row * d..(row + 1) * d].iter_mut().zip(src) {
                *a += b;
            }
        }
        Ok(())
    }

    fn tap(&self, l: usize, name: &str, v: &Vec<f32>) -> Result<()> {
        if let Some(tap) = self.tap {
            tap(l, name, v);
        }
        Ok(())
    }
}
