//! One transformer block: forward (optionally keeping activations) and backward for LoRA.

use super::layout::Layout;
use crate::train::cpu::actquant::{round_activations, round_q8_1_with_sum_error, ActRounding};
use crate::train::cpu::attention::{
    attention_bwd, attention_fwd, to_head_major, to_token_major, AttnShape,
};
use crate::train::cpu::ops::{add_bias, rmsnorm_bwd, rmsnorm_fwd, swiglu_bwd, swiglu_fwd};
use crate::train::cpu::rope::RopeTable;
use crate::train::cpu::{gemm, Mat, MatMut};
use crate::train::error::Result;
use crate::train::lora::{LoraTarget, LoraWeights};
use crate::train::weights::{GgmlType, HyperParams, LayerWeights, QTensor};

/// A block's weight matrices dequantized to f32 (reused buffer, one block at a time).
#[derive(Default)]
pub(crate) struct DenseLayer {
    w: [Vec<f32>; 7],
}

impl DenseLayer {
    pub fn load(&mut self, lw: &LayerWeights) -> Result<()> {
        let src = [
            &lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down,
        ];
        for (dst, t) in self.w.iter_mut().zip(src) {
            dst.resize(t.rows * t.cols, 0.0);
            t.dequant_into(dst)?;
        }
        Ok(())
    }
    fn get(&self, t: LoraTarget) -> &[f32] {
        &self.w[t.index()]
    }
    pub fn bytes(&self) -> usize {
        self.w.iter().map(|v| v.capacity() * 4).sum()
    }
}

/// Activations of one block for a batch of T tokens (reused across blocks).
#[derive(Default)]
pub(crate) struct Acts {
    pub xn1: Vec<f32>,
    pub inv1: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub qh: Vec<f32>,
    pub kh: Vec<f32>,
    pub vh: Vec<f32>,
    pub att_h: Vec<f32>,
    pub att: Vec<f32>,
    pub h2: Vec<f32>,
    pub xn2: Vec<f32>,
    pub inv2: Vec<f32>,
    pub g: Vec<f32>,
    pub u: Vec<f32>,
    pub act: Vec<f32>,
    /// `x Aᵀ` per target (`[T, r]`), kept for the backward pass.
    pub lora_u: [Vec<f32>; 7],
}

/// Gradient scratch of one block (reused across blocks).
#[derive(Default)]
pub(crate) struct Grads {
    pub dh2: Vec<f32>,
    pub dxn: Vec<f32>,
    pub datt: Vec<f32>,
    pub datt_h: Vec<f32>,
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
    pub dqh: Vec<f32>,
    pub dkh: Vec<f32>,
    pub dvh: Vec<f32>,
    pub dact: Vec<f32>,
    pub dg: Vec<f32>,
    pub du: Vec<f32>,
    pub dlora: Vec<f32>,
}

fn sized(v: &mut Vec<f32>, n: usize) -> &mut Vec<f32> {
    v.resize(n, 0.0);
    v
}

fn total_bytes(vs: &[&Vec<f32>]) -> usize {
    vs.iter().map(|v| v.capacity() * 4).sum()
}

impl Acts {
    pub fn bytes(&self) -> usize {
        let mut v = vec![
            &self.xn1,
            &self.inv1,
            &self.q,
            &self.k,
            &self.v,
            &self.qh,
            &self.kh,
            &self.vh,
            &self.att_h,
            &self.att,
            &self.h2,
            &self.xn2,
            &self.inv2,
            &self.g,
            &self.u,
            &self.act,
        ];
        v.extend(self.lora_u.iter());
        total_bytes(&v)
    }
}

impl Grads {
    pub fn bytes(&self) -> usize {
        total_bytes(&[
            &self.dh2,
            &self.dxn,
            &self.datt,
            &self.datt_h,
            &self.dq,
            &self.dk,
            &self.dv,
            &self.dqh,
            &self.dkh,
            &self.dvh,
            &self.dact,
            &self.dg,
            &self.du,
            &self.dlora,
        ])
    }
}

