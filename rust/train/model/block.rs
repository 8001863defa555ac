//! One transformer block, forward and LoRA backward, written once over the compute seam
//! ([`Backend`]): pre-norm attention with RoPE and GQA, pre-norm gated MLP; with the
//! architecture's options (`HyperParams`): q/k head norms before RoPE (qwen3, gemma3), norms
//! of the attention and MLP outputs before the residual adds (gemma3), SiLU or tanh-GELU
//! gating, a sliding attention window and a RoPE base per layer.

use crate::train::backend::{Backend, Norm};
use crate::train::error::Result;
use crate::train::lora::LoraTarget;
use crate::train::weights::FfnAct;

/// Activations of the MLP half of a block for a run of tokens (all of them, or one chunk).
pub(crate) struct MlpActs<B: Backend> {
    pub xn2: B::Buf,
    pub inv2: B::Buf,
    pub g: B::Buf,
    pub u: B::Buf,
    pub act: B::Buf,
    /// The down projection's output before the post-MLP norm, and that norm's `1/rms`.
    pub f: B::Buf,
    pub inv_f: B::Buf,
    /// `x Aᵀ` of gate, up, down.
    pub lora_u: [B::Buf; 3],
}

impl<B: Backend> Default for MlpActs<B> {
    fn default() -> Self {
        MlpActs {
            xn2: B::Buf::default(),
            inv2: B::Buf::default(),
            g: B::Buf::default(),
            u: B::Buf::default(),
            act: B::Buf::default(),
            f: B::Buf::default(),
            inv_f: B::Buf::default(),
            lora_u: Default::default(),
        }
    }
}

/// Activations of one block for a batch of T tokens (reused across blocks).
pub(crate) struct Acts<B: Backend> {
    pub xn1: B::Buf,
    pub inv1: B::Buf,
    pub q: B::Buf,
    pub k: B::Buf,
    pub v: B::Buf,
    pub att: B::Buf,
    pub h2: B::Buf,
    /// Q and K before their head norms, and the norms' `1/rms` per head row.
    pub qr: B::Buf,
    pub kr: B::Buf,
    pub invq: B::Buf,
    pub invk: B::Buf,
    /// The output projection before the post-attention norm, and that norm's `1/rms`.
    pub o: B::Buf,
    pub inv_o: B::Buf,
    /// `x Aᵀ` of q, k, v, o, kept for the backward pass.
    pub lora_u: [B::Buf; 4],
    pub attn: B::AttnCache,
    pub mlp: MlpActs<B>,
    /// A chunk of `h2`, of the block output and of its gradient (chunked MLP only).
    pub hc: B::Buf,
    pub oc: B::Buf,
    pub dyc: B::Buf,
    pub dxc: B::Buf,
}

impl<B: Backend> Default for Acts<B> {
    fn default() -> Self {
        Acts {
            xn1: B::Buf::default(),
            inv1: B::Buf::default(),
            q: B::Buf::default(),
            k: B::Buf::default(),
            v: B::Buf::default(),
            att: B::Buf::default(),
            h2: B::Buf::default(),
            qr: B::Buf::default(),
            kr: B::Buf::default(),
            invq: B::Buf::default(),
            invk: B::Buf::default(),
            o: B::Buf::default(),
            inv_o: B::Buf::default(),
            lora_u: Default::default(),
            attn: B::AttnCache::default(),
            mlp: MlpActs::default(),
            hc: B::Buf::default(),
            oc: B::Buf::default(),
            dyc: B::Buf::default(),
            dxc: B::Buf::default(),
        }
    }
}

impl<B: Backend> Acts<B> {
    pub fn bytes(&self, be: &B) -> usize {
        let m = &self.mlp;
        let bufs = [
            &self.xn1,
            &self.inv1,
            &self.q,
            &self.k,
            &self.v,
            &self.att,
            &self.h2,
            &self.qr,
            &self.kr,
            &self.invq,
            &self.invk,
            &self.o,
            &self.inv_o,
            &self.hc,
            &self.oc,
            &self.dyc,
            &self.dxc,
            &m.xn2,
            &m.inv2,
            &m.g,
            &m.u,
            &m.act,
            &m.f,
            &m.inv_f,
        ];
        bufs.iter()
            .copied()
            .chain(self.lora_u.iter())
            .chain(m.lora_u.iter())
            .map(|b| be.bytes(b))
            .sum::<usize>()
            + be.attn_cache_bytes(&self.attn)
    }
}

