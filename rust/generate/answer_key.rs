//! The function that maps a completion to the answer it votes for.

use std::sync::Arc;

/// Maps a completion's text to a canonical answer key, or `None` when it states no answer.
/// Two completions vote for the same answer exactly when their keys are equal.
///
/// Thread-safety: must be callable from any thread.
pub type AnswerKey = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The content of the last `\boxed{…}` (braces balanced), with whitespace removed.
pub fn last_boxed_answer_key(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, ch) in text[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let inner: String = text[start..start + i]
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    return (!inner.is_empty()).then_some(inner);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_last_balanced_box() {
        assert_eq!(
            last_boxed_answer_key("a \\boxed{1} then \\boxed{\\frac{1}{2} }"),
            Some("\\frac{1}{2}".into())
        );
    }

    #[test]
    fn unclosed_or_empty_box_is_none() {
        assert_eq!(last_boxed_answer_key("\\boxed{12"), None);
        assert_eq!(last_boxed_answer_key("\\boxed{ }"), None);
        assert_eq!(last_boxed_answer_key("no answer"), None);
    }
}
