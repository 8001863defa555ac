//! The transformer (llama, qwen2, qwen3, gemma3) over frozen GGUF weights with optional LoRA: per-token
//! log-probs forward, and a layer-wise recomputing backward that yields LoRA gradients.
//!
//! The model code (`block`, `run`) is written once over the compute seam
//! ([`crate::train::backend`]); [`Transformer`] runs it on the CPU, `cuda::CudaTransformer`
//! on a GPU. Both implement [`LoraModel`], which the losses take.

mod block;
pub mod layout;
pub(crate) mod run;

use std::sync::Arc;

use crate::train::backend::Backend;
use crate::train::cpu::backend::CpuBackend;
use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraWeights;
use crate::train::weights::GgufModel;
use layout::Layout;
pub use layout::{JoinedSeqs, SeqRef};
use run::Workspace;

/// A diagnostics callback `(layer, name, values)` over a block's intermediates, named as in
/// llama.cpp's graph (`attn_norm`, `Qcur`, `Kcur`, `Vcur` before the head norms and RoPE,
/// `Qcur_normed`, `Kcur_normed`, `kqv_out`, `attn_out`, `attn_post_norm`, `ffn_inp`, `ffn_norm`,
/// `ffn_gate`, `ffn_up`, `ffn_swiglu` or `ffn_geglu`, `ffn_out`, `ffn_post_norm`, `l_out`;
/// the norms' taps only where the architecture has them); values are token-major
/// `[T, width]`, the layout of llama.cpp's `[width, T]` tensors.
pub type Tap = dyn Fn(usize, &str, &[f32]) + Send + Sync;

/// A model that scores token sequences under an optional LoRA adapter and back-propagates a
/// loss on the log-probs into LoRA gradients: the CPU [`Transformer`] and the CUDA trainer.
/// The losses (`loss::grpo`, `loss::sft`) are written against this trait.
pub trait LoraModel {
    /// The adapter (and gradient) tensors in this model's memory.
    type Lora;

    /// Per-token log-probs (nats) of `seqs` with the adapter, or the base model with `None`.
    fn logprobs(&self, lora: Option<&Self::Lora>, seqs: &[SeqRef<'_>]) -> Result<Vec<Vec<f32>>>;

    /// Forward, loss, backward; LoRA gradients are **added** to `grads` (see
    /// [`Transformer::forward_backward`]). The loss also receives the entropy (nats) of the
    /// predicted distribution at every scored position when `want_entropy` (an empty slice
    /// otherwise); entropies carry no gradient.
    fn forward_backward_scored<F>(
        &self,
        lora: &Self::Lora,
        seqs: &[SeqRef<'_>],
        want_entropy: bool,
        loss: F,
        grads: &mut Self::Lora,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>], &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send;

    /// Forward, loss on the log-probs, backward (see [`LoraModel::forward_backward_scored`]).
    fn forward_backward<F>(
        &self,
        lora: &Self::Lora,
        seqs: &[SeqRef<'_>],
        loss: F,
        grads: &mut Self::Lora,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        self.forward_backward_scored(lora, seqs, false, |lp, _| loss(lp), grads)
    }
}

/// Memory used by the last [`Transformer::forward_backward`] call, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Frozen base weights in their stored types.
    pub base_weights: usize,
    /// One block's weights expanded for products (f32 on CPU, bf16 or f32 on GPU).
    pub dense_layer: usize,
    /// The chunk of the output projection expanded at a time.
    pub dense_head: usize,
    /// Block inputs kept for recomputation (`(n_layer + 1) × T × d` floats).
    pub checkpoints: usize,
    /// One block's activations.
    pub activations: usize,
    /// One block's gradient scratch.
    pub grad_scratch: usize,
    /// Logit chunks and the gathered scored rows.
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
    /// Entropies of the predicted distributions (same shape; empty unless asked for).
    pub entropies: Vec<Vec<f32>>,
    pub memory: MemoryReport,
}

/// Runs the model on CPU with its own rayon pool of `n_threads` workers.
///
/// Thread-safety: `Send + Sync`; concurrent calls share the pool (each call allocates its own
/// buffers). The base model is shared read-only through `Arc`.
pub struct Transformer {
    model: Arc<GgufModel>,
    pool: rayon::ThreadPool,
    /// Scored rows projected onto the vocabulary at a time (default 128).
    pub logit_chunk: usize,
    /// Rows of the output projection dequantized at a time (default 8192): the projection
    /// is never expanded whole.
    pub vocab_chunk: usize,
    /// Tokens whose MLP intermediates are held at a time in forward/backward (0, the
    /// default: all tokens of a call).
    pub mlp_chunk: usize,
    /// In [`Transformer::logprobs`] only: round the inputs of every frozen-weight product the
    /// way llama.cpp's CPU backend does for the weight's type (Q8_1 blocks for Q4_1 weights,
    /// …), to compare with llama.cpp on quantized models. Default false (f32 activations).
    pub round_acts_like_llama: bool,
    /// Diagnostics: in [`Transformer::logprobs`] and [`Transformer::layer_outputs`] only,
    /// called with every block's intermediates (see [`Tap`]). Default `None`.
    pub debug_tap: Option<Box<Tap>>,
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
            vocab_chunk: 8192,
            mlp_chunk: 0,
            round_acts_like_llama: false,
            debug_tap: None,
        })
    }