/// Gradient scratch of the MLP half (and the shared LoRA / norm-input scratch).
pub(crate) struct MlpGrads<B: Backend> {
    pub dxn: B::Buf,
    /// Gradient of the down projection's output (before the post-MLP norm).
    pub df: B::Buf,
    pub dact: B::Buf,
    pub dg: B::Buf,
    pub du: B::Buf,
    pub dlora: B::Buf,
}

impl<B: Backend> Default for MlpGrads<B> {
    fn default() -> Self {
        MlpGrads {
            dxn: B::Buf::default(),
            df: B::Buf::default(),
            dact: B::Buf::default(),
            dg: B::Buf::default(),
            du: B::Buf::default(),
            dlora: B::Buf::default(),
        }
    }
}

/// Gradient scratch of one block (reused across blocks).
pub(crate) struct Grads<B: Backend> {
    pub dh2: B::Buf,
    pub datt: B::Buf,
    pub dq: B::Buf,
    pub dk: B::Buf,
    pub dv: B::Buf,
    /// Gradients of Q and K before their head norms.
    pub dqr: B::Buf,
    pub dkr: B::Buf,
    /// Gradient of the output projection before the post-attention norm.
    pub d_o: B::Buf,
    pub m: MlpGrads<B>,
}

impl<B: Backend> Default for Grads<B> {
    fn default() -> Self {
        Grads {
            dh2: B::Buf::default(),
            datt: B::Buf::default(),
            dq: B::Buf::default(),
            dk: B::Buf::default(),
            dv: B::Buf::default(),
            dqr: B::Buf::default(),
            dkr: B::Buf::default(),
            d_o: B::Buf::default(),
            m: MlpGrads::default(),
        }
    }
}

impl<B: Backend> Grads<B> {
    pub fn bytes(&self, be: &B) -> usize {
        let m = &self.m;
        [
            &self.dh2, &self.datt, &self.dq, &self.dk, &self.dv, &self.dqr, &self.dkr, &self.d_o,
            &m.dxn, &m.df, &m.dact, &m.dg, &m.du, &m.dlora,
        ]
        .iter()
        .map(|b| be.bytes(b))
        .sum()
    }
}

/// Block `l` of the model on backend `be` for one batch.
pub(crate) struct Block<'a, B: Backend> {
    pub be: &'a B,
    pub batch: &'a B::Batch,
    pub layer: &'a B::Layer,
    pub l: usize,
    pub lora: Option<&'a B::Lora>,
    /// Tokens in the batch.
    pub n: usize,
    /// Tokens whose MLP runs at a time (0 = all): the `[tokens, n_ff]` intermediates are the
    /// largest activations, so backends with little memory bound them.
    pub mlp_chunk: usize,
}

