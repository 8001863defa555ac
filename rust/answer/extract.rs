//! Answer extraction from a model completion.
//!
//! Order (a step runs only when the ones before it found nothing):
//! 1. after the last `</think>` (when `prefer_after_think` and the tag is present): the last
//!    `\boxed{…}`/`\fbox{…}`, then the last answer phrase (`final answer is …`,
//!    `the answer is …`, `answer: …`, `Answer $9$`, `**Final Answer**` + next line, `#### …`);
//! 2. the same two in the whole text;
//! 3. after the last `</think>`: the final math (the last `$…$`, `$$…$$`, `\(…\)` or `\[…\]`,
//!    joined with the spans written before it as `$a$, $b$ and $c$`) or the last number in
//!    running text, whichever ends later (`final_math`, `last_number_fallback`);
//! 4. the same in the whole text.
//!
//! An answer phrase's value is the math right after it (spans joined as above), else the rest
//! of its sentence; a number followed only by words (`18 apples`) keeps the number. A math
//! span written as aligned lines keeps its last line. Time is linear in the input: at most
//! [`MAX_BOX_TRIES`] box candidates are examined, each scanning at most [`MAX_BOX_SCAN`]
//! characters; phrases look at a bounded window; spans and numbers come from one pass of
//! [`crate::answer::locate::scan`].

use crate::answer::eval::{exact, PercentMode};
use crate::answer::expr;
use crate::answer::locate::{join_bodies, scan, MathSpan};
use crate::answer::normalize::normalize;
use crate::answer::verdict::ExtractOptions;

/// Box candidates examined, from the last one backwards.
pub const MAX_BOX_TRIES: usize = 32;
/// Longest box content scanned (bytes).
pub const MAX_BOX_SCAN: usize = 4000;
/// Longest answer phrase kept (bytes).
const MAX_PHRASE: usize = 300;
/// Bytes after an answer phrase searched for its math.
const PHRASE_WINDOW: usize = 2000;
/// Occurrences of `answer` examined, from the last one backwards.
const MAX_PHRASE_TRIES: usize = 16;

const THINK_END: &str = "</think>";

/// Extracts the final answer from `text` in the order of the module docs; `None` when no
/// answer form is found (or, in AIMO mode, when the answer is not an integer). The result is
/// trimmed but not normalized.
pub fn extract_answer(text: &str, opts: &ExtractOptions) -> Option<String> {
    let after = if opts.prefer_after_think {
        text.rfind(THINK_END).map(|i| &text[i + THINK_END.len()..])
    } else {
        None
    };
    let strong = |region: &str| {
        last_boxed(region)
            .map(|b| clean(&b))
            .filter(|b| !b.is_empty())
            .or_else(|| {
                if opts.answer_phrases {
                    answer_phrase(region)
                        .map(|p| clean(&p))
                        .filter(|p| !p.is_empty())
                } else {
                    None
                }
            })
    };
    let weak = |region: &str| final_math_or_number(region, opts).filter(|p| !p.is_empty());
    let ans = after
        .and_then(strong)
        .or_else(|| strong(text))
        .or_else(|| after.and_then(weak))
        .or_else(|| weak(text))?;
    if opts.aimo {
        return aimo_integer(&ans);
    }
    Some(ans)
}

/// Step 3/4 of the extraction order: the final math or the last number, whichever ends later.
/// With `final_math` off, numbers inside the last math span count as running text.
fn final_math_or_number(region: &str, opts: &ExtractOptions) -> Option<String> {
    if !opts.final_math && !opts.last_number_fallback {
        return None;
    }
    let sc = scan_tail(region);
    let math = sc
        .final_math_end()
        .filter(|_| opts.final_math)
        .map(|end| (end, reduce_math(&join_alike(region, &sc.final_math, true))));
    let mut number = None;
    if opts.last_number_fallback {
        number = sc.last_number.map(|n| (n.range.end, n.text));
        if !opts.final_math {
            if let Some(last) = sc.final_math.last() {
                let body = &region[last.body.clone()];
                if let Some(n) = scan(body).last_number {
                    let end = last.body.start + n.range.end;
                    if number.as_ref().is_none_or(|(e, _)| end > *e) {
                        number = Some((end, n.text));
                    }
                }
            }
        }
    }
    match (math, number) {
        (Some((me, m)), Some((ne, n))) => Some(if ne > me { n } else { clean(&m) }),
        (Some((_, m)), None) => Some(clean(&m)),
        (None, Some((_, n))) => Some(n),
        (None, None) => None,
    }
}

