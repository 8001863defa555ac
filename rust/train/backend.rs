//! The compute seam: the operations a transformer block, the vocabulary head and the
//! optimizer need, implemented once per device (`cpu::backend`, `cuda::backend`).
//!
//! The model code (`model::block`, `model::run`) is written once against [`Backend`]: the
//! order of operations, the LoRA wiring, layer-wise recomputation in the backward pass and
//! the buffers kept between passes. A backend owns the numbers: where buffers live (host
//! `Vec<f32>` or device memory), how frozen weights are stored and expanded for products,
//! and how each kernel runs. A new architecture is a change of the model code only.
//!
//! Conventions: activations are `f32`, token-major `[T, width]`; every `Buf` argument has a
//! length (set by [`Backend::resize`]) and ops that write a buffer expect it sized. Frozen
//! linear weights are `[out, in]` (ggml rows); `y = x Wᵀ`.

use crate::train::error::Result;
use crate::train::lora::LoraTarget;
use crate::train::model::layout::Layout;
use crate::train::weights::FfnAct;

/// A norm weight of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Norm {
    /// `blk.{l}.attn_norm`.
    Attn(usize),
    /// `blk.{l}.ffn_norm`.
    Ffn(usize),
    /// `output_norm`.
    Output,
    /// `blk.{l}.attn_q_norm`: over each query head (`head_dim` wide).
    QHead(usize),
    /// `blk.{l}.attn_k_norm`: over each key head (`head_dim` wide).
    KHead(usize),
    /// `blk.{l}.post_attention_norm`: the attention output before the residual add.
    AttnPost(usize),
    /// `blk.{l}.post_ffw_norm`: the MLP output before the residual add.
    FfnPost(usize),
}

impl Norm {
    /// The GGUF tensor name of the norm's weights.
    pub fn name(self) -> String {
        match self {
            Norm::Attn(l) => format!("blk.{l}.attn_norm"),
            Norm::Ffn(l) => format!("blk.{l}.ffn_norm"),
            Norm::Output => "output_norm".into(),
            Norm::QHead(l) => format!("blk.{l}.attn_q_norm"),
            Norm::KHead(l) => format!("blk.{l}.attn_k_norm"),
            Norm::AttnPost(l) => format!("blk.{l}.post_attention_norm"),
            Norm::FfnPost(l) => format!("blk.{l}.post_ffw_norm"),
        }
    }
}

/// Scratch the vocabulary head used, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeadScratch {
    /// A chunk of the output projection expanded for products.
    pub weight: usize,
    /// Logit chunks and gathered rows.
    pub logits: usize,
}

/// The device operations of the trainer. See the module docs for conventions.
pub(crate) trait Backend: Sync {
    /// An `f32` buffer with a length.
    type Buf: Default + Send;
    /// One block's frozen weights, prepared for products (reused from block to block).
    type Layer: Default + Send;
    /// LoRA tensors (parameters or gradients) in the backend's memory.
    type Lora: Sync;
    /// Per-call data of a batch: positions, sequence bounds, scored rows, RoPE tables.
    type Batch;
    /// Attention intermediates kept from forward to backward (reused from block to block).
    type AttnCache: Default + Send;
    /// Block inputs kept for recomputation (`f32`, or a compact format).
    type Ckpt: Default + Send;

    /// Model dimensions.
    fn hp(&self) -> &crate::train::weights::HyperParams;

    /// Per-call data of `lay`.
    fn batch(&self, lay: &Layout) -> Result<Self::Batch>;

