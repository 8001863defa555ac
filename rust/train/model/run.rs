//! The whole model over the compute seam: embeddings, blocks, final norm and the vocabulary
//! head; the log-prob forward and the layer-wise recomputing backward. Written once for every
//! [`Backend`].

use super::block::{Acts, Block, Grads};
use super::layout::Layout;
use super::MemoryReport;
use crate::train::backend::{Backend, Norm};
use crate::train::error::{Result, TrainError};

/// Buffers of one forward/backward call, kept between calls by backends that want to reuse
/// them (no allocation in the per-layer loops either way).
pub(crate) struct Workspace<B: Backend> {
    pub layer: B::Layer,
    pub acts: Acts<B>,
    pub grads: Grads<B>,
    /// Block inputs `h_0 … h_L` kept for recomputation, one `[(L + 1)·T, d]` buffer (one
    /// allocation: a single large block, returned whole when freed).
    pub hs: B::Ckpt,
    /// The block input and output being worked on.
    pub cur: B::Buf,
    pub nxt: B::Buf,
    pub xf: B::Buf,
    pub inv: B::Buf,
    pub lse: B::Buf,
    pub dh: B::Buf,
    pub out: B::Buf,
}

impl<B: Backend> Default for Workspace<B> {
    fn default() -> Self {
        Workspace {
            layer: B::Layer::default(),
            acts: Acts::default(),
            grads: Grads::default(),
            hs: B::Ckpt::default(),
            cur: B::Buf::default(),
            nxt: B::Buf::default(),
            xf: B::Buf::default(),
            inv: B::Buf::default(),
            lse: B::Buf::default(),
            dh: B::Buf::default(),
            out: B::Buf::default(),
        }
    }
}

/// The log-probs (and, when `want_argmax`, the argmax tokens) of `lay`'s scored positions,
/// flat in output order. `on_layer(l, out)` sees every block's output.
pub(crate) fn forward<B: Backend>(
    be: &B,
    ws: &mut Workspace<B>,
    lora: Option<&B::Lora>,
    lay: &Layout,
    want_argmax: bool,
    mut on_layer: impl FnMut(usize, &B::Buf) -> Result<()>,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let hp = be.hp().clone();
    let batch = be.batch(lay)?;
    let (n, d) = (lay.n_tokens(), hp.n_embd);
    be.resize(&mut ws.cur, n * d)?;
    be.resize(&mut ws.nxt, n * d)?;
    let (mut h, mut next) = (&mut ws.cur, &mut ws.nxt);
    be.embed(&batch, h)?;
    for l in 0..hp.n_layer {
        be.load_layer(l, &mut ws.layer)?;
        let blk = Block {
            be,
            batch: &batch,
            layer: &ws.layer,
            l,
            lora,
            n,
            mlp_chunk: be.mlp_chunk(),
        };
        blk.forward(h, &mut ws.acts, next)?;
        std::mem::swap(&mut h, &mut next);
        on_layer(l, h)?;
    }
    be.resize(&mut ws.xf, n * d)?;
    be.resize(&mut ws.inv, n)?;
    be.rmsnorm_fwd(Norm::Output, h, &mut ws.xf, &mut ws.inv)?;
    let mut out = vec![0f32; lay.scored.len()];
    let mut arg = vec![0u32; if want_argmax { lay.scored.len() } else { 0 }];
    be.resize(&mut ws.lse, lay.scored.len())?;
    be.head_fwd(
        &batch,
        &ws.xf,
        &mut out,
        &mut ws.lse,
        want_argmax.then_some(&mut arg[..]),
        None,
    )?;
    Ok((out, arg))
}

/// What [`forward_backward`] returns: the loss, the per-sequence log-probs (and entropies,
/// when asked) it saw, memory.
pub(crate) struct FbOutput {
    pub loss: f64,
    pub logprobs: Vec<Vec<f32>>,
    pub entropies: Vec<Vec<f32>>,
    pub memory: MemoryReport,
}