/// Context shared by a block's forward and backward.
pub(crate) struct BlockCtx<'a> {
    pub hp: &'a HyperParams,
    pub lw: &'a LayerWeights,
    pub dense: &'a DenseLayer,
    pub lora: Option<&'a LoraWeights>,
    pub layer: usize,
    pub rope: &'a RopeTable,
    pub pos: &'a [u32],
    pub seqs: &'a [(usize, usize)],
    /// Round the inputs of the frozen-weight products as llama.cpp's CPU backend does
    /// (see [`crate::train::cpu::actquant`]); for parity checks only.
    pub round_acts_like_llama: bool,
    /// Diagnostics: sees every intermediate of [`Self::forward`] (see [`Tap`]).
    pub tap: Option<&'a Tap>,
}

/// A diagnostics callback `(layer, name, values)` over a block's intermediates, named as in
/// llama.cpp's graph (`attn_norm`, `Qcur`, `Kcur`, `Vcur` before RoPE, `kqv_out`, `attn_out`,
/// `ffn_inp`, `ffn_norm`, `ffn_gate`, `ffn_up`, `ffn_swiglu`, `ffn_out`, `l_out`); values are
/// token-major `[T, width]`, the layout of llama.cpp's `[width, T]` tensors.
pub type Tap = dyn Fn(usize, &str, &[f32]) + Send + Sync;

impl<'a> BlockCtx<'a> {
    /// The context of block `layer` for the tokens laid out in `lay`.
    pub(crate) fn new(
        hp: &'a HyperParams,
        lw: &'a LayerWeights,
        dense: &'a DenseLayer,
        lora: Option<&'a LoraWeights>,
        layer: usize,
        rope: &'a RopeTable,
        lay: &'a Layout,
    ) -> Self {
        BlockCtx {
            hp,
            lw,
            dense,
            lora,
            layer,
            rope,
            pos: &lay.pos,
            seqs: &lay.seqs,
            round_acts_like_llama: false,
            tap: None,
        }
    }

    fn emit(&self, name: &str, v: &[f32]) {
        if let Some(tap) = self.tap {
            tap(self.layer, name, v);
        }
    }

    /// The frozen weight of `t`.
    fn weight(&self, t: LoraTarget) -> &QTensor {
        let lw = self.lw;
        [
            &lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down,
        ][t.index()]
    }

    /// Storage type of the frozen weight of `t`.
    fn weight_type(&self, t: LoraTarget) -> GgmlType {
        self.weight(t).ty
    }

    /// (tokens, n_embd, q dim, kv dim, n_ff, head dim).
    fn dims(&self) -> (usize, usize, usize, usize, usize, usize) {
        let hp = self.hp;
        (
            self.pos.len(),
            hp.n_embd,
            hp.q_dim(),
            hp.kv_dim(),
            hp.n_ff,
            hp.head_dim,
        )
    }

    fn attn_shape(&self) -> AttnShape {
        AttnShape {
            n_head: self.hp.n_head,
            n_head_kv: self.hp.n_head_kv,
            head_dim: self.hp.head_dim,
            n_tokens: self.pos.len(),
        }
    }

