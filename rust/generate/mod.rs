//! Group rollouts with length-aware early stopping.
//!
//! A *group* is `n_samples` completions of one prompt. The prompt is evaluated once and its KV
//! cells are shared by every sample; each sample then has its own sampler chain and seed. Stop
//! policies end single samples (EOS, stop strings, a closed `\boxed{}`, token limits, budget
//! forcing) or the whole group (consensus, a total token budget, a deadline, cancellation).

mod answer_key;
mod confidence;
mod draw;
mod group;
mod params;
mod plan;
mod prompt;
mod result;
mod rollout;
mod sampling;
mod schedule;
mod stop;
mod vote;

pub use answer_key::{verifier_answer_key, AnswerKey};
pub use confidence::{percentile, Calibration, SampleConfidence};
pub use params::{
    BudgetForcing, ConfidenceParams, ConfidenceStop, ConsensusRule, EscParams, ProbeParams,
    RolloutParams, ThresholdSource, VoteParams, VoteWeight,
};
pub use prompt::{PromptFormat, PromptParams};
pub use result::{FinishReason, GroupResult, ProbeRecord, SampleResult, VoteEntry};
pub use rollout::{Generator, RolloutHooks, TokenEvent};
pub use sampling::{token_confidence, token_logprob, BadLogits, Sampler, SamplingParams};
pub use schedule::GroupRequest;
pub use vote::{consensus_reached, VoteTally};
