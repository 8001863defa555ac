//! Rollout parameters: sampling, per-sample limits, per-problem budgets, consensus, deadline.

use super::prompt::PromptParams;
use super::sampling::SamplingParams;
use crate::answer::ExtractOptions;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// When to stop a whole group because its samples agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsensusRule {
    /// Never stop early for agreement.
    Off,
    /// Stop once `k` samples give the same answer.
    KOfN {
        /// Votes needed, 1..=n_samples.
        k: usize,
    },
    /// Stop once the leading answer cannot be overtaken or tied by the samples still running
    /// (its lead exceeds the number of running samples): the final majority is then certain.
    Lossless,
    /// Stop once the leading answer holds at least `tau` of the weighted vote (weights from
    /// [`VoteParams::weight`]) of at least `min_votes` finished samples.
    Weighted {
        /// Share of the weighted vote the leader needs, in (0, 1].
        #[serde(default = "default_tau")]
        tau: f64,
        /// Finished samples with an answer needed before the rule may fire, >= 1.
        #[serde(default = "default_min_votes")]
        min_votes: usize,
    },
}

fn default_tau() -> f64 {
    0.95
}

fn default_min_votes() -> usize {
    4
}

/// Per-token confidence signals (DeepConf): each step's top-k log-probabilities come from the
/// sampler's pass over the logits; token confidence = −mean of them; a sample's window
/// confidence is the mean token confidence over its last `window` sampled tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfidenceParams {
    /// Log-probabilities per step behind a token's confidence, 1..=100 (0 = no confidence
    /// signals; the rules that need them are then rejected).
    pub top_k: usize,
    /// Sliding window of sampled tokens for the window confidence, >= 1.
    pub window: usize,
    /// Last sampled tokens averaged for the tail confidence, >= 1.
    pub tail: usize,
    /// Keep every step's top-k (token, log-probability) pairs in the result (k × 8 bytes per
    /// token); the per-token confidences and per-sample summaries are always kept.
    pub keep_top_logprobs: bool,
}

impl Default for ConfidenceParams {
    fn default() -> Self {
        Self {
            top_k: 20,
            window: 32,
            tail: 64,
            keep_top_logprobs: false,
        }
    }
}

/// Which per-sample confidence weighs a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteWeight {
    /// Every vote counts 1.
    None,
    /// Mean token confidence of the sample.
    Mean,
    /// The sample's lowest window confidence.
    LowestWindow,
    /// Mean confidence of the sample's last `tail` tokens.
    Tail,
}

/// How finished samples vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoteParams {
    /// Weight of each vote (also the weights of the `weighted` consensus rule).
    pub weight: VoteWeight,
    /// Only the most confident `top_percent` % of the voting samples vote (by the `weight`
    /// confidence, `lowest_window` when `weight` is `none`), at least one; 100 = all.
    pub top_percent: f64,
}

impl Default for VoteParams {
    fn default() -> Self {
        Self {
            weight: VoteWeight::None,
            top_percent: 100.0,
        }
    }
}

/// Where the confidence threshold of [`ConfidenceStop`] comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdSource {
    /// The group's first `samples` samples run first, to the end; the threshold is the
    /// `percentile`-th percentile of their lowest window confidences, and the other samples
    /// start once it is known.
    Warmup {
        /// Warm-up samples, 1..n_samples.
        #[serde(default = "default_warmup")]
        samples: usize,
        /// Percentile in [0, 100] (10 keeps about 90% of the samples, 90 about 10%).
        #[serde(default = "default_percentile")]
        percentile: f64,
    },
    /// The `percentile`-th percentile of the lowest window confidences in a calibration file
    /// (JSON `{"top_k", "window", "confidences": [...]}`, as `eval --calibration-out` writes
    /// it), read when the rollout is validated.
    File {
        /// Path of the file.
        path: String,
        /// Percentile in [0, 100].
        #[serde(default = "default_percentile")]
        percentile: f64,
    },
    /// A fixed threshold.
    Fixed {
        /// Window confidence below which a sample stops.
        value: f64,
    },
}

