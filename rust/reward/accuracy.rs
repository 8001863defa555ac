//! Correctness of one completion (the verifier plus the gold-unparseable option).

use crate::answer::{gold_parseable, verify_completion, Verdict, VerdictReason};
use crate::reward::config::RewardConfig;

/// Whether a completion counts as correct, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Correctness {
    /// Counted correct.
    pub correct: bool,
    /// Correct only because the gold could not be parsed and
    /// `gold_unparseable_counts_correct` is on.
    pub gold_unparseable_used: bool,
    /// The verifier's verdict.
    pub verdict: Verdict,
}

/// Extracts the answer from `text`, verifies it against `gold` with `cfg.verify`, and applies
/// the gold-unparseable option: when the gold cannot be parsed (see
/// [`crate::answer::gold_parseable`]) the verdict reason is `GoldUnparseable` whatever the
/// completion holds, and the completion counts correct only if the option is on (as in the
/// paper, where an unparseable gold gives reward 1).
pub fn correctness(gold: &str, text: &str, cfg: &RewardConfig) -> Correctness {
    let mut verdict = verify_completion(gold, text, &cfg.verify);
    if !verdict.equivalent
        && verdict.reason != VerdictReason::GoldUnparseable
        && !gold_parseable(gold)
    {
        verdict = Verdict {
            equivalent: false,
            reason: VerdictReason::GoldUnparseable,
            detail: verdict.detail,
        };
    }
    let used = !verdict.equivalent
        && verdict.reason == VerdictReason::GoldUnparseable
        && cfg.gold_unparseable_counts_correct;
    Correctness {
        correct: verdict.equivalent || used,
        gold_unparseable_used: used,
        verdict,
    }
}

/// 1.0 when [`correctness`] says correct, else 0.0.
pub fn accuracy_reward(gold: &str, text: &str, cfg: &RewardConfig) -> f64 {
    if correctness(gold, text, cfg).correct {
        1.0
    } else {
        0.0
    }
}
