//! Verifying answers and scoring completions with the paper's rewards.

use super::boundary::{guard, non_null};
use super::error::fmr_error;
use super::growable::{array_stride, out_size, read_at, write_at, write_out, Growable};
use super::strings::{borrow_str, into_c_string};
use crate::answer::{verify, verify_completion, VerifyOptions};
use crate::error::{Error, ErrorCode};
use crate::reward::{score_group, Completion, RewardConfig};
use std::ffi::c_char;

/// Why the verifier decided as it did (`fmr_verdict.reason`). Fixed values, never reused.
pub type fmr_verdict_reason = u32;
/// Normalized strings are identical.
pub const FMR_VERDICT_EXACT_STRING: fmr_verdict_reason = 1;
/// Exactly equal as rational numbers.
pub const FMR_VERDICT_NUMERIC_EXACT: fmr_verdict_reason = 2;
/// Equal within the relative tolerance.
pub const FMR_VERDICT_NUMERIC_CLOSE: fmr_verdict_reason = 3;
/// Expressions agree at several sample points.
pub const FMR_VERDICT_SYMBOLIC: fmr_verdict_reason = 4;
/// Tuples, intervals, sets or lists equal element by element.
pub const FMR_VERDICT_STRUCTURAL: fmr_verdict_reason = 5;
/// Equations equal to each other or to the other side's expression.
pub const FMR_VERDICT_EQUATION: fmr_verdict_reason = 6;
/// Multiple-choice letters match.
pub const FMR_VERDICT_CHOICE: fmr_verdict_reason = 7;
/// Text answers equal ignoring case and spacing.
pub const FMR_VERDICT_TEXT: fmr_verdict_reason = 8;
/// Not equivalent.
pub const FMR_VERDICT_NOT_EQUIVALENT: fmr_verdict_reason = 100;
/// The prediction is missing or empty.
pub const FMR_VERDICT_PREDICTION_MISSING: fmr_verdict_reason = 101;
/// The gold answer cannot be parsed.
pub const FMR_VERDICT_GOLD_UNPARSEABLE: fmr_verdict_reason = 102;
/// An input exceeds the length cap.
pub const FMR_VERDICT_INPUT_TOO_LONG: fmr_verdict_reason = 103;

/// The verifier's decision (caller-allocated output: set `struct_size`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fmr_verdict {
    /// Size of this struct in the caller's header: set it before the call.
    pub struct_size: u32,
    /// True when the prediction equals the gold answer.
    pub equivalent: bool,
    /// `FMR_VERDICT_*`.
    pub reason: fmr_verdict_reason,
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_verdict {
    const NAME: &'static str = "fmr_verdict";
    const MIN_SIZE: usize = std::mem::size_of::<fmr_verdict>();
    const INIT: &'static str = "set it to sizeof(fmr_verdict)";
}

/// Compares a predicted answer with a gold answer. With `is_completion` the prediction is a
/// whole model output and its answer is extracted first: the last `\boxed{}` (after
/// `</think>` first), else an answer phrase, else the final math (`$…$`, `\[…\]`, …) or the
/// last number in running text. `options_json` (may be empty) holds verifier options:
/// `rel_tol`, `aimo`, `last_number_fallback`, `answer_phrases`, `final_math`,
/// `prefer_after_think`, `percent_lenient`; `{"final_math": false, "last_number_fallback":
/// false}` is the strict form (a box or an answer phrase only).
/// The verdict goes to the caller's `*out` (set `out->struct_size` first). If `detail` is not
/// NULL it receives an explanation to release with `fmr_string_free(*detail)`, and
/// `*detail_len`, when not NULL, its length. Pure and thread-safe; bounded time for any input.
///
/// # Safety
/// Strings are valid for their lengths; `out` is writable for its `struct_size`; `detail` and
/// `detail_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_verify(
    gold: *const c_char,
    gold_len: usize,
    predicted: *const c_char,
    predicted_len: usize,
    is_completion: bool,
    options_json: *const c_char,
    options_json_len: usize,
    out: *mut fmr_verdict,
    detail: *mut *mut c_char,
    detail_len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: the caller's struct per the contract.
        let out_bytes = unsafe { out_size(out) }?;
        // SAFETY: valid for their lengths per the contract.
        let (gold, predicted, json) = unsafe {
            (
                borrow_str(gold, gold_len, "gold")?,
                borrow_str(predicted, predicted_len, "predicted")?,
                borrow_str(options_json, options_json_len, "options_json")?,
            )
        };
        let opts: VerifyOptions = if json.trim().is_empty() {
            VerifyOptions::default()
        } else {
            serde_json::from_str(json)?
        };
        if !(opts.rel_tol >= 0.0 && opts.rel_tol < 1.0) {
            return Err(Error::invalid(format!(
                "rel_tol must be in [0, 1), got {}",
                opts.rel_tol
            )));
        }
        let v = if is_completion {
            verify_completion(gold, predicted, &opts)
        } else {
            verify(gold, predicted, &opts)
        };
        let text = if detail.is_null() {
            None
        } else {
            Some(into_c_string(v.detail)?)
        };
        // SAFETY: writable per the contract.
        unsafe {
            write_out(
                out,
                out_bytes,
                fmr_verdict {
                    struct_size: 0,
                    equivalent: v.equivalent,
                    reason: v.reason.code(),
                },
            );
            if let Some((p, n)) = text {
                *detail = p;
                if !detail_len.is_null() {
                    *detail_len = n;
                }
            }
        }
        Ok(())
    })
}

