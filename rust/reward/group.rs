//! Scoring completions: per-completion components and weighted totals.

use serde::{Deserialize, Serialize};

use crate::answer::VerdictReason;
use crate::reward::accuracy::{correctness, Correctness};
use crate::reward::config::{LengthScope, LengthUnit, RewardConfig};
use crate::reward::cosine::cosine_reward;
use crate::reward::format::format_reward_with;
use crate::reward::length::length_rewards;
use crate::reward::shaping::{
    laser_rewards, laser_targets, overlong_penalty, shorter_better_rewards,
};

/// One completion to score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text (thinking and answer).
    pub text: String,
    /// Its length in tokens (used when the length unit is tokens).
    pub num_tokens: usize,
}

/// Scores of one completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionScores {
    /// Weighted sum of the components.
    pub total: f64,
    /// Format reward (0 or 1).
    pub format: f64,
    /// Cosine reward.
    pub cosine: f64,
    /// Kimi length reward.
    pub length: f64,
    /// Accuracy (0 or 1).
    pub accuracy: f64,
    /// ShorterBetter length term.
    #[serde(default)]
    pub shorter_better: f64,
    /// Laser-D style bonus (0 or 1).
    #[serde(default)]
    pub laser: f64,
    /// DAPO soft overlong punishment (0 to −1).
    #[serde(default)]
    pub overlong: f64,
    /// Counted correct (verifier, or the gold-unparseable option).
    pub correct: bool,
    /// Correct only because the gold could not be parsed and the option is on.
    pub gold_unparseable_used: bool,
    /// The verifier's reason.
    pub reason: VerdictReason,
    /// The length used (chars or tokens).
    pub length_value: usize,
}

/// Scores of a group of completions for one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScores {
    /// Per completion, in input order.
    pub completions: Vec<CompletionScores>,
    /// Completions counted correct.
    pub num_correct: usize,
    /// Completions counted correct through the gold-unparseable option.
    pub num_gold_unparseable_used: usize,
    /// The verifier could not parse the gold answer (for any completion).
    pub gold_unparseable: bool,
    /// Mean of the totals (0 for an empty group).
    pub mean_total: f64,
    /// The Laser-D style target length the group's completions were held to (`None` when
    /// its difficulty bucket had no correct completion).
    #[serde(default)]
    pub laser_target: Option<usize>,
}

/// Everything about one completion except the length reward (which needs its peers).
fn score_one(gold: &str, c: &Completion, cfg: &RewardConfig) -> CompletionScores {
    let Correctness {
        correct,
        gold_unparseable_used: used,
        verdict,
    } = correctness(gold, &c.text, cfg);
    let length_value = match cfg.length_unit {
        LengthUnit::Chars => c.text.chars().count(),
        LengthUnit::Tokens => c.num_tokens,
    };
    CompletionScores {
        total: 0.0,
        format: format_reward_with(&c.text, cfg.format_requires_think),
        cosine: cosine_reward(length_value, correct, &cfg.cosine),
        length: 0.0,
        accuracy: if correct { 1.0 } else { 0.0 },
        shorter_better: 0.0,
        laser: 0.0,
        overlong: overlong_penalty(length_value, &cfg.overlong),
        correct,
        gold_unparseable_used: used,
        reason: verdict.reason,
        length_value,
    }
}

/// Fills in the group-dependent terms (Kimi length, ShorterBetter, Laser with the group's
/// target) and the weighted totals.
fn finish(
    mut completions: Vec<CompletionScores>,
    lengths: &[f64],
    laser_target: Option<usize>,
    cfg: &RewardConfig,
) -> GroupScores {
    let w = &cfg.weights;
    let lens: Vec<usize> = completions.iter().map(|s| s.length_value).collect();
    let ok: Vec<bool> = completions.iter().map(|s| s.correct).collect();
    let sb = shorter_better_rewards(&lens, &ok, &cfg.shorter_better);
    let laser = laser_rewards(&lens, &ok, laser_target);
    for (i, (s, &l)) in completions.iter_mut().zip(lengths).enumerate() {
        s.length = l;
        s.shorter_better = sb[i];
        s.laser = laser[i];
        s.total = w.format * s.format
            + w.cosine * s.cosine
            + w.length * s.length
            + w.accuracy * s.accuracy
            + w.shorter_better * s.shorter_better
            + w.laser * s.laser
            + w.overlong * s.overlong;
    }
    let n = completions.len();
    let mean_total = if n == 0 {
        0.0
    } else {
        completions.iter().map(|s| s.total).sum::<f64>() / n as f64
    };
    GroupScores {
        num_correct: completions.iter().filter(|s| s.correct).count(),
        num_gold_unparseable_used: completions
            .iter()
            .filter(|s| s.gold_unparseable_used)
            .count(),
        gold_unparseable: completions
            .iter()
            .any(|s| s.reason == VerdictReason::GoldUnparseable),
        mean_total,
        laser_target,
        completions,
    }
}