/// What a math span states, for joining `$a$, $b$ and $c$` into one answer.
#[derive(PartialEq)]
enum SpanShape {
    Inequality,
    Equation,
    Value,
}

fn span_shape(body: &str) -> SpanShape {
    let ineq = [
        "<", ">", "\\le", "\\ge", "\\lt", "\\gt", "\\ne", "\u{2264}", "\u{2265}", "\u{2260}",
    ];
    if ineq.iter().any(|t| body.contains(t)) {
        SpanShape::Inequality
    } else if body.contains('=') {
        SpanShape::Equation
    } else {
        SpanShape::Value
    }
}

/// The bodies of joined spans, keeping only the run that states the same kind of thing as the
/// span the run is anchored on (`Since $x > 0$, $x = 2$` keeps `x = 2`): the last span for
/// final math, the first for a phrase's value.
fn join_alike(text: &str, spans: &[MathSpan], anchor_last: bool) -> String {
    let anchor = if anchor_last {
        spans.last()
    } else {
        spans.first()
    };
    let Some(anchor) = anchor else {
        return String::new();
    };
    let shape = span_shape(&text[anchor.body.clone()]);
    let alike = |s: &&MathSpan| span_shape(&text[s.body.clone()]) == shape;
    if anchor_last {
        let keep = spans.iter().rev().take_while(alike).count();
        join_bodies(text, &spans[spans.len() - keep..])
    } else {
        let keep = spans.iter().take_while(alike).count();
        join_bodies(text, &spans[..keep])
    }
}

/// Texts longer than this are scanned from a paragraph break near their end first.
const TAIL_SCAN: usize = 1 << 16;

/// [`scan`] of `region`, with the ranges relative to `region`. A long region is first scanned
/// from the first paragraph break (`\n\n`, where no inline math can be open) in its last
/// [`TAIL_SCAN`] bytes; the whole region is scanned only when that tail holds no math and no
/// number.
fn scan_tail(region: &str) -> crate::answer::locate::Scan {
    if region.len() > TAIL_SCAN {
        let from = floor_char_boundary(region, region.len() - TAIL_SCAN);
        if let Some(k) = region[from..].find("\n\n") {
            let start = from + k + 2;
            let mut sc = scan(&region[start..]);
            if !sc.final_math.is_empty() || sc.last_number.is_some() {
                for s in sc.final_math.iter_mut().chain(sc.first_math.iter_mut()) {
                    s.outer = s.outer.start + start..s.outer.end + start;
                    s.body = s.body.start + start..s.body.end + start;
                }
                if let Some(n) = sc.last_number.as_mut() {
                    n.range = n.range.start + start..n.range.end + start;
                }
                return sc;
            }
        }
    }
    scan(region)
}

/// Aligned derivations (`\begin{aligned} x &= 2+3 \\ &= 5 \end{aligned}`, or lines split by
/// `\\`) keep their last line; alignment `&` disappears. Matrices and cases stay whole.
fn reduce_math(body: &str) -> String {
    let has_structure_env = ["matrix", "array", "cases"]
        .iter()
        .any(|e| body.contains(&format!("{e}}}")));
    if has_structure_env {
        return body.trim().to_string();
    }
    let inner = strip_align_env(body);
    let last = inner
        .rsplit("\\\\")
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let last = last.replace('&', " ");
    let mut t = last.trim();
    // a continued line `&= 5` keeps its value
    for lead in ["=", "\\approx"] {
        if let Some(r) = t.strip_prefix(lead) {
            t = r.trim_start();
        }
    }
    t.to_string()
}

