//! Length rewards beyond the paper's Kimi term: ShorterBetter, a difficulty-adaptive target
//! length (Laser-D style) and DAPO's soft overlong punishment. Pure functions of lengths and
//! correctness (lengths in the configured unit).

use serde::{Deserialize, Serialize};

/// ShorterBetter (Yi et al. 2025, arXiv 2504.21370): `r = −β·|L − L*|`, where the target
/// `L*` ("sample optimal length") is the shortest correct completion of the group, or the
/// group's mean length when none is correct. The paper adds `α·1[correct]`: give the accuracy
/// reward that weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShorterBetterConfig {
    /// Penalty per unit of length away from the target (the paper: 0.001 per token).
    pub beta: f64,
}

impl Default for ShorterBetterConfig {
    fn default() -> Self {
        ShorterBetterConfig { beta: 0.001 }
    }
}

/// The ShorterBetter target of a group: the shortest correct length, else the mean length
/// (`None` for an empty group).
pub fn shorter_better_target(lengths: &[usize], correct: &[bool]) -> Option<f64> {
    if lengths.is_empty() {
        return None;
    }
    let shortest = lengths
        .iter()
        .zip(correct.iter().chain(std::iter::repeat(&false)))
        .filter(|(_, &c)| c)
        .map(|(&l, _)| l)
        .min();
    Some(match shortest {
        Some(l) => l as f64,
        None => lengths.iter().sum::<usize>() as f64 / lengths.len() as f64,
    })
}

/// ShorterBetter rewards of one group (one per length; `correct` shorter than `lengths`
/// counts the missing entries as wrong).
pub fn shorter_better_rewards(
    lengths: &[usize],
    correct: &[bool],
    cfg: &ShorterBetterConfig,
) -> Vec<f64> {
    let Some(target) = shorter_better_target(lengths, correct) else {
        return Vec::new();
    };
    lengths
        .iter()
        .map(|&l| -cfg.beta * (l as f64 - target).abs())
        .collect()
}

/// A difficulty-adaptive target length in the style of Laser-D (Liu et al. 2025, arXiv
/// 2505.15612): groups are put in difficulty buckets by the fraction of their completions
/// that are correct (hard ≤ `hard_max` < medium ≤ `easy_min` < easy); each bucket's target
/// is the smallest length `L` at which the bucket's completions give at least
/// `expected_correct` correct answers of length ≤ `L` per group (the expected correct
/// responses, ECR), estimated on the completions scored together. A correct completion no
/// longer than its bucket's target gets 1, every other completion 0 (a step bonus; its weight
/// is the bonus size). A bucket whose completions never reach the ECR takes its longest
/// correct completion as the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaserConfig {
    /// Groups with at most this fraction correct are hard (default 1/3).
    pub hard_max: f64,
    /// Groups with more than this fraction correct are easy (default 2/3).
    pub easy_min: f64,
    /// Correct completions within the target expected per group (default 1).
    pub expected_correct: f64,
}

impl Default for LaserConfig {
    fn default() -> Self {
        LaserConfig {
            hard_max: 1.0 / 3.0,
            easy_min: 2.0 / 3.0,
            expected_correct: 1.0,
        }
    }
}

/// The difficulty bucket of a group: 0 hard, 1 medium, 2 easy.
pub fn laser_bucket(correct: &[bool], cfg: &LaserConfig) -> usize {
    if correct.is_empty() {
        return 0;
    }
    let acc = correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64;
    if acc <= cfg.hard_max {
        0
    } else if acc <= cfg.easy_min {
        1
    } else {
        2
    }
}

/// The target length of every group (`groups[g]` = lengths and correctness of group g's
/// completions): the target of its bucket, `None` when its bucket has no correct completion.
pub fn laser_targets(groups: &[(&[usize], &[bool])], cfg: &LaserConfig) -> Vec<Option<usize>> {
    let buckets: Vec<usize> = groups.iter().map(|(_, c)| laser_bucket(c, cfg)).collect();
    let mut target = [None; 3];
    for (b, slot) in target.iter_mut().enumerate() {
        let members: Vec<usize> = (0..groups.len()).filter(|&g| buckets[g] == b).collect();
        if members.is_empty() {
            continue;
        }
        let mut correct_lens: Vec<usize> = members
            .iter()
            .flat_map(|&g| {
                let (l, c) = groups[g];
                l.iter()
                    .zip(c.iter())
                    .filter(|(_, &ok)| ok)
                    .map(|(&len, _)| len)
                    .collect::<Vec<_>>()
            })
            .collect();
        correct_lens.sort_unstable();
        let need = cfg.expected_correct * members.len() as f64;
        // The k-th shortest correct length gives ECR = k / groups in the bucket.
        *slot = correct_lens
            .iter()
            .enumerate()
            .find(|&(k, _)| (k + 1) as f64 >= need)
            .map(|(_, &l)| l)
            .or(correct_lens.last().copied());
    }
    buckets.iter().map(|&b| target[b]).collect()
}

/// Laser rewards of one group given its target: 1 for a correct completion of length ≤ target.
pub fn laser_rewards(lengths: &[usize], correct: &[bool], target: Option<usize>) -> Vec<f64> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let ok = correct.get(i).copied().unwrap_or(false);
            match target {
                Some(t) if ok && l <= t => 1.0,
                _ => 0.0,
            }
        })
        .collect()
}

/// DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476): 0 up to
/// `max_len − cache`, then falling linearly to −1 at `max_len`, −1 beyond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverlongConfig {
    /// `L_max`: the longest completion (the generation limit).
    pub max_len: usize,
    /// `L_cache`: the length of the punishment ramp before `L_max`.
    pub cache: usize,
}

impl Default for OverlongConfig {
    fn default() -> Self {
        // DAPO's values: 20480 tokens with a 4096-token ramp.
        OverlongConfig {
            max_len: 20_480,
            cache: 4096,
        }
    }
}

/// The soft overlong punishment of a completion of length `len`.
pub fn overlong_penalty(len: usize, cfg: &OverlongConfig) -> f64 {
    let start = cfg.max_len.saturating_sub(cfg.cache);
    if len <= start {
        0.0
    } else if len <= cfg.max_len && cfg.cache > 0 {
        (start as f64 - len as f64) / cfg.cache as f64
    } else {
        -1.0
    }
}
