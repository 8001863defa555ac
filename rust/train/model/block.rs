//! One transformer block (llama / qwen2: pre-norm attention with RoPE and GQA, pre-norm
//! SwiGLU MLP), forward and LoRA backward, written once over the compute seam
//! ([`Backend`]).

use crate::train::backend::{Backend, Norm};
use crate::train::error::Result;
use crate::train::lora::LoraTarget;

/// Activations of one block for a batch of T tokens (reused across blocks).
pub(crate) struct Acts<B: Backend> {
    pub xn1: B::Buf,
    pub inv1: B::Buf,
    pub q: B::Buf,
    pub k: B::Buf,
    pub v: B::Buf,
    pub att: B::Buf,
    pub h2: B::Buf,
    pub xn2: B::Buf,
    pub inv2: B::Buf,
    pub g: B::Buf,
    pub u: B::Buf,
    pub act: B::Buf,
    /// `x Aᵀ` per target (`[T, r]`), kept for the backward pass.
    pub lora_u: [B::Buf; 7],
    pub attn: B::AttnCache,
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
            xn2: B::Buf::default(),
            inv2: B::Buf::default(),
            g: B::Buf::default(),
            u: B::Buf::default(),
            act: B::Buf::default(),
            lora_u: Default::default(),
            attn: B::AttnCache::default(),
        }
    }
}

impl<B: Backend> Acts<B> {
    pub fn bytes(&self, be: &B) -> usize {
        [
            &self.xn1, &self.inv1, &self.q, &self.k, &self.v, &self.att, &self.h2, &self.xn2,
            &self.inv2, &self.g, &self.u, &self.act,
        ]
        .iter()
        .chain(self.lora_u.iter().collect::<Vec<_>>().iter())
        .map(|b| be.bytes(b))
        .sum::<usize>()
            + be.attn_cache_bytes(&self.attn)
    }
}

/// Gradient scratch of one block (reused across blocks).
pub(crate) struct Grads<B: Backend> {
    pub dh2: B::Buf,
    pub dxn: B::Buf,
    pub datt: B::Buf,
    pub dq: B::Buf,
    pub dk: B::Buf,
    pub dv: B::Buf,
    pub dact: B::Buf,
    pub dg: B::Buf,
    pub du: B::Buf,
    pub dlora: B::Buf,
}

impl<B: Backend> Default for Grads<B> {
    fn default() -> Self {
        Grads {
            dh2: B::Buf::default(),
            dxn: B::Buf::default(),
            datt: B::Buf::default(),
            dq: B::Buf::default(),
            dk: B::Buf::default(),
            dv: B::Buf::default(),
            dact: B::Buf::default(),
            dg: B::Buf::default(),
            du: B::Buf::default(),
            dlora: B::Buf::default(),
        }
    }
}

