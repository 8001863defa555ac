//! The transformer (llama / qwen2) over frozen GGUF weights with optional LoRA: per-token
//! log-probs forward, and a layer-wise recomputing backward that yields LoRA gradients.

mod head;
mod layer;
pub mod layout;

pub use layer::Tap;

use std::sync::Arc;

use crate::train::cpu::actquant::{round_activations, ActRounding};
use crate::train::cpu::ops::{rmsnorm_bwd, rmsnorm_fwd};
use crate::train::cpu::rope::RopeTable;
use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraWeights;
use crate::train::weights::GgufModel;
use layer::{Acts, BlockCtx, DenseLayer, Grads};
use layout::Layout;
pub use layout::{JoinedSeqs, SeqRef};

/// Memory used by the last [`Transformer::forward_backward`] call, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Frozen base weights in their stored types.
    pub base_weights: usize,
    /// One block's weights dequantized to f32.
    pub dense_layer: usize,
    /// Output projection dequantized to f32.
    pub dense_head: usize,
    /// Block inputs kept for recomputation (`(n_layer + 1) × T × d` floats).
    pub checkpoints: usize,
    /// One block's activations.
    pub activations: usize,
    /// One block's gradient scratch.
    pub grad_scratch: usize,
    /// Logit chunk scratch (`chunk × vocab` floats, ×2 in backward).
    pub logits_scratch: usize,
    /// LoRA parameters + gradients.
    pub lora: usize,
}

impl MemoryReport {
    /// Sum of all parts.
    pub fn total(&self) -> usize {
        self.base_weights
            + self.dense_layer
            + self.dense_head
            + self.checkpoints
            + self.activations
            + self.grad_scratch
            + self.logits_scratch
            + self.lora
    }
}

/// Per-sequence log-probs and argmax tokens (see [`Transformer::logprobs_and_argmax`]).
pub type LogprobsArgmax = (Vec<Vec<f32>>, Vec<Vec<u32>>);

/// Output of [`Transformer::forward_backward`].
#[derive(Clone, Debug)]
pub struct ForwardBackward {
    /// The loss value returned by the loss closure.
    pub loss: f64,
    /// The log-probs the loss was computed on (per sequence, see [`SeqRef`]).
    pub logprobs: Vec<Vec<f32>>,
    pub memory: MemoryReport,
}

/// Runs the model on CPU with its own rayon pool of `n_threads` workers.
///
/// Thread-safety: `Send + Sync`; concurrent calls share the pool (each call allocates its own
/// buffers). The base model is shared read-only through `Arc`.
pub struct Transformer {
    model: Arc<GgufModel>,
    pool: rayon::ThreadPool,
    /// Rows of the vocabulary projection computed at a time (default 128).
    pub logit_chunk: usize,
    /// In [`Transformer::logprobs`] only: round the inputs of every frozen-weight product the
    /// way llama.cpp's CPU backend does for the weight's type (Q8_1 blocks for Q4_1 weights,
    /// …), to compare with llama.cpp on quantized models. Default false (f32 activations).
    pub round_acts_like_llama: bool,
    /// Diagnostics: in [`Transformer::logprobs`] and [`Transformer::layer_outputs`] only,
    /// called with every block's intermediates (see [`Tap`]). Default `None`.
    pub debug_tap: Option<Box<layer::Tap>>,
}

impl Transformer {
    /// Wraps a loaded model; `n_threads == 0` means rayon's default (all cores).
    pub fn new(model: Arc<GgufModel>, n_threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .build()
            .map_err(|e| TrainError::config(format!("thread pool: {e}")))?;
        Ok(Transformer {
            model,
            pool,
            logit_chunk: 128,
            round_acts_like_llama: false,
            debug_tap: None,
        })
    }

    /// The base model.
    pub fn model(&self) -> &GgufModel {
        &self.model
    }

    /// Worker threads.
    pub fn n_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn check_lora(&self, lora: Option<&LoraWeights>) -> Result<()> {
        match lora {
            Some(l) => l.check_model(&self.model.hp),
            None => Ok(()),
        }
    }

    fn embed(&self, lay: &Layout, h: &mut [f32]) -> Result<()> {
        let d = self.model.hp.n_embd;
        for (row, &t) in h.chunks_mut(d).zip(&lay.tokens) {
            self.model.tok_embd.dequant_rows(t as usize, row)?;
        }
        Ok(())
    }