/// The Laser targets of groups scored together.
fn group_laser_targets(groups: &[Vec<CompletionScores>], cfg: &RewardConfig) -> Vec<Option<usize>> {
    let lens: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| g.iter().map(|s| s.length_value).collect())
        .collect();
    let ok: Vec<Vec<bool>> = groups
        .iter()
        .map(|g| g.iter().map(|s| s.correct).collect())
        .collect();
    let pairs: Vec<(&[usize], &[bool])> = lens
        .iter()
        .zip(&ok)
        .map(|(l, c)| (l.as_slice(), c.as_slice()))
        .collect();
    laser_targets(&pairs, &cfg.laser)
}

/// Scores the completions of one problem; the Kimi length reward is normalised over this
/// group, and the ShorterBetter and Laser targets come from it alone.
pub fn score_group(gold: &str, completions: &[Completion], cfg: &RewardConfig) -> GroupScores {
    let scored: Vec<CompletionScores> = completions
        .iter()
        .map(|c| score_one(gold, c, cfg))
        .collect();
    let lens: Vec<usize> = scored.iter().map(|s| s.length_value).collect();
    let ok: Vec<bool> = scored.iter().map(|s| s.correct).collect();
    let length = length_component(&lens, &ok, cfg);
    let target = group_laser_targets(std::slice::from_ref(&scored), cfg)[0];
    finish(scored, &length, target, cfg)
}

/// The Kimi length reward of each completion, with wrong answers set to 0 when
/// `cfg.length_only_correct`.
fn length_component(lens: &[usize], ok: &[bool], cfg: &RewardConfig) -> Vec<f64> {
    let mut length = length_rewards(lens, ok);
    if cfg.length_only_correct {
        for (l, &correct) in length.iter_mut().zip(ok) {
            if !correct {
                *l = 0.0;
            }
        }
    }
    length
}

/// Scores several problems together: the Laser targets are estimated over all of them; with
/// `length_scope = batch` the Kimi length reward is normalised over all completions together,
/// otherwise per group. ShorterBetter targets are always per group.
pub fn score_batch(problems: &[(&str, &[Completion])], cfg: &RewardConfig) -> Vec<GroupScores> {
    let scored: Vec<Vec<CompletionScores>> = problems
        .iter()
        .map(|(g, cs)| cs.iter().map(|c| score_one(g, c, cfg)).collect())
        .collect();
    let targets = group_laser_targets(&scored, cfg);
    let length: Vec<Vec<f64>> = if cfg.length_scope == LengthScope::Group {
        scored
            .iter()
            .map(|g| {
                let lens: Vec<usize> = g.iter().map(|s| s.length_value).collect();
                let ok: Vec<bool> = g.iter().map(|s| s.correct).collect();
                length_component(&lens, &ok, cfg)
            })
            .collect()
    } else {
        let lens: Vec<usize> = scored.iter().flatten().map(|s| s.length_value).collect();
        let ok: Vec<bool> = scored.iter().flatten().map(|s| s.correct).collect();
        let all = length_component(&lens, &ok, cfg);
        let mut offset = 0;
        scored
            .iter()
            .map(|g| {
                let v = all[offset..offset + g.len()].to_vec();
                offset += g.len();
                v
            })
            .collect()
    };
    scored
        .into_iter()
        .zip(length)
        .zip(targets)
        .map(|((group, len), t)| finish(group, &len, t, cfg))
        .collect()
}