/// One completion to score (input; in an array, set `struct_size` in every element).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_completion {
    /// Size of this struct in the caller's header.
    pub struct_size: u32,
    /// The generated text (UTF-8, `text_len` bytes).
    pub text: *const c_char,
    /// Length of `text` in bytes.
    pub text_len: usize,
    /// Its length in tokens (used when the config's length unit is tokens).
    pub n_tokens: usize,
}

/// Reward components of one completion (caller-allocated output: in an array, set
/// `struct_size` in every element).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fmr_reward_scores {
    /// Size of this struct in the caller's header: set it before the call.
    pub struct_size: u32,
    /// Weighted sum of the components.
    pub total: f64,
    /// Format reward: 1 when a `\boxed{}` appears before `</think>`.
    pub format: f64,
    /// Cosine length reward.
    pub cosine: f64,
    /// Kimi length reward (relative to the other completions of the call).
    pub length: f64,
    /// Accuracy (0 or 1).
    pub accuracy: f64,
    /// Counted correct.
    pub correct: bool,
    /// Counted correct only because the gold answer could not be parsed (option on).
    pub gold_unparseable_used: bool,
    /// The verifier's reason (`FMR_VERDICT_*`).
    pub reason: fmr_verdict_reason,
    /// ShorterBetter term: −beta × |length − the group's shortest correct length| (the mean
    /// length when none is correct); unweighted. Appended after 0.2.0 (like
    /// `laser` and `overlong`): written when `struct_size` covers it.
    pub shorter_better: f64,
    /// Laser-D style bonus: 1 for a correct completion within its difficulty bucket's target
    /// length (the bucket is estimated on this call's completions), else 0; unweighted.
    pub laser: f64,
    /// DAPO's soft overlong punishment: 0 up to `max_len − cache`, then down to −1 at
    /// `max_len`, −1 beyond; unweighted.
    pub overlong: f64,
}