/// Forward, loss, and layer-wise recomputing backward; LoRA gradients are **added** to
/// `grads`. `loss` maps per-sequence log-probs and entropies (empty unless `want_entropy`)
/// to `(loss, ∂loss/∂logprobs)`; the entropies carry no gradient.
pub(crate) fn forward_backward<B: Backend, F>(
    be: &B,
    ws: &mut Workspace<B>,
    lora: &B::Lora,
    lay: &Layout,
    want_entropy: bool,
    loss: F,
    grads: &mut B::Lora,
) -> Result<FbOutput>
where
    F: FnOnce(&[Vec<f32>], &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)>,
{
    let hp = be.hp().clone();
    let batch = be.batch(lay)?;
    let (n, d, nl) = (lay.n_tokens(), hp.n_embd, hp.n_layer);
    be.ckpt_resize(&mut ws.hs, (nl + 1) * n * d)?;
    be.resize(&mut ws.cur, n * d)?;
    be.resize(&mut ws.nxt, n * d)?;
    be.embed(&batch, &mut ws.cur)?;
    be.ckpt_store(&ws.cur, &mut ws.hs, 0, n, d)?;
    for l in 0..nl {
        be.load_layer(l, &mut ws.layer)?;
        let blk = Block {
            be,
            batch: &batch,
            layer: &ws.layer,
            l,
            lora: Some(lora),
            n,
            mlp_chunk: be.mlp_chunk(),
        };
        blk.forward(&ws.cur, &mut ws.acts, &mut ws.nxt)?;
        be.ckpt_store(&ws.nxt, &mut ws.hs, (l + 1) * n, n, d)?;
        std::mem::swap(&mut ws.cur, &mut ws.nxt);
    }
    be.resize(&mut ws.xf, n * d)?;
    be.resize(&mut ws.inv, n)?;
    be.rmsnorm_fwd(Norm::Output, &ws.cur, &mut ws.xf, &mut ws.inv)?;
    let mut lp = vec![0f32; lay.scored.len()];
    let mut ent = vec![0f32; if want_entropy { lay.scored.len() } else { 0 }];
    be.resize(&mut ws.lse, lay.scored.len())?;
    let head_scratch = be.head_fwd(
        &batch,
        &ws.xf,
        &mut lp,
        &mut ws.lse,
        None,
        want_entropy.then_some(&mut ent[..]),
    )?;
    let logprobs = lay.split(&lp);
    let entropies = if want_entropy {
        lay.split(&ent)
    } else {
        Vec::new()
    };
    let (loss_val, dlp) = loss(&logprobs, &entropies)?;
    if dlp.len() != logprobs.len() || dlp.iter().zip(&logprobs).any(|(a, b)| a.len() != b.len()) {
        return Err(TrainError::shape(
            "loss gradient",
            lay.n_out.clone(),
            dlp.iter().map(Vec::len).collect::<Vec<_>>(),
        ));
    }
    let dflat: Vec<f32> = dlp.into_iter().flatten().collect();
    // ∂L/∂xf into `out` (zeroed: the head accumulates), then through the final norm.
    be.resize(&mut ws.out, n * d)?;
    be.resize(&mut ws.dh, n * d)?;
    be.fill_zero(&mut ws.out)?;
    be.head_bwd(&batch, &ws.xf, &ws.lse, &dflat, &mut ws.out)?;
    be.fill_zero(&mut ws.dh)?;
    be.rmsnorm_bwd(Norm::Output, &ws.cur, &ws.inv, &ws.out, &mut ws.dh)?;
    for l in (0..nl).rev() {
        be.load_layer(l, &mut ws.layer)?;
        let blk = Block {
            be,
            batch: &batch,
            layer: &ws.layer,
            l,
            lora: Some(lora),
            n,
            mlp_chunk: be.mlp_chunk(),
        };
        be.ckpt_load(&ws.hs, l * n, &mut ws.cur, n, d)?;
        blk.recompute(&ws.cur, &mut ws.acts, &mut ws.out)?;
        blk.backward(&ws.cur, &mut ws.acts, &mut ws.grads, &mut ws.dh, grads)?;
    }
    let bytes = |bs: &[&B::Buf]| bs.iter().map(|b| be.bytes(b)).sum::<usize>();
    let memory = MemoryReport {
        base_weights: 0,
        dense_layer: be.layer_bytes(&ws.layer),
        dense_head: head_scratch.weight,
        checkpoints: be.ckpt_bytes(&ws.hs)
            + bytes(&[&ws.cur, &ws.nxt, &ws.dh, &ws.out, &ws.xf, &ws.inv, &ws.lse]),
        activations: ws.acts.bytes(be),
        grad_scratch: ws.grads.bytes(be),
        logits_scratch: head_scratch.logits,
        lora: 0,
    };
    Ok(FbOutput {
        loss: loss_val,
        logprobs,
        entropies,
        memory,
    })
}
