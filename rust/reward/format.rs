//! Format reward.

const THINK_END: &str = "</think>";

/// 1.0 if a `\boxed{…}` (an opening `\boxed{` with a `}` after it) appears before the first
/// `</think>`, else 0.0 (also 0.0 when there is no `</think>`). Linear time.
pub fn format_reward(text: &str) -> f64 {
    let Some(end) = text.find(THINK_END) else {
        return 0.0;
    };
    let before = &text[..end];
    match before.find("\\boxed{") {
        Some(i) if before[i + "\\boxed{".len()..].contains('}') => 1.0,
        _ => 0.0,
    }
}