fn default_warmup() -> usize {
    4
}

fn default_percentile() -> f64 {
    10.0
}

/// Confidence-gated samples: a sample whose window confidence falls below the threshold stops
/// (finish reason `low_confidence`) and does not vote (unless no other sample answered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceStop {
    /// Where the threshold comes from.
    pub threshold: ThresholdSource,
}

/// Answer probes (Dynasor-CoT): every `every` sampled tokens, a copy of the sample's KV
/// sequence gets `text` appended and decodes up to `max_tokens` greedy tokens; after `agree`
/// probes in a row give the same answer, the sample stops (finish reason `probe`) with that
/// answer. Each sample has its own probe sequence, so a group uses `2 × n_samples` sequences.
/// Probe tokens are counted apart from the sample's tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeParams {
    /// Sampled tokens between probes, >= 1.
    pub every: usize,
    /// Appended to the copy (special tokens parsed); should open the answer, e.g. `\boxed{`.
    pub text: String,
    /// Greedy tokens a probe may decode, >= 1 (it ends earlier when a `\boxed{}` closes).
    pub max_tokens: usize,
    /// Equal probe answers in a row that stop the sample, >= 1.
    pub agree: usize,
}

impl Default for ProbeParams {
    fn default() -> Self {
        Self {
            every: 32,
            text: "\n\nFinal answer: \\boxed{".into(),
            max_tokens: 12,
            agree: 3,
        }
    }
}

/// Early-stopping self-consistency (ESC): samples run in windows of `window`; after a window
/// has finished, the group stops if all its samples gave the same answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscParams {
    /// Samples per window, 1..=n_samples.
    pub window: usize,
}

impl Default for EscParams {
    fn default() -> Self {
        Self { window: 4 }
    }
}

/// Budget forcing: when a sample's thinking reaches its budget, append `text` and allow
/// `extra_tokens` more tokens for the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetForcing {
    /// Appended verbatim (special tokens parsed), e.g. `</think>\n\n**Final Answer**\n\boxed{`.
    pub text: String,
    /// Tokens allowed after the forced text.
    pub extra_tokens: usize,
}

impl Default for BudgetForcing {
    fn default() -> Self {
        Self {
            text: "</think>\n\n**Final Answer**\n\\boxed{".into(),
            extra_tokens: 16,
        }
    }
}

/// Everything that shapes one group rollout. Unknown JSON keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutParams {
    /// How a problem becomes a prompt (used by `solve`; a rollout from tokens ignores it).
    pub prompt: PromptParams,
    /// Samples per problem (G), 1..=256.
    pub n_samples: usize,
    /// Sampling settings; sample `i` is seeded with `sampling.seed + i`.
    pub sampling: SamplingParams,
    /// Hard cap on generated tokens per sample (finish reason `length`).
    pub max_tokens: usize,
    /// Stop a sample when its text contains one of these (kept in the text).
    pub stop_strings: Vec<String>,
    /// Stop a sample as soon as a `\boxed{…}` closes.
    pub stop_at_boxed: bool,
    /// Per-problem thinking budget per sample, in tokens: a sample that has not closed its
    /// thinking (`</think>`) by then is stopped (`budget`) or forced (`forced`).
    pub thinking_budget: Option<usize>,
    /// Budget forcing applied when `thinking_budget` is hit.
    pub budget_forcing: Option<BudgetForcing>,
    /// Per-problem cap on the tokens of all samples together (finish reason `budget`).
    pub group_token_budget: Option<usize>,
    /// Stop the group once its samples agree.
    pub consensus: ConsensusRule,
    /// Wall-clock limit for the whole problem in milliseconds (finish reason `deadline`).
    pub deadline_ms: Option<u64>,
    /// How answers are extracted for voting and consensus (unless the generator has a custom
    /// answer key).
    pub answer: ExtractOptions,
    /// Treat end-of-generation tokens as ordinary text (for throughput benchmarks that must
    /// generate exactly `max_tokens`).
    pub ignore_eos: bool,
    /// Per-token confidence signals (on by default: `top_k` 20).
    pub confidence: ConfidenceParams,
    /// How finished samples vote (weights, top-η% filter).
    pub vote: VoteParams,
    /// Stop samples whose confidence drops below a threshold.
    pub confidence_stop: Option<ConfidenceStop>,
    /// Answer probes on a copy of each sample's KV sequence.
    pub probe: Option<ProbeParams>,
    /// Run samples in windows and stop once a window agrees.
    pub esc: Option<EscParams>,
}

