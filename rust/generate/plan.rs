//! The validate stage of a rollout: parameters, prompt and context checked against each other
//! before anything touches the KV cache.

use super::params::RolloutParams;
use crate::engine::{Context, Token};
use crate::error::{Error, ErrorCode, Result};

/// What a checked rollout needs to know up front.
pub(super) struct RolloutPlan {
    /// Tokens of the budget-forcing text (empty without budget forcing).
    pub forcing: Vec<Token>,
    /// Most tokens one sample can generate (sampled + forced + extra).
    pub per_sample: usize,
}

impl RolloutPlan {
    /// Checks `params`, the prompt tokens and the context's size, batch and sequence limits for
    /// a group on sequences `0..params.n_samples`.
    ///
    /// Errors: invalid parameters, an empty prompt or one with tokens outside the vocabulary,
    /// more samples than the context's `n_seq_max`, a context too small for `prompt + n_samples
    /// × max_tokens` (per sequence when each sample has its own KV stream), a batch too small
    /// for one token per sample plus the forced text.
    pub fn new(ctx: &Context, prompt: &[Token], params: &RolloutParams) -> Result<RolloutPlan> {
        params.validate()?;
        let model = ctx.model();
        let n = params.n_samples;
        if prompt.is_empty() {
            return Err(Error::invalid("prompt is empty"));
        }
        if n > ctx.n_seq_max() as usize {
            return Err(Error::invalid(format!(
                "n_samples {n} exceeds the context's n_seq_max {}",
                ctx.n_seq_max()
            )));
        }
        let vocab = model.n_vocab() as i32;
        if let Some(&bad) = prompt.iter().find(|&&t| t < 0 || t >= vocab) {
            return Err(Error::invalid(format!(
                "prompt token {bad} is outside the vocabulary (0..{vocab})"
            )));
        }
        let forcing: Vec<Token> = match &params.budget_forcing {
            Some(f) => model.tokenize(&f.text, false, true)?,
            None => Vec::new(),
        };
        let per_sample = params.max_tokens_per_sample(forcing.len());
        // A unified cache holds the prompt once plus every sample; a split one gives each sample
        // a stream of n_ctx_seq cells holding its copy of the prompt.
        let unified = ctx.n_ctx_seq() == ctx.n_ctx();
        let (needed, room, what) = if unified {
            (
                prompt.len() + n * per_sample,
                ctx.n_ctx(),
                "n_ctx".to_string(),
            )
        } else {
            (
                prompt.len() + per_sample,
                ctx.n_ctx_seq(),
                format!(
                    "the per-sequence context {} (n_ctx {} / n_seq_max {})",
                    ctx.n_ctx_seq(),
                    ctx.n_ctx(),
                    ctx.n_seq_max()
                ),
            )
        };
        if needed > room as usize {
            return Err(Error::new(
                ErrorCode::ContextTooSmall,
                format!(
                    "context too small: prompt {} tokens + {} x {per_sample} generated tokens = {needed} > {what}",
                    prompt.len(),
                    if unified { n } else { 1 },
                ),
            ));
        }
        if n * (1 + forcing.len()) > ctx.n_batch() as usize {
            return Err(Error::invalid(format!(
                "n_samples x (1 + forced tokens) = {} exceeds n_batch {}",
                n * (1 + forcing.len()),
                ctx.n_batch()
            )));
        }
        Ok(RolloutPlan {
            forcing,
            per_sample,
        })
    }
}