impl<B: Backend> Block<'_, B> {
    fn sized<'b>(&self, b: &'b mut B::Buf, n: usize) -> Result<&'b mut B::Buf> {
        self.be.resize(b, n)?;
        Ok(b)
    }

    fn linear(&self, t: LoraTarget, x: &B::Buf, y: &mut B::Buf, u: &mut B::Buf) -> Result<()> {
        self.be.linear(self.layer, self.l, t, self.lora, x, y, u)
    }

    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        t: LoraTarget,
        x: &B::Buf,
        u: &B::Buf,
        dy: &B::Buf,
        dx: &mut B::Buf,
        accumulate: bool,
        du: &mut B::Buf,
        grads: &mut B::Lora,
    ) -> Result<()> {
        self.be.linear_bwd(
            self.layer, self.l, t, self.lora, x, u, dy, dx, accumulate, du, grads,
        )
    }

    /// Token chunks of the MLP: `(first row, rows)`; one chunk when not chunked.
    fn mlp_chunks(&self) -> Vec<(usize, usize)> {
        let c = if self.mlp_chunk == 0 {
            self.n
        } else {
            self.mlp_chunk
        };
        (0..self.n)
            .step_by(c.max(1))
            .map(|r0| (r0, c.min(self.n - r0)))
            .collect()
    }

    fn chunked(&self) -> bool {
        self.mlp_chunk > 0 && self.mlp_chunk < self.n
    }

    /// Runs the block on `h` (`[T, d]`), writing the output into `out` (sized by the caller)
    /// and keeping the activations [`Block::backward`] needs in `a`.
    pub fn forward(&self, h: &B::Buf, a: &mut Acts<B>, out: &mut B::Buf) -> Result<()> {
        self.forward_attn(h, a)?;
        let d = self.be.hp().n_embd;
        if !self.chunked() {
            return self.forward_mlp(&a.h2, &mut a.mlp, out, self.n);
        }
        for (r0, rows) in self.mlp_chunks() {
            self.sized(&mut a.hc, rows * d)?;
            self.sized(&mut a.oc, rows * d)?;
            self.be.copy_rows(&a.h2, r0, &mut a.hc, 0, rows, d)?;
            self.forward_mlp(&a.hc, &mut a.mlp, &mut a.oc, rows)?;
            self.be.copy_rows(&a.oc, 0, out, r0, rows, d)?;
        }
        Ok(())
    }

    /// What [`Block::backward`] needs of a forward pass on `h` (the attention half, and the
    /// MLP too when it is not chunked; `out` receives the block output then).
    pub fn recompute(&self, h: &B::Buf, a: &mut Acts<B>, out: &mut B::Buf) -> Result<()> {
        if self.chunked() {
            self.forward_attn(h, a)
        } else {
            self.forward(h, a, out)
        }
    }

    /// Attention half: `h2 = h + post(o(attention(rope(qn(q)), rope(kn(k)), v)))` over
    /// `rmsnorm(h)`, where `qn`, `kn` are the head norms and `post` the post-attention norm
    /// when the architecture has them.
    fn forward_attn(&self, h: &B::Buf, a: &mut Acts<B>) -> Result<()> {
        let be = self.be;
        let hp = be.hp();
        let (n, l) = (self.n, self.l);
        let (d, qd, kvd) = (hp.n_embd, hp.q_dim(), hp.kv_dim());
        self.sized(&mut a.xn1, n * d)?;
        self.sized(&mut a.inv1, n)?;
        be.rmsnorm_fwd(Norm::Attn(l), h, &mut a.xn1, &mut a.inv1)?;
        be.tap(l, "attn_norm", &a.xn1)?;
        let [uq, uk, uv, uo] = &mut a.lora_u;
        let (qlin, klin) = if hp.qk_norm {
            (&mut a.qr, &mut a.kr)
        } else {
            (&mut a.q, &mut a.k)
        };
        self.sized(qlin, n * qd)?;
        self.sized(klin, n * kvd)?;
        self.sized(&mut a.v, n * kvd)?;
        self.linear(LoraTarget::Q, &a.xn1, qlin, uq)?;
        self.linear(LoraTarget::K, &a.xn1, klin, uk)?;
        self.linear(LoraTarget::V, &a.xn1, &mut a.v, uv)?;
        be.add_bias(l, LoraTarget::Q, qlin)?;
        be.add_bias(l, LoraTarget::K, klin)?;
        be.add_bias(l, LoraTarget::V, &mut a.v)?;
        be.tap(l, "Qcur", qlin)?;
        be.tap(l, "Kcur", klin)?;
        be.tap(l, "Vcur", &a.v)?;
        if hp.qk_norm {
            self.sized(&mut a.q, n * qd)?;
            self.sized(&mut a.k, n * kvd)?;
            self.sized(&mut a.invq, n * hp.n_head)?;
            self.sized(&mut a.invk, n * hp.n_head_kv)?;
            be.rmsnorm_fwd(Norm::QHead(l), &a.qr, &mut a.q, &mut a.invq)?;
            be.rmsnorm_fwd(Norm::KHead(l), &a.kr, &mut a.k, &mut a.invk)?;
            be.tap(l, "Qcur_normed", &a.q)?;
            be.tap(l, "Kcur_normed", &a.k)?;
        }
        be.rope(self.batch, l, &mut a.q, hp.n_head, false)?;
        be.rope(self.batch, l, &mut a.k, hp.n_head_kv, false)?;
        self.sized(&mut a.att, n * qd)?;
        be.attention_fwd(self.batch, l, &a.q, &a.k, &a.v, &mut a.att, &mut a.attn)?;
        be.tap(l, "kqv_out", &a.att)?;
        self.sized(&mut a.h2, n * d)?;
        if hp.post_norms {
            self.sized(&mut a.o, n * d)?;
            self.sized(&mut a.inv_o, n)?;
            self.linear(LoraTarget::O, &a.att, &mut a.o, uo)?;
            be.tap(l, "attn_out", &a.o)?;
            be.rmsnorm_fwd(Norm::AttnPost(l), &a.o, &mut a.h2, &mut a.inv_o)?;
            be.tap(l, "attn_post_norm", &a.h2)?;
        } else {
            self.linear(LoraTarget::O, &a.att, &mut a.h2, uo)?;
            be.tap(l, "attn_out", &a.h2)?;
        }
        be.add(&mut a.h2, h)?;
        be.tap(l, "ffn_inp", &a.h2)
    }

    /// MLP half on `rows` tokens: `out = x + post(down(act(gate(xn)) · up(xn)))`,
    /// `xn = rmsnorm(x)`, `post` the post-MLP norm when the architecture has one.
    fn forward_mlp(
        &self,
        x: &B::Buf,
        m: &mut MlpActs<B>,
        out: &mut B::Buf,
        rows: usize,
    ) -> Result<()> {
        let be = self.be;
        let hp = be.hp();
        let l = self.l;
        let (d, ff) = (hp.n_embd, hp.n_ff);
        self.sized(&mut m.xn2, rows * d)?;
        self.sized(&mut m.inv2, rows)?;
        be.rmsnorm_fwd(Norm::Ffn(l), x, &mut m.xn2, &mut m.inv2)?;
        be.tap(l, "ffn_norm", &m.xn2)?;
        let [ug, uu, udn] = &mut m.lora_u;
        self.sized(&mut m.g, rows * ff)?;
        self.sized(&mut m.u, rows * ff)?;
        self.linear(LoraTarget::Gate, &m.xn2, &mut m.g, ug)?;
        self.linear(LoraTarget::Up, &m.xn2, &mut m.u, uu)?;
        be.tap(l, "ffn_gate", &m.g)?;
        be.tap(l, "ffn_up", &m.u)?;
        self.sized(&mut m.act, rows * ff)?;
        be.glu_fwd(hp.ffn_act, &m.g, &m.u, &mut m.act)?;
        let act_name = match hp.ffn_act {
            FfnAct::Silu => "ffn_swiglu",
            FfnAct::GeluTanh => "ffn_geglu",
        };
        be.tap(l, act_name, &m.act)?;
        if hp.post_norms {
            self.sized(&mut m.f, rows * d)?;
            self.sized(&mut m.inv_f, rows)?;
            self.linear(LoraTarget::Down, &m.act, &mut m.f, udn)?;
            be.tap(l, "ffn_out", &m.f)?;
            be.rmsnorm_fwd(Norm::FfnPost(l), &m.f, out, &mut m.inv_f)?;
            be.tap(l, "ffn_post_norm", out)?;
        } else {
            self.linear(LoraTarget::Down, &m.act, out, udn)?;
            be.tap(l, "ffn_out", out)?;
        }
        be.add(out, x)?;
        be.tap(l, "l_out", out)
    }

    /// Backward of [`Block::forward_mlp`] on `rows` tokens with input `x`: LoRA gradients of
    /// gate, up and down into `grads`, and `dx += ∂L/∂x` through the norm (the residual part
    /// of `dx` is the caller's).
    #[allow(clippy::too_many_arguments)]
    fn backward_mlp(
        &self,
        x: &B::Buf,
        m: &MlpActs<B>,
        dy: &B::Buf,
        dx: &mut B::Buf,
        g: &mut MlpGrads<B>,
        grads: &mut B::Lora,
        rows: usize,
    ) -> Result<()> {
        let be = self.be;
        let hp = be.hp();
        let (d, ff) = (hp.n_embd, hp.n_ff);
        let [ug, uu, udn] = &m.lora_u;
        if hp.post_norms {
            self.sized(&mut g.df, rows * d)?;
            be.fill_zero(&mut g.df)?;
            be.rmsnorm_bwd(Norm::FfnPost(self.l), &m.f, &m.inv_f, dy, &mut g.df)?;
        }
        let d_down = if hp.post_norms { &g.df } else { dy };
        self.sized(&mut g.dact, rows * ff)?;
        self.linear_bwd(
            LoraTarget::Down,
            &m.act,
            udn,
            d_down,
            &mut g.dact,
            false,
            &mut g.dlora,
            grads,
        )?;
        self.sized(&mut g.dg, rows * ff)?;
        self.sized(&mut g.du, rows * ff)?;
        be.glu_bwd(hp.ffn_act, &m.g, &m.u, &g.dact, &mut g.dg, &mut g.du)?;
        self.sized(&mut g.dxn, rows * d)?;
        self.linear_bwd(
            LoraTarget::Gate,
            &m.xn2,
            ug,
            &g.dg,
            &mut g.dxn,
            false,
            &mut g.dlora,
            grads,
        )?;
        self.linear_bwd(
            LoraTarget::Up,
            &m.xn2,
            uu,
            &g.du,
            &mut g.dxn,
            true,
            &mut g.dlora,
            grads,
        )?;
        be.rmsnorm_bwd(Norm::Ffn(self.l), x, &m.inv2, &g.dxn, dx)
    }

    /// Given `dh` = ∂L/∂(block output), accumulates LoRA gradients into `grads` and
    /// overwrites `dh` with ∂L/∂(block input). `h` is the block input and `a` the
    /// activations of [`Block::recompute`] on it.
    pub fn backward(
        &self,
        h: &B::Buf,
        a: &mut Acts<B>,
        g: &mut Grads<B>,
        dh: &mut B::Buf,
        grads: &mut B::Lora,
    ) -> Result<()> {
        let be = self.be;
        let hp = be.hp();
        let (n, l) = (self.n, self.l);
        let (d, qd, kvd) = (hp.n_embd, hp.q_dim(), hp.kv_dim());
        // MLP: out = h2 + mlp(h2)
        self.sized(&mut g.dh2, n * d)?;
        be.copy(dh, &mut g.dh2)?;
        if !self.chunked() {
            self.backward_mlp(&a.h2, &a.mlp, dh, &mut g.dh2, &mut g.m, grads, n)?;
        } else {
            for (r0, rows) in self.mlp_chunks() {
                for b in [&mut a.hc, &mut a.oc, &mut a.dyc, &mut a.dxc] {
                    self.sized(b, rows * d)?;
                }
                be.copy_rows(&a.h2, r0, &mut a.hc, 0, rows, d)?;
                self.forward_mlp(&a.hc, &mut a.mlp, &mut a.oc, rows)?;
                be.copy_rows(dh, r0, &mut a.dyc, 0, rows, d)?;
                be.copy_rows(&g.dh2, r0, &mut a.dxc, 0, rows, d)?;
                self.backward_mlp(&a.hc, &a.mlp, &a.dyc, &mut a.dxc, &mut g.m, grads, rows)?;
                be.copy_rows(&a.dxc, 0, &mut g.dh2, r0, rows, d)?;
            }
        }
        let [uq, uk, uv, uo] = &a.lora_u;
        // Attention: h2 = h + post(o(att))
        if hp.post_norms {
            self.sized(&mut g.d_o, n * d)?;
            be.fill_zero(&mut g.d_o)?;
            be.rmsnorm_bwd(Norm::AttnPost(l), &a.o, &a.inv_o, &g.dh2, &mut g.d_o)?;
        }
        self.sized(&mut g.datt, n * qd)?;
        self.linear_bwd(
            LoraTarget::O,
            &a.att,
            uo,
            if hp.post_norms { &g.d_o } else { &g.dh2 },
            &mut g.datt,
            false,
            &mut g.m.dlora,
            grads,
        )?;
        self.sized(&mut g.dq, n * qd)?;
        self.sized(&mut g.dk, n * kvd)?;
        self.sized(&mut g.dv, n * kvd)?;
        be.attention_bwd(
            self.batch,
            l,
            &a.q,
            &a.k,
            &a.v,
            &g.datt,
            &mut a.attn,
            &mut g.dq,
            &mut g.dk,
            &mut g.dv,
        )?;
        be.rope(self.batch, l, &mut g.dq, hp.n_head, true)?;
        be.rope(self.batch, l, &mut g.dk, hp.n_head_kv, true)?;
        if hp.qk_norm {
            self.sized(&mut g.dqr, n * qd)?;
            self.sized(&mut g.dkr, n * kvd)?;
            be.fill_zero(&mut g.dqr)?;
            be.fill_zero(&mut g.dkr)?;
            be.rmsnorm_bwd(Norm::QHead(l), &a.qr, &a.invq, &g.dq, &mut g.dqr)?;
            be.rmsnorm_bwd(Norm::KHead(l), &a.kr, &a.invk, &g.dk, &mut g.dkr)?;
        }
        let (dq_lin, dk_lin) = if hp.qk_norm {
            (&g.dqr, &g.dkr)
        } else {
            (&g.dq, &g.dk)
        };
        self.sized(&mut g.m.dxn, n * d)?;
        self.linear_bwd(
            LoraTarget::Q,
            &a.xn1,
            uq,
            dq_lin,
            &mut g.m.dxn,
            false,
            &mut g.m.dlora,
            grads,
        )?;
        self.linear_bwd(
            LoraTarget::K,
            &a.xn1,
            uk,
            dk_lin,
            &mut g.m.dxn,
            true,
            &mut g.m.dlora,
            grads,
        )?;
        self.linear_bwd(
            LoraTarget::V,
            &a.xn1,
            uv,
            &g.dv,
            &mut g.m.dxn,
            true,
            &mut g.m.dlora,
            grads,
        )?;
        be.rmsnorm_bwd(Norm::Attn(l), h, &a.inv1, &g.m.dxn, &mut g.dh2)?;
        be.copy(&g.dh2, dh)
    }
}
