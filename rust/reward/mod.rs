//! Rule-based rewards of the Fast-Math-R1 recipe: format, cosine (Yeo et al. 2025), Kimi k1.5
//! length, accuracy, and their weighted sum; and length rewards beyond the paper (weight 0 by
//! default): ShorterBetter, a Laser-D style difficulty-adaptive target length, DAPO's soft
//! overlong punishment (`shaping`). Pure: no I/O.
//!
//! The paper's total is `R = format + cosine + length` (accuracy weight 0 by default).
pub(crate) mod accuracy;
pub(crate) mod config;
pub(crate) mod cosine;
pub(crate) mod format;
pub(crate) mod group;
pub(crate) mod length;
pub(crate) mod shaping;

#[cfg(test)]
mod tests;

pub use accuracy::{accuracy_reward, correctness, Correctness};
pub use config::{CosineConfig, LengthScope, LengthUnit, RewardConfig, RewardWeights};
pub use cosine::cosine_reward;
pub use format::{format_reward, format_reward_with};
pub use group::{score_batch, score_group, Completion, CompletionScores, GroupScores};
pub use length::length_rewards;
pub use shaping::{
    laser_bucket, laser_rewards, laser_targets, overlong_penalty, shorter_better_rewards,
    shorter_better_target, LaserConfig, OverlongConfig, ShorterBetterConfig,
};