    /// The base model.
    pub fn model(&self) -> &GgufModel {
        &self.model
    }

    /// The base model, shared.
    pub fn model_arc(&self) -> &Arc<GgufModel> {
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

    /// The CPU backend for one call; `diagnostics` enables llama rounding and the tap.
    fn backend(&self, diagnostics: bool) -> CpuBackend<'_> {
        CpuBackend {
            model: &self.model,
            round_acts_like_llama: diagnostics && self.round_acts_like_llama,
            tap: if diagnostics {
                self.debug_tap.as_deref()
            } else {
                None
            },
            row_chunk: self.logit_chunk.max(1),
            vocab_chunk: self.vocab_chunk.max(1),
            mlp_chunk: self.mlp_chunk,
        }
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
            let be = self.backend(true);
            let mut ws = Workspace::default();
            let (lp, arg) = run::forward(&be, &mut ws, lora, &lay, want_argmax, |_, _| Ok(()))?;
            Ok((
                lay.split(&lp),
                if want_argmax {
                    lay.split(&arg)
                } else {
                    Vec::new()
                },
            ))
        })
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
            let be = self.backend(true);
            let mut ws = Workspace::default();
            let mut outs = Vec::new();
            let be = &be;
            run::forward(be, &mut ws, lora, &lay, false, |_, o| {
                outs.push(be.to_host(o)?);
                Ok(())
            })?;
            Ok(outs)
        })
    }

    /// Forward, loss, and backward in one call. `loss` receives the adapted model's log-probs
    /// and returns `(loss, ∂loss/∂logprobs)`; LoRA gradients are **added** to `grads` (so several
    /// calls accumulate micro-batches; zero `grads` yourself between optimizer steps).
    ///
    /// Memory: block inputs for every layer plus one block's activations (recomputed in the
    /// backward pass), never a `[T, vocab]` matrix nor the whole output projection in f32.
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
        self.forward_backward_scored(lora, seqs, false, |lp, _| loss(lp), grads)
    }

    /// [`Transformer::forward_backward`] whose loss also sees the entropy of each scored
    /// position's distribution when `want_entropy` (see [`LoraModel::forward_backward_scored`]).
    pub fn forward_backward_scored<F>(
        &self,
        lora: &LoraWeights,
        seqs: &[SeqRef<'_>],
        want_entropy: bool,
        loss: F,
        grads: &mut LoraWeights,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>], &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        self.check_lora(Some(lora))?;
        lora.check_same_shape(grads)?;
        let lay = Layout::new(seqs, self.model.hp.n_vocab)?;
        self.pool.install(|| {
            let be = self.backend(false);
            let mut ws = Workspace::default();
            let out = run::forward_backward(&be, &mut ws, lora, &lay, want_entropy, loss, grads)?;
            let mut memory = out.memory;
            memory.base_weights = self.model.storage_bytes();
            memory.lora = (lora.n_params() + grads.n_params()) * 4;
            Ok(ForwardBackward {
                loss: out.loss,
                logprobs: out.logprobs,
                entropies: out.entropies,
                memory,
            })
        })
    }
}

impl LoraModel for Transformer {
    type Lora = LoraWeights;

    fn logprobs(&self, lora: Option<&LoraWeights>, seqs: &[SeqRef<'_>]) -> Result<Vec<Vec<f32>>> {
        Transformer::logprobs(self, lora, seqs)
    }

    fn forward_backward_scored<F>(
        &self,
        lora: &LoraWeights,
        seqs: &[SeqRef<'_>],
        want_entropy: bool,
        loss: F,
        grads: &mut LoraWeights,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>], &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        Transformer::forward_backward_scored(self, lora, seqs, want_entropy, loss, grads)
    }
}
