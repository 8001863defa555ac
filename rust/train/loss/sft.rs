//! Supervised fine-tuning loss: mean token cross-entropy over all tokens or completion only.

use serde::{Deserialize, Serialize};

use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraWeights;
use crate::train::model::{SeqRef, Transformer};

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

/// Computes the SFT loss of `examples` under `lora` and **adds** its gradient to `grads`.
pub fn sft_loss_and_grad(
    tf: &Transformer,
    lora: &LoraWeights,
    examples: &[SftExample],
    cfg: &SftConfig,
    grads: &mut LoraWeights,
) -> Result<SftStats> {
    if examples.is_empty() {
        return Err(TrainError::config("empty SFT batch"));
    }
    let tokens: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| [e.prompt.as_slice(), &e.completion].concat())
        .collect();
    let mut refs = Vec::with_capacity(tokens.len());
    for (i, (t, e)) in tokens.iter().zip(examples).enumerate() {
        if t.len() < 2 {
            return Err(TrainError::config(format!(
                "example {i}: needs at least two tokens"
            )));
        }
        let from = if cfg.completion_only {
            e.prompt.len().max(1)
        } else {
            1
        };
        refs.push(SeqRef {
            tokens: t,
            score_from: from,
        });
    }
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
