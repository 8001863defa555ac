//! Answer extraction from a model completion.
//!
//! Order: in the text after the last `</think>` (when preferred and present) the last
//! `\boxed{…}`/`\fbox{…}`, then an answer phrase; then the same in the whole text; then,
//! optionally, the last number. Time is linear in the input: at most [`MAX_BOX_TRIES`] box
//! candidates are examined, each scanning at most [`MAX_BOX_SCAN`] characters.

use crate::answer::eval::{exact, PercentMode};
use crate::answer::expr;
use crate::answer::normalize::normalize;
use crate::answer::verdict::ExtractOptions;

/// Box candidates examined, from the last one backwards.
pub const MAX_BOX_TRIES: usize = 32;
/// Longest box content scanned (bytes).
pub const MAX_BOX_SCAN: usize = 4000;
/// Longest answer phrase kept (bytes).
const MAX_PHRASE: usize = 300;

const THINK_END: &str = "</think>";

/// Extracts the final answer from `text`; `None` when no answer form is found (or, in AIMO
/// mode, when the answer is not an integer). The result is trimmed but not normalized.
pub fn extract_answer(text: &str, opts: &ExtractOptions) -> Option<String> {
    let after = if opts.prefer_after_think {
        text.rfind(THINK_END).map(|i| &text[i + THINK_END.len()..])
    } else {
        None
    };
    let mut found = None;
    if let Some(a) = after {
        found = last_boxed(a).or_else(|| {
            if opts.answer_phrases {
                answer_phrase(a)
            } else {
                None
            }
        });
    }
    if found.is_none() {
        found = last_boxed(text);
    }
    if found.is_none() && opts.answer_phrases {
        found = answer_phrase(text);
    }
    if found.is_none() && opts.last_number_fallback {
        found = after.and_then(last_number).or_else(|| last_number(text));
    }
    let ans = clean(&found?);
    if ans.is_empty() {
        return None;
    }
    if opts.aimo {
        return aimo_integer(&ans);
    }
    Some(ans)
}

/// The content of the last well-formed `\boxed{…}` or `\fbox{…}` (also `\boxed 5`).
pub fn last_boxed(text: &str) -> Option<String> {
    let mut starts: Vec<(usize, usize)> = text
        .match_indices("\\boxed")
        .map(|(i, m)| (i, i + m.len()))
        .chain(text.match_indices("\\fbox").map(|(i, m)| (i, i + m.len())))
        .collect();
    starts.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for &(_, after) in starts.iter().take(MAX_BOX_TRIES) {
        if let Some(c) = box_content(&text[after..]) {
            return Some(c);
        }
    }
    None
}

fn box_content(rest: &str) -> Option<String> {
    let trimmed = rest.trim_start_matches(' ');
    if let Some(body) = trimmed.strip_prefix('{') {
        let mut depth = 1usize;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if i > MAX_BOX_SCAN {
                return None;
            }
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(body[..i].trim().to_string());
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    // `\boxed 5` (space-delimited argument)
    if rest.starts_with(' ') {
        let tok: String = trimmed
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '$')
            .take(64)
            .collect();
        if !tok.is_empty() {
            return Some(tok);
        }
    }
    None
}

/// `final answer is X`, `answer: X`, `#### X` — the last such phrase; X runs to the end of the
/// line or sentence, or is the `$…$` right after the phrase.
pub fn answer_phrase(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let pats = [
        "final answer is",
        "final answer:",
        "the answer is",
        "answer is",
        "answer:",
        "####",
    ];
    let mut best: Option<(usize, usize)> = None;
    for p in pats {
        if let Some(i) = lower.rfind(p) {
            let end = i + p.len();
            if best.is_none_or(|(bi, _)| i > bi) {
                best = Some((i, end));
            }
        }
    }
    let (_, end) = best?;
    let rest = text[end..].trim_start_matches([' ', ':', '\t']);
    let rest = rest.strip_prefix("**").unwrap_or(rest).trim_start();
    let line = rest.lines().next().unwrap_or("");
    let line = &line[..floor_char_boundary(line, MAX_PHRASE)];
    if let Some(inner) = delimited(line) {
        return Some(inner);
    }
    Some(sentence(line).to_string())
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The math in `$…$`, `$$…$$`, `\(…\)` or `\[…\]` at the start of `s`.
fn delimited(s: &str) -> Option<String> {
    for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
        if let Some(body) = s.strip_prefix(open) {
            if let Some(j) = body.find(close) {
                return Some(body[..j].trim().to_string());
            }
        }
    }
    None
}

