//! Splits normalized answer text into a structured answer: scalars, relations (equations and
//! inequalities), tuples/intervals, sets, unbracketed lists, interval unions, and text.
//!
//! Nesting is capped at [`MAX_NEST`]; the parser is linear per level.

use crate::answer::expr::{self, Expr};
use crate::answer::normalize::matching_close;

/// Maximum structural nesting (tuples in sets in unions …).
pub const MAX_NEST: usize = 8;

/// A relation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `!=`
    Ne,
    /// `≈` (`\approx`): an equation whose right side may be rounded.
    Approx,
}

/// A structured answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A scalar expression.
    Scalar(Expr),
    /// A chain `e0 op0 e1 op1 e2 …`.
    Rel(Vec<Expr>, Vec<RelOp>),
    /// A bracketed sequence: a tuple, point, vector, or interval.
    Tuple {
        /// `(` or `[`.
        open: char,
        /// `)` or `]`.
        close: char,
        /// Elements.
        items: Vec<Answer>,
    },
    /// A set `{…}` (unordered).
    Set(Vec<Answer>),
    /// An unbracketed comma (or "and"/"or") list, compared unordered.
    List(Vec<Answer>),
    /// A union of intervals/sets (unordered).
    Union(Vec<Answer>),
    /// Prose, compared case-insensitively.
    Text(String),
}

/// Splits `s` on `sep` at bracket depth 0.
fn split_top(s: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && bytes[i..].starts_with(sep.as_bytes()) {
            parts.push(s[start..i].to_string());
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(s[start..].to_string());
    parts
}

/// True if the string has a word of 3+ ASCII letters that the expression parser does not know.
fn has_prose_word(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphabetic()).any(|w| {
        w.len() >= 3 && !expr::is_known_word(&w.to_ascii_lowercase()) && !is_word_of_functions(w)
    })
}

/// Words made only of known function names and single letters are still math (`xsin`).
fn is_word_of_functions(w: &str) -> bool {
    let w = w.to_ascii_lowercase();
    [
        "sqrt", "sin", "cos", "tan", "log", "ln", "exp", "pi", "inf", "binom", "arcsin", "arccos",
        "arctan", "cot", "sec", "csc", "abs",
    ]
    .iter()
    .any(|f| w.contains(f))
}

/// Parses normalized text into an [`Answer`]; `None` when empty.
pub fn parse_answer(s: &str) -> Option<Answer> {
    parse_level(s.trim(), 0)
}

