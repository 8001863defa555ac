//! The function that maps a completion to the answer it votes for.

use crate::answer::{answer_key, extract_answer, ExtractOptions};
use std::sync::Arc;

/// Maps a completion's text to a canonical answer key, or `None` when it states no answer.
/// Two completions vote for the same answer exactly when their keys are equal.
///
/// Thread-safety: must be callable from any thread.
pub type AnswerKey = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The verifier's key: extract the answer with `opts` (last `\boxed{}`, answer phrases, optional
/// last-number fallback), then canonicalize it so that equivalent answers (`1/2`, `0.5`,
/// `\frac{1}{2}`) vote together.
pub fn verifier_answer_key(opts: ExtractOptions) -> AnswerKey {
    Arc::new(move |text: &str| {
        let extracted = extract_answer(text, &opts)?;
        answer_key(&extracted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_answers_share_a_key() {
        let key = verifier_answer_key(ExtractOptions::default());
        assert_eq!(key("so \\boxed{\\frac{1}{2}}"), key("thus \\boxed{0.5}"));
        assert_ne!(key("\\boxed{3}"), key("\\boxed{4}"));
        assert_eq!(key("no answer here"), None);
    }

    #[test]
    fn last_number_fallback_is_an_option() {
        let text = "She has 3 + 4 = 7 apples.";
        assert_eq!(verifier_answer_key(ExtractOptions::default())(text), None);
        let with_fallback = verifier_answer_key(ExtractOptions {
            last_number_fallback: true,
            ..Default::default()
        });
        assert_eq!(with_fallback(text), with_fallback("\\boxed{7}"));
    }
}