impl<B: Backend> Grads<B> {
    pub fn bytes(&self, be: &B) -> usize {
        [
            &self.dh2,
            &self.dxn,
            &self.datt,
            &self.dq,
            &self.dk,
            &self.dv,
            &self.dact,
            &self.dg,
            &self.du,
            &self.dlora,
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
}

impl<B: Backend> Block<'_, B> {
    fn sized<'b>(&self, b: &'b mut B::Buf, n: usize) -> Result<&'b mut B::Buf> {
        self.be.resize(b, n)?;
        Ok(b)
    }

    fn linear(&self, t: LoraTarget, x: &B::Buf, y: &mut B::Buf, u: &mut B::Buf) -> Result<()> {
        self.be.linear(self.layer, self.l, t, self.lora, x, y, u)
    }

    /// Runs the block on `h` (`[T, d]`), writing the output into `out` (sized by the caller)
    /// and keeping every activation needed by [`Block::backward`] in `a`.
    pub fn forward(&self, h: &B::Buf, a: &mut Acts<B>, out: &mut B::Buf) -> Result<()> {
        let be = self.be;
        let hp = be.hp();
        let (n, l) = (self.n, self.l);
        let (d, qd, kvd, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff);
        self.sized(&mut a.xn1, n * d)?;
        self.sized(&mut a.inv1, n)?;
        be.rmsnorm_fwd(Norm::Attn(l), h, &mut a.xn1, &mut a.inv1)?;
        be.tap(l, "attn_norm", &a.xn1)?;
        let [uq, uk, uv, uo, ug, uu, udn] = &mut a.lora_u;
        self.sized(&mut a.q, n * qd)?;
        self.sized(&mut a.k, n * kvd)?;
        self.sized(&mut a.v, n * kvd)?;
        self.linear(LoraTarget::Q, &a.xn1, &mut a.q, uq)?;
        self.linear(LoraTarget::K, &a.xn1, &mut a.k, uk)?;
        self.linear(LoraTarget::V, &a.xn1, &mut a.v, uv)?;
        be.add_bias(l, LoraTarget::Q, &mut a.q)?;
        be.add_bias(l, LoraTarget::K, &mut a.k)?;
        be.add_bias(l, LoraTarget::V, &mut a.v)?;
        be.tap(l, "Qcur", &a.q)?;
        be.tap(l, "Kcur", &a.k)?;
        be.tap(l, "Vcur", &a.v)?;
        be.rope(self.batch, &mut a.q, hp.n_head, false)?;
        be.rope(self.batch, &mut a.k, hp.n_head_kv, false)?;
        self.sized(&mut a.att, n * qd)?;
        be.attention_fwd(self.batch, &a.q, &a.k, &a.v, &mut a.att, &mut a.attn)?;
        be.tap(l, "kqv_out", &a.att)?;
        self.sized(&mut a.h2, n * d)?;
        self.linear(LoraTarget::O, &a.att, &mut a.h2, uo)?;
        be.tap(l, "attn_out", &a.h2)?;
        be.add(&mut a.h2, h)?;
        be.tap(l, "ffn_inp", &a.h2)?;
        self.sized(&mut a.xn2, n * d)?;
        self.sized(&mut a.inv2, n)?;
        be.rmsnorm_fwd(Norm::Ffn(l), &a.h2, &mut a.xn2, &mut a.inv2)?;
        be.tap(l, "ffn_norm", &a.xn2)?;
        self.sized(&mut a.g, n * ff)?;
        self.sized(&mut a.u, n * ff)?;
        self.linear(LoraTarget::Gate, &a.xn2, &mut a.g, ug)?;
        self.linear(LoraTarget::Up, &a.xn2, &mut a.u, uu)?;
        be.tap(l, "ffn_gate", &a.g)?;
        be.tap(l, "ffn_up", &a.u)?;
        self.sized(&mut a.act, n * ff)?;
        be.swiglu_fwd(&a.g, &a.u, &mut a.act)?;
        be.tap(l, "ffn_swiglu", &a.act)?;
        self.linear(LoraTarget::Down, &a.act, out, udn)?;
        be.tap(l, "ffn_out", out)?;
        be.add(out, &a.h2)?;
        be.tap(l, "l_out", out)
    }

    /// Given `dh` = ∂L/∂(block output), accumulates LoRA gradients into `grads` and
    /// overwrites `dh` with ∂L/∂(block input). `h` is the block input and `a` the
    /// activations of [`Block::forward`] on it.
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
        let (d, qd, kvd, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff);
        let lb = |t: LoraTarget,
                  x: &B::Buf,
                  u: &B::Buf,
                  dy: &B::Buf,
                  dx: &mut B::Buf,
                  acc: bool,
                  du: &mut B::Buf,
                  grads: &mut B::Lora| {
            be.linear_bwd(self.layer, l, t, self.lora, x, u, dy, dx, acc, du, grads)
        };
        let [uq, uk, uv, uo, ug, uu, udn] = &a.lora_u;
        // MLP: out = h2 + down(swiglu(gate(xn2), up(xn2)))
        self.sized(&mut g.dh2, n * d)?;
        be.copy(dh, &mut g.dh2)?;
        self.sized(&mut g.dact, n * ff)?;
        lb(
            LoraTarget::Down,
            &a.act,
            udn,
            dh,
            &mut g.dact,
            false,
            &mut g.dlora,
            grads,
        )?;
        self.sized(&mut g.dg, n * ff)?;
        self.sized(&mut g.du, n * ff)?;
        be.swiglu_bwd(&a.g, &a.u, &g.dact, &mut g.dg, &mut g.du)?;
        self.sized(&mut g.dxn, n * d)?;
        lb(
            LoraTarget::Gate,
            &a.xn2,
            ug,
            &g.dg,
            &mut g.dxn,
            false,
            &mut g.dlora,
            grads,
        )?;
        lb(
            LoraTarget::Up,
            &a.xn2,
            uu,
            &g.du,
            &mut g.dxn,
            true,
            &mut g.dlora,
            grads,
        )?;
        be.rmsnorm_bwd(Norm::Ffn(l), &a.h2, &a.inv2, &g.dxn, &mut g.dh2)?;
        // Attention: h2 = h + o(att)
        self.sized(&mut g.datt, n * qd)?;
        lb(
            LoraTarget::O,
            &a.att,
            uo,
            &g.dh2,
            &mut g.datt,
            false,
            &mut g.dlora,
            grads,
        )?;
        self.sized(&mut g.dq, n * qd)?;
        self.sized(&mut g.dk, n * kvd)?;
        self.sized(&mut g.dv, n * kvd)?;
        be.attention_bwd(
            self.batch,
            &a.q,
            &a.k,
            &a.v,
            &g.datt,
            &mut a.attn,
            &mut g.dq,
            &mut g.dk,
            &mut g.dv,
        )?;
        be.rope(self.batch, &mut g.dq, hp.n_head, true)?;
        be.rope(self.batch, &mut g.dk, hp.n_head_kv, true)?;
        lb(
            LoraTarget::Q,
            &a.xn1,
            uq,
            &g.dq,
            &mut g.dxn,
            false,
            &mut g.dlora,
            grads,
        )?;
        lb(
            LoraTarget::K,
            &a.xn1,
            uk,
            &g.dk,
            &mut g.dxn,
            true,
            &mut g.dlora,
            grads,
        )?;
        lb(
            LoraTarget::V,
            &a.xn1,
            uv,
            &g.dv,
            &mut g.dxn,
            true,
            &mut g.dlora,
            grads,
        )?;
        be.rmsnorm_bwd(Norm::Attn(l), h, &a.inv1, &g.dxn, &mut g.dh2)?;
        be.copy(&g.dh2, dh)
    }
}