/// Cuts at the first sentence end (`. ` not between digits).
fn sentence(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'.' && (i + 1 == b.len() || b[i + 1] == b' ') {
            return &s[..i];
        }
    }
    s
}

/// The last number in `text` (`-1,234.5` style).
pub fn last_number(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let end = b.iter().rposition(u8::is_ascii_digit)? + 1;
    let mut start = end;
    while start > 0 {
        let c = b[start - 1];
        let sep_ok = (c == b',' || c == b'.') && start >= 2 && b[start - 2].is_ascii_digit();
        if c.is_ascii_digit() || sep_ok {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    Some(text[start..end].to_string())
}

/// Strips math delimiters, markdown emphasis and trailing punctuation.
fn clean(s: &str) -> String {
    let mut t = s.trim();
    for _ in 0..4 {
        let before = t;
        for (open, close) in [
            ("$$", "$$"),
            ("$", "$"),
            ("\\(", "\\)"),
            ("\\[", "\\]"),
            ("**", "**"),
            ("__", "__"),
        ] {
            if t.len() >= open.len() + close.len() && t.starts_with(open) && t.ends_with(close) {
                t = t[open.len()..t.len() - close.len()].trim();
            }
        }
        t = t
            .trim_end_matches(['.', ',', ';'])
            .trim_end_matches("**")
            .trim();
        if t == before {
            break;
        }
    }
    t.to_string()
}

/// AIMO: the integer value of `ans` reduced mod 1000.
fn aimo_integer(ans: &str) -> Option<String> {
    let n = normalize(ans);
    let e = expr::parse(&n).ok()?;
    let v = exact(&e, PercentMode::Ignore)?;
    if !v.is_integer() {
        return None;
    }
    Some(v.num().rem_euclid(1000).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s, &ExtractOptions::default())
    }

    #[test]
    fn boxes_and_phrases() {
        assert_eq!(
            ex("so \\boxed{\\frac{1}{2}} and \\boxed{3}"),
            Some("3".into())
        );
        assert_eq!(ex("\\boxed{\\{1,2\\}}"), Some("\\{1,2\\}".into()));
        assert_eq!(
            ex("<think>\\boxed{1}</think> The answer is $\\boxed{2}$."),
            Some("2".into())
        );
        assert_eq!(
            ex("<think>\\boxed{1}</think> Final answer: 7."),
            Some("7".into())
        );
        assert_eq!(ex("<think>\\boxed{1}</think> no box"), Some("1".into()));
        assert_eq!(
            ex("The final answer is $\\frac{3}{4}$. I hope"),
            Some("\\frac{3}{4}".into())
        );
        assert_eq!(ex("#### 1,234"), Some("1,234".into()));
        assert_eq!(ex("\\boxed 5"), Some("5".into()));
        assert_eq!(ex("\\boxed{unclosed"), None);
        assert_eq!(ex("nothing 42 here"), None);
        let o = ExtractOptions {
            last_number_fallback: true,
            ..Default::default()
        };
        assert_eq!(
            extract_answer("nothing -42.5 here.", &o),
            Some("-42.5".into())
        );
        let o = ExtractOptions {
            aimo: true,
            ..Default::default()
        };
        assert_eq!(extract_answer("\\boxed{2024}", &o), Some("24".into()));
        assert_eq!(extract_answer("\\boxed{1/2}", &o), None);
    }
}