/// `\begin{aligned} … \end{aligned}` (also `align`, `align*`, `gathered`, `split`, `eqnarray`)
/// → its body; `&` kept for [`reduce_math`].
fn strip_align_env(body: &str) -> &str {
    let t = body.trim();
    for env in [
        "aligned",
        "align",
        "align*",
        "gathered",
        "gather",
        "gather*",
        "split",
        "eqnarray",
        "eqnarray*",
    ] {
        let open = format!("\\begin{{{env}}}");
        let close = format!("\\end{{{env}}}");
        if let (Some(a), Some(b)) = (t.strip_prefix(open.as_str()), t.rfind(close.as_str())) {
            let end = b.saturating_sub(open.len());
            if end <= a.len() {
                return a[..end].trim();
            }
        }
    }
    t
}

/// The content of the last well-formed `\boxed{…}` or `\fbox{…}` (also `\boxed 5`): one
/// backward pass that stops at the first well-formed box, after [`MAX_BOX_TRIES`] candidates.
pub fn last_boxed(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut hi = b.len();
    let mut tries = 0;
    while let Some(i) = b[..hi].iter().rposition(|&c| c == b'\\') {
        let after = if b[i..].starts_with(b"\\boxed") {
            Some(i + 6)
        } else if b[i..].starts_with(b"\\fbox") {
            Some(i + 5)
        } else {
            None
        };
        if let Some(after) = after {
            if let Some(c) = box_content(&text[after..]) {
                return Some(c);
            }
            tries += 1;
            if tries >= MAX_BOX_TRIES {
                return None;
            }
        }
        hi = i;
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

/// The value of the last answer phrase in `text`: `final answer is X`, `the answer is X`,
/// `answer: X` (also `**Answer:**`), `Answer $X$`, `answer to … is X`, `**Final Answer**`
/// followed by X on the next line, `#### X`. X is the math right after the phrase (spans joined
/// as `$a$ and $b$`), else the rest of the sentence on that line (a number followed only by
/// words keeps the number).
pub fn answer_phrase(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let hashes = text.rfind("####");
    // one backward pass over the `answer`s after the last `####` (no lowercase copy)
    let mut hi = b.len().saturating_sub(5);
    let mut tries = 0;
    while let Some(i) = b[..hi].iter().rposition(|&c| c == b'a' || c == b'A') {
        if hashes.is_some_and(|h| h > i) {
            break;
        }
        if b[i..i + 6].eq_ignore_ascii_case(b"answer") {
            if let Some(v) = answer_value_start(text, i) {
                if let Some(value) = phrase_value(&text[v..]) {
                    return Some(value);
                }
            }
            tries += 1;
            if tries >= MAX_PHRASE_TRIES {
                break;
            }
        }
        hi = i;
    }
    phrase_value(&text[hashes? + 4..]).filter(|p| !p.trim().is_empty())
}

/// Where the value of the phrase around `answer` at byte `i` of `text` starts, or `None` when
/// this `answer` is not an answer phrase. Case-insensitive.
fn answer_value_start(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    if i > 0 && b[i - 1].is_ascii_alphabetic() {
        return None;
    }
    let mut j = i + "answer".len();
    if b.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let head = text[..i].trim_end_matches([' ', '*', '_', '#']).as_bytes();
    let final_before = head.len() >= 5 && head[head.len() - 5..].eq_ignore_ascii_case(b"final");
    while j < b.len() && matches!(b[j], b'*' | b'_' | b' ' | b'\t') {
        j += 1;
    }
    let rest = &b[j..];
    if rest.starts_with(b":") {
        return Some(j + 1);
    }
    let word_end = |k: usize| !b.get(j + k).is_some_and(u8::is_ascii_alphabetic);
    if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"is") && word_end(2) {
        return Some(j + 2);
    }
    if rest.starts_with(b"$") || rest.starts_with(b"\\(") || rest.starts_with(b"\\[") {
        return Some(j);
    }
    if final_before && (rest.is_empty() || rest.starts_with(b"\n")) {
        return Some(j);
    }
    // `the answer to the question is X`, `my answer would be X`: a noun phrase, a short gap
    let noun = ["the", "final", "my", "our", "correct", "this"]
        .iter()
        .any(|w| {
            let h = text[..i].trim_end_matches([' ', '*', '_']).as_bytes();
            h.len() >= w.len()
                && h[h.len() - w.len()..].eq_ignore_ascii_case(w.as_bytes())
                && (h.len() == w.len() || !h[h.len() - w.len() - 1].is_ascii_alphabetic())
        });
    if !noun {
        return None;
    }
    let tail = &text[j..];
    let window = tail[..floor_char_boundary(tail, 48)].to_ascii_lowercase();
    let line = window.split(['.', '\n', '$', '?']).next().unwrap_or("");
    for link in [" is ", " is:", " be ", " equals ", " = "] {
        if let Some(k) = line.find(link) {
            if line[..k].split_whitespace().count() <= 5 {
                return Some(j + k + link.len());
            }
        }
    }
    None
}

/// False for phrase values that judge rather than state (`this answer is correct`, `the
/// answer is not 5`, `the answer is as follows`).
fn states_a_value(value: &str) -> bool {
    const JUDGEMENTS: &[&str] = &[
        "not",
        "correct",
        "incorrect",
        "wrong",
        "right",
        "valid",
        "invalid",
        "reasonable",
        "clear",
        "obvious",
        "as",
        "below",
        "above",
        "given",
        "found",
        "the following",
        "to",
        "in",
        "that",
        "yes,",
        "no,",
        "unclear",
        "unknown",
        "still",
        "likely",
        "probably",
    ];
    let v = value.trim().trim_start_matches(['*', '_']);
    if v.is_empty() {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    !JUDGEMENTS.iter().any(|j| {
        lower.starts_with(j)
            && !lower[j.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The value that starts `rest` (see [`answer_phrase`]).
fn phrase_value(rest: &str) -> Option<String> {
    let mut t = rest.trim_start_matches([' ', '\t', ':', '*', '_']);
    // the value may sit on the next line (`**Final Answer**\n\n$$5$$`)
    for _ in 0..3 {
        let line_end = t.find('\n').unwrap_or(t.len());
        if t[..line_end].trim().is_empty() && line_end < t.len() {
            t = t[line_end + 1..].trim_start_matches([' ', '\t', ':', '*', '_', '#']);
        } else {
            break;
        }
    }
    if !states_a_value(t) {
        return None;
    }
    let window = &t[..floor_char_boundary(t, PHRASE_WINDOW)];
    let line_end = window.find('\n').unwrap_or(window.len());
    let sc = scan(window);
    if let Some(first) = sc.first_math.first() {
        let before = window[..first.outer.start].trim_end_matches([' ', ',', ':', '*']);
        let filler = strip_filler(before)
            .trim_start_matches([' ', ',', ':', '*'])
            .is_empty()
            || is_filler(before);
        if first.outer.start <= line_end && filler {
            return Some(reduce_math(&join_alike(window, &sc.first_math, false)));
        }
    }
    let line = &window[..line_end];
    let line = &line[..floor_char_boundary(line, MAX_PHRASE)];
    let value = strip_filler(cut_clause(sentence(line)).trim());
    let value = trim_value_tail(value);
    if let Some(n) = number_before_words(value) {
        return Some(n);
    }
    // a sentence more than a value (`there were 12 taken by the guests`): its first number;
    // a sentence with no number or math in it is no answer (`is different for each account`)
    let words = prose_word_count(value);
    if words >= 2 {
        if let Some(n) = first_number(value) {
            return Some(n);
        }
        if words >= 3 && !value.contains(['\\', '$', '=', '^']) {
            return None;
        }
    }
    Some(value.to_string())
}

/// Drops a dangling operator or trailing words after a value (`42 *`, `= 22 years ago`).
fn trim_value_tail(v: &str) -> &str {
    let v = v.trim_end_matches([' ', '*', '+', '/', '=', '\u{d7}', '\\']);
    // the run of plain words at the end, if a number comes before it
    let mut cut = v.len();
    let mut rest = v;
    while let Some(k) = rest.rfind(' ') {
        let last = &rest[k + 1..];
        let wordy = last.len() >= 2
            && last.chars().all(|c| c.is_ascii_alphabetic())
            && !expr::is_known_word(&last.to_ascii_lowercase());
        if !wordy {
            break;
        }
        rest = rest[..k].trim_end();
        cut = rest.len();
    }
    if cut < v.len() && rest.ends_with(|c: char| c.is_ascii_digit() || c == ')' || c == '%') {
        return &v[..cut];
    }
    v
}

/// Words of three or more ASCII letters that are neither math words nor LaTeX command names.
fn prose_word_count(s: &str) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let command = start > 0 && b[start - 1] == b'\\';
        let w = &s[start..i];
        if !command && w.len() >= 3 && !expr::is_known_word(&w.to_ascii_lowercase()) {
            n += 1;
        }
    }
    n
}

/// The first number written in `s` (as [`scan`] reads numbers).
fn first_number(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let start = b.iter().position(u8::is_ascii_digit)?;
    let mut end = start;
    while end < b.len() && (b[end].is_ascii_digit() || matches!(b[end], b'.' | b',' | b'/')) {
        end += 1;
    }
    scan(&s[..end]).last_number.map(|n| n.text)
}

/// Words that introduce a value after an answer phrase.
const FILLER: &[&str] = &[
    "simply",
    "just",
    "therefore",
    "thus",
    "so",
    "then",
    "approximately",
    "about",
    "around",
    "roughly",
    "exactly",
    "clearly",
    "indeed",
    "equal to",
    "given by",
    "that",
    "now",
];

/// `s` is one filler word (see [`FILLER`]).
fn is_filler(s: &str) -> bool {
    let t = s.trim();
    FILLER.iter().any(|f| f.eq_ignore_ascii_case(t))
}

/// Drops words that introduce a value (`simply east`, `approximately 3.14`, `equal to 5`).
fn strip_filler(mut s: &str) -> &str {
    for _ in 0..4 {
        let before = s;
        for f in FILLER {
            let n = f.len();
            if s.len() > n
                && s.as_bytes()[..n].eq_ignore_ascii_case(f.as_bytes())
                && matches!(s.as_bytes()[n], b' ' | b',' | b':')
            {
                s = s[n + 1..].trim_start_matches([' ', ',', ':']);
            }
        }
        if s == before {
            break;
        }
    }
    s
}

/// Cuts an explanation after the value: `18, which is …`, `5 because …`.
fn cut_clause(s: &str) -> &str {
    let mut end = s.len();
    for cut in [
        " because ",
        " since ",
        ", which",
        " which ",
        ", so ",
        ", as ",
        "; ",
        ", because",
        ", since",
        " - ",
        " — ",
    ] {
        if let Some(k) = s.find(cut) {
            if k > 0 {
                end = end.min(k);
            }
        }
    }
    &s[..end]
}

/// `18 apples`, `$18 per day`, `45 % of them` → the number (with its `%`): a number followed
/// only by words. `None` when the value has more math in it.
fn number_before_words(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix("\\$")
        .or_else(|| v.strip_prefix('$'))
        .or_else(|| v.strip_prefix('€'))
        .or_else(|| v.strip_prefix('£'))
        .unwrap_or(v);
    let first = v.chars().next()?;
    if !(first.is_ascii_digit() || first == '-' || first == '.') {
        return None;
    }
    let numeric_end = v
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-')))
        .unwrap_or(v.len());
    let (num, tail) = v.split_at(numeric_end);
    let tail = tail.trim_start();
    let (pct, tail) = match tail.strip_prefix('%').or_else(|| tail.strip_prefix("\\%")) {
        Some(t) => (true, t),
        None => (false, tail),
    };
    let words_only = tail.split_whitespace().count() >= 1
        && tail.chars().all(|c| {
            c.is_alphabetic()
                || c.is_whitespace()
                || matches!(c, '.' | ',' | '!' | '\'' | '²' | '³')
        })
        && tail.split_whitespace().all(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphabetic());
            let lower = w.to_ascii_lowercase();
            (w.chars().count() != 1 || w == "a" || w == "A") && !expr::is_known_word(&lower)
        });
    if !words_only || num.is_empty() || !num.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(if pct {
        format!("{num}%")
    } else {
        num.to_string()
    })
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