    /// `y = x Wᵀ (+ s (x Aᵀ) Bᵀ)`; x: `[T, in]`, y: `[T, out]`; keeps `x Aᵀ` in `u`.
    fn linear(&self, t: LoraTarget, x: &[f32], y: &mut [f32], u: &mut Vec<f32>) {
        let n = self.pos.len();
        let (din, dout) = t.dims(self.hp);
        let rounded;
        let mut sum_error = None;
        let x_base = match ActRounding::for_weight(self.weight_type(t)) {
            r if self.round_acts_like_llama && r != ActRounding::None => {
                let mut v = x.to_vec();
                if self.weight_type(t) == GgmlType::Q4_1 {
                    sum_error = Some(round_q8_1_with_sum_error(&mut v, din));
                } else {
                    round_activations(&mut v, din, r);
                }
                rounded = v;
                &rounded[..]
            }
            _ => x,
        };
        gemm(
            1.0,
            Mat::new(x_base, n, din),
            Mat::new(self.dense.get(t), dout, din).t(),
            0.0,
            MatMut::new(y, n, dout),
        );
        if let (Some(err), Some(mins)) = (sum_error, self.weight(t).q4_1_block_mins()) {
            let nb = din / 32;
            gemm(
                1.0,
                Mat::new(&err, n, nb),
                Mat::new(&mins, dout, nb).t(),
                1.0,
                MatMut::new(y, n, dout),
            );
        }
        if let Some((a, b)) = self.lora.and_then(|l| l.pair(self.layer, t)) {
            let r = a.len() / din;
            let s = self.lora.map_or(0.0, |l| l.scaling());
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
    }

    /// Backward of [`Self::linear`]: `dx (+)= dy W (+ s dy B A)`, LoRA grads accumulated.
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        t: LoraTarget,
        x: &[f32],
        u: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        accumulate: bool,
        du: &mut Vec<f32>,
        grads: &mut LoraWeights,
    ) {
        let n = self.pos.len();
        let (din, dout) = t.dims(self.hp);
        let beta = if accumulate { 1.0 } else { 0.0 };
        gemm(
            1.0,
            Mat::new(dy, n, dout),
            Mat::new(self.dense.get(t), dout, din),
            beta,
            MatMut::new(dx, n, din),
        );
        let (Some(lora), Some((ga, gb))) = (self.lora, grads.pair_mut(self.layer, t)) else {
            return;
        };
        let Some((a, b)) = lora.pair(self.layer, t) else {
            return;
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
    }

    /// Runs the block on `h` (`[T, d]`), writing the output into `out` and keeping every
    /// activation needed by [`Self::backward`] in `a`.
    pub fn forward(&self, h: &[f32], a: &mut Acts, out: &mut [f32]) {
        let hp = self.hp;
        let (n, d, qd, kvd, ff, hd) = self.dims();
        rmsnorm_fwd(
            h,
            &self.lw.attn_norm,
            hp.rms_eps,
            sized(&mut a.xn1, n * d),
            sized(&mut a.inv1, n),
        );
        self.emit("attn_norm", &a.xn1);
        let [uq, uk, uv, uo, ug, uu, udn] = &mut a.lora_u;
        self.linear(LoraTarget::Q, &a.xn1, sized(&mut a.q, n * qd), uq);
        self.linear(LoraTarget::K, &a.xn1, sized(&mut a.k, n * kvd), uk);
        self.linear(LoraTarget::V, &a.xn1, sized(&mut a.v, n * kvd), uv);
        if let Some(b) = &self.lw.bq {
            add_bias(&mut a.q, b);
        }
        if let Some(b) = &self.lw.bk {
            add_bias(&mut a.k, b);
        }
        if let Some(b) = &self.lw.bv {
            add_bias(&mut a.v, b);
        }
        self.emit("Qcur", &a.q);
        self.emit("Kcur", &a.k);
        self.emit("Vcur", &a.v);
        self.rope.apply(&mut a.q, hp.n_head, self.pos, false);
        self.rope.apply(&mut a.k, hp.n_head_kv, self.pos, false);
        to_head_major(&a.q, hp.n_head, hd, sized(&mut a.qh, n * qd));
        to_head_major(&a.k, hp.n_head_kv, hd, sized(&mut a.kh, n * kvd));
        to_head_major(&a.v, hp.n_head_kv, hd, sized(&mut a.vh, n * kvd));
        attention_fwd(
            self.attn_shape(),
            self.seqs,
            &a.qh,
            &a.kh,
            &a.vh,
            sized(&mut a.att_h, n * qd),
        );
        to_token_major(&a.att_h, hp.n_head, hd, sized(&mut a.att, n * qd));
        self.emit("kqv_out", &a.att);
        let h2 = sized(&mut a.h2, n * d);
        self.linear(LoraTarget::O, &a.att, h2, uo);
        self.emit("attn_out", h2);
        for (x, &y) in h2.iter_mut().zip(h) {
            *x += y;
        }
        self.emit("ffn_inp", &a.h2);
        rmsnorm_fwd(
            &a.h2,
            &self.lw.ffn_norm,
            hp.rms_eps,
            sized(&mut a.xn2, n * d),
            sized(&mut a.inv2, n),
        );
        self.emit("ffn_norm", &a.xn2);
        self.linear(LoraTarget::Gate, &a.xn2, sized(&mut a.g, n * ff), ug);
        self.linear(LoraTarget::Up, &a.xn2, sized(&mut a.u, n * ff), uu);
        self.emit("ffn_gate", &a.g);
        self.emit("ffn_up", &a.u);
        swiglu_fwd(&a.g, &a.u, sized(&mut a.act, n * ff));
        self.emit("ffn_swiglu", &a.act);
        self.linear(LoraTarget::Down, &a.act, out, udn);
        self.emit("ffn_out", out);
        for (x, &y) in out.iter_mut().zip(&a.h2) {
            *x += y;
        }
        self.emit("l_out", out);
    }

    /// Given `dh` = ∂L/∂(block output), accumulates LoRA gradients and overwrites `dh` with
    /// ∂L/∂(block input). `h` is the block input and `a` the activations from [`Self::forward`].
    pub fn backward(
        &self,
        h: &[f32],
        a: &Acts,
        g: &mut Grads,
        dh: &mut [f32],
        grads: &mut LoraWeights,
    ) {
        let hp = self.hp;
        let (n, d, qd, kvd, ff, hd) = self.dims();
        let [uq, uk, uv, uo, ug, uu, udn] = &a.lora_u;
        // MLP: out = h2 + down(swiglu(gate(xn2), up(xn2)))
        let dh2 = sized(&mut g.dh2, n * d);
        dh2.copy_from_slice(dh);
        self.linear_bwd(
            LoraTarget::Down,
            &a.act,
            udn,
            dh,
            sized(&mut g.dact, n * ff),
            false,
            &mut g.dlora,
            grads,
        );
        swiglu_bwd(
            &a.g,
            &a.u,
            &g.dact,
            sized(&mut g.dg, n * ff),
            sized(&mut g.du, n * ff),
        );
        let dxn = sized(&mut g.dxn, n * d);
        self.linear_bwd(
            LoraTarget::Gate,
            &a.xn2,
            ug,
            &g.dg,
            dxn,
            false,
            &mut g.dlora,
            grads,
        );
        self.linear_bwd(
            LoraTarget::Up,
            &a.xn2,
            uu,
            &g.du,
            dxn,
            true,
            &mut g.dlora,
            grads,
        );
        rmsnorm_bwd(&a.h2, &self.lw.ffn_norm, &a.inv2, &g.dxn, &mut g.dh2);
        // Attention: h2 = h + o(att)
        self.linear_bwd(
            LoraTarget::O,
            &a.att,
            uo,
            &g.dh2,
            sized(&mut g.datt, n * qd),
            false,
            &mut g.dlora,
            grads,
        );
        to_head_major(&g.datt, hp.n_head, hd, sized(&mut g.datt_h, n * qd));
        attention_bwd(
            self.attn_shape(),
            self.seqs,
            &a.qh,
            &a.kh,
            &a.vh,
            &g.datt_h,
            sized(&mut g.dqh, n * qd),
            sized(&mut g.dkh, n * kvd),
            sized(&mut g.dvh, n * kvd),
        );
        to_token_major(&g.dqh, hp.n_head, hd, sized(&mut g.dq, n * qd));
        to_token_major(&g.dkh, hp.n_head_kv, hd, sized(&mut g.dk, n * kvd));
        to_token_major(&g.dvh, hp.n_head_kv, hd, sized(&mut g.dv, n * kvd));
        self.rope.apply(&mut g.dq, hp.n_head, self.pos, true);
        self.rope.apply(&mut g.dk, hp.n_head_kv, self.pos, true);
        let dxn = sized(&mut g.dxn, n * d);
        self.linear_bwd(
            LoraTarget::Q,
            &a.xn1,
            uq,
            &g.dq,
            dxn,
            false,
            &mut g.dlora,
            grads,
        );
        self.linear_bwd(
            LoraTarget::K,
            &a.xn1,
            uk,
            &g.dk,
            dxn,
            true,
            &mut g.dlora,
            grads,
        );
        self.linear_bwd(
            LoraTarget::V,
            &a.xn1,
            uv,
            &g.dv,
            dxn,
            true,
            &mut g.dlora,
            grads,
        );
        rmsnorm_bwd(h, &self.lw.attn_norm, &a.inv1, &g.dxn, &mut g.dh2);
        dh.copy_from_slice(&g.dh2);
    }
}