impl Default for RolloutParams {
    fn default() -> Self {
        Self {
            prompt: PromptParams::default(),
            n_samples: 8,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop_strings: vec!["</think>".into()],
            stop_at_boxed: false,
            thinking_budget: None,
            budget_forcing: None,
            group_token_budget: None,
            consensus: ConsensusRule::Off,
            deadline_ms: None,
            answer: ExtractOptions::default(),
            ignore_eos: false,
            confidence: ConfidenceParams::default(),
            vote: VoteParams::default(),
            confidence_stop: None,
            probe: None,
            esc: None,
        }
    }
}

impl RolloutParams {
    /// Parses JSON (unknown keys are errors) and validates the result. An empty string gives the
    /// defaults.
    pub fn from_json(json: &str) -> Result<RolloutParams> {
        let p: RolloutParams = if json.trim().is_empty() {
            RolloutParams::default()
        } else {
            serde_json::from_str(json)?
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        if self.n_samples == 0 || self.n_samples > 256 {
            return Err(Error::invalid(format!(
                "n_samples must be in 1..=256, got {}",
                self.n_samples
            )));
        }
        if self.max_tokens == 0 || self.max_tokens > 1 << 20 {
            return Err(Error::invalid(format!(
                "max_tokens must be in 1..=1048576, got {}",
                self.max_tokens
            )));
        }
        if self.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(Error::invalid("stop strings must not be empty"));
        }
        if self.thinking_budget == Some(0) {
            return Err(Error::invalid("thinking_budget must be at least 1"));
        }
        if self.budget_forcing.is_some() && self.thinking_budget.is_none() {
            return Err(Error::invalid(
                "budget_forcing needs a thinking_budget to trigger it",
            ));
        }
        if let Some(f) = &self.budget_forcing {
            if f.text.is_empty() {
                return Err(Error::invalid("budget_forcing.text must not be empty"));
            }
        }
        if self.group_token_budget == Some(0) {
            return Err(Error::invalid("group_token_budget must be at least 1"));
        }
        if let ConsensusRule::KOfN { k } = self.consensus {
            if k == 0 || k > self.n_samples {
                return Err(Error::invalid(format!(
                    "consensus k must be in 1..={} (n_samples), got {k}",
                    self.n_samples
                )));
            }
        }
        if self.deadline_ms == Some(0) {
            return Err(Error::invalid("deadline_ms must be at least 1"));
        }
        self.validate_early_stopping()
    }

