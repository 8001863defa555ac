//! Verdict types and verifier options (serde-configurable; stable numeric reason codes).

use serde::{Deserialize, Serialize};

/// Why the verifier decided as it did. Discriminants are stable and never reused (C ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum VerdictReason {
    /// Normalized strings are identical.
    ExactString = 1,
    /// Exactly equal as rational numbers.
    NumericExact = 2,
    /// Equal within the relative tolerance.
    NumericClose = 3,
    /// Expressions with variables agree at several sample points.
    Symbolic = 4,
    /// Tuples, intervals, sets or lists equal element by element.
    Structural = 5,
    /// Equation(s) equal to each other or to the other side's expression.
    Equation = 6,
    /// Multiple-choice letters match.
    Choice = 7,
    /// Text answers equal ignoring case and spacing.
    Text = 8,
    /// Not equivalent.
    NotEquivalent = 100,
    /// The prediction is missing or empty.
    PredictionMissing = 101,
    /// The gold answer cannot be parsed.
    GoldUnparseable = 102,
    /// An input exceeds the length cap.
    InputTooLong = 103,
}

impl VerdictReason {
    /// Stable numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The verifier's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when the prediction is judged equal to the gold answer.
    pub equivalent: bool,
    /// Why.
    pub reason: VerdictReason,
    /// Human-readable detail (normalized forms), for logs; not stable.
    pub detail: String,
}

impl Verdict {
    pub(crate) fn new(
        equivalent: bool,
        reason: VerdictReason,
        detail: impl Into<String>,
    ) -> Verdict {
        Verdict {
            equivalent,
            reason,
            detail: detail.into(),
        }
    }
}

/// Options for answer extraction from a completion (see [`crate::answer::extract_answer`] for
/// the order in which forms are tried).
///
/// `ExtractOptions::default()` is the strict form used for voting: a `\boxed{}` or an answer
/// phrase only. [`ExtractOptions::free_form`] adds the final math and the last number, as
/// [`VerifyOptions::default`] does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractOptions {
    /// Look for the answer after the last `</think>` first (default true).
    pub prefer_after_think: bool,
    /// Accept `final answer is …` / `answer: …` / `#### …` forms when no box is found
    /// (default true).
    pub answer_phrases: bool,
    /// Fall back to the final math of the text (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`, with the
    /// spans joined to it by `,`/`and`/`or`) when there is no box and no answer phrase
    /// (default false).
    pub final_math: bool,
    /// Fall back to the last number in running text (`$1,234`, `3,5 €`, `45%`); with
    /// `final_math` too, whichever of the two ends later wins (default false).
    pub last_number_fallback: bool,
    /// AIMO mode: the answer must be an integer and is reduced mod 1000 (default false).
    pub aimo: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            prefer_after_think: true,
            answer_phrases: true,
            final_math: false,
            last_number_fallback: false,
            aimo: false,
        }
    }
}

impl ExtractOptions {
    /// Free-form extraction: box, answer phrase, final math, last number.
    pub fn free_form() -> Self {
        ExtractOptions {
            final_math: true,
            last_number_fallback: true,
            ..ExtractOptions::default()
        }
    }
}

/// Options for [`crate::answer::verify`] and [`crate::answer::verify_completion`].
///
/// The defaults read free-form outputs (box → answer phrase → final math → last number);
/// [`VerifyOptions::strict`] accepts only a box or an answer phrase (the paper's format rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyOptions {
    /// Relative tolerance for numeric comparison (default 1e-4).
    pub rel_tol: f64,
    /// AIMO mode: integer answers compared mod 1000 (default false).
    pub aimo: bool,
    /// Fall back to the last number of a completion that has no box, answer phrase or (with
    /// `final_math`) later math (default true).
    pub last_number_fallback: bool,
    /// Accept answer phrases (`final answer is …`) when extracting (default true).
    pub answer_phrases: bool,
    /// Fall back to the final math of a completion (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`) when it
    /// has no box and no answer phrase (default true).
    pub final_math: bool,
    /// Prefer the text after `</think>` when extracting (default true).
    pub prefer_after_think: bool,
    /// Accept `50%` as equal to `50` as well as `0.5` (default true).
    pub percent_lenient: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            rel_tol: 1e-4,
            aimo: false,
            last_number_fallback: true,
            answer_phrases: true,
            final_math: true,
            prefer_after_think: true,
            percent_lenient: true,
        }
    }
}

impl VerifyOptions {
    /// Strict extraction: a `\boxed{}` or an answer phrase only (no final math, no last
    /// number); comparison options as the defaults.
    pub fn strict() -> Self {
        VerifyOptions {
            last_number_fallback: false,
            final_math: false,
            ..VerifyOptions::default()
        }
    }

    /// The extraction options these verify options imply.
    pub fn extract_options(&self) -> ExtractOptions {
        ExtractOptions {
            prefer_after_think: self.prefer_after_think,
            answer_phrases: self.answer_phrases,
            final_math: self.final_math,
            last_number_fallback: self.last_number_fallback,
            aimo: self.aimo,
        }
    }
}
