//! Training losses over per-token log-probs: GRPO (clipped surrogate + k3 KL) and SFT.

pub mod grpo;
pub mod sft;

pub use grpo::{
    compute_advantages, grpo_loss_and_grad, grpo_loss_from_inputs, grpo_loss_from_logprobs,
    quantile, Advantages, GrpoBatch, GrpoConfig, GrpoInputs, GrpoSequence, GrpoStats, IsLevel,
    LossType, ScaleRewards,
};
pub use sft::{
    join_examples, sft_loss_and_grad, sft_loss_from_logprobs, SftConfig, SftExample, SftStats,
};
