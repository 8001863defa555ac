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
        Ok(())
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
