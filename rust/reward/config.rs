//! Reward configuration (JSON via serde; unknown keys are errors; missing keys take the
//! paper's defaults).

use serde::{Deserialize, Serialize};

use crate::answer::VerifyOptions;
use crate::reward::shaping::{LaserConfig, OverlongConfig, ShorterBetterConfig};

/// Weights of the reward components in the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardWeights {
    /// Format reward weight (paper: 1).
    pub format: f64,
    /// Cosine reward weight (paper: 1).
    pub cosine: f64,
    /// Kimi length reward weight (paper: 1).
    pub length: f64,
    /// Accuracy (0/1) weight (paper: 0).
    pub accuracy: f64,
    /// ShorterBetter length term weight (default 0, see [`ShorterBetterConfig`]).
    pub shorter_better: f64,
    /// Laser-D style bonus weight: the bonus of a correct completion within its difficulty
    /// bucket's target length (default 0, see [`LaserConfig`]).
    pub laser: f64,
    /// DAPO soft overlong punishment weight (default 0, see [`OverlongConfig`]).
    pub overlong: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights {
            format: 1.0,
            cosine: 1.0,
            length: 1.0,
            accuracy: 0.0,
            shorter_better: 0.0,
            laser: 0.0,
            overlong: 0.0,
        }
    }
}

/// Cosine-scaled reward constants, as open-r1 names them.
///
/// Correct: `r = min_value_correct + ½(max_value_correct − min_value_correct)(1 + cos πp)`;
/// wrong: `r = max_value_wrong + ½(min_value_wrong − max_value_wrong)(1 + cos πp)`, with
/// `p = min(1, L / max_len)`. The defaults give the paper's `0.1 + 0.45(1+c)` and
/// `−0.1 − 0.45(1+c)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosineConfig {
    /// Reward of a wrong answer of length 0 (default −1.0).
    pub min_value_wrong: f64,
    /// Reward of a wrong answer at `max_len` (default −0.1).
    pub max_value_wrong: f64,
    /// Reward of a correct answer at `max_len` (default 0.1).
    pub min_value_correct: f64,
    /// Reward of a correct answer of length 0 (default 1.0).
    pub max_value_correct: f64,
    /// `L_max` in the configured length unit (default 30000).
    pub max_len: usize,
}

impl Default for CosineConfig {
    fn default() -> Self {
        CosineConfig {
            min_value_wrong: -1.0,
            max_value_wrong: -0.1,
            min_value_correct: 0.1,
            max_value_correct: 1.0,
            max_len: 30_000,
        }
    }
}

/// How completion length is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthUnit {
    /// Unicode scalar values of the completion text (the paper's choice).
    Chars,
    /// `Completion::num_tokens`.
    Tokens,
}

/// Which completions the Kimi length reward is normalised over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthScope {
    /// The completions of one prompt.
    Group,
    /// All completions passed to [`crate::reward::score_batch`].
    Batch,
}

/// Full reward configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// Component weights.
    pub weights: RewardWeights,
    /// Cosine constants.
    pub cosine: CosineConfig,
    /// Length unit for cosine and length rewards (default chars).
    pub length_unit: LengthUnit,
    /// Scope of the Kimi length normalisation (default group).
    pub length_scope: LengthScope,
    /// Count a completion correct when the gold answer cannot be parsed (the paper's behaviour;
    /// default false). Uses are counted in the output.
    pub gold_unparseable_counts_correct: bool,
    /// Verifier options.
    pub verify: VerifyOptions,
    /// The format reward needs a `</think>` after the boxed answer (the paper's rule, default
    /// true); false suits models that do not think in tags: a boxed answer anywhere counts.
    pub format_requires_think: bool,
    /// The Kimi length reward only ranks correct answers: wrong ones get 0 instead of
    /// `min(0, λ)` (default false = the paper). Keeps the length term from rewarding short
    /// wrong answers, e.g. ones that skip a step.
    pub length_only_correct: bool,
    /// ShorterBetter options.
    pub shorter_better: ShorterBetterConfig,
    /// Laser-D style target-length options (targets are estimated over the completions scored
    /// together: one group with [`crate::reward::score_group`], all of a step with
    /// [`crate::reward::score_batch`]).
    pub laser: LaserConfig,
    /// DAPO overlong-punishment options.
    pub overlong: OverlongConfig,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            weights: RewardWeights::default(),
            cosine: CosineConfig::default(),
            length_unit: LengthUnit::Chars,
            length_scope: LengthScope::Group,
            gold_unparseable_counts_correct: false,
            verify: VerifyOptions::default(),
            format_requires_think: true,
            length_only_correct: false,
            shorter_better: ShorterBetterConfig::default(),
            laser: LaserConfig::default(),
            overlong: OverlongConfig::default(),
        }
    }
}

impl RewardConfig {
    /// Parses and validates a JSON config (`{}` gives the defaults).
    pub fn from_json(json: &str) -> Result<RewardConfig, String> {
        let cfg: RewardConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that every number is finite and `max_len > 0`.
    pub fn validate(&self) -> Result<(), String> {
        let w = &self.weights;
        let c = &self.cosine;
        let nums = [
            w.format,
            w.cosine,
            w.length,
            w.accuracy,
            w.shorter_better,
            w.laser,
            w.overlong,
            self.shorter_better.beta,
            self.laser.hard_max,
            self.laser.easy_min,
            self.laser.expected_correct,
            c.min_value_wrong,
            c.max_value_wrong,
            c.min_value_correct,
            c.max_value_correct,
            self.verify.rel_tol,
        ];
        if nums.iter().any(|x| !x.is_finite()) {
            return Err("reward config numbers must be finite".into());
        }
        if c.max_len == 0 {
            return Err("cosine.max_len must be > 0".into());
        }
        if self.verify.rel_tol < 0.0 {
            return Err("verify.rel_tol must be >= 0".into());
        }
        if self.shorter_better.beta < 0.0 {
            return Err("shorter_better.beta must be >= 0".into());
        }
        let l = &self.laser;
        if !(0.0 <= l.hard_max && l.hard_max <= l.easy_min && l.easy_min <= 1.0) {
            return Err("laser: need 0 <= hard_max <= easy_min <= 1".into());
        }
        if l.expected_correct <= 0.0 {
            return Err("laser.expected_correct must be > 0".into());
        }
        if self.overlong.cache > self.overlong.max_len {
            return Err("overlong.cache must be <= overlong.max_len".into());
        }
        Ok(())
    }
}