fn text_answer(s: &str) -> Answer {
    Answer::Text(
        s.to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn parse_level(s: &str, depth: usize) -> Option<Answer> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if depth > MAX_NEST {
        return Some(text_answer(s));
    }
    let sub = |x: &str| parse_level(x, depth + 1);

    // unions of intervals / sets
    let parts = split_top(s, " U ");
    if parts.len() > 1 {
        let items: Option<Vec<Answer>> = parts.iter().map(|p| sub(p)).collect();
        return Some(items.map_or_else(|| text_answer(s), Answer::Union));
    }
    // ± expands to a two-element list
    let pm_parts = split_top(s, "±");
    if pm_parts.len() == 2 {
        let (a, b) = (pm_parts[0].as_str(), pm_parts[1].as_str());
        {
            let a = a.trim();
            let a = if a.is_empty() {
                "0".to_string()
            } else {
                a.to_string()
            };
            let items = [format!("{a}+({b})"), format!("{a}-({b})")];
            let items: Option<Vec<Answer>> = items.iter().map(|p| sub(p)).collect();
            return Some(items.map_or_else(|| text_answer(s), Answer::List));
        }
    }
    // sets
    if s.starts_with('{') && matching_close(s) == Some(s.len() - 1) {
        let inner = &s[1..s.len() - 1];
        // set-builder `{x | x >= 5}`, `{x : x > 0}`: the condition
        for sep in ["|", ":"] {
            let parts = split_top(inner, sep);
            if parts.len() == 2 && crate::answer::normalize::is_simple_var(parts[0].trim()) {
                if let Some(cond @ Answer::Rel(..)) = sub(&parts[1]) {
                    return Some(cond);
                }
            }
        }
        if inner.trim().is_empty() {
            return Some(Answer::Set(Vec::new()));
        }
        let items: Option<Vec<Answer>> = split_top(inner, ",").iter().map(|p| sub(p)).collect();
        return Some(items.map_or_else(|| text_answer(s), |v| Answer::Set(flatten_pm(v))));
    }
    // tuples and intervals
    let first = s.chars().next().unwrap_or(' ');
    let last = s.chars().last().unwrap_or(' ');
    if matches!(first, '(' | '[')
        && matches!(last, ')' | ']')
        && matching_close(s) == Some(s.len() - 1)
    {
        let inner = &s[1..s.len() - 1];
        let parts = split_top(inner, ",");
        if parts.len() > 1 {
            let items: Option<Vec<Answer>> = parts.iter().map(|p| sub(p)).collect();
            return Some(match items {
                Some(items) => Answer::Tuple {
                    open: first,
                    close: last,
                    items,
                },
                None => text_answer(s),
            });
        }
    }
    // unbracketed lists
    let mut parts = split_top(s, ",");
    if parts.len() == 1 {
        for sep in [" and ", " or "] {
            let p = split_top(s, sep);
            if p.len() > 1 {
                parts = p;
                break;
            }
        }
    }
    if parts.len() > 1 {
        let items: Option<Vec<Answer>> = parts.iter().map(|p| sub(p)).collect();
        return Some(items.map_or_else(|| text_answer(s), |v| Answer::List(flatten_pm(v))));
    }
    // `[M]`, `(M)` around one bracketed structure (a matrix inside `\left[ … \right]`)
    if matches!(first, '(' | '[') && matching_close(s) == Some(s.len() - 1) {
        let inner = s[1..s.len() - 1].trim();
        if inner.starts_with(['(', '[']) && matching_close(inner) == Some(inner.len() - 1) {
            if let Some(a @ Answer::Tuple { .. }) = sub(inner) {
                return Some(a);
            }
        }
    }
    // `v = (6, -3)`: a name for a structured answer
    if let Some(a) = named_structure(s, depth) {
        return Some(a);
    }
    if has_prose_word(s) {
        return Some(text_answer(s));
    }
    // relations
    if let Some(rel) = parse_relation(s) {
        return Some(rel);
    }
    match expr::parse(s) {
        Ok(e) => Some(Answer::Scalar(e)),
        Err(_) => Some(text_answer(s)),
    }
}

/// Items of a set or list where `±` produced a two-element list are spliced in
/// (`{±3}` = `{3, -3}`).
fn flatten_pm(items: Vec<Answer>) -> Vec<Answer> {
    if !items.iter().any(|a| matches!(a, Answer::List(_))) {
        return items;
    }
    let mut out = Vec::with_capacity(items.len() + 1);
    for a in items {
        match a {
            Answer::List(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    out
}

/// `x = (1, 2)`, `v = ((6),(-3))`, `(x, y) = (2, -1)`: a variable (or a tuple of variables)
/// naming a tuple, set or matrix.
fn named_structure(s: &str, depth: usize) -> Option<Answer> {
    use crate::answer::normalize::is_simple_var;
    let (lhs, rhs) = s.split_once('=')?;
    let (lhs, rhs) = (lhs.trim(), rhs.trim());
    // `v = …`, or `(x, y) = …`: a tuple of variables naming a tuple
    let names_ok = is_simple_var(lhs)
        || (lhs.starts_with('(')
            && matching_close(lhs) == Some(lhs.len() - 1)
            && split_top(&lhs[1..lhs.len() - 1], ",")
                .iter()
                .all(|v| is_simple_var(v.trim())));
    if rhs.contains(['=', '<', '>']) || !names_ok {
        return None;
    }
    if !rhs.starts_with(['(', '[', '{']) || matching_close(rhs) != Some(rhs.len() - 1) {
        return None;
    }
    match parse_level(rhs, depth + 1)? {
        a @ (Answer::Tuple { .. } | Answer::Set(_)) => Some(a),
        _ => None,
    }
}

/// Splits `s` at its top-level relation signs. All sides must parse, except that an equation
/// chain whose last side parses keeps that side as a scalar (`\sum_(k=1)^n k = 10` → `10`).
fn parse_relation(s: &str) -> Option<Answer> {
    let mut sides = Vec::new();
    let mut ops = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            let two = s.get(i..i + 2).unwrap_or("");
            let op = match two {
                "<=" => Some((RelOp::Le, 2)),
                ">=" => Some((RelOp::Ge, 2)),
                "!=" => Some((RelOp::Ne, 2)),
                _ if b[i..].starts_with("\u{2248}".as_bytes()) => Some((RelOp::Approx, 3)),
                _ => match b[i] {
                    b'=' => Some((RelOp::Eq, 1)),
                    b'<' => Some((RelOp::Lt, 1)),
                    b'>' => Some((RelOp::Gt, 1)),
                    _ => None,
                },
            };
            if let Some((op, len)) = op {
                sides.push(&s[start..i]);
                ops.push(op);
                i += len;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    if ops.is_empty() {
        return None;
    }
    sides.push(&s[start..]);
    let parsed: Vec<Option<Expr>> = sides.iter().map(|x| expr::parse(x).ok()).collect();
    if parsed.iter().all(Option::is_some) {
        return Some(Answer::Rel(parsed.into_iter().flatten().collect(), ops));
    }
    let eq_chain = ops.iter().all(|o| matches!(o, RelOp::Eq | RelOp::Approx));
    let left_nonempty = sides[..sides.len() - 1]
        .iter()
        .all(|x| !x.trim().is_empty());
    match parsed.last() {
        Some(Some(last)) if eq_chain && left_nonempty => Some(Answer::Scalar(last.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(matches!(
            parse_answer("(1,2]"),
            Some(Answer::Tuple {
                open: '(',
                close: ']',
                ..
            })
        ));
        assert!(matches!(parse_answer("{1,2}"), Some(Answer::Set(_))));
        assert!(matches!(parse_answer("1, 2"), Some(Answer::List(_))));
        assert!(matches!(
            parse_answer("(1,2) U (3,4)"),
            Some(Answer::Union(_))
        ));
        assert!(matches!(parse_answer("x>=2"), Some(Answer::Rel(_, _))));
        assert!(matches!(parse_answer("no solution"), Some(Answer::Text(_))));
        assert!(matches!(parse_answer("2x+1"), Some(Answer::Scalar(_))));
    }
}
