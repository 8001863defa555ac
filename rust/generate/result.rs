//! What a rollout returns.

use super::confidence::SampleConfidence;
use crate::engine::Token;
use serde::{Deserialize, Serialize};

/// One answer probe of a sample: when it ran and what it answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// Sampled tokens of the sample when the probe was taken.
    pub at: usize,
    /// Sampled tokens of the sample when the probe's answer was known (a sample its probes
    /// stop ends with this many tokens).
    #[serde(default)]
    pub done: usize,
    /// The probe's answer key (`None` when it stated none).
    pub answer: Option<String>,
}

/// Why a sample stopped. Values are part of the C ABI (`fmr_finish_reason`); never reuse one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Eos = 1,
    /// A stop string appeared, or a `\boxed{}` closed with `stop_at_boxed`.
    Stop = 2,
    /// The per-sample `max_tokens` was reached.
    Length = 3,
    /// The per-problem thinking budget or group token budget was reached.
    Budget = 4,
    /// Budget forcing appended the closing text and the sample then ended.
    Forced = 5,
    /// The group stopped because its samples agreed.
    Consensus = 6,
    /// The problem's wall-clock deadline passed.
    Deadline = 7,
    /// The caller cancelled (flag or callback).
    Cancelled = 8,
    /// The sample's window confidence fell below the threshold (`confidence_stop`); it votes
    /// only when no other sample answered.
    LowConfidence = 9,
    /// Answer probes agreed (`probe`); the sample's answer is the probes' answer.
    Probe = 10,
}

impl FinishReason {
    /// True when the sample ended on its own terms rather than being cut by a group decision.
    pub fn ended_naturally(self) -> bool {
        matches!(
            self,
            Self::Eos | Self::Stop | Self::Length | Self::Forced | Self::Probe
        )
    }

    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Budget => "budget",
            Self::Forced => "forced",
            Self::Consensus => "consensus",
            Self::Deadline => "deadline",
            Self::Cancelled => "cancelled",
            Self::LowConfidence => "low_confidence",
            Self::Probe => "probe",
        }
    }
}

/// One completion of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// Generated text (end-of-generation token not rendered; forced text included).
    pub text: String,
    /// Generated token ids, including a final end-of-generation token when there is one.
    pub tokens: Vec<Token>,
    /// Log-probability (nats) of each token in `tokens` under softmax(logits / temperature);
    /// 0 for tokens inserted by budget forcing.
    pub logprobs: Vec<f32>,
    /// Why the sample stopped.
    pub finish_reason: FinishReason,
    /// The answer key of `text`, if it states an answer: with the default key, the verifier's
    /// canonical form (`q:224` for 224, `q:1/2` for one half, `t:…` for text).
    pub answer: Option<String>,
    /// The answer as a person should read it: the extracted text (`224`, `\frac{1}{2}`), or
    /// the key when a custom answer key found an answer the extractor does not. `Some` exactly
    /// when `answer` is.
    #[serde(default)]
    pub answer_display: Option<String>,
    /// Number of tokens appended by budget forcing (0 if none).
    pub forced_tokens: usize,
    /// Confidence of each token in `tokens` (−mean of the step's top-k log-probabilities);
    /// 0 for forced tokens; empty when confidence is off (`confidence.top_k` 0).
    #[serde(default)]
    pub token_confidence: Vec<f32>,
    /// The confidence summary (`None` when confidence is off or no token was sampled).
    #[serde(default)]
    pub confidence: Option<SampleConfidence>,
    /// With `confidence.keep_top_logprobs`: each token's top-k (token, log-probability) pairs,
    /// `top_k` per token in descending probability (forced tokens: token −1, 0); else empty.
    #[serde(default)]
    pub top_tokens: Vec<Token>,
    /// The log-probabilities that go with `top_tokens`.
    #[serde(default)]
    pub top_logprobs: Vec<f32>,
    /// The answer probes taken, in order.
    #[serde(default)]
    pub probes: Vec<ProbeRecord>,
    /// Tokens decoded by this sample's probes (their text and their greedy answers), not
    /// part of `tokens`.
    #[serde(default)]
    pub probe_tokens: usize,
}

/// One answer and its votes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteEntry {
    /// The answer key.
    pub answer: String,
    /// Samples that gave it.
    pub count: usize,
    /// Sum of their vote weights (equal to `count` when votes are not weighted).
    #[serde(default)]
    pub weight: f64,
}

/// The outcome of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupResult {
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// The samples, in sample order.
    pub samples: Vec<SampleResult>,
    /// Answers by descending votes (ties: the answer reached first wins). Only samples that
    /// ended on their own vote; samples cut by the group (consensus, deadline, budget, cancel)
    /// vote only when no other sample gave an answer.
    pub votes: Vec<VoteEntry>,
    /// The winning answer, if any sample gave one.
    pub voted_answer: Option<String>,
    /// Tokens generated by all samples together (forced tokens included, probe tokens not).
    pub tokens_generated: usize,
    /// Tokens decoded by answer probes (counted apart from `tokens_generated`).
    #[serde(default)]
    pub probe_tokens: usize,
    /// The confidence threshold the samples were gated with, if any (from the warm-up, the
    /// calibration file or the fixed value; `None` while a warm-up never finished).
    #[serde(default)]
    pub confidence_threshold: Option<f64>,
    /// Tokens a run without early stopping would have generated: samples that ended on their
    /// own count as generated; samples cut by the group, gated out by low confidence or
    /// stopped by their probes count `max_tokens` (an upper bound).
    pub tokens_fixed_budget: usize,
    /// True when consensus stopped the group.
    pub stopped_by_consensus: bool,
    /// True when the caller cancelled.
    pub cancelled: bool,
    /// Wall time of the rollout in seconds (prompt evaluation included).
    pub wall_seconds: f64,
    /// Seconds spent evaluating the prompt.
    pub prompt_seconds: f64,
}

impl GroupResult {
    /// The result of a group cancelled before its prompt was evaluated: every sample empty and
    /// [`FinishReason::Cancelled`].
    pub(crate) fn cancelled_before_start(prompt_tokens: usize, n_samples: usize) -> GroupResult {
        GroupResult {
            prompt_tokens,
            samples: (0..n_samples)
                .map(|_| SampleResult {
                    text: String::new(),
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    finish_reason: FinishReason::Cancelled,
                    answer: None,
                    answer_display: None,
                    forced_tokens: 0,
                    token_confidence: Vec::new(),
                    confidence: None,
                    top_tokens: Vec::new(),
                    top_logprobs: Vec::new(),
                    probes: Vec::new(),
                    probe_tokens: 0,
                })
                .collect(),
            votes: Vec::new(),
            voted_answer: None,
            tokens_generated: 0,
            probe_tokens: 0,
            confidence_threshold: None,
            tokens_fixed_budget: 0,
            stopped_by_consensus: false,
            cancelled: true,
            wall_seconds: 0.0,
            prompt_seconds: 0.0,
        }
    }

    /// The display form of the answer key `key`: that of the first sample (in sample order)
    /// whose answer has this key.
    pub fn answer_display(&self, key: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|s| s.answer.as_deref() == Some(key))
            .and_then(|s| s.answer_display.as_deref())
    }
}
