//! Supervised fine-tuning loss: mean token cross-entropy over all tokens or completion only.

use serde::{Deserialize, Serialize};

use crate::train::error::{Result, TrainError};
use crate::train::model::{JoinedSeqs, LoraModel};

/// SFT options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Loss on completion tokens only (else on every token after the first).
    pub completion_only: bool,
}

/// One training example: `prompt ++ completion` is the sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SftExample {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

/// Diagnostics of one SFT evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SftStats {
    /// Mean negative log-likelihood per loss token (nats).
    pub loss: f64,
    pub n_tokens: usize,
}

/// Mean NLL over all given log-probs and its gradient (`−1/N` everywhere).
pub fn sft_loss_from_logprobs(logp: &[Vec<f32>]) -> (SftStats, Vec<Vec<f32>>) {
    let n: usize = logp.iter().map(Vec::len).sum();
    let inv = 1.0 / n.max(1) as f64;
    let loss = -logp.iter().flatten().map(|&v| v as f64).sum::<f64>() * inv;
    let g = logp.iter().map(|v| vec![-inv as f32; v.len()]).collect();
    (SftStats { loss, n_tokens: n }, g)
}

/// Prompt + solution sequences of `examples`, scored from the first completion token when
/// `completion_only` (from token 1 if the prompt is empty), else from token 1.
pub fn join_examples(examples: &[SftExample], completion_only: bool) -> JoinedSeqs {
    JoinedSeqs::new(examples.iter().map(|e| {
        let from = if completion_only {
            e.prompt.len().max(1)
        } else {
            1
        };
        (e.prompt.as_slice(), e.completion.as_slice(), from)
    }))
}

/// Computes the SFT loss of `examples` under `lora` and **adds** its gradient to `grads`, on
/// whichever device `tf` drives ([`LoraModel`]).
pub fn sft_loss_and_grad<M: LoraModel + ?Sized>(
    tf: &M,
    lora: &M::Lora,
    examples: &[SftExample],
    cfg: &SftConfig,
    grads: &mut M::Lora,
) -> Result<SftStats> {
    if examples.is_empty() {
        return Err(TrainError::config("empty SFT batch"));
    }
    let joined = join_examples(examples, cfg.completion_only);
    if let Some(i) = joined.tokens().iter().position(|t| t.len() < 2) {
        return Err(TrainError::config(format!(
            "example {i}: needs at least two tokens"
        )));
    }
    let refs = joined.refs();
    let mut stats = SftStats::default();
    tf.forward_backward(
        lora,
        &refs,
        |lp| {
            let (st, g) = sft_loss_from_logprobs(lp);
            let l = st.loss;
            stats = st;
            Ok((l, g))
        },
        grads,
    )?;
    Ok(stats)
}
