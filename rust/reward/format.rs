//! Format reward.

const THINK_END: &str = "</think>";

/// 1.0 if a `\boxed{…}` (an opening `\boxed{` with a `}` after it) appears before the first
/// `</think>`, else 0.0 (also 0.0 when there is no `</think>`). Linear time.
pub fn format_reward(text: &str) -> f64 {
    format_reward_with(text, true)
}

/// [`format_reward`], or for models that do not think in tags (`require_think` false): 1.0 if a
/// closed `\boxed{…}` appears before the first `</think>` or, when there is none, anywhere.
pub fn format_reward_with(text: &str, require_think: bool) -> f64 {
    let end = match text.find(THINK_END) {
        Some(end) => end,
        None if require_think => return 0.0,
        None => text.len(),
    };
    let before = &text[..end];
    match before.find("\\boxed{") {
        Some(i) if before[i + "\\boxed{".len()..].contains('}') => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_required_think_a_boxed_answer_anywhere_counts() {
        assert_eq!(format_reward_with("so \\boxed{3}.", false), 1.0);
        assert_eq!(format_reward_with("so \\boxed{3}.", true), 0.0);
        assert_eq!(format_reward_with("a</think> \\boxed{3}", false), 0.0);
        assert_eq!(format_reward_with("\\boxed{3</think>}", false), 0.0);
        assert_eq!(format_reward_with("no answer", false), 0.0);
    }
}