    fn rope(&self, lay: &Layout) -> RopeTable {
        let hp = &self.model.hp;
        RopeTable::new(
            hp.head_dim,
            hp.rope_base,
            lay.max_len,
            self.model.arch.rope_neox(),
        )
    }

    /// Per-token log-probs (nats) of the given sequences, with the adapter if `lora` is `Some`
    /// (pass `None` for the reference model). Output shape: see [`SeqRef`].
    pub fn logprobs(
        &self,
        lora: Option<&LoraWeights>,
        seqs: &[SeqRef<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        Ok(self.forward_head(lora, seqs, false)?.0)
    }

    /// Like [`Transformer::logprobs`], also returning the most probable token at each scored
    /// position (same shape).
    pub fn logprobs_and_argmax(
        &self,
        lora: Option<&LoraWeights>,
        seqs: &[SeqRef<'_>],
    ) -> Result<LogprobsArgmax> {
        self.forward_head(lora, seqs, true)
    }

    fn forward_head(
        &self,
        lora: Option<&LoraWeights>,
        seqs: &[SeqRef<'_>],
        want_argmax: bool,
    ) -> Result<LogprobsArgmax> {
        self.check_lora(lora)?;
        let lay = Layout::new(seqs, self.model.hp.n_vocab)?;
        self.pool.install(|| {
            let m = &*self.model;
            let (n, d) = (lay.n_tokens(), m.hp.n_embd);
            let rope = self.rope(&lay);
            let mut h = vec![0f32; n * d];
            let mut next = vec![0f32; n * d];
            self.embed(&lay, &mut h)?;
            self.run_blocks(lora, &lay, &rope, &mut h, &mut next, |_, _| {})?;
            let mut inv = vec![0f32; n];
            rmsnorm_fwd(&h, &m.output_norm, m.hp.rms_eps, &mut next, &mut inv);
            if self.round_acts_like_llama {
                let r = ActRounding::for_weight(m.output_weight().ty);
                round_activations(&mut next, d, r);
            }
            let w = m.output_weight().to_f32()?;
            let mut out = vec![0f32; lay.scored.len()];
            let mut arg = vec![0u32; if want_argmax { lay.scored.len() } else { 0 }];
            head::logprobs(
                &next,
                d,
                &w,
                m.hp.n_vocab,
                &lay.scored,
                self.logit_chunk.max(1),
                &mut out,
                &mut arg,
            );
            Ok((
                lay.split(&out),
                if want_argmax {
                    lay.split(&arg)
                } else {
                    Vec::new()
                },
            ))
        })
    }

    /// Runs every block on `h` (`[T, d]`, the embeddings on entry, the last block's output on
    /// return); `next` is scratch of the same size. `on_layer(l, out)` sees each block's output.
    fn run_blocks(
        &self,
        lora: Option<&LoraWeights>,
        lay: &Layout,
        rope: &RopeTable,
        h: &mut Vec<f32>,
        next: &mut Vec<f32>,
        mut on_layer: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let m = &*self.model;
        let mut dense = DenseLayer::default();
        let mut acts = Acts::default();
        for (l, lw) in m.layers.iter().enumerate() {
            dense.load(lw)?;
            let mut ctx = BlockCtx::new(&m.hp, lw, &dense, lora, l, rope, lay);
            ctx.round_acts_like_llama = self.round_acts_like_llama;
            ctx.tap = self.debug_tap.as_deref();
            ctx.forward(h, &mut acts, next);
            std::mem::swap(h, next);
            on_layer(l, h);
        }
        Ok(())
    }

    /// Diagnostics: the output of every block (`[n_layer][T × d]`, token-major, all sequences
    /// concatenated) for comparing with another implementation layer by layer.
    pub fn layer_outputs(
        &self,
        lora: Option<&LoraWeights>,
        seqs: &[SeqRef<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        self.check_lora(lora)?;
        let lay = Layout::new(seqs, self.model.hp.n_vocab)?;
        self.pool.install(|| {
            let (n, d) = (lay.n_tokens(), self.model.hp.n_embd);
            let rope = self.rope(&lay);
            let mut h = vec![0f32; n * d];
            let mut next = vec![0f32; n * d];
            self.embed(&lay, &mut h)?;
            let mut outs = Vec::new();
            self.run_blocks(lora, &lay, &rope, &mut h, &mut next, |_, o| {
                outs.push(o.to_vec())
            })?;
            Ok(outs)
        })
    }

    /// Forward, loss, and backward in one call. `loss` receives the adapted model's log-probs
    /// and returns `(loss, ∂loss/∂logprobs)`; LoRA gradients are **added** to `grads` (so several
    /// calls accumulate micro-batches; zero `grads` yourself between optimizer steps).
    ///
    /// Memory: block inputs for every layer plus one block's activations (recomputed in the
    /// backward pass), never a `[T, vocab]` matrix.
    pub fn forward_backward<F>(
        &self,
        lora: &LoraWeights,
        seqs: &[SeqRef<'_>],
        loss: F,
        grads: &mut LoraWeights,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        self.check_lora(Some(lora))?;
        lora.check_same_shape(grads)?;
        let lay = Layout::new(seqs, self.model.hp.n_vocab)?;
        self.pool.install(|| {
            let m = &*self.model;
            let hp = &m.hp;
            let (n, d, nl) = (lay.n_tokens(), hp.n_embd, hp.n_layer);
            let rope = self.rope(&lay);
            let chunk = self.logit_chunk.max(1);
            // Block inputs h_0 … h_L.
            let mut hs = vec![0f32; (nl + 1) * n * d];
            self.embed(&lay, &mut hs[..n * d])?;
            let mut dense = DenseLayer::default();
            let mut acts = Acts::default();
            for (l, lw) in m.layers.iter().enumerate() {
                dense.load(lw)?;
                let ctx = BlockCtx::new(hp, lw, &dense, Some(lora), l, &rope, &lay);
                let (done, rest) = hs.split_at_mut((l + 1) * n * d);
                ctx.forward(&done[l * n * d..], &mut acts, &mut rest[..n * d]);
            }
            let h_last = &hs[nl * n * d..];
            let mut xf = vec![0f32; n * d];
            let mut inv = vec![0f32; n];
            rmsnorm_fwd(h_last, &m.output_norm, hp.rms_eps, &mut xf, &mut inv);
            let w = m.output_weight().to_f32()?;
            let mut lp = vec![0f32; lay.scored.len()];
            head::logprobs(&xf, d, &w, hp.n_vocab, &lay.scored, chunk, &mut lp, &mut []);
            let logprobs = lay.split(&lp);
            let (loss_val, dlp) = loss(&logprobs)?;
            if dlp.len() != logprobs.len()
                || dlp.iter().zip(&logprobs).any(|(a, b)| a.len() != b.len())
            {
                return Err(TrainError::shape(
                    "loss gradient",
                    lay.n_out.clone(),
                    dlp.iter().map(Vec::len).collect::<Vec<_>>(),
                ));
            }
            let dflat: Vec<f32> = dlp.into_iter().flatten().collect();
            let mut dxf = vec![0f32; n * d];
            head::logprobs_bwd(&xf, d, &w, hp.n_vocab, &lay.scored, &dflat, chunk, &mut dxf);
            let head_bytes = w.capacity() * 4;
            drop(w);
            let mut dh = vec![0f32; n * d];
            rmsnorm_bwd(h_last, &m.output_norm, &inv, &dxf, &mut dh);
            drop(dxf);
            drop(xf);
            let mut scratch = Grads::default();
            let mut out = vec![0f32; n * d];
            for (l, lw) in m.layers.iter().enumerate().rev() {
                dense.load(lw)?;
                let ctx = BlockCtx::new(hp, lw, &dense, Some(lora), l, &rope, &lay);
                let h_in = &hs[l * n * d..(l + 1) * n * d];
                ctx.forward(h_in, &mut acts, &mut out);
                ctx.backward(h_in, &acts, &mut scratch, &mut dh, grads);
            }
            let memory = MemoryReport {
                base_weights: m.storage_bytes(),
                dense_layer: dense.bytes(),
                dense_head: head_bytes,
                checkpoints: hs.capacity() * 4 + (dh.capacity() + out.capacity()) * 4,
                activations: acts.bytes(),
                grad_scratch: scratch.bytes(),
                logits_scratch: 2 * chunk * hp.n_vocab * 4,
                lora: (lora.n_params() + grads.n_params()) * 4,
            };
            Ok(ForwardBackward {
                loss: loss_val,
                logprobs,
                memory,
            })
        })
    }
}
