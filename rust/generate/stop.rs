//! Per-sample stop checks on the text generated so far.

/// True when `text` contains one of `stops` that ends within the last `new_len` bytes (so a stop
/// string is found once, as soon as the token that completes it arrives).
pub fn contains_new_stop(text: &[u8], new_len: usize, stops: &[String]) -> bool {
    stops.iter().any(|s| {
        let s = s.as_bytes();
        let window_start = text.len().saturating_sub(new_len + s.len() - 1);
        text[window_start..].windows(s.len()).any(|w| w == s)
    })
}

/// True when the last `\boxed{` in `text` has been closed by a matching `}`.
pub fn boxed_closed(text: &[u8]) -> bool {
    let pat = b"\\boxed{";
    let Some(start) = text.windows(pat.len()).rposition(|w| w == pat) else {
        return false;
    };
    let mut depth = 1usize;
    for &b in &text[start + pat.len()..] {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_split_across_tokens() {
        let stops = vec!["</think>".to_string()];
        let text = b"reasoning </thi";
        assert!(!contains_new_stop(text, 4, &stops));
        let text = b"reasoning </think>";
        assert!(contains_new_stop(text, 3, &stops));
    }

    #[test]
    fn stop_string_before_the_window_is_not_new() {
        let stops = vec!["ab".to_string()];
        assert!(!contains_new_stop(b"ab and more", 3, &stops));
    }

    #[test]
    fn boxed_closing_with_nesting() {
        assert!(!boxed_closed(b"so \\boxed{\\frac{1}{2"));
        assert!(boxed_closed(b"so \\boxed{\\frac{1}{2}}"));
        assert!(!boxed_closed(b"no box"));
    }
}