/// `sizeof(fmr_reward_scores)` before `shorter_better`, `laser` and `overlong` were appended:
/// hosts built against that header still work (they get the fields they know).
const REWARD_SCORES_V1_SIZE: usize = std::mem::offset_of!(fmr_reward_scores, shorter_better);

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_completion {
    const NAME: &'static str = "fmr_completion";
    const MIN_SIZE: usize = std::mem::size_of::<fmr_completion>();
    const INIT: &'static str = "set it to sizeof(fmr_completion) in every element";
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_reward_scores {
    const NAME: &'static str = "fmr_reward_scores";
    const MIN_SIZE: usize = REWARD_SCORES_V1_SIZE;
    const INIT: &'static str = "set it to sizeof(fmr_reward_scores) in every element";
}

/// Scores `n` completions of one problem with the paper's rewards. `config_json` (may be empty
/// for the paper's values) holds `weights` {`format`, `cosine`, `length`, `accuracy`}, `cosine`
/// constants, `length_unit` (`chars`|`tokens`), `length_scope` (`group`|`batch`),
/// `gold_unparseable_counts_correct` (default false), `format_requires_think` (default true),
/// `length_only_correct` (default false), `shorter_better` {`beta`}, `laser` (difficulty
/// buckets), `overlong` {`max_len`, `cache`} and `verify` options; the weights also take
/// `shorter_better`, `laser` and `overlong` (default 0). Unknown keys are errors. Writes
/// `n` entries to the caller's array `scores`. Both arrays step by their elements'
/// `struct_size` (set in every element). Pure and thread-safe.
///
/// # Safety
/// `completions` holds `n` valid entries; `scores` is writable for `n` entries of its
/// elements' `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn fmr_score_group(
    gold: *const c_char,
    gold_len: usize,
    completions: *const fmr_completion,
    n: usize,
    config_json: *const c_char,
    config_json_len: usize,
    scores: *mut fmr_reward_scores,
) -> *mut fmr_error {
    guard(|| {
        let (mut in_stride, mut out_stride) = (0, 0);
        if n > 0 {
            non_null(completions, "completions")?;
            non_null(scores, "scores")?;
            // SAFETY: both arrays hold n elements with struct_size set, per the contract.
            unsafe {
                in_stride = array_stride(completions, n, "completions")?;
                out_stride = array_stride(scores.cast_const(), n, "scores")?;
            }
        }
        // SAFETY: valid for their lengths per the contract.
        let (gold, json) = unsafe {
            (
                borrow_str(gold, gold_len, "gold")?,
                borrow_str(config_json, config_json_len, "config_json")?,
            )
        };
        let cfg = if json.trim().is_empty() {
            RewardConfig::default()
        } else {
            RewardConfig::from_json(json).map_err(|e| {
                Error::new(
                    ErrorCode::InvalidConfig,
                    format!("invalid reward config: {e}"),
                )
            })?
        };
        let mut items = Vec::with_capacity(n);
        let no_text = fmr_completion {
            struct_size: 0,
            text: std::ptr::null(),
            text_len: 0,
            n_tokens: 0,
        };
        for i in 0..n {
            // SAFETY: completions holds n entries of in_stride bytes per the contract.
            let c = unsafe { read_at(completions, in_stride, i, no_text) }?;
            // SAFETY: each text is valid for text_len bytes per the contract.
            let text =
                unsafe { borrow_str(c.text, c.text_len, &format!("completions[{i}].text")) }?;
            items.push(Completion {
                text: text.to_string(),
                num_tokens: c.n_tokens,
            });
        }
        let g = score_group(gold, &items, &cfg);
        for (i, s) in g.completions.iter().enumerate() {
            // SAFETY: scores is writable for n entries of out_stride bytes per the contract.
            unsafe {
                write_at(
                    scores,
                    out_stride,
                    i,
                    fmr_reward_scores {
                        struct_size: 0,
                        total: s.total,
                        format: s.format,
                        cosine: s.cosine,
                        length: s.length,
                        accuracy: s.accuracy,
                        correct: s.correct,
                        gold_unparseable_used: s.gold_unparseable_used,
                        reason: s.reason.code(),
                        shorter_better: s.shorter_better,
                        laser: s.laser,
                        overlong: s.overlong,
                    },
                )
            };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::VerdictReason;

    #[test]
    fn header_reasons_match_the_enum() {
        let pairs = [
            (FMR_VERDICT_EXACT_STRING, VerdictReason::ExactString),
            (FMR_VERDICT_NUMERIC_EXACT, VerdictReason::NumericExact),
            (FMR_VERDICT_NUMERIC_CLOSE, VerdictReason::NumericClose),
            (FMR_VERDICT_SYMBOLIC, VerdictReason::Symbolic),
            (FMR_VERDICT_STRUCTURAL, VerdictReason::Structural),
            (FMR_VERDICT_EQUATION, VerdictReason::Equation),
            (FMR_VERDICT_CHOICE, VerdictReason::Choice),
            (FMR_VERDICT_TEXT, VerdictReason::Text),
            (FMR_VERDICT_NOT_EQUIVALENT, VerdictReason::NotEquivalent),
            (
                FMR_VERDICT_PREDICTION_MISSING,
                VerdictReason::PredictionMissing,
            ),
            (FMR_VERDICT_GOLD_UNPARSEABLE, VerdictReason::GoldUnparseable),
            (FMR_VERDICT_INPUT_TOO_LONG, VerdictReason::InputTooLong),
        ];
        for (c, r) in pairs {
            assert_eq!(c, r.code());
        }
    }
}
