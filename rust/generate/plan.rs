//! The validate stage of a rollout: parameters, prompt and context checked against each other
//! before anything touches the KV cache.

use super::confidence::{percentile, Calibration};
use super::params::{RolloutParams, ThresholdSource};
use crate::engine::{Context, Token};
use crate::error::{Error, ErrorCode, Result};

/// What a checked rollout needs to know up front.
pub(super) struct RolloutPlan {
    /// Tokens of the budget-forcing text (empty without budget forcing).
    pub forcing: Vec<Token>,
    /// Most tokens one sample can generate (sampled + forced + extra).
    pub per_sample: usize,
    /// Tokens of the probe text (empty without probes).
    pub probe_text: Vec<Token>,
    /// The confidence threshold known before the rollout (calibration file or fixed value).
    pub threshold: Option<f64>,
}

impl RolloutPlan {
    /// Batch entries a group may add in one step: a token per sample plus the forced text,
    /// and per probe slot its text and the sample's token.
    pub fn batch_slots(&self, params: &RolloutParams) -> usize {
        let n = params.n_samples;
        let probes = if params.probe.is_some() {
            n * (1 + self.probe_text.len())
        } else {
            0
        };
        n * (1 + self.forcing.len()) + probes
    }

    /// KV cells a probe adds to its sample's (unified cache).
    pub fn probe_cells(&self, params: &RolloutParams) -> usize {
        params
            .probe
            .as_ref()
            .map_or(0, |p| 1 + self.probe_text.len() + p.max_tokens)
    }
}

/// The threshold of a calibration file or a fixed value (`None` for a warm-up or no gate).
fn known_threshold(params: &RolloutParams) -> Result<Option<f64>> {
    let Some(stop) = &params.confidence_stop else {
        return Ok(None);
    };
    Ok(match &stop.threshold {
        ThresholdSource::Warmup { .. } => None,
        ThresholdSource::Fixed { value } => Some(*value),
        ThresholdSource::File {
            path,
            percentile: p,
        } => {
            let c = Calibration::load(path, params.confidence.top_k, params.confidence.window)?;
            percentile(&c.confidences, *p)
        }
    })
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
        let seqs = params.sequences_needed();
        if seqs > ctx.n_seq_max() as usize {
            return Err(Error::invalid(format!(
                "{seqs} sequences ({n} samples{}) exceed the context's n_seq_max {}",
                if params.probe.is_some() {
                    " and their probes"
                } else {
                    ""
                },
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
        let probe_text: Vec<Token> = match &params.probe {
            Some(p) => model.tokenize(&p.text, false, true)?,
            None => Vec::new(),
        };
        let threshold = known_threshold(params)?;
        let per_sample = params.max_tokens_per_sample(forcing.len());
        let probe_cells = params
            .probe
            .as_ref()
            .map_or(0, |p| 1 + probe_text.len() + p.max_tokens);
        // A unified cache holds the prompt once plus every sample; a split one gives each sample
        // a stream of n_ctx_seq cells holding its copy of the prompt.
        let unified = ctx.n_ctx_seq() == ctx.n_ctx();
        let (needed, room, what) = if unified {
            (
                prompt.len() + n * (per_sample + probe_cells),
                ctx.n_ctx(),
                "n_ctx".to_string(),
            )
        } else {
            (
                prompt.len() + per_sample + probe_cells,
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
        let plan = RolloutPlan {
            forcing,
            per_sample,
            probe_text,
            threshold,
        };
        let slots = plan.batch_slots(params);
        if slots > ctx.n_batch() as usize {
            return Err(Error::invalid(format!(
                "n_samples x (1 + forced tokens + probe text tokens) = {slots} exceeds n_batch {}",
                ctx.n_batch()
            )));
        }
        Ok(plan)
    }
}