    /// Sets the length of `b` to `n` (contents unspecified; storage grows, never shrinks).
    fn resize(&self, b: &mut Self::Buf, n: usize) -> Result<()>;
    /// Bytes held by `b`.
    fn bytes(&self, b: &Self::Buf) -> usize;
    /// `dst = src` (same length).
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf) -> Result<()>;
    /// Copies `rows` rows of `width` values from row `src_row` of `src` to row `dst_row` of
    /// `dst`.
    fn copy_rows(
        &self,
        src: &Self::Buf,
        src_row: usize,
        dst: &mut Self::Buf,
        dst_row: usize,
        rows: usize,
        width: usize,
    ) -> Result<()>;
    /// Sets the length of a checkpoint store to `n` values.
    fn ckpt_resize(&self, c: &mut Self::Ckpt, n: usize) -> Result<()>;
    /// Bytes held by a checkpoint store.
    fn ckpt_bytes(&self, c: &Self::Ckpt) -> usize;
    /// Stores `rows` rows of `width` values of `src` at row `row0` of the store.
    fn ckpt_store(
        &self,
        src: &Self::Buf,
        c: &mut Self::Ckpt,
        row0: usize,
        rows: usize,
        width: usize,
    ) -> Result<()>;
    /// Loads `rows` rows of `width` values from row `row0` of the store into `dst`.
    fn ckpt_load(
        &self,
        c: &Self::Ckpt,
        row0: usize,
        dst: &mut Self::Buf,
        rows: usize,
        width: usize,
    ) -> Result<()>;
    /// Tokens whose MLP intermediates are computed at a time (0 = all).
    fn mlp_chunk(&self) -> usize {
        0
    }
    /// Sets every value of `b` to 0.
    fn fill_zero(&self, b: &mut Self::Buf) -> Result<()>;
    /// `dst += src` element-wise (same length).
    fn add(&self, dst: &mut Self::Buf, src: &Self::Buf) -> Result<()>;
    /// The buffer's values on the host (diagnostics and tests).
    fn to_host(&self, b: &Self::Buf) -> Result<Vec<f32>>;

    /// Token embeddings of the batch, times `hp().embd_scale`, into `out` (`[T, d]`, sized).
    fn embed(&self, batch: &Self::Batch, out: &mut Self::Buf) -> Result<()>;
    /// Prepares block `l`'s frozen weights in `dst`.
    fn load_layer(&self, l: usize, dst: &mut Self::Layer) -> Result<()>;
    /// Bytes held by a prepared layer.
    fn layer_bytes(&self, layer: &Self::Layer) -> usize;

    /// `y = x · inv_rms(x) · w` per row of the norm's width (`n_embd`, or `head_dim` for the
    /// head norms); `inv` receives `1/rms` per row.
    fn rmsnorm_fwd(
        &self,
        w: Norm,
        x: &Self::Buf,
        y: &mut Self::Buf,
        inv: &mut Self::Buf,
    ) -> Result<()>;
    /// `dx += Jᵀ dy` of [`Backend::rmsnorm_fwd`] (the weight is frozen).
    fn rmsnorm_bwd(
        &self,
        w: Norm,
        x: &Self::Buf,
        inv: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<()>;
    /// Adds the bias of `t` in block `l` to every row of `x`, if the model has one.
    fn add_bias(&self, l: usize, t: LoraTarget, x: &mut Self::Buf) -> Result<()>;

    /// `y = x Wᵀ (+ s (x Aᵀ) Bᵀ)` for target `t` of block `l`; keeps `x Aᵀ` in `u`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        layer: &Self::Layer,
        l: usize,
        t: LoraTarget,
        lora: Option<&Self::Lora>,
        x: &Self::Buf,
        y: &mut Self::Buf,
        u: &mut Self::Buf,
    ) -> Result<()>;
    /// Backward of [`Backend::linear`]: `dx (+)= dy W (+ s dy B A)`; LoRA gradients of
    /// `(l, t)` accumulated into `grads`. `du` is scratch.
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        layer: &Self::Layer,
        l: usize,
        t: LoraTarget,
        lora: Option<&Self::Lora>,
        x: &Self::Buf,
        u: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        accumulate: bool,
        du: &mut Self::Buf,
        grads: &mut Self::Lora,
    ) -> Result<()>;

    /// Rotates `x` (`[T, n_heads · head_dim]`) in place at the batch's positions with layer
    /// `l`'s RoPE base; `inverse` applies the transpose rotation (backward).
    fn rope(
        &self,
        batch: &Self::Batch,
        l: usize,
        x: &mut Self::Buf,
        n_heads: usize,
        inverse: bool,
    ) -> Result<()>;

    /// Causal grouped-query attention of layer `l` per sequence:
    /// `out = softmax(q kᵀ · attn_scale) v` over the keys the layer's window lets each query
    /// see (`hp().window(l)`), token-major `[T, heads · hd]` in and out; keeps what backward
    /// needs in `cache`.
    #[allow(clippy::too_many_arguments)]
    fn attention_fwd(
        &self,
        batch: &Self::Batch,
        l: usize,
        q: &Self::Buf,
        k: &Self::Buf,
        v: &Self::Buf,
        out: &mut Self::Buf,
        cache: &mut Self::AttnCache,
    ) -> Result<()>;
    /// Backward of [`Backend::attention_fwd`] (after it ran on the same inputs): overwrites
    /// `dq`, `dk`, `dv` (token-major).
    #[allow(clippy::too_many_arguments)]
    fn attention_bwd(
        &self,
        batch: &Self::Batch,
        l: usize,
        q: &Self::Buf,
        k: &Self::Buf,
        v: &Self::Buf,
        dout: &Self::Buf,
        cache: &mut Self::AttnCache,
        dq: &mut Self::Buf,
        dk: &mut Self::Buf,
        dv: &mut Self::Buf,
    ) -> Result<()>;
    /// Bytes held by an attention cache.
    fn attn_cache_bytes(&self, cache: &Self::AttnCache) -> usize;

    /// `out = act(g) · u` element-wise.
    fn glu_fwd(&self, act: FfnAct, g: &Self::Buf, u: &Self::Buf, out: &mut Self::Buf)
        -> Result<()>;
    /// Backward of [`Backend::glu_fwd`]: overwrites `dg` and `du`.
    fn glu_bwd(
        &self,
        act: FfnAct,
        g: &Self::Buf,
        u: &Self::Buf,
        dout: &Self::Buf,
        dg: &mut Self::Buf,
        du: &mut Self::Buf,
    ) -> Result<()>;

    /// Log-probs of the batch's scored targets from the final normalised hidden states `xf`
    /// (`[T, d]`), the output projection applied in vocabulary chunks (never a `[T, vocab]`
    /// matrix). Writes `logp` (host, one per scored row), the log-sum-exp of every scored row
    /// into `lse` (for [`Backend::head_bwd`]) and, when given, the argmax token and the
    /// entropy (nats) of the predicted distribution of each row.
    fn head_fwd(
        &self,
        batch: &Self::Batch,
        xf: &Self::Buf,
        logp: &mut [f32],
        lse: &mut Self::Buf,
        argmax: Option<&mut [u32]>,
        entropy: Option<&mut [f32]>,
    ) -> Result<HeadScratch>;
    /// `dxf[row] += Σ dlogp · (e_target − softmax)ᵀ W` over the scored rows, with `lse` from
    /// [`Backend::head_fwd`] on the same `xf`. `dxf` is sized `[T, d]`.
    fn head_bwd(
        &self,
        batch: &Self::Batch,
        xf: &Self::Buf,
        lse: &Self::Buf,
        dlogp: &[f32],
        dxf: &mut Self::Buf,
    ) -> Result<()>;

    /// Diagnostics: sees a block intermediate named as in llama.cpp's graph. Default: nothing.
    fn tap(&self, _l: usize, _name: &str, _v: &Self::Buf) -> Result<()> {
        Ok(())
    }
}