    fn validate_early_stopping(&self) -> Result<()> {
        let c = &self.confidence;
        if c.top_k > 100 {
            return Err(Error::invalid(format!(
                "confidence.top_k must be in 0..=100, got {}",
                c.top_k
            )));
        }
        if c.window == 0 || c.tail == 0 {
            return Err(Error::invalid(
                "confidence.window and confidence.tail must be at least 1",
            ));
        }
        let needs_confidence = self.confidence_stop.is_some()
            || self.vote.weight != VoteWeight::None
            || self.vote.top_percent < 100.0;
        if needs_confidence && c.top_k == 0 {
            return Err(Error::invalid(
                "confidence stops, weighted votes and top_percent need confidence.top_k >= 1",
            ));
        }
        if !(self.vote.top_percent > 0.0 && self.vote.top_percent <= 100.0) {
            return Err(Error::invalid(format!(
                "vote.top_percent must be in (0, 100], got {}",
                self.vote.top_percent
            )));
        }
        if self.consensus == ConsensusRule::Lossless
            && (self.vote.weight != VoteWeight::None || self.vote.top_percent < 100.0)
        {
            // The rule bounds what the running samples' votes can change by counting them;
            // weights or a confidence filter they have not produced yet could still overturn it.
            return Err(Error::invalid(
                "the lossless consensus rule needs unweighted votes from every sample (vote.weight none, vote.top_percent 100)",
            ));
        }
        if let ConsensusRule::Weighted { tau, min_votes } = self.consensus {
            if !(tau > 0.0 && tau <= 1.0) || min_votes == 0 || min_votes > self.n_samples {
                return Err(Error::invalid(format!(
                    "weighted consensus needs tau in (0, 1] and min_votes in 1..={}, got {tau} and {min_votes}",
                    self.n_samples
                )));
            }
        }
        if let Some(stop) = &self.confidence_stop {
            let pct = match &stop.threshold {
                ThresholdSource::Warmup {
                    samples,
                    percentile,
                } => {
                    if *samples == 0 || *samples >= self.n_samples {
                        return Err(Error::invalid(format!(
                            "the warm-up needs 1..{} samples (fewer than n_samples), got {samples}",
                            self.n_samples
                        )));
                    }
                    *percentile
                }
                ThresholdSource::File { path, percentile } => {
                    if path.is_empty() {
                        return Err(Error::invalid("the calibration file path is empty"));
                    }
                    *percentile
                }
                ThresholdSource::Fixed { value } => {
                    if !value.is_finite() {
                        return Err(Error::invalid("the fixed threshold must be finite"));
                    }
                    50.0
                }
            };
            if !(0.0..=100.0).contains(&pct) {
                return Err(Error::invalid(format!(
                    "percentile must be in [0, 100], got {pct}"
                )));
            }
        }
        if let Some(p) = &self.probe {
            if p.every == 0 || p.max_tokens == 0 || p.agree == 0 || p.text.is_empty() {
                return Err(Error::invalid(
                    "probe needs every, max_tokens and agree >= 1 and a non-empty text",
                ));
            }
        }
        if let Some(e) = &self.esc {
            if e.window == 0 || e.window > self.n_samples {
                return Err(Error::invalid(format!(
                    "esc.window must be in 1..={} (n_samples), got {}",
                    self.n_samples, e.window
                )));
            }
        }
        Ok(())
    }

    /// KV sequences a group uses: one per sample, and one more per sample with probes.
    pub fn sequences_needed(&self) -> usize {
        self.n_samples * if self.probe.is_some() { 2 } else { 1 }
    }

    /// Most tokens one sample can occupy in the KV cache beyond the prompt.
    pub(crate) fn max_tokens_per_sample(&self, forcing_tokens: usize) -> usize {
        let forced = self
            .budget_forcing
            .as_ref()
            .map(|f| forcing_tokens + f.extra_tokens)
            .unwrap_or(0);
        self.max_tokens + forced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_keys() {
        let p = RolloutParams::from_json(
            r#"{"n_samples": 4, "consensus": {"rule": "k_of_n", "k": 3}, "max_tokens": 64}"#,
        )
        .unwrap();
        assert_eq!(p.n_samples, 4);
        assert_eq!(p.consensus, ConsensusRule::KOfN { k: 3 });
        let e = RolloutParams::from_json(r#"{"n_sample": 4}"#).unwrap_err();
        assert!(e.message().contains("unknown field"), "{}", e.message());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for bad in [
            r#"{"n_samples": 0}"#,
            r#"{"max_tokens": 0}"#,
            r#"{"n_samples": 4, "consensus": {"rule": "k_of_n", "k": 5}}"#,
            r#"{"sampling": {"top_p": 1.5}}"#,
            r#"{"budget_forcing": {"text": "x", "extra_tokens": 4}}"#,
            r#"{"stop_strings": [""]}"#,
            r#"{"deadline_ms": 0}"#,
        ] {
            assert!(RolloutParams::from_json(bad).is_err(), "accepted {bad}");
        }
    }
}
